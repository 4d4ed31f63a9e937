"""The clone() -> execve() path: real processes in real namespaces (tini-style tests).

A failure test per child step we can provoke, with its exact message and exit code.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import stat
from pathlib import Path

import pytest
from native_helpers import kill_and_reap, no_leaks, proc_field, read_all, run, wait_exit

from supervisor import _native
from supervisor._native import SpawnError

pytestmark = pytest.mark.usefixtures("no_leaks")
__all__ = ["no_leaks"]


def spawn_fails(argv: list[str], **kwargs: object) -> SpawnError:
    with pytest.raises(SpawnError) as info:
        _native.spawn(argv, **kwargs)  # type: ignore[arg-type]
    return info.value


# -- success: status, env, cwd, stdio ------------------------------------------------------


def test_exit_status_through_pidfd() -> None:
    pid, pidfd = _native.spawn(["sh", "-c", "exit 7"])
    assert pid > 0
    status = wait_exit(pidfd)
    assert os.WIFEXITED(status) and _native.exit_code(status) == 7


def test_waitid_pidfd_is_none_while_running_and_signal_gives_128_plus_n() -> None:
    _pid, pidfd = _native.spawn(["sleep", "100"])
    try:
        assert _native.waitid_pidfd(pidfd) is None
    finally:
        status = kill_and_reap(pidfd)
    assert _native.exit_code(status) == 128 + signal.SIGKILL


def test_env_cwd_and_stdio(tmp_path: Path) -> None:
    r, w = os.pipe()
    e_r, e_w = os.pipe()
    _pid, pidfd = _native.spawn(
        ["sh", "-c", 'echo "$FOO"; pwd; echo oops >&2'],
        env=["FOO=bar baz", "PATH=/usr/bin:/bin"],
        cwd=str(tmp_path),
        stdout=w,
        stderr=e_w,
    )
    os.close(w)
    os.close(e_w)
    assert read_all(r) == f"bar baz\n{tmp_path}\n".encode()
    assert read_all(e_r) == b"oops\n"
    assert wait_exit(pidfd) == 0


def test_env_none_inherits_and_bytes_are_accepted() -> None:
    os.environ["SUPD_NATIVE_TEST"] = "inherited"
    try:
        status, out = run([b"sh", b"-c", b"echo $SUPD_NATIVE_TEST"])
    finally:
        del os.environ["SUPD_NATIVE_TEST"]
    assert (status, out) == (0, "inherited\n")


def test_stdin_from_pipe() -> None:
    r, w = os.pipe()
    os.write(w, b"from stdin\n")
    os.close(w)
    try:
        status, out = run(["cat"], stdin=r)
    finally:
        os.close(r)
    assert (status, out) == (0, "from stdin\n")


def test_stdio_sources_already_on_0_1_2() -> None:
    """A source on 1 for fd 2 must not be clobbered (bpo-12607); one in place stays."""
    r, w = os.pipe()
    saved = os.dup(1)
    try:
        os.dup2(w, 1)
        _pid, pidfd = _native.spawn(["sh", "-c", "echo out; echo err >&2"], stdout=1, stderr=1)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(w)
    assert read_all(r) == b"out\nerr\n"
    assert wait_exit(pidfd) == 0


def test_path_lookup_uses_the_child_env(tmp_path: Path) -> None:
    tool = tmp_path / "hello-tool"
    tool.write_text("#!/bin/sh\necho found me\n")
    tool.chmod(0o755)
    status, out = run(["hello-tool"], env=[f"PATH=/nonexistent:{tmp_path}"])
    assert (status, out) == (0, "found me\n")
    err = spawn_fails(["hello-tool"], env=["PATH=/usr/bin:/bin"])
    assert (err.errno, err.exit_code, str(err)) == (
        errno.ENOENT,
        127,
        "exec hello-tool: No such file or directory",
    )


def test_path_lookup_remembers_eacces_and_keeps_searching(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "tool").write_text("#!/bin/sh\necho wrong\n")  # not executable
    (second / "tool").write_text("#!/bin/sh\necho right\n")
    (second / "tool").chmod(0o755)
    assert run(["tool"], env=[f"PATH={first}:{second}"]) == (0, "right\n")
    err = spawn_fails(["tool"], env=[f"PATH={first}:/nonexistent"])
    assert (err.errno, err.exit_code, str(err)) == (
        errno.EACCES,
        126,
        "exec tool: Permission denied",
    )


def test_default_path_without_path_in_env() -> None:
    assert run(["sh", "-c", "echo ok"], env=[]) == (0, "ok\n")


def test_setsid_makes_a_session_leader() -> None:
    pid, pidfd = _native.spawn(["sleep", "100"], setsid=True)
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(fields[2]) == pid and int(fields[3]) == pid  # pgrp, session
    finally:
        kill_and_reap(pidfd)


@pytest.mark.root
def test_uid_gid_groups() -> None:
    pid, pidfd = _native.spawn(["sleep", "100"], uid=65534, gid=65533, groups=[4, 5])
    try:
        assert proc_field(pid, "Uid").split() == ["65534"] * 4
        assert proc_field(pid, "Gid").split() == ["65533"] * 4
        assert proc_field(pid, "Groups").split() == ["4", "5"]
    finally:
        kill_and_reap(pidfd)


def test_signal_dispositions_and_mask_are_reset() -> None:
    old_handler = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    try:
        pid, pidfd = _native.spawn(["sleep", "100"])
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        signal.signal(signal.SIGUSR1, old_handler)
    try:
        ignored = int(proc_field(pid, "SigIgn"), 16)
        blocked = int(proc_field(pid, "SigBlk"), 16)
        assert not ignored & (1 << (signal.SIGUSR1 - 1))
        assert blocked == 0
    finally:
        kill_and_reap(pidfd)


def test_no_fd_leaks_into_the_child() -> None:
    inheritable = os.open("/dev/null", os.O_RDONLY)
    os.set_inheritable(inheritable, True)
    sock = socket.socket()
    sock.set_inheritable(True)
    try:
        status, out = run(["ls", "-l", "/proc/self/fd"])
    finally:
        os.close(inheritable)
        sock.close()
    assert status == 0
    fds = {line.split()[-3]: line.split()[-1] for line in out.splitlines()[1:]}
    assert set(fds) - {"0", "1", "2"} <= {"3"}  # ls's own directory fd
    if "3" in fds:
        assert fds["3"].startswith("/proc/")


# -- namespaces ------------------------------------------------------------------------------


@pytest.mark.root
def test_new_net_namespace_differs_and_setns_joins_it() -> None:
    host = os.readlink("/proc/self/ns/net")
    pid, pidfd = _native.spawn(["sleep", "100"], clone_flags=_native.CLONE_NEWNET)
    try:
        theirs = os.readlink(f"/proc/{pid}/ns/net")
        assert theirs != host
        # Join by pidfd and by an nsfs fd.
        nsfd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            for target in ((pidfd, _native.CLONE_NEWNET), (nsfd, _native.CLONE_NEWNET)):
                status, out = run(["readlink", "/proc/self/ns/net"], setns=[target])
                assert (status, out) == (0, theirs + "\n")
        finally:
            os.close(nsfd)
    finally:
        kill_and_reap(pidfd)


@pytest.mark.root
def test_hostname_in_new_uts_namespace() -> None:
    host = socket.gethostname()
    status, out = run(["hostname"], clone_flags=_native.CLONE_NEWUTS, hostname="pod-a")
    assert (status, out) == (0, "pod-a\n")
    assert socket.gethostname() == host


def test_hostname_without_new_uts_is_refused() -> None:
    with pytest.raises(ValueError, match="CLONE_NEWUTS"):
        _native.spawn(["true"], hostname="nope")


@pytest.mark.root
def test_new_pid_namespace_with_its_own_proc() -> None:
    flags = _native.CLONE_NEWPID | _native.CLONE_NEWNS
    status, out = run(
        ["sh", "-c", "echo $$; readlink /proc/self; ls /proc | grep -c '^[0-9]'"],
        clone_flags=flags,
        mount_proc=True,
    )
    lines = out.split()
    assert status == 0 and lines[0] == "1", out
    # Only sh, readlink/ls/grep children: never the host's hundreds of processes.
    assert int(lines[2]) <= 4, out
    assert os.readlink("/proc/self") == str(os.getpid())  # the host /proc is untouched


@pytest.mark.root
def test_join_pid_namespace_of_a_running_process() -> None:
    flags = _native.CLONE_NEWPID | _native.CLONE_NEWNS
    _holder, holder_fd = _native.spawn(["sleep", "100"], clone_flags=flags, mount_proc=True)
    try:
        status, out = run(["sh", "-c", "echo $$"], setns=[(holder_fd, _native.CLONE_NEWPID)])
        assert status == 0 and int(out) > 1  # a member of the holder's namespace, not its init
        assert os.readlink("/proc/thread-self/ns/pid_for_children") == os.readlink(
            "/proc/self/ns/pid"
        )
    finally:
        kill_and_reap(holder_fd)


def test_mount_proc_without_new_mount_namespace_is_refused() -> None:
    with pytest.raises(ValueError, match="CLONE_NEWNS"):
        _native.spawn(["true"], clone_flags=_native.CLONE_NEWPID, mount_proc=True)


def test_non_namespace_clone_flags_are_refused() -> None:
    with pytest.raises(ValueError, match="CLONE_NEW"):
        _native.spawn(["true"], clone_flags=0x100)  # CLONE_VM


# -- failures, one per step -------------------------------------------------------------------


def test_exec_not_found() -> None:
    err = spawn_fails(["/bin/nginx"])
    assert isinstance(err, OSError)
    assert (err.step, err.errno, err.filename, err.exit_code) == (
        "exec",
        errno.ENOENT,
        "/bin/nginx",
        127,
    )
    assert str(err) == "exec /bin/nginx: No such file or directory"


def test_exec_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    err = spawn_fails([str(script)])
    assert (err.errno, err.exit_code, str(err)) == (
        errno.EACCES,
        126,
        f"exec {script}: Permission denied",
    )


def test_exec_a_directory(tmp_path: Path) -> None:
    err = spawn_fails([str(tmp_path)])
    assert (err.errno, err.exit_code) == (errno.EACCES, 126)


def test_exec_format_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\x01\x02 not a program")
    junk.chmod(stat.S_IRWXU)
    err = spawn_fails([str(junk)])
    assert (err.errno, err.exit_code, str(err)) == (
        errno.ENOEXEC,
        126,
        f"exec {junk}: Exec format error",
    )


def test_exec_empty_argv0() -> None:
    err = spawn_fails([""])
    assert (err.errno, err.exit_code) == (errno.ENOENT, 127)


def test_chdir_missing() -> None:
    err = spawn_fails(["true"], cwd="/nope")
    assert (err.step, err.filename, err.exit_code) == ("chdir", "/nope", 127)
    assert str(err) == "chdir /nope: No such file or directory"


def test_setns_not_a_namespace() -> None:
    fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        err = spawn_fails(["true"], setns=[(fd, _native.CLONE_NEWNET)])
    finally:
        os.close(fd)
    assert (err.step, err.errno, str(err)) == ("setns", errno.EINVAL, "setns: Invalid argument")


def test_setns_bad_fd() -> None:
    err = spawn_fails(["true"], setns=[(4095, _native.CLONE_NEWNET)])
    assert str(err) == "setns: Bad file descriptor"


@pytest.mark.root
def test_sethostname_too_long() -> None:
    err = spawn_fails(["true"], clone_flags=_native.CLONE_NEWUTS, hostname="x" * 65)
    assert str(err) == "sethostname: Invalid argument"


def test_dup2_bad_fd() -> None:
    err = spawn_fails(["true"], stdout=4095)
    assert (err.step, str(err)) == ("dup2", "dup2: Bad file descriptor")


@pytest.mark.root
def test_setgroups_in_unmapped_user_namespace() -> None:
    # user_namespaces(7): setgroups is denied until a gid map is written.
    err = spawn_fails(["true"], clone_flags=_native.CLONE_NEWUSER, groups=[])
    assert (err.step, str(err)) == ("setgroups", "setgroups: Operation not permitted")


@pytest.mark.root
def test_setuid_unmapped_in_user_namespace() -> None:
    err = spawn_fails(["true"], clone_flags=_native.CLONE_NEWUSER, uid=1000)
    assert (err.step, str(err)) == ("setuid", "setuid: Invalid argument")


@pytest.mark.root
def test_mount_proc_of_a_pid_namespace_we_do_not_own() -> None:
    # The new user namespace owns the new mount namespace (so making / private works) but
    # not the host PID namespace: proc(5) cannot be mounted for it.
    err = spawn_fails(
        ["true"], clone_flags=_native.CLONE_NEWUSER | _native.CLONE_NEWNS, mount_proc=True
    )
    assert (err.step, str(err)) == ("mount proc", "mount proc on /proc: Operation not permitted")


def test_spawn_error_from_a_reported_pair() -> None:
    err = _native.spawn_error(_native.STEPS.index("mount proc"), errno.EPERM, "nginx")
    assert (str(err), err.exit_code) == ("mount proc on /proc: Operation not permitted", 127)
    err = _native.spawn_error(_native.STEPS.index("exec"), errno.ENOEXEC, b"/bin/x")
    assert (str(err), err.exit_code, err.filename) == (
        "exec /bin/x: Exec format error",
        126,
        "/bin/x",
    )
    err = _native.spawn_error(_native.STEPS.index("chdir"), errno.ENOTDIR, "x", "/etc/passwd")
    assert str(err) == "chdir /etc/passwd: Not a directory"
    assert _native.STEPS[:2] == ("clone", "pipe") and "exec" in _native.STEPS


def test_invalid_arguments() -> None:
    for bad in ([], "sh", ["a\0b"]):
        with pytest.raises(ValueError):
            _native.spawn(bad)
    with pytest.raises(ValueError):
        _native.spawn(["true"], env=["A=\0"])
    with pytest.raises(ValueError):
        _native.spawn(["true"], uid=-2)
    with pytest.raises(ValueError):
        _native.spawn(["true"], pdeathsig=65)
