"""Exhaustion and faults (issue 8): a pids limit hit, supd out of file descriptors, a full
disk under the state dir and the logs, an infra killed with SIGKILL, a fork bomb, thousands
of short-lived children, a container that floods its log.

Each test runs a real supd with a second, healthy pod (the bystander) and ends by proving
that supd still serves it and everyone else: a fresh `supctl get` of the bystander shows the
very same container process running, never restarted, and a fresh `supctl apply` starts a
new pod. The affected pod's status and events must say what happened, in Kubernetes's words
where it has them (StartError, Error, SandboxChanged), and the kernel's view (/proc, the
cgroup's pids counters) must agree.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import resource
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    SUPCTL,
    Supd,
    alive,
    finish_supd,
    proc_children,
    require_root,
    until_dir_changes,
    until_gone,
)
from conftest import (
    _json_stream as json_stream,
)

PIDS_LIMIT = 24

BYSTANDER = """\
apiVersion: v1
kind: Pod
metadata: {name: bystander}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    command: [sleep, "100000"]
"""


def pod(name: str, command: str, *, restart: str = "Always", extra: str = "") -> str:
    return (
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n"
        f"  restartPolicy: {restart}\n  terminationGracePeriodSeconds: 1\n{extra}"
        f"  containers:\n  - name: main\n    command: [sh, -c, {json.dumps(command)}]\n"
    )


@pytest.fixture
def make_supd(tmp_path: Path) -> Iterator[Callable[..., Supd]]:
    """Start a supd with extra flags, its state dir on a tmpfs of `tmpfs` bytes if given."""
    require_root()
    made: list[Supd] = []
    mounted: list[Path] = []

    def make(*flags: str, tmpfs: int | None = None) -> Supd:
        d = Supd(socket=tmp_path / "supd.sock", state_dir=tmp_path / "state")
        if tmpfs is not None:
            d.state_dir.mkdir()
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={tmpfs},mode=0700", "tmpfs", d.state_dir],
                check=True,
            )
            mounted.append(d.state_dir)
        d.start(*flags)
        made.append(d)
        return d

    try:
        yield make
    finally:
        try:
            for d in made:
                with contextlib.suppress(OSError):
                    (d.state_dir / "filler").unlink()
                finish_supd(d, tmp_path)
        finally:
            for path in mounted:
                subprocess.run(["umount", "-l", path], check=False)


class Bystander:
    """The healthy pod: its container's pid now, to prove it was never touched."""

    def __init__(self, d: Supd) -> None:
        self.d = d
        d.apply(BYSTANDER)
        d.wait("bystander")
        self.infra = d.infra_of("bystander")
        (self.pid,) = proc_children(self.infra)
        self.checked = 0

    def still_served(self) -> None:
        """A fresh connection reads the bystander unchanged, and a fresh apply starts a
        new pod (deleted again, so that each call proves it anew)."""
        st = self.d.pod("bystander")["status"]
        (cs,) = st["containerStatuses"]
        assert st["phase"] == "Running" and cs["ready"] and cs["restartCount"] == 0, st
        assert alive(self.pid) and proc_children(self.infra) == [self.pid]
        self.checked += 1
        name = f"fresh{self.checked}"
        self.d.apply(pod(name, "exec sleep 100000"))
        self.d.wait(name)
        self.d.ctl("delete", "pod", name, "--grace-period", "0")


def events_of(d: Supd, name: str) -> list[dict[str, str]]:
    """The pod's events from `supctl events` (type, reason, message)."""
    row = re.compile(rf"\s(Normal|Warning)\s+(\S+)\s+pod/{name}\s+(.*)$")
    found = []
    for line in d.ctl("events").stdout.splitlines():
        m = row.search(line)
        if m:
            found.append({"type": m[1], "reason": m[2], "message": m[3]})
    return found


def cgroup_dir(pid: int, controller: str) -> Path:
    """The cgroup directory of `pid` holding `controller` (v1), or its v2 directory."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _hid, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup", controller, path.lstrip("/"))
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return Path("/sys/fs/cgroup", line[3:].lstrip("/"))
    raise AssertionError(f"no {controller} cgroup for {pid}")


def processes_of(uid: str) -> list[int]:
    """Every process on the machine in one of the pod's cgroups."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"pod{uid}" in (entry / "cgroup").read_text():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def zombie_children(pid: int) -> list[int]:
    """Children of `pid` in state Z: scanned from every process's stat (ppid, state)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def cpu_ticks(pid: int) -> int:
    """utime + stime of `pid` in clock ticks (proc(5) fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wait_on_pidfd(pid: int, seconds: float) -> bool:
    """Wait up to `seconds` for `pid` to exit (its pidfd polls readable); True if it did."""
    fd = os.pidfd_open(pid)
    try:
        return bool(select.select([fd], [], [], seconds)[0])
    finally:
        os.close(fd)


def uid_of(d: Supd, name: str) -> str:
    uid: str = d.pod(name)["metadata"]["uid"]
    return uid


def container_status(obj: dict[str, Any], name: str = "main") -> dict[str, Any]:
    statuses = obj["status"].get("containerStatuses", []) + obj["status"].get(
        "initContainerStatuses", []
    )
    return next(s for s in statuses if s["name"] == name)


# -- pids -------------------------------------------------------------------------------

FORK_UNTIL_EAGAIN = (
    "import os, socket, sys, time\n"
    "n = 0\n"
    "while True:\n"
    "    try:\n"
    "        pid = os.fork()\n"
    "    except BlockingIOError:\n"
    "        break\n"
    "    if pid == 0:\n"
    "        time.sleep(100000)\n"
    "        os._exit(0)\n"
    "    n += 1\n"
    "print('fork failed with EAGAIN after', n, 'children', flush=True)\n"
    "s = socket.socket()\n"
    "s.bind(('127.0.0.1', 7000))\n"
    "s.listen()\n"
    "time.sleep(100000)\n"
)


def test_pids_limit_hit_by_a_container_and_by_a_container_start(
    make_supd: Callable[..., Supd],
) -> None:
    """A sidecar forks until pids.max refuses (EAGAIN) and then says it is started (a
    startup probe on a port it opens afterwards); the app container's start then finds the
    pod at its limit: StartError naming the pids limit, and an exec gets the same reason.
    The sidecar itself keeps running: hitting the limit is not a crash."""
    d = make_supd("--pod-pids-limit", str(PIDS_LIMIT))
    bystander = Bystander(d)
    d.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: full}\nspec:\n"
        "  initContainers:\n  - name: hog\n    restartPolicy: Always\n"
        f"    command: [python3, -c, {json.dumps(FORK_UNTIL_EAGAIN)}]\n"
        "    startupProbe: {tcpSocket: {port: 7000}, periodSeconds: 1}\n"
        "  containers:\n  - name: main\n    command: [sleep, '100000']\n"
    )

    def start_failed(obj: dict[str, Any]) -> bool:
        cs = container_status(obj)
        last = cs.get("lastState", {}).get("terminated") or cs["state"].get("terminated")
        return bool(last and last.get("reason") == "StartError")

    obj = d.watch_until("full", start_failed)
    cs = container_status(obj)
    last = cs.get("lastState", {}).get("terminated") or cs["state"]["terminated"]
    assert "clone: Resource temporarily unavailable" in last["message"], last
    assert f"the pod is at its pids limit of {PIDS_LIMIT}" in last["message"], last
    failed = [e for e in events_of(d, "full") if e["reason"] == "Failed"]
    assert failed and f"pids limit of {PIDS_LIMIT}" in failed[-1]["message"]

    # The kernel's view: the pod's cgroup is at pids.max and refused forks.
    infra = d.infra_of("full")
    pids = cgroup_dir(infra, "pids")
    assert int((pids / "pids.max").read_text()) == PIDS_LIMIT
    assert int((pids / "pids.current").read_text()) == PIDS_LIMIT
    hog = container_status(obj, "hog")
    assert hog["state"].get("running") and hog["restartCount"] == 0, hog
    assert "fork failed with EAGAIN" in d.ctl("logs", "full", "-c", "hog").stdout

    res = d.ctl("exec", "full", "-c", "hog", "--", "true", check=False)
    assert res.returncode != 0
    assert f"the pod is at its pids limit of {PIDS_LIMIT}" in res.stderr, res.stderr
    bystander.still_served()

    uid = uid_of(d, "full")
    d.ctl("delete", "pod", "full", "--grace-period", "0")
    assert processes_of(uid) == []


def test_fork_bomb_is_bounded_and_deleted_to_the_last_process(
    make_supd: Callable[..., Supd],
) -> None:
    """Every process forks again and again; pids.max holds it. supd serves everyone
    meanwhile, and delete leaves no process of the pod anywhere."""
    d = make_supd("--pod-pids-limit", str(PIDS_LIMIT))
    bystander = Bystander(d)
    bomb = (
        "import os, time\n"
        "print('bomb', flush=True)\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        time.sleep(0.05)\n"
    )
    d.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bomb}\nspec:\n"
        "  terminationGracePeriodSeconds: 1\n"
        f"  containers:\n  - name: main\n    command: [python3, -c, {json.dumps(bomb)}]\n"
    )
    d.wait("bomb")
    infra = d.infra_of("bomb")
    pids = cgroup_dir(infra, "pids")
    events = pids / "pids.events"  # "max N": forks refused for the limit (pids.rst)
    assert until_file_says(events, lambda text: int(text.split()[1]) > 0)
    assert int((pids / "pids.current").read_text()) <= PIDS_LIMIT
    bystander.still_served()
    uid = uid_of(d, "bomb")
    d.ctl("delete", "pod", "bomb", "--grace-period", "0")
    assert not alive(infra)
    assert processes_of(uid) == []
    assert zombie_children(infra) == []
    bystander.still_served()


def until_file_says(path: Path, done: Callable[[str], bool], timeout: float = 20) -> bool:
    """Wait until `done(path's text)`, re-reading it when inotify says it was modified
    (cgroup files such as pids.events notify on change)."""
    from supervisor import inotify

    watch = inotify.Inotify()
    try:
        watch.add_watch(path, 0x2)  # IN_MODIFY
        deadline = time.monotonic() + timeout
        while not done(path.read_text()):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([watch.fd], [], [], left)[0]:
                return done(path.read_text())
            watch.read()
        return True
    finally:
        watch.close()


def test_thousands_of_short_lived_children_are_reaped(make_supd: Callable[..., Supd]) -> None:
    """Orphans in a shared PID namespace go to infra (its PID 1), which reaps them: after
    a round trip through infra no zombie is left, and delete leaves no process."""
    d = make_supd()
    bystander = Bystander(d)
    d.apply(
        pod(
            "churn",
            "i=0; while [ $i -lt 1500 ]; do (true &); i=$((i+1)); done; echo churned; "
            "exec sleep 100000",
            extra="  shareProcessNamespace: true\n",
        )
    )
    logs = d.follow_logs("churn")
    try:
        assert logs.stdout is not None
        assert logs.stdout.readline() == "churned\n"
    finally:
        logs.kill()
        logs.wait()
    infra = d.infra_of("churn")
    # An exec is answered by infra's loop, which reaps on every wakeup: a barrier.
    assert d.ctl("exec", "churn", "--", "true").returncode == 0
    assert zombie_children(infra) == []
    (main,) = proc_children(infra)
    assert zombie_children(main) == []
    bystander.still_served()
    uid = uid_of(d, "churn")
    d.ctl("delete", "pod", "churn", "--grace-period", "0")
    assert processes_of(uid) == []


# -- file descriptors -------------------------------------------------------------------


def lowest_free_fd(pid: int) -> int:
    used = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
    return next(n for n in range(len(used) + 1) if n not in used)


def test_supd_out_of_file_descriptors(make_supd: Callable[..., Supd]) -> None:
    """RLIMIT_NOFILE lowered under a running supd (prlimit(2)): a new connection is answered
    ResourceExhausted (the reserve-descriptor trick), supd does not spin on its listening
    socket (its CPU time stays flat over a second), one descriptor short of an apply
    fails that apply cleanly (nothing half-created), and all is well once fds free up."""
    d = make_supd()
    bystander = Bystander(d)
    assert d.proc is not None
    pid = d.proc.pid
    # A container that restarts every few tenths of a second, followed over a connection
    # opened before the limit: it keeps being served, and tells why the restarts fail.
    d.apply(pod("restarter", "sleep 0.2; exit 1"))
    d.wait("restarter", "condition=PodReadyToStartContainers")
    watch = subprocess.Popen(
        [SUPCTL, "--socket", str(d.socket), "get", "pod", "restarter", "-w", "-o", "json"],
        stdout=subprocess.PIPE,
    )
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    try:
        assert watch.stdout is not None
        assert next(json_stream(watch.stdout.fileno(), time.monotonic() + 10), None)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free_fd(pid), hard))
        before = cpu_ticks(pid)
        for _ in range(20):
            res = d.ctl("get", "pods", check=False)
            assert res.returncode == 1
            assert "supd is out of file descriptors (Too many open files, EMFILE)" in res.stderr
        for obj in json_stream(watch.stdout.fileno(), time.monotonic() + 20):
            message = json.dumps(container_status(obj))
            if "Too many open files" in message:
                break
        else:
            raise AssertionError("the restarter's status never said EMFILE")
        # Whichever step ran out first (the termination-log file, the log, a cgroup file)
        # is named, with kubelet's reason for a container that could not be created/started.
        cs = container_status(obj)
        waiting = cs["state"].get("waiting", {})
        terminated = cs["lastState"].get("terminated", {})
        assert (
            waiting.get("reason") == "CreateContainerError"
            and waiting["message"].startswith("create container main: ")
        ) or terminated.get("reason") == "StartError", message
        # A bounded wait on an event that must not come (supd exiting): a loop spinning on
        # EMFILE would burn about a second of CPU meanwhile.
        assert not wait_on_pidfd(pid, 1.0)
        used = cpu_ticks(pid) - before
        assert used < os.sysconf("SC_CLK_TCK") // 4, f"supd used {used} ticks at EMFILE"

        # One descriptor to spare: the connection is served, the apply cannot save the pod.
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free_fd(pid) + 1, hard))
        res = d.ctl("apply", "-f", "-", input=pod("starved", "sleep 1").encode(), check=False)
        assert res.returncode == 1
        assert "save pod default/starved" in res.stderr and "EMFILE" in res.stderr, res.stderr
        assert "the pod was not created" in res.stderr
        assert not [p for p in (d.state_dir / "pods").iterdir() if "_starved_" in p.name]
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        watch.kill()
        watch.wait()
    assert d.ctl("get", "pod", "starved", check=False).returncode == 1
    log = (d.state_dir.parent / "supd.log").read_text()
    assert "accept: Too many open files (EMFILE): refusing connections" in log
    bystander.still_served()
    assert (
        "descriptors are free again (20 refused)" in (d.state_dir.parent / "supd.log").read_text()
    )


# -- disk -------------------------------------------------------------------------------


def fill(directory: Path) -> Path:
    """Write a file in `directory` until its filesystem says ENOSPC, to the last byte."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 1):
            chunk = b"\0" * size
            try:
                while True:
                    os.write(fd, chunk)
            except OSError as e:
                assert e.errno == 28, e
    finally:
        os.close(fd)
    return filler


def test_full_state_dir_fails_apply_cleanly(make_supd: Callable[..., Supd]) -> None:
    d = make_supd(tmpfs=1 << 20)
    bystander = Bystander(d)
    filler = fill(d.state_dir)
    entries = sorted(p.name for p in (d.state_dir / "pods").iterdir())
    res = d.ctl("apply", "-f", "-", input=pod("nospace", "sleep 1").encode(), check=False)
    assert res.returncode == 1
    assert "save pod default/nospace" in res.stderr, res.stderr
    assert "No space left on device (ENOSPC)" in res.stderr
    assert "the pod was not created" in res.stderr
    assert sorted(p.name for p in (d.state_dir / "pods").iterdir()) == entries
    assert d.ctl("get", "pod", "nospace", check=False).returncode == 1
    st = d.pod("bystander")["status"]
    assert st["phase"] == "Running" and container_status(d.pod("bystander"))["ready"]
    filler.unlink()
    bystander.still_served()
    d.apply(pod("nospace", "exec sleep 100000"))
    d.wait("nospace")


TICKER = (
    "i=0; while :; do i=$((i+1)); echo tick $i; echo $i > {dir}/.n && mv {dir}/.n {dir}/n; "
    "sleep 0.01; done"
)


def test_full_log_disk_drops_lines_and_resumes(
    make_supd: Callable[..., Supd], tmp_path: Path
) -> None:
    """A container keeps running while its log's filesystem is full (infra drops what it
    cannot write: _native/infra.pyx writev_all) and its log resumes once space is freed."""
    d = make_supd(tmpfs=1 << 20)
    bystander = Bystander(d)
    counter = tmp_path / "counter"
    counter.mkdir()
    d.apply(pod("ticker", TICKER.format(dir=counter)))
    d.wait("ticker")
    (main,) = proc_children(d.infra_of("ticker"))
    log = next((d.state_dir / "pods").glob("default_ticker_*/main/0.log"))

    def count() -> int:
        try:
            return int((counter / "n").read_text())
        except (OSError, ValueError):
            return 0

    def last_logged() -> int:
        ticks = re.findall(rb"F tick (\d+)\n", log.read_bytes())
        return int(ticks[-1]) if ticks else 0

    events = subprocess.Popen(
        [SUPCTL, "--socket", str(d.socket), "events", "-w", "--for", "pod/ticker"],
        stdout=subprocess.PIPE,
        text=True,
    )
    filler = fill(d.state_dir)
    at_fill = count()
    # Lines of ~45 bytes: 400 of them are far more than what the log's last page can take.
    assert until_dir_changes(counter, lambda: count() > at_fill + 400, timeout=30)
    dropped_from = last_logged()
    assert dropped_from < count() - 300, (dropped_from, count())
    cs = container_status(d.pod("ticker"))
    assert cs["state"].get("running") and cs["restartCount"] == 0 and alive(main), cs
    st = d.pod("bystander")["status"]
    assert st["phase"] == "Running"

    filler.unlink()
    freed_at = count()
    logs = d.follow_logs("ticker")
    try:
        assert logs.stdout is not None
        deadline = time.monotonic() + 20
        for line in logs.stdout:
            if int(line.split()[1]) > freed_at or time.monotonic() > deadline:
                break
        else:
            raise AssertionError("the log never resumed")
        assert int(line.split()[1]) > freed_at
    finally:
        logs.kill()
        logs.wait()
    # Lines in between were lost, not delayed: the log skips from before the fill to after.
    ticks = [int(t) for t in re.findall(rb"F tick (\d+)\n", log.read_bytes())]
    assert any(b - a > 300 for a, b in itertools.pairwise(ticks)), "no gap"
    # And the pod's events said so, both ways.
    try:
        assert events.stdout is not None
        seen = []
        deadline = time.monotonic() + 20
        for line in events.stdout:
            seen.append(line)
            if "LogsResumed" in line or time.monotonic() > deadline:
                break
        dropped = [line for line in seen if "LogsDropped" in line]
        assert dropped and "No space left on device" in dropped[0], seen
        assert "LogsResumed" in seen[-1], seen
    finally:
        events.kill()
        events.wait()
    bystander.still_served()


def test_log_flood_does_not_stall_supd_or_infra(make_supd: Callable[..., Supd]) -> None:
    """`yes` at full speed, for ever, into a log on a 32 MB tmpfs: the disk fills and infra
    goes on reading and dropping as fast as `yes` writes. Meanwhile supd answers, the
    flooding pod's own infra answers an exec, and delete ends it all."""
    d = make_supd(tmpfs=32 << 20)
    bystander = Bystander(d)
    d.apply(pod("flood", "exec yes $(printf '%01000d' 0)"))
    d.wait("flood")
    infra = d.infra_of("flood")
    (yes,) = proc_children(infra)
    log = next((d.state_dir / "pods").glob("default_flood_*/main/0.log"))

    def full(_text: str) -> bool:
        return os.statvfs(d.state_dir).f_bavail == 0

    assert until_file_says(log, full, timeout=60)
    busy = cpu_ticks(infra)
    assert d.ctl("exec", "flood", "--", "echo", "through").stdout == "through\n"
    assert d.ctl("exec", "bystander", "--", "echo", "too").stdout == "too\n"
    st = d.pod("bystander")["status"]
    assert st["phase"] == "Running" and container_status(d.pod("bystander"))["ready"]
    cs = container_status(d.pod("flood"))
    assert cs["state"].get("running") and cs["restartCount"] == 0 and alive(yes), cs
    # Still flooding while all that was answered: infra spent CPU relaying and dropping.
    assert not wait_on_pidfd(yes, 0.5)
    assert cpu_ticks(infra) > busy
    uid = uid_of(d, "flood")
    d.ctl("delete", "pod", "flood")
    assert not alive(infra) and processes_of(uid) == []
    bystander.still_served()  # the log is gone with the pod: apply has room again


# -- infra killed -----------------------------------------------------------------------


@pytest.mark.parametrize("restart", ["Always", "Never"])
def test_infra_killed_with_sigkill(make_supd: Callable[..., Supd], restart: str) -> None:
    """The sandbox dies: its containers go with it (gone from /proc), the pod says why
    (SandboxChanged, and the container's last state: 137, killed with its sandbox), and the
    restartPolicy decides: Always makes a new sandbox and restarts the container, counted;
    Never leaves the pod Failed."""
    d = make_supd()
    bystander = Bystander(d)
    d.apply(pod("victim", "exec sleep 100000", restart=restart))
    d.wait("victim")
    infra = d.infra_of("victim")
    (main,) = proc_children(infra)
    os.kill(infra, signal.SIGKILL)
    assert until_gone([infra, main])

    def settled(obj: dict[str, Any]) -> bool:
        cs = container_status(obj)
        if restart == "Always":
            return cs["restartCount"] == 1 and bool(cs["state"].get("running"))
        return obj["status"]["phase"] == "Failed"

    obj = d.watch_until("victim", settled)
    cs = container_status(obj)
    term = cs["lastState"]["terminated"] if restart == "Always" else cs["state"]["terminated"]
    assert term["exitCode"] == 137 and term["reason"] == "Error", term
    assert term["message"] == (
        f"container killed: the pod's sandbox (infra pid {infra}) was killed by SIGKILL"
    ), term
    reasons = [e["reason"] for e in events_of(d, "victim")]
    assert "SandboxChanged" in reasons
    if restart == "Always":
        new_infra = d.infra_of("victim")
        assert new_infra != infra and len(proc_children(new_infra)) == 1
    else:
        assert d.infra_of("victim") == infra  # no new sandbox recorded
        assert reasons.count("Started") == 1
    assert (
        "was killed by SIGKILL; its containers are gone"
        in (d.state_dir.parent / "supd.log").read_text()
    )
    bystander.still_served()
