"""supd as a container's init: PID 1 (or `--init`, or `supd run`, a child subreaper).

What a container init does (tini, dumb-init, catatonit), for whole pods:

- reap every orphan reparented to supd, at any depth, pods' or not: as PID 1 the kernel
  gives it every orphan of its PID namespace; otherwise PR_SET_CHILD_SUBREAPER makes it the
  reaper of its own descendants (prctl(2)).
- take signals synchronously (tini's model): they are blocked before any thread exists and
  read from a signalfd on the event loop, so an idle supd sleeps in epoll and costs no CPU.
  What each signal does is `signals.decide` (pure); this module carries it out.
- at the end, stop every remaining descendant (SIGTERM, SIGKILL after a grace period) and
  wait for it, so that nothing is killed by the teardown of the PID namespace.

Why the orphan reaper never steals a pod's infra exit: infra is cloned as a "clone" child
(exit_signal 0, see runtime._start_sandbox), which waitpid(-1) without __WALL never
reports; the runtime reaps each infra through its pidfd (waitid P_PIDFD|__WALL). The two
never race, with no list of known pids to consult and no peeking (a WNOWAIT peek at
waitid(P_ALL) would stall on an infra zombie and leave the orphans behind it unreaped).

With runtime.py, the only importer of supervisor._native: the runtime owns the pods; this
module owns supd's own process (its signals, its orphans, the end of its descendants).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from . import _native
from .isolation import Isolation
from .runtime import Pod, Runtime, process_start_time
from .signals import Act, SignalPolicy, decide, pod_policy, signal_name, taken_signals

log = logging.getLogger("supervisor.init")

# After SIGKILL, how long to wait for processes stuck in the kernel (D state) before giving up.
KILL_WAIT_SECONDS = 10.0
# Rescans of the process tree while stopping descendants (each one follows a fork).
MAX_SWEEP_ROUNDS = 1000


class Role(enum.Enum):
    PID1 = "pid1"  # the init of a PID namespace: every orphan comes here
    SUBREAPER = "subreaper"  # orphans of supd's descendants come here
    NONE = "none"  # orphans go to someone else


def become_reaper() -> Role:
    """PID 1 reaps its PID namespace's orphans by nature; any other supd asks for the
    orphans of its own descendants with PR_SET_CHILD_SUBREAPER (Linux 3.4)."""
    if os.getpid() == 1:
        return Role.PID1
    try:
        _native.set_child_subreaper(True)
    except OSError as e:
        log.warning(
            "supd is not PID 1 and cannot be a child subreaper (%s): orphans of its "
            "descendants go to another reaper and cannot be stopped before supd exits",
            e.strerror,
        )
        return Role.NONE
    return Role.SUBREAPER


def take_signals() -> int:
    """Block every signal supd handles and return a signalfd that reads them. Call it
    before any thread exists: threads inherit the mask, and a thread that did not block a
    signal could take it. Each disposition goes back to SIG_DFL first: an ignored SIGCHLD
    would make the kernel reap children itself (wait(2), SA_NOCLDWAIT), and a SIGINT that
    a parent ignored must still stop supd."""
    signos = sorted(taken_signals())
    for signo in signos:
        signal.signal(signo, signal.SIG_DFL)
    return _native.signalfd(signos)


def probe_isolation() -> tuple[Isolation, str]:
    """`--isolation=auto`: can this process create the namespaces a pod needs? One clone
    with every CLONE_NEW* flag supd uses, whose child then fails to exec "/" (it runs
    nothing and is reaped at once). Returns FULL, or UNAVAILABLE and why."""
    flags = (
        _native.CLONE_NEWNS
        | _native.CLONE_NEWPID
        | _native.CLONE_NEWNET
        | _native.CLONE_NEWIPC
        | _native.CLONE_NEWUTS
    )
    try:
        _pid, pidfd = _native.spawn(["/"], env=[], clone_flags=flags)
    except _native.SpawnError as e:
        if e.step == "clone":
            return Isolation.UNAVAILABLE, f"clone with CLONE_NEWNET and friends: {e.strerror}"
        return Isolation.FULL, ""
    os.close(pidfd)  # exec of a directory cannot succeed; if it ever did, the reaper reaps
    return Isolation.FULL, ""


class InitProcess:
    """The signalfd on the loop, and what supd does with each signal (signals.decide).

    `shutdown` is set by the first SIGTERM or SIGINT; `hurry` by a second one (SIGKILL
    now: `runtime.stop_all(grace=0)`, and no more waiting for descendants). `stopped` holds
    the pods that were still running when the shutdown began (for the exit code).
    """

    def __init__(
        self,
        runtime: Runtime,
        sigfd: int,
        role: Role,
        policy: SignalPolicy,
        *,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.loop = runtime.loop
        self.sigfd = sigfd
        self.role = role
        self.policy = policy
        self.on_shutdown = on_shutdown
        self.shutdown = asyncio.Event()
        self.hurry = asyncio.Event()
        self.stopped: frozenset[str] = frozenset()
        self.reaped = 0
        self._reaped = asyncio.Event()
        self._killing: asyncio.Task[None] | None = None
        self.loop.add_reader(sigfd, self._readable)
        self.reap()  # what ended before the fd was watched

    def close(self) -> None:
        self.loop.remove_reader(self.sigfd)
        os.close(self.sigfd)

    def reap(self) -> None:
        """waitpid(-1, WNOHANG) until nothing is left: orphans (and any direct child of the
        SIGCHLD kind); never an infra (see the module docstring)."""
        for pid, status in _native.reap_all():
            self.reaped += 1
            self._reaped.set()
            log.debug("reaped %d (%#x)", pid, status)

    def _readable(self) -> None:
        signos = _native.read_signalfd(self.sigfd)
        # SIGCHLD coalesces: reap on every wakeup, and first, so that zombies are gone
        # before anything else this wakeup does is seen.
        self.reap()
        for signo in signos:
            if signo != signal.SIGCHLD:
                self.handle(signo)

    def handle(self, signo: int) -> None:
        pid1 = self.role is Role.PID1
        d = decide(signo, self.policy, pid1=pid1, shutting_down=self.shutdown.is_set())
        name = signal_name(signo)
        if d.act is Act.SHUTDOWN:
            log.warning("%s: stopping every pod (again to kill at once)", name)
            self.shutdown.set()
            self.stopped = frozenset(
                key for key, pod in self.runtime.pods.items() if not pod.status.phase.terminal
            )
            if self.on_shutdown is not None:
                self.on_shutdown()
        elif d.act is Act.KILL:
            log.warning("%s again: killing every pod and process now", name)
            self.hurry.set()
            if self._killing is None:
                self._killing = self.loop.create_task(self.runtime.stop_all(grace=0))
        elif d.act in (Act.FORWARD, Act.SUSPEND):
            self.forward(signo)
            if d.act is Act.SUSPEND:
                log.info("%s: pods stopped, suspending supd until SIGCONT", name)
                os.kill(os.getpid(), signal.SIGSTOP)
        elif d.act is Act.DROP:
            log.debug("%s: not forwarded (%s)", name, d.why)

    def forward(self, signo: int) -> None:
        """Each pod's own policy (annotations over supd's default) decides what its main
        processes get."""
        pid1 = self.role is Role.PID1
        stopping = self.shutdown.is_set()
        for pod in list(self.runtime.pods.values()):
            d = decide(signo, self.pod_policy(pod), pid1=pid1, shutting_down=stopping)
            if d.forward is not None:
                n = self.runtime.signal_main_processes(pod, d.forward.signo, group=d.forward.group)
                log.debug(
                    "pod %s: %s forwarded as %s to %d container(s)%s",
                    pod.key,
                    signal_name(signo),
                    signal_name(d.forward.signo),
                    n,
                    " (process groups)" if d.forward.group else "",
                )

    def pod_policy(self, pod: Pod) -> SignalPolicy:
        return pod_policy(dict(pod.spec.annotations), self.policy)

    # -- the end ---------------------------------------------------------------------------

    async def stop_descendants(self, grace: float) -> int:
        """Stop every process left below supd (as PID 1: every other process of its PID
        namespace): SIGTERM, then SIGKILL after `grace` seconds (at once once `hurry` is
        set), and wait until each is gone. New processes forked meanwhile are found by
        rescanning. Returns how many were signalled. Runs after every pod has stopped, so
        no infra is among them."""
        watched: dict[int, int] = {}  # pid -> pidfd
        done: set[int] = set()
        changed = asyncio.Event()
        deadline = self.loop.time() + grace
        killing = False

        def ended(pid: int) -> None:
            self.loop.remove_reader(watched[pid])
            done.add(pid)
            changed.set()

        def send(pid: int, signo: int) -> None:
            with contextlib.suppress(ProcessLookupError):  # it has just ended
                _native.pidfd_send_signal(watched[pid], signo)

        try:
            for _round in range(MAX_SWEEP_ROUNDS):
                pids = self.descendants()
                if pids is None:
                    return await self._stop_descendants_blind(grace)
                for pid, started in pids.items():
                    if pid in watched:
                        continue
                    try:
                        fd = os.pidfd_open(pid)
                    except ProcessLookupError:
                        continue
                    if process_start_time(pid) != started:  # reaped and reused since the scan
                        os.close(fd)
                        continue
                    watched[pid] = fd
                    self.loop.add_reader(fd, ended, pid)
                    send(pid, signal.SIGKILL if killing or self.hurry.is_set() else signal.SIGTERM)
                if set(watched) <= done:
                    break
                while not set(watched) <= done:
                    changed.clear()
                    if not killing and (self.hurry.is_set() or self.loop.time() >= deadline):
                        killing = True
                        left = sorted(set(watched) - done)
                        log.warning("%d process(es) outlived SIGTERM: SIGKILL", len(left))
                        for pid in left:
                            send(pid, signal.SIGKILL)
                        deadline = self.loop.time() + KILL_WAIT_SECONDS
                    timeout = max(0.0, deadline - self.loop.time())
                    waits = [asyncio.ensure_future(changed.wait())]
                    if not killing:
                        waits.append(asyncio.ensure_future(self.hurry.wait()))
                    _, pending = await asyncio.wait(
                        waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                    )
                    for w in pending:
                        w.cancel()
                    if killing and self.loop.time() >= deadline and not changed.is_set():
                        left = sorted(set(watched) - done)
                        log.error("processes %s did not die after SIGKILL; exiting anyway", left)
                        return len(watched)
            return len(watched)
        finally:
            for pid, fd in watched.items():
                if pid not in done:
                    self.loop.remove_reader(fd)
                os.close(fd)
            self.reap()

    def descendants(self) -> dict[int, int] | None:
        """Live processes supd must stop before it exits, from /proc, with their start
        times (to tell a reused pid): as PID 1 every other process of the namespace, else
        those below supd by parent links. None when /proc belongs to another PID namespace
        (no `--mount-proc`, or a runtime that did not mount one): pids cannot be matched."""
        me = os.getpid()
        try:
            if int(os.readlink("/proc/self")) != me:
                return None
        except (OSError, ValueError):
            return None
        parent: dict[int, int] = {}
        started: dict[int, int] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            # proc(5): state is field 3, ppid 4, starttime 22; comm (2) may hold spaces.
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":  # zombies are dead already: the reaper takes them
                pid = int(entry.name)
                parent[pid], started[pid] = int(fields[1]), int(fields[19])
        parent.pop(me, None)
        if self.role is Role.PID1:
            return {pid: started[pid] for pid in parent}
        children: dict[int, list[int]] = {}
        for pid, ppid in parent.items():
            children.setdefault(ppid, []).append(pid)
        found: dict[int, int] = {}
        todo = [me]
        while todo:
            for child in children.get(todo.pop(), []):
                found[child] = started[child]
                todo.append(child)
        return found

    async def _stop_descendants_blind(self, grace: float) -> int:
        """Without a /proc of its own namespace, PID 1 can still signal every process of
        it (kill(-1), kill(2)) and wait until no child is left; others cannot."""
        if self.role is not Role.PID1:
            log.warning("/proc shows another PID namespace: cannot find descendants to stop")
            return 0
        for signo, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, KILL_WAIT_SECONDS)):
            try:
                os.kill(-1, signo)
            except ProcessLookupError:
                return 0
            deadline = self.loop.time() + wait
            while self._has_children() and not (signo == signal.SIGTERM and self.hurry.is_set()):
                # Every child's exit is a SIGCHLD on the signalfd, and reap() sets the event.
                self._reaped.clear()
                waits = [asyncio.ensure_future(self._reaped.wait())]
                if signo == signal.SIGTERM:
                    waits.append(asyncio.ensure_future(self.hurry.wait()))
                timeout = deadline - self.loop.time()
                if timeout <= 0:
                    break
                _, pending = await asyncio.wait(
                    waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                for w in pending:
                    w.cancel()
            if not self._has_children():
                break
        return 1

    @staticmethod
    def _has_children() -> bool:
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return True
