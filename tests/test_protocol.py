"""The wire protocol: framing, every limit, envelopes, arg validation against messages.json,
and a real server on a temp Unix socket fed garbage (hypothesis) that must keep answering."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor import protocol as proto
from supervisor.errors import InvalidArgument, NotFound, ResourceExhausted
from supervisor.server import Call, Server

REPO = Path(__file__).resolve().parent.parent


def pack(obj: Any) -> bytes:
    body = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def nested(depth: int) -> Any:
    """`depth` containers deep: [[...[]...]]."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# -- framing ---------------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=300), max_size=8), st.data())
def test_decoder_reassembles_frames_split_anywhere(
    bodies: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(struct.pack(">I", len(b)) + b for b in bodies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = proto.FrameDecoder()
    got: list[bytes] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        got += decoder.feed(stream[last:cut])
        last = cut
    assert got == bodies
    assert decoder.buffered == 0


def test_oversize_frame_is_refused_from_its_length_prefix() -> None:
    decoder = proto.FrameDecoder(max_frame_size=1024)
    # Only the 4-byte prefix has arrived: the body is never waited for nor buffered.
    with pytest.raises(ResourceExhausted) as e:
        decoder.feed(struct.pack(">I", 1025))
    assert e.value.details == {"size": 1025, "limit": 1024}
    assert decoder.buffered == 0


def test_frame_at_the_limit_is_accepted() -> None:
    decoder = proto.FrameDecoder(max_frame_size=16)
    assert decoder.feed(struct.pack(">I", 16) + b"x" * 16) == [b"x" * 16]


def test_default_limits_match_messages_json() -> None:
    limits = proto.load_schema().limits
    assert limits["max_request_frame_bytes"] == proto.MAX_FRAME_SIZE == 1 << 20
    assert limits["max_reply_frame_bytes"] == proto.MAX_REPLY_FRAME_SIZE
    assert limits["max_depth"] == proto.MAX_DEPTH == 32


def test_encode_frame_refuses_oversized_messages() -> None:
    with pytest.raises(ResourceExhausted):
        proto.encode_frame({"data": b"x" * 100}, max_frame_size=50)
    frame = proto.encode_frame({"a": 1})
    assert struct.unpack(">I", frame[:4])[0] == len(frame) - 4


# -- decoding limits ---------------------------------------------------------------------------


def test_depth_32_is_accepted_and_33_refused() -> None:
    assert proto.unpack_message(msgpack.packb({"v": nested(31)}))  # map + 31 lists = 32
    with pytest.raises(InvalidArgument, match="deeper than 32"):
        proto.unpack_message(msgpack.packb({"v": nested(32)}))


def test_very_deep_nesting_is_refused_without_recursion() -> None:
    body = b"\x81\xa1v" + b"\x91" * 5000 + b"\x90"  # beyond msgpack's own stack limit
    with pytest.raises(InvalidArgument, match="deeper than"):
        proto.unpack_message(body)


def test_strings_must_be_utf8() -> None:
    body = b"\x81\xa1s\xa2\xff\xfe"  # {"s": <2 bytes that are not UTF-8>}
    with pytest.raises(InvalidArgument, match="UTF-8") as e:
        proto.unpack_message(body)
    assert e.value.details["limit"] == "utf8"


@pytest.mark.parametrize("key", [1, b"bytes", 1.5, None, True])
def test_map_keys_must_be_str(key: Any) -> None:
    body = msgpack.packb({"ok": {key: 1}}, use_bin_type=True)
    with pytest.raises(InvalidArgument, match="map keys must be strings"):
        proto.unpack_message(body)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (msgpack.packb([1, 2]), "must hold a map"),
        (msgpack.packb("hello"), "must hold a map"),
        (b"\xc1", "malformed"),  # a never-used msgpack type byte
        (b"", "malformed"),
        (b"\x82\xa1a", "malformed"),  # truncated
        (msgpack.packb({}) + msgpack.packb({}), "malformed"),  # two objects in one frame
        (msgpack.packb({"t": msgpack.ExtType(5, b"x")}), "ext type 5"),
        (msgpack.packb({"t": msgpack.Timestamp(1)}), "unsupported msgpack value"),
    ],
)
def test_malformed_frames_are_invalid_argument(body: bytes, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        proto.unpack_message(body)


# -- envelopes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        ({"op": "get"}, "'id' must be an int, got null"),
        ({"id": True, "op": "get"}, "'id' must be an int, got bool"),
        ({"id": "1", "op": "get"}, "'id' must be an int, got str"),
        ({"id": 1}, "'op' must be a str, got null"),
        ({"id": 1, "op": "get", "args": []}, "'args' must be a map, got list"),
        ({"id": 1, "op": "get", "args": {}, "extra": 1}, "unknown request fields: extra"),
    ],
)
def test_bad_envelopes(msg: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        proto.parse_request(msg)


def test_args_may_be_omitted() -> None:
    assert proto.parse_request({"id": 7, "op": "version"}) == proto.Request(7, "version", {})


def test_reply_parsing_round_trips_errors() -> None:
    err = NotFound('pods "x" not found', {"name": "x"})
    reply = proto.parse_reply(proto.error_message(3, err))
    assert reply.id == 3 and reply.kind == "error"
    assert isinstance(reply.value, NotFound)
    assert reply.value.message == err.message and reply.value.details == {"name": "x"}
    assert proto.parse_reply(proto.end_message(4)) == proto.Reply(4, "end", None)
    assert proto.parse_reply(proto.stream_message(4, {"a": 1})).value == {"a": 1}
    with pytest.raises(InvalidArgument):
        proto.parse_reply({"id": 1, "result": 1, "end": True})
    with pytest.raises(InvalidArgument):
        proto.parse_reply({"id": None, "result": 1})


def test_error_details_that_cannot_be_encoded_are_dropped() -> None:
    msg = proto.error_message(1, NotFound("x", {"obj": object()}))
    assert msg["error"]["details"] == {}


def test_version_negotiation() -> None:
    assert proto.negotiate_version([1, 2, 3]) == 1
    with pytest.raises(InvalidArgument, match="no common protocol version"):
        proto.negotiate_version([2])


# -- schema ------------------------------------------------------------------------------------


def test_messages_json_lists_every_op() -> None:
    schema = proto.load_schema()
    assert set(schema.ops) == {
        "image_import",
        "image_ls",
        "image_rm",
        "hello",
        "version",
        "apply",
        "get",
        "watch",
        "delete",
        "logs",
        "wait",
        "events",
        "exec",
        "exec_input",
        "exec_resize",
        "top",
        "cancel",
    }
    streams = {name for name, op in schema.ops.items() if op.stream}
    assert streams == {"watch", "logs", "events", "exec"}
    doc = json.loads((REPO / "proto" / "messages.json").read_text())
    for name, op in doc["ops"].items():
        assert "result" in op or "payload" in op, name
        assert op["stream"] == ("payload" in op), name


def test_schema_is_found_in_the_package_dir_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "site" / "supervisor"
    (pkg / "proto").mkdir(parents=True)
    (pkg / "proto" / "messages.json").write_text("{}")
    (tmp_path / "site" / "proto").mkdir()
    (tmp_path / "site" / "proto" / "messages.json").write_text("{}")
    monkeypatch.setattr(proto, "__file__", str(pkg / "protocol.py"))
    assert proto.schema_path() == pkg / "proto" / "messages.json"
    (pkg / "proto" / "messages.json").unlink()  # a source checkout: fall back to proto/
    assert proto.schema_path() == tmp_path / "site" / "proto" / "messages.json"
    (tmp_path / "site" / "proto" / "messages.json").unlink()
    with pytest.raises(FileNotFoundError):
        proto.schema_path()


def test_validation_fills_defaults() -> None:
    schema = proto.load_schema()
    assert schema.validate_args("get", {}) == {"namespace": "default", "name": None}
    assert schema.validate_args("get", {"namespace": None}) == {"namespace": None, "name": None}
    args = schema.validate_args("delete", {"name": "x"})
    assert args == {"namespace": "default", "name": "x", "wait": True}  # grace_period: absent
    assert (
        schema.validate_args("wait", {"name": "x", "for": "delete", "timeout": 2})["timeout"] == 2
    )


@pytest.mark.parametrize(
    ("op", "args", "match"),
    [
        ("nosuch", {}, "unknown op 'nosuch'"),
        ("get", {"nme": "x"}, "op 'get': unknown argument 'nme'"),
        ("delete", {}, "op 'delete': missing required argument 'name'"),
        ("delete", {"name": 5}, "argument 'name' must be str, got int"),
        ("delete", {"name": None}, "argument 'name' must be str, got null"),
        ("delete", {"name": "x", "wait": 1}, "argument 'wait' must be bool, got int"),
        ("delete", {"name": "x", "grace_period": True}, "'grace_period' must be float, got bool"),
        ("delete", {"name": "x", "grace_period": -1}, "'grace_period' must be at least 0"),
        ("wait", {"name": "x", "for": "delete", "timeout": float("nan")}, "must be float"),
        ("logs", {"name": "x", "tail": 1.5}, "argument 'tail' must be int or null, got float"),
        ("apply", {"manifests": [{}, 3]}, r"argument 'manifests'\[1\] must be map, got int"),
        ("apply", {"manifests": {}}, "argument 'manifests' must be list of map, got map"),
        ("hello", {"versions": ["1"]}, r"'versions'\[0\] must be int, got str"),
        ("cancel", {}, "missing required argument 'target'"),
    ],
)
def test_validation_errors_name_the_op_and_arg(op: str, args: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match) as e:
        proto.load_schema().validate_args(op, args)
    assert e.value.details["op"] == op


# -- against a real server -----------------------------------------------------------------------


class EchoHandler:
    async def op_get(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        return {"items": [], "args": args}

    async def op_events(self, args: dict[str, Any], call: Call) -> None:
        for i in range(3):
            await call.send({"reason": f"e{i}"})


class ServerThread:
    """A real Server on a temp Unix socket, in a thread with its own uvloop loop, so that
    blocking raw-socket clients can poke it."""

    def __init__(self, handler: object) -> None:
        self.dir = tempfile.mkdtemp(prefix="supd-test-")
        self.path = os.path.join(self.dir, "supd.sock")
        self.handler = handler
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = Server(handler, self.path)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(timeout=1), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        os.rmdir(self.dir)


class Raw:
    """A blocking client speaking raw frames."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.decoder = proto.FrameDecoder(proto.MAX_REPLY_FRAME_SIZE)
        self.frames: list[dict[str, Any]] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def hello(self) -> dict[str, Any]:
        self.send(pack({"id": 0, "op": "hello", "args": {"versions": [1], "client": "test"}}))
        return self.recv()

    def recv(self) -> dict[str, Any]:
        """The next frame; raises EOFError when the server closed."""
        while not self.frames:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.frames += [msgpack.unpackb(b, raw=False) for b in self.decoder.feed(data)]
        return self.frames.pop(0)

    def recv_all(self) -> list[dict[str, Any]]:
        """Every frame until the server closes."""
        out = []
        while True:
            try:
                out.append(self.recv())
            except EOFError:
                return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(EchoHandler()) as s:
        yield s


def error_of(frame: dict[str, Any]) -> tuple[str, str]:
    assert "error" in frame, frame
    return frame["error"]["code"], frame["error"]["message"]


def test_hello_handshake(server: ServerThread) -> None:
    c = Raw(server.path)
    assert c.hello() == {"id": 0, "result": {"version": 1, "server": "supd 0.1.0"}}
    c.send(pack({"id": 1, "op": "hello", "args": {"versions": [1]}}))
    assert error_of(c.recv()) == ("InvalidArgument", "'hello' was already done on this connection")
    c.close()


@pytest.mark.parametrize(
    "request_",
    [
        {"id": 1, "op": "get", "args": {}},
        {"id": 1, "op": "cancel", "args": {"target": 1}},
        {"id": 1, "op": "hello", "args": {"versions": [9]}},
        {"id": 1, "op": "hello", "args": {}},
    ],
)
def test_anything_before_hello_is_refused(server: ServerThread, request_: dict[str, Any]) -> None:
    c = Raw(server.path)
    c.send(pack(request_))
    frame = c.recv()
    assert frame["id"] == 1
    assert error_of(frame)[0] == "InvalidArgument"
    assert c.hello()["result"]["version"] == 1  # the connection is still usable
    c.close()


def test_oversize_frame_gets_an_error_then_the_connection_closes(server: ServerThread) -> None:
    c = Raw(server.path)
    c.hello()
    c.send(struct.pack(">I", proto.MAX_FRAME_SIZE + 1))  # the prefix alone is enough
    frames = c.recv_all()
    assert len(frames) == 1 and frames[0]["id"] is None
    code, message = error_of(frames[0])
    assert code == "ResourceExhausted" and "exceeds the limit of 1048576 bytes" in message
    c.close()


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (msgpack.packb({"id": 1, "op": "get", "args": {"name": nested(32)}}), "deeper than 32"),
        (b"\x83\xa2id\x01\xa2op\xa3get\xa4args\x81\xa4name\xa2\xff\xfe", "UTF-8"),
        (msgpack.packb({"id": 1, "op": "get", "args": {1: "x"}}), "map keys must be strings"),
        (msgpack.packb({"id": 1, "op": "nosuch", "args": {}}), "unknown op 'nosuch'"),
        (msgpack.packb({"id": 1, "op": "get", "args": {"nme": "x"}}), "unknown argument 'nme'"),
        (msgpack.packb({"id": 1, "op": "get", "args": {"name": 1}}), "'name' must be str"),
        (msgpack.packb({"id": 1, "op": "wait", "args": {"name": "x"}}), "missing required"),
        (msgpack.packb([1, 2, 3]), "must hold a map"),
    ],
)
def test_each_limit_gets_an_error_reply_and_the_connection_goes_on(
    server: ServerThread, body: bytes, match: str
) -> None:
    c = Raw(server.path)
    c.hello()
    c.send(struct.pack(">I", len(body)) + body)
    code, message = error_of(c.recv())
    assert code == "InvalidArgument"
    assert match in message
    c.send(pack({"id": 2, "op": "get", "args": {}}))
    assert c.recv()["result"]["items"] == []
    c.close()


def test_errors_carry_the_request_id_when_it_is_readable(server: ServerThread) -> None:
    c = Raw(server.path)
    c.hello()
    c.send(pack({"id": 41, "op": "nosuch", "args": {}}))
    frame = c.recv()
    assert frame["id"] == 41 and frame["error"]["details"] == {"op": "nosuch"}
    c.send(pack({"op": "get"}))
    assert c.recv()["id"] is None
    c.close()


def test_stream_frames_then_end(server: ServerThread) -> None:
    c = Raw(server.path)
    c.hello()
    c.send(pack({"id": 5, "op": "events", "args": {}}))
    frames = [c.recv() for _ in range(4)]
    assert frames == [
        {"id": 5, "stream": {"reason": "e0"}},
        {"id": 5, "stream": {"reason": "e1"}},
        {"id": 5, "stream": {"reason": "e2"}},
        {"id": 5, "end": True},
    ]
    c.close()


def test_closing_the_write_side_ends_the_connection(server: ServerThread) -> None:
    # Half-close is not part of the protocol: EOF means the client is gone, so its requests
    # are cancelled and the server closes too.
    c = Raw(server.path)
    c.hello()
    c.sock.shutdown(socket.SHUT_WR)
    assert c.recv_all() == []
    c.close()


def test_partial_frame_at_eof_is_reported(server: ServerThread) -> None:
    c = Raw(server.path)
    c.hello()
    c.send(struct.pack(">I", 100) + b"abc")
    c.sock.shutdown(socket.SHUT_WR)
    frames = c.recv_all()
    assert error_of(frames[0]) == ("InvalidArgument", "connection closed in the middle of a frame")
    c.close()


def _good_client_works(path: str) -> None:
    c = Raw(path)
    assert c.hello()["result"]["version"] == 1
    c.send(pack({"id": 9, "op": "get", "args": {"name": "x"}}))
    assert c.recv() == {
        "id": 9,
        "result": {"items": [], "args": {"namespace": "default", "name": "x"}},
    }
    c.close()


def _exchange(path: str, data: bytes, *, hello: bool) -> list[dict[str, Any]]:
    """Send `data`, close our side, and collect every frame until the server closes."""
    c = Raw(path, timeout=5.0)
    try:
        if hello:
            c.hello()
        c.send(data)
        c.sock.shutdown(socket.SHUT_WR)
        return c.recv_all()  # a hang here (socket timeout) fails the test
    finally:
        c.close()


def _well_formed(frame: dict[str, Any]) -> bool:
    return set(frame) in ({"id", "result"}, {"id", "error"}, {"id", "stream"}, {"id", "end"})


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.binary(min_size=1, max_size=2000), hello=st.booleans())
def test_random_bytes_get_an_error_or_a_close(
    server: ServerThread, data: bytes, hello: bool
) -> None:
    frames = _exchange(server.path, data, hello=hello)
    assert all(_well_formed(f) for f in frames)
    if not hello:
        # Without a handshake nothing can succeed: every frame is an error.
        assert all("error" in f for f in frames)
    _good_client_works(server.path)


_VALID = [
    {"id": 1, "op": "hello", "args": {"versions": [1], "client": "supctl/0.1.0"}},
    {"id": 2, "op": "get", "args": {"namespace": "default", "name": "web"}},
    {"id": 3, "op": "events", "args": {"namespace": None, "watch": False}},
    {"id": 4, "op": "cancel", "args": {"target": 3}},
]


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    frames = bytearray(b"".join(pack(m) for m in _VALID))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(0, len(frames) - 1)))
        if kind == "flip" and frames:
            frames[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            frames[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and frames:
            del frames[pos : pos + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del frames[pos:]
    return bytes(frames)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=mutated_frames())
def test_mutated_frames_get_an_error_or_a_close(server: ServerThread, data: bytes) -> None:
    frames = _exchange(server.path, data, hello=False)
    assert all(_well_formed(f) for f in frames)
    _good_client_works(server.path)


def test_protocol_md_documents_every_op() -> None:
    text = (REPO / "proto" / "PROTOCOL.md").read_text()
    for op in proto.load_schema().ops:
        assert f"\n### {op}" in text, op
