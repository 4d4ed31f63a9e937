"""supd as PID 1 of a fresh PID namespace (`unshare --pid --fork --mount-proc`), the way a
container runs it, checked with real processes in the style of tini's tests: orphans
reaped, signals forwarded, exit codes passed through, every descendant stopped before the
end, 126/127 for bad commands, and pods without namespaces when supd has no privileges.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import SUPCTL, SUPD, alive, proc_children, require_root

PY = sys.executable
TIMEOUT = 20.0
# supd is PID 1 of a new PID namespace; --kill-child: if unshare dies (a test that failed
# and killed it), supd, and with it the whole namespace, dies too.
UNSHARE = ("unshare", "--pid", "--fork", "--mount-proc", "--kill-child")

# A container that reports each signal it receives ("got N") and exits 0 on SIGTERM (or,
# with argument "stay", reports SIGTERM too and keeps running).
SIGPRINT = """
import os, signal, sys
stay = sys.argv[1:] == ["stay"]
def got(n, _f):
    os.write(1, b"got %d\\n" % n)  # not print(): a handler may interrupt a print
    if n == signal.SIGTERM and not stay:
        os._exit(0)
for s in signal.valid_signals():
    if s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD):
        signal.signal(s, got)
os.write(1, b"ready\\n")
while True:
    signal.pause()
"""

# Make N orphans, each `depth` generations below this process (the generations between
# exit at once), wait until every one of them has exited, then print "done N". Orphans
# report their pid on a pipe and block on another until released; pidfds say when each
# has exited (it is then a zombie of whoever it was reparented to).
ORPHANS = """
import os, select, sys
n, depth = int(sys.argv[1]), int(sys.argv[2])
made = 0
while made < n:
    k = min(400, n - made)  # pidfds per batch, under the fd limit
    r, w = os.pipe()
    pr, pw = os.pipe()
    for _ in range(k):
        pid = os.fork()
        if pid == 0:
            os.close(pr)
            for _ in range(depth - 1):
                if os.fork():
                    os._exit(0)
            os.close(w)
            os.write(pw, b"%d\\n" % os.getpid())
            os.close(pw)
            os.read(r, 1)
            os._exit(0)
        os.waitpid(pid, 0)
    os.close(pw)
    os.close(r)
    pids = [int(p) for p in os.fdopen(pr).read().split()]
    assert len(pids) == k, len(pids)
    fds = [os.pidfd_open(p) for p in pids]
    os.close(w)
    for fd in fds:
        select.select([fd], [], [])
        os.close(fd)
    made += k
print("done", made, flush=True)
"""

# Two processes left behind (double-forked, so they are orphans): one that records SIGTERM
# in DIR/polite and exits, one that ignores SIGTERM. Prints "left PID PID".
LINGER = """
import os, signal, sys
d = sys.argv[1]
r, w = os.pipe()
for kind in ("polite", "stubborn"):
    if os.fork() == 0:
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # let nsenter's output end
        if kind == "polite":
            def term(_n, _f):
                open(os.path.join(d, "polite"), "w").write("SIGTERM\\n")
                os._exit(0)
            signal.signal(signal.SIGTERM, term)
        else:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.write(w, b"%8d" % os.getpid())
        os.close(w)
        while True:
            signal.pause()
    os.wait()
os.close(w)
pids = [int(os.read(r, 8)) for _ in range(2)]
print("left", *pids, flush=True)
"""


def pod(
    name: str,
    *command: str,
    spec: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    grace: int = 5,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": grace,
            "containers": [{"name": "c", "command": list(command)}],
            **(spec or {}),
        },
    }


HOST = {"hostNetwork": True, "hostPID": True, "hostIPC": True}


class Pid1:
    """supd (`supd run FILE` or the daemon) as PID 1 of a new PID namespace, with its
    stdout read line by line and its stderr in a file."""

    def __init__(
        self,
        tmp: Path,
        args: list[str],
        *,
        wrapper: tuple[str, ...] = (),
        preexec_fn: Callable[[], None] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.tmp = tmp
        self.stderr_path = tmp / f"supd-{time.monotonic_ns()}.err"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*UNSHARE, *wrapper, SUPD, *args],
                stdout=subprocess.PIPE,
                stderr=err,
                preexec_fn=preexec_fn,
                pass_fds=pass_fds,
                # `supd run`'s temporary state dir: under tmp, also when a test SIGKILLs it.
                env={**os.environ, "TMPDIR": str(tmp)},
            )
        assert self.proc.stdout is not None
        self.out = self.proc.stdout.fileno()
        self.buf = b""
        self.lines: list[str] = []

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def expect(self, line: str, timeout: float = TIMEOUT) -> None:
        """Read stdout until a line equal to `line` (any prefix before " | " ignored)."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                raw, self.buf = self.buf.split(b"\n", 1)
                text = raw.decode(errors="replace")
                self.lines.append(text)
                if text.split(" | ", 1)[-1] == line:
                    return
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.out], [], [], left)[0]:
                raise AssertionError(f"no line {line!r} in time; got {self.lines}\n{self.stderr}")
            chunk = os.read(self.out, 65536)
            if not chunk:
                raise AssertionError(f"EOF before {line!r}; got {self.lines}\n{self.stderr}")
            self.buf += chunk

    @property
    def pid(self) -> int:
        """supd's pid as the host sees it: unshare's only child."""
        (pid,) = proc_children(self.proc.pid)
        return pid

    def kill(self, signo: int) -> None:
        os.kill(self.pid, signo)

    def nsenter(self, *argv: str) -> str:
        res = subprocess.run(
            ["nsenter", "-t", str(self.pid), "-p", "-m", *argv],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stderr
        return res.stdout

    def processes(self) -> dict[int, str]:
        """pid -> state of every process of supd's PID namespace, from its own /proc."""
        found = {}
        root = Path(f"/proc/{self.pid}/root/proc")
        for entry in root.iterdir():
            if entry.name.isdigit():
                try:
                    found[int(entry.name)] = (
                        (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                    )
                except OSError:
                    continue
        return found

    def wait(self, timeout: float = TIMEOUT) -> int:
        code = self.proc.wait(timeout=timeout)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        assert "Traceback" not in self.stderr, self.stderr
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def pid1(tmp_path: Path) -> Iterator[Callable[..., Pid1]]:
    require_root()
    made: list[Pid1] = []

    def start(*pods: dict[str, Any], args: tuple[str, ...] = (), **kwargs: Any) -> Pid1:
        manifest = tmp_path / f"pods-{len(made)}.yaml"
        manifest.write_text("\n---\n".join(json.dumps(p) for p in pods))
        made.append(Pid1(tmp_path, ["run", str(manifest), *args], **kwargs))
        return made[-1]

    yield start
    for p in made:
        p.close()


@pytest.fixture
def scripts(tmp_path: Path) -> dict[str, str]:
    paths = {}
    for name, text in (("sigprint", SIGPRINT), ("orphans", ORPHANS), ("linger", LINGER)):
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        paths[name] = str(path)
    return paths


# -- reaping --------------------------------------------------------------------------------


def test_orphans_at_any_depth_are_reaped_pods_or_not(
    pid1: Callable[..., Pid1], scripts: dict[str, str]
) -> None:
    """1000 orphans of a pod (hostPID: reparented to its infra, a subreaper) and 2000 of
    processes that no pod owns (entered with nsenter: reparented to supd, PID 1), two to
    four generations down: none is left a zombie."""
    maker = f"{PY} {scripts['orphans']} 1000 2 && exec {PY} {scripts['sigprint']}"
    supd = pid1(pod("orphans", "sh", "-c", maker, spec={"hostPID": True}))
    supd.expect("done 1000")
    supd.expect("ready")
    assert supd.nsenter(PY, scripts["orphans"], "1000", "3") == "done 1000\n"
    assert supd.nsenter(PY, scripts["orphans"], "1000", "4") == "done 1000\n"
    # Every orphan has exited (the makers waited on pidfds), so its SIGCHLD is pending at
    # its reaper; supd reaps before it forwards, and the container's answer comes after.
    supd.kill(signal.SIGUSR1)
    supd.expect(f"got {int(signal.SIGUSR1)}")
    states = supd.processes()
    zombies = [pid for pid, st in states.items() if st == "Z"]
    assert not zombies, f"{len(zombies)} zombies left"
    assert len(states) == 3, states  # supd, the pod's infra, its container
    supd.kill(signal.SIGTERM)
    assert supd.wait() == 0


# -- signals --------------------------------------------------------------------------------

FORWARDED = [
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
    signal.SIGCONT,
    signal.SIGURG,
    signal.SIGWINCH,
    signal.SIGIO,
    signal.SIGPWR,
    signal.SIGVTALRM,
    signal.SIGPROF,
    signal.SIGSTKFLT,
    # As PID 1 the stop signals are forwarded as they are (supd cannot be stopped).
    signal.SIGTSTP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGRTMIN,
    signal.SIGRTMIN + 5,
    signal.SIGRTMAX,
]


def test_each_forwarded_signal_arrives(pid1: Callable[..., Pid1], scripts: dict[str, str]) -> None:
    supd = pid1(pod("sig", PY, scripts["sigprint"]))
    supd.expect("ready")
    for signo in FORWARDED:
        supd.kill(signo)
        supd.expect(f"got {int(signo)}")
    # Fault signals and SIGPIPE are not forwarded (and do not hurt supd): the next
    # forwarded signal is the next line.
    for signo in (signal.SIGSEGV, signal.SIGBUS, signal.SIGPIPE):
        supd.kill(signo)
    supd.kill(signal.SIGUSR2)
    supd.expect(f"got {int(signal.SIGUSR2)}")
    dropped = {f"got {int(s)}" for s in (signal.SIGSEGV, signal.SIGBUS, signal.SIGPIPE)}
    assert not any(ln.split(" | ")[-1] in dropped for ln in supd.lines)
    supd.kill(signal.SIGTERM)
    assert supd.wait() == 0


def test_process_group_signal_reaches_a_grandchild_behind_an_ignoring_child(
    pid1: Callable[..., Pid1], scripts: dict[str, str]
) -> None:
    """The container's main process ignores SIGUSR1; its child reports it: only the
    process group (annotation supd/signal-target: group) reaches the child."""
    command = f"trap '' USR1; {PY} {scripts['sigprint']} & wait"
    supd = pid1(
        pod("grp", "sh", "-c", command, annotations={"supd/signal-target": "group"}),
    )
    supd.expect("ready")
    supd.kill(signal.SIGUSR1)
    supd.expect(f"got {int(signal.SIGUSR1)}")
    supd.kill(signal.SIGKILL)  # the test is over; the kernel ends the namespace
    supd.wait()


def test_rewrite_by_flag_and_by_annotation(
    pid1: Callable[..., Pid1], scripts: dict[str, str]
) -> None:
    supd = pid1(
        pod(
            "rw",
            PY,
            scripts["sigprint"],
            annotations={"supd/signal-rewrite": "WINCH:USR1,QUIT:0"},
        ),
        args=("--rewrite-signal", "HUP:SIGUSR2", "--rewrite-signal", "WINCH:9"),
    )
    supd.expect("ready")
    supd.kill(signal.SIGHUP)
    supd.expect(f"got {int(signal.SIGUSR2)}")
    supd.kill(signal.SIGQUIT)  # dropped
    supd.kill(signal.SIGWINCH)  # the pod's USR1 wins over supd's KILL
    supd.expect(f"got {int(signal.SIGUSR1)}")
    assert not any(ln.endswith(f"got {int(signal.SIGQUIT)}") for ln in supd.lines)
    supd.kill(signal.SIGTERM)
    assert supd.wait() == 0


def test_parent_ignored_and_blocked_signals_are_not_inherited(
    pid1: Callable[..., Pid1], scripts: dict[str, str]
) -> None:
    """A parent that ignores SIGINT, SIGHUP and SIGUSR1 and blocks SIGUSR2, SIGTERM and
    SIGCHLD: containers start with nothing ignored or blocked, and SIGINT still stops supd."""

    def hostile_parent() -> None:
        for s in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(s, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGTERM, signal.SIGCHLD})

    show = f"grep -E '^Sig(Blk|Ign)' /proc/self/status; exec {PY} {scripts['sigprint']}"
    supd = pid1(pod("mask", "sh", "-c", show), preexec_fn=hostile_parent)
    supd.expect("ready")
    assert "mask/c | SigBlk:\t0000000000000000" in supd.lines
    assert "mask/c | SigIgn:\t0000000000000000" in supd.lines
    supd.kill(signal.SIGHUP)
    supd.expect(f"got {int(signal.SIGHUP)}")
    supd.kill(signal.SIGINT)
    supd.expect(f"got {int(signal.SIGTERM)}")  # the graceful stop
    assert supd.wait() == 0


def test_stop_signals_suspend_supd_and_its_pods_when_not_pid_1(
    tmp_path: Path, scripts: dict[str, str]
) -> None:
    """Job control (`supd run` in a shell, Ctrl-Z): the containers are stopped with SIGSTOP
    (in sessions of their own the kernel discards SIGTSTP's default action), then supd
    stops itself, as dumb-init does; SIGCONT resumes supd, which forwards it."""
    require_root()
    manifest = tmp_path / "tstp.yaml"
    manifest.write_text(json.dumps(pod("tstp", PY, scripts["sigprint"])))
    proc = subprocess.Popen([SUPD, "run", str(manifest)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"tstp/c | ready\n"
        (infra,) = proc_children(proc.pid)
        (container,) = proc_children(infra)
        proc.send_signal(signal.SIGTSTP)
        stopped = os.waitid(os.P_PID, proc.pid, os.WSTOPPED)
        assert stopped is not None and stopped.si_status == signal.SIGSTOP
        # No event says that another process stopped: read its state, within a deadline.
        deadline = time.monotonic() + TIMEOUT
        while state(container) != "T" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert state(container) == "T"
        proc.send_signal(signal.SIGCONT)
        assert proc.stdout.readline() == f"tstp/c | got {int(signal.SIGCONT)}\n".encode()
        assert state(container) != "T"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


# -- shutdown -------------------------------------------------------------------------------


def test_shutdown_stops_every_descendant_before_exiting(
    pid1: Callable[..., Pid1], scripts: dict[str, str], tmp_path: Path
) -> None:
    """SIGTERM: the pod stops gracefully, then processes outside every pod get SIGTERM
    (the polite one records it) and SIGKILL after --orphan-grace (the stubborn one):
    nothing is left for the kernel to kill when the namespace ends."""
    supd = pid1(pod("main", PY, scripts["sigprint"]), args=("--orphan-grace", "1"))
    supd.expect("ready")
    assert supd.nsenter(PY, scripts["linger"], str(tmp_path)).startswith("left ")
    assert len(supd.processes()) == 5  # supd, infra, the container, the two left behind
    started = time.monotonic()
    supd.kill(signal.SIGTERM)
    supd.expect(f"got {int(signal.SIGTERM)}")
    assert supd.wait() == 0
    assert time.monotonic() - started < 10
    assert (tmp_path / "polite").read_text() == "SIGTERM\n"
    assert "1 process(es) outlived SIGTERM: SIGKILL" in supd.stderr


def test_processes_a_pod_left_behind_are_stopped_when_not_pid_1(
    tmp_path: Path, scripts: dict[str, str]
) -> None:
    """`supd run` as a child subreaper: what a hostPID pod's container left running (its
    orphans, reparented to supd once the infra is gone) is stopped before supd exits."""
    require_root()
    command = f"{PY} {scripts['linger']} {tmp_path} && exec {PY} {scripts['sigprint']}"
    manifest = tmp_path / "left.yaml"
    manifest.write_text(json.dumps(pod("left", "sh", "-c", command, spec={"hostPID": True})))
    proc = subprocess.Popen(
        [SUPD, "run", "--orphan-grace", "1", str(manifest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        words = proc.stdout.readline().split()
        assert words[:3] == ["left/c", "|", "left"], words
        left = [int(w) for w in words[3:]]
        assert all(alive(pid) for pid in left)
        assert proc.stdout.readline() == "left/c | ready\n"
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
        assert (tmp_path / "polite").read_text() == "SIGTERM\n"
        assert "1 process(es) outlived SIGTERM: SIGKILL" in err
        assert not any(alive(pid) or Path(f"/proc/{pid}").exists() for pid in left)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_second_sigterm_skips_to_sigkill(
    pid1: Callable[..., Pid1], scripts: dict[str, str]
) -> None:
    supd = pid1(pod("slow", PY, scripts["sigprint"], "stay", grace=120))
    supd.expect("ready")
    started = time.monotonic()
    supd.kill(signal.SIGTERM)
    supd.expect(f"got {int(signal.SIGTERM)}")  # received, and ignored
    supd.kill(signal.SIGTERM)
    assert supd.wait() == 128 + signal.SIGKILL
    assert time.monotonic() - started < 10


def test_graceful_shutdown_runs_prestop(
    pid1: Callable[..., Pid1], scripts: dict[str, str], tmp_path: Path
) -> None:
    marker = tmp_path / "prestop"
    manifest = pod("hooks", PY, scripts["sigprint"])
    manifest["spec"]["containers"][0]["lifecycle"] = {
        "preStop": {"exec": {"command": ["sh", "-c", f"echo ran > {marker}"]}}
    }
    supd = pid1(manifest)
    supd.expect("ready")
    supd.kill(signal.SIGTERM)
    assert supd.wait() == 0
    assert marker.read_text() == "ran\n"


# -- exit codes -----------------------------------------------------------------------------

EXIT_CODES = [0, 1, 2, 3, 42, 63, 64, 100, 125, 126, 127, 128, 129, 130, 137, 143, 200, 254, 255]
SIGNALS = [signal.SIGHUP, signal.SIGINT, signal.SIGKILL, signal.SIGSEGV, signal.SIGTERM]


def run_pid1(tmp: Path, manifest: dict[str, Any], *args: str) -> tuple[int, str]:
    path = tmp / f"{manifest['metadata']['name']}.yaml"
    path.write_text(json.dumps(manifest))
    res = subprocess.run(
        [*UNSHARE, SUPD, "run", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return res.returncode, res.stderr


def test_exit_codes_and_signals_pass_through(tmp_path: Path) -> None:
    """The container's exit code is supd's; a container killed by signal N gives 128+N
    (hostPID: as the init of a PID namespace of its own, it could not kill itself)."""
    require_root()
    cases = [(f"exit-{n}", ["sh", "-c", f"exit {n}"], n) for n in EXIT_CODES]
    cases += [
        (f"signal-{int(s)}", ["sh", "-c", f"kill -s {s.name[3:]} $$$$"], 128 + s) for s in SIGNALS
    ]
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda case: run_pid1(tmp_path, pod(case[0], *case[1], spec={"hostPID": True})),
                cases,
            )
        )
    assert [code for code, _err in results] == [want for _n, _c, want in cases], results


def test_remap_exit_codes(tmp_path: Path) -> None:
    require_root()
    term = pod("term", "sh", "-c", "kill -s TERM $$$$", spec={"hostPID": True})
    assert run_pid1(tmp_path, term)[0] == 143
    assert run_pid1(tmp_path, term, "--remap-exit", "143")[0] == 0
    three = pod("three", "sh", "-c", "exit 3")
    assert run_pid1(tmp_path, three, "--remap-exit", "3:7", "--remap-exit", "143")[0] == 7


def test_commands_that_cannot_run_give_127_and_126(tmp_path: Path) -> None:
    require_root()
    noexec = tmp_path / "not-executable"
    noexec.write_text("#!/bin/sh\n")
    code, err = run_pid1(tmp_path, pod("missing", "/nonexistent/server"))
    assert code == 127, err
    code, err = run_pid1(tmp_path, pod("noexec", str(noexec)))
    assert code == 126, err


# -- the daemon as PID 1 ---------------------------------------------------------------------


def test_daemon_as_pid_1_reaps_forwards_and_stops_gracefully(
    tmp_path: Path, scripts: dict[str, str]
) -> None:
    require_root()
    boot = tmp_path / "boot"
    boot.mkdir()
    # A service (restartPolicy Always) never Succeeds; stopped with every exit 0, supd
    # exits 0.
    service = pod("boot", PY, scripts["sigprint"], spec={"restartPolicy": "Always"})
    (boot / "p.yaml").write_text(json.dumps(service))
    sock = tmp_path / "supd.sock"
    r, w = os.pipe()
    supd = Pid1(
        tmp_path,
        [
            "--socket",
            str(sock),
            "--state-dir",
            str(tmp_path / "state"),
            "--manifests",
            str(boot),
            "--notify-fd",
            str(w),
        ],
        pass_fds=(w,),
    )
    try:
        os.close(w)
        with os.fdopen(r, "rb") as ready:
            assert ready.readline() == b"READY=1\n", supd.stderr
        ctl = [SUPCTL, "--socket", str(sock)]
        res = subprocess.run(
            [*ctl, "wait", "pod/boot", "--for=condition=Ready", "--timeout=20s"],
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, res.stderr
        assert supd.nsenter(PY, scripts["orphans"], "500", "2") == "done 500\n"
        logs = subprocess.Popen([*ctl, "logs", "boot", "-f"], stdout=subprocess.PIPE, text=True)
        try:
            assert logs.stdout is not None
            assert logs.stdout.readline() == "ready\n"
            supd.kill(signal.SIGUSR2)  # reaps first, then forwards
            assert logs.stdout.readline() == f"got {int(signal.SIGUSR2)}\n"
        finally:
            logs.kill()
            logs.wait()
        zombies = [pid for pid, st in supd.processes().items() if st == "Z"]
        assert not zombies, f"{len(zombies)} zombies left"
        supd.kill(signal.SIGTERM)
        assert supd.wait() == 0  # the container exits 0 on SIGTERM, the pod was stopped
    finally:
        supd.close()


# -- without privileges ----------------------------------------------------------------------

NO_CAPS = ("setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--")


def test_unprivileged_supd_runs_host_pods_and_refuses_the_rest(pid1: Callable[..., Pid1]) -> None:
    """An ordinary unprivileged container: no capability at all, PID 1 all the same."""
    supd = pid1(
        pod("host", "sh", "-c", "grep -E '^CapEff' /proc/self/status; echo ok", spec=HOST),
        wrapper=NO_CAPS,
    )
    supd.expect("ok")
    assert "host/c | CapEff:\t0000000000000000" in supd.lines
    assert supd.wait() == 0

    supd = pid1(pod("isolated", "true"), wrapper=NO_CAPS)
    assert supd.wait() == 2
    err = supd.stderr
    assert 'pod "isolated" needs namespaces that this supd cannot create' in err
    assert "CAP_SYS_ADMIN" in err
    assert "spec.hostNetwork: true, spec.hostPID: true, spec.hostIPC: true" in err
    assert "--isolation=none" in err


def test_isolation_none_runs_every_pod_in_the_host_namespaces(
    pid1: Callable[..., Pid1],
) -> None:
    show = "readlink /proc/self/ns/net /proc/1/ns/net | uniq | wc -l; echo ok"
    supd = pid1(pod("plain", "sh", "-c", show), wrapper=NO_CAPS, args=("--isolation", "none"))
    supd.expect("ok")
    assert "plain/c | 1" in supd.lines  # the container shares supd's network namespace
    assert supd.wait() == 0

    shared = pod("shared", "true", spec={"shareProcessNamespace": True})
    supd = pid1(shared, wrapper=NO_CAPS, args=("--isolation", "none"))
    assert supd.wait() == 2
    assert "spec.shareProcessNamespace is true: it asks for a PID namespace" in supd.stderr
