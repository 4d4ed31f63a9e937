"""`supd`: the daemon, and `supd run FILE…`, the foreground runner.

    supd [--socket PATH] [--state-dir DIR] [--manifests DIR] [--init] ...   serve the API
    supd run FILE... [-]                                                    run pods to completion

Exit codes of `supd run` (and of supd in init mode): 0 when every pod Succeeded, else the
exit code of the first container that failed (128+N for signal N) after `--remap-exit`,
2 for an invalid manifest, a pod this supd cannot run, or bad usage.

Init mode (PID 1, `--init`, and always for `supd run`) is init.py: orphans reaped, signals
forwarded, SIGTERM/SIGINT a graceful stop of every pod, every descendant stopped before exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, TypedDict, TypeVar

import uvloop

from . import __version__, _native, cgroups, logrotate, network
from .backoff import BackoffPolicy
from .daemon import Api
from .errors import InvalidArgument, ManifestError, SupervisorError
from .events import EventLog
from .exitcodes import parse_remap, pick_exit_code
from .hostports import HostPorts
from .init import InitProcess, become_reaper, probe_isolation, take_signals
from .isolation import Isolation
from .logs import follow_log
from .manifest import load_pods, parse_pod
from .restore import Link, Record, read_record
from .runtime import (
    Pod,
    Runtime,
    enter_user_namespace,
    kill_link,
    kill_stale_infra,
    take_over_infra,
)
from .signals import SignalPolicy, parse_rewrites, parse_target
from .spec import PodSpec
from .states import Phase
from .store import DELETING, MEMORY_FILESYSTEMS, Store, StoredPod, filesystem_of

log = logging.getLogger("supervisor.supd")
T = TypeVar("T")
DEFAULT_SOCKET = "/run/supervisor/supd.sock"
DEFAULT_STATE_DIR = "/var/lib/supervisor"


class LogfmtFormatter(logging.Formatter):
    """Structured lines on stderr: time=… level=… logger=… msg="…"."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage().replace('"', '\\"')
        line = (
            f"time={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} level={record.levelname.lower()}"
            f' logger={record.name} msg="{msg}"'
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler])


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backoff-initial",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="first restart delay after the immediate one (kubelet: 10)",
    )
    p.add_argument(
        "--backoff-max",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="cap of the restart delay (kubelet: 300)",
    )
    p.add_argument(
        "--backoff-reset",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="run time after which the delay starts over (kubelet: 600)",
    )
    p.add_argument(
        "--isolation",
        choices=["auto", "full", "none"],
        default="auto",
        help="namespaces for pods: as the spec asks (full), none at all (none), or full when "
        "supd may create namespaces and else only pods with hostNetwork, hostPID and hostIPC "
        "(auto, the default)",
    )
    g = p.add_argument_group("init mode (PID 1, --init, supd run)")
    g.add_argument(
        "--signal-target",
        type=_arg(parse_target),
        default=parse_target("process"),
        metavar="process|group",
        help="where forwarded signals go: each container's main process (default) or its "
        f"process group; a pod's annotation {'supd/signal-target'!r} overrides it",
    )
    g.add_argument(
        "--rewrite-signal",
        action="append",
        default=[],
        metavar="FROM:TO",
        help="forward signal FROM as TO (names or numbers; TO 0 drops it), as dumb-init's "
        "--rewrite; repeatable; a pod's annotation 'supd/signal-rewrite' adds to it",
    )
    g.add_argument(
        "--remap-exit",
        action="append",
        type=_arg(parse_remap),
        default=[],
        metavar="CODE[:NEW]",
        help="count a container's exit code CODE as NEW (default 0), as tini's -e; repeatable",
    )
    g.add_argument(
        "--orphan-grace",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="before exiting, processes left outside every pod get SIGTERM, then SIGKILL "
        "after this long (default 5)",
    )
    g = p.add_argument_group("pod network, cgroups")
    g.add_argument(
        "--network",
        choices=network.MODES,
        default="none",
        help="pods' network: their own namespace with loopback only (none, the default), or "
        "a veth on a host bridge with an address from --pod-cidr (bridge); hostNetwork pods "
        "use the host's either way",
    )
    g.add_argument("--bridge", default=network.DEFAULT_BRIDGE, help="the bridge's name")
    g.add_argument(
        "--pod-cidr",
        default=network.DEFAULT_CIDR,
        metavar="CIDR",
        help=f"pod addresses; the first is the bridge's (default {network.DEFAULT_CIDR})",
    )
    g.add_argument(
        "--cluster-domain",
        default="cluster.local",
        help="the domain of pods' names in /etc/hosts with a subdomain (cluster.local)",
    )
    g.add_argument(
        "--cgroups",
        choices=cgroups.DRIVERS,
        default="auto",
        help="cgroup driver: v2 when /sys/fs/cgroup is cgroup2, else v1 (auto); off: none",
    )
    g.add_argument(
        "--favordynmods",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="remount the cgroup2 mount with favordynmods, so that placing a pod's processes "
        "in their cgroups does not wait for an RCU grace period (about 7 ms a pod here)",
    )
    g.add_argument(
        "--cgroup-parent",
        default=cgroups.DEFAULT_PARENT,
        help="where pod cgroups go: absolute from each hierarchy's root, or relative to "
        f"supd's own cgroup (default {cgroups.DEFAULT_PARENT}); one per supd",
    )
    g.add_argument(
        "--rootless",
        choices=["auto", "off"],
        default="auto",
        help="started by a user other than root: run pods in a user namespace where that "
        "user is root (auto, the default), or not (off: namespaces then need privileges)",
    )
    g.add_argument(
        "--pod-pids-limit",
        type=int,
        metavar="N",
        help="the most processes (pids.max) one pod may have (kubelet's podPidsLimit)",
    )
    g = p.add_argument_group("container logs")
    g.add_argument(
        "--container-log-max-size",
        type=_arg(logrotate.parse_max_size),
        default=logrotate.parse_max_size(logrotate.DEFAULT_MAX_SIZE),
        metavar="QUANTITY",
        help="rotate a container's log once it holds this much, like 10Mi or 500Ki "
        f"(kubelet: {logrotate.DEFAULT_MAX_SIZE}); 0: never",
    )
    g.add_argument(
        "--container-log-max-files",
        type=_arg(logrotate.parse_max_files),
        default=logrotate.DEFAULT_MAX_FILES,
        metavar="N",
        help="log files kept per container instance, the current one included, at least 2 "
        f"(kubelet: {logrotate.DEFAULT_MAX_FILES})",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def _arg(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type from a parser that raises ValueError with a readable message."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = parse.__name__
    return convert


def _backoff(args: argparse.Namespace) -> BackoffPolicy:
    return BackoffPolicy(args.backoff_initial, args.backoff_max, args.backoff_reset)


def _log_rotation(args: argparse.Namespace) -> logrotate.LogRotation:
    return logrotate.LogRotation(args.container_log_max_size, args.container_log_max_files)


def _signal_policy(p: argparse.ArgumentParser, args: argparse.Namespace) -> SignalPolicy:
    try:
        rewrite = parse_rewrites(args.rewrite_signal)
    except ValueError as e:
        p.error(f"argument --rewrite-signal: {e}")
    return SignalPolicy(args.signal_target, rewrite)


def _enter_rootless(args: argparse.Namespace) -> bool:
    """A supd started by another user than root (`--rootless=auto`): into a user namespace
    of its own where that user is root, and say what it then cannot do."""
    if os.geteuid() == 0 or args.rootless == "off":
        return False
    try:
        uid, _gid = enter_user_namespace()
    except OSError as e:
        log.warning(
            "rootless: cannot create a user namespace (%s): pods that need namespaces will "
            "fail; hostNetwork, hostPID and hostIPC pods can run",
            e.strerror or e,
        )
        return False
    log.info(
        "rootless: pods run in a user namespace where uid %d is root. Not available: the "
        "host's network (supd has a network namespace of its own: no hostNetwork, no "
        "hostPort; --network=bridge only connects pods with each other), ids other than 0 "
        "(runAsUser, runAsGroup, supplementalGroups), cgroups unless delegated to uid %d "
        "(no resources.limits otherwise)",
        uid,
        uid,
    )
    return True


class Resources(TypedDict):
    network: network.Network
    cgroups: cgroups.Cgroups
    hostports: HostPorts
    pod_pids_limit: int | None
    cluster_domain: str
    rootless: bool


async def _sandboxing(args: argparse.Namespace, state_dir: str) -> Resources:
    """The Runtime's network, cgroups and host ports. A privilege supd lacks (the bridge,
    a cgroup it cannot write) is not fatal: pods that need it fail with the reason."""
    net = network.Network(
        network.NetworkConfig(
            mode=args.network,
            bridge=args.bridge,
            cidr=args.pod_cidr,
            state_dir=Path(state_dir) / "network",
        )
    )
    await net.start()
    groups = cgroups.select(args.cgroups, args.cgroup_parent)
    try:
        groups.setup()
    except SupervisorError as e:
        log.warning("running without cgroups: %s", e)
        groups = cgroups.NoCgroups(str(e))
    if groups.version and args.favordynmods:
        with contextlib.suppress(OSError):
            for line in cgroups.favor_dynamic_mods(cgroups.mounts()):
                log.info("cgroups: %s", line)
    log.info("cgroups: %s; network: %s", groups.describe(), args.network)
    if args.pod_pids_limit is not None and args.pod_pids_limit < 1:
        raise InvalidArgument("--pod-pids-limit: must be at least 1")
    return {
        "network": net,
        "cgroups": groups,
        "hostports": HostPorts(),
        "pod_pids_limit": args.pod_pids_limit,
        "cluster_domain": args.cluster_domain,
        "rootless": bool(getattr(args, "rootless_mode", False)),
    }


def _isolation(choice: str) -> tuple[Isolation, str]:
    if choice != "auto":
        return Isolation(choice), ""
    isolation, why = probe_isolation()
    if isolation is Isolation.UNAVAILABLE:
        log.info(
            "cannot create namespaces (%s): only pods with hostNetwork, hostPID and hostIPC "
            "run; --isolation=none runs every pod without isolation",
            why,
        )
    return isolation, why


# Objects allocated between two young collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Keep the cyclic GC from stalling the loop. With 1000 pods probed every second,
    CPython's default thresholds ran a full collection every few seconds, each 130-320 ms
    long and freeing nothing: every probe's short-lived tasks and futures survived a young
    collection or two and counted towards the next full one. A larger young generation lets
    them die by reference counting first, and gc.freeze() moves what exists at start-up
    (modules, classes, the parsed schemas) out of every later collection's way."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        return run_main(argv[1:])
    p = argparse.ArgumentParser(prog="supd", description="the pod supervisor daemon")
    p.add_argument("--version", action="version", version=f"supd {__version__}")
    p.add_argument("--socket", default=os.environ.get("SUP_SOCKET", DEFAULT_SOCKET))
    p.add_argument("--socket-group", help="group allowed to use the socket (mode 0660)")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR)
    p.add_argument(
        "--run-dir",
        help="what dies with the machine: pod records, infra sockets, each pod's /etc files "
        "and /dev/shm (default: STATE_DIR/run, mounted as a tmpfs unless on one already)",
    )
    p.add_argument("--manifests", metavar="DIR", help="pods to start at boot (*.yaml, *.json)")
    p.add_argument(
        "--sync-state",
        action="store_true",
        help="fsync each accepted manifest (file and directory) before answering, so that it "
        "survives a power loss too (the default fsyncs right after, off the request path)",
    )
    p.add_argument(
        "--notify-fd",
        type=int,
        metavar="FD",
        help="write READY=1 and a newline to FD once the socket listens",
    )
    p.add_argument(
        "--init",
        action="store_true",
        help="be the init of the pods even when not PID 1 (implied as PID 1): reap orphans, "
        "forward signals, stop every pod on SIGTERM/SIGINT and exit with their exit code",
    )
    _common(p)
    args = p.parse_args(argv)
    policy = _signal_policy(p, args)
    _setup_logging(args.log_level)
    args.rootless_mode = _enter_rootless(args)  # unshare needs a single thread: first
    # Before any thread exists (init.take_signals), so that every thread blocks them.
    sigfd = take_signals() if args.init or os.getpid() == 1 else -1
    try:
        isolation = _isolation(args.isolation)
        tune_gc()
        return uvloop.run(serve(args, isolation, sigfd, policy))
    except SupervisorError as e:
        log.error("%s", e)
        return 1


async def serve(
    args: argparse.Namespace, isolation: tuple[Isolation, str], sigfd: int, policy: SignalPolicy
) -> int:
    from .server import Server  # the API server is only needed by the daemon

    init_mode = sigfd >= 0
    run, mounted = run_dir(args)
    store = Store(args.state_dir, run, sync=args.sync_state)
    runtime = Runtime(
        store,
        EventLog(),
        backoff=_backoff(args),
        log_rotation=_log_rotation(args),
        pods_die_with_supd=init_mode,
        infra_factory=not init_mode,
        isolation=isolation[0],
        isolation_why=isolation[1],
        **await _sandboxing(args, args.state_dir),
    )
    init = InitProcess(runtime, sigfd, become_reaper(), policy) if init_mode else None
    api = Api(runtime, store)
    await restore(runtime, store)
    if args.manifests:
        await apply_dir(api, Path(args.manifests))
    server = Server(api, args.socket, socket_group=args.socket_group)
    await server.start()
    log.info("serving on %s, state in %s and %s", args.socket, store.root, store.run)
    if args.notify_fd is not None:
        try:
            os.write(args.notify_fd, b"READY=1\n")
        except OSError as e:  # whoever waited went away: supd serves all the same
            log.warning("--notify-fd %d: %s", args.notify_fd, e.strerror)
        os.close(args.notify_fd)
    if init is not None:
        await init.shutdown.wait()
        await server.close()
        return await finish(runtime, init, list(runtime.pods.values()), args)
    stop = asyncio.Event()
    for signo in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signo, stop.set)
    await stop.wait()
    log.info("shutting down; pods keep running")
    await server.close()
    runtime.detach()
    await runtime.remove_pool_cgroups()
    runtime.cgroups.remove_parent()
    runtime.network.close()
    if mounted and not any(store.run_pods.iterdir()):
        try:  # nothing in it for a next supd: no mount left over
            _native.umount(str(store.run))
        except OSError as e:
            log.warning("run dir %s: unmount: %s", store.run, e.strerror)
    return 0


def run_dir(args: argparse.Namespace) -> tuple[Path, bool]:
    """The run directory (Store), and whether supd mounted it: --run-dir as given, or
    STATE_DIR/run, on which supd mounts a tmpfs unless it is in memory already, so that pod
    records and sockets cost no disk inode each and are gone after a reboot, as /run's
    are. Without the right to mount (rootless) it stays a plain directory. supd unmounts
    it when it stops with no pod left."""
    if args.run_dir:
        return Path(args.run_dir), False
    path = Path(args.state_dir) / "run"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if args.rootless_mode:
        return path, False
    if filesystem_of(path) in MEMORY_FILESYSTEMS:
        # A tmpfs of its own there is an earlier supd's mount (a state dir on tmpfs is not).
        return path, os.stat(path).st_dev != os.stat(path.parent).st_dev
    try:
        _native.mount_tmpfs(str(path), "mode=0700")
    except OSError as e:
        log.warning("run dir %s: mount tmpfs: %s; it stays on disk", path, e.strerror)
        return path, False
    return path, True


async def finish(
    runtime: Runtime, init: InitProcess, pods: list[Pod], args: argparse.Namespace
) -> int:
    """The end in init mode: every pod stopped (kubelet's termination sequence; SIGKILL at
    once after a second SIGTERM), the exit code taken, then every remaining descendant
    stopped and waited for."""
    await runtime.stop_all(grace=0 if init.hurry.is_set() else None)
    code = exit_code_of(pods, dict(args.remap_exit), init.stopped)
    n = await init.stop_descendants(args.orphan_grace)
    if n:
        log.info("stopped %d process(es) left outside the pods", n)
    await runtime.remove_leftover_cgroups()
    await runtime.remove_pool_cgroups()
    runtime.cgroups.remove_parent()
    runtime.network.close()
    init.close()
    return code


async def restore(runtime: Runtime, store: Store) -> None:
    """Take over every pod the state dir holds (restore.py): each running infra is
    connected to and its pod goes on, containers and all; a pod being deleted finishes its
    deletion; a pod whose infra is gone gets a new sandbox. What a crashed supd left of
    pods that are gone (veths, address leases, cgroups) is removed first."""
    stored = store.load_all()
    links = await asyncio.gather(*(_take_over(s) for s in stored))
    runtime.kill_stale_pool({link.pid for link in links if link is not None})
    restored: list[tuple[PodSpec, Path, Record | None, Link | None]] = []
    for entry, link in zip(stored, links, strict=True):
        if link is None:
            for directory in {entry.run, entry.directory}:
                await kill_stale_infra(directory)
        try:
            spec, _warnings = parse_pod(entry.manifest, str(entry.directory / "pod.json"))
            runtime.admit(spec)
        except SupervisorError as e:
            log.error("cannot restore %s: %s", entry.directory, e)
            if link is not None:
                kill_link(link)
            continue
        if link is None and (entry.directory / DELETING).exists():
            store.remove(entry.directory)
            continue
        # After a reboot the run dir is empty: a pod that had finished has its last record
        # in the state dir (Runtime._persist); any other starts from its manifest.
        record = read_record(entry.run) or read_record(entry.directory)
        restored.append((spec, entry.directory, record, link))
    live = [spec.uid for spec, *_ in restored]
    gone = await runtime.network.prune(live) + await runtime.cgroups.prune(live)
    if gone:
        log.info("removed what earlier pods left behind: %s", ", ".join(gone))
    for spec, directory, record, link in restored:
        pod = runtime.resume(spec, directory, record, link)
        how = "its running infra taken over" if link is not None else "no infra running"
        log.info("restored pod %s (%s), %s", spec.key, pod.status.phase, how)


async def _take_over(entry: StoredPod) -> Link | None:
    """The pod's running infra, at its socket in the run dir, or in the state dir where a
    supd from before the run dir left it (its records are read there too)."""
    link = await take_over_infra(entry.run)
    if link is None and entry.run != entry.directory:
        link = await take_over_infra(entry.directory)
    return link


async def apply_dir(api: Api, directory: Path) -> None:
    for path in sorted(directory.glob("*")):
        if path.suffix not in (".yaml", ".yml", ".json"):
            continue
        try:
            for spec, _w in load_pods(path.read_bytes(), str(path)):
                await api._apply_one(spec, force=False)
        except SupervisorError as e:
            log.error("manifest %s: %s", path, e)


# -- supd run ---------------------------------------------------------------------------


def run_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="supd run", description="run the pods of manifests in the foreground"
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="Pod manifests (- for stdin)")
    p.add_argument("--state-dir", help="where logs go (default: a temporary directory)")
    _common(p)
    args = p.parse_args(argv)
    policy = _signal_policy(p, args)
    _setup_logging(args.log_level if args.log_level != "info" else "warning")
    args.rootless_mode = _enter_rootless(args)  # unshare needs a single thread: first
    sigfd = take_signals()  # before any thread exists (init.take_signals)
    specs: list[PodSpec] = []
    try:
        for name in args.files:
            data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
            specs += [spec for spec, _w in load_pods(data, "<stdin>" if name == "-" else name)]
    except OSError as e:
        print(f"error: {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    except ManifestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    keys = [s.key for s in specs]
    dups = {k for k in keys if keys.count(k) > 1}
    if dups:
        print(f"error: pod {sorted(dups)[0]} is defined more than once", file=sys.stderr)
        return 2
    isolation = _isolation(args.isolation)
    with tempfile.TemporaryDirectory(prefix="supd-run-") as tmp:
        tune_gc()
        return uvloop.run(run_pods(specs, args.state_dir or tmp, args, isolation, sigfd, policy))


async def run_pods(
    specs: list[PodSpec],
    state_dir: str,
    args: argparse.Namespace,
    isolation: tuple[Isolation, str],
    sigfd: int,
    policy: SignalPolicy,
) -> int:
    loop = asyncio.get_running_loop()
    store = Store(state_dir)
    runtime = Runtime(
        store,
        EventLog(),
        backoff=_backoff(args),
        log_rotation=_log_rotation(args),
        pods_die_with_supd=True,
        infra_factory=False,
        isolation=isolation[0],
        isolation_why=isolation[1],
        **await _sandboxing(args, state_dir),
    )
    try:
        for spec in specs:
            runtime.admit(spec)
    except SupervisorError as e:
        print(f"error: {e}", file=sys.stderr)
        os.close(sigfd)
        return 2
    out = sys.stdout.buffer
    followers: set[asyncio.Task[None]] = set()

    def on_start(pod: Pod, name: str, path: Path) -> None:
        instance = pod.status.container(name).instance
        task = loop.create_task(_print_log(pod, name, instance, path, out))
        followers.add(task)
        task.add_done_callback(followers.discard)

    runtime.on_container_start.append(on_start)
    stopping: list[asyncio.Task[None]] = []

    def on_shutdown() -> None:
        stopping.append(loop.create_task(runtime.stop_all()))

    init = InitProcess(runtime, sigfd, become_reaper(), policy, on_shutdown=on_shutdown)
    pods = [runtime.create(spec, store.save(spec)) for spec in specs]
    while not all(p.status.phase.terminal or p.gone.done() for p in pods):
        waits = {p.changed for p in pods if not p.gone.done()}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    code = await finish(runtime, init, pods, args)
    if followers:
        await asyncio.wait(followers)
    out.flush()
    # The store's threads are done with the state dir (emptying deleted pods' directories
    # for reuse creates entries in it) before the temporary one is removed.
    runtime.writer.flush()
    store.flush()
    return code


async def _print_log(pod: Pod, name: str, instance: int, path: Path, out: BinaryIO) -> None:
    """Print one container instance's output as `pod/container | line`."""
    prefix = f"{pod.spec.name}/{name} | ".encode()
    rest = b""

    def done() -> bool:
        return instance not in pod.instances or pod.gone.done()

    async for chunk in follow_log(path, done=done, changed=lambda: pod.changed):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        if lines:
            out.write(b"".join(prefix + line + b"\n" for line in lines))
            out.flush()
    if rest:
        out.write(prefix + rest + b"\n")


def exit_code_of(
    pods: list[Pod], remap: dict[int, int] | None = None, stopped: frozenset[str] = frozenset()
) -> int:
    """0 if every pod Succeeded, or was stopped while it ran (its key in `stopped`) and
    every container's last exit was 0; else the exit code of the container that failed
    first (exitcodes.pick_exit_code, after `remap`)."""
    failed = []
    succeeded = True
    for pod in pods:
        if pod.status.phase is Phase.SUCCEEDED:
            continue
        mine = []
        for st in pod.status.all():
            t = st.terminated or st.last_state
            if t is not None and t.exit_code != 0:
                mine.append((t.finished_at, t.exit_code))
        failed += mine
        # A pod that runs until it is stopped (restartPolicy Always) never Succeeds: stopped
        # with nothing failed, it did what was asked.
        succeeded = succeeded and pod.key in stopped and not mine
    return pick_exit_code(failed, all_succeeded=succeeded, remap=remap or {})


if __name__ == "__main__":
    sys.exit(main())
