"""supd's API: one method per protocol op, over the runtime. Validation happens here,
before anything is created; the runtime only ever sees valid specs.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from typing import Any, Protocol

from . import __version__
from .cgroups import Usage
from .errors import (
    AlreadyExists,
    Conflict,
    DeadlineExceeded,
    InvalidArgument,
    ManifestError,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from .events import matches
from .execs import ExecSession
from .images import normalize
from .isolation import Namespaces
from .logs import follow_log, iter_log
from .manifest import MAX_CAUSES, parse_pod
from .runtime import Pod, Runtime
from .spec import PodSpec
from .store import Store

log = logging.getLogger("supervisor.daemon")


def _check_readable(path: str, uid: int, gid: int) -> None:
    """PermissionDenied unless `uid`/`gid` could read `path` and search its parents."""

    def allowed(st: os.stat_result, bits: int) -> bool:
        if st.st_uid == uid:
            return bool(st.st_mode & (bits << 6))
        if st.st_gid == gid:
            return bool(st.st_mode & (bits << 3))
        return bool(st.st_mode & bits)

    parts = os.path.normpath(path).split("/")
    for i in range(1, len(parts)):
        parent = "/".join(parts[:i]) or "/"
        try:
            if not allowed(os.stat(parent), 1):
                raise PermissionDenied(f"image import: {parent} is not searchable by uid {uid}")
        except FileNotFoundError:
            return  # reported by the import itself
    try:
        if not allowed(os.stat(path), 4):
            raise PermissionDenied(f"image import: {path} is not readable by uid {uid}")
    except FileNotFoundError:
        return


PROTOCOL_VERSION = 1


class Call(Protocol):
    state: Any

    async def send(self, payload: Any) -> None: ...

    def try_send(self, payload: Any) -> bool: ...

    def sibling(self, rid: int) -> Call | None: ...


class Api:
    def __init__(self, runtime: Runtime, store: Store) -> None:
        self.runtime = runtime
        self.store = store

    # -- apply ----------------------------------------------------------------------------

    async def op_version(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        return {"server": f"supd {__version__}", "protocol": PROTOCOL_VERSION}

    async def op_apply(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        """Validate every document first, so that a bad one creates nothing."""
        source = args.get("source") or "<request>"
        manifests = args["manifests"]
        parsed: list[tuple[PodSpec, list[str]]] = []
        # The first MAX_CAUSES causes, and a count of the rest: a 1 MiB request holds
        # 300,000 empty manifests, whose 1.2 million causes took supd to 700 MB and made
        # an error reply too large to send.
        causes: list[tuple[str, str]] = []
        more = 0
        seen: set[str] = set()
        for i, obj in enumerate(manifests):
            if i % 256 == 255:
                # Validation is pure and 300,000 manifests take seconds: let the loop serve
                # others meanwhile (nothing is created before every one is checked).
                await asyncio.sleep(0)
            where = f"document {i + 1}: " if len(manifests) > 1 else ""
            try:
                spec, warnings = parse_pod(obj, source, i)
            except ManifestError as e:
                found = [
                    (f"{where}{path}" if path else where.rstrip(": "), m) for path, m in e.causes
                ]
                room = max(0, MAX_CAUSES - len(causes))
                causes += found[:room]
                more += len(found) - len(found[:room])
                continue
            if spec.key in seen:
                if len(causes) < MAX_CAUSES:
                    causes.append((f"{where}metadata.name", f'Duplicate value: "{spec.name}"'))
                else:
                    more += 1
            seen.add(spec.key)
            parsed.append((spec, warnings))
        if more:
            causes.append(("", f"and {more} more error{'s' if more > 1 else ''}"))
        if causes:
            raise ManifestError(source, causes)
        admitted = [self.runtime.admit(spec) for spec, _warnings in parsed]
        results = []
        for (spec, warnings), namespaces in zip(parsed, admitted, strict=True):
            action = await self._apply_one(spec, bool(args.get("force")), namespaces)
            results.append(
                {
                    "name": spec.name,
                    "namespace": spec.namespace,
                    "action": action,
                    "warnings": warnings,
                }
            )
        return {"results": results}

    async def _apply_one(
        self, spec: PodSpec, force: bool, namespaces: Namespaces | None = None
    ) -> str:
        """`namespaces`: what runtime.admit gave for `spec`, or None to ask it now (a pod
        this supd cannot run is refused, not stored)."""
        if namespaces is None:
            namespaces = self.runtime.admit(spec)
        existing = self.runtime.pods.get(spec.key)
        if existing is not None:
            if existing.deleted_at is not None and not force:
                raise Conflict(f'pod "{spec.name}" is being deleted; apply it again once gone')
            if existing.spec == spec and not existing.deleted_at is not None:
                return "unchanged"
            if not force:
                raise Conflict(
                    f'pod "{spec.name}" already exists with a different spec; pod specs '
                    "cannot be updated in place: use --force to delete and recreate it",
                    {"namespace": spec.namespace, "name": spec.name},
                )
            await self.runtime.delete(existing)
            if spec.key in self.runtime.pods:  # someone else created it meanwhile
                raise AlreadyExists(f'pod "{spec.name}" already exists')
            self._create(spec, namespaces)
            return "configured"
        self._create(spec, namespaces)
        return "created"

    def _create(self, spec: PodSpec, namespaces: Namespaces) -> Pod:
        # Host ports are bound first: one that is taken is an error now, and nothing is kept.
        self.runtime.reserve_ports(spec)
        try:
            directory = self.store.save(spec)  # in place before the request is acknowledged
        except BaseException:
            self.runtime.hostports.release(spec.key)
            raise
        return self.runtime.create(spec, directory, namespaces)

    # -- reading ----------------------------------------------------------------------------

    def _select(self, namespace: str | None, name: str | None) -> list[Pod]:
        if name is not None:
            return [self.runtime.get(namespace or "default", name)]
        return [
            p
            for key, p in sorted(self.runtime.pods.items())
            if namespace is None or p.spec.namespace == namespace
        ]

    async def op_get(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        pods = self._select(args.get("namespace"), args.get("name"))
        return {"items": [self.runtime.view(p) for p in pods]}

    async def op_watch(self, args: dict[str, Any], call: Call) -> None:
        namespace, name = args.get("namespace"), args.get("name")
        self.runtime.flush_watchers()  # to the watchers before this one: the snapshot has them
        sub = self.runtime.feed.subscribe()  # before the snapshot: no change slips between
        for pod in self._select(namespace, name) if name is None else self._maybe(namespace, name):
            await call.send({"type": "ADDED", "object": self.runtime.view(pod)})

        def wanted(obj: dict[str, Any]) -> bool:
            meta = obj["metadata"]
            return (namespace is None or meta["namespace"] == namespace) and (
                name is None or meta["name"] == name
            )

        def deliver(change: tuple[str, dict[str, Any]]) -> bool:
            kind, obj = change
            return not wanted(obj) or call.try_send({"type": kind, "object": obj})

        sub.sink = deliver
        async for kind, obj in sub:
            if wanted(obj):
                await call.send({"type": kind, "object": obj})

    def _maybe(self, namespace: str | None, name: str) -> list[Pod]:
        pod = self.runtime.pods.get(f"{namespace or 'default'}/{name}")
        return [pod] if pod is not None else []

    async def op_events(self, args: dict[str, Any], call: Call) -> None:
        namespace, name = args.get("namespace"), args.get("name")
        sub = self.runtime.events.feed.subscribe() if args.get("watch") else None
        for event in self.runtime.events.backlog(namespace, name):
            await call.send(event)
        if sub is not None:
            sub.sink = lambda event: not matches(event, namespace, name) or call.try_send(event)
            async for event in sub:
                if matches(event, namespace, name):
                    await call.send(event)

    async def op_logs(self, args: dict[str, Any], call: Call) -> None:
        pod = self.runtime.get(args.get("namespace") or "default", args["name"])
        names = [c.name for c in pod.spec.containers]
        container = args.get("container") or names[0]
        if container not in {c.name for c in pod.spec.init_containers} | set(names):
            raise InvalidArgument(
                f"container {container} is not valid for pod {pod.spec.name}",
                {"containers": names},
            )
        paths = pod.logs.get(container, [])
        tail, timestamps = args.get("tail"), bool(args.get("timestamps"))
        if args.get("previous"):
            if len(paths) < 2:
                raise InvalidArgument(
                    f'previous terminated container "{container}" in pod '
                    f'"{pod.spec.name}" not found'
                )
            await _send_log(call, iter_log(paths[-2], tail=tail, timestamps=timestamps))
            return
        if not paths:
            st = pod.status.container(container)
            raise InvalidArgument(
                f'container "{container}" in pod "{pod.spec.name}" is waiting to start: '
                f"{st.reason or 'not started'}"
            )
        path = paths[-1]
        if not args.get("follow"):
            await _send_log(call, iter_log(path, tail=tail, timestamps=timestamps))
            return
        st = pod.status.container(container)
        instance = st.instance

        def done() -> bool:
            return instance not in pod.instances or pod.gone.done()

        async for chunk in follow_log(
            path, done=done, changed=lambda: pod.changed, tail=tail, timestamps=timestamps
        ):
            for i in range(0, len(chunk), LOG_FRAME_BYTES):
                await call.send({"data": chunk[i : i + LOG_FRAME_BYTES]})

    # -- top --------------------------------------------------------------------------------

    async def op_top(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        """kubectl top from the cgroups: CPU as the rate between two samples `window`
        seconds apart (supd keeps no history: it never polls), memory as the working set."""
        if self.runtime.cgroups.version == 0:
            raise Unavailable(
                f"Metrics API not available: supd runs without cgroups "
                f"({self.runtime.cgroups.describe()})"
            )
        pods = self._select(args.get("namespace"), args.get("name"))
        loop = asyncio.get_running_loop()
        before = {p.key: self.runtime.usage(p) for p in pods}
        t0 = loop.time()
        await asyncio.sleep(min(float(args["window"]), 10.0))
        elapsed = loop.time() - t0
        items = []
        for pod in pods:
            if pod.key not in self.runtime.pods:
                continue
            (pod_then, containers_then), (pod_now, containers_now) = (
                before[pod.key],
                self.runtime.usage(pod),
            )
            item = _top_row(pod_then, pod_now, elapsed)
            item.update(namespace=pod.spec.namespace, name=pod.spec.name)
            item["containers"] = [
                {"name": name, **_top_row(containers_then.get(name), now, elapsed)}
                for name, now in containers_now.items()
                if now is not None
            ]
            items.append(item)
        return {"items": items}

    # -- exec -------------------------------------------------------------------------------

    async def op_exec(self, args: dict[str, Any], call: Call) -> None:
        """Run a command in a running container (kubectl exec). The session is attached to
        the call before anything awaits, so exec_input sent right behind it finds it."""
        command = args["command"]
        if not command:
            raise InvalidArgument("you must specify at least one command for the container")
        session = ExecSession(
            stdin=args["stdin"], tty=args["tty"], rows=args.get("rows"), cols=args.get("cols")
        )
        call.state = session
        try:
            pod = self.runtime.get(args.get("namespace") or "default", args["name"])
            container = args.get("container") or pod.spec.containers[0].name
            await session.run(self.runtime, pod, container, command, call.send)
        finally:
            session.close()

    def _exec_session(self, call: Call, target: int) -> ExecSession:
        other = call.sibling(target)
        if other is None or not isinstance(other.state, ExecSession):
            raise NotFound(f"no exec request {target} is in flight on this connection")
        return other.state

    async def op_exec_input(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        session = self._exec_session(call, args["target"])
        written = await session.write_input(args.get("data", b""), args["eof"])
        return {"written": written}

    async def op_exec_resize(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        self._exec_session(call, args["target"]).resize(args["rows"], args["cols"])
        return {}

    # -- images -----------------------------------------------------------------------------

    async def op_image_import(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        """supd (root) opens the path itself: a caller that is not root must be able to
        read it (mode bits of the path and search rights on its parents, for the caller's
        uid and gid; supplementary groups and ACLs are not consulted)."""
        path = args["path"]
        if not os.path.isabs(path):
            raise InvalidArgument(f"image import: {path!r} must be an absolute path")
        peer = getattr(call, "peer", None)
        if peer is not None and peer.uid not in (0, os.geteuid()):
            _check_readable(path, peer.uid, peer.gid)
        loop = asyncio.get_running_loop()
        # Reading and unpacking tars is blocking file I/O: a worker thread does it.
        try:
            image = await loop.run_in_executor(
                None, self.runtime.images.import_image, args["name"], path
            )
        except OSError as e:
            raise InvalidArgument(f"image import {path}: {e}") from e
        self.runtime.images_changed()
        return {"name": image.name, "id": image.id, "layers": image.layers, "size": image.size}

    async def op_image_ls(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        return {"items": [i.to_json() for i in self.runtime.images.list()]}

    async def op_image_rm(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        name = normalize(args["name"])
        users = self.runtime.images_in_use().get(name)
        if users:
            raise Conflict(
                f'image "{name}" is in use by pod {", ".join(sorted(users))}: '
                "delete the pods first",
                {"image": name, "pods": sorted(users)},
            )
        loop = asyncio.get_running_loop()
        image = await loop.run_in_executor(None, self.runtime.images.remove, name)
        return {"name": image.name}

    # -- changing ---------------------------------------------------------------------------

    async def op_delete(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        pod = self.runtime.get(args.get("namespace") or "default", args["name"])
        gone = self.runtime.delete(pod, args.get("grace_period"))
        if args.get("wait", True):
            await asyncio.shield(gone)
        return {"name": pod.spec.name, "namespace": pod.spec.namespace}

    async def op_wait(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        namespace, name = args.get("namespace") or "default", args["name"]
        what = args["for"]
        timeout = args.get("timeout")
        if what == "delete":
            test = None
        elif what.lower().startswith("condition="):
            cond = what.split("=", 1)[1]
            wanted = "true"
            if "=" in cond:
                cond, wanted = cond.split("=", 1)
            test = (cond.lower(), wanted.lower())
        else:
            raise InvalidArgument(
                f"--for: unrecognized condition {what!r}: use condition=NAME or delete"
            )
        try:
            async with asyncio.timeout(timeout):
                return await self._wait(namespace, name, test)
        except TimeoutError:
            raise DeadlineExceeded(f"timed out waiting for the condition on pods/{name}") from None

    async def _wait(
        self, namespace: str, name: str, test: tuple[str, str] | None
    ) -> dict[str, Any]:
        if test is None:
            pod = self.runtime.pods.get(f"{namespace}/{name}")
            if pod is not None:
                await asyncio.shield(pod.gone)
            return {"met": True}
        pod = self.runtime.get(namespace, name)
        cond, wanted = test
        while True:
            for c in pod.status.conditions.values():
                if c.type.lower() == cond and str(c.status).lower() == wanted:
                    return {"met": True}
            if pod.gone.done():
                raise DeadlineExceeded(f"pods/{name} was deleted while waiting")
            await asyncio.shield(pod.changed)


LOG_FRAME_BYTES = 1 << 20
"""Log data per stream frame: a log larger than a reply frame (16 MiB) was unreadable."""


def _top_row(then: Usage | None, now: Usage | None, elapsed: float) -> dict[str, Any]:
    cpu = None
    if then is not None and now is not None and elapsed > 0:
        cpu = max(0, round((now.cpu_ns - then.cpu_ns) / (elapsed * 1e9) * 1000))
    return {"cpu_millis": cpu, "memory_bytes": now.memory_bytes if now is not None else None}


async def _send_log(call: Call, pieces: Iterator[bytes]) -> None:
    """A log's output in stream frames of at most about 1 MiB (logs.iter_log): with rotation
    an instance keeps up to max-files x max-size of it, more than a reply frame may hold
    (protocol.MAX_REPLY_FRAME_SIZE) and more than the loop should read at once."""
    sent = False
    for piece in pieces:
        await call.send({"data": piece})
        sent = True
    if not sent:
        await call.send({"data": b""})
