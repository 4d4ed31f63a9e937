"""Live restore: what the state dir keeps of a running pod, and how the next supd finds the
pod's infra and takes it over without restarting a container.

Three things make it exact:
- Each infra listens on `POD_DIR/infra.sock` (bound by supd before the infra is made, so it
  is there for as long as the infra lives). A supd that connects gets HELLO: the live
  containers, a pidfd of the infra and the number of its last report, then every report it
  has not had acknowledged (frames.pxd).
- supd writes `POD_DIR/status.json` (the pod's status, instance counter and the seq of the
  last report it applied) after each change and only then acknowledges the reports; the
  next supd skips the replayed reports it already applied and applies the others.
- A container instance id (the infra's cid) carries the container's index in the pod, so a
  report about an instance that the status never mentioned (supd died between sending its
  START and writing) still names its container.

The record and its decisions are pure; the file and socket helpers do plain I/O. Imports
only leaves (the runtime does the native part: HELLO, ACK).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from .lifecycle import Condition, ContainerStatus, PodStatus, Terminated
from .states import ContainerState, Phase

RECORD = "status.json"
SOCKET = "infra.sock"
RECORD_VERSION = 1
INDEX_BITS = 8  # cid = instance number << INDEX_BITS | the container's index in the pod
MAX_CONTAINERS = 1 << INDEX_BITS
MAX_INSTANCE = (1 << (32 - INDEX_BITS)) - 1


def cid_of(instance: int, index: int) -> int:
    return instance << INDEX_BITS | index


def index_of(cid: int) -> int:
    return cid & (MAX_CONTAINERS - 1)


def instance_of(cid: int) -> int:
    return cid >> INDEX_BITS


@dataclass
class Record:
    """What a supd needs to go on with a pod where the previous one stopped."""

    status: PodStatus
    next_instance: int = 1
    seq: int = 0  # the last report of `infra` applied to `status`
    infra: tuple[int, int] | None = None  # (pid, start time) of the infra `seq` counts in
    fs_ready: bool = False
    sandbox_backoff: float = 0.0
    deleted_at: float | None = None
    grace: int | None = None


def encode_record(record: Record) -> bytes:
    doc = _fields_of(record)
    doc["version"] = RECORD_VERSION
    return _ENCODER.encode(doc).encode()


_FIELDS: dict[type, tuple[str, ...]] = {}


def _fields_of(value: Any) -> dict[str, Any]:
    """A dataclass's fields, one level down: json's C encoder does the lists, dicts, str
    enums and numbers itself and calls this for each dataclass inside (dataclasses.asdict,
    and a walk of our own in Python, took four and two times as long)."""
    names = _FIELDS.get(type(value))
    if names is None:
        if not is_dataclass(value):
            raise TypeError(f"a record holds a {type(value).__name__}")
        names = _FIELDS[type(value)] = tuple(f.name for f in fields(value))
    return {name: getattr(value, name) for name in names}


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_fields_of)


def decode_record(data: bytes) -> Record:
    """ValueError (or KeyError/TypeError, as ValueError) when it is not a record we wrote."""
    try:
        doc = json.loads(data)
        if doc.pop("version") != RECORD_VERSION:
            raise ValueError("unknown record version")
        status = _status(doc.pop("status"))
        infra = doc.pop("infra")
        return Record(status=status, infra=tuple(infra) if infra else None, **doc)
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"malformed record: {e!r}") from None


def _terminated(doc: dict[str, Any] | None) -> Terminated | None:
    return None if doc is None else Terminated(**doc)


def _container(doc: dict[str, Any]) -> ContainerStatus:
    doc["state"] = ContainerState(doc["state"])
    doc["terminated"] = _terminated(doc["terminated"])
    doc["last_state"] = _terminated(doc["last_state"])
    return ContainerStatus(**doc)


def _status(doc: dict[str, Any]) -> PodStatus:
    known = {f.name for f in fields(PodStatus)}
    if set(doc) - known:
        raise ValueError(f"unknown status fields {sorted(set(doc) - known)}")
    doc["init_containers"] = [_container(c) for c in doc["init_containers"]]
    doc["containers"] = [_container(c) for c in doc["containers"]]
    doc["phase"] = Phase(doc["phase"])
    doc["conditions"] = {k: Condition(**v) for k, v in doc["conditions"].items()}
    return PodStatus(**doc)


def read_record(directory: Path) -> Record | None:
    """The pod's record, None when there is none (a pod accepted by a supd that died before
    writing it) or it cannot be read (then the pod starts from its manifest alone)."""
    try:
        return decode_record((directory / RECORD).read_bytes())
    except (OSError, ValueError):
        return None


def matches(record: Record, spec_names: list[str]) -> bool:
    """The record is of this pod's containers (same names, same order)."""
    return [c.name for c in record.status.all()] == spec_names


# -- the listening socket ---------------------------------------------------------------------


def _address(directory_fd: int, name: str) -> str:
    """A short path to `name` in an open directory: sun_path holds 108 bytes and a state
    dir's pod directories can be longer."""
    return f"/proc/self/fd/{directory_fd}/{name}"


def bind_listener(directory: Path, name: str = SOCKET) -> socket.socket:
    """A listening SOCK_SEQPACKET socket at directory/name (replacing a stale one), for an
    infra to serve. It listens from here on, so a supd that connects while the infra is
    still being made waits in the backlog rather than being refused."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    dfd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dfd)
        sock.bind(_address(dfd, name))
        sock.listen(8)
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(dfd)
    return sock


def connect(directory: Path, name: str = SOCKET) -> socket.socket | None:
    """Connect to the infra listening at directory/name; None when nobody listens there
    (no file, or a file whose infra is gone: ECONNREFUSED)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        dfd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        sock.close()
        return None
    try:
        sock.connect(_address(dfd, name))
    except OSError:
        sock.close()
        return None
    finally:
        os.close(dfd)
    sock.setblocking(False)
    return sock


@dataclass
class Link:
    """A connection to a running infra, just after its HELLO."""

    sock: socket.socket
    pidfd: int
    pid: int
    live: dict[int, tuple[int, int]]  # cid -> (pid, started_ns) of its running containers
    dropped: int  # reports it lost to a full ring
    last_seq: int  # the reports it has not had acknowledged follow, up to this one


def find_logs(directory: Path, names: list[str]) -> dict[str, list[Path]]:
    """Each container's log files (CONTAINER/N.log), oldest instance first."""
    logs: dict[str, list[Path]] = {}
    for name in names:
        found = []
        for path in (directory / name).glob("*.log"):
            if path.stem.isdigit():
                found.append((int(path.stem), path))
        if found:
            logs[name] = [path for _n, path in sorted(found)]
    return logs


def pidfd_pid(pidfd: int) -> int:
    """The pid a pidfd refers to, in our PID namespace (-1: the process is gone)."""
    try:
        with open(f"/proc/self/fdinfo/{pidfd}") as f:
            for line in f:
                if line.startswith("Pid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return -1
