"""The infra factory (zygote): infras cloned on SPAWN frames, replies, reaping, limits."""

from __future__ import annotations

import array
import errno
import os
import secrets
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from native_helpers import POD_FLAGS, require_root, wait_exit, wait_readable

from supervisor import _native, cgroups

pytestmark = pytest.mark.root


def rights(*fds: int) -> list[tuple[int, int, bytes]]:
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]


def recv_reply(sock: socket.socket) -> tuple[tuple[Any, ...], list[int]]:
    wait_readable(sock.fileno())
    frame, anc, _flags, _addr = sock.recvmsg(64, socket.CMSG_SPACE(16))
    fds = array.array("i")
    for _level, _kind, data in anc:
        fds.frombytes(data[: len(data) - len(data) % 4])
    return _native.decode_zygote_reply(frame), list(fds)


@pytest.fixture
def zygote() -> Iterator[tuple[socket.socket, int, int]]:
    require_root()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid, pidfd = _native.start_zygote(theirs.fileno())
    theirs.close()
    try:
        yield ours, pid, pidfd
    finally:
        ours.close()  # the zygote exits when supd's end hangs up
        assert os.WIFEXITED(wait_exit(pidfd)), "the zygote must exit on hang-up"


def spawn(z: socket.socket, rid: int, hostname: str = "pod", cgroup: int = -1) -> tuple[Any, ...]:
    """SPAWN one infra (into the cgroup v2 directory `cgroup` when >= 0): (reply, pidfd,
    infra socket, error pipe read end)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    r, w = os.pipe2(os.O_CLOEXEC)
    frame = _native.encode_zygote_spawn(rid, POD_FLAGS, hostname, cgroup=cgroup >= 0)
    extra = (cgroup,) if cgroup >= 0 else ()
    z.sendmsg([frame], rights(theirs.fileno(), w, *extra))
    theirs.close()
    os.close(w)
    reply, fds = recv_reply(z)
    return reply, fds, ours, r


def test_spawns_a_serving_infra_and_reports_its_exit(zygote: Any) -> None:
    z, zpid, _ = zygote
    assert Path(f"/proc/{zpid}/comm").read_text().strip() == "supd-zygote"
    reply, fds, ours, r = spawn(z, 7, "web-0")
    try:
        assert reply[:2] == ("spawned", 7) and reply[2] > 0 and reply[3] == 0
        assert len(fds) == 1
        infra_pid = reply[2]
        assert os.read(r, 8) == b""  # EOF, no record: set up and serving
        assert Path(f"/proc/{infra_pid}/comm").read_text().strip() == "supd-infra"
        ppid = int(Path(f"/proc/{infra_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert ppid == zpid
    finally:
        os.close(r)
        ours.send(_native.encode_shutdown())
    wait_readable(fds[0])  # the pidfd polls readable at exit, though not our child
    with pytest.raises(ChildProcessError):
        _native.waitid_pidfd(fds[0])
    os.close(fds[0])
    reply, extra = recv_reply(z)
    assert reply[:2] == ("exited", infra_pid) and os.WIFEXITED(reply[2]) and extra == []
    ours.close()


def test_infras_outlive_the_zygote(zygote: Any) -> None:
    """A zygote that goes (supd went) leaves its infras serving, reparented like orphans."""
    z, _, zpidfd = zygote
    reply, fds, ours, r = spawn(z, 2)
    try:
        assert os.read(r, 8) == b""  # set up
        z.shutdown(socket.SHUT_RDWR)
        wait_readable(zpidfd)
        assert Path(f"/proc/{reply[2]}/comm").read_text().strip() == "supd-infra"
    finally:
        os.close(r)
        ours.send(_native.encode_shutdown())
        wait_readable(fds[0])
        os.close(fds[0])
        ours.close()


def test_an_infra_is_cloned_into_its_cgroup_v2_directory(zygote: Any) -> None:
    """With a cgroup v2 directory in the SPAWN frame the infra starts life there (clone3
    CLONE_INTO_CGROUP): no move into it afterwards, which would wait on the kernel's
    cgroup lock."""
    z, _, _ = zygote
    unified = next((m for m in cgroups.mounts() if m.version == 2), None)
    if unified is None:
        pytest.fail("this machine has no cgroup2 mount to test with")
    own = cgroups.own_cgroups().get("", "/")
    name = "zygote-test-" + secrets.token_hex(4)
    directory = unified.path / own.lstrip("/") / name
    directory.mkdir()
    dirfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        reply, fds, ours, r = spawn(z, 3, "cg", cgroup=dirfd)
        assert reply[:2] == ("spawned", 3) and reply[2] > 0, reply
        assert os.read(r, 8) == b""
        lines = Path(f"/proc/{reply[2]}/cgroup").read_text().splitlines()
        assert f"0::{os.path.join(own, name)}" in lines
        os.close(r)
        ours.send(_native.encode_shutdown())
        wait_readable(fds[0])
        os.close(fds[0])
        assert recv_reply(z)[0][:2] == ("exited", reply[2])
        ours.close()
    finally:
        os.close(dirfd)
        directory.rmdir()


def test_malformed_frames_get_einval_and_no_fd_is_kept(zygote: Any) -> None:
    z, zpid, _ = zygote
    before = len(os.listdir(f"/proc/{zpid}/fd"))
    r, w = os.pipe()
    z.sendmsg([b"\x01\x00\x00\x00\x05\x00\x00\x00"], rights(r, w))  # SPAWN, too short
    reply, fds = recv_reply(z)
    assert reply == ("spawned", 5, -1, errno.EINVAL) and fds == []
    frame = bytearray(_native.encode_zygote_spawn(6, POD_FLAGS, "x"))
    frame[8:16] = struct.pack("<Q", 1 << 40)  # not a CLONE_NEW* flag
    z.sendmsg([bytes(frame)], rights(r, w))
    assert recv_reply(z)[0] == ("spawned", 6, -1, errno.EINVAL)
    z.sendmsg([_native.encode_zygote_spawn(8, POD_FLAGS, "x")], rights(r))  # one fd short
    assert recv_reply(z)[0] == ("spawned", 8, -1, errno.EINVAL)
    frame = _native.encode_zygote_spawn(9, POD_FLAGS, "x", cgroup=True)
    z.sendmsg([frame], rights(r, w))  # a cgroup directory announced, none sent
    assert recv_reply(z)[0] == ("spawned", 9, -1, errno.EINVAL)
    frame = bytearray(_native.encode_zygote_spawn(10, POD_FLAGS, "x"))
    frame[88:92] = struct.pack("<I", 4)  # an extra nobody knows
    z.sendmsg([bytes(frame)], rights(r, w))
    assert recv_reply(z)[0] == ("spawned", 10, -1, errno.EINVAL)
    os.close(r)
    os.close(w)
    assert len(os.listdir(f"/proc/{zpid}/fd")) == before


def test_encoder_limits() -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        _native.encode_zygote_spawn(1, POD_FLAGS, "x" * 65)
    with pytest.raises(ValueError, match="CLONE_NEWUTS"):
        _native.encode_zygote_spawn(1, _native.CLONE_NEWNET, "x")
    with pytest.raises(ValueError, match="only CLONE_NEW"):
        _native.encode_zygote_spawn(1, 1 << 40, "")
    with pytest.raises(ValueError):
        _native.decode_zygote_reply(b"\x09" * 16)
