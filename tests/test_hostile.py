"""Hostile and broken input against a real supd (issue 8): fuzzed requests for every op of
proto/messages.json, broken frames, floods, clients that never read, many watchers,
mutated manifests through `supctl apply -f`, path escapes from manifests and image layouts,
and peers that are not allowed, as a real second user.

After each attack supd must be alive, answer a fresh `supctl get`, have created nothing, and
hold no more fds and memory than before (within a margin). `finish_supd` (conftest) fails
the test on any traceback in supd's log. `benchmarks/fuzz.py` runs the same fuzzers for
longer.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import secrets
import shutil
import socket
import struct
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from conftest import SUPCTL, Supd, finish_supd, require_root
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fs import busybox_image, status_of  # noqa: F401 (a fixture)

from supervisor import protocol as proto
from supervisor.errors import ManifestError
from supervisor.images import ImageError, ImageStore
from supervisor.manifest import load_pods
from supervisor.server import connection_budget

REPO = Path(__file__).resolve().parent.parent
SCHEMA = proto.load_schema()
TYPED = set(json.loads((REPO / "proto" / "messages.json").read_text())["errors"]) - {"Internal"}
STREAMS = {name for name, op in SCHEMA.ops.items() if op.stream}
# Ops that may rightly take a while with valid args (top samples for `window` seconds, wait
# waits): like streams, they need not have answered by the barrier.
SLOW = STREAMS | {"top", "wait", "delete"}


# -- a raw client ----------------------------------------------------------------------------


class Peer:
    """A blocking client that speaks raw frames to supd."""

    def __init__(self, path: Path, *, hello: bool = True, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.decoder = proto.FrameDecoder(proto.MAX_REPLY_FRAME_SIZE)
        self.frames: list[dict[str, Any]] = []
        if hello:
            self.send({"id": 0, "op": "hello", "args": {"versions": [1], "client": "hostile"}})
            assert "result" in self.recv()

    def send(self, msg: Any) -> None:
        body = msgpack.packb(msg, use_bin_type=True)
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> dict[str, Any]:
        """The next frame; EOFError once supd closed the connection."""
        while not self.frames:
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError
            self.frames += [msgpack.unpackb(b, raw=False) for b in self.decoder.feed(data)]
        return self.frames.pop(0)

    def until(self, rid: int) -> list[dict[str, Any]]:
        """Frames up to and including the first one for `rid`, or an error for a frame
        whose id could not be read (id null: a map key that is not a str, say)."""
        out = []
        while True:
            frame = self.recv()
            out.append(frame)
            if frame.get("id") == rid or (frame.get("id") is None and "error" in frame):
                return out

    def close(self) -> None:
        self.sock.close()


def check_frame(frame: dict[str, Any]) -> None:
    """A well-formed reply; an error is typed, and never Internal (a bug in supd)."""
    assert set(frame) in ({"id", "result"}, {"id", "error"}, {"id", "stream"}, {"id", "end"})
    if "error" in frame:
        err = frame["error"]
        assert err["code"] in TYPED, frame
        assert isinstance(err["message"], str) and err["message"], frame


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def state_of(supd: Supd) -> list[str]:
    """What supd keeps on disk about pods and images: must not change on bad input."""
    pods = sorted(p.name for p in (supd.state_dir / "pods").iterdir())
    index = supd.state_dir / "images" / "images.json"
    return [*pods, index.read_text() if index.exists() else ""]


def healthy(supd: Supd) -> None:
    """supd is alive and serves a fresh connection; it knows no pod."""
    assert supd.proc is not None and supd.proc.poll() is None, "supd died"
    res = supd.ctl("get", "pods", "-A", "-o", "json")
    assert json.loads(res.stdout)["items"] == []


@contextlib.contextmanager
def bounded(supd: Supd, *, fd_margin: int = 8, rss_margin_kib: int = 64 * 1024) -> Iterator[None]:
    """supd's fd count and RSS after the block are within a margin of before it."""
    assert supd.proc is not None
    pid = supd.proc.pid
    healthy(supd)  # warm: the first requests import and allocate what later ones reuse
    fd0, rss0 = fds(pid), rss_kib(pid)
    before = state_of(supd)
    yield
    healthy(supd)
    healthy(supd)  # a round trip after the closes: supd has seen every EOF before it
    assert fds(pid) <= fd0 + fd_margin, (fd0, fds(pid), os.listdir(f"/proc/{pid}/fd"))
    assert rss_kib(pid) <= rss0 + rss_margin_kib, (rss0, rss_kib(pid))
    assert state_of(supd) == before


# -- fuzzed requests for every op ---------------------------------------------------------------

HOSTILE_STRINGS = [
    "",
    ".",
    "..",
    "../..",
    "../../etc/passwd",
    "/etc/passwd",
    "/nonexistent",
    "/dev/zero",
    "a/b",
    "x" * 300,
    "\x00",
    "default",
    "kube-system",
    "-",
    "\U0001f4a5",
    "pod\n",
    "condition=Ready",
    "condition=Ready=False",
    "condition=",
    "delete",
    "=",
    "sha256:" + "0" * 64,
    "busybox:latest",
    "target",  # the live pod of the fuzz run, and its containers
    "c",
    "d",
]

LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(HOSTILE_STRINGS)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
ANY = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def right_typed(type_name: str, items: str | None) -> st.SearchStrategy[Any]:
    if type_name == "int":
        return st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.sampled_from(
            [0, 1, -1, 65535, 65536, 2**31]
        )
    if type_name == "float":
        return (
            st.floats(min_value=0, max_value=0.2)
            | st.floats(allow_nan=False)
            | st.integers(min_value=-(2**63), max_value=2**63)
        )
    if type_name == "str":
        return st.sampled_from(HOSTILE_STRINGS) | st.text(max_size=30)
    if type_name == "bool":
        return st.booleans()
    if type_name == "bytes":
        return st.binary(max_size=64)
    if type_name == "map":
        return st.dictionaries(st.text(max_size=12), ANY, max_size=5)
    if type_name == "list":
        return st.lists(right_typed(items, None) if items and items != "any" else ANY, max_size=4)
    return ANY


@st.composite
def fuzzed_request(draw: st.DrawFn, rid: int) -> dict[str, Any]:
    """A request for any op (or an unknown one), each arg right-typed, wrong-typed or left
    out, sometimes with an unknown arg or a broken envelope."""
    op = draw(st.sampled_from([*sorted(set(SCHEMA.ops) - {"hello"}), "nope", "", "op_get"]))
    args: dict[str, Any] = {}
    spec = SCHEMA.ops.get(op)
    for name, a in (spec.args if spec else {}).items():
        choice = draw(st.sampled_from(["right", "right", "wrong", "omit"]))
        if choice == "right":
            args[name] = draw(right_typed(a.type, a.items))
        elif choice == "wrong":
            args[name] = draw(ANY)
    if draw(st.integers(0, 9)) == 0:
        args[draw(st.text(min_size=1, max_size=8))] = draw(ANY)
    msg: dict[str, Any] = {"id": rid, "op": op, "args": args}
    envelope = draw(st.integers(0, 19))
    if envelope == 0:
        msg["id"] = draw(ANY)
    elif envelope == 1:
        msg["args"] = draw(ANY)
    elif envelope == 2:
        msg["extra"] = 1
    elif envelope == 3:
        del msg["args"]
    return msg


def exchange(supd: Supd, requests: list[dict[str, Any]]) -> None:
    """Send `requests` on one connection, then a `version` barrier, and check every frame
    that comes back. Each request that is not slow must be answered; the others (streams,
    top, wait, delete) are cancelled by closing the connection."""
    peer = Peer(supd.socket)
    try:
        for msg in requests:
            peer.send(msg)
        barrier = 1 << 62
        peer.send({"id": barrier, "op": "version", "args": {}})
        # Every request that is not slow must be answered under its id (their ids are ints
        # and their maps decode, so nothing is answered under null instead).
        pending = {barrier} | {
            msg["id"]
            for msg in requests
            if type(msg.get("id")) is int and msg.get("op") not in SLOW
        }
        while pending:
            frame = peer.recv()
            check_frame(frame)
            if "stream" not in frame:
                pending.discard(frame["id"])
    finally:
        peer.close()


TARGET = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "target"},
    "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [
            {"name": "c", "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]},
            {
                "name": "d",
                "command": ["sh", "-c", "echo hi; trap 'exit 0' TERM; sleep 3600 & wait"],
            },
        ],
    },
}


def ensure_target(supd: Supd) -> None:
    """The live pod that fuzzed logs, exec, top, wait and delete reach: applied again when a
    fuzzed delete removed it (Conflict while it is still being deleted)."""
    peer = Peer(supd.socket)
    try:
        peer.send({"id": 1, "op": "apply", "args": {"manifests": [TARGET]}})
        frame = peer.recv()
        assert "result" in frame or frame["error"]["code"] == "Conflict", frame
    finally:
        peer.close()


def run_request_fuzz(supd: Supd, examples: int) -> None:
    @settings(max_examples=examples, deadline=None, database=None)
    @given(
        st.lists(st.integers(1, 1000), min_size=1, max_size=5, unique=True).flatmap(
            lambda ids: st.tuples(*(fuzzed_request(rid) for rid in ids))
        )
    )
    def fuzz(requests: tuple[dict[str, Any], ...]) -> None:
        ensure_target(supd)
        exchange(supd, list(requests))

    fuzz()
    supd.ctl("delete", "pod", "target", "--grace-period", "0", check=False)


def test_fuzzed_requests_for_every_op_get_typed_errors(supd: Supd) -> None:
    """With a live pod to reach, so that handlers get past their NotFound."""
    with bounded(supd):
        run_request_fuzz(supd, 200)


# -- broken frames ---------------------------------------------------------------------------


def nested(depth: int) -> bytes:
    """A request frame body whose args nest `depth` arrays deep (built by hand: msgpack
    itself refuses to pack it)."""
    inner = b"\x91" * depth + b"\xc0"
    # fixmap of 3: id, op, args={"x": inner}
    body = b"\x83" + msgpack.packb("id") + msgpack.packb(5) + msgpack.packb("op")
    body += msgpack.packb("get") + msgpack.packb("args") + b"\x81" + msgpack.packb("x") + inner
    return struct.pack(">I", len(body)) + body


@pytest.mark.parametrize(
    ("data", "code", "closes"),
    [
        (b"\xff\xff\xff\xff", "ResourceExhausted", True),
        (struct.pack(">I", proto.MAX_FRAME_SIZE + 1) + b"x" * 1000, "ResourceExhausted", True),
        (nested(proto.MAX_DEPTH + 1), "InvalidArgument", False),
        (nested(100_000), "InvalidArgument", False),
        (struct.pack(">I", 3) + b"\xc1\xc1\xc1", "InvalidArgument", False),
        (struct.pack(">I", 1) + b"\x01", "InvalidArgument", False),
        (struct.pack(">I", 4) + b"\x81\xa1x\xc4", "InvalidArgument", False),
        (struct.pack(">I", 5) + b"\x81\xa2\xff\xfe\x01", "InvalidArgument", False),
        (struct.pack(">I", 0), "InvalidArgument", False),
    ],
    ids=[
        "length-4GiB",
        "length-over-limit",
        "depth-33",
        "depth-100000",
        "reserved-bytes",
        "not-a-map",
        "truncated-body",
        "bad-utf8",
        "empty",
    ],
)
def test_broken_frames_get_a_typed_error(supd: Supd, data: bytes, code: str, closes: bool) -> None:
    with bounded(supd):
        peer = Peer(supd.socket)
        peer.send_raw(data)
        frame = peer.recv()
        assert frame["id"] in (None, 5) and frame["error"]["code"] == code, frame
        if closes:
            with pytest.raises((EOFError, ConnectionResetError)):
                peer.recv()
        else:  # the length prefix kept the stream in sync: the connection goes on
            peer.send({"id": 7, "op": "get", "args": {"name": "x"}})
            assert peer.recv()["error"]["code"] == "NotFound"
        peer.close()


def test_truncated_frame_at_eof_and_garbage_before_hello(supd: Supd) -> None:
    with bounded(supd):
        peer = Peer(supd.socket)
        peer.send_raw(struct.pack(">I", 100) + b"abc")
        peer.sock.shutdown(socket.SHUT_WR)
        assert "middle of a frame" in peer.recv()["error"]["message"]
        peer.close()
        peer = Peer(supd.socket, hello=False)
        peer.send({"id": 1, "op": "apply", "args": {"manifests": [{}]}})
        frame = peer.recv()
        assert frame["error"]["code"] == "InvalidArgument" and "hello" in frame["error"]["message"]
        peer.close()


def test_an_apply_of_300000_empty_manifests(supd: Supd) -> None:
    """One 1 MiB request holds 300,000 `{}`: their 1.2 million causes took supd from 35 to
    700 MB, the error was too large for a reply frame and was lost (the client waited
    forever), and the validation held the loop for seconds. Now the causes are capped,
    the reply comes, and a request on another connection is answered meanwhile."""
    with bounded(supd):
        other = Peer(supd.socket, timeout=120)
        peer = Peer(supd.socket, timeout=120)
        peer.send({"id": 1, "op": "apply", "args": {"manifests": [{}] * 300_000}})
        other.send({"id": 2, "op": "version", "args": {}})
        assert "result" in other.recv()
        peer.sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            peer.recv()  # the apply is still being validated
        peer.sock.setblocking(True)
        peer.sock.settimeout(120)
        err = peer.recv()["error"]
        assert err["code"] == "InvalidArgument"
        causes = err["details"]["causes"]
        assert len(causes) == 101 and causes[-1]["message"] == "and 1199900 more errors"
        peer.close()
        other.close()


def test_a_log_larger_than_a_reply_frame_is_read_whole(supd: Supd) -> None:
    """A container's output is hostile input too: 24 MB of log is more than one 16 MiB
    reply frame, and `supctl logs` (and `logs -f` from the start) must still print it all."""
    with bounded(supd, rss_margin_kib=128 * 1024):
        supd.apply(
            """
apiVersion: v1
kind: Pod
metadata: {name: loud}
spec:
  restartPolicy: Never
  containers:
  - name: c
    command: [sh, -c, "head -c 24000000 /dev/zero | tr '\\\\0' x | fold -w 999"]
"""
        )
        supd.watch_until("loud", lambda o: o["status"]["phase"] == "Succeeded", timeout=120)
        for args in ((), ("-f",)):
            res = subprocess.run(
                [SUPCTL, "--socket", str(supd.socket), "logs", "loud", *args],
                capture_output=True,
                timeout=120,
            )
            assert res.returncode == 0, res.stderr[-500:]
            # 24024 full lines of 999, and 24 bytes without a newline
            assert len(res.stdout) == 24_000_000 + 24_000_000 // 999, len(res.stdout)
        supd.ctl("delete", "pod", "loud")


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("timestamps", [False, True])
def test_log_pieces_join_to_the_whole_log(tmp_path: Path, chunk: int, timestamps: bool) -> None:
    from supervisor.logs import iter_log, read_log

    log = tmp_path / "0.log"
    log.write_bytes(
        b"2026-01-01T00:00:00.1Z stdout F one\n"
        b"2026-01-01T00:00:00.2Z stderr P tw\n"
        b"2026-01-01T00:00:00.3Z stderr F o\n"
        b"garbage\n"
        b"2026-01-01T00:00:00.4Z stdout F \n"
        b"2026-01-01T00:00:00.5Z stdout P no newline yet"
    )
    pieces = list(iter_log(log, timestamps=timestamps, chunk=chunk))
    assert b"".join(pieces) == read_log(log, timestamps=timestamps)
    assert b"".join(iter_log(log, tail=1, chunk=chunk)) == read_log(log, tail=1)
    assert list(iter_log(tmp_path / "missing.log")) == []


# -- floods ----------------------------------------------------------------------------------


def test_a_client_that_sends_and_never_reads_is_paused(supd: Supd) -> None:
    """Without backpressure on the write side each reply, once queued, freed its slot for
    the next request, and supd's write buffer grew without bound (6 MB of requests: +236 MB
    RSS in 10 s)."""
    with bounded(supd, rss_margin_kib=32 * 1024):
        peer = Peer(supd.socket)
        batch = b"".join(
            proto.encode_frame({"id": i, "op": "get", "args": {"namespace": None}})
            for i in range(1, 2001)
        )
        peer.sock.setblocking(False)
        sent = 0
        with contextlib.suppress(BlockingIOError):
            for _ in range(200):  # 7 MB unless supd stops reading
                sent += peer.sock.send(batch)
        # supd stopped reading long before 7 MB: what it holds is the socket buffers, one
        # read chunk and the write buffer up to its high-water mark.
        assert sent < 200 * len(batch)
        res = supd.ctl("get", "pods")  # others are served meanwhile
        assert res.returncode == 0
        peer.close()


def test_many_connections_that_never_read(supd: Supd) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    try:
        with bounded(supd):
            peers = []
            for i in range(300):
                peer = Peer(supd.socket, hello=i % 3 != 0)  # a third never says hello
                if i % 3:
                    for rid in range(1, 80):  # beyond the 64 in flight
                        peer.send({"id": rid, "op": "events", "args": {"namespace": None}})
                peers.append(peer)
            res = supd.ctl("get", "pods")
            assert res.returncode == 0, res.stderr
            for peer in peers:
                peer.close()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_watchers_are_bounded_per_connection(supd: Supd) -> None:
    with bounded(supd):
        peer = Peer(supd.socket)
        for rid in range(1, 34):
            peer.send({"id": rid, "op": "watch", "args": {"namespace": None}})
        peer.send({"id": 100, "op": "version", "args": {}})
        frames = peer.until(100)
        refused = [f for f in frames if "error" in f]
        assert [f["id"] for f in refused] == [33], frames
        assert refused[0]["error"]["code"] == "ResourceExhausted"
        assert "too many streams on this connection (limit 32)" in refused[0]["error"]["message"]
        # a cancel still gets through a connection full of streams
        peer.send({"id": 101, "op": "cancel", "args": {"target": 1}})
        assert peer.until(101)[-1]["result"] == {"cancelled": True}
        others = [Peer(supd.socket) for _ in range(3)]
        for other in others:
            other.send({"id": 1, "op": "watch", "args": {}})
        assert supd.ctl("get", "pods").returncode == 0
        for p in [peer, *others]:
            p.close()


def test_watchers_are_bounded_per_server(supd: Supd) -> None:
    """1024 streams in all: 33 connections of 32 watches each (1056) leave 32 refused,
    and supd still serves the next client."""
    with bounded(supd):
        peers = [Peer(supd.socket) for _ in range(33)]
        for peer in peers:
            for rid in range(1, 33):
                peer.send({"id": rid, "op": "watch", "args": {"namespace": None}})
            peer.send({"id": 100, "op": "version", "args": {}})
        refused = []
        for peer in peers:
            refused += [f for f in peer.until(100) if "error" in f]
        assert len(refused) == 32, refused
        assert {f["error"]["message"] for f in refused} == {
            "too many streams open on supd (limit 1024)"
        }
        assert supd.ctl("get", "pods").returncode == 0
        for peer in peers:
            peer.close()


def test_connection_budget_follows_the_open_files_limit() -> None:
    assert connection_budget(1024, 20000) == 1024
    assert connection_budget(1024, 1024) == 512
    assert connection_budget(1024, 64) == 32
    assert connection_budget(1024, 1) == 1
    assert connection_budget(1024, resource.RLIM_INFINITY) == 1024


def test_connections_beyond_the_fd_budget_get_a_typed_refusal(tmp_path: Path) -> None:
    """Under `prlimit --nofile=64` supd takes 32 connections; the next one is refused with
    ResourceExhausted rather than left in the backlog (EMFILE on accept)."""
    require_root()
    d = Supd(socket=tmp_path / "supd.sock", state_dir=tmp_path / "state")
    d.start(prefix=("prlimit", "--nofile=64:64"))
    try:
        peers = [Peer(d.socket) for _ in range(32)]
        res = d.ctl("get", "pods", check=False)
        assert res.returncode == 1
        assert "too many connections to supd (limit 32)" in res.stderr
        peers.pop().close()
        # a round trip on an existing connection: supd has seen the close before it
        peers[0].send({"id": 1, "op": "version", "args": {}})
        peers[0].recv()
        assert d.ctl("get", "pods").returncode == 0
        for peer in peers:
            peer.close()
        log = (tmp_path / "supd.log").read_text()
        assert "at most 32 connections (not 1024): the open-files limit is 64" in log
    finally:
        finish_supd(d, tmp_path)


# -- manifests ---------------------------------------------------------------------------------

GOOD = """apiVersion: v1
kind: Pod
metadata:
  name: good
spec:
  restartPolicy: Never
  volumes: [{name: v, emptyDir: {}}]
  containers:
  - name: c
    command: [sleep, "1"]
    volumeMounts: [{name: v, mountPath: /v}]
"""

BOMB = (
    "apiVersion: v1\nkind: Pod\nmetadata: {name: bomb}\n"
    'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
    + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
        for p, n in zip("abcdefgh", "bcdefghi", strict=False)
    )
    + "spec: {containers: [{name: c, command: [sleep, '1']}]}\n"
)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (GOOD.replace("  name: good\n", ""), "metadata.name: Required value"),
        (GOOD.replace('[sleep, "1"]', "sleep"), "spec.containers[0].command"),
        (GOOD.replace("name: c", "name: [c]"), "spec.containers[0].name"),
        (GOOD.replace("restartPolicy: Never", "restartPolicy: 7"), "spec.restartPolicy"),
        (GOOD.replace("mountPath: /v", "mountPath: /v, subPath: ../../etc"), "subPath"),
        (GOOD.replace("name: good", "name: " + "g" * 100_000), "metadata.name"),
        (GOOD.replace("name: good", 'name: "g\\udcff"'), ""),
        (GOOD.replace("kind: Pod", "kind: Pod\nkind: Pod"), "duplicate key"),
        (GOOD + "---\n" + GOOD.replace("good", "bad").replace("Never", "Sometimes"), "document 2"),
        (GOOD.replace("spec:", "spec: &s\n  x: *s\nz:"), ""),
        (BOMB, "Too many values"),
        ("[" * 10_000, "invalid YAML"),
        ("\x00\x01", "invalid YAML"),
        (GOOD.replace("containers:", "containers: !!python/object:os.system"), ""),
    ],
    ids=[
        "no-name",
        "command-not-list",
        "name-not-str",
        "policy-int",
        "subpath-escape",
        "huge-name",
        "bad-unicode",
        "duplicate-key",
        "multi-doc-one-bad",
        "cycle",
        "alias-bomb",
        "deep",
        "binary",
        "python-tag",
    ],
)
def test_bad_manifests_through_supctl_create_nothing(supd: Supd, text: str, field: str) -> None:
    with bounded(supd):
        started = time.monotonic()
        res = supd.ctl("apply", "-f", "-", input=text.encode(), check=False)
        assert time.monotonic() - started < 10
        assert res.returncode == 2, res
        assert res.stderr.startswith("error: ") and "Traceback" not in res.stderr
        assert field in res.stderr, res.stderr
        assert res.stdout == ""


def _mutate_yaml(text: str, data: st.DataObject) -> str:
    lines = text.splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["drop", "dup", "flip", "insert", "retype"]))
        i = data.draw(st.integers(0, len(lines) - 1))
        if kind == "drop" and len(lines) > 1:
            del lines[i]
        elif kind == "dup":
            lines.insert(i, lines[i])
        elif kind == "flip" and lines[i]:
            j = data.draw(st.integers(0, len(lines[i]) - 1))
            ch = data.draw(st.sampled_from([*list(":-[]{}&*!|>'\"# \t\x00\u2028"), "💥"]))
            lines[i] = lines[i][:j] + ch + lines[i][j + 1 :]
        elif kind == "insert":
            lines.insert(
                i,
                data.draw(
                    st.sampled_from(
                        ["x: &a [*a]\n", "  - *b\n", "<<: {a: 1}\n", "---\n", "  name: 7\n", "~\n"]
                    )
                ),
            )
        elif kind == "retype":
            key, sep, _ = lines[i].partition(":")
            if sep:
                value = data.draw(st.sampled_from(["7", "[]", "{}", "null", "true", "'x'", "-1"]))
                lines[i] = f"{key}: {value}\n"
    return "".join(lines)


EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def run_manifest_fuzz(examples: int) -> None:
    @settings(max_examples=examples, deadline=None, database=None)
    @given(st.sampled_from(EXAMPLES), st.data())
    def fuzz(path: Path, data: st.DataObject) -> None:
        text = _mutate_yaml(path.read_text(), data)
        try:
            load_pods(text, path.name)
        except ManifestError as exc:
            assert exc.causes and exc.message.startswith(path.name)
            for field_path, message in exc.causes:
                assert isinstance(field_path, str) and isinstance(message, str) and message

    fuzz()


def test_mutated_example_manifests_are_errors_naming_the_field() -> None:
    run_manifest_fuzz(300)


def run_apply_fuzz(supd: Supd, examples: int) -> None:
    """Mutated Pod objects through supd's apply op (test_manifest's mutations): each is
    created (and then deleted) or refused with a typed error; a refusal names each field
    in its details and leaves the state dir as it was."""
    from test_manifest import _mutations, base

    @settings(max_examples=examples, deadline=None, database=None)
    @given(st.lists(_mutations(), min_size=1, max_size=4))
    def fuzz(mutations: list[Any]) -> None:
        obj = base()
        obj["metadata"]["name"] = "fuzzed"
        obj["spec"]["restartPolicy"] = "Never"
        for mutate in mutations:
            with contextlib.suppress(KeyError, IndexError, TypeError):
                mutate(obj)
        before = state_of(supd)
        peer = Peer(supd.socket)
        try:
            try:
                peer.send({"id": 1, "op": "apply", "args": {"manifests": [obj]}})
            except (TypeError, ValueError, OverflowError):
                return  # msgpack cannot carry it (an int over 64 bits): never reaches supd
            frame = peer.until(1)[-1]
        finally:
            peer.close()
        check_frame(frame)
        if "error" in frame:
            assert state_of(supd) == before, frame
            causes = frame["error"]["details"].get("causes", [])
            assert all(isinstance(c.get("field"), str) for c in causes), frame
            return
        for item in frame["result"]["results"]:
            supd.ctl("delete", "pod", item["name"], "-n", item["namespace"], "--grace-period", "0")

    fuzz()


def test_mutated_pods_through_apply_are_created_or_refused(supd: Supd) -> None:
    with bounded(supd):
        run_apply_fuzz(supd, 100)


# -- path escapes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("name: good", "name: ../x", "metadata.name"),
        ("name: good", "name: a/b", "metadata.name"),
        ("name: good", "name: .", "metadata.name"),
        ("name: good", "name: " + "a" * 254, "metadata.name"),
        ("name: good", "name: good\n  namespace: ../x", "metadata.namespace"),
        ("name: good", "name: good\n  namespace: a/b", "metadata.namespace"),
        ("name: good", "name: good\n  uid: ../../x", "metadata.uid"),
        ("name: good", "name: good\n  uid: a/b", "metadata.uid"),
        ("- name: c", "- name: ../c", "spec.containers[0].name"),
        ("- name: c", "- name: c/d", "spec.containers[0].name"),
        ("{name: v, emptyDir: {}}", "{name: ../v, emptyDir: {}}", "spec.volumes[0].name"),
        ("mountPath: /v", "mountPath: /v, subPath: ../../etc", "subPath"),
        ("mountPath: /v", "mountPath: /v, subPath: a/../../etc", "subPath"),
        ("mountPath: /v", "mountPath: /v, subPath: /etc", "subPath"),
        ("mountPath: /v", "mountPath: ../v", "mountPath"),
    ],
)
def test_names_and_paths_that_would_escape_are_refused(
    supd: Supd, tmp_path: Path, old: str, new: str, field: str
) -> None:
    """Pod names, namespaces and uids become state paths (pods/NS_NAME_UID), container
    names log paths (NS_NAME_UID/CONTAINER/N.log), volume names and subPaths paths in the
    pod's dir: each is refused at apply with the field named, and nothing is written.
    hostPath volumes name host paths by design (they are not escapes) and are not here."""
    outside = sorted(str(p) for p in tmp_path.rglob("*") if "state" not in p.parts)
    with bounded(supd):
        res = supd.ctl("apply", "-f", "-", input=GOOD.replace(old, new).encode(), check=False)
        assert res.returncode == 2, res
        assert field in res.stderr, res.stderr
    assert sorted(str(p) for p in tmp_path.rglob("*") if "state" not in p.parts) == outside


def test_sub_path_through_a_symlink_stays_in_the_volume(
    supd: Supd,
    busybox_image: str,  # noqa: F811 (the fixture imported from test_fs)
) -> None:
    """A symlink planted in the volume by a container (absolute or relative, pointing out)
    is resolved beneath the volume (openat2 RESOLVE_BENEATH in the container's child), so
    the mount fails and /etc is never what the container sees."""
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: esc}
spec:
  restartPolicy: Never
  volumes: [{name: v, emptyDir: {}}]
  initContainers:
  - name: plant
    image: IMAGE
    command: [sh, -c, "ln -s ../../../../../../../etc /v/up && ln -s /etc /v/abs"]
    volumeMounts: [{name: v, mountPath: /v}]
  containers:
  - name: rel
    image: IMAGE
    command: [cat, /x/passwd]
    volumeMounts: [{name: v, mountPath: /x, subPath: up}]
  - name: abs
    image: IMAGE
    command: [cat, /x/passwd]
    volumeMounts: [{name: v, mountPath: /x, subPath: abs/}]
"""
    supd.apply(manifest.replace("IMAGE", busybox_image))

    def both_refused(obj: dict[str, Any]) -> bool:
        reasons = [
            status_of(obj, c)["state"].get("waiting", {}).get("reason") for c in ("rel", "abs")
        ]
        return reasons == ["CreateContainerError"] * 2

    obj = supd.watch_until("esc", both_refused)
    for name in ("rel", "abs"):
        message = status_of(obj, name)["state"]["waiting"]["message"]
        assert message.endswith("Invalid cross-device link"), message
    supd.ctl("delete", "pod", "esc", "--grace-period", "0")


def _layout(root: Path, index: Any) -> Path:
    root.mkdir()
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(json.dumps(index))
    return root


@pytest.mark.parametrize(
    "index",
    [[], {"manifests": [{}]}, {"manifests": "x"}, {"manifests": [{"digest": 7}]}, "x"],
    ids=["list", "no-digest", "str-manifests", "int-digest", "str"],
)
def test_malformed_image_metadata_is_an_image_error(tmp_path: Path, index: Any) -> None:
    store = ImageStore(tmp_path / "state")
    with pytest.raises(ImageError):
        store.import_image("bad", _layout(tmp_path / "layout", index))
    assert store.list() == [] and list(store.tmp.iterdir()) == []


def test_a_symlink_in_an_image_layout_is_not_followed(tmp_path: Path) -> None:
    """supd reads an import as root: `blobs -> /elsewhere` in a directory layout would
    read files outside it that the caller may not read."""
    secret = tmp_path / "secret" / "sha256"
    secret.mkdir(parents=True)
    config = b'{"config": {}}'
    import hashlib

    digest = hashlib.sha256(config).hexdigest()
    (secret / digest).write_bytes(config)
    layout = _layout(
        tmp_path / "layout",
        {"manifests": [{"digest": "sha256:" + digest}]},
    )
    (layout / "blobs").symlink_to(tmp_path / "secret")
    store = ImageStore(tmp_path / "state")
    with pytest.raises(ImageError, match="a link"):
        store.import_image("bad", layout)


OUT = "OUTSIDE"  # replaced by the absolute path of the sentinel's directory


def _members(spec: list[tuple[str, bytes, str]]) -> list[Any]:
    from test_fs import member

    return [
        (member(name, kind, link), b"data" if kind == tarfile.REGTYPE else b"")
        for name, kind, link in spec
    ]


@pytest.mark.parametrize(
    ("spec", "refused"),
    [
        ([("h", tarfile.LNKTYPE, f"{OUT}/secret")], True),
        ([("h", tarfile.LNKTYPE, "../../../../../../../../OUTSIDE_REL/secret")], True),
        ([("./../x", tarfile.REGTYPE, "")], True),
        ([("l", tarfile.SYMTYPE, OUT), ("l/secret", tarfile.REGTYPE, "")], True),
        ([("l", tarfile.SYMTYPE, OUT), ("h", tarfile.LNKTYPE, "l/secret")], True),
        ([("l", tarfile.SYMTYPE, OUT), ("l/.wh.secret", tarfile.REGTYPE, "")], True),
        ([("l", tarfile.SYMTYPE, OUT), ("l/sub", tarfile.DIRTYPE, "")], True),
        ([("f", tarfile.SYMTYPE, f"{OUT}/secret"), ("f", tarfile.REGTYPE, "")], False),
        ([("l", tarfile.SYMTYPE, OUT), ("l", tarfile.DIRTYPE, "")], False),
        ([("f", tarfile.SYMTYPE, f"{OUT}/secret"), ("h", tarfile.LNKTYPE, "f")], False),
    ],
    ids=[
        "hardlink-absolute",
        "hardlink-dotdot",
        "name-dotdot",
        "write-through-symlink",
        "hardlink-through-symlink",
        "whiteout-through-symlink",
        "dir-through-symlink",
        "file-over-symlink",
        "dir-over-symlink",
        "hardlink-to-symlink",
    ],
)
def test_image_layers_never_touch_what_is_outside(
    tmp_path: Path, spec: list[tuple[str, bytes, str]], refused: bool
) -> None:
    """Each layer either fails with an ImageError or is unpacked contained (a member over a
    symlink replaces the link, a hard link to a symlink links the link): the file and the
    directory outside are as they were, link count included."""
    require_root()
    from test_fs import tar_bytes

    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret"
    secret.write_text("keep\n")
    before = (secret.stat().st_nlink, secret.stat().st_mtime_ns, sorted(os.listdir(outside)))
    spec = [(n, k, link.replace(OUT, str(outside))) for n, k, link in spec]
    (tmp_path / "layer.tar").write_bytes(tar_bytes(None, _members(spec)))
    store = ImageStore(tmp_path / "state")
    if refused:
        with pytest.raises(ImageError):
            store.import_image("bad", tmp_path / "layer.tar")
        assert list(store.layers_dir.iterdir()) == []
    else:
        image = store.import_image("ok", tmp_path / "layer.tar")
        layer = store.layer_path(image.layers[0])
        # the later member replaced the link (file, dir), or the hard link is to the link
        kinds = {
            p.name: "link" if p.is_symlink() else "dir" if p.is_dir() else "file"
            for p in layer.iterdir()
        }
        assert kinds in ({"f": "file"}, {"l": "dir"}, {"f": "link", "h": "link"}), kinds
    assert list(store.tmp.iterdir()) == []
    assert secret.read_text() == "keep\n"
    assert (
        secret.stat().st_nlink,
        secret.stat().st_mtime_ns,
        sorted(os.listdir(outside)),
    ) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer.tar", "outside", "state"]


@pytest.mark.parametrize("path", ["/dev/zero", "fifo"])
def test_devices_and_fifos_are_not_imported(tmp_path: Path, path: str) -> None:
    """/dev/zero made the import thread hash zeros forever; a FIFO blocked it."""
    if path == "fifo":
        os.mkfifo(tmp_path / "fifo")
        path = str(tmp_path / "fifo")
    store = ImageStore(tmp_path / "state")
    with pytest.raises(ImageError, match="not a directory or a regular file"):
        store.import_image("z", path)


# -- who may talk to supd: a real second user -------------------------------------------------


@pytest.fixture
def second_user() -> Iterator[tuple[str, int, int, str, int]]:
    """A real system user and a group it is not in (both removed afterwards):
    (user, uid, primary gid, extra group, its gid)."""
    require_root()
    tag = secrets.token_hex(3)
    user, group = f"suptest{tag}", f"supgrp{tag}"
    subprocess.run(["groupadd", "--system", group], check=True)
    try:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                user,
            ],
            check=True,
        )
        try:
            import grp
            import pwd

            pw = pwd.getpwnam(user)
            yield user, pw.pw_uid, pw.pw_gid, group, grp.getgrnam(group).gr_gid
        finally:
            subprocess.run(["userdel", user], check=True)
    finally:
        subprocess.run(["groupdel", group], check=False)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="supd-peer-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d)


def ctl_as(
    uid: int, gid: int, groups: list[int], sock: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], int]:
    """supctl as another user, and its pid: setpriv sets the real and effective ids and
    groups, then execs supctl in the same process."""
    extra = [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
    argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", *extra, SUPCTL, "--socket", str(sock)]
    proc = subprocess.Popen(
        [*argv, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), proc.pid


def test_other_users_are_refused_and_the_socket_group_is_let_in(
    tmp_path: Path, open_dir: Path, second_user: tuple[str, int, int, str, int]
) -> None:
    _user, uid, gid, group, group_gid = second_user
    d = Supd(socket=open_dir / "supd.sock", state_dir=tmp_path / "state")
    d.start()
    try:
        st = os.stat(d.socket)
        assert (st.st_mode & 0o777, st.st_uid) == (0o600, 0)
        res, _ = ctl_as(uid, gid, [], d.socket, "get", "pods")
        assert res.returncode == 1 and "permission denied" in res.stderr  # the kernel's no
        # With the mode opened by hand, SO_PEERCRED is what refuses.
        os.chmod(d.socket, 0o666)
        res, pid = ctl_as(uid, gid, [], d.socket, "get", "pods")
        assert res.returncode == 1, res
        assert f"uid {uid} may not use supd: only root, uid 0 may connect" in res.stderr
        d.ctl("get", "pods")  # root still is served
    finally:
        finish_supd(d, tmp_path)
    log = (tmp_path / "supd.log").read_text()
    assert f"refused connection from pid {pid} uid {uid} gid {gid}: not root, uid 0" in log

    (tmp_path / "state2").mkdir()
    d = Supd(socket=open_dir / "supd.sock", state_dir=tmp_path / "state2")
    d.start("--socket-group", group)
    try:
        st = os.stat(d.socket)
        assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o660, 0, group_gid)
        res, _ = ctl_as(uid, gid, [group_gid], d.socket, "get", "pods")  # a supplementary group
        assert res.returncode == 0, res.stderr
        res, _ = ctl_as(uid, group_gid, [], d.socket, "get", "pods")  # the primary group
        assert res.returncode == 0, res.stderr
        os.chmod(d.socket, 0o666)
        res, _ = ctl_as(uid, gid, [], d.socket, "get", "pods")  # not in the group
        assert res.returncode == 1, res
        assert f"only root, uid 0 and group {group_gid} may connect" in res.stderr
    finally:
        finish_supd(d, tmp_path)
