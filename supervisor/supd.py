"""`supd`: the daemon, and `supd run FILE…`, the foreground runner.

    supd [--socket PATH] [--state-dir DIR] [--manifests DIR] ...   serve the API
    supd run FILE... [-]                                           run pods to completion

Exit codes of `supd run`: 0 when every pod Succeeded, else the exit code of the first
container that failed (128+N for signal N), 2 for an invalid manifest or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import uvloop

from . import __version__
from .backoff import BackoffPolicy
from .daemon import Api
from .errors import ManifestError, SupervisorError
from .events import EventLog
from .logs import follow_log
from .manifest import load_pods, parse_pod
from .runtime import Pod, Runtime, kill_stale_infra
from .spec import PodSpec
from .states import Phase
from .store import Store

log = logging.getLogger("supervisor.supd")
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
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def _backoff(args: argparse.Namespace) -> BackoffPolicy:
    return BackoffPolicy(args.backoff_initial, args.backoff_max, args.backoff_reset)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        return run_main(argv[1:])
    p = argparse.ArgumentParser(prog="supd", description="the pod supervisor daemon")
    p.add_argument("--version", action="version", version=f"supd {__version__}")
    p.add_argument("--socket", default=os.environ.get("SUP_SOCKET", DEFAULT_SOCKET))
    p.add_argument("--socket-group", help="group allowed to use the socket (mode 0660)")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR)
    p.add_argument("--manifests", metavar="DIR", help="pods to start at boot (*.yaml, *.json)")
    p.add_argument(
        "--notify-fd",
        type=int,
        metavar="FD",
        help="write READY=1 and a newline to FD once the socket listens",
    )
    _common(p)
    args = p.parse_args(argv)
    _setup_logging(args.log_level)
    try:
        return uvloop.run(serve(args))
    except SupervisorError as e:
        log.error("%s", e)
        return 1


async def serve(args: argparse.Namespace) -> int:
    from .server import Server  # the API server is only needed by the daemon

    store = Store(args.state_dir)
    runtime = Runtime(store, EventLog(), backoff=_backoff(args))
    api = Api(runtime, store)
    await restore(runtime, store)
    if args.manifests:
        await apply_dir(api, Path(args.manifests))
    server = Server(api, args.socket, socket_group=args.socket_group)
    await server.start()
    log.info("serving on %s, state in %s", args.socket, args.state_dir)
    if args.notify_fd is not None:
        os.write(args.notify_fd, b"READY=1\n")
        os.close(args.notify_fd)
    stop = asyncio.Event()
    for signo in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signo, stop.set)
    await stop.wait()
    log.info("shutting down; pods keep running")
    await server.close()
    runtime.detach()
    return 0


async def restore(runtime: Runtime, store: Store) -> None:
    """Bring back every pod the state dir holds: those being deleted are finished off,
    the others start again (their old infra, if still running, is stopped first)."""
    for stored in store.load_all():
        await kill_stale_infra(stored.directory)
        if (stored.directory / "deleting").exists():
            store.remove(stored.directory)
            continue
        try:
            spec, _warnings = parse_pod(stored.manifest, str(stored.directory / "pod.json"))
        except ManifestError as e:
            log.error("cannot restore %s: %s", stored.directory, e)
            continue
        log.info("restoring pod %s", spec.key)
        runtime.create(spec, stored.directory)


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
    _setup_logging(args.log_level if args.log_level != "info" else "warning")
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
    with tempfile.TemporaryDirectory(prefix="supd-run-") as tmp:
        return uvloop.run(run_pods(specs, args.state_dir or tmp, _backoff(args)))


async def run_pods(specs: list[PodSpec], state_dir: str, backoff: BackoffPolicy) -> int:
    loop = asyncio.get_running_loop()
    store = Store(state_dir)
    runtime = Runtime(store, EventLog(), backoff=backoff, pods_die_with_supd=True)
    out = sys.stdout.buffer
    followers: set[asyncio.Task[None]] = set()

    def on_start(pod: Pod, name: str, path: Path) -> None:
        instance = pod.status.container(name).instance
        task = loop.create_task(_print_log(pod, name, instance, path, out))
        followers.add(task)
        task.add_done_callback(followers.discard)

    runtime.on_container_start.append(on_start)
    stopping: list[asyncio.Task[None]] = []

    def on_signal() -> None:
        if not stopping:
            stopping.append(loop.create_task(runtime.stop_all()))

    for signo in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signo, on_signal)
    pods = [runtime.create(spec, store.save(spec)) for spec in specs]
    while not all(p.status.phase.terminal or p.gone.done() for p in pods):
        waits = {p.changed for p in pods if not p.gone.done()}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    code = exit_code_of(pods)
    await runtime.stop_all()
    if followers:
        await asyncio.wait(followers)
    out.flush()
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


def exit_code_of(pods: list[Pod]) -> int:
    """0 if every pod Succeeded; else the exit code of the container that failed first."""
    failed = []
    for pod in pods:
        if pod.status.phase is Phase.SUCCEEDED:
            continue
        for st in pod.status.all():
            t = st.terminated or st.last_state
            if t is not None and t.exit_code != 0:
                failed.append((t.finished_at, t.exit_code))
    if failed:
        return min(failed)[1]
    return 0 if all(p.status.phase is Phase.SUCCEEDED for p in pods) else 1


if __name__ == "__main__":
    sys.exit(main())
