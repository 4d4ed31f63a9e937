"""Helpers and fixtures for the tests of the native core (supervisor._native).

Everything waits on file descriptors (pidfds, pipes, sockets) with a timeout: no sleeps.
Test modules use the fixtures with `from native_helpers import infra, no_leaks  # noqa`.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import require_root

from supervisor import _native

TIMEOUT = 5.0
POD_FLAGS = _native.CLONE_NEWNET | _native.CLONE_NEWIPC | _native.CLONE_NEWUTS
CONTAINER_FLAGS = _native.CLONE_NEWNS | _native.CLONE_NEWPID
ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def wait_readable(fd: int, timeout: float = TIMEOUT) -> None:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if not poller.poll(timeout * 1000):
        raise AssertionError(f"fd {fd} not readable within {timeout}s")


def wait_exit(pidfd: int, timeout: float = TIMEOUT, close: bool = True) -> int:
    """The wait status of the process behind `pidfd` (a pidfd polls readable on exit)."""
    try:
        wait_readable(pidfd, timeout)
        status = _native.waitid_pidfd(pidfd)
        assert status is not None
        return status
    finally:
        if close:
            os.close(pidfd)


def kill_and_reap(pidfd: int) -> int:
    with contextlib.suppress(ProcessLookupError):
        _native.pidfd_send_signal(pidfd, signal.SIGKILL)
    return wait_exit(pidfd)


def read_all(fd: int, timeout: float = TIMEOUT) -> bytes:
    """Read a pipe to EOF, then close it."""
    chunks = []
    try:
        while True:
            wait_readable(fd, timeout)
            data = os.read(fd, 65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)
    finally:
        os.close(fd)


def run(argv: list[str], **kwargs: Any) -> tuple[int, str]:
    """spawn() with stdout (and stderr unless given) on a pipe: (wait status, output)."""
    r, w = os.pipe()
    kwargs.setdefault("stderr", w)
    try:
        _pid, pidfd = _native.spawn(argv, stdout=w, **kwargs)
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    out = read_all(r)
    return wait_exit(pidfd), out.decode()


def proc_field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    raise KeyError(name)


def my_zombies() -> list[int]:
    """Children of this process (any thread) that exited and were not reaped."""
    found = []
    for tid in os.listdir("/proc/self/task"):
        try:
            children = Path(f"/proc/self/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                stat = Path(f"/proc/{child}/stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                found.append(int(child))
    return found


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the test: no zombie children and no fd opened by the test left open. Tests
    marked `root` (namespaces, ids) go through require_root() first."""
    if request.node.get_closest_marker("root"):
        require_root()
    before = open_fds()
    yield
    leaked = open_fds() - before
    assert not my_zombies(), f"zombie children left: {my_zombies()}"
    assert not leaked, f"fds leaked: {sorted((fd, _target(fd)) for fd in leaked)}"


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


@dataclass
class Infra:
    """One infra process on a real socketpair, seen from supd's side."""

    pid: int
    pidfd: int
    sock: socket.socket
    tmp: Path
    listen: socket.socket | None = None
    reports: list[tuple[Any, ...]] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)  # of each report, 0 for HELLO
    fds: list[int] = field(default_factory=list)

    def start(
        self,
        cid: int,
        argv: list[str],
        *,
        log: Path | None = None,
        env: list[str] | None = None,
        cwd: str | None = "/",
        clone_flags: int = CONTAINER_FLAGS,
        extra_fds: tuple[int, ...] = (),
        **kwargs: Any,
    ) -> Path:
        log = log or self.tmp / f"c{cid}.log"
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            frame = _native.encode_start(
                cid, argv, ENV if env is None else env, cwd, clone_flags=clone_flags, **kwargs
            )
            socket.send_fds(self.sock, [frame], [fd, *extra_fds])
        finally:
            os.close(fd)
        return log

    def send(self, frame: bytes) -> None:
        self.sock.send(frame)

    def report(self, timeout: float = TIMEOUT) -> tuple[Any, ...]:
        """The next report; a pidfd that comes with it (HELLO's) lands in `self.fds`."""
        wait_readable(self.sock.fileno(), timeout)
        frame, fds, _flags, _addr = socket.recv_fds(self.sock, 65536, 4)
        assert frame, "infra closed the connection"
        self.fds += fds
        self.seqs.append(_native.report_seq(frame))
        report = _native.decode_report(frame)
        self.reports.append(report)
        return report

    def expect(self, kind: str, cid: int | None = None) -> tuple[Any, ...]:
        report = self.report()
        assert report[0] == kind and (cid is None or report[1] == cid), report
        return report

    def reconnect(self, path: str) -> None:
        self.sock.close()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        self.sock.connect(path)

    def shutdown(self) -> int:
        """SHUTDOWN, then the infra's own wait status (it must exit 0). An infra with a
        listening socket exits once every report is acknowledged: they are, as they come."""
        self.send(_native.encode_shutdown())
        pidfd, self.pidfd = self.pidfd, -1
        if self.listen is not None:
            self.send(_native.encode_ack(max(self.seqs, default=0)))
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.register(self.sock.fileno(), select.POLLIN)
            while not any(fd == pidfd for fd, _ in poller.poll(TIMEOUT * 1000)):
                frame = self.sock.recv(65536)
                if not frame:
                    break  # it has exited; its pidfd says so next
                self.reports.append(_native.decode_report(frame))
                with contextlib.suppress(OSError):  # it may have exited meanwhile
                    self.sock.send(_native.encode_ack(_native.report_seq(frame)))
        return wait_exit(pidfd)

    def close(self) -> None:
        if self.pidfd >= 0:
            pidfd, self.pidfd = self.pidfd, -1
            with contextlib.suppress(ChildProcessError):  # reaped by the test already
                kill_and_reap(pidfd)
        self.sock.close()
        if self.listen is not None:
            self.listen.close()
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


@pytest.fixture
def infra(tmp_path: Path, no_leaks: None) -> Iterator[Any]:
    """A factory of Infra processes, all killed and reaped after the test."""
    require_root()
    made: list[Infra] = []

    def make(
        clone_flags: int = POD_FLAGS,
        hostname: str = "pod",
        listen_path: str | None = None,
        pdeathsig: int = 0,
        exit_signal: int = signal.SIGCHLD,
        sysctls: tuple[tuple[str, str], ...] = (),
    ) -> Infra:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener = None
        if listen_path is not None:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            listener.bind(listen_path)
            listener.listen(4)
        try:
            pid, pidfd = _native.spawn_infra(
                theirs.fileno(),
                clone_flags=clone_flags,
                hostname=hostname,
                listen=listener.fileno() if listener else -1,
                pdeathsig=pdeathsig,
                exit_signal=exit_signal,
                sysctls=sysctls,
            )
        except BaseException:
            ours.close()
            if listener:
                listener.close()
            raise
        finally:
            theirs.close()
        made.append(Infra(pid, pidfd, ours, tmp_path, listener))
        return made[-1]

    yield make
    for item in made:
        item.close()


def cri_lines(path: Path) -> list[tuple[str, str, str, str]]:
    """(timestamp, stream, tag, message) for each line of a CRI log file."""
    out = []
    for line in path.read_text().splitlines():
        ts, stream, tag, message = line.split(" ", 3)
        out.append((ts, stream, tag, message))
    return out
