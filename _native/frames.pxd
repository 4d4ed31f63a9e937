# The supd <-> infra frame layout: one frame per SOCK_SEQPACKET message, all integers
# little-endian, every frame starting with the 8-byte header (u32 type, u32 cid).
#
# supd -> infra
#   START     header, u64 clone_flags, u32 uid, u32 gid, u32 flags, u32 ngroups, u32 argc,
#             u32 envc, u32 blob_len, u64 caps, u64 log_max, u32 groups[ngroups], blob;
#             log_max: the log size (bytes) past which infra reports LOG_FULL, 0 never;
#             the blob is
#             argc + envc (+ 1 when START_HAS_CWD) NUL-terminated strings: argv, env, cwd;
#             with START_HAS_FS the rest of the frame is an FS section (fs.pyx: the
#             filesystem operations of the container). Sent with the log file
#             (O_WRONLY|O_APPEND) as the first fd in SCM_RIGHTS, then the container's
#             cgroup: with START_CGROUP_INTO one cgroup v2 directory (clone3
#             CLONE_INTO_CGROUP), else any cgroup v1 cgroup.procs files (the child writes
#             "0" to each); at most INFRA_CMSG_FDS fds in all.
#   SIGNAL    header, u32 signo, u32 flags (SIGNAL_GROUP)
#   SHUTDOWN  header (cid 0)
#   ACK       header (cid 0), u64 seq: supd has recorded every report up to `seq`, which
#             infra may now forget (it resends the others to the next supd that connects)
#   EXEC      header (in place of the cid: the exec id, eid), u32 cid (the running container
#             to exec in), u32 flags, u32 argc, u32 envc, u32 blob_len, blob; the blob is
#             argc + envc (+ 1 when EXEC_HAS_CWD) NUL-terminated strings: argv, env, cwd. Sent
#             with exactly three fds in SCM_RIGHTS: the process's stdin, stdout and stderr
#             (with EXEC_TTY, the same pty slave three times: it becomes the controlling tty).
#             With EXEC_CAPTURE, no fds: stdin is infra's /dev/null, stdout and stderr one
#             pipe that infra reads itself, and the process is reported by EXEC_CAPTURED
#             alone (no EXEC_STARTED): what exec probes and hooks need, with no fd passed.
#   EXEC_SIGNAL  header (eid), u32 signo, u32 flags (SIGNAL_GROUP)
#   REOPEN    header (cid), supd's answer to LOG_FULL. With one fd, the container's new
#             log file (O_WRONLY|O_APPEND): infra writes the records after this frame
#             there and closes the old one; a record is never split between two files.
#             With none: go on in the same file, counted from zero (supd could not rotate
#             it). For no such container, or more fds, the fds are closed.
# infra -> supd (every report but HELLO ends with u64 seq, its number: 1, 2, ...)
#   STARTED       header, i32 pid, u32 0, i64 time_ns, u64 seq
#   START_FAILED  header, u32 step, i32 errno, u64 seq
#   EXITED        header, i32 pid, i32 wait_status, i64 time_ns, u64 seq
#   HELLO         header (cid 0), u32 count, u32 dropped, u64 last_seq,
#                 count * (u32 cid, i32 pid, i64 started_ns); sent to each supd that
#                 connects on the listening socket, with a pidfd of infra in SCM_RIGHTS, and
#                 followed by every report not yet acknowledged (up to last_seq); `dropped`
#                 counts reports lost to a full ring (saturated at 2**32-1)
#   EXEC_STARTED  header (eid), then as STARTED
#   EXEC_FAILED   header (eid), then as START_FAILED
#   EXEC_EXITED   header (eid), then as EXITED
#   EXEC_CAPTURED header (eid), i32 pid, i32 wait_status, i64 time_ns, output, u64 seq:
#                 an EXEC_CAPTURE process's exit with the first INFRA_CAPTURE_LIMIT bytes
#                 of its output (the rest was read and dropped)
#   LOG_DROPPED   header, u32 errno, u32 0, u64 seq: a write to the container's log failed
#                 (ENOSPC, EIO) and its output is being dropped; errno 0: written again
#   LOG_FULL      header, u64 bytes, u64 seq: the container's log file holds `bytes` >= its
#                 log_max. Sent once per file (the next after a REOPEN), and again to a
#                 supd that (re)attaches while the file is still over: supd rotates it
#                 and answers with REOPEN. At INFRA_LOG_PAUSE * log_max bytes, while
#                 supd is connected, infra stops reading the container's output until
#                 the REOPEN (the writer blocks on its full pipe; nothing is lost).

cdef enum:
    FRAME_HEADER_SIZE = 8
    FRAME_MAX = 65536                   # bytes in one frame, either direction
    FRAME_MAX_STRINGS = 4096            # argv + env entries in a START or an EXEC
    FRAME_MAX_GROUPS = 256              # supplementary groups in a START

    FRAME_START = 1
    FRAME_SIGNAL = 2
    FRAME_SHUTDOWN = 3
    FRAME_EXEC = 4
    FRAME_EXEC_SIGNAL = 5
    FRAME_KEEP = 6
    FRAME_ACK = 7
    FRAME_REOPEN = 8
    REPORT_STARTED = 16
    REPORT_START_FAILED = 17
    REPORT_EXITED = 18
    REPORT_HELLO = 19
    REPORT_EXEC_STARTED = 20
    REPORT_EXEC_FAILED = 21
    REPORT_EXEC_EXITED = 22
    REPORT_LOG_FULL = 23
    REPORT_LOG_DROPPED = 24
    REPORT_EXEC_CAPTURED = 25

    START_FIXED_SIZE = 60               # header + the fixed fields before groups
    SIGNAL_SIZE = 16
    SHUTDOWN_SIZE = 8
    KEEP_SIZE = 8
    ACK_SIZE = 16
    REOPEN_SIZE = 8
    LOG_FULL_SIZE = 24
    STARTED_SIZE = 32
    START_FAILED_SIZE = 24
    EXITED_SIZE = 32
    HELLO_FIXED_SIZE = 24
    HELLO_ENTRY_SIZE = 16
    EXEC_FIXED_SIZE = 28                # header + the fixed fields before the blob

    START_MOUNT_PROC = 1                # START flags
    START_HAS_CWD = 2
    START_SET_UID = 4
    START_SET_GID = 8
    START_SET_GROUPS = 16
    START_HAS_FS = 32                   # an FS section (fs.pyx) follows the blob
    START_SET_CAPS = 64                 # bounding, permitted and effective sets to `caps`
    START_NO_NEW_PRIVS = 128
    START_CGROUP_INTO = 256             # the second fd is a cgroup v2 directory
    START_FLAGS_KNOWN = 511

    SIGNAL_GROUP = 1                    # SIGNAL and EXEC_SIGNAL flags

    EXEC_TTY = 1                        # EXEC flags
    EXEC_HAS_CWD = 2
    EXEC_CAPTURE = 4
    EXEC_FLAGS_KNOWN = 7


# A decoded START, pointing into the receive buffer (strings) and `groups` storage.
ctypedef struct start_request:
    uint32_t cid
    uint64_t clone_flags
    uint32_t uid
    uint32_t gid
    uint32_t flags
    uint32_t ngroups
    uint32_t argc
    uint32_t envc
    uint64_t caps
    uint64_t log_max
    char **argv                 # argc entries + NULL, then envp: envc entries + NULL
    char **envp
    char *cwd                   # NULL when absent
    int n_fs                    # filesystem operations (in the caller's fs_op array)


# A decoded EXEC, pointing into the receive buffer.
ctypedef struct exec_request:
    uint32_t eid
    uint32_t cid
    uint32_t flags
    uint32_t argc
    uint32_t envc
    char **argv                 # as in start_request
    char **envp
    char *cwd


# One queued infra -> supd report (not HELLO, which is built from the live slots).
ctypedef struct report_rec:
    uint32_t type
    uint32_t cid                # the eid for EXEC_* reports
    int32_t a                   # [EXEC_]STARTED, [EXEC_]EXITED: pid; [EXEC_]FAILED: step
    int32_t b                   # [EXEC_]EXITED: wait status; [EXEC_]FAILED: errno
    int64_t ns                  # STARTED, EXITED: CLOCK_REALTIME ns; LOG_FULL: bytes
    uint64_t seq                # its number, for ACK (0: an exec report of a previous supd)
