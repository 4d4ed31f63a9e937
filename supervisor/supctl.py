"""supctl: the kubectl-like command line for supd.

    supctl apply -f pod.yaml          supctl get pods [-o wide|json|yaml|name] [-w]
    supctl describe pod NAME          supctl logs POD [-c C] [-f] [--previous] [--tail N]
    supctl delete pod NAME            supctl wait pod/NAME --for=condition=Ready
    supctl events [-w]                supctl top pods|containers [NAME]
    supctl exec POD [-c C] [-i] [-t] -- COMMAND [ARG...]
    supctl version

Output follows kubectl; the printing rules live in printers.py (pure, tested with a fixed
clock).

Exit codes: 0 done, 1 the operation failed, 2 bad usage or input (argparse errors, unreadable
files, InvalidArgument replies). Imports: client, protocol, errors and printers only (and yaml,
through yamlload for what it reads).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import termios
import tty as ttymode
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import IO, Any, BinaryIO, NoReturn, TextIO

import yaml

from supervisor import __version__, bench, yamlload
from supervisor.client import Client, Stream, default_socket_path
from supervisor.errors import (
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    SupervisorError,
)
from supervisor.printers import (
    DEFAULT_NAMESPACE,
    TablePrinter,
    as_int,
    as_list,
    as_map,
    describe_pod,
    event_header,
    event_row,
    pod_header,
    pod_row,
    pod_table,
    top_table,
)

POD_TYPES = frozenset({"pod", "pods", "po"})


def utcnow() -> datetime:
    """The clock every AGE is computed against (tests replace it)."""
    return datetime.now(UTC)


class UsageError(Exception):
    """Bad usage or input found by supctl itself: exit code 2."""


_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration ("30s", "1m30s", "500ms") or plain seconds, as seconds."""
    t = text.strip()
    sign = -1.0 if t.startswith("-") else 1.0
    t = t.lstrip("+-")
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return sign * float(t)
    total, pos = 0.0, 0
    for m in _DURATION_RE.finditer(t):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(t) or not t:
        raise UsageError(f'invalid duration "{text}"')
    return sign * total


# -- input -------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """YAML's extras as JSON would have them: timestamps as RFC3339 strings, keys as str."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(k, bool):
                key = "true" if k else "false"
            elif k is None:
                key = "null"
            else:
                key = str(k)
            out[key] = _plain(v)
        return out
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _read_text(path: str, stdin: IO[str]) -> str:
    if path == "-":
        return stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise UsageError(f'the path "{path}" does not exist') from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise UsageError(f"cannot read {path}: {reason}") from None


def _expand(paths: Sequence[str]) -> list[str]:
    files: list[str] = []
    for path in paths:
        if path != "-" and os.path.isdir(path):
            found = sorted(
                os.path.join(path, n)
                for n in os.listdir(path)
                if n.endswith((".yaml", ".yml", ".json"))
            )
            if not found:
                raise UsageError(f'no manifests (*.yaml, *.yml, *.json) in "{path}"')
            files += found
        else:
            files.append(path)
    return files


def read_manifests(paths: Sequence[str], stdin: IO[str]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(source, manifests) per file, every document a mapping; `kind: List` is expanded."""
    result = []
    for path in _expand(paths):
        source = "STDIN" if path == "-" else path
        text = _read_text(path, stdin)
        try:
            docs = yamlload.load_all(text)
        except yamlload.LOAD_ERRORS as e:
            raise UsageError(f"error parsing {source}: {yamlload.describe_error(e)}") from None
        manifests: list[dict[str, Any]] = []
        for i, doc in enumerate(docs):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise UsageError(f"{source}: document {i + 1} is not a mapping")
            # Before _plain copies it: an alias bomb would be copied exponentially.
            problem = yamlload.shape_problem(doc)
            if problem:
                raise UsageError(f"{source}: document {i + 1}: {problem}")
            doc = _plain(doc)
            if doc.get("kind") == "List":
                for j, item in enumerate(as_list(doc.get("items"))):
                    if not isinstance(item, dict):
                        raise UsageError(f"{source}: document {i + 1}: items[{j}] is not a mapping")
                    manifests.append(item)
            else:
                manifests.append(doc)
        result.append((source, manifests))
    return result


# -- commands ----------------------------------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    out: TextIO
    err: TextIO
    stdin: IO[str]
    socket: str
    namespace: str
    explicit_namespace: bool

    def connect(self) -> Awaitable[Client]:
        return Client.connect(self.socket)

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    def warn(self, text: str) -> None:
        print(text, file=self.err)

    def binary_out(self) -> BinaryIO:
        self.out.flush()
        buffer: BinaryIO | None = getattr(self.out, "buffer", None)
        if buffer is None:
            raise UsageError("standard output does not take bytes")
        return buffer


def report(ctx: Context, e: SupervisorError) -> int:
    """Print a server error kubectl's way and return its exit code."""
    if isinstance(e, NotFound):
        ctx.warn(f"Error from server (NotFound): {e.message}")
        return 1
    causes = e.details.get("causes") if isinstance(e.details, dict) else None
    if isinstance(causes, list) and len(causes) > 1:
        # One line per invalid field, as kubectl lists them ("* spec.x: Invalid value").
        source = e.details.get("source") or "the manifest"
        ctx.warn(f"error: {source} is invalid:")
        for cause in causes:
            if isinstance(cause, dict):
                field, message = cause.get("field"), cause.get("message")
                ctx.warn(f"* {field}: {message}" if field else f"* {message}")
        return 2
    ctx.warn(f"error: {e.message}")
    return 2 if isinstance(e, InvalidArgument) else 1


def _not_found(ctx: Context, name: str) -> int:
    ctx.warn(f'Error from server (NotFound): pods "{name}" not found')
    return 1


def pod_names(resource: str | None, names: Sequence[str]) -> list[str]:
    """`pod NAME…`, `pods`, or `pod/NAME…` → the names (UsageError for other kinds)."""
    args = ([resource] if resource else []) + list(names)
    if args and "/" in args[0]:
        result = []
        for arg in args:
            kind, sep, name = arg.partition("/")
            if not sep:
                raise UsageError(
                    "there is no need to specify a resource type as a separate argument when "
                    "passing arguments in resource/name form"
                )
            _check_kind(kind)
            result.append(name)
        return result
    if resource is None:
        raise UsageError("you must specify the type of resource: pods")
    _check_kind(resource)
    for name in names:
        if "/" in name:
            raise UsageError(
                "there is no need to specify a resource type as a separate argument when "
                "passing arguments in resource/name form"
            )
    return list(names)


def _check_kind(kind: str) -> None:
    if kind.lower() not in POD_TYPES:
        raise UsageError(f'the server doesn\'t have a resource type "{kind}"')


def _pod_arg(text: str) -> str:
    kind, sep, name = text.partition("/")
    if sep:
        _check_kind(kind)
        return name
    return text


def _dump(obj: Any, output: str) -> str:
    if output == "json":
        return json.dumps(obj, indent=4, ensure_ascii=False) + "\n"
    return yaml.safe_dump(obj, default_flow_style=False, allow_unicode=True)


async def cmd_apply(ctx: Context) -> int:
    files = read_manifests(ctx.args.files, ctx.stdin)
    if not any(manifests for _, manifests in files):
        raise UsageError("no objects passed to apply")
    for _, manifests in files:
        for m in manifests:
            meta = m.setdefault("metadata", {})
            if not isinstance(meta, dict) or not ctx.explicit_namespace:
                continue
            if meta.get("namespace") in (None, ""):
                meta["namespace"] = ctx.namespace
            elif meta["namespace"] != ctx.namespace:
                raise UsageError(
                    f'the namespace from the provided object "{meta["namespace"]}" does not '
                    f'match the namespace "{ctx.namespace}". You must pass '
                    f"'--namespace={meta['namespace']}' to perform this operation."
                )
    code = 0
    async with await ctx.connect() as client:
        for source, manifests in files:
            if not manifests:
                continue
            try:
                result = await client.call(
                    "apply", manifests=manifests, force=ctx.args.force, source=source
                )
            except SupervisorError as e:
                code = max(code, report(ctx, e))
                continue
            for warning in as_list(result.get("warnings")):
                ctx.warn(f"Warning: {warning}")
            for r in as_list(result.get("results")):
                r = as_map(r)
                for warning in as_list(r.get("warnings")):
                    ctx.warn(f"Warning: {warning}")
                ctx.print(f"pod/{r.get('name')} {r.get('action')}")
    return code


async def cmd_get(ctx: Context) -> int:
    a = ctx.args
    names = pod_names(a.resource, a.names)
    if a.all_namespaces and names:
        raise UsageError("a resource cannot be retrieved by name across all namespaces")
    namespace = None if a.all_namespaces else ctx.namespace
    wide = a.output == "wide"
    if a.watch:
        if len(names) > 1:
            raise UsageError(
                "watch is only supported on individual resources and resource collections, "
                f"but {len(names)} resources were found"
            )
        return await _watch_pods(ctx, namespace, names[0] if names else None, wide)
    code = 0
    items: list[dict[str, Any]] = []
    async with await ctx.connect() as client:
        if names:
            for name in names:
                try:
                    result = await client.call("get", namespace=namespace, name=name)
                except NotFound:
                    code = _not_found(ctx, name)
                    continue
                items += as_list(result.get("items"))
        else:
            items = as_list((await client.call("get", namespace=namespace)).get("items"))
    if a.output in ("json", "yaml"):
        if len(names) == 1 and len(items) == 1:
            ctx.out.write(_dump(items[0], a.output))
        elif items or not names:
            ctx.out.write(_dump({"apiVersion": "v1", "kind": "List", "items": items}, a.output))
    elif a.output == "name":
        for pod in items:
            ctx.print(f"pod/{as_map(pod.get('metadata')).get('name')}")
    elif items:
        ctx.out.write(pod_table(items, utcnow(), wide=wide, all_namespaces=a.all_namespaces))
    elif not names:
        where = "" if namespace is None else f" in {namespace} namespace"
        ctx.warn(f"No resources found{where}.")
    return code


async def _watch_pods(ctx: Context, namespace: str | None, name: str | None, wide: bool) -> int:
    a = ctx.args
    table = TablePrinter(pod_header(wide=wide, all_namespaces=a.all_namespaces))
    async with await ctx.connect() as client:
        async for change in client.stream("watch", namespace=namespace, name=name):
            pod = as_map(as_map(change).get("object"))
            if a.output in ("json", "yaml"):
                text = _dump(pod, a.output)
                ctx.out.write(text if a.output == "json" else "---\n" + text)
            elif a.output == "name":
                ctx.print(f"pod/{as_map(pod.get('metadata')).get('name')}")
            else:
                row = pod_row(pod, utcnow(), wide=wide, all_namespaces=a.all_namespaces)
                ctx.out.write(table.format([row]))
            ctx.out.flush()
    return 0


async def _collect(stream: AsyncIterator[Any]) -> list[dict[str, Any]]:
    return [as_map(item) async for item in stream]


async def cmd_describe(ctx: Context) -> int:
    names = pod_names(ctx.args.resource, ctx.args.names)
    code = 0
    texts = []
    async with await ctx.connect() as client:
        if names:
            pods = []
            for name in names:
                try:
                    result = await client.call("get", namespace=ctx.namespace, name=name)
                except NotFound:
                    code = _not_found(ctx, name)
                    continue
                pods += as_list(result.get("items"))
        else:
            pods = as_list((await client.call("get", namespace=ctx.namespace)).get("items"))
            if not pods:
                ctx.warn(f"No resources found in {ctx.namespace} namespace.")
        for pod in pods:
            meta = as_map(as_map(pod).get("metadata"))
            events = await _collect(
                client.stream(
                    "events",
                    namespace=meta.get("namespace") or ctx.namespace,
                    name=meta.get("name"),
                    watch=False,
                )
            )
            texts.append(describe_pod(pod, events, utcnow()))
    if texts:
        ctx.out.write("\n\n".join(texts))
    return code


async def cmd_logs(ctx: Context) -> int:
    a = ctx.args
    name = _pod_arg(a.pod)
    out = ctx.binary_out()
    async with await ctx.connect() as client:
        stream = client.stream(
            "logs",
            namespace=ctx.namespace,
            name=name,
            container=a.container,
            follow=a.follow,
            previous=a.previous,
            tail=a.tail if a.tail is not None and a.tail >= 0 else None,
            timestamps=a.timestamps,
        )
        async for chunk in stream:
            data = as_map(chunk).get("data", b"")
            out.write(data.encode() if isinstance(data, str) else bytes(data))
            out.flush()
    return 0


async def cmd_delete(ctx: Context) -> int:
    a = ctx.args
    targets: list[tuple[str, str]] = []
    if a.files:
        if a.resource or a.names:
            raise UsageError("when paths are provided, no resources may be specified")
        for _, manifests in read_manifests(a.files, ctx.stdin):
            for m in manifests:
                meta = as_map(m.get("metadata"))
                if not meta.get("name"):
                    raise UsageError("a manifest to delete has no metadata.name")
                targets.append((str(meta.get("namespace") or ctx.namespace), str(meta["name"])))
    else:
        names = pod_names(a.resource, a.names)
        if not names:
            raise UsageError("resource(s) were provided, but no name was specified")
        targets = [(ctx.namespace, n) for n in names]
    extra: dict[str, Any] = {}
    if a.grace_period is not None and a.grace_period >= 0:
        extra["grace_period"] = a.grace_period
    code = 0
    async with await ctx.connect() as client:
        for namespace, name in targets:
            try:
                await client.call("delete", namespace=namespace, name=name, wait=a.wait, **extra)
            except NotFound:
                code = _not_found(ctx, name)
                continue
            except SupervisorError as e:
                code = max(code, report(ctx, e))
                continue
            ctx.print(f'pod "{name}" deleted')
    return code


async def cmd_wait(ctx: Context) -> int:
    a = ctx.args
    names = pod_names(a.targets[0], a.targets[1:]) if a.targets else []
    if not names:
        raise UsageError("at least one resource name must be given: pod/NAME")
    what = a.for_
    if what != "delete" and not re.fullmatch(r"condition=[^=]+(=.*)?", what):
        raise UsageError(f"unrecognized condition: {what!r}")
    timeout = parse_duration(a.timeout)
    if timeout < 0:
        timeout = 7 * 24 * 3600.0  # kubectl: a negative timeout means a week
    code = 0
    async with await ctx.connect() as client:
        for name in names:
            try:
                await client.call(
                    "wait", namespace=ctx.namespace, name=name, timeout=timeout, **{"for": what}
                )
            except DeadlineExceeded:
                ctx.warn(f"error: timed out waiting for the condition on pods/{name}")
                return 1
            except NotFound:
                if what == "delete":
                    ctx.print(f"pod/{name} deleted")
                    continue
                code = _not_found(ctx, name)
                continue
            ctx.print(f"pod/{name} deleted" if what == "delete" else f"pod/{name} condition met")
    return code


async def cmd_events(ctx: Context) -> int:
    a = ctx.args
    namespace = None if a.all_namespaces else ctx.namespace
    name = _pod_arg(a.for_) if a.for_ else None
    table = TablePrinter(event_header(all_namespaces=a.all_namespaces))
    async with await ctx.connect() as client:
        stream = client.stream("events", namespace=namespace, name=name, watch=a.watch)
        if a.watch:
            async for event in stream:
                row = event_row(as_map(event), utcnow(), all_namespaces=a.all_namespaces)
                ctx.out.write(table.format([row]))
                ctx.out.flush()
            return 0
        events = await _collect(stream)
    if not events:
        where = "" if namespace is None else f" in {namespace} namespace"
        ctx.warn(f"No events found{where}.")
        return 0
    now = utcnow()
    ctx.out.write(table.format(event_row(e, now, all_namespaces=a.all_namespaces) for e in events))
    return 0


async def cmd_top(ctx: Context) -> int:
    """`top pods [NAME...]` and `top containers [POD...]` (kubectl top pod [--containers]):
    CPU and memory from the pods' cgroups."""
    a = ctx.args
    if a.resource not in ("pod", "pods", "po", "container", "containers"):
        raise UsageError(f'unknown resource "{a.resource}": use pods or containers')
    containers = a.containers or a.resource.startswith("container")
    if a.all_namespaces and a.names:
        raise UsageError("a resource cannot be retrieved by name across all namespaces")
    namespace = None if a.all_namespaces else ctx.namespace
    items: list[dict[str, Any]] = []
    code = 0
    async with await ctx.connect() as client:
        for name in a.names or [None]:
            try:
                result = await client.call("top", namespace=namespace, name=name)
            except NotFound:
                code = _not_found(ctx, name or "")
                continue
            items += [as_map(i) for i in as_list(result.get("items"))]
    if items:
        ctx.out.write(top_table(items, containers=containers, all_namespaces=a.all_namespaces))
    elif not a.names:
        where = "" if namespace is None else f" in {namespace} namespace"
        ctx.warn(f"No resources found{where}.")
    return code


DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


def default_container(pod: Mapping[str, Any]) -> tuple[str, str | None]:
    """The container kubectl picks when none is named (podcmd.FindOrDefaultContainerByName):
    the annotation's, else the first one; and the notice kubectl prints in that case when
    the pod has other containers."""
    meta, spec = as_map(pod.get("metadata")), as_map(pod.get("spec"))
    names = [str(as_map(c).get("name")) for c in as_list(spec.get("containers"))]
    init = [str(as_map(c).get("name")) for c in as_list(spec.get("initContainers"))]
    wanted = as_map(meta.get("annotations")).get(DEFAULT_CONTAINER_ANNOTATION)
    if wanted and wanted in names + init:
        return str(wanted), None
    if not names:
        raise UsageError(f"pod {meta.get('name')} does not have any containers")
    if len(names) > 1 or init:
        everything = ", ".join(names + [f"{n} (init)" for n in init])
        return names[0], f'Defaulted container "{names[0]}" out of: {everything}'
    return names[0], None


async def cmd_exec(ctx: Context) -> int:
    """kubectl exec: the command's output and exit code. kubectl prints "command terminated
    with exit code N" for a non-zero one, and so does this."""
    a = ctx.args
    command = list(a.words)
    if a.argv is not None:
        if command:
            raise UsageError("give the command after --, not before it")
        command = a.argv
    elif command:
        ctx.warn(
            "supctl exec [POD] [COMMAND] is DEPRECATED and will be removed in a future "
            "version. Use supctl exec [POD] -- [COMMAND] instead."
        )
    if not command:
        raise UsageError("you must specify at least one command for the container")
    name = _pod_arg(a.pod)
    async with await ctx.connect() as client:
        try:
            result = await client.call("get", namespace=ctx.namespace, name=name)
        except NotFound:
            return _not_found(ctx, name)
        pod = as_map(as_list(result.get("items"))[0])
        phase = as_map(pod.get("status")).get("phase")
        if phase in ("Succeeded", "Failed"):
            ctx.warn(
                f"error: cannot exec into a container in a completed pod; current phase is {phase}"
            )
            return 1
        container = a.container
        if not container:
            container, notice = default_container(pod)
            if notice and not a.quiet:
                ctx.warn(notice)
        use_tty = a.tty and a.stdin
        if use_tty and not os.isatty(ctx.stdin.fileno()):
            use_tty = False
            if not a.quiet:
                ctx.warn("Unable to use a TTY - input is not a terminal or the right kind of file")
        status = await _exec(ctx, client, name, container, command, a.stdin, use_tty)
    if status.get("message"):
        ctx.warn(str(status["message"]))
    code = as_int(status.get("exit_code"))
    if code:
        ctx.warn(f"command terminated with exit code {code}")
    return code


def _terminal_size(*fds: int) -> dict[str, int]:
    for fd in fds:
        with contextlib.suppress(OSError):
            size = os.get_terminal_size(fd)
            return {"rows": size.lines, "cols": size.columns}
    return {}


async def _exec(
    ctx: Context,
    client: Client,
    name: str,
    container: str,
    command: list[str],
    stdin: bool,
    tty: bool,
) -> dict[str, Any]:
    """Run the exec stream: output to stdout/stderr, stdin (with -i) as exec_input, the
    terminal raw and its size followed (with -t). Returns the final status payload."""
    loop = asyncio.get_running_loop()
    out = ctx.binary_out()
    ctx.err.flush()
    err: BinaryIO = getattr(ctx.err, "buffer", out)
    in_fd = ctx.stdin.fileno() if stdin else -1
    out_fd = out.fileno() if tty else -1
    stream = client.open_stream(
        "exec",
        namespace=ctx.namespace,
        name=name,
        container=container,
        command=command,
        stdin=stdin,
        tty=tty,
        **(_terminal_size(out_fd, in_fd) if tty else {}),
    )
    tasks: set[asyncio.Task[None]] = set()
    saved: list[Any] | None = None
    status: dict[str, Any] = {}
    try:
        if tty:
            saved = termios.tcgetattr(in_fd)
            ttymode.setraw(in_fd)

            def resized() -> None:
                size = _terminal_size(out_fd, in_fd)
                if size:
                    task = loop.create_task(_resize(client, stream, size))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)

            loop.add_signal_handler(signal.SIGWINCH, resized)
        if stdin:
            tasks.add(loop.create_task(_send_input(client, stream, in_fd)))
        async for payload in stream:
            payload = as_map(payload)
            if "stdout" in payload or "stderr" in payload:
                target = out if "stdout" in payload else err
                data = payload.get("stdout", payload.get("stderr"))
                target.write(bytes(data) if isinstance(data, (bytes, bytearray)) else b"")
                target.flush()
            elif "exit_code" in payload:
                status = payload
    finally:
        stream.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if tty:
            loop.remove_signal_handler(signal.SIGWINCH)
        if saved is not None:
            termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)
    return status


async def _resize(client: Client, stream: Stream, size: dict[str, int]) -> None:
    with contextlib.suppress(SupervisorError):
        await client.call("exec_resize", target=stream.id, **size)


async def _read_input(loop: asyncio.AbstractEventLoop, fd: int) -> bytes:
    """The next chunk of stdin (b"" at its end), read once the fd is readable. A regular
    file or /dev/null cannot be watched (epoll refuses them) and never blocks: read it."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    try:
        loop.add_reader(fd, wake)
    except PermissionError:
        return os.read(fd, 65536)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
    return os.read(fd, 65536)


async def _send_input(client: Client, stream: Stream, fd: int) -> None:
    """Stdin as exec_input requests, one at a time: each reply says the process has it."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(SupervisorError):  # the exec ended: its input is moot
        while True:
            data = await _read_input(loop, fd)
            if not data:
                await client.call("exec_input", target=stream.id, eof=True)
                return
            await client.call("exec_input", target=stream.id, data=data)


async def cmd_version(ctx: Context) -> int:
    ctx.print(f"Client Version: {__version__}")
    ctx.out.flush()
    try:
        async with await ctx.connect() as client:
            result = await client.call("version")
    except SupervisorError as e:
        return max(1, report(ctx, e))
    ctx.print(f"Server Version: {result.get('server')}")
    ctx.print(f"Protocol Version: {result.get('protocol')}")
    return 0


async def cmd_image(ctx: Context) -> int:
    """supctl image import NAME[:TAG] PATH | ls | rm NAME..."""
    a = ctx.args
    async with await ctx.connect() as client:
        if a.image_command == "import":
            path = os.path.abspath(a.path)
            result = await client.call("image_import", name=a.name, path=path)
            ctx.print(f"{result['name']} {result['id']} ({len(result['layers'])} layers)")
        elif a.image_command == "ls":
            items = (await client.call("image_ls"))["items"]
            if a.output == "json":
                ctx.print(json.dumps({"items": items}, indent=2))
                return 0
            rows = [("IMAGE", "TAG", "IMAGE ID", "LAYERS", "SIZE")]
            for i in items:
                name, _, tag = i["name"].rpartition(":")
                image_id = i["id"].split(":", 1)[-1][:12]
                rows.append((name, tag, image_id, str(len(i["layers"])), _size(i["size"])))
            widths = [max(len(r[k]) for r in rows) for k in range(5)]
            for r in rows:
                ctx.print("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        else:
            for name in a.names:
                result = await client.call("image_rm", name=name)
                ctx.print(f"Deleted: {result['name']}")
    return 0


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1000
    return f"{value:.1f}TB"


async def cmd_bench(ctx: Context) -> int:
    return await bench.main(ctx.args, ctx.socket, ctx.out, ctx.err)


COMMANDS: dict[str, Callable[[Context], Awaitable[int]]] = {
    "image": cmd_image,
    "apply": cmd_apply,
    "get": cmd_get,
    "describe": cmd_describe,
    "logs": cmd_logs,
    "delete": cmd_delete,
    "wait": cmd_wait,
    "events": cmd_events,
    "top": cmd_top,
    "exec": cmd_exec,
    "version": cmd_version,
    "bench": cmd_bench,
}


# -- arguments ---------------------------------------------------------------------------


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "t"):
        return True
    if value in ("false", "0", "no", "f"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    # Global flags are accepted before and after the command, as kubectl does; SUPPRESS keeps
    # a subcommand's unset copy from overwriting a value given before it.
    common = _Parser(add_help=False)
    common.add_argument(
        "--socket", default=argparse.SUPPRESS, help="supd's socket (default: $SUP_SOCKET)"
    )
    common.add_argument(
        "-n", "--namespace", default=argparse.SUPPRESS, help='namespace (default "default")'
    )
    p = _Parser(prog="supctl", parents=[common], description="Control supd's pods.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("apply", parents=[common], help="create or update pods from manifests")
    s.add_argument("-f", "--filename", action="append", dest="files", required=True)
    s.add_argument("--force", action="store_true", help="recreate pods whose spec changed")

    s = sub.add_parser("get", parents=[common], help="list pods")
    s.add_argument("resource")
    s.add_argument("names", nargs="*")
    s.add_argument("-o", "--output", choices=("wide", "json", "yaml", "name"))
    s.add_argument("-w", "--watch", action="store_true")
    s.add_argument("-A", "--all-namespaces", action="store_true")

    s = sub.add_parser("describe", parents=[common], help="show a pod in detail")
    s.add_argument("resource")
    s.add_argument("names", nargs="*")

    s = sub.add_parser("logs", parents=[common], help="print a container's log")
    s.add_argument("pod")
    s.add_argument("-c", "--container")
    s.add_argument("-f", "--follow", action="store_true")
    s.add_argument("-p", "--previous", action="store_true")
    s.add_argument("--tail", type=int, default=-1)
    s.add_argument("--timestamps", action="store_true")

    s = sub.add_parser("delete", parents=[common], help="delete pods")
    s.add_argument("resource", nargs="?")
    s.add_argument("names", nargs="*")
    s.add_argument("-f", "--filename", action="append", dest="files")
    s.add_argument("--grace-period", type=int, default=-1)
    s.add_argument("--wait", type=_bool, nargs="?", const=True, default=True)

    s = sub.add_parser("wait", parents=[common], help="wait for a condition or deletion")
    s.add_argument("targets", nargs="+", metavar="pod/NAME")
    s.add_argument("--for", dest="for_", required=True, metavar="condition=NAME|delete")
    s.add_argument("--timeout", default="30s")

    s = sub.add_parser("events", parents=[common], help="list events")
    s.add_argument("-w", "--watch", action="store_true")
    s.add_argument("-A", "--all-namespaces", action="store_true")
    s.add_argument("--for", dest="for_", metavar="pod/NAME")

    s = sub.add_parser("top", parents=[common], help="CPU and memory of pods or containers")
    s.add_argument("resource", metavar="pods|containers")
    s.add_argument("names", nargs="*")
    s.add_argument("-A", "--all-namespaces", action="store_true")
    s.add_argument("--containers", action="store_true", help="one row per container")

    s = sub.add_parser(
        "exec",
        parents=[common],
        help="run a command in a container",
        usage="supctl exec POD [-c CONTAINER] [-i] [-t] [-q] -- COMMAND [ARG...]",
    )
    s.add_argument("pod")
    s.add_argument("words", nargs="*", help=argparse.SUPPRESS)
    s.add_argument("-c", "--container", help="the container (default: the first one)")
    s.add_argument("-i", "--stdin", action="store_true", help="pass stdin to the container")
    s.add_argument("-t", "--tty", action="store_true", help="stdin is a TTY (with -i)")
    s.add_argument("-q", "--quiet", action="store_true", help="only print the command's output")

    s = sub.add_parser("image", parents=[common], help="manage the local image store")
    isub = s.add_subparsers(dest="image_command", required=True, parser_class=_Parser)
    i = isub.add_parser(
        "import", parents=[common], help="import a rootfs, OCI layout or docker archive"
    )
    i.add_argument("name", metavar="NAME[:TAG]")
    i.add_argument("path", metavar="PATH")
    i = isub.add_parser("ls", parents=[common], help="list images")
    i.add_argument("-o", "--output", choices=("json",))
    i = isub.add_parser("rm", parents=[common], help="remove images")
    i.add_argument("names", nargs="+", metavar="NAME[:TAG]")

    sub.add_parser("version", parents=[common], help="print client and server versions")

    # bench's -n is the pod count, as in load-test tools; its namespace is --bench-namespace.
    only_socket = _Parser(add_help=False)
    only_socket.add_argument("--socket", default=argparse.SUPPRESS, help="supd's socket")
    s = sub.add_parser("bench", parents=[only_socket], help="load-test pod start latency")
    bench.add_arguments(s)
    return p


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """argparse, except that exec's command is every word after the first "--" (argparse
    would drop later "--" and read options out of it)."""
    argv = list(argv)
    parser = build_parser()
    args = None
    if "--" in argv and "exec" in argv[: argv.index("--")]:
        cut = argv.index("--")
        args = parser.parse_args(argv[:cut])
        if args.command == "exec":
            args.argv = argv[cut + 1 :]
        else:
            args = None
    if args is None:
        args = parser.parse_args(argv)
        args.argv = None
    return args


async def _run(ctx: Context) -> int:
    return await COMMANDS[ctx.args.command](ctx)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    namespace = getattr(args, "namespace", None)
    ctx = Context(
        args=args,
        out=sys.stdout,
        err=sys.stderr,
        stdin=sys.stdin,
        socket=default_socket_path(getattr(args, "socket", None)),
        namespace=namespace or DEFAULT_NAMESPACE,
        explicit_namespace=namespace is not None,
    )
    try:
        return asyncio.run(_run(ctx))
    except UsageError as e:
        ctx.warn(f"error: {e}")
        return 2
    except SupervisorError as e:
        return report(ctx, e)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`supctl logs … | head`): stop quietly, like kubectl.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
