"""supd's API server: msgpack requests over a Unix socket, dispatched to a handler object.

Three layers, as in aiohttp (web_protocol / web_server / web_runner):

- `ServerConnection`, the per-connection asyncio.Protocol. `data_received` never awaits: it
  splits frames, validates them, answers `hello` and `cancel` itself and queues the rest; each
  request runs in its own task. It pauses reading while `max_in_flight` requests run.
- `Server`, the protocol factory: checks peers, tracks connections and streams against the
  limits, and shuts down (stop reading, cancel streams, let requests finish up to a timeout,
  cancel the rest, close).
- `UnixSite`, the binding: the socket file with its mode and group, the stale file replaced.

The handler is any object with methods `async def op_<name>(self, args: dict, call: Call)`;
args arrive validated against proto/messages.json with defaults filled in. A unary op's
return value is its result; a streaming op calls `await call.send(payload)` and returns, and
the server sends the end frame. A SupervisorError becomes its typed error reply; any other
exception becomes Internal (logged with its traceback); CancelledError propagates.

Imports: errors and protocol only; it knows nothing of pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import grp
import logging
import os
import resource
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, cast

from supervisor import __version__
from supervisor import protocol as proto
from supervisor.errors import (
    Conflict,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    SupervisorError,
    Unavailable,
    from_wire,
)
from supervisor.protocol import PeerCred, read_peer_cred

log = logging.getLogger(__name__)

SERVER_NAME: Final = f"supd {__version__}"

_SO_PEERGROUPS: Final = getattr(socket, "SO_PEERGROUPS", 59)  # Linux >= 4.13, socket(7)
_SUN_PATH_MAX: Final = 108  # sizeof(sockaddr_un.sun_path), unix(7)

OpMethod = Callable[[dict[str, Any], "Call"], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int = 1024
    max_in_flight: int = 64
    """Requests running at once on one connection; reading pauses at this many."""
    max_streams_per_connection: int = 32
    """Below max_in_flight, so that a connection full of streams can still send a cancel."""
    max_streams: int = 1024
    max_frame_size: int = proto.MAX_FRAME_SIZE
    max_reply_frame_size: int = proto.MAX_REPLY_FRAME_SIZE
    max_depth: int = proto.MAX_DEPTH
    write_high_water: int = 256 * 1024
    """Transport buffer above which stream sends wait for the client to read."""
    drain_timeout: float = 30.0
    """A stream whose client reads nothing for this long is ended with ResourceExhausted."""
    handshake_timeout: float = 10.0
    """A connection that has not said hello by then is closed."""


def connection_budget(limit: int, nofile: int | None = None) -> int:
    """`limit`, or fewer when the soft RLIMIT_NOFILE could not hold that many connections
    and still leave half of supd's descriptors for its pods (infra sockets, pidfds, log
    files) and for the fd that accepting a refused connection takes. Past the fd limit,
    accept(2) fails with EMFILE: the kernel keeps the connection in the backlog, the
    client waits or sees a broken pipe, and pods cannot start for want of an fd."""
    if nofile is None:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if nofile == resource.RLIM_INFINITY or nofile <= 0:
        return limit
    return max(1, min(limit, nofile // 2))


# -- peer credentials ------------------------------------------------------------------------


def peer_allowed(
    peer: PeerCred, *, server_uid: int, socket_gid: int | None, groups: Iterable[int] = ()
) -> bool:
    """Root, the server's own uid, and (when the socket has a group) members of that group,
    by primary gid or by supplementary `groups`."""
    if peer.uid in (0, server_uid):
        return True
    if socket_gid is None:
        return False
    return peer.gid == socket_gid or socket_gid in groups


def read_peer_groups(sock: Any, pid: int) -> tuple[int, ...]:
    """Supplementary groups of the peer: SO_PEERGROUPS, else /proc/PID/status (racy, but only
    consulted for a peer that is not already allowed)."""
    with contextlib.suppress(OSError):
        raw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, 4 * 1024)
        return struct.unpack(f"={len(raw) // 4}I", raw)
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Groups:"):
                return tuple(int(g) for g in line.split()[1:])
    return ()


def resolve_group(group: str | int) -> int:
    """A group name or number as a gid (InvalidArgument if no such group)."""
    if isinstance(group, int):
        return group
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise InvalidArgument(f"socket group {group!r} does not exist") from None


# -- one request ---------------------------------------------------------------------------

_LINGER: Final = 1.0
"""Seconds a refused connection stays open for the client to read why (see _refuse)."""
_MAX_LINGERING: Final = 64

_CANCELLED: Final = "cancelled"
_LOST: Final = "connection lost"
_SHUTDOWN: Final = "shutdown"


class Call:
    """One request as a handler sees it: its id, op, the peer, and `send` for streams."""

    __slots__ = (
        "_conn",
        "_task",
        "args",
        "closed",
        "end_reason",
        "id",
        "op",
        "peer",
        "state",
        "stream",
    )

    def __init__(
        self, conn: ServerConnection, rid: int, op: str, args: dict[str, Any], stream: bool
    ) -> None:
        self._conn = conn
        self._task: asyncio.Task[None] | None = None
        self.id = rid
        self.op = op
        self.args = args
        self.stream = stream
        self.peer: PeerCred = conn.peer
        self.closed = False
        """Set once no more frames may be sent for this call (cancelled or connection lost)."""
        self.end_reason: str | None = None
        self.state: Any = None
        """The handler's own: what sibling requests may find it by (an exec's input)."""

    @property
    def version(self) -> int:
        """The protocol version negotiated by hello on this connection."""
        return self._conn.version

    async def send(self, payload: Any) -> None:
        """Send one stream frame. Waits while the client is not reading; ends the stream with
        ResourceExhausted when it has read nothing for `Limits.drain_timeout` seconds."""
        if not self.stream:
            raise RuntimeError(f"op {self.op!r} does not stream; return its result instead")
        await self._conn.send_stream(self, payload)

    def try_send(self, payload: Any) -> bool:
        """Send one stream frame now if it goes without waiting: the call is open, the
        client reads, and the frame fits. False leaves it to `send`, which waits or ends
        the stream with the reason."""
        return self.stream and self._conn.try_send_stream(self, payload)

    def sibling(self, rid: int) -> Call | None:
        """Request `rid` while it is in flight on the same connection: how a request acts
        on a stream it belongs to (exec_input writes to its exec). Requests start in the
        order they arrive, so a handler that sets `state` before its first await is found
        by any request sent after it."""
        return self._conn._calls.get(rid)

    def _close(self, reason: str) -> None:
        self.closed = True
        if self.end_reason is None:
            self.end_reason = reason

    def __repr__(self) -> str:
        return f"<Call {self.id} {self.op} pid={self.peer.pid} uid={self.peer.uid}>"


# -- layer 1: the connection -----------------------------------------------------------------


class ServerConnection(asyncio.Protocol):
    """One client connection. Requests are parsed only while fewer than `max_in_flight` run
    and while the client reads its replies (the transport's write buffer is below its
    high-water mark): otherwise reading pauses and received bytes wait unparsed in the
    decoder, so what a busy or deaf connection holds is bounded by bytes, not by queued
    request or reply objects."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._limits = server.limits
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._decoder = proto.FrameDecoder(server.limits.max_frame_size)
        self.peer = PeerCred(0, -1, -1)
        self.version = 0
        self.client = ""
        self._admitted = False
        self._refusing = False
        self._lingering = False
        self._closed_for_writing = False
        self._lost = False
        self._calls: dict[int, Call] = {}
        self._streams = 0
        self._reading_paused = False
        self._shutting_down = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._handshake_timer: asyncio.TimerHandle | None = None
        self.closed: asyncio.Future[None] = self._loop.create_future()

    # asyncio.Protocol callbacks: none of them awaits.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        try:
            sock = transport.get_extra_info("socket")
            self.peer = read_peer_cred(sock)
        except OSError as e:
            self._refuse(Internal(f"read peer credentials: {e}"))
            return
        refusal = self._server._admit(self, sock)
        if refusal is not None:
            self._refuse(refusal)
            return
        self._admitted = True
        self._transport.set_write_buffer_limits(high=self._limits.write_high_water)
        self._handshake_timer = self._loop.call_later(
            self._limits.handshake_timeout, self._handshake_expired
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._lingering:
            self._lingering = False
            self._server._lingering -= 1
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        if self._admitted:
            self._server._forget(self)
        for call in list(self._calls.values()):
            call._close(_LOST)
            if call._task is not None:
                call._task.cancel()
        self._wake_drain_waiters()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        # The client is not reading its replies: stop reading its requests too, or a peer
        # that sends and never reads grows supd's write buffer without bound (each reply
        # frees its in-flight slot as soon as it is queued).
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain_waiters()
        if not self._lost:
            self._process()

    def data_received(self, data: bytes) -> None:
        if self._refusing:
            return
        self._decoder.append(data)
        self._process()

    def eof_received(self) -> bool:
        # A client that closes its side is gone: half-close is not part of the protocol, so
        # returning False closes the transport and connection_lost cancels what it asked for.
        if self._refusing:
            return False
        if self._decoder.buffered and self._running < self._limits.max_in_flight:
            self._write_error(None, InvalidArgument("connection closed in the middle of a frame"))
        return False

    # frames

    def _process(self) -> None:
        """Handle buffered frames while there is room for their requests."""
        while (
            not self._refusing
            and not self._shutting_down
            and not self._write_paused
            and self._running < self._limits.max_in_flight
        ):
            try:
                body = self._decoder.next_frame()
            except ResourceExhausted as e:
                log.warning("closing connection from pid %d uid %d: %s", *self.peer[:2], e.message)
                self._refuse(e)
                return
            if body is None:
                break
            self._on_frame(body)
        self._update_reading()

    def _on_frame(self, body: bytes) -> None:
        try:
            msg = proto.unpack_message(body, self._limits.max_depth)
        except InvalidArgument as e:
            self._write_error(None, e)
            return
        try:
            self._accept(proto.parse_request(msg))
        except SupervisorError as e:
            self._write_error(proto.request_id(msg), e)

    def _accept(self, req: proto.Request) -> None:
        schema = self._server.schema
        if not self.version:
            if req.op != "hello":
                raise InvalidArgument(
                    f"the first request must be 'hello' (the version handshake), got {req.op!r}",
                    {"op": req.op},
                )
            args = schema.validate_args("hello", req.args)
            self.version = proto.negotiate_version(args["versions"])
            self.client = args["client"]
            if self._handshake_timer is not None:
                self._handshake_timer.cancel()
                self._handshake_timer = None
            result = {"version": self.version, "server": self._server.name}
            self._write_msg(proto.result_message(req.id, result))
            return
        if req.op == "hello":
            raise InvalidArgument("'hello' was already done on this connection")
        spec = schema.op(req.op)
        args = schema.validate_args(req.op, req.args)
        if req.op == "cancel":
            cancelled = self._cancel(args["target"])
            self._write_msg(proto.result_message(req.id, {"cancelled": cancelled}))
            return
        if req.id in self._calls:
            raise InvalidArgument(f"request id {req.id} is already in flight", {"id": req.id})
        if spec.stream:
            self._server._reserve_stream(self)
            self._streams += 1
        call = Call(self, req.id, req.op, args, spec.stream)
        self._calls[req.id] = call
        call._task = self._loop.create_task(self._execute(call))
        # A done callback, not a finally in _execute: a task cancelled before its first step
        # never runs its coroutine, so such a finally would never run either.
        call._task.add_done_callback(functools.partial(self._finished, call))

    @property
    def _running(self) -> int:
        return len(self._calls)

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        busy = (
            self._running >= self._limits.max_in_flight or self._shutting_down or self._write_paused
        )
        if busy and not self._reading_paused:
            self._reading_paused = True
            transport.pause_reading()
        elif not busy and self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    def _cancel(self, target: int) -> bool:
        call = self._calls.get(target)
        if call is None or call._task is None:
            return False
        call._close(_CANCELLED)
        call._task.cancel()
        return True

    # running a request

    async def _execute(self, call: Call) -> None:
        method = self._server.method(call.op)
        try:
            if method is None:
                raise Unavailable(f"op {call.op!r} is not implemented by this server")
            result = await method(call.args, call)
            if call.stream:
                msg = proto.end_message(call.id)
            else:
                msg = proto.result_message(call.id, result)
            self._write_call(call, msg)
        except SupervisorError as e:
            self._write_call_error(call, e)
        except Exception as e:
            log.exception(
                "op %r (request %d from pid %d uid %d) failed",
                call.op,
                call.id,
                call.peer.pid,
                call.peer.uid,
            )
            self._write_call_error(
                call, Internal(f"internal error in op {call.op!r}: {type(e).__name__}: {e}")
            )

    def _finished(self, call: Call, task: asyncio.Task[None]) -> None:
        if self._calls.get(call.id) is call:
            del self._calls[call.id]
            if call.stream:
                self._streams -= 1
                self._server._release_stream()
        if task.cancelled() and call.end_reason == _SHUTDOWN:
            self._write_error(call.id, Unavailable("supd is shutting down"))
        if not self._lost:
            self._process()

    async def send_stream(self, call: Call, payload: Any) -> None:
        if call.closed:
            raise asyncio.CancelledError()
        data = proto.encode_frame(
            proto.stream_message(call.id, payload), self._limits.max_reply_frame_size
        )
        if self._write_paused:
            await self._drain(call)
        if call.closed:
            raise asyncio.CancelledError()
        self._write(data)

    def try_send_stream(self, call: Call, payload: Any) -> bool:
        if call.closed or self._write_paused:
            return False
        try:
            data = proto.encode_frame(
                proto.stream_message(call.id, payload), self._limits.max_reply_frame_size
            )
        except ResourceExhausted:
            return False
        self._write(data)
        return True

    async def _drain(self, call: Call) -> None:
        try:
            async with asyncio.timeout(self._limits.drain_timeout):
                while self._write_paused and not self._lost:
                    waiter = self._loop.create_future()
                    self._drain_waiters.append(waiter)
                    try:
                        await waiter
                    finally:
                        with contextlib.suppress(ValueError):
                            self._drain_waiters.remove(waiter)
        except TimeoutError:
            log.warning(
                "ending stream %d (%s) of pid %d: client read nothing for %gs",
                call.id,
                call.op,
                call.peer.pid,
                self._limits.drain_timeout,
            )
            raise ResourceExhausted(
                f"stream {call.id} ({call.op}) ended: the client read nothing "
                f"for {self._limits.drain_timeout:g}s",
                {"limit": "drain_timeout"},
            ) from None

    def _wake_drain_waiters(self) -> None:
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    # writing

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing() and not self._closed_for_writing:
            transport.write(data)

    def _write_msg(self, msg: dict[str, Any]) -> None:
        self._write(proto.encode_frame(msg, self._limits.max_reply_frame_size))

    def _write_error(self, rid: int | None, err: SupervisorError) -> None:
        try:
            self._write_msg(proto.error_message(rid, err))
        except ResourceExhausted:
            # An error too large for a frame must still end its request: the same code,
            # the start of the message, no details. Raising here lost the reply, and the
            # client waited forever.
            cut = from_wire(err.code, err.message[:4096] + " [truncated]", {"truncated": True})
            self._write_msg(proto.error_message(rid, cut))

    def _write_call(self, call: Call, msg: dict[str, Any]) -> None:
        # After a cancel reply, nothing more may be sent under the cancelled id.
        if not call.closed:
            self._write_msg(msg)

    def _write_call_error(self, call: Call, err: SupervisorError) -> None:
        if not call.closed:
            self._write_error(call.id, err)

    # closing

    def _refuse(self, err: SupervisorError) -> None:
        """Answer with a connection-level error (id null) and close.

        The close lingers: our side shuts its writing half (the client reads the error,
        then EOF) and what the client still sends is read and dropped until it closes, for
        at most `_LINGER` seconds. Closing at once made the client's next write (its hello,
        as often as not) fail with EPIPE before it read the error, so a refused user saw
        "Broken pipe" instead of PermissionDenied. At most `_MAX_LINGERING` connections
        linger at once; beyond that they are closed at once, so that a flood of refused
        connections cannot hold supd's fds."""
        if self._refusing:
            return
        self._refusing = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._write_error(None, err)
        self._closed_for_writing = True  # nothing follows the refusal (and write_eof)
        for call in list(self._calls.values()):
            call._close(_LOST)
            if call._task is not None:
                call._task.cancel()
        if not self._server._linger(self):
            transport.close()
            return
        self._lingering = True
        try:
            transport.write_eof()
        except (OSError, RuntimeError, NotImplementedError):
            transport.close()
            return
        self._loop.call_later(_LINGER, transport.close)

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        log.warning("closing connection from pid %d: no hello", self.peer.pid)
        self._refuse(
            DeadlineExceeded(f"no hello within {self._limits.handshake_timeout:g}s; closing")
        )

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    def tasks(self) -> list[asyncio.Task[None]]:
        return [c._task for c in self._calls.values() if c._task is not None]

    def begin_shutdown(self) -> None:
        """Stop reading requests, and end streams (they would never finish on their own)."""
        self._shutting_down = True
        self._update_reading()
        for call in list(self._calls.values()):
            if call.stream:
                self.cancel_call(call, _SHUTDOWN)

    def cancel_call(self, call: Call, reason: str) -> None:
        if call.end_reason is None:
            call.end_reason = reason
        if call._task is not None:
            call._task.cancel()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


# -- layer 2: the server -------------------------------------------------------------------


class Server:
    """Protocol factory for a listening socket; tracks connections and shuts them down.

    `handler` is any object with `async def op_<name>(self, args, call)` methods. `version`
    is answered by the server itself when the handler has no `op_version`.
    """

    def __init__(
        self,
        handler: object,
        path: str | None = None,
        *,
        socket_group: str | int | None = None,
        limits: Limits | None = None,
        name: str = SERVER_NAME,
        schema: proto.Schema | None = None,
    ) -> None:
        self.handler = handler
        self.path = path
        self._site: UnixSite | None = None
        self.limits = limits or Limits()
        self.max_connections = connection_budget(self.limits.max_connections)
        if self.max_connections < self.limits.max_connections:
            log.warning(
                "at most %d connections (not %d): the open-files limit is %d",
                self.max_connections,
                self.limits.max_connections,
                resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            )
        self.name = name
        self.schema = schema or proto.load_schema()
        self.uid = os.geteuid()
        self.socket_gid = None if socket_group is None else resolve_group(socket_group)
        self._connections: set[ServerConnection] = set()
        self._streams = 0
        self._lingering = 0
        self._closing = False
        self._methods: dict[str, OpMethod | None] = {}

    def __call__(self) -> ServerConnection:
        return ServerConnection(self)

    async def start(self) -> None:
        """Bind `path` (given to the constructor) with a UnixSite and start accepting."""
        if self.path is None:
            raise ValueError("Server.start() needs the socket path given to Server()")
        site = UnixSite(self, self.path)
        await site.start()
        self._site = site

    async def close(self, timeout: float = 10.0) -> None:
        """Stop accepting (the socket file is removed), then `shutdown(timeout)`."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        await self.shutdown(timeout)

    @property
    def connections(self) -> int:
        return len(self._connections)

    @property
    def streams(self) -> int:
        return self._streams

    def method(self, op: str) -> OpMethod | None:
        try:
            return self._methods[op]
        except KeyError:
            pass
        method: OpMethod | None = getattr(self.handler, f"op_{op}", None)
        if method is None and op == "version":
            method = self._op_version
        self._methods[op] = method
        return method

    async def _op_version(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        return {"server": self.name, "protocol": call.version}

    def _admit(self, conn: ServerConnection, sock: Any) -> SupervisorError | None:
        peer = conn.peer
        allowed = peer_allowed(peer, server_uid=self.uid, socket_gid=self.socket_gid)
        if not allowed and self.socket_gid is not None:
            groups = read_peer_groups(sock, peer.pid)
            allowed = peer_allowed(
                peer, server_uid=self.uid, socket_gid=self.socket_gid, groups=groups
            )
        if not allowed:
            log.warning(
                "refused connection from pid %d uid %d gid %d: not root, uid %d%s",
                peer.pid,
                peer.uid,
                peer.gid,
                self.uid,
                "" if self.socket_gid is None else f" or group {self.socket_gid}",
            )
            return PermissionDenied(
                f"uid {peer.uid} may not use supd: only root, uid {self.uid}"
                + ("" if self.socket_gid is None else f" and group {self.socket_gid}")
                + " may connect",
                {"uid": peer.uid, "gid": peer.gid, "pid": peer.pid},
            )
        if self._closing:
            return Unavailable("supd is shutting down")
        if len(self._connections) >= self.max_connections:
            log.warning("refused connection from pid %d: too many connections", peer.pid)
            return ResourceExhausted(
                f"too many connections to supd (limit {self.max_connections})",
                {"limit": "max_connections"},
            )
        self._connections.add(conn)
        return None

    def _linger(self, conn: ServerConnection) -> bool:
        """Whether a refused connection may linger (see ServerConnection._refuse)."""
        if self._lingering >= _MAX_LINGERING:
            return False
        self._lingering += 1
        return True

    def _forget(self, conn: ServerConnection) -> None:
        self._connections.discard(conn)

    def _reserve_stream(self, conn: ServerConnection) -> None:
        if conn._streams >= self.limits.max_streams_per_connection:
            raise ResourceExhausted(
                f"too many streams on this connection "
                f"(limit {self.limits.max_streams_per_connection})",
                {"limit": "max_streams_per_connection"},
            )
        if self._streams >= self.limits.max_streams:
            raise ResourceExhausted(
                f"too many streams open on supd (limit {self.limits.max_streams})",
                {"limit": "max_streams"},
            )
        self._streams += 1

    def _release_stream(self) -> None:
        self._streams -= 1

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Stop taking requests, end streams, let requests finish for up to `timeout` seconds,
        cancel what is left, and close every connection. Stop the site first so that no new
        connection arrives."""
        self._closing = True
        conns = list(self._connections)
        for conn in conns:
            conn.begin_shutdown()
        tasks = [t for conn in conns for t in conn.tasks()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            if pending:
                log.warning("cancelling %d requests still running at shutdown", len(pending))
                for conn in conns:
                    for call in list(conn._calls.values()):
                        conn.cancel_call(call, _SHUTDOWN)
                await asyncio.wait(pending, timeout=1.0)
        for conn in conns:
            conn.close()
        closing = [conn.closed for conn in conns]
        if closing:
            await asyncio.wait(closing, timeout=1.0)
            for conn in conns:
                if not conn.closed.done():
                    conn.abort()


# -- layer 3: the binding ------------------------------------------------------------------


class UnixSite:
    """Binds a Server to a Unix socket file: mode 0600, or 0660 with the server's group.

    The socket is bound under a temporary name, given its mode and group, then renamed over
    `path`, so it is never reachable with looser permissions and a stale file from a dead
    supd is replaced atomically. A live socket (one that accepts a connection) is not.
    """

    def __init__(self, server: Server, path: str, *, backlog: int = 128) -> None:
        self.server = server
        self.path = path
        self.backlog = backlog
        self._listener: Acceptor | None = None
        self._inode: tuple[int, int] | None = None

    @property
    def mode(self) -> int:
        return 0o600 if self.server.socket_gid is None else 0o660

    async def start(self) -> None:
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            os.makedirs(parent, exist_ok=True)
            os.chmod(parent, 0o755)  # whatever the umask; an existing dir is left as it is
        _check_stale(self.path)
        tmp = os.path.join(parent, f".{os.path.basename(self.path)}.{os.getpid()}")
        if len(os.fsencode(tmp)) >= _SUN_PATH_MAX:
            # No room for the temporary name: bind in place (briefly with the umask's mode).
            tmp = self.path
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        with contextlib.suppress(FileNotFoundError):
            if tmp != self.path:
                os.unlink(tmp)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(tmp)
            try:
                os.chmod(tmp, self.mode)
                if self.server.socket_gid is not None:
                    os.chown(tmp, -1, self.server.socket_gid)
                sock.listen(self.backlog)
                if tmp != self.path:
                    os.rename(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            st = os.stat(self.path)
            self._inode = (st.st_dev, st.st_ino)
            self._listener = Acceptor(asyncio.get_running_loop(), sock, self.server)
        except BaseException:
            sock.close()
            raise
        log.info("listening on %s (mode %o)", self.path, self.mode)

    async def stop(self) -> None:
        """Stop accepting and remove the socket file (if it is still ours)."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._inode is not None:
            with contextlib.suppress(OSError):
                st = os.stat(self.path)
                if (st.st_dev, st.st_ino) == self._inode:
                    os.unlink(self.path)
            self._inode = None


# accept(2) errors that say supd is out of something, not that one client went wrong.
_ACCEPT_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_PAUSE = 0.1
"""Seconds accepting stops for when even the reserve descriptor cannot be had back."""
REFUSED_LINGER = 1.0
"""The longest a refused connection is held open for its client to read why."""


class Acceptor:
    """accept(2) on the listening socket as loop events, each connection handed to the
    server's protocol (connect_accepted_socket).

    Out of file descriptors (EMFILE), accept keeps failing while the backlog stays readable:
    an event loop that only retries spins at 100% CPU. One descriptor is kept in reserve
    (libuv's and nginx's trick): it is closed to accept the waiting connection, which is
    answered ResourceExhausted and closed, and then taken again, so every client learns why
    at once and the backlog drains. If the reserve cannot be had back (something else took
    the descriptor), accepting pauses for ACCEPT_PAUSE seconds at a time."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, server: Server
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.server = server
        self.refused = 0
        self.exhausted = False  # since the last accept that succeeded
        self._reserve = self._take_reserve()
        self._resume: asyncio.TimerHandle | None = None
        self._held: socket.socket | None = None  # a refused connection being answered
        self._tasks: set[asyncio.Task[Any]] = set()
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._readable)

    @staticmethod
    def _take_reserve() -> int:
        try:
            return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return -1

    def _readable(self) -> None:
        for _ in range(64):  # a bounded batch per wakeup: the loop serves the others too
            try:
                conn, _addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as e:
                if e.errno in _ACCEPT_EXHAUSTED and self._refuse_one(e):
                    continue
                if e.errno not in _ACCEPT_EXHAUSTED:
                    log.warning("accept: %s", e)
                return
            if self.exhausted:
                log.info("accept: descriptors are free again (%d refused)", self.refused)
                self.refused, self.exhausted = 0, False
            self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        task = self.loop.create_task(self.loop.connect_accepted_socket(self.server, sock=conn))
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._served, conn))

    def _served(self, conn: socket.socket, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("accepted connection: %s", task.exception())
            conn.close()

    def _refuse_one(self, e: OSError) -> bool:
        """Accept one waiting connection on the reserve descriptor and answer it
        ResourceExhausted; logs once per episode. Returns whether accepting may go on now:
        it pauses while the refused client is answered, or when there is no reserve."""
        name = errno.errorcode.get(e.errno or 0, "")
        if not self.exhausted:
            self.exhausted = True
            log.warning(
                "accept: %s (%s): refusing connections with ResourceExhausted until "
                "descriptors are free",
                e.strerror,
                name,
            )
        if self._reserve < 0:
            self._pause(ACCEPT_PAUSE)
            return False
        os.close(self._reserve)
        self._reserve = -1
        still_out = False
        try:
            conn, _addr = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            conn = None
        except OSError as again:  # one descriptor was not enough (a limit lowered under us)
            conn, still_out = None, again.errno in _ACCEPT_EXHAUSTED
        if conn is None:
            self._reserve = self._take_reserve()
            if still_out:
                self._pause(ACCEPT_PAUSE)
            return False
        self.refused += 1
        err = ResourceExhausted(
            f"supd is out of file descriptors ({e.strerror}, {name}): try again later",
            {"errno": name},
        )
        try:
            conn.setblocking(False)
            conn.send(proto.encode_frame(proto.error_message(None, err)))
            # Closing now, with the client's hello unread, would make its write fail
            # (EPIPE) before it reads why: end our side, and close once it has spoken.
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            conn.close()
            self._reserve = self._take_reserve()
            return True
        self._held = conn
        self.loop.add_reader(conn.fileno(), self._release_held)
        self._pause(REFUSED_LINGER)
        return False

    def _release_held(self) -> None:
        """The refused client spoke (or REFUSED_LINGER passed): close it, take the reserve
        back, accept again."""
        conn, self._held = self._held, None
        if conn is not None:
            self.loop.remove_reader(conn.fileno())
            with contextlib.suppress(OSError):
                conn.recv(65536)
            conn.close()
        if self._resume is not None:
            self._resume.cancel()
        self._resume_accepting()

    def _pause(self, seconds: float) -> None:
        """Stop watching the socket for `seconds` instead of spinning on it."""
        self.loop.remove_reader(self.sock.fileno())
        if self._resume is not None:
            self._resume.cancel()
        self._resume = self.loop.call_later(seconds, self._resume_or_release)

    def _resume_or_release(self) -> None:
        self._resume = None
        if self._held is not None:
            self._release_held()
        else:
            self._resume_accepting()

    def _resume_accepting(self) -> None:
        self._resume = None
        if self._reserve < 0:
            self._reserve = self._take_reserve()
        self.loop.add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self._held is not None:
            self.loop.remove_reader(self._held.fileno())
            self._held.close()
            self._held = None
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        if self._reserve >= 0:
            os.close(self._reserve)
            self._reserve = -1


def _check_stale(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise Conflict(f"{path} exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)  # a live server with a full backlog answers EAGAIN, not a hang
    try:
        probe.connect(path)
    except BlockingIOError:
        pass
    except OSError:
        return  # nobody listens (ECONNREFUSED): stale, and rename() replaces it
    finally:
        probe.close()
    raise Conflict(f"another server is already listening on {path}")


async def serve_unix(
    handler: object,
    path: str,
    *,
    socket_group: str | int | None = None,
    limits: Limits | None = None,
) -> tuple[Server, UnixSite]:
    """Server + UnixSite in one call; stop with `await site.stop(); await server.shutdown()`."""
    server = Server(handler, socket_group=socket_group, limits=limits)
    site = UnixSite(server, path)
    await site.start()
    return server, site
