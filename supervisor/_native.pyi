# Typed interface of the Cython core (built from _native/*.pyx). The runtime is its only
# importer. Keep this file and the .pyx in step: mypy checks callers against it.
from collections.abc import Iterable, Sequence

CLONE_NEWNS: int
CLONE_NEWPID: int
CLONE_NEWNET: int
CLONE_NEWIPC: int
CLONE_NEWUTS: int
CLONE_NEWUSER: int
CLONE_NEWCGROUP: int
CAPTURE_LIMIT: int  # output bytes kept of a capture exec (kubelet: maxProbeOutputLength)

# Step names of the clone()->execve() path, indexed by the step number a child reports.
STEPS: tuple[str, ...]

class SpawnError(OSError):
    """A spawn failed at `step` with `errno`; str() reads like
    "exec /bin/nginx: No such file or directory" or "chdir /srv: Permission denied"."""

    step: str
    exit_code: int  # what a shell would report: 127 not found, 126 not executable, else 127
    message: str  # what str() returns

def spawn_error(
    step: int, errno: int, argv0: str, cwd: str | None = None, fs: Sequence[str] | None = None
) -> SpawnError: ...

# A container's filesystem operation (fs.pyx): (kind, target, source, fstype, flags, data,
# arg), kind one of mount, mkdir, mkfile, symlink, pivot, open, bind_fd, setattr. A failing
# operation i is reported as step 256 + i; spawn_error names it from `fs` descriptions.
FsOp = tuple[str, str, str | None, str | None, int, str | None, int]

def encode_fs(ops: Sequence[FsOp]) -> bytes: ...
def mount_tmpfs(target: str, data: str) -> None: ...
def umount(target: str) -> None: ...

# Clone and exec one process (the GIL is released from clone to the exec-status read).
# Returns (pid, pidfd). Raises SpawnError for any failure in the child or of clone itself.
def spawn(
    argv: Sequence[str | bytes],
    *,
    env: Sequence[str | bytes] | None = None,
    cwd: str | bytes | None = None,
    clone_flags: int = 0,
    setns: Sequence[tuple[int, int]] = (),
    hostname: str | bytes | None = None,
    stdin: int = -1,
    stdout: int = -1,
    stderr: int = -1,
    setsid: bool = False,
    uid: int = -1,
    gid: int = -1,
    groups: Sequence[int] | None = None,
    pdeathsig: int = 0,
    mount_proc: bool = False,
    fs: Sequence[FsOp] | None = None,
    caps: int | None = None,
    no_new_privs: bool = False,
    cgroup_dir: int = -1,
    cgroup_procs: Sequence[int] = (),
) -> tuple[int, int]: ...

# Clone a pod's infra process with clone_flags (CLONE_NEWNET|CLONE_NEWIPC|CLONE_NEWUTS
# [|CLONE_NEWPID]); it serves the SOCK_SEQPACKET fd `sock` and, when `listen` >= 0, accepts
# a replacement supd connection on that listening SOCK_SEQPACKET socket. `sysctls` are
# (/proc/sys path, value) pairs it writes inside the pod's namespaces first (a failure is
# a SpawnError at step "sysctl"). Returns (pid, pidfd).
def spawn_infra(
    sock: int,
    *,
    clone_flags: int,
    hostname: str | bytes,
    listen: int = -1,
    pdeathsig: int = 0,
    sysctls: Sequence[tuple[str | bytes, str | bytes]] = (),
    cgroup_dir: int = -1,  # a cgroup v2 directory to clone infra into (CLONE_INTO_CGROUP)
    exit_signal: int = ...,  # SIGCHLD; 0: a "clone" child, invisible to waitpid(-1)
) -> tuple[int, int]: ...

# The infra factory (zygote): clone it early, while the caller is small; it clones each
# infra on a SPAWN frame sent with SCM_RIGHTS [infra socket, error pipe write end
# (, listening socket with listen=True) (, cgroup v2 directory with cgroup=True)], and
# replies ("spawned", rid, pid, errno) with the pidfd in SCM_RIGHTS (pid -1: clone
# failed), and ("exited", pid, wait_status) for infras it reaped.
def start_zygote(sock: int) -> tuple[int, int]: ...
def encode_zygote_spawn(
    rid: int,
    clone_flags: int,
    hostname: str | bytes,
    pdeathsig: int = 0,
    *,
    listen: bool = False,
    cgroup: bool = False,
) -> bytes: ...
def decode_zygote_reply(frame: bytes) -> tuple: ...  # ValueError when malformed

# sethostname(2) in the UTS namespace of the process behind `pidfd` (setns there and back,
# in the calling thread only): names an infra that was made before its pod.
def set_hostname(pidfd: int, hostname: str | bytes) -> None: ...

# supd -> infra frames. A start frame is sent with the container's log file (opened
# O_WRONLY|O_APPEND, where infra writes CRI log lines) as the first fd in SCM_RIGHTS, then
# its cgroup: one cgroup v2 directory with `cgroup_into`, else cgroup v1 cgroup.procs
# files (at most 7). `caps` (a capability bit mask; None keeps supd's) becomes the
# bounding, permitted and effective sets. Past `log_max` bytes in its log (0: never) infra
# reports log_full; supd rotates the file and sends the new one with encode_reopen.
def encode_start(
    cid: int,
    argv: Sequence[str | bytes],
    env: Sequence[str | bytes],
    cwd: str | bytes | None,
    *,
    clone_flags: int,
    uid: int = -1,
    gid: int = -1,
    groups: Sequence[int] = (),
    mount_proc: bool = True,
    fs: Sequence[FsOp] | None = None,
    caps: int | None = None,
    no_new_privs: bool = False,
    cgroup_into: bool = False,
    log_max: int = 0,
) -> bytes: ...
def encode_reopen(cid: int) -> bytes: ...  # sent with exactly one fd: the new log file
def encode_signal(cid: int, signo: int, group: bool = False) -> bytes: ...
def encode_shutdown() -> bytes: ...
def encode_keep() -> bytes: ...  # clear infra's parent-death signal: it outlives supd
def encode_ack(seq: int) -> bytes: ...  # every report up to seq is recorded: infra forgets them

# An exec frame starts argv as exec `eid` (chosen by supd, unique per infra) inside running
# container `cid`: in its namespaces, with its uid/gid/groups, in a new session. It is sent
# with exactly three fds in SCM_RIGHTS: stdin, stdout, stderr (with `tty`, the same pty slave
# three times; it becomes the controlling terminal). Reports: exec_started, then exec_exited;
# or exec_failed alone (step "slot" with ESRCH: no such running container; EAGAIN: every exec
# slot of the pod is taken; EEXIST: eid in use; ECANCELED: the pod is shutting down).
# With `capture` it is sent with no fds: stdin is /dev/null, infra reads stdout and stderr
# (one pipe) itself, and the one report is exec_exited with the output's first 10 KiB (or
# exec_failed).
def encode_exec(
    eid: int,
    cid: int,
    argv: Sequence[str | bytes],
    env: Sequence[str | bytes],
    cwd: str | bytes | None,
    *,
    tty: bool = False,
    capture: bool = False,
) -> bytes: ...
def encode_exec_signal(eid: int, signo: int, group: bool = False) -> bytes: ...

# infra -> supd reports, one per frame:
#   ("started", cid, pid, time_ns)
#   ("start_failed", cid, step, errno)
#   ("exited", cid, pid, wait_status, time_ns)
#   ("hello", [(cid, pid, started_ns), ...], dropped, last_seq)
#        first frame on a connection accepted on the listening socket, with a pidfd of infra
#        in SCM_RIGHTS; every report not yet acknowledged (seq <= last_seq) follows it
#   ("exec_started", eid, pid)
#   ("exec_failed", eid, step, errno)
#   ("exec_exited", eid, wait_status)
#   ("exec_exited", eid, wait_status, output)    of a capture exec
#   ("log_dropped", cid, errno)        its output is being dropped (errno 0: written again)
#   ("log_full", cid, bytes)   its log passed log_max: once per file, replayed until answered
def decode_report(frame: bytes) -> tuple: ...  # ValueError when malformed
def report_seq(frame: bytes) -> int: ...  # the seq every report but HELLO ends with

# The CRI log timestamp infra writes for CLOCK_REALTIME `ns` (exposed for tests).
def _cri_timestamp(ns: int) -> str: ...

# Reaping and signals for supd.
def set_child_subreaper(on: bool = True) -> None: ...
def reap_all() -> list[tuple[int, int]]: ...
def waitid_pidfd(pidfd: int) -> int | None: ...
def exit_code(wait_status: int) -> int: ...
def pidfd_send_signal(pidfd: int, signo: int) -> None: ...
def kill_group(pgid: int, signo: int) -> None: ...
def signalfd(signals: Iterable[int]) -> int: ...
def read_signalfd(fd: int) -> list[int]: ...

# unshare(2) of CLONE_NEW* flags for the calling process (single-threaded for CLONE_NEWUSER).
def unshare(flags: int) -> None: ...

# A non-blocking, close-on-exec socket created inside the network namespace that `nsfd`
# (a pidfd or /proc/PID/ns/net fd) refers to; the calling thread steps in and back out.
def socket_in_netns(nsfd: int, family: int, type_: int, proto: int = 0) -> int: ...
