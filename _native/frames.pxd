# The supd <-> infra frame layout: one frame per SOCK_SEQPACKET message, all integers
# little-endian, every frame starting with the 8-byte header (u32 type, u32 cid).
#
# supd -> infra
#   START     header, u64 clone_flags, u32 uid, u32 gid, u32 flags, u32 ngroups, u32 argc,
#             u32 envc, u32 blob_len, u64 caps, u32 groups[ngroups], blob; the blob is
#             argc + envc (+ 1 when START_HAS_CWD, + 1 when START_HAS_HOSTS) NUL-terminated
#             strings: argv, env, cwd, the hosts file. Sent with the log file
#             (O_WRONLY|O_APPEND) as the first fd in SCM_RIGHTS, then the container's
#             cgroup: with START_CGROUP_INTO one cgroup v2 directory (clone3
#             CLONE_INTO_CGROUP), else any cgroup v1 cgroup.procs files (the child writes
#             "0" to each); at most INFRA_CMSG_FDS fds in all.
#   SIGNAL    header, u32 signo, u32 flags (SIGNAL_GROUP)
#   SHUTDOWN  header (cid 0)
# infra -> supd
#   STARTED       header, i32 pid, u32 0, i64 time_ns
#   START_FAILED  header, u32 step, i32 errno
#   EXITED        header, i32 pid, i32 wait_status, i64 time_ns
#   HELLO         header (cid 0), u32 count, u32 0, count * (u32 cid, i32 pid, i64 started_ns)

cdef enum:
    FRAME_HEADER_SIZE = 8
    FRAME_MAX = 65536                   # bytes in one frame, either direction
    FRAME_MAX_STRINGS = 4096            # argv + env entries in a START
    FRAME_MAX_GROUPS = 256              # supplementary groups in a START

    FRAME_START = 1
    FRAME_SIGNAL = 2
    FRAME_SHUTDOWN = 3
    REPORT_STARTED = 16
    REPORT_START_FAILED = 17
    REPORT_EXITED = 18
    REPORT_HELLO = 19

    START_FIXED_SIZE = 52               # header + the fixed fields before groups
    SIGNAL_SIZE = 16
    SHUTDOWN_SIZE = 8
    STARTED_SIZE = 24
    START_FAILED_SIZE = 16
    EXITED_SIZE = 24
    HELLO_FIXED_SIZE = 16
    HELLO_ENTRY_SIZE = 16

    START_MOUNT_PROC = 1                # START flags
    START_HAS_CWD = 2
    START_SET_UID = 4
    START_SET_GID = 8
    START_SET_GROUPS = 16
    START_SET_CAPS = 32                 # bounding, permitted and effective sets to `caps`
    START_NO_NEW_PRIVS = 64
    START_HAS_HOSTS = 128               # bind-mount the blob's last string on /etc/hosts
    START_CGROUP_INTO = 256             # the second fd is a cgroup v2 directory
    START_FLAGS_KNOWN = 511

    SIGNAL_GROUP = 1                    # SIGNAL flags


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
    char **argv                 # argc entries + NULL, then envp: envc entries + NULL
    char **envp
    char *cwd                   # NULL when absent
    char *hosts                 # NULL when absent


# One queued infra -> supd report (not HELLO, which is built from the live slots).
ctypedef struct report_rec:
    uint32_t type
    uint32_t cid
    int32_t a                   # STARTED, EXITED: pid; START_FAILED: step
    int32_t b                   # EXITED: wait status; START_FAILED: errno
    int64_t ns                  # STARTED, EXITED: CLOCK_REALTIME nanoseconds
