"""Reaping and signals for supd: subreaper, reap_all, pidfds, process groups, signalfd."""

from __future__ import annotations

import errno
import os
import signal
import threading
from pathlib import Path

import pytest
from native_helpers import kill_and_reap, no_leaks, read_all, wait_exit, wait_readable

from supervisor import _native

pytestmark = pytest.mark.usefixtures("no_leaks")
__all__ = ["no_leaks"]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (0, 0),
        (3 << 8, 3),
        (255 << 8, 255),
        (signal.SIGKILL, 137),
        (signal.SIGTERM, 143),
        (signal.SIGSEGV | 0x80, 139),
    ],
)
def test_exit_code(status: int, code: int) -> None:
    assert _native.exit_code(status) == code


def test_exit_code_of_a_stopped_status_is_an_error() -> None:
    with pytest.raises(ValueError):
        _native.exit_code((signal.SIGSTOP << 8) | 0x7F)


def test_reap_all_collects_every_exited_child() -> None:
    spawned = [_native.spawn(["sh", "-c", f"exit {n}"]) for n in (1, 2)]
    for _pid, pidfd in spawned:
        wait_readable(pidfd)
    reaped = dict(_native.reap_all())
    assert {pid: _native.exit_code(reaped[pid]) for pid, _ in spawned} == {
        spawned[0][0]: 1,
        spawned[1][0]: 2,
    }
    assert _native.reap_all() == []
    for _pid, pidfd in spawned:
        with pytest.raises(ChildProcessError):  # already reaped: ECHILD
            _native.waitid_pidfd(pidfd)
        os.close(pidfd)


def test_core_dump_status_through_waitid() -> None:
    _pid, pidfd = _native.spawn(["sleep", "100"])
    _native.pidfd_send_signal(pidfd, signal.SIGABRT)
    status = wait_exit(pidfd)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGABRT
    assert _native.exit_code(status) == 128 + signal.SIGABRT


def test_pidfd_send_signal_to_a_reaped_process() -> None:
    _pid, pidfd = _native.spawn(["true"])
    try:
        wait_readable(pidfd)
        _native.waitid_pidfd(pidfd)
        with pytest.raises(ProcessLookupError):
            _native.pidfd_send_signal(pidfd, signal.SIGTERM)
    finally:
        os.close(pidfd)


def test_waitid_on_a_bad_fd() -> None:
    with pytest.raises(OSError) as info:
        _native.waitid_pidfd(4095)
    assert info.value.errno == errno.EBADF


def test_kill_group_reaches_the_whole_group() -> None:
    r, w = os.pipe()
    pid, pidfd = _native.spawn(["sh", "-c", "sleep 100 & wait"], setsid=True, stdout=w)
    os.close(w)
    _native.kill_group(pid, signal.SIGTERM)
    assert _native.exit_code(wait_exit(pidfd)) == 128 + signal.SIGTERM
    assert read_all(r) == b""  # EOF: the sleeper (which held the pipe) died too


def test_kill_group_refuses_own_group_and_everyone() -> None:
    for pgid in (0, 1, -5):
        with pytest.raises(ValueError):
            _native.kill_group(pgid, signal.SIGTERM)
    with pytest.raises(ProcessLookupError):
        _native.kill_group(4_000_000, signal.SIGTERM)


def test_subreaper_adopts_orphans(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    _native.set_child_subreaper(True)
    try:
        r, w = os.pipe()
        # The orphan blocks opening the fifo until this test opens its other end.
        pid, pidfd = _native.spawn(["sh", "-c", f"cat {fifo} > /dev/null & echo $!"], stdout=w)
        os.close(w)
        orphan = int(read_all(r))
        orphan_fd = os.pidfd_open(orphan)
        wait_readable(pidfd)  # sh exited, so the orphan has been reparented to us
        os.close(os.open(fifo, os.O_WRONLY))
        for fd in (orphan_fd, pidfd):
            wait_readable(fd)
            os.close(fd)
        reaped = dict(_native.reap_all())
        assert set(reaped) == {pid, orphan}
    finally:
        _native.set_child_subreaper(False)


def test_signalfd_reads_blocked_signals() -> None:
    old = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    fd = _native.signalfd([signal.SIGUSR1, signal.SIGUSR2])
    try:
        assert _native.read_signalfd(fd) == []
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, ())
        assert {signal.SIGUSR1, signal.SIGUSR2} <= blocked
        main = threading.main_thread().ident
        assert main is not None
        signal.pthread_kill(main, signal.SIGUSR2)
        signal.pthread_kill(main, signal.SIGUSR1)
        wait_readable(fd)
        assert sorted(_native.read_signalfd(fd)) == [signal.SIGUSR1, signal.SIGUSR2]
        assert _native.read_signalfd(fd) == []
    finally:
        os.close(fd)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def test_signalfd_rejects_invalid_signals() -> None:
    for bad in ([0], [65], [-1]):
        with pytest.raises(ValueError):
            _native.signalfd(bad)


def test_kill_and_reap_helper_leaves_nothing() -> None:
    _pid, pidfd = _native.spawn(["sleep", "100"])
    assert _native.exit_code(kill_and_reap(pidfd)) == 137
