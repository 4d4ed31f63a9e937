# The pod infra process: its fixed-size state. Infra never allocates; every table and
# buffer is static (bss of the extension, copied into infra by clone).

cdef enum:
    INFRA_MAX_CONTAINERS = 64           # container slots of one pod
    INFRA_MAX_EXECS = 64                # exec processes running at once in one pod
    INFRA_REPORT_RING = 1024            # reports kept while supd is away
    INFRA_READ_CHUNK = 32768            # one read() of a container's stdout or stderr
    INFRA_DRAIN_LIMIT = 1048576         # bytes drained from a pipe when its process exits
    INFRA_CAPTURE_LIMIT = 10240         # output kept of an EXEC_CAPTURE (maxProbeOutputLength)
    INFRA_MAX_EVENTS = 64               # epoll_wait() batch
    INFRA_FRAMES_PER_WAKEUP = 64        # frames taken from supd before serving the rest
    INFRA_IOV_BATCH = 512               # iovecs per writev() (< IOV_MAX 1024)
    INFRA_PATH_BUF = 131072             # PATH candidates of one START
    INFRA_MAX_PATHS = 4096
    INFRA_CMSG_FDS = 8                  # fds kept from one frame (more: closed, malformed)
    INFRA_SYSCTL_BUF = 8192             # the pod's sysctls: "path\0value\0" pairs
    INFRA_LOG_PAUSE = 2                 # times log_max at which the pipes wait for REOPEN

    # epoll_data.u64 = kind << 32 | slot index
    EV_CONN = 1
    EV_LISTEN = 2
    EV_SIGNALFD = 3
    EV_STDOUT = 4
    EV_STDERR = 5
    EV_EXEC_OUT = 6                     # an EXEC_CAPTURE process's output pipe

    SLOT_FREE = 0
    SLOT_RUNNING = 1                    # pid alive (not yet reaped)
    SLOT_EXITED = 2                     # reaped, exit reported; pipes may still be open;
    # an exec slot: reaped, its EXEC_CAPTURED not yet sent


ctypedef struct container_slot:
    int state
    uint32_t cid
    pid_t pid
    int64_t started_ns
    int out_fd                          # read ends of the stdout/stderr pipes, -1 at EOF
    int err_fd
    int log_fd                          # the CRI log file, closed when both pipes are
    uint64_t log_max                    # LOG_FULL past this many bytes in log_fd (0: never)
    uint64_t log_bytes                  # bytes in log_fd (its size when received + written)
    int log_reported                    # LOG_FULL sent for this log_fd
    int log_paused                      # its pipes out of the epoll set until REOPEN
    int log_dropping                    # its log's writes fail (LOG_DROPPED sent)
    int pidfd                           # CLONE_PIDFD, while running: EXEC joins through it
    uint64_t clone_flags                # the namespaces it has of its own (from START)
    uint32_t id_flags                   # START_SET_UID | START_SET_GID | START_SET_GROUPS
    uid_t uid
    gid_t gid
    uint32_t ngroups                    # the groups themselves: SLOT_GROUPS[slot]
    uint32_t sec_flags                  # START_SET_CAPS | START_NO_NEW_PRIVS | START_CGROUP_INTO
    uint64_t caps
    int n_cgroup                        # its cgroup fds while it runs: SLOT_CGROUP_FDS[slot]


# An exec'd process: a child of infra in a container's namespaces, its stdio supd's fds
# or, with EXEC_CAPTURE, infra's /dev/null and a pipe infra reads into CAPTURED[slot].
ctypedef struct exec_slot:
    int state                           # SLOT_FREE, SLOT_RUNNING or SLOT_EXITED
    uint32_t eid
    pid_t pid
    int capture                         # EXEC_CAPTURE: reported by EXEC_CAPTURED
    int out_fd                          # the read end of its output pipe, -1 when closed
    uint32_t out_len                    # bytes kept in CAPTURED[slot]


# What the parent hands to the infra child (copied with the stack by clone).
ctypedef struct infra_cfg:
    int sock
    int listen
    int errfd
    int pdeathsig
    pid_t parent                        # the cloning process, for the pdeathsig race
    int exit_signal                     # SIGCHLD, or 0: a "clone" child (see clone_fork)
    uint64_t clone_flags
    size_t hostname_len
    char hostname[65]
    int cgroup_dir                      # >= 0: cgroup v2 directory, CLONE_INTO_CGROUP
    int n_sysctls
    const char *sysctls                 # "path\0value\0" pairs in supd's memory (read in setup)


ctypedef struct infra_state:
    int conn                            # the supd connection, -1 while supd is away
    int listen
    int sigfd
    int epfd
    int shutting_down
    int await_ack                       # SHUTDOWN with a listening socket: exit once acked
    int conn_out_armed                  # EPOLLOUT registered on conn
    int running                         # slots in SLOT_RUNNING
    int exec_running                    # exec slots in SLOT_RUNNING
    int self_pidfd                      # a pidfd of infra itself, for HELLO (-1: none)
    # The ring holds every report supd has not acknowledged: ring_count from ring_head,
    # the first ring_sent of them already sent on the current connection.
    uint32_t ring_head
    uint32_t ring_count
    uint32_t ring_sent
    uint64_t ring_dropped
    uint64_t next_seq                   # the seq of the last report queued
    container_slot slots[INFRA_MAX_CONTAINERS]
    exec_slot execs[INFRA_MAX_EXECS]
    report_rec ring[INFRA_REPORT_RING]
