"""The client side of the protocol: one connection to supd, many requests in flight on it.

    client = await Client.connect(default_socket_path(None))
    pods = await client.call("get", namespace="default")
    async for change in client.stream("watch", namespace="default"):
        ...
    await client.close()

Error replies are raised as the typed SupervisorError they name (`errors.from_wire`).
Imports: errors and protocol only (supctl's import budget).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Any, Final, cast

from supervisor import __version__
from supervisor import protocol as proto
from supervisor.errors import (
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    ResourceExhausted,
    SupervisorError,
    Unavailable,
)

CLIENT_NAME: Final = f"supctl/{__version__}"
DEFAULT_SOCKET_PATH: Final = proto.DEFAULT_SOCKET_PATH

_STREAM_HIGH_WATER: Final = 256
"""Payloads queued for one stream before reading from the socket pauses."""
_STREAM_LOW_WATER: Final = 64

_END: Final[Any] = object()


def default_socket_path(flag: str | None = None) -> str:
    """--socket, else $SUP_SOCKET, else /run/supervisor/supd.sock."""
    return flag or os.environ.get("SUP_SOCKET") or DEFAULT_SOCKET_PATH


class _ClientProtocol(asyncio.Protocol):
    def __init__(self, path: str) -> None:
        self._path = path
        self._loop = asyncio.get_running_loop()
        self._decoder = proto.FrameDecoder(proto.MAX_REPLY_FRAME_SIZE)
        self.transport: asyncio.Transport | None = None
        self.futures: dict[int, asyncio.Future[Any]] = {}
        self.streams: dict[int, asyncio.Queue[Any]] = {}
        self.error: SupervisorError | None = None
        """Set once the connection is unusable; every later request raises it."""
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self._reading_paused = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            bodies = self._decoder.feed(data)
            for body in bodies:
                self._route(proto.parse_reply(proto.unpack_message(body)))
        except SupervisorError as e:
            self._fail(Internal(f"bad frame from supd at {self._path}: {e.message}"))

    def _route(self, reply: proto.Reply) -> None:
        if reply.id is None:
            # A connection-level error (refused peer, oversized frame): the server closes.
            self._fail(reply.value)
            return
        fut = self.futures.pop(reply.id, None)
        if fut is not None:
            if fut.done():
                return
            if reply.kind == "result":
                fut.set_result(reply.value)
            elif reply.kind == "error":
                fut.set_exception(reply.value)
            else:
                fut.set_exception(Internal(f"supd sent a {reply.kind} frame for a unary request"))
            return
        queue = self.streams.get(reply.id)
        if queue is None:
            return  # a late frame for a request we gave up on (cancelled)
        if reply.kind == "stream":
            queue.put_nowait(reply.value)
            if queue.qsize() >= _STREAM_HIGH_WATER and not self._reading_paused:
                self._reading_paused = True
                if self.transport is not None:
                    self.transport.pause_reading()
            return
        del self.streams[reply.id]
        if reply.kind == "end":
            queue.put_nowait(_END)
        elif reply.kind == "error":
            queue.put_nowait(reply.value)
        else:
            queue.put_nowait(Internal("supd sent a result frame for a stream"))

    def consumed(self) -> None:
        """A stream consumer took an item: resume reading once every queue is low again."""
        if self._reading_paused and all(
            q.qsize() <= _STREAM_LOW_WATER for q in self.streams.values()
        ):
            self._reading_paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()

    def _fail(self, err: SupervisorError) -> None:
        if self.error is None:
            self.error = err
        for fut in self.futures.values():
            if not fut.done():
                fut.set_exception(err)
        self.futures.clear()
        for queue in self.streams.values():
            queue.put_nowait(err)
        self.streams.clear()
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._fail(Unavailable(f"connection to supd at {self._path} closed{reason}"))
        self._wake_drain_waiters()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain_waiters()

    def _wake_drain_waiters(self) -> None:
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    async def drain(self) -> None:
        while self._write_paused and self.error is None:
            waiter = self._loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter


class Client:
    """A connection to supd that has done the version handshake."""

    def __init__(self, path: str, transport: asyncio.Transport, protocol: _ClientProtocol) -> None:
        self.path = path
        self._transport = transport
        self._proto = protocol
        self._next_id = 0
        self.server = ""
        """The server's name and version from hello, e.g. "supd 0.1.0"."""
        self.version = 0
        """The negotiated protocol version."""

    @classmethod
    async def connect(
        cls,
        path: str | None = None,
        *,
        client_name: str = CLIENT_NAME,
        timeout: float | None = 10.0,
    ) -> Client:
        """Connect to `path` (default: `default_socket_path()`) and say hello.

        Unavailable if nothing listens there; the server's error if it refuses us;
        DeadlineExceeded if the handshake takes longer than `timeout` seconds.
        """
        path = path or default_socket_path()
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.create_unix_connection(
                lambda: _ClientProtocol(path), path
            )
        except OSError as e:
            reason = e.strerror.lower() if e.strerror else str(e)
            raise Unavailable(
                f"cannot connect to supd at {path}: {reason}", {"path": path}
            ) from None
        client = cls(path, transport, protocol)
        try:
            async with asyncio.timeout(timeout):
                hello = await client.call(
                    "hello", versions=list(proto.SUPPORTED_VERSIONS), client=client_name
                )
        except TimeoutError:
            transport.close()
            raise DeadlineExceeded(
                f"supd at {path} did not answer the handshake within {timeout:g}s"
            ) from None
        except BaseException:
            transport.close()
            raise
        client.server = str(hello.get("server", ""))
        client.version = int(hello.get("version", 0))
        return client

    def peer_pid(self) -> int | None:
        """The server's pid as the kernel recorded it at connect (SO_PEERCRED), if known."""
        sock = self._transport.get_extra_info("socket")
        if sock is None:
            return None
        try:
            return proto.read_peer_cred(sock).pid
        except OSError:
            return None

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _write(self, rid: int, op: str, args: dict[str, Any]) -> None:
        if self._proto.error is not None:
            raise self._proto.error
        try:
            frame = proto.encode_frame(proto.request_message(rid, op, args), proto.MAX_FRAME_SIZE)
        except ResourceExhausted as e:
            raise InvalidArgument(f"op {op!r}: request too large: {e.message}", e.details) from None
        except (TypeError, ValueError, OverflowError) as e:
            raise InvalidArgument(f"op {op!r}: cannot encode the arguments: {e}") from None
        self._transport.write(frame)

    def _cancel(self, target: int) -> None:
        """Ask the server to cancel `target`; its reply and any late frames are ignored."""
        if self._proto.error is None and not self._transport.is_closing():
            with contextlib.suppress(SupervisorError):
                self._write(self._new_id(), "cancel", {"target": target})

    async def call(self, op: str, /, **args: Any) -> Any:
        """Send one request and return its result; raise its typed error. Cancelling the
        awaiting task cancels the request on the server too."""
        rid = self._new_id()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._proto.futures[rid] = fut
        try:
            self._write(rid, op, args)
            await self._proto.drain()
            return await fut
        except asyncio.CancelledError:
            if self._proto.futures.pop(rid, None) is not None:
                self._cancel(rid)
            raise
        finally:
            self._proto.futures.pop(rid, None)

    async def stream(self, op: str, /, **args: Any) -> AsyncGenerator[Any, None]:
        """Send one streaming request and yield its payloads until the end frame; raise its
        typed error. Leaving early (break, an exception, aclose) cancels it on the server."""
        stream = self.open_stream(op, **args)
        try:
            async for item in stream:
                yield item
        finally:
            stream.close()

    def open_stream(self, op: str, /, **args: Any) -> Stream:
        """Send one streaming request now, and return it as a Stream that knows its id: for
        requests that act on it while it runs (exec_input, exec_resize)."""
        rid = self._new_id()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._proto.streams[rid] = queue
        try:
            self._write(rid, op, args)
        except BaseException:
            del self._proto.streams[rid]
            raise
        return Stream(self, rid, queue)

    async def close(self) -> None:
        """Close the connection; requests still in flight fail with Unavailable."""
        self._transport.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._proto.closed), 5.0)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class Stream:
    """A streaming request in flight: iterate for its payloads until the end frame (its
    typed error is raised); `close()` before the end cancels it on the server."""

    def __init__(self, client: Client, rid: int, queue: asyncio.Queue[Any]) -> None:
        self.client = client
        self.id = rid
        self._queue = queue
        self._drained = False
        self.finished = False

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> Any:
        if self.finished:
            raise StopAsyncIteration
        proto_ = self.client._proto
        if not self._drained:
            self._drained = True
            await proto_.drain()
        item = await self._queue.get()
        proto_.consumed()
        if item is _END:
            self.finished = True
            raise StopAsyncIteration
        if isinstance(item, SupervisorError):
            self.finished = True
            raise item
        return item

    def close(self) -> None:
        if self.client._proto.streams.pop(self.id, None) is not None and not self.finished:
            self.client._cancel(self.id)
        self.finished = True
