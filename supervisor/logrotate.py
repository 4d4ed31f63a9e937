"""Container log rotation by size, as kubelet's container log manager does it
(pkg/kubelet/logs/container_log_manager.go): the current file `N.log` is renamed to
`N.log.<timestamp>`, a new `N.log` takes its place, and at most max-files files are kept,
the current one included; the oldest go first.

supd decides and infra does the writing: infra counts the bytes of each log and reports
LOG_FULL past the limit; the runtime calls rotate() and hands the new file to infra with a
REOPEN frame. Until infra has it, infra keeps appending to the renamed file, so no record is
lost, and none is split between two files. Unlike kubelet, rotation is driven by that report
(kubelet looks every 10 s), older files are not gzipped, and the timestamp has nanoseconds
so that a fast writer's rotations never share a name.

Imports only the leaves `logs` (the names) and `quantity`.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass
from pathlib import Path

from .logs import format_rotated_suffix, parse_rotated_suffix, rotated_logs
from .quantity import memory_bytes

DEFAULT_MAX_SIZE = "10Mi"  # kubelet's containerLogMaxSize
DEFAULT_MAX_FILES = 5  # kubelet's containerLogMaxFiles
MIN_MAX_SIZE = 1024
LOG_MODE = 0o600


@dataclass(frozen=True)
class LogRotation:
    """Rotate a container's log once it holds max_size bytes (0: never), keeping max_files
    files (the current one included)."""

    max_size: int = 10 * 1024 * 1024
    max_files: int = DEFAULT_MAX_FILES


def parse_max_size(text: str) -> int:
    """--container-log-max-size: a quantity of bytes ("10Mi", "64Ki", "1G"); 0 turns
    rotation off. ValueError with the reason."""
    size = memory_bytes(text)
    if size is None:
        raise ValueError(f"{text!r} is not a quantity of bytes (like 10Mi or 500Ki)")
    if size != 0 and size < MIN_MAX_SIZE:
        raise ValueError(f"{text!r} is below the minimum of 1Ki (0 turns rotation off)")
    if size < 0 or size >= 2**63:
        raise ValueError(f"{text!r} is out of range")
    return size


def parse_max_files(text: str) -> int:
    """--container-log-max-files: at least 2, as kubelet validates containerLogMaxFiles
    (the current file and the one being rotated)."""
    try:
        count = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if count < 2:
        raise ValueError(f"{count} must be at least 2 (the current file and one rotated)")
    return count


def rotate(path: Path, max_files: int, now_ns: int) -> int:
    """Rotate `path` and return an O_WRONLY|O_APPEND fd of the new, empty file at `path`.
    In order: the new file is made (unnamed, O_TMPFILE, where the filesystem has it), the
    oldest rotated files go so that the renamed one and the new one fit in max_files,
    `path` becomes `path.<timestamp>` and the new file is linked at `path`. Raises OSError,
    having changed nothing unless the deletions were done (a failed link renames back)."""
    fd, temp = _new_file(path)
    try:
        rotated = rotated_logs(path)
        for old in rotated[: max(0, len(rotated) - (max_files - 2))]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
        newest = parse_rotated_suffix(rotated[-1].name[len(path.name) :]) if rotated else None
        # Names sort in rotation order even when two rotations fall in one nanosecond or the
        # clock steps back: the readers rely on it.
        stamp = now_ns if newest is None or now_ns > newest else newest + 1
        target = path.with_name(path.name + format_rotated_suffix(stamp))
        os.rename(path, target)
        try:
            if temp is None:
                _link_fd(fd, path)
            else:
                os.rename(temp, path)
        except OSError:
            os.rename(target, path)
            raise
    except BaseException:
        os.close(fd)
        if temp is not None:
            with contextlib.suppress(OSError):
                temp.unlink()
        raise
    return fd


def _link_fd(fd: int, path: Path) -> None:
    """linkat(2) of an O_TMPFILE file through /proc/self/fd with AT_SYMLINK_FOLLOW (which
    needs no CAP_DAC_READ_SEARCH, unlike AT_EMPTY_PATH). A directory fd makes os.link call
    linkat rather than link(2), which would link the /proc symlink itself."""
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(f"/proc/self/fd/{fd}", path.name, dst_dir_fd=dir_fd, follow_symlinks=True)
    finally:
        os.close(dir_fd)


def _new_file(path: Path) -> tuple[int, Path | None]:
    """An unnamed file in path's directory (linked into place by rotate), or, where
    O_TMPFILE is not supported, `path.tmp` (renamed into place)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
    try:
        return os.open(path.parent, flags | os.O_TMPFILE, LOG_MODE), None
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
    temp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    return os.open(temp, flags | os.O_CREAT | os.O_EXCL, LOG_MODE), temp
