# The clone() -> execve() path: the C-level description of one process to start, and the
# step numbers a failing child reports. Shared by spawn() (supd) and infra (containers).


# Steps of the child, in the order they run, then the steps only infra has. The number is
# what a child writes to the error pipe and what infra puts in a start_failed report, so
# the order is part of the wire format: append, never reorder. STEPS (errors.pyx) names them.
cdef enum spawn_step:
    STEP_CLONE = 0
    STEP_PIPE = 1
    STEP_SETNS = 2
    STEP_SETHOSTNAME = 3
    STEP_MOUNT_PRIVATE = 4
    STEP_MOUNT_PROC = 5
    STEP_CHDIR = 6
    STEP_DUP2 = 7
    STEP_SETSID = 8
    STEP_SETGROUPS = 9
    STEP_SETGID = 10
    STEP_SETUID = 11
    STEP_PDEATHSIG = 12
    STEP_EXEC = 13
    STEP_FRAME = 14
    STEP_SLOT = 15
    STEP_PRCTL = 16
    STEP_LOOPBACK = 17
    STEP_DEVNULL = 18
    STEP_SIGNALFD = 19
    STEP_EPOLL = 20
    STEP_CTTY = 21
    STEP_CGROUP = 22
    STEP_CAPBSET = 23
    STEP_CAPSET = 24
    STEP_NO_NEW_PRIVS = 25
    STEP_SYSCTL = 26
    STEP_COUNT = 27


# Everything the child needs, as C data prepared by the parent: the child may not allocate.
# Pointers refer to memory owned by a SpawnArgs object (supd) or infra's static buffers.
ctypedef struct spawn_cfg:
    uint64_t clone_flags
    char **argv                 # NULL-terminated; argv[0] is the file to look up
    char **envp                 # NULL-terminated
    char **exec_paths           # NULL-terminated candidates for argv[0] (PATH search done)
    const char *cwd             # NULL: inherit
    const char *hostname        # NULL: keep
    size_t hostname_len
    const int *ns_fds           # setns(ns_fds[i], ns_types[i]) for i < n_ns, in order
    const int *ns_types
    int n_ns
    int pidns_fd                # >= 0: PID namespace joined around clone (pid_for_children)
    int stdio[3]                # source fd for 0, 1, 2; -1: inherit
    int setsid
    int ctty                    # after setsid: fd 0 (a tty) becomes the controlling terminal
    int set_groups
    int set_gid
    int set_uid
    const gid_t *groups
    int ngroups
    gid_t gid
    uid_t uid
    int pdeathsig               # 0: none
    int mount_proc
    int cgroup_dir              # >= 0: a cgroup v2 directory, clone3 CLONE_INTO_CGROUP
    const int *cgroup_procs     # cgroup v1: cgroup.procs fds the child writes "0" to
    int n_cgroup_procs
    int set_caps                # the bounding set and permitted/effective to `caps`
    uint64_t caps               # capability bit mask (bit N: capability N)
    int no_new_privs            # PR_SET_NO_NEW_PRIVS before execve
    const fs_op *fs_ops         # after mount_proc: the container's filesystem (fs.pyx)
    int n_fs_ops


ctypedef struct spawn_result:
    pid_t pid
    int pidfd                   # -1 when not asked for
    int step                    # on failure: the spawn_step
    int err                     # on failure: the errno


# The fixed record a failing child writes to the close-on-exec error pipe before _exit(127).
ctypedef struct child_error:
    int32_t step
    int32_t err
