"""One error hierarchy for the whole package, and the wire codes it maps to.

A leaf module: it imports nothing from the package. Messages say what was being done, to
what, and why it failed; `code` is the protocol's error code (proto/PROTOCOL.md).
"""

from __future__ import annotations

import errno
from typing import Any


class SupervisorError(Exception):
    """Base of every error supd or supctl raises on purpose."""

    code = "Internal"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}


class InvalidArgument(SupervisorError):
    code = "InvalidArgument"


class NotFound(SupervisorError):
    code = "NotFound"


class AlreadyExists(SupervisorError):
    code = "AlreadyExists"


class Conflict(SupervisorError):
    code = "Conflict"


class PermissionDenied(SupervisorError):
    code = "PermissionDenied"


class ResourceExhausted(SupervisorError):
    code = "ResourceExhausted"


class Unavailable(SupervisorError):
    code = "Unavailable"


class DeadlineExceeded(SupervisorError):
    code = "DeadlineExceeded"


class Internal(SupervisorError):
    code = "Internal"


class ExecStartError(InvalidArgument):
    """A command could not be started in a container ("exec /nope: No such file or
    directory"). `exit_code` is what a shell reports for it: 127 (not found, or failed
    before exec), 126 (found but not executable)."""

    def __init__(self, message: str, exit_code: int, details: dict[str, Any] | None = None):
        super().__init__(message, {"exit_code": exit_code, **(details or {})})
        self.exit_code = exit_code


class ManifestError(InvalidArgument):
    """A manifest failed validation. `causes` holds (field path, message) pairs in order."""

    def __init__(self, source: str, causes: list[tuple[str, str]]) -> None:
        lines = [f"{path}: {msg}" if path else msg for path, msg in causes]
        where = f"{source}: " if source else ""
        super().__init__(
            where + "; ".join(lines),
            {"source": source, "causes": [{"field": p, "message": m} for p, m in causes]},
        )
        self.source = source
        self.causes = causes


CODES: dict[str, type[SupervisorError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        Conflict,
        PermissionDenied,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        Internal,
    )
}


def from_wire(code: str, message: str, details: dict[str, Any] | None = None) -> SupervisorError:
    """Rebuild the typed error a server sent (unknown codes become Internal)."""
    return CODES.get(code, Internal)(message, details)


def process_limit_hint(e: OSError, pids_limit: int | None) -> str:
    """ " (why)" for a clone that failed with EAGAIN: the pod's pids.max when it has one,
    else a system-wide limit (fork(2), clone(2) ERRORS)."""
    if e.errno != errno.EAGAIN or getattr(e, "step", None) != "clone":
        return ""
    if pids_limit is not None:
        return f" (the pod is at its pids limit of {pids_limit}: supd --pod-pids-limit)"
    return " (a process limit is reached: RLIMIT_NPROC, kernel.pid_max or kernel.threads-max)"
