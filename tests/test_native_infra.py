"""The pod infra process, driven through real frames on a real SOCK_SEQPACKET socketpair."""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from native_helpers import (
    CONTAINER_FLAGS,
    ENV,
    POD_FLAGS,
    cri_lines,
    infra,
    no_leaks,
    read_all,
    run,
    wait_exit,
    wait_readable,
)

from supervisor import _native

__all__ = ["infra", "no_leaks"]

CRI_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
EXEC = _native.STEPS.index("exec")
FRAME = _native.STEPS.index("frame")


def test_start_then_exit_with_status_and_cri_log(infra: Any) -> None:
    pod = infra()
    log = pod.start(1, ["sh", "-c", "echo one; echo two; echo oops >&2; printf partial; exit 3"])
    started = pod.expect("started", 1)
    exited = pod.expect("exited", 1)
    assert exited[2] == started[2] > 0
    assert _native.exit_code(exited[3]) == 3
    assert started[3] <= exited[4]
    lines = cri_lines(log)
    assert all(CRI_TIME.match(ts) for ts, *_ in lines), lines
    out = [(tag, msg) for _, stream, tag, msg in lines if stream == "stdout"]
    err = [(tag, msg) for _, stream, tag, msg in lines if stream == "stderr"]
    assert out == [("F", "one"), ("F", "two"), ("P", "partial")]
    assert err == [("F", "oops")]
    assert pod.shutdown() == 0


def test_log_timestamps_are_utc_now(infra: Any) -> None:
    pod = infra()
    before = datetime.now(UTC)
    log = pod.start(1, ["echo", "hi"])
    pod.expect("started", 1)
    pod.expect("exited", 1)
    ((ts, stream, tag, msg),) = cri_lines(log)
    when = datetime.strptime(ts[:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert (stream, tag, msg) == ("stdout", "F", "hi")
    assert before.replace(microsecond=0) <= when <= datetime.now(UTC)


def test_cri_timestamp_formatter() -> None:
    for ns in (
        0,
        1,
        951782399_999999999,
        951782400_000000000,
        1709251199_123456789,
        4102444800_000000001,
        1795349999_000000500,
    ):
        secs, frac = divmod(ns, 10**9)
        expected = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        assert _native._cri_timestamp(ns) == f"{expected}.{frac:09d}Z"


def test_start_failed_exec_not_found_and_no_exit_report(infra: Any) -> None:
    pod = infra()
    pod.start(9, ["/nope/nginx"])
    report = pod.expect("start_failed", 9)
    assert report[2:] == (EXEC, errno.ENOENT)
    err = _native.spawn_error(report[2], report[3], "/nope/nginx")
    assert (str(err), err.exit_code) == ("exec /nope/nginx: No such file or directory", 127)
    pod.start(10, ["true"])
    assert pod.expect("started", 10)
    pod.expect("exited", 10)
    assert pod.shutdown() == 0
    assert [r for r in pod.reports if r[0] == "exited" and r[1] == 9] == []


def test_start_failed_chdir(infra: Any) -> None:
    pod = infra()
    pod.start(2, ["true"], cwd="/does/not/exist")
    report = pod.expect("start_failed", 2)
    assert str(_native.spawn_error(report[2], report[3], "true", "/does/not/exist")) == (
        "chdir /does/not/exist: No such file or directory"
    )


def test_signal_frame_gives_128_plus_n(infra: Any) -> None:
    pod = infra()
    pod.start(1, ["sleep", "100"])
    pod.expect("started", 1)
    pod.send(_native.encode_signal(1, signal.SIGKILL))
    assert _native.exit_code(pod.expect("exited", 1)[3]) == 137


def test_group_sigterm_in_a_shared_pid_namespace(infra: Any) -> None:
    # Not PID 1 of its own namespace, the container gets SIGTERM's default action.
    pod = infra(POD_FLAGS | _native.CLONE_NEWPID)
    pod.start(1, ["sh", "-c", "sleep 100 & wait"], clone_flags=_native.CLONE_NEWNS)
    pod.expect("started", 1)
    pod.send(_native.encode_signal(1, signal.SIGTERM, group=True))
    assert _native.exit_code(pod.expect("exited", 1)[3]) == 128 + signal.SIGTERM
    pod.send(_native.encode_signal(77, signal.SIGTERM))  # unknown container: ignored
    assert pod.shutdown() == 0


def test_shutdown_kills_reports_and_exits_zero(infra: Any) -> None:
    pod = infra()
    pod.start(1, ["sleep", "100"])
    pod.start(2, ["sleep", "100"])
    pod.expect("started", 1)
    pod.expect("started", 2)
    assert pod.shutdown() == 0
    exits: dict[int, int] = {}
    while len(exits) < 2:
        report = pod.report()
        exits[report[1]] = report[3]
    assert {cid: _native.exit_code(s) for cid, s in exits.items()} == {1: 137, 2: 137}
    assert pod.sock.recv(100) == b""  # infra is gone: EOF


def test_sigterm_to_infra_behaves_like_shutdown(infra: Any) -> None:
    pod = infra()
    pod.start(1, ["sleep", "100"])
    pod.expect("started", 1)
    _native.pidfd_send_signal(pod.pidfd, signal.SIGTERM)
    assert _native.exit_code(pod.expect("exited", 1)[3]) == 137
    assert wait_exit(pod.pidfd, close=False) == 0


def test_orphans_are_reaped_by_infra_as_pid_1(infra: Any, tmp_path: Path) -> None:
    pod = infra(POD_FLAGS | _native.CLONE_NEWPID)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    # The container double-forks a sleeper that holds the fifo, then exits at once.
    pod.start(1, ["sh", "-c", f"(sleep 0.2 > {fifo} &); exit 0"], clone_flags=_native.CLONE_NEWNS)
    pod.expect("started", 1)
    pod.expect("exited", 1)
    assert read_all(reader) == b""  # EOF: the orphan has exited
    # Its SIGCHLD came before this container's: one reap pass takes both.
    pod.start(2, ["true"], clone_flags=_native.CLONE_NEWNS)
    pod.expect("started", 2)
    pod.expect("exited", 2)
    pod_ns = os.readlink(f"/proc/{pod.pid}/ns/pid")
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == pod_ns:
                    members.append(int(entry))
            except OSError:
                continue
    assert members == [pod.pid]
    assert pod.shutdown() == 0


def test_containers_die_with_infra(infra: Any) -> None:
    pod = infra()
    pod.start(1, ["sleep", "100"])
    pid = pod.expect("started", 1)[2]  # infra has no PID namespace: a host pid
    container = os.pidfd_open(pid)
    try:
        _native.pidfd_send_signal(pod.pidfd, signal.SIGKILL)
        assert _native.exit_code(wait_exit(pod.pidfd, close=False)) == 137
        wait_readable(container)  # PR_SET_PDEATHSIG SIGKILL
    finally:
        os.close(container)


def test_supd_away_then_reattach_gets_hello_and_queued_exits(infra: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "infra.sock")
    pod = infra(listen_path=path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    pod.start(1, ["sleep", "100"])
    pod.start(2, ["sh", "-c", f"read x < {fifo}; exit 5"])
    started = {pod.expect("started")[1:] for _ in range(2)}
    assert sorted(pod.seqs) == [1, 2]
    by_cid = {cid: (pid, ns) for cid, pid, ns in started}
    pidfd2 = os.pidfd_open(by_cid[2][0])  # infra has no PID namespace: a host pid
    pod.sock.close()  # supd goes away; the pod carries on
    os.close(os.open(fifo, os.O_WRONLY))  # container 2 reads EOF and exits while supd is away
    wait_readable(pidfd2)
    os.close(pidfd2)
    pod.reconnect(path)
    hello = pod.report()
    assert hello[0] == "hello"
    _, entries, dropped, last_seq = hello
    # Two starts, and the exit unless infra has not reaped container 2 yet (then it comes
    # after HELLO as a new report, seq 3 all the same).
    assert dropped == 0 and last_seq in (2, 3)
    live = {cid: (pid, ns) for cid, pid, ns in entries}
    assert live.get(1) == by_cid[1] and (2 not in live) == (last_seq == 3)
    # HELLO brings a pidfd of infra: its pid in our namespace, whatever infra's own is.
    assert len(pod.fds) == 1
    assert f"Pid:\t{pod.pid}\n" in Path(f"/proc/self/fdinfo/{pod.fds[0]}").read_text()
    # Nothing was acknowledged: every report comes again, in order.
    replay = [pod.report() for _ in range(3)]
    assert pod.seqs[-3:] == [1, 2, 3]
    assert {r[1] for r in replay[:2]} == {1, 2} and replay[2][:2] == ("exited", 2)
    assert _native.exit_code(replay[2][3]) == 5
    # An ACK is taken in order with the frames after it (a START here, whose report says it
    # was read): one still unread when supd goes is lost, and its reports come again.
    pod.send(_native.encode_ack(2))
    pod.start(3, ["true"])
    assert pod.expect("started", 3) and pod.expect("exited", 3) and pod.seqs[-1] == 5
    pod.reconnect(path)
    assert pod.report()[:3] == ("hello", [(1, *by_cid[1])], 0)
    after = [pod.report()[:2] for _ in range(3)]  # only what was not acknowledged
    assert after == [("exited", 2), ("started", 3), ("exited", 3)] and pod.seqs[-3:] == [3, 4, 5]
    pod.send(_native.encode_ack(5))
    pod.start(4, ["true"])
    assert pod.expect("started", 4) and pod.expect("exited", 4) and pod.seqs[-1] == 7
    pod.reconnect(path)
    assert pod.report()[0] == "hello"
    assert pod.report()[:2] == ("started", 4) and pod.seqs[-1] == 6  # nothing older came
    assert pod.shutdown() == 0


def test_shutdown_waits_until_its_last_reports_are_acknowledged(infra: Any, tmp_path: Path) -> None:
    """Told to shut down by a supd that then dies, infra keeps the exits of the pod's last
    containers for the next supd, and leaves only once that one has recorded them."""
    path = str(tmp_path / "infra.sock")
    pod = infra(listen_path=path)
    pod.start(1, ["sleep", "100"])
    pod.expect("started", 1)
    pod.send(_native.encode_shutdown())
    assert pod.expect("exited", 1)[3] == signal.SIGKILL
    pod.sock.close()  # supd dies before it acknowledges
    pod.reconnect(path)  # still there: it waits
    assert pod.report()[2:] == (0, 2)
    assert [pod.report()[:2] for _ in range(2)] == [("started", 1), ("exited", 1)]
    pod.send(_native.encode_ack(1))
    pod.send(_native.encode_ack(2))  # now it may go
    pidfd, pod.pidfd = pod.pidfd, -1
    assert wait_exit(pidfd) == 0


def test_exec_reports_are_not_replayed_to_a_new_supd(infra: Any, tmp_path: Path) -> None:
    """An exec's stdio were the old supd's fds: its reports are for nobody after that."""
    path = str(tmp_path / "infra.sock")
    pod = infra(listen_path=path)
    pod.start(1, ["sleep", "100"])
    pod.expect("started", 1)
    r, w = os.pipe()
    null = os.open("/dev/null", os.O_WRONLY)
    frame = _native.encode_exec(7, 1, ["sh", "-c", "read x"], ENV, None)
    socket.send_fds(pod.sock, [frame], [r, null, null])
    os.close(r)
    os.close(null)
    exec_pidfd = os.pidfd_open(pod.expect("exec_started", 7)[2])
    pod.reconnect(path)
    assert pod.report()[:3] == ("hello", [pod.reports[0][1:]], 0)
    assert pod.report()[:2] == ("started", 1)  # not acknowledged: replayed; the exec's not
    os.close(w)  # the exec reads EOF and exits: reaped, and not reported to this supd
    wait_readable(exec_pidfd)
    os.close(exec_pidfd)
    assert pod.shutdown() == 0  # infra waits for the exec before it exits
    while (frame := pod.sock.recv(65536)) != b"":
        pod.reports.append(_native.decode_report(frame))
    assert [x[0] for x in pod.reports if x[0].startswith("exec")] == ["exec_started"]
    assert ("exited", 1) in [x[:2] for x in pod.reports]


def test_loopback_up_and_hostname_in_the_pod(infra: Any) -> None:
    pod = infra(hostname="shop-7f9")
    status, out = run(["ip", "-o", "link", "show", "lo"], setns=[(pod.pidfd, _native.CLONE_NEWNET)])
    assert status == 0
    flags = re.search(r"<([A-Z_,]*)>", out)
    assert flags and "UP" in flags.group(1).split(","), out
    status, out = run(["hostname"], setns=[(pod.pidfd, _native.CLONE_NEWUTS)])
    assert (status, out) == (0, "shop-7f9\n")
    assert os.readlink(f"/proc/{pod.pid}/ns/net") != os.readlink("/proc/self/ns/net")


def test_infra_is_small(infra: Any) -> None:
    ballast = [bytearray(1 << 20) for _ in range(32)]  # supd's heap, copied by clone
    pod = infra()
    del ballast
    assert Path(f"/proc/{pod.pid}/comm").read_text() == "supd-infra\n"
    rollup = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pod.pid}/smaps_rollup").read_text().splitlines()[1:]
    )
    assert int(rollup["Rss"].split()[0]) < 4096, rollup["Rss"]
    assert int(rollup["Anonymous"].split()[0]) < 1024, rollup["Anonymous"]
    fds = sorted(
        os.readlink(f"/proc/{pod.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pod.pid}/fd")
    )
    assert [re.sub(r"\d+", "N", fd) for fd in fds] == [
        "/dev/null",
        "/dev/null",
        "/dev/null",
        "anon_inode:[eventpoll]",
        "anon_inode:[signalfd]",
        "socket:[N]",
    ]
    # And it still works with the memory it released.
    pod.start(1, ["echo", "fine"])
    pod.expect("started", 1)
    pod.expect("exited", 1)
    assert pod.shutdown() == 0


def test_spawn_infra_from_a_thread(infra: Any) -> None:
    made: list[Any] = []
    thread = threading.Thread(target=lambda: made.append(infra()))
    thread.start()
    thread.join()
    pod = made[0]
    pod.start(1, ["echo", "from thread"])
    pod.expect("started", 1)
    pod.expect("exited", 1)
    assert pod.shutdown() == 0


def test_infra_setup_failure_is_a_spawn_error() -> None:
    for exit_signal in (signal.SIGCHLD, 0):  # a failed "clone" child is reaped too
        with pytest.raises(_native.SpawnError) as info:
            _native.spawn_infra(4000, clone_flags=POD_FLAGS, hostname="x", exit_signal=exit_signal)
        assert str(info.value) == "epoll: Bad file descriptor"
    with pytest.raises(ValueError):
        _native.spawn_infra(4000, clone_flags=_native.CLONE_NEWNET, hostname="x")
    with pytest.raises(ValueError):
        _native.spawn_infra(4000, clone_flags=POD_FLAGS, hostname="x" * 65)


def test_clone_child_infra_is_left_to_its_pidfd(infra: Any) -> None:
    """With exit_signal 0 the infra's end sends no SIGCHLD and waitpid(-1) (supd's orphan
    reaper) never takes its status: only waitid on its pidfd does."""
    pod = infra(exit_signal=0)
    pidfd, pod.pidfd = pod.pidfd, -1
    os.kill(pod.pid, signal.SIGKILL)
    wait_readable(pidfd)
    assert _native.reap_all() == []
    status = _native.waitid_pidfd(pidfd)
    os.close(pidfd)
    assert status is not None and os.WTERMSIG(status) == signal.SIGKILL


def test_infra_has_a_session_of_its_own(infra: Any) -> None:
    """Terminal signals to supd's process group (Ctrl-C, Ctrl-Z) must not reach infra."""
    pod = infra()
    assert os.getsid(pod.pid) == os.getpgid(pod.pid) == pod.pid
    assert pod.shutdown() == 0


# -- frames ----------------------------------------------------------------------------------


def test_malformed_frames_are_rejected_without_harm(infra: Any) -> None:
    pod = infra()
    good = _native.encode_start(5, ["true"], [], "/", clone_flags=CONTAINER_FLAGS)
    null = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
    try:
        pod.send(b"\x01\x00")  # shorter than a header: ignored
        pod.send(b"\x63\x00\x00\x00\x05\x00\x00\x00")  # unknown type: ignored
        pod.send(good[:-1])  # blob not NUL-terminated
        assert pod.expect("start_failed", 5)[2:] == (FRAME, errno.EINVAL)
        pod.send(good)  # no log fd
        assert pod.expect("start_failed", 5)[2:] == (FRAME, errno.EBADF)
        socket.send_fds(pod.sock, [good], [null] * 9)  # more fds than a start takes
        assert pod.expect("start_failed", 5)[2:] == (FRAME, errno.EINVAL)
        into = _native.encode_start(5, ["true"], [], "/", clone_flags=CONTAINER_FLAGS,
                                    cgroup_into=True)  # fmt: skip
        socket.send_fds(pod.sock, [into], [null, null, null])  # into: exactly one cgroup
        assert pod.expect("start_failed", 5)[2:] == (FRAME, errno.EINVAL)
        socket.send_fds(pod.sock, [good + b"\0" * 70000], [null])  # over FRAME_MAX
        assert pod.expect("start_failed", 5)[2:] == (FRAME, errno.E2BIG)
        bad_count = bytearray(good)
        bad_count[32:36] = (5000).to_bytes(4, "little")  # argc over the limit
        socket.send_fds(pod.sock, [bytes(bad_count)], [null])
        assert pod.expect("start_failed", 5)[2:] == (FRAME, errno.E2BIG)
        bad_flags = bytearray(good)
        bad_flags[8:16] = (0x100).to_bytes(8, "little")  # CLONE_VM
        socket.send_fds(pod.sock, [bytes(bad_flags)], [null])
        assert pod.expect("start_failed", 5)[2:] == (FRAME, errno.EINVAL)
        pod.send(_native.encode_signal(5, 9)[:12])  # short signal frame: ignored
        socket.send_fds(pod.sock, [good], [null])  # and it still works
        pod.expect("started", 5)
        pod.expect("exited", 5)
        socket.send_fds(pod.sock, [good], [null])
        assert pod.expect("started", 5)
    finally:
        os.close(null)
    pod.expect("exited", 5)
    assert pod.shutdown() == 0


def test_duplicate_live_cid_is_refused(infra: Any) -> None:
    pod = infra()
    pod.start(1, ["sleep", "100"])
    pod.expect("started", 1)
    pod.start(1, ["true"])
    assert pod.expect("start_failed", 1)[2:] == (_native.STEPS.index("slot"), errno.EEXIST)
    assert pod.shutdown() == 0


def test_encoders_validate_and_bound() -> None:
    with pytest.raises(ValueError):
        _native.encode_start(1, [], [], None, clone_flags=CONTAINER_FLAGS)
    with pytest.raises(ValueError):
        _native.encode_start(1, ["a\0"], [], None, clone_flags=CONTAINER_FLAGS)
    with pytest.raises(ValueError):
        _native.encode_start(1, ["x"] * 4097, [], None, clone_flags=CONTAINER_FLAGS)
    with pytest.raises(ValueError):
        _native.encode_start(1, ["x" * 70000], [], None, clone_flags=CONTAINER_FLAGS)
    with pytest.raises(ValueError):
        _native.encode_start(1, ["x"], [], None, clone_flags=_native.CLONE_NEWPID)  # mount_proc
    with pytest.raises(ValueError):
        _native.encode_signal(1, 0)
    frame = _native.encode_start(
        3,
        ["a", "b"],
        ["K=V"],
        "/srv",
        clone_flags=CONTAINER_FLAGS,
        uid=1000,
        gid=1000,
        groups=[10, 20],
    )
    assert frame[:8] == (1).to_bytes(4, "little") + (3).to_bytes(4, "little")
    assert frame.endswith(b"a\0b\0K=V\0/srv\0")
    assert _native.encode_shutdown() == (3).to_bytes(4, "little") + bytes(4)


def test_decode_report_rejects_malformed() -> None:
    for frame in (
        b"",
        b"\x10\x00\x00\x00",
        bytes(24),
        b"\x10" + bytes(22),
        (19).to_bytes(4, "little") + bytes(4) + (2).to_bytes(4, "little") + bytes(4),
    ):
        with pytest.raises(ValueError):
            _native.decode_report(frame)
    hello = (19).to_bytes(4, "little") + bytes(20)
    assert _native.decode_report(hello) == ("hello", [], 0, 0)


def test_container_uid_and_groups_through_frames(infra: Any) -> None:
    pod = infra()
    log = pod.start(1, ["sh", "-c", "id -u; id -g; id -G"], uid=65534, gid=65534, groups=[])
    pod.expect("started", 1)
    assert pod.expect("exited", 1)[3] == 0
    assert [msg for *_, msg in cri_lines(log)] == ["65534", "65534", "65534"]
    assert pod.shutdown() == 0


# -- log rotation: LOG_FULL and REOPEN -------------------------------------------------------


def open_log_file(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


def infra_holds(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (its /proc fd links)."""
    fds = Path(f"/proc/{pid}/fd")
    return any(os.readlink(fds / fd) == str(path) for fd in os.listdir(fds))


def cri_messages(paths: list[Path]) -> list[tuple[str, str]]:
    """(stream, line) for each line of CRI log files, its partial (P) records joined, also
    across files; every file ends with a whole record, the last one with a whole line."""
    out, parts = [], {"stdout": "", "stderr": ""}
    for path in paths:
        assert path.read_bytes().endswith(b"\n"), path
    for _, stream, tag, message in (rec for path in paths for rec in cri_lines(path)):
        parts[stream] += message
        if tag == "F":
            out.append((stream, parts[stream]))
            parts[stream] = ""
    assert parts == {"stdout": "", "stderr": ""}, parts
    return out


def sync(pod: Any) -> list[tuple[Any, ...]]:
    """Frames are served in order: once a START without a log fd is refused, every frame
    sent before it has been handled. Returns the reports that came first."""
    pod.send(_native.encode_start(99, ["true"], [], "/", clone_flags=CONTAINER_FLAGS))
    before = []
    while (report := pod.report())[:2] != ("start_failed", 99):
        before.append(report)
    assert report[2:] == (FRAME, errno.EBADF)
    return before


def test_log_full_once_per_file_and_reopen_swaps_between_records(
    infra: Any, tmp_path: Path
) -> None:
    pod = infra()
    first = pod.start(1, ["sh", "-c", "seq 1 20000; seq 1 5 >&2"], log_max=4096)
    pod.expect("started", 1)
    full = pod.expect("log_full", 1)
    assert full[2] >= 4096
    second = tmp_path / "second.log"
    fd = open_log_file(second)
    try:
        socket.send_fds(pod.sock, [_native.encode_reopen(1)], [fd])
    finally:
        os.close(fd)
    # Once per file: at most one more, about the new file.
    early = sync(pod)
    assert [r[:2] for r in early] in ([], [("log_full", 1)]), early
    assert not infra_holds(pod.pid, first) and infra_holds(pod.pid, second)
    # A supd that cannot rotate answers without a file: infra goes on in the same one and
    # says log_full again after another log_max bytes (held back at twice that).
    again = len(early)
    if early:
        pod.send(_native.encode_reopen(1))
    while (report := pod.report())[0] == "log_full":
        again += 1
        pod.send(_native.encode_reopen(1))
    assert report[0] == "exited" and again >= 1, (report, again)
    # Every record whole in one file or the other, a line cut by the swap joined again by
    # its P and F records; the order of records across the two pipes is not defined, each
    # stream's own is.
    messages = cri_messages([first, second])
    assert [m for s, m in messages if s == "stdout"] == [str(i) for i in range(1, 20001)]
    assert [m for s, m in messages if s == "stderr"] == [str(i) for i in range(1, 6)]
    # Held back at twice the limit until the REOPEN: one read's records over it at most
    # (without, a writer this fast puts most of its 20000 lines into the first file).
    assert full[2] <= first.stat().st_size < 2 * 4096 + 40 * 32768 // 2
    assert second.stat().st_size > first.stat().st_size
    assert pod.shutdown() == 0


def test_no_log_full_without_a_limit(infra: Any) -> None:
    pod = infra()
    log = pod.start(1, ["seq", "1", "20000"])
    pod.expect("started", 1)
    pod.expect("exited", 1)  # not a log_full first
    assert log.stat().st_size > 100_000
    assert pod.shutdown() == 0


def test_reopen_without_a_container_or_an_fd_changes_nothing(infra: Any, tmp_path: Path) -> None:
    pod = infra()
    log = pod.start(1, ["sleep", "100"], log_max=4096)
    pod.expect("started", 1)
    stray = tmp_path / "stray.log"
    fd = open_log_file(stray)
    try:
        socket.send_fds(pod.sock, [_native.encode_reopen(7)], [fd])  # no container 7
        socket.send_fds(pod.sock, [_native.encode_reopen(1)], [fd, fd])  # two fds
        socket.send_fds(pod.sock, [_native.encode_reopen(1) + b"\0"], [fd])  # too long
    finally:
        os.close(fd)
    pod.send(_native.encode_reopen(1))  # no fd
    assert sync(pod) == []
    assert infra_holds(pod.pid, log) and not infra_holds(pod.pid, stray)
    assert pod.shutdown() == 0


def test_log_full_is_said_again_to_a_new_supd(infra: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "infra.sock")
    pod = infra(listen_path=path)
    pod.start(1, ["sh", "-c", "seq 1 2000; exec sleep 100"], log_max=4096)
    pod.start(2, ["sleep", "100"], log_max=4096)
    pod.expect("started", 1)
    pod.expect("started", 2)
    bytes_ = pod.expect("log_full", 1)[2]
    pod.reconnect(path)  # supd died before rotating: the new one hears it again
    assert pod.expect("hello")[1]
    assert {pod.expect("started")[1] for _ in range(2)} == {1, 2}  # not acknowledged either
    assert pod.expect("log_full", 1)[2] == bytes_
    assert sync(pod) == []  # and only that one
    assert pod.shutdown() == 0


def test_log_frames_encode_and_decode() -> None:
    assert _native.encode_reopen(3) == (8).to_bytes(4, "little") + (3).to_bytes(4, "little")
    report = b"".join(
        [(23).to_bytes(4, "little"), (4).to_bytes(4, "little"), (70000).to_bytes(8, "little")]
    ) + (9).to_bytes(8, "little")  # its seq
    assert _native.decode_report(report) == ("log_full", 4, 70000)
    assert _native.report_seq(report) == 9
    with pytest.raises(ValueError):
        _native.decode_report(report[:16])
    frame = _native.encode_start(1, ["x"], [], None, clone_flags=CONTAINER_FLAGS, log_max=65536)
    assert frame[52:60] == (65536).to_bytes(8, "little")
    for bad in (-1, 2**63):
        with pytest.raises(ValueError):
            _native.encode_start(1, ["x"], [], None, clone_flags=CONTAINER_FLAGS, log_max=bad)
