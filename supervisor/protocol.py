"""The wire protocol between supctl and supd: framing, limits, envelopes and arg validation.

A leaf module: it imports only `supervisor.errors` and msgpack (and the stdlib). It does no
I/O except reading the schema file; the server and the client do the sockets.

A frame is a 4-byte big-endian length followed by one msgpack map (proto/PROTOCOL.md). Input
is untrusted, so every limit is checked by the cheapest means and as early as possible: the
frame size from the length prefix before the body is buffered, then UTF-8, map keys and depth
while decoding, then the request envelope, then the op's args against proto/messages.json.
Like msgpack-python's Unpacker, a violation is a typed error, never a crash: per-frame
violations are InvalidArgument (the connection carries on); an oversized frame is
ResourceExhausted from `FrameDecoder.feed` (the connection must be closed, since the stream
cannot be trusted to resynchronise).
"""

from __future__ import annotations

import functools
import json
import math
import socket
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple

import msgpack

from supervisor.errors import InvalidArgument, ResourceExhausted, SupervisorError, from_wire

PROTOCOL_VERSION: Final = 1
SUPPORTED_VERSIONS: Final = (1,)

MAX_FRAME_SIZE: Final = 1 << 20
"""Largest request frame a server accepts (body bytes, without the 4-byte prefix)."""
MAX_REPLY_FRAME_SIZE: Final = 16 << 20
"""Largest frame a server sends and a client accepts: a `get` of many pods exceeds 1 MiB."""
MAX_DEPTH: Final = 32
"""Deepest nesting of maps and arrays in one frame; the top-level map is depth 1."""

HEADER: Final = struct.Struct(">I")

DEFAULT_SOCKET_PATH: Final = "/run/supervisor/supd.sock"

_SCALARS: Final = (str, bytes, int, float, bool, type(None))
_ENVELOPE_KEYS: Final = frozenset({"id", "op", "args"})


# -- framing -------------------------------------------------------------------------------


class FrameDecoder:
    """Splits a byte stream into frame bodies, refusing oversized frames from their prefix.

    `append` buffers bytes; `next_frame` takes one complete body off the front, so a busy
    server can leave frames unparsed (as bytes) until it has room for their requests. `feed`
    does both for a reader that takes every frame at once.
    """

    def __init__(self, max_frame_size: int = MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held back: frames not taken yet and a partial frame."""
        return len(self._buf)

    def append(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> bytes | None:
        """The next complete frame body, or None until more bytes arrive.

        Raises ResourceExhausted as soon as a length prefix announces a frame over the limit
        (before its body is waited for); the buffered bytes are dropped.
        """
        buf = self._buf
        if len(buf) < HEADER.size:
            return None
        (size,) = HEADER.unpack_from(buf)
        if size > self.max_frame_size:
            self._buf = bytearray()
            raise ResourceExhausted(
                f"frame of {size} bytes exceeds the limit of {self.max_frame_size} bytes",
                {"size": size, "limit": self.max_frame_size},
            )
        end = HEADER.size + size
        if len(buf) < end:
            return None
        body = bytes(buf[HEADER.size : end])
        # bytearray drops a prefix in O(1): CPython moves its start, it does not copy.
        del buf[:end]
        return body

    def feed(self, data: bytes) -> list[bytes]:
        """`append(data)`, then every complete frame body, in order."""
        self.append(data)
        frames = []
        while (body := self.next_frame()) is not None:
            frames.append(body)
        return frames


def _reject_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack ext type {code} is not allowed")


def _wire_type(value: Any) -> str:
    """The protocol's name for a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def check_value(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise InvalidArgument unless `value` nests at most `max_depth` containers deep, every map
    key is a str and every leaf is a plain msgpack scalar."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        obj, depth = stack.pop()
        if isinstance(obj, dict):
            children: Iterable[Any] = obj.values()
            for key in obj:
                if type(key) is not str:
                    raise InvalidArgument(
                        f"map keys must be strings, got {_wire_type(key)}",
                        {"limit": "map_key"},
                    )
        elif isinstance(obj, list):
            children = obj
        else:
            if not isinstance(obj, _SCALARS):
                raise InvalidArgument(f"unsupported msgpack value of type {_wire_type(obj)}")
            continue
        if depth > max_depth:
            raise InvalidArgument(
                f"message nests deeper than {max_depth} levels",
                {"limit": "max_depth", "max_depth": max_depth},
            )
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
            elif not isinstance(child, _SCALARS):
                raise InvalidArgument(f"unsupported msgpack value of type {_wire_type(child)}")


def unpack_message(body: bytes, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """Decode one frame body into a map, enforcing UTF-8, str keys and the depth limit."""
    try:
        msg = msgpack.unpackb(
            body, raw=False, strict_map_key=True, use_list=True, ext_hook=_reject_ext
        )
    except UnicodeDecodeError as e:
        raise InvalidArgument(
            f"strings must be valid UTF-8: {e.reason} at byte {e.start}", {"limit": "utf8"}
        ) from None
    except msgpack.StackError:
        raise InvalidArgument(
            f"message nests deeper than {max_depth} levels",
            {"limit": "max_depth", "max_depth": max_depth},
        ) from None
    except ValueError as e:
        if "map key" in str(e):
            raise InvalidArgument("map keys must be strings", {"limit": "map_key"}) from None
        raise InvalidArgument(f"malformed msgpack frame: {e}") from None
    except Exception as e:  # msgpack raises a handful of types for garbage input
        raise InvalidArgument(f"malformed msgpack frame: {e}") from None
    if not isinstance(msg, dict):
        raise InvalidArgument(f"a frame must hold a map, got {_wire_type(msg)}")
    check_value(msg, max_depth)
    return msg


def encode_frame(msg: Mapping[str, Any], max_frame_size: int = MAX_REPLY_FRAME_SIZE) -> bytes:
    """Prefix + body for one message. TypeError for values msgpack cannot encode,
    ResourceExhausted when the body exceeds `max_frame_size`."""
    body = msgpack.packb(msg, use_bin_type=True)
    if len(body) > max_frame_size:
        raise ResourceExhausted(
            f"message of {len(body)} bytes exceeds the frame limit of {max_frame_size} bytes",
            {"size": len(body), "limit": max_frame_size},
        )
    return HEADER.pack(len(body)) + body


# -- envelopes -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    op: str
    args: dict[str, Any]


def request_id(msg: Any) -> int | None:
    """The id to answer a malformed request under, if it has a usable one."""
    if isinstance(msg, dict):
        rid = msg.get("id")
        if isinstance(rid, int) and not isinstance(rid, bool):
            return rid
    return None


def parse_request(msg: dict[str, Any]) -> Request:
    """Check a decoded frame is `{"id": int, "op": str, "args": map}` (args may be omitted)."""
    rid = msg.get("id")
    if not isinstance(rid, int) or isinstance(rid, bool):
        raise InvalidArgument(f"request 'id' must be an int, got {_wire_type(rid)}")
    op = msg.get("op")
    if not isinstance(op, str):
        raise InvalidArgument(f"request 'op' must be a str, got {_wire_type(op)}")
    args = msg.get("args", {})
    if not isinstance(args, dict):
        raise InvalidArgument(f"request 'args' must be a map, got {_wire_type(args)}")
    extra = sorted(set(msg) - _ENVELOPE_KEYS)
    if extra:
        raise InvalidArgument(f"unknown request fields: {', '.join(extra)}", {"fields": extra})
    return Request(rid, op, args)


def request_message(rid: int, op: str, args: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": rid, "op": op, "args": dict(args)}


def result_message(rid: int, result: Any) -> dict[str, Any]:
    return {"id": rid, "result": result}


def stream_message(rid: int, payload: Any) -> dict[str, Any]:
    return {"id": rid, "stream": payload}


def end_message(rid: int) -> dict[str, Any]:
    return {"id": rid, "end": True}


def error_message(rid: int | None, err: SupervisorError) -> dict[str, Any]:
    details = err.details
    try:
        msgpack.packb(details, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        details = {}
    return {"id": rid, "error": {"code": err.code, "message": err.message, "details": details}}


ReplyKind = Literal["result", "error", "stream", "end"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One decoded server frame. `value` is the result, the stream payload, the rebuilt
    SupervisorError, or None for an end frame. `id` is None only for connection-level errors."""

    id: int | None
    kind: ReplyKind
    value: Any


def parse_reply(msg: dict[str, Any]) -> Reply:
    """Check a decoded frame is a reply, stream, end or error frame (InvalidArgument if not)."""
    rid = msg.get("id")
    if rid is not None and (not isinstance(rid, int) or isinstance(rid, bool)):
        raise InvalidArgument(f"reply 'id' must be an int or null, got {_wire_type(rid)}")
    kinds = [k for k in ("result", "error", "stream", "end") if k in msg]
    if len(kinds) != 1 or len(msg) != 2:
        raise InvalidArgument(f"malformed reply frame with fields {sorted(msg)}")
    kind: ReplyKind = kinds[0]
    if kind == "error":
        err = msg["error"]
        if not (
            isinstance(err, dict)
            and isinstance(err.get("code"), str)
            and isinstance(err.get("message"), str)
            and isinstance(err.get("details", {}), dict)
        ):
            raise InvalidArgument("malformed error frame")
        return Reply(rid, "error", from_wire(err["code"], err["message"], err.get("details")))
    if rid is None:
        raise InvalidArgument(f"a {kind} frame must carry an id")
    if kind == "end":
        return Reply(rid, "end", None)
    return Reply(rid, kind, msg[kind])


def negotiate_version(versions: Iterable[int]) -> int:
    """The highest protocol version both sides speak (InvalidArgument if none)."""
    common = set(versions) & set(SUPPORTED_VERSIONS)
    if not common:
        raise InvalidArgument(
            f"no common protocol version: client speaks {sorted(set(versions))}, "
            f"server speaks {list(SUPPORTED_VERSIONS)}",
            {"supported": list(SUPPORTED_VERSIONS)},
        )
    return max(common)


# -- schema --------------------------------------------------------------------------------

_TYPE_NAMES: Final = frozenset({"int", "float", "str", "bool", "bytes", "map", "list", "any"})
_UNSET: Final[Any] = object()


def _type_ok(value: Any, type_name: str) -> bool:
    if type_name == "any":
        return True
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "float":
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    if type_name == "str":
        return isinstance(value, str)
    if type_name == "bool":
        return isinstance(value, bool)
    if type_name == "bytes":
        return isinstance(value, bytes)
    if type_name == "map":
        return isinstance(value, dict)
    if type_name == "list":
        return isinstance(value, list)
    raise AssertionError(type_name)


@dataclass(frozen=True, slots=True)
class ArgSpec:
    name: str
    type: str
    required: bool = False
    nullable: bool = False
    default: Any = _UNSET
    items: str | None = None
    minimum: float | None = None

    @property
    def has_default(self) -> bool:
        return self.default is not _UNSET

    def describe(self) -> str:
        text = f"list of {self.items}" if self.type == "list" and self.items else self.type
        return f"{text} or null" if self.nullable else text


@dataclass(frozen=True, slots=True)
class OpSpec:
    name: str
    stream: bool
    args: Mapping[str, ArgSpec]


class Schema:
    """The ops of proto/messages.json, and validation of request args against them."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.version: int = doc["protocol"]
        self.limits: dict[str, int] = dict(doc.get("limits", {}))
        ops: dict[str, OpSpec] = {}
        for name, spec in doc["ops"].items():
            args: dict[str, ArgSpec] = {}
            for arg_name, a in spec.get("args", {}).items():
                if a["type"] not in _TYPE_NAMES or a.get("items", "any") not in _TYPE_NAMES:
                    raise ValueError(f"messages.json: op {name!r} arg {arg_name!r}: bad type")
                args[arg_name] = ArgSpec(
                    name=arg_name,
                    type=a["type"],
                    required=bool(a.get("required", False)),
                    nullable=bool(a.get("nullable", False)),
                    default=a.get("default", _UNSET),
                    items=a.get("items"),
                    minimum=a.get("min"),
                )
            ops[name] = OpSpec(name, bool(spec.get("stream", False)), args)
        self.ops: dict[str, OpSpec] = ops

    def op(self, name: str) -> OpSpec:
        spec = self.ops.get(name)
        if spec is None:
            raise InvalidArgument(f"unknown op {name!r}", {"op": name})
        return spec

    def validate_args(self, op: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Check `args` against the op's schema; return them with defaults filled in.

        Unknown, missing required and mistyped args are InvalidArgument naming the op and arg.
        """
        spec = self.op(op)
        unknown = sorted(set(args) - set(spec.args))
        if unknown:
            raise InvalidArgument(
                f"op {op!r}: unknown argument {unknown[0]!r}", {"op": op, "arg": unknown[0]}
            )
        out: dict[str, Any] = {}
        for name, a in spec.args.items():
            if name not in args:
                if a.required:
                    raise InvalidArgument(
                        f"op {op!r}: missing required argument {name!r}", {"op": op, "arg": name}
                    )
                if a.has_default:
                    out[name] = a.default
                continue
            value = args[name]
            if value is None and a.nullable:
                out[name] = None
                continue
            if not _type_ok(value, a.type):
                raise InvalidArgument(
                    f"op {op!r}: argument {name!r} must be {a.describe()}, got {_wire_type(value)}",
                    {"op": op, "arg": name},
                )
            if a.items is not None:
                for i, item in enumerate(value):
                    if not _type_ok(item, a.items):
                        raise InvalidArgument(
                            f"op {op!r}: argument {name!r}[{i}] must be {a.items}, "
                            f"got {_wire_type(item)}",
                            {"op": op, "arg": name},
                        )
            if a.minimum is not None and value < a.minimum:
                raise InvalidArgument(
                    f"op {op!r}: argument {name!r} must be at least {a.minimum}, got {value}",
                    {"op": op, "arg": name},
                )
            out[name] = value
        return out


def schema_path() -> Path:
    """messages.json from the installed package (setup.py copies it to supervisor/proto/),
    else from the source checkout's proto/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "proto" / "messages.json", here.parent / "proto" / "messages.json"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"messages.json not found in {here / 'proto'} or {here.parent}/proto")


@functools.cache
def load_schema() -> Schema:
    with schema_path().open(encoding="utf-8") as f:
        return Schema(json.load(f))


# -- peers ----------------------------------------------------------------------------------

_PEERCRED: Final = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}


class PeerCred(NamedTuple):
    """The connecting process as the kernel saw it at connect() (SO_PEERCRED, unix(7))."""

    pid: int
    uid: int
    gid: int


def read_peer_cred(sock: Any) -> PeerCred:
    """The process at the other end of a connected Unix socket, as the kernel recorded it
    at connect() or socketpair() (SO_PEERCRED). OSError when it is not such a socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    return PeerCred(*_PEERCRED.unpack(raw))
