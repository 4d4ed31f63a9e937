"""Shared fixtures: real supd processes on temporary sockets and state dirs.

Tests that need root or namespaces call `require_root()`: they skip on an unprivileged
machine, but when CI is set they fail instead, so that no truth is skipped in CI.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent
SUPD = str(BIN / "supd")
SUPCTL = str(BIN / "supctl")


def read_until(fd: int, deadline: float) -> Iterator[bytes]:
    """Chunks from `fd` as they come, until EOF or the (monotonic) deadline."""
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        yield chunk


def _json_stream(fd: int, deadline: float) -> Iterator[Any]:
    decoder = json.JSONDecoder()
    buf = ""
    for chunk in read_until(fd, deadline):
        buf += chunk.decode()
        while True:
            buf = buf.lstrip()
            try:
                obj, end = decoder.raw_decode(buf)
            except ValueError:
                break
            buf = buf[end:]
            yield obj


def require_root() -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        pytest.fail("this test needs root and namespaces, and CI is set: not skipping")
    pytest.skip("needs root and namespaces")


def proc_children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def zombies_of(pid: int) -> list[int]:
    """Children of `pid` that have exited and not been reaped."""
    found = []
    for child in proc_children(pid):
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            found.append(child)
    return found


def start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat: when the process started, in clock ticks (proc(5))."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except OSError:
        return -1


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def until_dir_changes(directory: Path, done: Callable[[], bool], timeout: float = 10) -> bool:
    """Wait until `done()`, re-checking it at each entry created, removed or renamed in
    `directory` (inotify), or until `timeout`. Returns done()."""
    from supervisor import inotify

    watch = inotify.Inotify()
    try:
        watch.add_watch(directory, IN_ENTRY_EVENTS)
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([watch.fd], [], [], left)[0]:
                return done()
            watch.read()
        return True
    finally:
        watch.close()


IN_ENTRY_EVENTS = 0x100 | 0x200 | 0x40 | 0x80  # IN_CREATE | IN_DELETE | IN_MOVED_FROM/TO


def until_gone(pids: Iterable[int], timeout: float = 10) -> bool:
    """Wait for every process in `pids` to exit (their pidfds poll readable), or until
    `timeout`. Returns whether they all did."""
    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except ProcessLookupError:
            continue
    try:
        deadline = time.monotonic() + timeout
        waiting = list(fds)
        while waiting:
            left = deadline - time.monotonic()
            ready = select.select(waiting, [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                return False
            waiting = [fd for fd in waiting if fd not in ready]
        return True
    finally:
        for fd in fds:
            os.close(fd)


def remove_cgroup_parent(parent: str) -> None:
    """Remove a test supd's (empty) cgroup parent from every hierarchy it used."""
    from supervisor import cgroups

    drv = cgroups.select("auto", parent)
    dirs = drv.parents() if isinstance(drv, cgroups.CgroupsV1) else []
    if isinstance(drv, cgroups.CgroupsV2):
        dirs = [drv.parent]
    for path in dirs:
        if path.is_dir():
            for sub in sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True):
                sub.rmdir()
            path.rmdir()


@dataclass
class Supd:
    """One real supd daemon, and a supctl that talks to it."""

    socket: Path
    state_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    # Without --run-dir, STATE/run: a tmpfs supd mounts (unmount_test_mounts removes it).
    run_dir: Path = field(init=False)
    infra_pids: set[tuple[int, int]] = field(default_factory=set)  # (pid, start time)
    # Its own cgroup parent (under the test's own cgroup): a supd removes the pod cgroups
    # of pods it does not know, so two must never share one.
    cgroup_parent: str = field(default_factory=lambda: "supd-test-" + secrets.token_hex(4))

    def __post_init__(self) -> None:
        self.run_dir = self.state_dir / "run"

    def start(self, *extra: str, prefix: tuple[str, ...] = (), ready: bool = True) -> None:
        """Start supd (`prefix`: a command that runs it, such as setpriv) and wait until it
        serves (`ready`)."""
        r, w = os.pipe()
        self.proc = subprocess.Popen(
            [
                *prefix,
                SUPD,
                "--socket",
                str(self.socket),
                "--state-dir",
                str(self.state_dir),
                "--backoff-initial",
                "0.2",
                "--backoff-max",
                "1",
                "--notify-fd",
                str(w),
                "--cgroup-parent",
                self.cgroup_parent,
                *extra,
            ],
            pass_fds=(w,),
            stderr=open(self.state_dir.parent / "supd.log", "ab"),  # noqa: SIM115
        )
        os.close(w)
        if not ready:
            os.close(r)
            return
        with os.fdopen(r, "rb") as notify:
            line = notify.readline()  # written once the socket listens; EOF if supd died
        if not line:
            code = self.proc.wait()
            log = (self.state_dir.parent / "supd.log").read_text()
            raise RuntimeError(f"supd exited with {code} before it was ready:\n{log}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self.proc = None
        return code

    def ctl(
        self, *args: str, check: bool = True, input: bytes | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [SUPCTL, "--socket", str(self.socket), *args],
            input=input.decode() if input is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"supctl {' '.join(args)} exited {res.returncode}:\n{res.stdout}{res.stderr}"
            )
        return res

    def apply(self, manifest: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.ctl("apply", "-f", "-", *args, input=manifest.encode())

    def pod(self, name: str, namespace: str = "default") -> dict[str, Any]:
        obj: dict[str, Any] = json.loads(
            self.ctl("get", "pod", name, "-n", namespace, "-o", "json").stdout
        )
        return obj

    def wait(self, name: str, condition: str = "condition=Ready", timeout: str = "30s") -> None:
        self.ctl("wait", f"pod/{name}", f"--for={condition}", f"--timeout={timeout}")

    def watch_until(self, name: str, predicate: Any, timeout: float = 30) -> dict[str, Any]:
        """Follow `get -w -o json` until the pod satisfies `predicate`: no polling, and a
        real deadline even when no change arrives."""
        proc = subprocess.Popen(
            [SUPCTL, "--socket", str(self.socket), "get", "pod", name, "-w", "-o", "json"],
            stdout=subprocess.PIPE,
        )
        last: Any = None
        try:
            assert proc.stdout is not None
            for obj in _json_stream(proc.stdout.fileno(), time.monotonic() + timeout):
                last = obj
                if predicate(obj):
                    return obj
            raise AssertionError(
                f"pod {name} never reached the expected state; last seen:\n"
                + json.dumps(last and last.get("status"), indent=1)
            )
        finally:
            proc.kill()
            proc.wait()

    def follow_logs(self, name: str, *args: str) -> subprocess.Popen[str]:
        """`supctl logs -f`, running: read its stdout to wait for output to appear."""
        return subprocess.Popen(
            [SUPCTL, "--socket", str(self.socket), "logs", name, "-f", *args],
            stdout=subprocess.PIPE,
            text=True,
        )

    def infra_of(self, name: str, namespace: str = "default") -> int:
        for d in (self.run_dir / "pods").iterdir():
            if d.name.startswith(f"{namespace}_{name}_"):
                pid, start = (int(x) for x in (d / "infra").read_text().split())
                self.infra_pids.add((pid, start))
                return pid
        raise AssertionError(f"no infra recorded for {namespace}/{name}")


@pytest.fixture(autouse=True)
def unmount_test_mounts(tmp_path: Path) -> Iterator[None]:
    """After each test (and its supds' teardown), detach what is still mounted in its
    temporary directory: the run dir tmpfs of every supd it started."""
    yield
    if os.geteuid() == 0:
        from supervisor.runtime import unmount_under

        unmount_under(tmp_path)


@pytest.fixture
def supd(tmp_path: Path) -> Iterator[Supd]:
    require_root()
    d = Supd(socket=tmp_path / "supd.sock", state_dir=tmp_path / "state")
    d.start()
    try:
        yield d
    finally:
        finish_supd(d, tmp_path)


def finish_supd(d: Supd, tmp_path: Path) -> None:
    """Delete every pod a test supd still has, stop it, remove its cgroup parent, kill any
    infra it left, and fail on a traceback in its log."""
    if d.proc is not None:
        try:
            pods = json.loads(
                d.ctl("get", "pods", "-A", "-o", "json", check=False).stdout or '{"items": []}'
            )["items"]
            for p in pods:
                meta = p["metadata"]
                d.ctl(
                    "delete",
                    "pod",
                    meta["name"],
                    "-n",
                    meta["namespace"],
                    "--grace-period",
                    "0",
                    check=False,
                )
        finally:
            d.stop()
    for pid, start in d.infra_pids:
        # Only the very process recorded: a pid number alone may have been reused.
        if alive(pid) and start_time(pid) == start:
            pidfd = os.pidfd_open(pid)
            try:
                os.kill(pid, signal.SIGKILL)
                select.select([pidfd], [], [], 10)  # gone from its cgroup once it exits
            finally:
                os.close(pidfd)
    remove_cgroup_parent(d.cgroup_parent)
    log = tmp_path / "supd.log"
    if log.exists():
        text = log.read_text()
        assert "Traceback" not in text, text
