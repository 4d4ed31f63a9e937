"""The runtime: executes what the lifecycle decides. With init.py (supd's own process in PID 1
mode), the only importer of supervisor._native.

Every pod has one infra process (clone with new net, ipc, uts [and pid] namespaces), which
supd talks to over a SOCK_SEQPACKET socketpair: supd sends start/signal/shutdown frames, the
infra answers with started/start_failed/exited reports. supd learns that an infra exited
from its pidfd becoming readable. All of it arrives as loop events: there is no polling and
no thread per pod. Decisions are `lifecycle.compute_pod_actions`; this module only acts.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import errno
import functools
import logging
import math
import os
import pwd
import select
import shutil
import signal
import socket
import struct
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _native, handlers, lifecycle, restore, rootfs, security
from .backoff import BackoffPolicy, next_restart
from .broadcast import Broadcast
from .cgroups import Cgroups, Limits, NoCgroups, Usage
from .errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    SupervisorError,
    process_limit_hint,
)
from .events import EventLog
from .expansion import container_env, expand
from .handlers import Outcome, Result, Target
from .hostports import HostPorts, PortMapping
from .images import Image, ImageError, ImageStore, parse_user, resolve_argv
from .isolation import Isolation, Namespaces, plan_namespaces
from .lifecycle import (
    PodEvent,
    PodStatus,
    RestartLater,
    StartContainer,
    StopPod,
    StopSandbox,
)
from .logrotate import LogRotation, rotate
from .logs import read_log
from .network import Network, NetworkConfig, PodAddress
from .podview import render_pod
from .probes import ProbeWorker, first_delay
from .signals import SignalPolicy, pod_policy
from .spec import ContainerSpec, PodSpec
from .states import EventType, Reason
from .store import DELETING, Store, Writer, log_dir, write_atomic

log = logging.getLogger("supervisor.runtime")

Report = tuple[Any, ...]
ExecListener = Callable[[Report], None]
# The sandbox of a pod that does not share its PID namespace: the infras a pool holds.
POOL_FLAGS = _native.CLONE_NEWNET | _native.CLONE_NEWIPC | _native.CLONE_NEWUTS
POOL_REFILL_DELAY = 0.05  # seconds after a pooled infra is taken, at the latest
ZYGOTE_EXIT_WAIT = 2.0  # seconds for the zygote to end once supd hangs up
# Reports of execs alone are acknowledged within this many seconds, or once this many wait
# (of the INFRA_REPORT_RING an infra keeps while they are not acknowledged).
EXEC_ACK_DELAY = 5.0
EXEC_ACK_BACKLOG = 256
# Manifests accept any int64 grace period; timers take at most about a year.
MAX_GRACE_SECONDS = 366 * 24 * 3600
# kubelet's minimumGracePeriodInSeconds: what is left for the stop signal after preStop.
MIN_GRACE_AFTER_PRESTOP = 2.0
NETLINK_ROUTE = 0
# isolation.Namespaces names to clone(2) flags.
NAMESPACE_FLAGS = {
    "net": _native.CLONE_NEWNET,
    "ipc": _native.CLONE_NEWIPC,
    "uts": _native.CLONE_NEWUTS,
    "pid": _native.CLONE_NEWPID,
    "mnt": _native.CLONE_NEWNS,
}


def clone_flags(names: frozenset[str]) -> int:
    flags = 0
    for name in names:
        flags |= NAMESPACE_FLAGS[name]
    return flags


class Infra:
    """supd's end of one pod's infra: its process (pid, pidfd) and its frame socket."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pid: int,
        pidfd: int,
        sock: socket.socket,
        on_report: Callable[[Report, int], None],
        on_exit: Callable[[int], None],
        reaped: Callable[[int, Callable[[int], None]], int | None] | None = None,
    ) -> None:
        self.loop = loop
        self.pid = pid
        self.pidfd = pidfd
        self.sock = sock
        self.acked = 0  # the last report seq acknowledged
        self.seen = 0  # the last report seq dispatched
        self.pod_seq = 0  # the last one that was the pod's (not an exec's)
        # After each batch of reports: True when one in it was not an exec's.
        self.after_reports: Callable[[bool], None] = lambda changed: None
        self.listen_path: Path | None = None  # a pooled infra's socket, in RUN/pool-sockets
        self.pool_cgroup: str | None = None  # a pooled infra's cgroups (prepare_pooled)
        self.in_pod_cgroup = False  # it was in them when its pod took it
        self._on_report = on_report
        self._on_exit = on_exit
        self._reaped = reaped
        self._outbox: list[tuple[bytes, list[int]]] = []
        self.closed = False
        self.shutting_down = False
        # Exec ids are supd's: unique per infra, so a late report never reaches a new exec.
        self._execs: dict[int, tuple[ExecListener, str, str | None]] = {}
        self._next_eid = 1
        # It reads a capture exec's output itself (EXEC_CAPTURE). An infra of a supd from
        # before that, taken over, answers such a frame "frame: EBADF" (it wants 3 fds).
        self.captures = True
        loop.add_reader(sock.fileno(), self._readable)
        loop.add_reader(pidfd, self._exited)

    def send(self, frame: bytes, fds: tuple[int, ...] = ()) -> None:
        """Queue a frame (and fds, duplicated so the caller may close its own)."""
        self.send_owned(frame, [os.dup(fd) for fd in fds] if not self.closed else [])

    def send_owned(self, frame: bytes, fds: list[int]) -> None:
        """Queue a frame and fds that are the infra's from now on: closed once sent, or
        now if the infra is gone."""
        if self.closed:
            for fd in fds:
                os.close(fd)
            return
        self._outbox.append((frame, fds))
        if len(self._outbox) == 1:
            self._flush()

    def ack(self, seq: int) -> None:
        """Every report up to `seq` is recorded (restore.py): the infra may forget them."""
        if seq > self.acked:
            self.acked = seq
            self.send(_native.encode_ack(seq))

    def shutdown(self) -> None:
        """Ask the infra to end (once): it kills what is left, reports it, and exits."""
        if not self.shutting_down:
            self.shutting_down = True
            self.send(_native.encode_shutdown())
            self.after_reports(True)  # what it waits for: an ACK of what it has reported

    def start_exec(
        self,
        cid: int,
        argv: Sequence[str],
        env: Sequence[str],
        cwd: str | None,
        fds: tuple[int, int, int] | None,
        *,
        tty: bool = False,
        on_report: ExecListener,
    ) -> int:
        """Start argv inside running container instance `cid`, its stdin, stdout and stderr
        `fds` (duplicated: the caller keeps its own). Returns the exec id; `on_report` then
        gets ("exec_started", eid, pid) and ("exec_exited", eid, wait_status), or
        ("exec_failed", eid, SpawnError) alone, or ("exec_lost", eid) when supd lets go of
        the infra first. With `fds` None the infra captures the output (stdin /dev/null):
        no exec_started, and ("exec_exited", eid, wait_status, first 10 KiB of output).
        ValueError when argv, env or cwd cannot be encoded."""
        eid = self._next_eid
        frame = _native.encode_exec(eid, cid, argv, env, cwd, tty=tty, capture=fds is None)
        self._next_eid = eid + 1 if eid < 0xFFFFFFFF else 1
        self._execs[eid] = (on_report, argv[0], cwd)
        if self.closed:
            self.loop.call_soon(self._lose_exec, eid)
        else:
            self.send(frame, fds or ())
        return eid

    def signal_exec(self, eid: int, signo: int, group: bool = False) -> None:
        """Signal exec `eid` (and its process group), if it has not been reported gone."""
        if eid in self._execs:
            self.send(_native.encode_exec_signal(eid, signo, group))

    def forget_exec(self, eid: int) -> None:
        """No more reports for `eid` (its waiter gave up)."""
        self._execs.pop(eid, None)

    def _lose_exec(self, eid: int) -> None:
        entry = self._execs.pop(eid, None)
        if entry is not None:
            entry[0](("exec_lost", eid))

    def _dispatch(self, report: Report, seq: int) -> bool:
        """Hand a report to the pod (True) or to the exec it is about (False)."""
        self.seen = max(self.seen, seq)
        kind = report[0]
        if not kind.startswith("exec_"):
            self.pod_seq = max(self.pod_seq, seq)
            self._on_report(report, seq)
            return True
        eid = report[1]
        entry = self._execs.get(eid)
        if entry is None:
            return False
        on_report, argv0, cwd = entry
        if kind == "exec_failed":
            report = (kind, eid, _native.spawn_error(report[2], report[3], argv0, cwd))
        if kind != "exec_started":
            del self._execs[eid]
        on_report(report)
        return False

    def _flush(self) -> None:
        while self._outbox:
            frame, fds = self._outbox[0]
            try:
                if fds:
                    self.sock.sendmsg(
                        [frame], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
                    )
                else:
                    self.sock.send(frame)
            except BlockingIOError:
                self.loop.add_writer(self.sock.fileno(), self._flush)
                return
            except OSError as e:  # the infra is gone; its pidfd will say so
                log.debug("infra %d: send failed: %s", self.pid, e)
                self._drop_outbox()
                return
            self._outbox.pop(0)
            for fd in fds:
                os.close(fd)
        self.loop.remove_writer(self.sock.fileno())

    def _drop_outbox(self) -> None:
        for _frame, fds in self._outbox:
            for fd in fds:
                os.close(fd)
        self._outbox.clear()

    def _readable(self) -> None:
        reports = self.drain()
        changed = False
        for report, seq in reports:
            changed = self._dispatch(report, seq) or changed
        if reports:
            self.after_reports(changed)

    def drain(self) -> list[tuple[Report, int]]:
        reports = []
        while True:
            try:
                frame = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                frame = b""
            if not frame:
                self.loop.remove_reader(self.sock.fileno())
                break
            try:
                reports.append((_native.decode_report(frame), _native.report_seq(frame)))
            except ValueError as e:
                log.warning("infra %d: bad report frame: %s", self.pid, e)
        return reports

    def _exited(self) -> None:
        try:
            status = _native.waitid_pidfd(self.pidfd)
        except ChildProcessError:  # not ours to reap: the zygote's child, which reaps it
            status = self._reaped(self.pid, self._gone) if self._reaped is not None else -1
            if status is None:  # the zygote's report of it is on its way: _gone then
                self.loop.remove_reader(self.pidfd)
                return
        if status is None:
            return
        self._gone(status)

    def _gone(self, status: int) -> None:
        """The infra is gone with wait status `status` (-1: unknown)."""
        if self.closed:
            return
        for report, seq in self.drain():
            self._dispatch(report, seq)
        self.close()
        self._on_exit(status)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.pidfd)
        self.loop.remove_reader(self.sock.fileno())
        self.loop.remove_writer(self.sock.fileno())
        self._drop_outbox()
        self.sock.close()
        os.close(self.pidfd)
        for eid in list(self._execs):
            self._lose_exec(eid)


class InfraFactory:
    """supd's end of the zygote (_native/zygote.pyx), the small process that clones every
    infra so that supd never copies its own page tables for one: a SPAWN frame goes out with
    the infra's socket and the write end of its error pipe, and the SPAWNED reply (pid and
    pidfd) comes back as a loop event. Replies come in request order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.pid, self.pidfd = _native.start_zygote(theirs.fileno())
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self.sock = ours
        self.closed = False
        self._next_rid = 0
        self._waiting: dict[int, Callable[[int, int, int], None]] = {}
        self._statuses: dict[int, int] = {}
        self._status_waiters: dict[int, Callable[[int], None]] = {}
        loop.add_reader(ours.fileno(), self._readable)

    def spawn(
        self,
        sock: int,
        errfd: int,
        clone_flags: int,
        hostname: str,
        pdeathsig: int,
        done: Callable[[int, int, int], None],
        cgroup_dir: int = -1,
        listen: int = -1,
    ) -> None:
        """Ask for an infra on `sock` reporting its set-up on `errfd`, serving `listen` too
        when >= 0, cloned into the cgroup v2 directory `cgroup_dir` when >= 0 (the caller
        closes its copies); `done(pid, pidfd, errno)` is called from the loop, pid -1 when
        it failed."""
        self._next_rid = (self._next_rid + 1) & 0xFFFFFFFF
        rid = self._next_rid
        cgroup = cgroup_dir >= 0
        frame = _native.encode_zygote_spawn(
            rid, clone_flags, hostname, pdeathsig, listen=listen >= 0, cgroup=cgroup
        )
        if self.closed:
            raise OSError(errno.EPIPE, "the infra factory is gone")
        fds = [sock, errfd] + ([listen] if listen >= 0 else []) + ([cgroup_dir] if cgroup else [])
        self.sock.sendmsg([frame], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        self._waiting[rid] = done

    def reaped(self, pid: int, then: Callable[[int], None] | None = None) -> int | None:
        """The wait status of an infra the zygote reaped. When the zygote has not said yet:
        None, and `then(status)` is called from the loop once it does (-1 if the zygote goes
        first); -1 without `then`. Its pidfd can poll readable before the zygote's report."""
        status = self._statuses.pop(pid, None)
        if status is not None:
            return status
        if then is None or self.closed:
            return -1
        self._status_waiters[pid] = then
        return None

    def _readable(self) -> None:
        while not self.closed:
            try:
                frame, ancdata, _flags, _addr = self.sock.recvmsg(
                    64, socket.CMSG_SPACE(4 * array.array("i").itemsize)
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                frame, ancdata = b"", []
            fds = array.array("i")
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            if not frame:
                log.warning("infra factory %d exited; starting another", self.pid)
                self.close()
                return
            try:
                reply = _native.decode_zygote_reply(frame)
            except ValueError as e:
                log.warning("infra factory: bad frame: %s", e)
                for fd in fds:
                    os.close(fd)
                continue
            if reply[0] == "exited":
                waiter = self._status_waiters.pop(reply[1], None)
                if waiter is not None:
                    self.loop.call_soon(waiter, reply[2])
                    continue
                if len(self._statuses) > 4096:  # infras nobody asked about (detached pods)
                    self._statuses.clear()
                self._statuses[reply[1]] = reply[2]
                continue
            _kind, rid, pid, err = reply
            done = self._waiting.pop(rid, None)
            pidfd = fds[0] if pid > 0 and fds else -1
            for fd in fds[1:] if pidfd >= 0 else fds:
                os.close(fd)
            if done is None:
                if pidfd >= 0:
                    os.close(pidfd)
                continue
            done(pid if pidfd >= 0 else -1, pidfd, err if pidfd < 0 and err else 0)

    def close(self) -> None:
        """Let the zygote go (it exits when its socket hangs up) and reap it; pending
        spawns fail. The wait is bounded: the zygote ends as soon as it reads the EOF."""
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        with contextlib.suppress(OSError):
            select.select([self.pidfd], [], [], ZYGOTE_EXIT_WAIT)
            _native.waitid_pidfd(self.pidfd)
        os.close(self.pidfd)
        status_waiters, self._status_waiters = self._status_waiters, {}
        for then in status_waiters.values():
            self.loop.call_soon(then, -1)
        waiting, self._waiting = self._waiting, {}
        for done in waiting.values():
            done(-1, -1, errno.EPIPE)


@dataclass
class Pod:
    spec: PodSpec
    status: PodStatus
    directory: Path  # in the state dir: its manifest, logs, volumes (store.py)
    run: Path  # in the run dir: its record, infra socket, etc/ and shm/
    changed: asyncio.Future[None]
    gone: asyncio.Future[None]
    infra: Infra | None = None
    instances: dict[int, str] = field(default_factory=dict)
    next_instance: int = 1
    final_saved: bool = False  # its terminal record is in the state dir too (_persist)
    logs: dict[str, list[Path]] = field(default_factory=dict)
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    deleted_at: float | None = None
    grace: int | None = None
    sandbox_backoff: float = 0.0
    # The termination sequence: its task, and the time (loop clock) by which a deletion
    # with a shorter grace period wants everything killed.
    stop_task: asyncio.Task[None] | None = None
    hurry_at: float = math.inf
    hurry: asyncio.Future[None] | None = None
    exits: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    probes: dict[str, list[ProbeWorker]] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    namespaces: Namespaces = field(default_factory=Namespaces)
    # Network, cgroups, host ports: the sandbox's resources outside its namespaces.
    address: PodAddress | None = None
    network_task: asyncio.Task[None] | None = None
    sandbox_failure: str | None = None  # the infra is being stopped because of this
    cgroups_made: set[str] = field(default_factory=set)
    oom_base: dict[str, int] = field(default_factory=dict)
    finishing: bool = False
    # Filesystem isolation: the pod's volumes and etc files are ready (once per pod), and
    # what each instance's filesystem operations were, to name the one that failed.
    fs_ready: bool = False
    fs_descriptions: dict[int, list[str]] = field(default_factory=dict)
    sandbox_pending: bool = False  # the zygote is making its infra
    # Live restore (restore.py): the seq of the last report of `infra` applied to the
    # status, that infra's (pid, start time), a status write waiting for the loop, and
    # while a restored pod's reports are replayed, the last one and the cids alive then.
    applied_seq: int = 0
    infra_identity: tuple[int, int] | None = None
    persisting: asyncio.Handle | None = None
    acks_due: asyncio.TimerHandle | None = None  # an ACK of exec reports alone, later
    recorded: tuple[Infra, int] | None = None  # the infra and seq its last record written holds
    replay_until: int | None = None
    live_cids: set[int] = field(default_factory=set)

    @property
    def key(self) -> str:
        return self.spec.key


class Runtime:
    """Owns every pod on this host and carries out the lifecycle's decisions."""

    def __init__(
        self,
        store: Store,
        events: EventLog,
        *,
        node: str | None = None,
        backoff: BackoffPolicy | None = None,
        pods_die_with_supd: bool = False,
        isolation: Isolation = Isolation.FULL,
        isolation_why: str = "",
        network: Network | None = None,
        cgroups: Cgroups | None = None,
        hostports: HostPorts | None = None,
        pod_pids_limit: int | None = None,
        cluster_domain: str = "cluster.local",
        rootless: bool = False,
        clock: Callable[[], float] = time.time,
        images: ImageStore | None = None,
        pool_size: int = 2,
        infra_factory: bool = True,
        log_rotation: LogRotation | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.log_rotation = log_rotation or LogRotation()
        self.store = store
        self.events = events
        self.node = node or socket.gethostname()
        self.backoff = backoff or BackoffPolicy()
        self.pods_die_with_supd = pods_die_with_supd
        self.isolation = isolation
        self.isolation_why = isolation_why  # why namespaces are unavailable, for messages
        self.network = network or Network(NetworkConfig(mode="none"))
        self.cgroups = cgroups or NoCgroups("cgroups disabled")
        self.hostports = hostports or HostPorts()
        self.pod_pids_limit = pod_pids_limit
        self.cluster_domain = cluster_domain
        self.rootless = rootless  # supd in a user namespace of its own (enter_user_namespace)
        # Capabilities a container can get at most (supd's own bounding set), and the user
        # a container without runAsUser runs as (supd's: there is no image user).
        self.available_caps = own_bounding_set()
        self.default_uid = os.geteuid()
        self._teardowns: set[asyncio.Task[None]] = set()
        self.leftover_cgroups: list[str] = []
        self.clock = clock
        self.images = images if images is not None else ImageStore(store.root)
        self.overlay, self.overlay_why = (
            probe_overlay(self.images.tmp) if isolation is Isolation.FULL else (False, "")
        )
        if not self.overlay and isolation is Isolation.FULL:
            log.warning(
                "overlayfs is not available under %s (%s): image containers get a copy of "
                "their image instead, slower to start but with the same isolation",
                self.images.tmp,
                self.overlay_why,
            )
        self.started = self.loop.time()
        self.pods: dict[str, Pod] = {}
        # (type, v1 Pod) for `get -w` watchers: ADDED, MODIFIED, DELETED.
        self.feed: Broadcast[tuple[str, dict[str, Any]]] = Broadcast()
        # Changes not yet rendered for the feed (`_publish`), and each pod's last one.
        self._unpublished: list[tuple[str, Pod]] = []
        self._last_unpublished: dict[str, tuple[str, Pod] | None] = {}
        # Called with (pod, container name, log path) when an instance is asked to start.
        self.on_container_start: list[Callable[[Pod, str, Path], None]] = []
        # Started now, while supd is small: every infra is a copy of the zygote's image.
        # Not for `supd run` and PID 1 mode (infra_factory False): their pods start once,
        # and a container's init should hold no process that no pod asked for.
        self.use_factory = infra_factory
        self._factory: InfraFactory | None = None
        self._factory_or_none()
        # Infras made ahead of their pods, recorded in RUN/pool so that the next supd
        # stops them if this one dies without doing so.
        # Only the common sandbox comes from the pool: new net, ipc and uts namespaces, no
        # cgroup v2 directory to clone into, and not rootless (naming a pooled infra steps
        # into its UTS namespace and back, which a user namespace's owner cannot do).
        full = isolation is Isolation.FULL and self.cgroups.version != 2
        self.pool_size = pool_size if full and infra_factory and not rootless else 0
        self._pool: list[Infra] = []
        self._pool_pending = 0
        self._pool_closed = False
        self._refills: dict[str, tuple[int, asyncio.TimerHandle]] = {}
        self._pool_serial = 0  # names the pooled infras' sockets in RUN/pool
        self._pool_cgroup_tasks: set[asyncio.Task[None]] = set()  # remove_pooled calls
        # supd's ends of infras asked of the zygote and not yet serving (pods' and pooled).
        self._pending_socks: set[socket.socket] = set()
        self._pool_dir = store.run / "pool"
        self._pool_dir.mkdir(exist_ok=True, mode=0o700)
        # Their listening sockets (restore.py), moved into a pod's directory with the infra.
        self._pool_sockets = store.run / "pool-sockets"
        self._pool_sockets.mkdir(exist_ok=True, mode=0o700)
        # A previous supd's records: killed once the pods it left are taken over (a pod
        # may hold one of them, its record not yet removed), or now when none can be.
        self._stale_pool = read_pool_records(self._pool_dir)
        # The records (status.json, infra, the pool's): at once in a run dir in memory,
        # on a thread elsewhere (ext4 metadata operations cost 0.1-1 ms each here).
        self.writer = Writer(self.loop, store.run if store.run_in_memory else None)
        if pods_die_with_supd:
            self.kill_stale_pool(set())
        for stale in self._pool_sockets.iterdir():
            stale.unlink(missing_ok=True)
        self._fill_pool()

    # -- pods -----------------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> Pod:
        pod = self.pods.get(f"{namespace}/{name}")
        if pod is None:
            raise NotFound(f'pods "{name}" not found', {"namespace": namespace, "name": name})
        return pod

    def view(self, pod: Pod) -> dict[str, Any]:
        return render_pod(
            pod.spec, pod.status, node=self.node, deleted_at=pod.deleted_at, grace=pod.grace
        )

    def admit(self, spec: PodSpec) -> Namespaces:
        """Whether this supd can run `spec` (check before persisting it): its namespaces, or
        PermissionDenied naming the privilege it lacks; InvalidArgument for a bad
        signal-forwarding annotation."""
        pod_policy(dict(spec.annotations), SignalPolicy())
        namespaces = plan_namespaces(spec, self.isolation, self.isolation_why)
        self._admit_resources(spec, namespaces)
        return namespaces

    def create(self, spec: PodSpec, directory: Path, namespaces: Namespaces | None = None) -> Pod:
        """Start a pod whose spec is already persisted in `directory` (and admitted: its
        `namespaces`, or None to admit it again)."""
        now = self.clock()
        pod = Pod(
            spec=spec,
            status=lifecycle.new_status(spec, now),
            directory=directory,
            run=self.store.run_of(directory),
            changed=self.loop.create_future(),
            gone=self.loop.create_future(),
            namespaces=namespaces if namespaces is not None else self.admit(spec),
        )
        self.pods[spec.key] = pod
        self._event(
            pod,
            PodEvent(
                EventType.NORMAL, "Scheduled", f"Successfully assigned {spec.key} to {self.node}"
            ),
            now,
        )
        self._publish(pod, "ADDED")
        if spec.active_deadline_seconds is not None:
            self._schedule(
                pod, "deadline", now + spec.active_deadline_seconds, lambda: self._deadline(pod)
            )
        self._start_sandbox(pod)
        self.flush_watchers()  # its ADDED, once its first START is on its way
        return pod

    def _deadline(self, pod: Pod) -> None:
        """activeDeadlineSeconds, counted from the pod's start: it fails, and stops."""
        if pod.status.phase.terminal or pod.status.stopping:
            return
        now = self.clock()
        self._apply(pod, lifecycle.deadline_exceeded(pod.spec, pod.status, now), now)

    def _pdeathsig(self) -> int:
        return signal.SIGKILL if self.pods_die_with_supd else 0

    def _factory_or_none(self) -> InfraFactory | None:
        if not self.use_factory:
            return None
        if self._factory is None or self._factory.closed:
            try:
                self._factory = InfraFactory(self.loop)
            except OSError as e:
                log.warning("cannot start the infra factory: %s", e)
                self._factory = None
        return self._factory

    def _start_sandbox(self, pod: Pod) -> None:
        """Make the pod's infra: a pooled one when the pod's sandbox is the common kind, else
        one the zygote clones while the loop carries on (`_sandbox_spawned` takes the reply).
        The zygote clones it into its cgroup v2 directory too (CLONE_INTO_CGROUP); supd
        clones it itself for what the zygote does not do (sysctls) and when there is no
        zygote."""
        if pod.status.stopping or pod.sandbox_pending:
            return
        spec = pod.spec
        flags = clone_flags(pod.namespaces.pod)
        hostname = spec.pod_hostname if "uts" in pod.namespaces.pod else ""
        try:
            # A pooled infra brings the pod's cgroup along, or _take_pooled makes it.
            self._start_host_ports(pod)
            if not spec.sysctls and flags == POOL_FLAGS and self._take_pooled(pod):
                return
            self.cgroups.create_pod(spec.uid, pod_limits(spec, self.pod_pids_limit))
            into = self.cgroups.infra_placement(spec.uid)
        except SupervisorError as e:
            self._sandbox_failed(pod, f"create pod sandbox: {e}")
            return
        factory = self._factory_or_none() if not spec.sysctls else None
        try:
            listener = self._listener(pod.run)
        except OSError as e:
            if into is not None:
                into.close()
            self._sandbox_failed(pod, f"create pod sandbox: bind {restore.SOCKET}: {e}")
            return
        listen = listener.fileno() if listener is not None else -1
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError as e:  # EMFILE, ENFILE: FailedCreatePodSandBox, retried
            if into is not None:
                into.close()
            if listener is not None:
                listener.close()
            self._sandbox_failed(pod, f"create pod sandbox: socketpair: {e.strerror}")
            return
        ours.setblocking(False)
        if factory is None:
            try:
                # exit_signal 0: infra's exit reaches supd only through its pidfd, so the
                # orphan reaper of PID 1 mode (waitpid(-1), init.py) can never take its status.
                pid, pidfd = _native.spawn_infra(
                    theirs.fileno(),
                    clone_flags=flags,
                    hostname=hostname,
                    pdeathsig=self._pdeathsig(),
                    exit_signal=0,
                    sysctls=[(security.sysctl_path(n), v) for n, v in spec.sysctls],
                    cgroup_dir=into.fds[0] if into is not None else -1,
                    listen=listen,
                )
            except OSError as e:
                ours.close()
                self._sandbox_failed(pod, f"create pod sandbox: {e}{privilege_hint(e)}")
                return
            finally:
                theirs.close()
                if listener is not None:
                    listener.close()
                if into is not None:
                    into.close()
            self._sandbox_made(pod, ours, pid, pidfd, None)
            return
        try:
            r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as e:
            for sock in (ours, theirs):
                sock.close()
            if into is not None:
                into.close()
            self._sandbox_failed(pod, f"create pod sandbox: pipe: {e.strerror}")
            return
        try:
            factory.spawn(
                theirs.fileno(),
                w,
                flags,
                hostname,
                self._pdeathsig(),
                lambda pid, pidfd, err: self._sandbox_spawned(
                    pod, factory, ours, r, pid, pidfd, err
                ),
                cgroup_dir=into.fds[0] if into is not None else -1,
                listen=listen,
            )
        except OSError as e:
            ours.close()
            os.close(r)
            self._sandbox_failed(pod, f"create pod sandbox: {e}")
            return
        finally:
            theirs.close()
            os.close(w)
            if listener is not None:
                listener.close()
            if into is not None:
                into.close()
        pod.sandbox_pending = True
        self._pending_socks.add(ours)

    def _listener(self, directory: Path, name: str = restore.SOCKET) -> socket.socket | None:
        """The socket a pod's infra listens on for the next supd (restore.py); none when
        the pods end with supd. The infra keeps the only copy once it is made."""
        if self.pods_die_with_supd:
            return None
        return restore.bind_listener(directory, name)

    def _sandbox_spawned(
        self,
        pod: Pod,
        factory: InfraFactory,
        ours: socket.socket,
        r: int,
        pid: int,
        pidfd: int,
        err: int,
    ) -> None:
        """The zygote cloned the infra (or failed to): wait for the end of its set-up,
        which its error pipe tells (EOF: serving; a record: the step that failed)."""

        def failed(message: str) -> None:
            pod.sandbox_pending = False
            self._sandbox_failed(pod, f"create pod sandbox: {message}")

        def ready() -> None:
            pod.sandbox_pending = False
            self._sandbox_made(pod, ours, pid, pidfd, factory.reaped)

        self._when_set_up(ours, r, pid, pidfd, err, ready, failed)

    def _when_set_up(
        self,
        ours: socket.socket,
        r: int,
        pid: int,
        pidfd: int,
        err: int,
        ready: Callable[[], None],
        failed: Callable[[str], None],
    ) -> None:
        """After the zygote's reply: `ready()` once the infra's error pipe reaches EOF with
        no record, else `failed(message)` with the fds closed."""
        if pid < 0:
            self._pending_socks.discard(ours)
            ours.close()
            os.close(r)
            failed(f"clone: {os.strerror(err)}")
            return

        def readable() -> None:
            try:
                data = os.read(r, 8)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            self.loop.remove_reader(r)
            os.close(r)
            self._pending_socks.discard(ours)
            if len(data) == 8:
                step, code = struct.unpack("ii", data)
                ours.close()
                os.close(pidfd)
                error = _native.spawn_error(step, code, "supd-infra")
                failed(f"{error}{privilege_hint(error)}")
                return
            ready()

        self.loop.add_reader(r, readable)
        readable()  # it has often finished already

    def _sandbox_made(
        self,
        pod: Pod,
        ours: socket.socket,
        pid: int,
        pidfd: int,
        reaped: Callable[[int, Callable[[int], None]], int | None] | None,
    ) -> None:
        infra = Infra(self.loop, pid, pidfd, ours, lambda r, q: None, lambda s: None, reaped)
        if self.pods.get(pod.key) is not pod or pod.status.stopping:
            infra.shutdown()  # deleted while its infra was being made: let it go at once
            return
        self._adopt(pod, infra)

    def _adopt(self, pod: Pod, infra: Infra) -> None:
        """`infra` serves and is the pod's from now on: its cgroup, its network, and then
        its containers."""
        self._wire(pod, infra)
        pod.applied_seq = 0  # a new infra numbers its reports from 1
        starts = pod.next_instance
        self._sandbox_started(pod, infra)
        # After the containers' START frames: the infra's record (for a later supd to find
        # it) costs file operations that the first container need not wait for.
        if self.pods.get(pod.key) is pod and pod.infra is infra:
            pod.infra_identity = (infra.pid, process_start_time(infra.pid))
            pid, start = pod.infra_identity
            self.writer.write(pod.run / "infra", f"{pid} {start}\n".encode())
            if pod.next_instance == starts:
                self._persist_soon(pod)
            elif pod.persisting is not None:
                # A START is on its way: the pod's record waits for the first report, whose
                # write holds all this and more. Written now, it would hold up that report
                # (waiting makes apply -> Running of one pod at a time 0.79-0.92x as long,
                # benchmarks/alternate.py); a supd that dies before the report leaves the
                # next one the infra's replay, which is all it needs (resume).
                pod.persisting.cancel()
                pod.persisting = None

    def _wire(self, pod: Pod, infra: Infra) -> None:
        infra._on_report = lambda report, seq: self._on_report(pod, report, seq)
        infra._on_exit = lambda status: self._on_infra_exit(pod, status)
        # Every report is acknowledged once the record written after it holds its effect;
        # an infra told to shut down waits for that before it exits.
        infra.after_reports = lambda changed: self._after_reports(pod, changed)
        pod.infra = infra

    # -- infras made ahead of their pods ------------------------------------------------------

    def _take_pooled(self, pod: Pod) -> bool:
        """Give the pod a pooled infra (named now) and the pod's cgroup; False when none is
        ready. SupervisorError when the cgroup cannot be made (the infra is let go)."""
        while self._pool:
            infra = self._pool.pop()
            try:
                _native.set_hostname(infra.pidfd, pod.spec.pod_hostname)
            except OSError as e:
                log.warning("pooled infra %d: set hostname: %s", infra.pid, e)
                self._drop_pooled(infra)
                continue
            try:
                self._pooled_cgroup(pod, infra)
            except SupervisorError:
                self._drop_pooled(infra)
                raise
            if not self.pods_die_with_supd:
                # Its listening socket moves into the pod's directory before it is told to
                # outlive supd: the next supd finds it there, or it dies with this one.
                self._move_listener(infra, pod.run / restore.SOCKET)
                infra.send(_native.encode_keep())  # a pod's infra outlives supd
            # Refill once the pod's first container has been started (its first report),
            # not now: making the next infra (a network namespace, its set-up) would compete
            # with that start for the cores. A timer covers pods that start nothing.
            timer = self.loop.call_later(POOL_REFILL_DELAY, self._refill_after, pod.key)
            self._refills[pod.key] = (infra.pid, timer)
            self._adopt(pod, infra)
            return True
        return False

    def _pooled_cgroup(self, pod: Pod, infra: Infra) -> None:
        """The pod's cgroup: the one made with the pooled infra, renamed, or a new one."""
        limits = pod_limits(pod.spec, self.pod_pids_limit)
        key, infra.pool_cgroup = infra.pool_cgroup, None
        if key is not None:
            try:
                self.cgroups.claim_pooled(key, pod.spec.uid, limits, infra.pid)
                infra.in_pod_cgroup = True
                return
            except SupervisorError as e:
                log.warning("pod %s: cgroup of pooled infra %d: %s", pod.key, infra.pid, e)
                # Empty once add_infra has moved the infra out (_sandbox_started).
                self.loop.call_soon(self._remove_pool_cgroup, key)
        self.cgroups.create_pod(pod.spec.uid, limits)

    def _remove_pool_cgroup(self, key: str) -> None:
        task = self.loop.create_task(self.cgroups.remove_pooled(key))
        self._pool_cgroup_tasks.add(task)
        task.add_done_callback(self._pool_cgroup_tasks.discard)

    async def remove_pool_cgroups(self) -> None:
        """At supd's exit: the pooled infras' cgroups, once their infras are gone."""
        if self._pool_cgroup_tasks:
            await asyncio.gather(*self._pool_cgroup_tasks, return_exceptions=True)

    def _refill_after(self, key: str) -> None:
        """The pod `key` took a pooled infra: forget its record and make the next one."""
        entry = self._refills.pop(key, None)
        if entry is not None:
            entry[1].cancel()
            self._forget_pooled(entry[0])

    def _fill_pool(self) -> None:
        """Keep `pool_size` infras (the common flags, no name yet) made ahead: the network
        namespace and the infra's set-up then happen before `apply`, not during it."""
        if self._pool_closed:
            return
        while len(self._pool) + self._pool_pending < self.pool_size:
            factory = self._factory_or_none()
            if factory is None:
                return
            self._pool_serial += 1
            name = f"{self._pool_serial}.sock"
            try:
                listener = self._listener(self._pool_sockets, name)
            except OSError as e:
                log.warning("infra pool: bind %s: %s", self._pool_sockets / name, e)
                return
            path = self._pool_sockets / name if listener is not None else None
            try:
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            except OSError as e:  # EMFILE: the pool refills when a pod next takes one
                log.warning("infra pool: socketpair: %s", e)
                self._drop_listener(listener, path)
                return
            ours.setblocking(False)
            try:
                r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            except OSError as e:
                log.warning("infra pool: pipe: %s", e)
                ours.close()
                theirs.close()
                self._drop_listener(listener, path)
                return
            try:
                # SIGKILL when its parent, the zygote, dies (with supd): a pooled infra holds
                # no pod and must not outlive the supd that made it, even one killed before
                # it recorded the infra in RUN/pool. The pod that takes it clears that.
                factory.spawn(
                    theirs.fileno(),
                    w,
                    POOL_FLAGS,
                    "",
                    signal.SIGKILL,
                    functools.partial(self._pooled_spawned, factory, ours, r, path),
                    listen=listener.fileno() if listener is not None else -1,
                )
            except OSError as e:
                log.warning("infra pool: %s", e)
                ours.close()
                os.close(r)
                if path is not None:
                    path.unlink(missing_ok=True)
                return
            finally:
                theirs.close()
                os.close(w)
                if listener is not None:
                    listener.close()
            self._pool_pending += 1
            self._pending_socks.add(ours)

    def _pooled_spawned(
        self,
        factory: InfraFactory,
        ours: socket.socket,
        r: int,
        listen_path: Path | None,
        pid: int,
        pidfd: int,
        err: int,
    ) -> None:
        def ready() -> None:
            self._pool_pending -= 1
            infra = Infra(
                self.loop, pid, pidfd, ours, lambda r, q: None, lambda s: None, factory.reaped
            )
            infra.listen_path = listen_path
            infra._on_exit = lambda status: self._pooled_exited(infra)
            if self._pool_closed:
                infra.shutdown()
                return
            infra.pool_cgroup = self.cgroups.prepare_pooled(pid)

            def written(e: OSError | None) -> None:
                if e is not None:
                    log.warning("infra pool: record %d: %s", pid, e)

            record = f"{pid} {process_start_time(pid)}\n".encode()
            self.writer.write(self._pool_dir / str(pid), record, written)
            self._pool.append(infra)

        def failed(message: str) -> None:
            self._pool_pending -= 1
            if listen_path is not None:
                listen_path.unlink(missing_ok=True)
            log.warning("infra pool: %s", message)

        self._when_set_up(ours, r, pid, pidfd, err, ready, failed)

    @staticmethod
    def _drop_listener(listener: socket.socket | None, path: Path | None) -> None:
        if listener is not None:
            listener.close()
        if path is not None:
            path.unlink(missing_ok=True)

    def _move_listener(self, infra: Infra, to: Path) -> None:
        if infra.listen_path is None:
            return
        try:
            os.rename(infra.listen_path, to)
        except OSError as e:
            log.warning("infra %d: move its socket to %s: %s", infra.pid, to, e)
        infra.listen_path = None

    def _pooled_exited(self, infra: Infra) -> None:
        if infra in self._pool:
            self._pool.remove(infra)
        if infra.listen_path is not None:
            infra.listen_path.unlink(missing_ok=True)
        self._let_go_of_cgroup(infra)
        self._forget_pooled(infra.pid)

    def _forget_pooled(self, pid: int) -> None:
        self.writer.write(self._pool_dir / str(pid), None)
        self._fill_pool()

    def _let_go_of_cgroup(self, infra: Infra) -> None:
        """A pooled infra that no pod took: its cgroup goes (once the infra is gone)."""
        key, infra.pool_cgroup = infra.pool_cgroup, None
        if key is not None:
            self._remove_pool_cgroup(key)

    def _drop_pooled(self, infra: Infra) -> None:
        def exited(status: int) -> None:
            self._let_go_of_cgroup(infra)
            self._forget_pooled(infra.pid)

        infra._on_exit = exited
        infra.shutdown()

    def kill_stale_pool(self, taken_over: set[int]) -> None:
        """SIGKILL the pooled infras a previous supd left, but those a pod of it took
        (now taken over, in `taken_over`): the others hold no pod."""
        stale, self._stale_pool = self._stale_pool, []
        for pid, start in stale:
            if pid not in taken_over and process_start_time(pid) == start:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    def close_pool(self) -> None:
        """Let the pooled infras go (supd is leaving; they are no pod's)."""
        self._pool_closed = True
        for infra in self._pool:
            infra.shutdown()
            infra.close()
            self._let_go_of_cgroup(infra)  # its removal kills it if it outlives the shutdown
            self.writer.write(self._pool_dir / str(infra.pid), None)
            if infra.listen_path is not None:
                infra.listen_path.unlink(missing_ok=True)
        self._pool.clear()
        self.writer.flush()  # supd may be leaving: what it leaves must be on disk first

    def _sandbox_failed(self, pod: Pod, message: str) -> None:
        """kubelet's FailedCreatePodSandBox: the pod stays Pending and creation is retried
        with the same backoff as container restarts."""
        now = self.clock()
        step = next_restart(self.backoff, pod.sandbox_backoff, 0.0)
        delay = max(step.delay, self.backoff.initial)
        pod.sandbox_backoff = step.next
        pod.status.reason, pod.status.message = "FailedCreatePodSandBox", message
        self._event(pod, PodEvent(EventType.WARNING, "FailedCreatePodSandBox", message), now)
        self._schedule(pod, "", now + delay, lambda: self._start_sandbox(pod))
        self._publish(pod, "MODIFIED")

    # -- network, host ports, cgroups and the security context ---------------------------------

    def _admit_resources(self, spec: PodSpec, namespaces: Namespaces) -> None:
        """What the pod asks of the kernel that this supd cannot give, as an error at apply
        time: limits without their cgroup controller, sysctls of a namespace the pod shares
        with the host."""
        for i, (name, _value) in enumerate(spec.sysctls):
            ns = security.sysctl_namespace(name)
            if ns is not None and ns not in namespaces.pod:
                field_ = "spec.hostNetwork" if ns == "net" else "spec.hostIPC"
                raise InvalidArgument(
                    f"spec.securityContext.sysctls[{i}].name: Forbidden: {name!r} is set in the "
                    f"pod's {ns} namespace, and the pod uses the host's ({field_}: true)"
                )
        self.cgroups.check_limits(pod_limits(spec, self.pod_pids_limit), "resources.limits")
        if self.rootless:
            self._admit_rootless(spec)

    def _admit_rootless(self, spec: PodSpec) -> None:
        """What a rootless supd cannot give: the host's network (it has a network namespace
        of its own, so no hostNetwork and no hostPort), and any id but 0 (the only one its
        user namespace maps)."""
        why = "supd runs rootless"
        if spec.host_network:
            raise PermissionDenied(
                f"spec.hostNetwork: Forbidden: {why}, in a network namespace of its own: the "
                "host's network is out of its reach; leave hostNetwork out"
            )
        for c in spec.init_containers + spec.containers:
            for h in c.host_ports:
                raise PermissionDenied(
                    f"{h.field}: Forbidden: {why}, in a network namespace of its own: a host "
                    "port would not be reachable from the host; leave hostPort out"
                )
            sc = c.security
            ids = [sc.run_as_user, sc.run_as_group, *sc.supplemental_groups]
            if any(i not in (None, 0) for i in ids):
                raise PermissionDenied(
                    f"container {c.name!r}: runAsUser, runAsGroup and supplementalGroups other "
                    f"than 0 are not available: {why} and its user namespace maps only uid and "
                    "gid 0 (your own); leave them out or start supd as root"
                )

    def host_ports_of(self, pod: Pod | PodSpec) -> list[PortMapping]:
        """The pod's hostPorts to forward: none for a pod in the host's network namespace,
        where a container binds its host port itself."""
        spec = pod.spec if isinstance(pod, Pod) else pod
        if "net" not in (pod.namespaces if isinstance(pod, Pod) else self.admit(spec)).pod:
            return []
        return [
            PortMapping(h.host_port, h.container_port, h.protocol, h.host_ip, h.field)
            for c in spec.init_containers + spec.containers
            for h in c.host_ports
        ]

    def reserve_ports(self, spec: PodSpec) -> None:
        """Bind the pod's host ports now (apply time): Conflict when one is taken."""
        self.hostports.reserve(spec.key, self.host_ports_of(spec))

    def _start_host_ports(self, pod: Pod) -> None:
        """Before infra: the host ports (kept across sandboxes)."""
        self.hostports.reserve(pod.key, self.host_ports_of(pod))  # done at apply, or now
        self._spawn(pod, self.hostports.start(pod.key))

    def _sandbox_started(self, pod: Pod, infra: Infra) -> None:
        """infra runs: put it into the pod's cgroup, give it its network, and only then let
        containers start (kubelet: the sandbox is ready once its network is)."""
        try:
            # v2 cloned it there already; a pooled one may have brought its cgroup along.
            if self.cgroups.version == 1 and not infra.in_pod_cgroup:
                self.cgroups.add_infra(pod.spec.uid, infra.pid)
        except SupervisorError as e:
            self._abandon_sandbox(pod, f"create pod sandbox: {e}")
            return
        if self.network.mode == "bridge" and "net" in pod.namespaces.pod:
            task = self.loop.create_task(self._attach_network(pod, infra))
            pod.tasks.add(task)
            task.add_done_callback(self._task_done(pod))
            pod.network_task = task
            return
        self._sandbox_ready(pod, None)

    async def _attach_network(self, pod: Pod, infra: Infra) -> None:
        def open_netlink() -> socket.socket:
            fd = _native.socket_in_netns(infra.pidfd, socket.AF_NETLINK, socket.SOCK_DGRAM,
                                         NETLINK_ROUTE)  # fmt: skip
            return socket.socket(fileno=fd)

        try:
            address = await self.network.attach(pod.spec.uid, infra.pid, open_netlink)
        except SupervisorError as e:
            if pod.infra is infra:
                self._abandon_sandbox(pod, f"create pod sandbox: {e}")
            return
        if pod.infra is infra and not infra.closed:
            self._sandbox_ready(pod, address)

    def _abandon_sandbox(self, pod: Pod, message: str) -> None:
        """Stop an infra whose sandbox could not be completed; its exit schedules a retry."""
        if pod.infra is None:
            return
        pod.sandbox_failure = message
        pod.infra.shutdown()

    def _sandbox_ready(self, pod: Pod, address: PodAddress | None) -> None:
        spec = pod.spec
        pod.address = address
        own_net = "net" in pod.namespaces.pod
        pod.status.pod_ip = address.ip if address else (None if own_net else "127.0.0.1")
        if own_net:
            self.hostports.set_target(pod.key, self._port_target(pod, address))
        now = self.clock()
        self._apply(pod, lifecycle.sandbox_created(spec, pod.status, now), now)

    def _port_target(self, pod: Pod, address: PodAddress | None) -> Any:
        """Where host ports reach the pod: its IP on the bridge, else its loopback, through
        a socket made inside its network namespace."""
        if address is not None:
            return (lambda kind: socket.socket(socket.AF_INET, kind), address.ip)

        def inside(kind: int) -> socket.socket:
            if pod.infra is None:
                raise OSError(errno.ESRCH, "the pod's sandbox is gone")
            return socket.socket(
                fileno=_native.socket_in_netns(pod.infra.pidfd, socket.AF_INET, kind)
            )

        return (inside, "127.0.0.1")

    async def _cancel_network_task(self, pod: Pod) -> None:
        task, pod.network_task = pod.network_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _container_identity(
        self, pod: Pod, c: ContainerSpec, uid: int, gid: int, image: bool, now: float
    ) -> dict[str, Any] | None:
        """The START frame's ids and security context, or None after reporting why the
        container cannot be created (kubelet's CreateContainerConfigError). `uid` and `gid`
        are the image's user (-1: none; the container then runs as supd's own user):
        runAsUser and runAsGroup override them."""
        sc = c.security
        why = security.non_root_violation(sc, uid if uid >= 0 else self.default_uid)
        if why is not None:
            st = pod.status.container(c.name)
            spec = pod.spec
            st.reason = Reason.CREATE_CONTAINER_CONFIG_ERROR
            st.message = (
                f'{why} (pod: "{spec.name}_{spec.namespace}({spec.uid})", container: {c.name})'
            )
            event = PodEvent(EventType.WARNING, "Failed", f"Error: {st.message}", c.name)
            self._event(pod, event, now)
            return None
        ids: dict[str, Any] = {
            "caps": security.capability_mask(sc, self.available_caps),
            "no_new_privs": security.no_new_privs(sc),
            "uid": uid,
            "gid": gid,
        }
        if sc.run_as_user is None and sc.run_as_group is None and not sc.supplemental_groups:
            return ids  # the image's user, or supd's own user and groups
        if sc.run_as_user is not None:
            uid = sc.run_as_user
            gid = -1  # the image's group of its own user does not carry over
        elif uid < 0:
            uid = self.default_uid
        if sc.run_as_group is not None:
            gid = sc.run_as_group
        elif gid < 0:
            gid = 0 if image else _primary_gid(uid)
        groups = list(sc.supplemental_groups)
        if not sc.supplemental_groups_strict and not image:
            # Merge: also the user's groups in /etc/group (the host's: no image).
            user_groups = _user_groups(uid, gid)
            groups = user_groups + [g for g in groups if g not in user_groups]
        ids.update(uid=uid, gid=gid, groups=[g for g in dict.fromkeys(groups) if g != gid])
        return ids

    def _container_cgroup(self, pod: Pod, c: ContainerSpec) -> Any:
        """The container's cgroup (made once, kept across restarts) and the fds that place
        a process in it, or None when it stays in its infra's (shares_pod_cgroup); the
        OOM-kill count so far, to tell this instance's own."""
        uid = pod.spec.uid
        shared = shares_pod_cgroup(pod.spec, c)
        if not shared and c.name not in pod.cgroups_made:
            limits = Limits(c.cpu_limit_millis, c.memory_limit_bytes)
            self.cgroups.create_container(uid, c.name, limits)
            pod.cgroups_made.add(c.name)
        st = pod.status.container(c.name)
        first = st.restart_count == 0 and st.terminated is None and st.last_state is None
        # A container's first instance finds its cgroup new: no OOM kill counted yet (a
        # shared one has only the infra beside it, which the OOM killer passes over).
        cgroup = None if shared else c.name
        pod.oom_base[c.name] = 0 if first else self.cgroups.oom_kills(uid, cgroup)
        return None if shared else self.cgroups.placement(uid, c.name)

    def _oom_killed(self, pod: Pod, name: str) -> bool:
        cgroup = None if shares_pod_cgroup(pod.spec, pod.spec.container(name)) else name
        return self.cgroups.oom_kills(pod.spec.uid, cgroup) > pod.oom_base.get(name, 0)

    async def remove_leftover_cgroups(self) -> None:
        """The cgroups deleted pods left busy (init mode, once init stopped the rest)."""
        uids, self.leftover_cgroups = self.leftover_cgroups, []
        for uid in uids:
            await self.cgroups.remove_pod(uid)

    def usage(self, pod: Pod) -> tuple[Usage | None, dict[str, Usage | None]]:
        """CPU and memory of the pod and of each container, from their cgroups."""
        uid = pod.spec.uid
        spec = pod.spec
        return self.cgroups.usage(uid), {
            c.name: self.cgroups.usage(uid, None if shares_pod_cgroup(spec, c) else c.name)
            for c in spec.init_containers + spec.containers
        }

    # -- the sync loop ----------------------------------------------------------------------

    def _apply(self, pod: Pod, events: list[PodEvent], now: float) -> None:
        """After any change: record its events, act on the decisions, tell watchers."""
        for event in events:
            self._event(pod, event, now)
        if pod.replay_until is None:  # while reports are replayed, `_reconcile` decides
            self._sync(pod, now)
        self._publish(pod, "MODIFIED")

    def _sync(self, pod: Pod, now: float) -> None:
        actions = lifecycle.compute_pod_actions(pod.spec, pod.status, now)
        if actions and log.isEnabledFor(logging.DEBUG):
            log.debug("pod %s: %s", pod.key, actions)
        for action in actions:
            if isinstance(action, StartContainer):
                self._start_container(pod, action.name, now)
            elif isinstance(action, RestartLater):
                self._schedule_restart(pod, action.name, action.at, now)
            elif isinstance(action, StopPod):
                self._stop(pod, pod.spec.termination_grace_period_seconds)
            elif isinstance(action, StopSandbox) and pod.infra is not None:
                pod.infra.shutdown()

    def _schedule_restart(self, pod: Pod, name: str, at: float, now: float) -> None:
        def due() -> None:
            t = self.clock()
            lifecycle.backoff_expired(pod.spec, pod.status, name, t)
            self._apply(pod, [], t)

        self._schedule(pod, name, at, due, now)

    def _schedule(
        self, pod: Pod, key: str, at: float, fn: Callable[[], None], now: float | None = None
    ) -> None:
        old = pod.timers.pop(key, None)
        if old is not None:
            old.cancel()
        delay = max(0.0, at - (self.clock() if now is None else now))
        pod.timers[key] = self.loop.call_later(delay, fn)

    def _start_container(self, pod: Pod, name: str, now: float) -> None:
        spec, st = pod.spec, pod.status.container(name)
        c = spec.container(name)
        image = None
        if c.image is not None:
            image = self.images.get(c.image)
            if image is None:
                # Images come only from the local store: kubelet's ErrImageNeverPull. The
                # container is started once the image is imported (images_changed).
                st.reason = Reason.ERR_IMAGE_NEVER_PULL
                st.message = (
                    f'Container image "{c.image}" is not present with pull policy of Never: '
                    f"import it with `supctl image import {c.image} PATH` (a rootfs directory "
                    "or tarball, an OCI layout or a docker save archive)"
                )
                self._event(pod, PodEvent(EventType.WARNING, st.reason, st.message, name), now)
                return
        assert pod.infra is not None
        # The container's index rides in the instance id: a report about an instance the
        # status never recorded (supd died right after the START) still names it.
        instance = restore.cid_of(pod.next_instance, self._index(pod, name))
        pod.next_instance = pod.next_instance % restore.MAX_INSTANCE + 1
        hostname = spec.pod_hostname if "uts" in pod.namespaces.pod else socket.gethostname()
        try:
            fs = self._container_fs(pod, c, image, hostname)
        except (rootfs.FsError, ImageError, OSError, ValueError) as e:
            lifecycle.container_starting(st, instance)
            message = f"create container {name}: {e}"
            events = lifecycle.container_create_failed(
                spec, pod.status, name, message, now, self.backoff
            )
            for event in events:
                self._event(pod, event, now)
            self.loop.call_soon(self._apply, pod, [], now)
            return
        ids = self._container_identity(pod, c, fs.uid, fs.gid, image is not None, now)
        if ids is None:
            return  # CreateContainerConfigError: reported
        number = st.restart_count + (1 if st.terminated is not None else 0)
        path = pod.directory / name / f"{number}.log"
        try:
            if number == 0:
                log_dir(pod.directory, name)  # a spare pod directory's, renamed (store.py)
            else:
                path.parent.mkdir(exist_ok=True, mode=0o700)
            log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as e:
            lifecycle.container_starting(st, instance)
            events = lifecycle.container_start_failed(
                spec, pod.status, name, f"open log {path}: {e.strerror}", 128, now, self.backoff
            )
            for event in events:
                self._event(pod, event, now)
            # Act on the restart decision from the loop, not from inside this sync.
            self.loop.call_soon(self._apply, pod, [], now)
            return
        try:
            placement = self._container_cgroup(pod, c)
        except SupervisorError as e:
            os.close(log_fd)
            lifecycle.container_starting(st, instance)
            events = lifecycle.container_start_failed(
                spec, pod.status, name, str(e), 128, now, self.backoff
            )
            for event in events:
                self._event(pod, event, now)
            self.loop.call_soon(self._apply, pod, [], now)
            return
        fds = [log_fd, *(placement.fds if placement is not None else ())]
        try:
            frame = _native.encode_start(
                instance,
                fs.argv,
                [f"{k}={v}" for k, v in fs.env.items()],
                fs.cwd,
                clone_flags=clone_flags(pod.namespaces.container),
                mount_proc="mnt" in pod.namespaces.container and image is None,
                fs=fs.plan.ops if fs.plan is not None else None,
                cgroup_into=placement is not None and placement.clone_into,
                log_max=self.log_rotation.max_size,
                **ids,
            )
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        pod.infra.send_owned(frame, fds)  # the log and cgroup fds go with the frame
        if fs.plan is not None:
            pod.fs_descriptions[instance] = fs.plan.descriptions
        pod.instances[instance] = name
        pod.logs.setdefault(name, []).append(path)
        lifecycle.container_starting(st, instance)
        self._event(
            pod, PodEvent(EventType.NORMAL, "Created", f"Created container {name}", name), now
        )
        for hook in self.on_container_start:
            hook(pod, name, path)

    def _container_fs(self, pod: Pod, c: Any, image: Image | None, hostname: str) -> ContainerFs:
        """What a container starts with: its command line, environment, working directory
        and user (the image config fills what the spec leaves out, as Kubernetes does), and
        its filesystem operations (rootfs.py). Raises FsError, ImageError or OSError: the
        container is then CreateContainerError."""
        spec = pod.spec
        config = image.config if image is not None else {}
        env = container_env(spec, c, hostname)
        image_env = dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)
        if "PATH" in image_env and not any(k == "PATH" for k, _ in c.env):
            env["PATH"] = image_env["PATH"]
        env = {**image_env, **env}
        raw = resolve_argv(config, c.command, c.args) if image is not None else list(c.argv())
        if not raw:
            raise rootfs.FsError(f"image {c.image} has no Entrypoint or Cmd: set command")
        argv = [expand(arg, env) for arg in raw]
        cwd = c.working_dir or config.get("WorkingDir") or "/"
        uid = gid = -1
        layers = None
        if image is not None:
            layers = [self.images.layer_path(d) for d in image.layers]
            user = parse_user(config.get("User") or "", layers)
            if user is not None:
                uid, gid = user
        if "mnt" not in pod.namespaces.container:
            if image is not None or c.volume_mounts or spec.volumes:
                raise rootfs.FsError("images and volumes need a mount namespace (--isolation)")
            return ContainerFs(argv, env, cwd, uid, gid, None)
        if not pod.fs_ready:
            rootfs.prepare_pod(
                spec,
                pod.directory,
                pod.run,
                hostname,
                _native.mount_tmpfs,
                pod.status.pod_ip if "net" in pod.namespaces.pod else None,
                self.cluster_domain,
            )
            pod.fs_ready = True
        for v in spec.volumes:
            if v.kind == "hostPath":
                rootfs.check_host_path(v)
        root = rootfs.prepare_container(pod.directory, c, layers, self.overlay)
        plan = rootfs.plan_container(
            spec, c, pod.directory, pod.run, root, layers, self.overlay, image.name if image else ""
        )
        return ContainerFs(argv, env, cwd, uid, gid, plan)

    def images_changed(self) -> None:
        """An image was imported: containers waiting with ErrImageNeverPull try again."""
        now = self.clock()
        for pod in list(self.pods.values()):
            waiting = [
                st
                for st in pod.status.all()
                if st.reason == Reason.ERR_IMAGE_NEVER_PULL and not st.alive
            ]
            for st in waiting:
                st.reason, st.message = Reason.CONTAINER_CREATING, ""
            if waiting and pod.infra is not None and not pod.status.stopping:
                self._apply(pod, [], now)

    def images_in_use(self) -> dict[str, list[str]]:
        """Normalized image name -> the pods (NAMESPACE/NAME) whose containers use it."""
        from .images import normalize

        used: dict[str, list[str]] = {}
        for pod in self.pods.values():
            for c in pod.spec.init_containers + pod.spec.containers:
                if c.image is not None:
                    used.setdefault(normalize(c.image), []).append(pod.key)
        return used

    # -- reports from the infra --------------------------------------------------------------

    def _index(self, pod: Pod, name: str) -> int:
        for i, c in enumerate(pod.spec.init_containers + pod.spec.containers):
            if c.name == name:
                return i
        raise KeyError(name)

    def _name_of(self, pod: Pod, cid: int) -> str | None:
        """The container an instance id belongs to; an id newer than the container's
        current instance (only in a replay, see restore.py) becomes its current one."""
        name = pod.instances.get(cid)
        if name is not None:
            return name
        containers = pod.spec.init_containers + pod.spec.containers
        index = restore.index_of(cid)
        if index >= len(containers):
            return None
        st = pod.status.container(containers[index].name)
        if restore.instance_of(cid) <= restore.instance_of(st.instance):
            return None  # an instance that has been replaced
        lifecycle.container_starting(st, cid)
        pod.instances[cid] = st.name
        self._instance_seen(pod, cid)
        return st.name

    def _instance_seen(self, pod: Pod, cid: int) -> None:
        """An instance id the infra uses is never handed out again."""
        if restore.instance_of(cid) >= pod.next_instance:
            pod.next_instance = restore.instance_of(cid) % restore.MAX_INSTANCE + 1

    def _on_report(self, pod: Pod, report: Report, seq: int = 0) -> None:
        if pod.key in self._refills:
            self.loop.call_soon(self._refill_after, pod.key)
        log.debug("pod %s: report %r seq %d", pod.key, report, seq)
        if seq:
            if seq <= pod.applied_seq:
                return  # replayed, and applied before the previous supd ended
            pod.applied_seq = seq
        self._apply_report(pod, report)
        if pod.replay_until is not None and seq >= pod.replay_until:
            self._reconcile(pod)

    def _apply_report(self, pod: Pod, report: Report) -> None:
        if report[0] == "log_full":
            self._rotate_log(pod, report[1])
            return
        if report[0] == "log_dropped":
            self._logs_dropped(pod, report[1], report[2])
            return
        kind, instance = report[0], report[1] if len(report) > 1 else 0
        if kind == "hello" or not isinstance(instance, int):
            return
        name = self._name_of(pod, instance)
        if name is None:
            return
        st = pod.status.container(name)
        if st.instance != instance:
            return  # a report about an instance that has been replaced
        spec = pod.spec
        if kind == "started":
            t = report[3] / 1e9
            events = lifecycle.container_started(spec, pod.status, name, report[2], t)
            if pod.status.stopping:
                # Started while the pod stops: it gets the same sequence at once.
                self._spawn(pod, self._kill_container(pod, name, pod.grace or 0))
            elif st.hooking:
                self._spawn(pod, self._post_start(pod, name, instance))
            else:
                self._start_probes(pod, name, instance)
        elif kind == "start_failed":
            c = spec.container(name)
            argv0 = c.argv()[0] if c.argv() else (c.image or name)
            err = _native.spawn_error(
                report[2], report[3], argv0, c.working_dir, pod.fs_descriptions.get(instance)
            )
            t = self.clock()
            if err.step == "mount":
                events = lifecycle.container_create_failed(
                    spec, pod.status, name, f"create container {name}: {err}", t, self.backoff
                )
            else:
                events = lifecycle.container_start_failed(
                    spec, pod.status, name,
                    f"{err}{privilege_hint(err)}{process_limit_hint(err, self.pod_pids_limit)}",
                    err.exit_code, t,
                    self.backoff,
                )  # fmt: skip
            self._container_gone(pod, name, instance)
        elif kind == "exited":
            status, t = report[3], report[4] / 1e9
            signo = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
            code = _native.exit_code(status)
            oom = signo == signal.SIGKILL and self._oom_killed(pod, name)
            events = lifecycle.container_exited(
                spec, pod.status, name, code, signo, t, self.backoff, oom_killed=oom
            )
            message = rootfs.read_termination_message(pod.directory, name)
            if message and st.terminated is not None:
                st.terminated.message = message
            self._termination_message(pod, name, code)
            self._container_gone(pod, name, instance)
        else:
            log.warning("pod %s: unknown report %r", pod.key, report)
            return
        self._apply(pod, events, t)

    def _logs_dropped(self, pod: Pod, instance: int, err: int) -> None:
        """The instance's output cannot be written to its log (a full disk): it is dropped
        until a write succeeds again. Said in events (our reasons: kubelet has none)."""
        name = pod.instances.get(instance)
        if name is None:
            return
        if err:
            event = PodEvent(
                EventType.WARNING,
                "LogsDropped",
                f"container {name}: its output is being dropped: write its log: {os.strerror(err)}",
                name,
            )
        else:
            event = PodEvent(
                EventType.NORMAL, "LogsResumed", f"container {name}: its log is written again", name
            )
        log.log(logging.WARNING if err else logging.INFO, "pod %s: %s", pod.key, event.message)
        self._event(pod, event, self.clock())

    def _rotate_log(self, pod: Pod, instance: int) -> None:
        """LOG_FULL from the infra: rotate the instance's log (logrotate.py) and send the
        new file in a REOPEN. Every LOG_FULL gets its REOPEN, without a file when there is
        nothing to rotate (a report heard twice across a supd restart finds the new file
        small) or rotation failed: infra then goes on in the old file (it may be holding the
        container's output back until the answer) and says LOG_FULL again later."""
        if pod.infra is None:
            return
        fd = self._rotated_log(pod, instance)
        try:
            pod.infra.send(_native.encode_reopen(instance), (fd,) if fd >= 0 else ())
        finally:
            if fd >= 0:
                os.close(fd)

    def _rotated_log(self, pod: Pod, instance: int) -> int:
        name = pod.instances.get(instance)
        policy = self.log_rotation
        if name is None or not policy.max_size or not pod.logs.get(name):
            return -1
        if pod.status.container(name).instance != instance:
            return -1
        path = pod.logs[name][-1]
        try:
            if os.stat(path).st_size < policy.max_size:
                return -1
            return rotate(path, policy.max_files, time.time_ns())
        except OSError as e:
            log.warning("pod %s: rotate the log of container %s: %s", pod.key, name, e)
            return -1

    def _container_gone(self, pod: Pod, name: str, instance: int) -> None:
        """An instance ended (or never started): stop its probes, wake who waits for it."""
        pod.instances.pop(instance, None)
        pod.fs_descriptions.pop(instance, None)
        self._stop_probes(pod, name)
        exited = pod.exits.pop(instance, None)
        if exited is not None and not exited.done():
            exited.set_result(None)

    def _exit_of(self, pod: Pod, instance: int) -> asyncio.Future[None]:
        fut = pod.exits.get(instance)
        if fut is None:
            fut = pod.exits[instance] = self.loop.create_future()
        return fut

    def _spawn(self, pod: Pod, coro: Coroutine[Any, Any, None]) -> None:
        """Run a piece of a pod's lifecycle (a hook, a kill) as a task the pod owns."""
        task = self.loop.create_task(coro)
        pod.tasks.add(task)
        task.add_done_callback(self._task_done(pod))

    def _task_done(self, pod: Pod) -> Callable[[asyncio.Task[Any]], None]:
        def done(task: asyncio.Task[Any]) -> None:
            pod.tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("pod %s: %s", pod.key, task.exception(), exc_info=task.exception())

        return done

    # -- hooks and probes ---------------------------------------------------------------------

    def _target(self, pod: Pod, name: str) -> Target:
        """Where a container's probes and hooks run: its pod's network namespace for
        sockets, the container's own namespaces for commands."""

        def make_socket(family: int) -> socket.socket:
            if pod.infra is None:
                raise OSError(errno.ESRCH, "the pod's sandbox is gone")
            fd = _native.socket_in_netns(pod.infra.pidfd, family, socket.SOCK_STREAM)
            return socket.socket(fileno=fd)

        from .execs import exec_captured  # the exec mechanism (infra EXEC frames)

        c = pod.spec.container(name)
        env = container_env(pod.spec, c)
        exec_env = [f"{k}={v}" for k, v in env.items()]
        commands: dict[tuple[str, ...], list[str]] = {}  # a probe runs the same one each time

        async def run_exec(argv: list[str], timeout: float | None) -> tuple[int, bool, bytes]:
            key = tuple(argv)
            command = commands.get(key)
            if command is None:
                # kubelet expands $(VAR) in probe and hook commands from the container's env.
                command = commands[key] = [expand(arg, env) for arg in argv]
            result, output = await exec_captured(
                self, pod, name, command, timeout=timeout, env=exec_env
            )
            return result.exit_code, result.timed_out, output

        return Target(c, make_socket, run_exec)

    async def _post_start(self, pod: Pod, name: str, instance: int) -> None:
        """kubelet runs postStart right after the start and holds the container (and the
        next one) until it returns; a failure kills the container and the restart policy
        applies (FailedPostStartHook)."""
        hook = pod.spec.container(name).post_start
        assert hook is not None
        outcome = await handlers.run(hook, self._target(pod, name), None)
        st = pod.status.container(name)
        if st.instance != instance or not st.hooking:
            return
        now = self.clock()
        if outcome.result is Result.SUCCESS:
            lifecycle.post_start_done(pod.spec, pod.status, name, now)
            self._start_probes(pod, name, instance)
            self._apply(pod, [], now)
            return
        message = f"PostStartHook failed: {outcome.message}".rstrip(": ")
        self._event(pod, PodEvent(EventType.WARNING, "FailedPostStartHook", message, name), now)
        await self._kill_container(pod, name, pod.spec.termination_grace_period_seconds)

    def _start_probes(
        self, pod: Pod, name: str, instance: int, after_startup: bool = False
    ) -> None:
        c = pod.spec.container(name)
        st = pod.status.container(name)
        kinds = (
            [("startup", c.startup_probe)]
            if c.startup_probe and not after_startup
            else [("liveness", c.liveness_probe), ("readiness", c.readiness_probe)]
        )
        ran_for = self.clock() - (st.started_at or self.clock())
        for kind, probe in kinds:
            if probe is None:
                continue
            target = self._target(pod, name)

            def run(timeout: float, probe: Any = probe, target: Target = target) -> Any:
                return handlers.run(probe.handler, target, timeout)

            worker = ProbeWorker(
                kind,
                probe,
                run,
                lambda kind, outcome: self._probe_outcome(pod, name, instance, kind, outcome),
                lambda kind, ok: self._probe_result(pod, name, instance, kind, ok),
                first_delay(probe, ran_for, self.loop.time() - self.started),
            )
            pod.probes.setdefault(name, []).append(worker)

    def _stop_probes(self, pod: Pod, name: str | None) -> None:
        for key in [name] if name is not None else list(pod.probes):
            for worker in pod.probes.pop(key, []):
                worker.stop()

    def _probe_outcome(
        self, pod: Pod, name: str, instance: int, kind: str, outcome: Outcome
    ) -> None:
        if outcome.result is Result.SUCCESS or pod.status.container(name).instance != instance:
            return
        verb = "failed" if outcome.result is Result.FAILURE else "errored"
        message = f"{kind.capitalize()} probe {verb}: {outcome.message}".rstrip(": ")
        self._event(pod, PodEvent(EventType.WARNING, "Unhealthy", message, name), self.clock())

    def _probe_result(self, pod: Pod, name: str, instance: int, kind: str, ok: bool) -> None:
        """A probe's result changed: readiness and startup feed the status; a liveness or
        startup failure kills the container (its restart policy then applies)."""
        st = pod.status.container(name)
        if st.instance != instance or not st.running or pod.status.stopping:
            return
        now = self.clock()
        if ok or kind == "readiness":
            lifecycle.probe_result(pod.spec, pod.status, name, kind, ok, now)
            if kind == "startup":
                self._start_probes(pod, name, instance, after_startup=True)
            self._apply(pod, [], now)
            return
        probe = getattr(pod.spec.container(name), f"{kind}_probe")
        self._stop_probes(pod, name)  # held until the next instance runs
        message = f"Container {name} failed {kind} probe, will be restarted"
        self._event(pod, PodEvent(EventType.NORMAL, "Killing", message, name), now)
        grace = probe.termination_grace_period_seconds
        if grace is None:
            grace = pod.spec.termination_grace_period_seconds
        self._spawn(pod, self._kill_container(pod, name, grace, announce=False))

    def _termination_message(self, pod: Pod, name: str, exit_code: int) -> None:
        """terminationMessagePolicy FallbackToLogsOnError: a failed container without a
        message gets the tail of its log (kubelet: the last 80 lines, at most 2 KiB)."""
        c = pod.spec.container(name)
        st = pod.status.container(name)
        t = st.terminated
        if (
            t is None
            or t.message
            or exit_code == 0
            or c.termination_message_policy != "FallbackToLogsOnError"
            or not pod.logs.get(name)
        ):
            return
        text = read_log(pod.logs[name][-1], tail=80)[-2048:]
        t.message = text.decode(errors="replace")

    def _on_infra_exit(self, pod: Pod, status: int) -> None:
        log.debug("pod %s: infra exited (%#x)", pod.key, status)
        pid = pod.infra.pid if pod.infra is not None else 0
        pod.infra = None
        now = self.clock()
        if pod.deleted_at is not None:
            self._finish_delete(pod)
            return
        # Its veth went with its network namespace; the lease, the host ports and the
        # cgroups stay for the next sandbox. An attach still under way is called off.
        self.hostports.set_target(pod.key, None)
        if pod.network_task is not None:
            pod.network_task.cancel()
            pod.network_task = None
        if pod.sandbox_failure is not None:
            # Stopped because its network or cgroup could not be set up: retried later.
            message, pod.sandbox_failure = pod.sandbox_failure, None
            self._sandbox_failed(pod, message)
            return
        lost = [st for st in pod.status.all() if st.alive]
        events: list[PodEvent] = []
        if lost or not pod.status.phase.terminal:
            # Its containers died with it (PR_SET_PDEATHSIG, or the PID namespace's end).
            # kubelet sees the sandbox gone: SandboxChanged, a new sandbox, and each
            # container restarted as its restartPolicy says (counted as a restart).
            why = f"the pod's sandbox (infra pid {pid}) {describe_wait_status(status)}"
            log.warning("pod %s: %s; its containers are gone", pod.key, why)
            events.append(
                PodEvent(
                    EventType.NORMAL,
                    "SandboxChanged",
                    "Pod sandbox changed, it will be killed and re-created.",
                )
            )
            for st in lost:
                events += lifecycle.container_exited(
                    pod.spec,
                    pod.status,
                    st.name,
                    128 + signal.SIGKILL,
                    signal.SIGKILL,
                    now,
                    self.backoff,
                )
                if st.terminated is not None:
                    st.terminated.message = f"container killed: {why}"
                self._container_gone(pod, st.name, st.instance)
        events += self._sandbox_gone(pod, now)
        for event in events:
            self._event(pod, event, now)
        self._publish(pod, "MODIFIED")
        if not pod.status.phase.terminal and not pod.status.stopping:
            self._start_sandbox(pod)

    def _sandbox_gone(self, pod: Pod, now: float) -> list[PodEvent]:
        pod.infra_identity = None
        return lifecycle.sandbox_gone(pod.spec, pod.status, now)

    # -- live restore (restore.py) --------------------------------------------------------

    def _persist_soon(self, pod: Pod) -> None:
        """Write the pod's record once this turn of the loop is over (one write for any
        number of changes), then acknowledge the reports it covers."""
        if pod.persisting is None and not self.pods_die_with_supd:
            pod.persisting = self.loop.call_soon(self._persist, pod)

    def _after_reports(self, pod: Pod, changed: bool) -> None:
        """A batch of reports was applied: write the record now, or, for reports of execs
        alone (probes), acknowledge them within EXEC_ACK_DELAY. They change nothing in the
        record, and are acknowledged only so that the infra may forget them; a pod probed
        every second would otherwise rewrite its record twice a second."""
        self.flush_watchers()  # now, not behind the rest of this turn's I/O
        infra = pod.infra
        if changed or infra is None:
            self._persist_soon(pod)
        elif infra.seen - infra.acked >= EXEC_ACK_BACKLOG:
            self._ack_execs(pod)
        elif pod.acks_due is None and not self.pods_die_with_supd:
            pod.acks_due = self.loop.call_later(EXEC_ACK_DELAY, self._ack_execs, pod)

    def _ack_execs(self, pod: Pod) -> None:
        """Acknowledge the exec reports the infra holds, without a write when the record
        written last already holds every report of the pod's own before them (a new supd gets
        no exec report again, so none needs to be in the record); else write it first."""
        if pod.acks_due is not None:
            pod.acks_due.cancel()
            pod.acks_due = None
        infra = pod.infra
        if (
            infra is not None
            and pod.persisting is None
            and pod.recorded is not None
            and pod.recorded[0] is infra
            and pod.recorded[1] >= infra.pod_seq
        ):
            infra.ack(infra.seen)
        else:
            self._persist_soon(pod)

    def _persist(self, pod: Pod) -> None:
        pod.persisting = None
        if pod.acks_due is not None:  # this write covers them
            pod.acks_due.cancel()
            pod.acks_due = None
        if self.pods.get(pod.key) is not pod or pod.finishing:
            return
        if pod.infra is not None:  # its exec reports too: they change no status
            pod.applied_seq = max(pod.applied_seq, pod.infra.seen)
        record = restore.Record(
            status=pod.status,
            next_instance=pod.next_instance,
            seq=pod.applied_seq,
            infra=pod.infra_identity,
            fs_ready=pod.fs_ready,
            sandbox_backoff=pod.sandbox_backoff,
            deleted_at=pod.deleted_at,
            grace=pod.grace,
        )
        infra, seq = pod.infra, pod.applied_seq

        def written(e: OSError | None) -> None:
            if self.pods.get(pod.key) is not pod or pod.finishing:
                return
            if e is not None:  # unacknowledged, the reports wait in the infra
                log.warning("pod %s: write %s: %s", pod.key, restore.RECORD, e)
                if infra is None or not infra.shutting_down:
                    return  # but not in an infra that must leave (a full disk)
            if infra is not None:
                if e is None:
                    pod.recorded = (infra, seq)
                infra.ack(seq)

        data = restore.encode_record(record)
        self.writer.write(pod.run / restore.RECORD, data, written)
        if pod.status.phase.terminal and not pod.final_saved and pod.run != pod.directory:
            # The run dir does not outlive the machine; a pod that finished must stay
            # finished after a reboot (it is not run again), so its last record goes to
            # the state dir too, once.
            pod.final_saved = True
            self.writer.write(pod.directory / restore.RECORD, data)

    def resume(
        self,
        spec: PodSpec,
        directory: Path,
        record: restore.Record | None,
        link: restore.Link | None,
    ) -> Pod:
        """Take over a pod of the supd before this one: its status from `record`, its
        running infra through `link`. Without a link (its infra is gone) a new sandbox
        starts what should run, the restarts counted as kubelet counts them after a
        sandbox change. Admitted already (`admit`)."""
        now = self.clock()
        names = [c.name for c in spec.init_containers + spec.containers]
        if record is not None and not restore.matches(record, names):
            log.warning("pod %s: %s is not of this pod; starting afresh", spec.key, restore.RECORD)
            record = None
        pod = Pod(
            spec=spec,
            status=record.status if record is not None else lifecycle.new_status(spec, now),
            directory=directory,
            run=self.store.run_of(directory),
            changed=self.loop.create_future(),
            gone=self.loop.create_future(),
            namespaces=self.admit(spec),
        )
        if record is not None:
            pod.next_instance, pod.fs_ready = record.next_instance, record.fs_ready
            pod.sandbox_backoff = record.sandbox_backoff
            pod.deleted_at, pod.grace = record.deleted_at, record.grace
        if pod.deleted_at is None and (directory / DELETING).exists():
            pod.deleted_at, pod.grace = now, spec.termination_grace_period_seconds
        pod.logs = restore.find_logs(directory, names)
        self.pods[spec.key] = pod
        self._publish(pod, "ADDED")
        status = pod.status
        if spec.active_deadline_seconds is not None and not status.phase.terminal:
            begun = status.start_time or status.created_at
            at = begun + spec.active_deadline_seconds
            self._schedule(pod, "deadline", at, lambda: self._deadline(pod))
        if link is None:
            self._restore_without_infra(pod, now)
            return pod
        infra = Infra(self.loop, link.pid, link.pidfd, link.sock, lambda r, q: None, lambda s: None)
        self._wire(pod, infra)
        identity = (link.pid, process_start_time(link.pid))
        same = record is not None and record.infra == identity
        pod.applied_seq = record.seq if record is not None and same else 0
        pod.infra_identity = identity
        if not same:  # the record of a supd that died before it wrote one for this infra
            with contextlib.suppress(OSError):
                _write_infra_record(pod.run, *identity)
        pod.instances = {st.instance: st.name for st in status.all() if st.alive}
        pod.live_cids = set(link.live)
        for cid in link.live:
            self._instance_seen(pod, cid)
        pod.replay_until = link.last_seq
        if link.dropped:
            log.warning("pod %s: its infra dropped %d report(s) while supd was away",
                        pod.key, link.dropped)  # fmt: skip
        if link.last_seq <= pod.applied_seq:
            self._reconcile(pod)
        return pod

    def _restore_without_infra(self, pod: Pod, now: float) -> None:
        events: list[PodEvent] = []
        for st in pod.status.all():
            if st.alive:
                pod.instances[st.instance] = st.name
                events += lifecycle.container_lost(pod.spec, pod.status, st.name, now, self.backoff)
                self._container_gone(pod, st.name, st.instance)
        events += self._sandbox_gone(pod, now)
        for event in events:
            self._event(pod, event, now)
        self._publish(pod, "MODIFIED")
        if pod.deleted_at is not None:
            self.delete(pod, 0)
        elif pod.status.stopping:
            self._stop(pod, 0)
        elif not pod.status.phase.terminal:
            self._start_sandbox(pod)

    def _reconcile(self, pod: Pod) -> None:
        """A restored pod's replay is over. What the status has running and the infra does
        not is lost (or, asked for and never started, asked for again); what the infra
        runs and the status does not know is stopped; hooks, probes and the termination
        sequence carry on."""
        pod.replay_until = None
        live, pod.live_cids = pod.live_cids, set()
        log.debug("pod %s: replayed up to %d; live %s", pod.key, pod.applied_seq, sorted(live))
        infra, spec, status = pod.infra, pod.spec, pod.status
        assert infra is not None
        now = self.clock()
        events: list[PodEvent] = []
        for st in status.all():
            if not st.alive or st.instance in live:
                continue
            pod.instances.pop(st.instance, None)
            if st.starting:
                st.starting = False  # its START died with the supd that sent it
                continue
            events += lifecycle.container_lost(spec, status, st.name, now, self.backoff)
            self._container_gone(pod, st.name, st.instance)
        known = {st.instance for st in status.all() if st.alive}
        for cid in live - known:
            log.warning("pod %s: stopping instance %#x, which no status knows", pod.key, cid)
            infra.send(_native.encode_signal(cid, signal.SIGKILL, True))
        for st in status.all():
            if st.hooking:  # its postStart hook ran in the supd that ended: not run again
                lifecycle.post_start_done(spec, status, st.name, now)
            if st.running:
                self._start_probes(pod, st.name, st.instance, after_startup=st.started)
        if not status.sandbox_ready:
            self._sandbox_started(pod, infra)  # its network or cgroup was being set up
        else:
            self._start_host_ports(pod)
            self.cgroups.create_pod(spec.uid, pod_limits(spec, self.pod_pids_limit))
            address = None
            if self.network.mode == "bridge" and "net" in pod.namespaces.pod:
                address = self.network.adopted(spec.uid)
            pod.address = address
            if "net" in pod.namespaces.pod:
                self.hostports.set_target(pod.key, self._port_target(pod, address))
        if pod.deleted_at is not None:
            self.delete(pod, max(0.0, pod.deleted_at + (pod.grace or 0) - now))
        elif status.stopping:
            self._stop(pod, 0 if status.phase.terminal else spec.termination_grace_period_seconds)
        self._apply(pod, events, now)

    # -- termination ------------------------------------------------------------------------

    def delete(self, pod: Pod, grace: float | None = None) -> asyncio.Future[None]:
        """Begin the termination sequence (idempotent); the future resolves when the pod and
        every process of it are gone. A shorter grace period hurries one under way."""
        g = pod.spec.termination_grace_period_seconds if grace is None else max(grace, 0)
        g = min(g, MAX_GRACE_SECONDS)
        if pod.deleted_at is None:
            pod.deleted_at, pod.grace = self.clock(), int(g)
            self.store.mark_deleting(pod.directory)
        self._stop(pod, g)
        if pod.stop_task is not None and pod.stop_task.done() and pod.infra is None:
            self._finish_delete(pod)  # it had stopped already: only the record is left
        return pod.gone

    def _stop(self, pod: Pod, grace: float) -> None:
        """Start the termination sequence, or hurry the one under way to `grace`."""
        if pod.stop_task is None:
            now = self.clock()
            for timer in pod.timers.values():
                timer.cancel()
            pod.timers.clear()
            lifecycle.start_stopping(pod.spec, pod.status, now)
            self._publish(pod, "MODIFIED")
            pod.stop_task = self.loop.create_task(self._stop_pod(pod, grace))
            pod.stop_task.add_done_callback(self._task_done(pod))
        elif self.loop.time() + grace < pod.hurry_at:
            pod.hurry_at = self.loop.time() + grace
            if pod.hurry is not None and not pod.hurry.done():
                pod.hurry.set_result(None)

    async def _stop_pod(self, pod: Pod, grace: float) -> None:
        """kubelet's killPod: every regular container at once (preStop, then the stop
        signal, SIGKILL when its grace runs out), then the sidecars one at a time in reverse
        order, then the sandbox."""
        status = pod.status
        regular = [st for st in status.all() if not st.sidecar and st.alive]
        if regular:
            await asyncio.gather(*(self._kill_container(pod, st.name, grace) for st in regular))
        for st in reversed(status.init_containers):
            if st.sidecar and st.alive:
                await self._kill_container(pod, st.name, grace)
        if pod.infra is not None:
            pod.infra.shutdown()
        elif pod.deleted_at is not None:
            self._finish_delete(pod)

    async def _kill_container(
        self, pod: Pod, name: str, grace: float, *, announce: bool = True
    ) -> None:
        """Stop one container as kubelet's killContainer does: run preStop within the grace
        period, send SIGTERM, and SIGKILL once the rest of the grace period (at least 2 s
        after a preStop hook) has passed."""
        st = pod.status.container(name)
        if not st.alive:
            return
        exited = self._exit_of(pod, st.instance)
        c = pod.spec.container(name)
        now = self.clock()
        if announce:
            self._event(
                pod, PodEvent(EventType.NORMAL, "Killing", f"Stopping container {name}", name), now
            )
        deadline = self.loop.time() + grace
        if c.pre_stop is not None and grace > 0 and (st.running or st.hooking):
            try:
                async with asyncio.timeout_at(min(deadline, pod.hurry_at)):
                    outcome = await handlers.run(c.pre_stop, self._target(pod, name), None)
            except TimeoutError:
                outcome = Outcome(Result.FAILURE, "timed out within the grace period")
            if outcome.result is not Result.SUCCESS and not exited.done():
                message = f"PreStopHook failed: {outcome.message}".rstrip(": ")
                self._event(
                    pod,
                    PodEvent(EventType.WARNING, "FailedPreStopHook", message, name),
                    self.clock(),
                )
            deadline = max(deadline, self.loop.time() + MIN_GRACE_AFTER_PRESTOP)
        if grace > 0 and not exited.done():
            self._signal(pod, name, signal.SIGTERM)
        while not exited.done():
            remaining = min(deadline, pod.hurry_at) - self.loop.time()
            if remaining <= 0:
                break
            if pod.hurry is None or pod.hurry.done():
                pod.hurry = self.loop.create_future()
            await asyncio.wait(
                {exited, pod.hurry}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
        if not exited.done():
            self._signal(pod, name, signal.SIGKILL, group=True)
            await exited

    def _finish_delete(self, pod: Pod) -> None:
        """The pod's processes are gone: release its network, host ports and cgroups, then
        forget it (the deletion completes once nothing of it is left on the host)."""
        if self.pods.get(pod.key) is not pod or pod.finishing:
            return
        pod.finishing = True
        for timer in pod.timers.values():
            timer.cancel()
        self._stop_probes(pod, None)
        for task in list(pod.tasks):
            task.cancel()
        task = self.loop.create_task(self._release_pod(pod))
        self._teardowns.add(task)
        task.add_done_callback(self._teardowns.discard)

    async def _release_pod(self, pod: Pod) -> None:
        try:
            await self._cancel_network_task(pod)
            await self.network.detach(pod.spec.uid, release=True)
            self.hostports.release(pod.key)
            # In init mode what a pod left running (a hostPID pod's orphans) is stopped by
            # init politely, SIGTERM first, after every pod: its cgroups go after that.
            if not await self.cgroups.remove_pod(pod.spec.uid, kill=not self.pods_die_with_supd):
                self.leftover_cgroups.append(pod.spec.uid)
        except Exception as e:  # what is left is found again by prune at the next start
            log.error("pod %s: release its resources: %s", pod.key, e, exc_info=e)
        finally:
            self._forget(pod)

    def _forget(self, pod: Pod) -> None:
        del self.pods[pod.key]
        for path in (pod.run / restore.RECORD, pod.run / "infra", pod.directory / restore.RECORD):
            self.writer.discard(path)
        rootfs.release_pod(pod.spec, pod.directory, _native.umount)
        if any(v.medium == "Memory" for v in pod.spec.volumes):
            # The only mounts supd makes on the host: any of them left (a previous supd's,
            # an unmount that failed) would keep the pod's directory from going.
            unmount_under(pod.directory)
        self.store.remove(pod.directory)
        self.events.forget(pod.spec.namespace, pod.spec.name)
        self._publish(pod, "DELETED")
        if not pod.gone.done():
            pod.gone.set_result(None)

    def _signal(self, pod: Pod, name: str, signo: int, group: bool = False) -> None:
        st = pod.status.container(name)
        if pod.infra is not None and st.instance:
            pod.infra.send(_native.encode_signal(st.instance, signo, group))

    def signal_main_processes(self, pod: Pod, signo: int, *, group: bool) -> int:
        """Send `signo` to the main process (or, with `group`, the process group) of each of
        the pod's running containers (PID 1 mode's forwarding); returns how many."""
        count = 0
        for st in pod.status.all():
            if st.running:
                self._signal(pod, st.name, signo, group)
                count += 1
        return count

    async def stop_all(self, grace: int | None = None) -> None:
        """Delete every pod and let the infra factory go (supd run and PID 1 mode end
        this way; no pod is created after it)."""
        self.close_pool()
        waits = [self.delete(pod, grace) for pod in list(self.pods.values())]
        if waits:
            await asyncio.gather(*waits)
        self._close_factory()

    def detach(self) -> None:
        """Let go of every infra without stopping it (a daemon's exit; pods keep running)."""
        for pod in self.pods.values():
            for timer in pod.timers.values():
                timer.cancel()
            self._stop_probes(pod, None)
            for task in list(pod.tasks):
                task.cancel()
            if pod.infra is not None:
                pod.infra.close()
                pod.infra = None
        self._close_factory()

    def _close_factory(self) -> None:
        self.use_factory = False  # for good: infras from now on are cloned by supd
        self.close_pool()
        # An infra still being made would serve nobody, hold no container and never be
        # found again: a SHUTDOWN waiting in its socket ends it once it serves.
        for sock in self._pending_socks:
            with contextlib.suppress(OSError):
                sock.send(_native.encode_shutdown())
        if self._factory is not None:
            self._factory.close()

    # -- notifications ----------------------------------------------------------------------

    def _event(self, pod: Pod, event: PodEvent, now: float) -> None:
        self.events.record(pod.spec.namespace, pod.spec.name, event, now)

    def _publish(self, pod: Pod, kind: str) -> None:
        """Wake the pod's waiters now, and tell watchers at the end of the step that made the
        change (a request, a batch of infra reports) or of this turn of the loop. Like the
        kubelet's status manager, this sends a pod once for the changes of one step (a new
        pod's ADDED and its sandbox's MODIFIED become one ADDED), after the START frames
        they sent and before the record they wrote."""
        if len(self.feed):
            if not self._unpublished:
                self.loop.call_soon(self.flush_watchers)
            last = self._last_unpublished.get(pod.key)
            if kind != "MODIFIED" or last is None or last[1] is not pod:
                entry = (kind, pod)
                self._unpublished.append(entry)
                self._last_unpublished[pod.key] = entry if kind != "DELETED" else None
        if kind != "DELETED":
            self._persist_soon(pod)
        if not pod.changed.done():
            pod.changed.set_result(None)
        pod.changed = self.loop.create_future()

    def flush_watchers(self) -> None:
        """Send the changes `_publish` holds: from the loop, and before a new watcher
        subscribes (its snapshot already shows them)."""
        changes, self._unpublished = self._unpublished, []
        self._last_unpublished.clear()
        for kind, pod in changes:
            self.feed.publish((kind, self.view(pod)))


# A child step that fails with EPERM or EACCES because supd lacks a privilege: which one,
# and what in the spec avoids the step (capabilities(7), namespaces(7), cgroups(7)).
_PRIVILEGE_HINTS = {
    "clone": ("CAP_SYS_ADMIN", "spec.hostNetwork, spec.hostPID and spec.hostIPC: true"),
    "loopback": ("CAP_NET_ADMIN", "spec.hostNetwork: true"),
    "sethostname": ("CAP_SYS_ADMIN", "spec.hostNetwork: true (no UTS namespace)"),
    "sysctl": ("CAP_NET_ADMIN or CAP_SYS_ADMIN", "removing spec.securityContext.sysctls"),
    "mount private": ("CAP_SYS_ADMIN", "running supd with --isolation=none"),
    "mount proc": ("CAP_SYS_ADMIN", "running supd with --isolation=none"),
    "cgroup": ("write access to the pod's cgroup", "supd's --cgroups=off"),
    "capbset": ("CAP_SETPCAP", "securityContext.privileged: true (no capability is dropped)"),
    "setgroups": ("CAP_SETGID", "leaving out runAsGroup and supplementalGroups"),
    "setgid": ("CAP_SETGID", "leaving out runAsGroup"),
    "setuid": ("CAP_SETUID", "leaving out runAsUser"),
}


def describe_wait_status(status: int) -> str:
    """What a wait(2) status says: "was killed by SIGKILL", "exited with code 1"."""
    if status < 0:
        return "exited (its status is unknown)"
    if os.WIFSIGNALED(status):
        signo = os.WTERMSIG(status)
        try:
            name = signal.Signals(signo).name
        except ValueError:
            name = f"signal {signo}"
        return f"was killed by {name}"
    return f"exited with code {os.WEXITSTATUS(status)}"


def privilege_hint(e: OSError) -> str:
    """ " (needs CAP_X; Y avoids it)" for a spawn step that failed for want of a privilege."""
    step = getattr(e, "step", None)
    if e.errno not in (errno.EPERM, errno.EACCES) or step not in _PRIVILEGE_HINTS:
        return ""
    needs, avoid = _PRIVILEGE_HINTS[step]
    return f" (supd lacks {needs}; {avoid} avoids it)"


def enter_user_namespace() -> tuple[int, int]:
    """Rootless supd: unshare a user namespace in which the caller's uid and gid are 0 (the
    only ids mapped, as `unshare --map-root-user` does) and a network namespace of its own:
    supd then has every capability over the namespaces it creates, none over the host's.
    The network namespace is needed because supd steps into pods' network namespaces and
    back (socket_in_netns), and setns(2) back into the host's, owned by the initial user
    namespace, would be refused. Must run before any thread exists. Returns the (uid, gid)
    mapped to root; OSError when user namespaces are not available."""
    uid, gid = os.getuid(), os.getgid()
    _native.unshare(_native.CLONE_NEWUSER | _native.CLONE_NEWNET)
    # user_namespaces(7): setgroups must be denied before an unprivileged gid_map write.
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
    Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
    return uid, gid


def shares_pod_cgroup(spec: PodSpec, c: ContainerSpec) -> bool:
    """Whether container `c` runs in its infra's cgroup (the pod's on v1, its `_infra` leaf
    on v2) instead of one of its own: when it is the pod's only container and holds no
    limit, a cgroup of its own would account for the same process tree as the pod's (the
    infra beside it takes a few dozen kB and no CPU) at the cost of two cgroups made and
    removed per pod (issue 7: no cgroup that holds no limit). Decided from the spec
    alone, so that a supd that takes the pod over decides alike."""
    return (
        len(spec.init_containers) + len(spec.containers) == 1
        and c.cpu_limit_millis is None
        and c.memory_limit_bytes is None
    )


def pod_limits(spec: PodSpec, pids: int | None) -> Limits:
    """The pod cgroup's limits (kubelet's ResourceConfigForPod): cpu and memory when every
    container has one, the larger of the app containers' sum and the largest init
    container's; the pids limit supd was given."""

    def total(values: list[int | None]) -> int | None:
        return None if None in values else sum(v for v in values if v is not None)

    def biggest(values: list[int | None]) -> int | None:
        return None if None in values else max((v for v in values if v is not None), default=0)

    apps, inits = list(spec.containers), list(spec.init_containers)
    sidecars = [c for c in inits if c.sidecar]
    cpu = [c.cpu_limit_millis for c in apps + sidecars]
    mem = [c.memory_limit_bytes for c in apps + sidecars]
    init_cpu = [c.cpu_limit_millis for c in inits]
    init_mem = [c.memory_limit_bytes for c in inits]
    cpu_all, mem_all = total(cpu), total(mem)
    if cpu_all is not None and inits:
        cpu_all = None if biggest(init_cpu) is None else max(cpu_all, biggest(init_cpu) or 0)
    if mem_all is not None and inits:
        mem_all = None if biggest(init_mem) is None else max(mem_all, biggest(init_mem) or 0)
    return Limits(cpu_all or None, mem_all or None, pids)


def own_bounding_set() -> int:
    """supd's capability bounding set (proc(5) CapBnd): more no container can get."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return (1 << len(security.CAPABILITIES)) - 1


def _primary_gid(uid: int) -> int:
    """The passwd entry's group of `uid` (containerd: the image's /etc/passwd; here the
    host's), else the uid itself."""
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid


def _user_groups(uid: int, gid: int) -> list[int]:
    """supplementalGroupsPolicy Merge: the groups /etc/group gives the user."""
    try:
        return os.getgrouplist(pwd.getpwuid(uid).pw_name, gid)
    except (KeyError, OSError):
        return []


@dataclass
class ContainerFs:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    uid: int
    gid: int
    plan: rootfs.FsPlan | None


def probe_overlay(work: Path) -> tuple[bool, str]:
    """Whether overlayfs with upper dirs on `work`'s filesystem can be mounted: tried in a
    throw-away child's mount namespace, so the host never sees the mount."""
    try:
        base = Path(tempfile.mkdtemp(dir=work, prefix="overlay-probe-"))
    except OSError as e:
        return False, str(e)
    try:
        for sub in ("lower", "upper", "work", "merged"):
            (base / sub).mkdir()
        data = f"lowerdir={base / 'lower'},upperdir={base / 'upper'},workdir={base / 'work'}"
        ops = [
            ("mount", "/", None, None, rootfs.MS_REC | rootfs.MS_PRIVATE, None, 0),
            ("mount", str(base / "merged"), "overlay", "overlay", 0, data, 0),
        ]
        _pid, pidfd = _native.spawn(
            ["/bin/true"], clone_flags=_native.CLONE_NEWNS, fs=ops, env=[], pdeathsig=9
        )
        try:
            select.select([pidfd], [], [])
            _native.waitid_pidfd(pidfd)
        finally:
            os.close(pidfd)
        return True, ""
    except OSError as e:
        return False, str(e)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def unmount_under(directory: Path) -> None:
    """Detach every mount at or below `directory` (deepest first): what a pod left mounted
    on the host (its tmpfs volumes), even from a previous supd."""
    prefix = str(directory)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    targets = []
    for line in lines:
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            targets.append(point)
    for point in sorted(targets, key=len, reverse=True):
        try:
            _native.umount(point)
        except OSError as e:
            log.warning("unmount %s: %s", point, e)


def _write_infra_record(directory: Path, pid: int, start: int) -> None:
    """Remember which process is the pod's infra, with its start time so that a reused pid
    is never mistaken for it."""
    write_atomic(directory / "infra", f"{pid} {start}\n".encode(), fsync=False)


def process_start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat (proc(5)): start time in clock ticks since boot."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return -1
    try:  # os.read: a sixth of read_text's cost, and a pod start reads it twice
        stat = os.read(fd, 4096)
    except OSError:
        return -1
    finally:
        os.close(fd)
    return int(stat.rsplit(b")", 1)[1].split()[19])


def read_pool_records(pool_dir: Path) -> list[tuple[int, int]]:
    """The (pid, start time) of the pooled infras a previous supd recorded; the records go."""
    found = []
    for record in pool_dir.iterdir():
        with contextlib.suppress(OSError, ValueError):
            pid_s, start_s = record.read_text().split()
            found.append((int(pid_s), int(start_s)))
        with contextlib.suppress(OSError):
            record.unlink()
    return found


HELLO_TIMEOUT = 5.0  # seconds for an infra that accepted a connection to say HELLO


async def take_over_infra(directory: Path) -> restore.Link | None:
    """Connect to the infra of the pod in `directory` and read its HELLO; None when no
    infra listens there or it does not answer (it is then stopped by kill_stale_infra)."""
    sock = restore.connect(directory)
    if sock is None:
        return None
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        async with asyncio.timeout(HELLO_TIMEOUT):
            await readable
        frame, fds, _flags, _addr = socket.recv_fds(sock, 65536, 2)
    except (TimeoutError, OSError) as e:
        log.warning("%s: no HELLO from its infra: %s", directory.name, e or "timed out")
        sock.close()
        return None
    finally:
        loop.remove_reader(sock.fileno())
    try:
        hello = _native.decode_report(frame) if frame else ("",)
        if hello[0] != "hello" or len(fds) != 1:
            raise ValueError(f"expected HELLO and a pidfd, got {hello[0]!r} and {len(fds)} fd(s)")
        pid = restore.pidfd_pid(fds[0])
        if pid <= 0:
            raise ValueError("its infra is gone")
    except ValueError as e:
        log.warning("%s: cannot take its infra over: %s", directory.name, e)
        sock.close()
        for fd in fds:
            os.close(fd)
        return None
    _kind, entries, dropped, last_seq = hello
    live = {cid: (cpid, ns) for cid, cpid, ns in entries}
    return restore.Link(sock, fds[0], pid, live, dropped, last_seq)


def kill_link(link: restore.Link) -> None:
    """SIGKILL an infra that was connected to and cannot be taken over (its pod cannot be
    restored): its containers die with it."""
    link.sock.close()
    with contextlib.suppress(OSError):
        _native.pidfd_send_signal(link.pidfd, signal.SIGKILL)
    os.close(link.pidfd)


async def kill_stale_infra(directory: Path) -> None:
    """Stop the infra a previous supd left running for this pod, and wait until it is gone.

    The pod is then started afresh. Taking running containers over without restarting them
    is the live-restore work (issue 8)."""
    try:
        pid_s, start_s = (directory / "infra").read_text().split()
        pid, start = int(pid_s), int(start_s)
    except (OSError, ValueError):
        return
    if process_start_time(pid) != start:
        return
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()

    def exited() -> None:
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(pidfd, exited)
    try:
        _native.pidfd_send_signal(pidfd, signal.SIGKILL)
        await gone
    except ProcessLookupError:
        pass
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
