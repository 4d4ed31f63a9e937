"""EXEC: processes started by infra inside a running container, driven through real frames
on a real socketpair (the fixtures of native_helpers)."""

from __future__ import annotations

import errno
import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest
from native_helpers import (
    ENV,
    POD_FLAGS,
    infra,
    no_leaks,
    read_all,
    wait_readable,
)

from supervisor import _native

__all__ = ["infra", "no_leaks"]

EXEC = _native.STEPS.index("exec")
FRAME = _native.STEPS.index("frame")
SLOT = _native.STEPS.index("slot")
NS = ("mnt", "pid", "net", "ipc", "uts")
SHOW_NS = "for ns in " + " ".join(NS) + "; do readlink /proc/self/ns/$ns; done"


def send_exec(
    pod: Any,
    eid: int,
    cid: int,
    argv: list[str],
    fds: list[int],
    *,
    env: list[str] | None = None,
    cwd: str | None = "/",
    tty: bool = False,
) -> None:
    frame = _native.encode_exec(eid, cid, argv, ENV if env is None else env, cwd, tty=tty)
    socket.send_fds(pod.sock, [frame], fds)


def exec_output(pod: Any, eid: int, cid: int, argv: list[str], **kwargs: Any) -> int:
    """Start an exec with stdin /dev/null and stdout+stderr on a pipe; its read end."""
    r, w = os.pipe()
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        send_exec(pod, eid, cid, argv, [null, w, w], **kwargs)
    finally:
        os.close(w)
        os.close(null)
    return r


def run_exec(pod: Any, eid: int, cid: int, argv: list[str], **kwargs: Any) -> tuple[int, str]:
    """Exec to completion: (wait status, output)."""
    out = exec_output(pod, eid, cid, argv, **kwargs)
    report = pod.report()
    if report[0] != "exec_started":
        os.close(out)
        raise AssertionError(report)
    assert report[1] == eid and report[2] > 0
    text = read_all(out).decode()
    exited = pod.expect("exec_exited", eid)
    return exited[2], text


def running_container(pod: Any, cid: int = 1, **kwargs: Any) -> list[str]:
    """A container that reports its namespaces on a fifo, then sleeps: the namespaces."""
    fifo = pod.tmp / f"ns{cid}"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        pod.start(cid, ["sh", "-c", f"({SHOW_NS}) > {fifo}; exec sleep 1000"], **kwargs)
        pod.expect("started", cid)
    except BaseException:
        os.close(reader)
        raise
    return read_all(reader).decode().split()


def infra_fds(pod: Any) -> list[str]:
    return sorted(
        os.readlink(f"/proc/{pod.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pod.pid}/fd")
    )


def test_exec_joins_the_container_namespaces(infra: Any) -> None:
    pod = infra()
    container_ns = running_container(pod)
    status, out = run_exec(pod, 1, 1, ["sh", "-c", SHOW_NS])
    assert status == 0
    inside = out.split()
    assert inside == container_ns
    host = [os.readlink(f"/proc/self/ns/{ns}") for ns in NS]
    assert all(a != b for a, b in zip(inside, host, strict=True)), (inside, host)
    infra_ns = [os.readlink(f"/proc/{pod.pid}/ns/{ns}") for ns in NS]
    assert inside[2:] == infra_ns[2:]  # the pod's net, ipc and uts
    assert inside[:2] != infra_ns[:2]  # the container's own mount and PID namespaces
    assert pod.shutdown() == 0


def test_exec_sees_the_container_pid_namespace_and_proc(infra: Any) -> None:
    pod = infra()
    pod.start(1, ["sleep", "1000"])
    pod.expect("started", 1)  # after its execve: PID 1 of its namespace is sleep
    status, out = run_exec(pod, 1, 1, ["sh", "-c", "echo $$; cat /proc/1/comm; hostname"])
    assert status == 0
    pid, comm, hostname = out.split()
    assert int(pid) > 1 and comm == "sleep" and hostname == "pod"
    assert pod.shutdown() == 0


def test_exec_in_a_shared_pid_namespace(infra: Any) -> None:
    pod = infra(POD_FLAGS | _native.CLONE_NEWPID)
    container_ns = running_container(pod, clone_flags=_native.CLONE_NEWNS)
    status, out = run_exec(pod, 1, 1, ["sh", "-c", SHOW_NS])
    assert status == 0 and out.split() == container_ns
    assert out.split()[1] == os.readlink(f"/proc/{pod.pid}/ns/pid")
    assert pod.shutdown() == 0


def test_exec_env_cwd_and_the_container_ids(infra: Any) -> None:
    pod = infra()
    pod.start(1, ["sleep", "1000"], uid=65534, gid=65534, groups=[65534, 100])
    pod.expect("started", 1)
    status, out = run_exec(
        pod, 1, 1, ["sh", "-c", "pwd; echo $GREETING; id -u; id -g; id -G"],
        env=[*ENV, "GREETING=hi"], cwd="/tmp",
    )  # fmt: skip
    assert status == 0
    assert out.split("\n") == ["/tmp", "hi", "65534", "65534", "65534 100", ""]
    assert pod.shutdown() == 0


@pytest.mark.parametrize(
    ("command", "code"),
    [("exit 0", 0), ("exit 3", 3), ("kill -TERM $$", 128 + signal.SIGTERM)],
)
def test_exec_exit_status(infra: Any, command: str, code: int) -> None:
    pod = infra()
    running_container(pod)
    status, _ = run_exec(pod, 1, 1, ["sh", "-c", command])
    assert _native.exit_code(status) == code
    assert pod.shutdown() == 0


def test_exec_that_cannot_start(infra: Any, tmp_path: Path) -> None:
    pod = infra()
    running_container(pod)
    r = exec_output(pod, 1, 1, ["/nope"])
    report = pod.expect("exec_failed", 1)
    assert report[2:] == (EXEC, errno.ENOENT)
    err = _native.spawn_error(report[2], report[3], "/nope")
    assert (str(err), err.exit_code) == ("exec /nope: No such file or directory", 127)
    assert read_all(r) == b""
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    r = exec_output(pod, 2, 1, [str(script)])  # not executable
    report = pod.expect("exec_failed", 2)
    assert report[2:] == (EXEC, errno.EACCES)
    assert _native.spawn_error(report[2], report[3], str(script)).exit_code == 126
    os.close(r)
    r = exec_output(pod, 3, 1, ["true"], cwd="/does/not/exist")
    report = pod.expect("exec_failed", 3)
    assert str(_native.spawn_error(report[2], report[3], "true", "/does/not/exist")) == (
        "chdir /does/not/exist: No such file or directory"
    )
    os.close(r)
    assert pod.shutdown() == 0
    assert [r for r in pod.reports if r[0] == "exec_exited"] == []


def test_exec_signal_by_eid_and_group(infra: Any) -> None:
    pod = infra()
    running_container(pod)
    out = exec_output(pod, 1, 1, ["sleep", "1000"])
    pod.expect("exec_started", 1)
    pod.send(_native.encode_exec_signal(99, signal.SIGKILL))  # unknown eid: ignored
    pod.send(_native.encode_exec_signal(1, signal.SIGKILL))
    assert _native.exit_code(pod.expect("exec_exited", 1)[2]) == 137
    assert read_all(out) == b""
    # A group signal reaches the exec's children too: the pipe they hold reaches EOF.
    out = exec_output(pod, 2, 1, ["sh", "-c", "sleep 1000 & echo up; wait"])
    pod.expect("exec_started", 2)
    wait_readable(out)
    assert os.read(out, 100) == b"up\n"
    pod.send(_native.encode_exec_signal(2, signal.SIGTERM, group=True))
    assert _native.exit_code(pod.expect("exec_exited", 2)[2]) == 128 + signal.SIGTERM
    assert read_all(out) == b""
    assert pod.shutdown() == 0


def test_exec_into_a_missing_container_or_a_duplicate_eid(infra: Any) -> None:
    pod = infra()
    r = exec_output(pod, 1, 5, ["true"])  # no container 5
    assert pod.expect("exec_failed", 1)[2:] == (SLOT, errno.ESRCH)
    os.close(r)
    pod.start(2, ["true"])
    pod.expect("started", 2)
    pod.expect("exited", 2)
    r = exec_output(pod, 2, 2, ["true"])  # container 2 has exited
    assert pod.expect("exec_failed", 2)[2:] == (SLOT, errno.ESRCH)
    os.close(r)
    running_container(pod, 3)
    r1 = exec_output(pod, 3, 3, ["sleep", "1000"])
    pod.expect("exec_started", 3)
    r2 = exec_output(pod, 3, 3, ["true"])
    assert pod.expect("exec_failed", 3)[2:] == (SLOT, errno.EEXIST)
    os.close(r2)
    assert pod.shutdown() == 0
    assert {pod.report()[0], pod.report()[0]} == {"exited", "exec_exited"}
    os.close(r1)


def test_exec_dies_with_its_container(infra: Any) -> None:
    pod = infra()
    running_container(pod)
    out = exec_output(pod, 1, 1, ["sleep", "1000"])
    pod.expect("exec_started", 1)
    pod.send(_native.encode_signal(1, signal.SIGKILL))
    by_kind = {r[0]: r for r in (pod.report(), pod.report())}
    assert _native.exit_code(by_kind["exited"][3]) == 137
    # The container was PID 1 of the exec's PID namespace: the kernel kills the rest.
    assert _native.exit_code(by_kind["exec_exited"][2]) == 137
    assert read_all(out) == b""
    assert pod.shutdown() == 0


def test_exec_slots_are_bounded(infra: Any) -> None:
    pod = infra()
    running_container(pod)
    pipes = [exec_output(pod, eid, 1, ["sleep", "1000"]) for eid in range(1, 65)]
    for eid in range(1, 65):
        pod.expect("exec_started", eid)
    r = exec_output(pod, 65, 1, ["true"])
    assert pod.expect("exec_failed", 65)[2:] == (SLOT, errno.EAGAIN)
    os.close(r)
    pod.send(_native.encode_exec_signal(10, signal.SIGKILL))
    pod.expect("exec_exited", 10)
    status, _ = run_exec(pod, 66, 1, ["true"])  # a freed slot is reused
    assert status == 0
    # Shutdown kills and reports every exec'd process before infra exits.
    assert pod.shutdown() == 0
    while True:
        frame = pod.sock.recv(100)
        if not frame:
            break
        pod.reports.append(_native.decode_report(frame))
    exited = {r[1] for r in pod.reports if r[0] == "exec_exited"}
    assert exited == set(range(1, 65)) | {66}
    for fd in pipes:
        os.close(fd)


def test_exec_with_a_pty_gets_a_controlling_terminal(infra: Any) -> None:
    pod = infra()
    running_container(pod)
    master, slave = os.openpty()
    try:
        rdev = os.fstat(slave).st_rdev
        send_exec(
            pod,
            1,
            1,
            ["sh", "-c", "tty; read a b c d e f g rest < /proc/self/stat; echo $g; exit 4"],
            [slave, slave, slave],
            tty=True,
        )
        os.close(slave)
        pod.expect("exec_started", 1)
        out = b""
        while True:
            wait_readable(master)
            try:
                data = os.read(master, 4096)
            except OSError as e:  # EIO: every slave fd is closed
                assert e.errno == errno.EIO
                break
            out += data
        assert _native.exit_code(pod.expect("exec_exited", 1)[2]) == 4
    finally:
        os.close(master)
    name, tty_nr = out.decode().split()
    major, minor = os.major(rdev), os.minor(rdev)
    assert name == f"/dev/pts/{minor}"
    assert int(tty_nr) == (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)
    assert pod.shutdown() == 0


def test_malformed_exec_frames_are_rejected_without_harm(infra: Any) -> None:
    pod = infra()
    running_container(pod)
    good = _native.encode_exec(5, 1, ["true"], [], "/")
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    before = infra_fds(pod)
    try:
        pod.send(good)  # no fds
        assert pod.expect("exec_failed", 5)[2:] == (FRAME, errno.EBADF)
        socket.send_fds(pod.sock, [good], [null])  # one fd
        assert pod.expect("exec_failed", 5)[2:] == (FRAME, errno.EINVAL)
        socket.send_fds(pod.sock, [good], [null] * 9)  # more than infra keeps
        assert pod.expect("exec_failed", 5)[2:] == (FRAME, errno.EINVAL)
        socket.send_fds(pod.sock, [good[:-1]], [null] * 3)  # blob not NUL-terminated
        assert pod.expect("exec_failed", 5)[2:] == (FRAME, errno.EINVAL)
        socket.send_fds(pod.sock, [good + b"\0" * 70000], [null] * 3)  # over FRAME_MAX
        assert pod.expect("exec_failed", 5)[2:] == (FRAME, errno.E2BIG)
        bad_flags = bytearray(good)
        bad_flags[12:16] = (0x80).to_bytes(4, "little")
        socket.send_fds(pod.sock, [bytes(bad_flags)], [null] * 3)
        assert pod.expect("exec_failed", 5)[2:] == (FRAME, errno.EINVAL)
        bad_count = bytearray(good)
        bad_count[16:20] = (5000).to_bytes(4, "little")
        socket.send_fds(pod.sock, [bytes(bad_count)], [null] * 3)
        assert pod.expect("exec_failed", 5)[2:] == (FRAME, errno.E2BIG)
        pod.send(_native.encode_exec_signal(5, 9)[:12])  # short signal frame: ignored
        socket.send_fds(pod.sock, [b"\x63\0\0\0\5\0\0\0"], [null])  # unknown, with an fd
        socket.send_fds(pod.sock, [good], [null] * 3)  # and it still works
        pod.expect("exec_started", 5)
        assert pod.expect("exec_exited", 5)[2] == 0
    finally:
        os.close(null)
    assert infra_fds(pod) == before  # every fd that came with a frame was closed
    assert pod.shutdown() == 0


def test_no_fd_or_zombie_left_in_infra(infra: Any) -> None:
    pod = infra()
    idle = infra_fds(pod)
    running_container(pod)
    with_container = infra_fds(pod)
    assert len(with_container) == len(idle) + 4  # stdout, stderr, log, pidfd
    for eid in range(1, 21):
        status, _ = run_exec(pod, eid, 1, ["true"])
        assert status == 0
    assert infra_fds(pod) == with_container
    children = Path(f"/proc/{pod.pid}/task/{pod.pid}/children").read_text().split()
    assert len(children) == 1  # the container only: every exec'd process was reaped
    pod.send(_native.encode_signal(1, signal.SIGKILL))
    pod.expect("exited", 1)
    assert infra_fds(pod) == idle  # the container's pidfd is closed once it is reaped
    assert pod.shutdown() == 0


def capture(pod: Any, eid: int, cid: int, argv: list[str], **kwargs: Any) -> None:
    """Send an EXEC_CAPTURE: no fds, the infra reads the output itself."""
    pod.send(_native.encode_exec(eid, cid, argv, ENV, "/", capture=True, **kwargs))


def test_captured_exec_output_comes_with_its_exit(infra: Any) -> None:
    pod = infra()
    running_container(pod)
    with_container = infra_fds(pod)
    capture(pod, 1, 1, ["sh", "-c", "echo out; echo err >&2; [ -t 0 ] || read x; exit 3"])
    report = pod.report()  # the one report: no exec_started
    assert report[:2] == ("exec_exited", 1)
    assert os.WEXITSTATUS(report[2]) == 3
    assert report[3] == b"out\nerr\n"  # stdout and stderr on one pipe; stdin at EOF
    # Past the cap the output is read and dropped: the writer never blocks.
    capture(pod, 2, 1, ["sh", "-c", "echo start; head -c 300000 /dev/zero; echo end"])
    _, _, status, out = pod.expect("exec_exited", 2)
    assert status == 0 and len(out) == _native.CAPTURE_LIMIT == 10240
    assert out == b"start\n" + bytes(10240 - 6)
    # A leftover child holding the pipe does not hold back the report, nor an fd.
    capture(pod, 3, 1, ["sh", "-c", "echo parent; (sleep 1000 &) ; exit 0"])
    assert pod.expect("exec_exited", 3)[2:] == (0, b"parent\n")
    # A command that cannot start: exec_failed alone, and the slot and pipe are let go.
    capture(pod, 4, 1, ["/nope"])
    assert pod.expect("exec_failed", 4)[2:] == (EXEC, errno.ENOENT)
    for eid in range(5, 5 + 70):  # more than the 64 exec slots: each is freed once sent
        capture(pod, eid, 1, ["true"])
        assert pod.expect("exec_exited", eid)[2:] == (0, b"")
    assert infra_fds(pod) == with_container
    assert pod.shutdown() == 0


def test_captured_exec_frames_carry_no_fds(infra: Any) -> None:
    pod = infra()
    running_container(pod)
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    before = infra_fds(pod)
    try:
        frame = _native.encode_exec(9, 1, ["true"], [], "/", capture=True)
        socket.send_fds(pod.sock, [frame], [null] * 3)
        assert pod.expect("exec_failed", 9)[2:] == (FRAME, errno.EINVAL)
        both = bytearray(frame)
        both[12:16] = (1 | 4).to_bytes(4, "little")  # EXEC_TTY | EXEC_CAPTURE
        pod.send(bytes(both))
        assert pod.expect("exec_failed", 9)[2:] == (FRAME, errno.EINVAL)
    finally:
        os.close(null)
    assert infra_fds(pod) == before
    with pytest.raises(ValueError, match="tty"):
        _native.encode_exec(1, 1, ["true"], [], None, tty=True, capture=True)
    assert pod.shutdown() == 0


def test_captured_exec_timeout_kill_by_eid(infra: Any) -> None:
    pod = infra()
    running_container(pod)
    capture(pod, 1, 1, ["sh", "-c", "echo up; exec sleep 1000"])
    pod.send(_native.encode_exec_signal(1, signal.SIGKILL, group=True))
    _, _, status, out = pod.expect("exec_exited", 1)
    assert os.WTERMSIG(status) == signal.SIGKILL
    assert out in (b"", b"up\n")  # the kill may come before the echo
    assert pod.shutdown() == 0


def test_exec_encoders_and_reports() -> None:
    with pytest.raises(ValueError):
        _native.encode_exec(1, 1, [], [], None)
    with pytest.raises(ValueError):
        _native.encode_exec(1, 1, "ls", [], None)
    with pytest.raises(ValueError):
        _native.encode_exec(1, 1, ["x\0"], [], None)
    with pytest.raises(ValueError):
        _native.encode_exec(1, 1, ["x"] * 4097, [], None)
    with pytest.raises(ValueError):
        _native.encode_exec(1, 1, ["x" * 70000], [], None)
    with pytest.raises(ValueError):
        _native.encode_exec_signal(1, 0)
    frame = _native.encode_exec(7, 3, ["a", "b"], ["K=V"], "/srv", tty=True)
    words = [int.from_bytes(frame[i : i + 4], "little") for i in range(0, 28, 4)]
    assert words == [4, 7, 3, 3, 2, 1, len(b"a\0b\0K=V\0/srv\0")]
    assert frame[28:] == b"a\0b\0K=V\0/srv\0"
    signal_frame = _native.encode_exec_signal(7, 9, group=True)
    assert signal_frame == b"\x05\0\0\0\x07\0\0\0\x09\0\0\0\x01\0\0\0"

    def report(kind: int, eid: int, a: int, b: int = 0, ns: int = 0, size: int = 32) -> bytes:
        body = b"".join(v.to_bytes(4, "little", signed=True) for v in (kind, eid, a, b))
        seq = (5).to_bytes(8, "little")  # every report ends with its seq
        return (body + ns.to_bytes(8, "little"))[: size - 8] + seq

    assert _native.decode_report(report(20, 7, 42)) == ("exec_started", 7, 42)
    assert _native.decode_report(report(21, 7, 13, 2, size=24)) == ("exec_failed", 7, 13, 2)
    assert _native.decode_report(report(22, 7, 42, 9 << 8)) == ("exec_exited", 7, 9 << 8)
    assert _native.report_seq(report(21, 7, 13, 2, size=24)) == 5
    frame = _native.encode_exec(7, 3, ["a"], [], None, capture=True)
    assert int.from_bytes(frame[12:16], "little") == 4  # EXEC_CAPTURE
    captured = report(25, 7, 42, 9 << 8, ns=1)[:24] + b"hi" + (5).to_bytes(8, "little")
    assert _native.decode_report(captured) == ("exec_exited", 7, 9 << 8, b"hi")
    assert _native.report_seq(captured) == 5
    too_long = captured[:24] + bytes(10241) + captured[-8:]
    with pytest.raises(ValueError):
        _native.decode_report(too_long)
    for bad in (report(20, 7, 42, size=24), report(21, 7, 1), report(22, 7, 1, size=28)):
        with pytest.raises(ValueError):
            _native.decode_report(bad)
