"""The API server in-process on a temp socket, with a fake handler: concurrency, streams and
cancel, typed errors, limits, flow control, shutdown, the socket file and peer checks."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import socket
import stat
import struct
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import msgpack
import pytest
import uvloop

from supervisor import protocol as proto
from supervisor.client import Client
from supervisor.errors import (
    Conflict,
    DeadlineExceeded,
    Internal,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from supervisor.server import Call, Limits, PeerCred, Server, UnixSite, peer_allowed


def run_async(
    fn: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., None]:
    """Run an async test on uvloop, as supd does, with a hard time limit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        async def bounded() -> None:
            await asyncio.wait_for(fn(*args, **kwargs), 10)

        uvloop.run(bounded())

    return wrapper


class FakeHandler:
    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.active = 0
        self.max_active = 0
        self.cancelled: list[int] = []
        self.peers: list[PeerCred] = []
        self.sent = 0
        self.refused = 0  # frames try_send left to send
        self.exhausted: ResourceExhausted | None = None

    async def op_get(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        self.peers.append(call.peer)
        return {"items": [], "name": args["name"]}

    async def op_wait(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.gate.wait()
            return {"met": True, "name": args["name"]}
        except asyncio.CancelledError:
            self.cancelled.append(call.id)
            raise
        finally:
            self.active -= 1

    async def op_delete(self, args: dict[str, Any], call: Call) -> Any:
        name = args["name"]
        if name == "missing":
            raise NotFound(f'pods "{name}" not found', {"name": name})
        if name == "boom":
            raise ValueError("kaboom")
        if name == "unencodable":
            return {"x": object()}
        if name == "huge":  # an error whose frame would exceed the reply limit
            raise NotFound("x" * proto.MAX_REPLY_FRAME_SIZE, {"big": "y" * 1000})
        return {"namespace": args["namespace"], "name": name}

    async def op_events(self, args: dict[str, Any], call: Call) -> None:
        for i in range(5):
            payload = {"reason": f"e{i}"}
            if i % 2 or not call.try_send(payload):  # both ways, in one order
                await call.send(payload)

    async def op_watch(self, args: dict[str, Any], call: Call) -> None:
        i = 0
        try:
            while True:
                await call.send({"type": "ADDED", "object": {"i": i}})
                i += 1
                await asyncio.sleep(0.001)
        except asyncio.CancelledError:
            self.cancelled.append(call.id)
            raise

    async def op_logs(self, args: dict[str, Any], call: Call) -> None:
        try:
            while True:
                payload = {"data": b"x" * 65536}
                if not call.try_send(payload):
                    self.refused += 1
                    await call.send(payload)
                self.sent += 1
        except ResourceExhausted as e:
            self.exhausted = e
            raise


@contextlib.asynccontextmanager
async def serving(
    directory: Path,
    handler: object | None = None,
    *,
    limits: Limits | None = None,
    socket_group: str | int | None = None,
) -> AsyncIterator[Server]:
    server = Server(
        handler or FakeHandler(),
        str(directory / "run" / "supd.sock"),
        limits=limits,
        socket_group=socket_group,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.close(timeout=1.0)


def sock_path(server: Server) -> str:
    assert server.path is not None
    return server.path


async def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


# -- requests ------------------------------------------------------------------------------------


@run_async
async def test_many_requests_in_flight_on_one_connection(tmp_path: Path) -> None:
    handler = FakeHandler()
    async with serving(tmp_path, handler) as server:
        client = await Client.connect(sock_path(server))
        calls = [
            asyncio.create_task(client.call("wait", name=f"p{i}", **{"for": "delete"}))
            for i in range(50)
        ]
        await wait_for(lambda: handler.active == 50)
        # Requests that do not block are answered meanwhile.
        assert (await client.call("get", name="x"))["name"] == "x"
        handler.gate.set()
        results = await asyncio.gather(*calls)
        assert [r["name"] for r in results] == [f"p{i}" for i in range(50)]
        await client.close()


@run_async
async def test_in_flight_limit_pauses_reading_and_resumes(tmp_path: Path) -> None:
    handler = FakeHandler()
    async with serving(tmp_path, handler, limits=Limits(max_in_flight=4)) as server:
        client = await Client.connect(sock_path(server))
        calls = [
            asyncio.create_task(client.call("wait", name=f"p{i}", **{"for": "delete"}))
            for i in range(20)
        ]
        await wait_for(lambda: handler.active == 4)
        await asyncio.sleep(0.05)
        assert handler.active == 4  # the other 16 wait unread
        handler.gate.set()
        results = await asyncio.gather(*calls)
        assert len(results) == 20 and handler.max_active == 4
        await client.close()


class InputHandler:
    """A stream that takes input from sibling requests, as exec takes exec_input."""

    async def op_exec(self, args: dict[str, Any], call: Call) -> None:
        inbox: asyncio.Queue[bytes] = asyncio.Queue()
        call.state = inbox  # before the first await: a request sent right behind finds it
        while (data := await inbox.get()) != b"":
            await call.send({"stdout": data.upper()})

    async def op_exec_input(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        target = call.sibling(args["target"])
        if target is None or target.op != "exec":
            raise NotFound(f"no exec request {args['target']}")
        target.state.put_nowait(b"" if args["eof"] else args["data"])
        return {"written": len(args.get("data", b""))}


@run_async
async def test_a_request_finds_its_stream_by_id(tmp_path: Path) -> None:
    async with (
        serving(tmp_path, InputHandler()) as server,
        await Client.connect(sock_path(server)) as client,
    ):
        stream = client.open_stream("exec", name="p", command=["x"])
        # Sent before the stream's handler has run at all: requests start in order.
        assert await client.call("exec_input", target=stream.id, data=b"ab") == {"written": 2}
        assert await anext(stream) == {"stdout": b"AB"}
        await client.call("exec_input", target=stream.id, eof=True)
        assert [item async for item in stream] == []
        with pytest.raises(NotFound):  # it has ended
            await client.call("exec_input", target=stream.id, data=b"x")
        other = await Client.connect(sock_path(server))
        stream = client.open_stream("exec", name="p", command=["x"])
        with pytest.raises(NotFound):  # another connection's request is not a sibling
            await other.call("exec_input", target=stream.id, data=b"x")
        await other.close()
        stream.close()


@run_async
async def test_call_carries_the_peer_credentials(tmp_path: Path) -> None:
    handler = FakeHandler()
    async with (
        serving(tmp_path, handler) as server,
        await Client.connect(sock_path(server)) as client,
    ):
        await client.call("get", name="x")
    assert handler.peers == [PeerCred(os.getpid(), os.getuid(), os.getgid())]


@run_async
async def test_handler_errors_become_typed_replies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(tmp_path) as server, await Client.connect(sock_path(server)) as client:
        with pytest.raises(NotFound) as nf:
            await client.call("delete", name="missing")
        assert nf.value.message == 'pods "missing" not found'
        assert nf.value.details == {"name": "missing"}
        kaboom = "internal error in op 'delete': ValueError: kaboom"
        with (
            caplog.at_level(logging.ERROR, "supervisor.server"),
            pytest.raises(Internal, match=kaboom),
        ):
            await client.call("delete", name="boom")
        assert "kaboom" in caplog.text and "Traceback" in caplog.text
        with pytest.raises(Internal, match="can not serialize"):
            await client.call("delete", name="unencodable")
        with pytest.raises(NotFound) as huge:  # cut, not lost (the client waited forever)
            await client.call("delete", name="huge")
        assert huge.value.message == "x" * 4096 + " [truncated]"
        assert huge.value.details == {"truncated": True}
        with pytest.raises(Unavailable, match="op 'apply' is not implemented"):
            await client.call("apply", manifests=[])
        # The connection and the server carry on.
        assert await client.call("delete", name="web") == {"namespace": "default", "name": "web"}
        assert await client.call("version") == {"server": "supd 0.1.0", "protocol": 1}


@run_async
async def test_duplicate_id_in_flight_is_refused(tmp_path: Path) -> None:
    handler = FakeHandler()
    async with serving(tmp_path, handler) as server:
        reader, writer = await asyncio.open_unix_connection(sock_path(server))
        frames = [
            {"id": 0, "op": "hello", "args": {"versions": [1]}},
            {"id": 1, "op": "wait", "args": {"name": "a", "for": "delete"}},
            {"id": 1, "op": "wait", "args": {"name": "b", "for": "delete"}},
        ]
        writer.write(b"".join(proto.encode_frame(f) for f in frames))
        replies = [await read_frame(reader) for _ in range(2)]
        assert replies[1]["id"] == 1
        assert replies[1]["error"]["message"] == "request id 1 is already in flight"
        handler.gate.set()
        assert (await read_frame(reader))["result"]["name"] == "a"
        writer.close()


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any]:
    (size,) = struct.unpack(">I", await reader.readexactly(4))
    msg: dict[str, Any] = msgpack.unpackb(await reader.readexactly(size), raw=False)
    return msg


# -- streams and cancel --------------------------------------------------------------------------


@run_async
async def test_stream_yields_payloads_then_ends(tmp_path: Path) -> None:
    async with serving(tmp_path) as server, await Client.connect(sock_path(server)) as client:
        got = [p async for p in client.stream("events")]
        assert got == [{"reason": f"e{i}"} for i in range(5)]


@run_async
async def test_leaving_a_stream_early_cancels_it_on_the_server(tmp_path: Path) -> None:
    handler = FakeHandler()
    async with serving(tmp_path, handler) as server:
        client = await Client.connect(sock_path(server))
        stream = client.stream("watch")
        seen = []
        async for change in stream:
            seen.append(change["object"]["i"])
            if len(seen) == 3:
                break
        await stream.aclose()
        assert seen == [0, 1, 2]
        await wait_for(lambda: len(handler.cancelled) == 1 and server.streams == 0)
        # Other requests on the connection are unaffected.
        assert (await client.call("get", name="y"))["name"] == "y"
        await client.close()


@run_async
async def test_cancelling_a_call_cancels_the_handler(tmp_path: Path) -> None:
    handler = FakeHandler()
    async with serving(tmp_path, handler) as server:
        client = await Client.connect(sock_path(server))
        task = asyncio.create_task(client.call("wait", name="a", **{"for": "delete"}))
        await wait_for(lambda: handler.active == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_for(lambda: len(handler.cancelled) == 1)
        await client.close()


@run_async
async def test_cancel_reply_and_nothing_after_it(tmp_path: Path) -> None:
    handler = FakeHandler()
    async with serving(tmp_path, handler) as server:
        reader, writer = await asyncio.open_unix_connection(sock_path(server))
        writer.write(proto.encode_frame({"id": 0, "op": "hello", "args": {"versions": [1]}}))
        await read_frame(reader)
        writer.write(proto.encode_frame({"id": 1, "op": "watch", "args": {}}))
        assert (await read_frame(reader))["id"] == 1
        writer.write(proto.encode_frame({"id": 2, "op": "cancel", "args": {"target": 1}}))
        while (frame := await read_frame(reader))["id"] == 1:
            assert "stream" in frame  # frames sent before the cancel was read
        assert frame == {"id": 2, "result": {"cancelled": True}}
        writer.write(proto.encode_frame({"id": 3, "op": "cancel", "args": {"target": 1}}))
        writer.write(proto.encode_frame({"id": 4, "op": "cancel", "args": {"target": 99}}))
        assert await read_frame(reader) == {"id": 3, "result": {"cancelled": False}}
        assert await read_frame(reader) == {"id": 4, "result": {"cancelled": False}}
        writer.close()
        assert handler.cancelled == [1]


@run_async
async def test_connection_loss_cancels_its_requests(tmp_path: Path) -> None:
    handler = FakeHandler()
    async with serving(tmp_path, handler) as server:
        client = await Client.connect(sock_path(server))
        pending = asyncio.create_task(client.call("wait", name="a", **{"for": "delete"}))
        await wait_for(lambda: handler.active == 1)
        await client.close()
        with pytest.raises(Unavailable, match="closed"):
            await pending
        await wait_for(lambda: handler.cancelled != [] and server.connections == 0)


@run_async
async def test_stream_limits(tmp_path: Path) -> None:
    limits = Limits(max_streams_per_connection=2, max_streams=3)
    async with serving(tmp_path, limits=limits) as server:
        a = await Client.connect(sock_path(server))
        b = await Client.connect(sock_path(server))
        streams = [a.stream("watch"), a.stream("watch"), b.stream("watch")]
        for s in streams:
            await anext(s)
        with pytest.raises(ResourceExhausted, match="too many streams on this connection"):
            await anext(a.stream("watch"))
        with pytest.raises(ResourceExhausted, match="too many streams open on supd"):
            await anext(b.stream("watch"))
        await streams[0].aclose()
        await wait_for(lambda: server.streams == 2)
        await anext(b.stream("watch"))
        await a.close()
        await b.close()


@run_async
async def test_connection_limit(tmp_path: Path) -> None:
    async with serving(tmp_path, limits=Limits(max_connections=1)) as server:
        first = await Client.connect(sock_path(server))
        with pytest.raises(ResourceExhausted, match="too many connections"):
            await Client.connect(sock_path(server))
        await first.close()
        await wait_for(lambda: server.connections == 0)
        await (await Client.connect(sock_path(server))).close()


@run_async
async def test_a_refusal_cancels_what_is_in_flight_and_is_the_last_frame(tmp_path: Path) -> None:
    """An oversized frame after a request that is still running: the refusal (id null) is
    the last frame, then EOF (the server half-closes and lingers); the running request is
    cancelled rather than answered after write_eof (a RuntimeError in its task)."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
    handler = FakeHandler()
    async with serving(tmp_path, handler) as server:
        reader, writer = await asyncio.open_unix_connection(sock_path(server))
        writer.write(proto.encode_frame({"id": 0, "op": "hello", "args": {"versions": [1]}}))
        writer.write(
            proto.encode_frame({"id": 1, "op": "wait", "args": {"name": "x", "for": "delete"}})
        )
        await wait_for(lambda: handler.active == 1)
        writer.write(struct.pack(">I", proto.MAX_FRAME_SIZE + 1))
        data = await reader.read()  # to EOF: the server shut its writing side
        frames = [msgpack.unpackb(b, raw=False) for b in proto.FrameDecoder().feed(data)]
        assert [f["id"] for f in frames] == [0, None]
        assert frames[1]["error"]["code"] == "ResourceExhausted"
        # at once, not when the lingering close ends a second later
        await wait_for(lambda: handler.cancelled == [1], timeout=0.5)
        handler.gate.set()
        writer.close()
        await wait_for(lambda: server.connections == 0)
    assert errors == []


@run_async
async def test_slow_reader_does_not_grow_memory(tmp_path: Path) -> None:
    handler = FakeHandler()
    limits = Limits(write_high_water=64 * 1024, drain_timeout=0.3)
    async with serving(tmp_path, handler, limits=limits) as server:
        # StreamReader stops reading at 2 * limit buffered, like a client that reads slowly.
        reader, writer = await asyncio.open_unix_connection(sock_path(server), limit=1024)
        writer.write(proto.encode_frame({"id": 0, "op": "hello", "args": {"versions": [1]}}))
        writer.write(proto.encode_frame({"id": 1, "op": "logs", "args": {"name": "x"}}))
        await read_frame(reader)
        # Read nothing more: once the socket and the transport buffer are full, the handler
        # waits, and after drain_timeout its stream ends with ResourceExhausted.
        await wait_for(lambda: handler.exhausted is not None)
        sent = handler.sent
        assert sent < 64  # at most kernel buffers + high-water mark, not an endless queue
        assert handler.refused >= 1  # try_send wrote until the write paused, then left it
        frames = []
        while True:
            frame = await read_frame(reader)
            frames.append(frame)
            if "error" in frame:
                break
        assert all("stream" in f for f in frames[:-1]) and len(frames) - 1 == sent
        assert frames[-1]["error"]["code"] == "ResourceExhausted"
        writer.close()


@run_async
async def test_handshake_timeout_closes_silent_connections(tmp_path: Path) -> None:
    async with serving(tmp_path, limits=Limits(handshake_timeout=0.1)) as server:
        reader, writer = await asyncio.open_unix_connection(sock_path(server))
        frame = await read_frame(reader)
        assert frame["id"] is None and frame["error"]["code"] == "DeadlineExceeded"
        assert await reader.read() == b""
        writer.close()


# -- shutdown -------------------------------------------------------------------------------------


@run_async
async def test_shutdown_lets_requests_finish_and_ends_streams(tmp_path: Path) -> None:
    handler = FakeHandler()
    server = Server(handler, str(tmp_path / "supd.sock"))
    await server.start()
    client = await Client.connect(sock_path(server))
    waiting = asyncio.create_task(client.call("wait", name="a", **{"for": "delete"}))
    watch = client.stream("watch")
    await anext(watch)
    await wait_for(lambda: handler.active == 1)
    closing = asyncio.create_task(server.close(timeout=5.0))
    with pytest.raises(Unavailable, match="shutting down"):
        while True:
            await anext(watch)
    handler.gate.set()  # the unary request finishes within the timeout
    assert (await waiting)["name"] == "a"
    await closing
    assert not os.path.exists(sock_path(server))
    assert server.connections == 0


@run_async
async def test_shutdown_cancels_what_outlives_the_timeout(tmp_path: Path) -> None:
    handler = FakeHandler()
    server = Server(handler, str(tmp_path / "supd.sock"))
    await server.start()
    client = await Client.connect(sock_path(server))
    waiting = asyncio.create_task(client.call("wait", name="a", **{"for": "delete"}))
    await wait_for(lambda: handler.active == 1)
    await server.close(timeout=0.1)
    with pytest.raises(Unavailable, match="shutting down"):
        await waiting
    assert handler.cancelled


# -- the socket file ------------------------------------------------------------------------------


@run_async
async def test_socket_is_0600_in_a_0755_parent(tmp_path: Path) -> None:
    async with serving(tmp_path) as server:
        st = os.stat(sock_path(server))
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert stat.S_IMODE(os.stat(tmp_path / "run").st_mode) == 0o755
        assert [p.name for p in (tmp_path / "run").iterdir()] == ["supd.sock"]  # no temp left


@run_async
async def test_a_path_with_no_room_for_the_temporary_name_is_bound_in_place(
    tmp_path: Path,
) -> None:
    directory = tmp_path / ("d" * (105 - len(str(tmp_path)) - len("/run/supd.sock") - 1))
    server = Server(FakeHandler(), str(directory / "run" / "supd.sock"))
    assert len(sock_path(server)) == 105  # fits sun_path, but ".supd.sock.PID" would not
    await server.start()
    assert stat.S_IMODE(os.stat(sock_path(server)).st_mode) == 0o600
    async with await Client.connect(sock_path(server)) as client:
        assert client.version == 1
    await server.close()


@run_async
async def test_socket_group_makes_it_0660_and_chgrp(tmp_path: Path) -> None:
    async with serving(tmp_path, socket_group=4242) as server:
        st = os.stat(sock_path(server))
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == 4242


@run_async
async def test_stale_socket_is_replaced_but_a_live_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "supd.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a supd that died
    server = Server(FakeHandler(), str(path))
    await server.start()
    async with await Client.connect(str(path)) as client:
        assert client.server == "supd 0.1.0"
    with pytest.raises(Conflict, match="already listening"):
        await UnixSite(Server(FakeHandler()), str(path)).start()
    await server.close()
    path.write_text("not a socket")
    with pytest.raises(Conflict, match="is not a socket"):
        await UnixSite(Server(FakeHandler()), str(path)).start()


@run_async
async def test_missing_socket_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match=r"cannot connect to supd at .*: no such file"):
        await Client.connect(str(tmp_path / "nope.sock"))


def test_unknown_socket_group_is_refused() -> None:
    with pytest.raises(Exception, match="does not exist"):
        Server(FakeHandler(), socket_group="no-such-group-hopefully")


# -- peer credentials -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "server_uid", "socket_gid", "groups", "allowed"),
    [
        (PeerCred(1, 0, 0), 1000, None, (), True),  # root
        (PeerCred(1, 1000, 1000), 1000, None, (), True),  # the server's own uid
        (PeerCred(1, 1001, 1001), 1000, None, (), False),
        (PeerCred(1, 1001, 50), 1000, 50, (), True),  # primary gid is the socket's group
        (PeerCred(1, 1001, 1001), 1000, 50, (10, 50), True),  # supplementary group
        (PeerCred(1, 1001, 1001), 1000, 50, (10, 51), False),
        (PeerCred(1, 65534, 65534), 0, None, (), False),
    ],
)
def test_peer_decision(
    peer: PeerCred, server_uid: int, socket_gid: int | None, groups: tuple[int, ...], allowed: bool
) -> None:
    assert (
        peer_allowed(peer, server_uid=server_uid, socket_gid=socket_gid, groups=groups) == allowed
    )


_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
try:
    s.sendall(bytes.fromhex(sys.argv[2]))
except OSError:
    pass  # a refused peer may be closed on before it writes; its error frame is waiting
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
    if len(data) >= 4 and len(data) >= 4 + int.from_bytes(data[:4], "big"):
        break
print(data.hex())
"""


async def connect_as_nobody(path: str, *, gid: int = 65534) -> dict[str, Any]:
    """Connect from a process with uid 65534 and return the first frame it receives."""
    hello = proto.encode_frame({"id": 0, "op": "hello", "args": {"versions": [1]}})
    argv = [sys.executable, "-I", "-S", "-c", _CLIENT, path, hello.hex()]
    setpriv = shutil.which("setpriv")
    if setpriv:
        argv = [setpriv, "--reuid=65534", f"--regid={gid}", "--clear-groups", *argv]
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    else:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, user=65534, group=gid, extra_groups=[]
        )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    data = bytes.fromhex(out.decode().strip())
    msg: dict[str, Any] = msgpack.unpackb(data[4:], raw=False)
    return msg


@pytest.fixture
def open_dir() -> Any:
    """A directory others may enter (pytest's tmp_path is 0700)."""
    d = tempfile.mkdtemp(prefix="supd-peer-")
    os.chmod(d, 0o755)
    yield Path(d)
    shutil.rmtree(d)


@pytest.mark.skipif(
    os.geteuid() != 0 and not os.environ.get("CI"), reason="needs root to switch to uid 65534"
)
@run_async
async def test_other_users_are_refused_with_permission_denied(
    open_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(open_dir) as server:
        os.chmod(open_dir / "run", 0o755)
        os.chmod(sock_path(server), 0o666)  # let the kernel pass it; SO_PEERCRED must refuse
        with caplog.at_level(logging.WARNING, logger="supervisor.server"):
            frame = await connect_as_nobody(sock_path(server))
        assert frame["id"] is None
        assert frame["error"]["code"] == "PermissionDenied"
        assert "uid 65534 may not use supd" in frame["error"]["message"]
        assert "refused connection" in caplog.text and "uid 65534" in caplog.text
        assert server.connections == 0


@pytest.mark.skipif(
    os.geteuid() != 0 and not os.environ.get("CI"), reason="needs root to switch to uid 65534"
)
@run_async
async def test_members_of_the_socket_group_are_allowed(open_dir: Path) -> None:
    async with serving(open_dir, socket_group=65534) as server:
        os.chmod(open_dir / "run", 0o755)
        frame = await connect_as_nobody(sock_path(server), gid=65534)
        assert frame == {"id": 0, "result": {"version": 1, "server": "supd 0.1.0"}}


def test_client_raises_permission_denied_from_a_refusal() -> None:
    err = proto.parse_reply(proto.error_message(None, PermissionDenied("no"))).value
    assert isinstance(err, PermissionDenied)


@run_async
async def test_client_connect_times_out_on_a_silent_server(tmp_path: Path) -> None:
    path = str(tmp_path / "silent.sock")
    listener = await asyncio.start_unix_server(lambda r, w: None, path)
    with pytest.raises(DeadlineExceeded, match="did not answer the handshake"):
        await Client.connect(path, timeout=0.1)
    listener.close()


def test_tune_gc_freezes_start_up_and_widens_the_young_generation() -> None:
    """supd's loop must not stall in full collections (BENCHMARKS.md: 130-320 ms each with
    1000 pods probed every second under CPython's default thresholds)."""
    import gc

    from supervisor import supd

    before = gc.get_threshold()
    try:
        supd.tune_gc()
        assert gc.get_threshold() == (supd.GC_YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
