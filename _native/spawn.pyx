# The clone() -> execve() path, after CPython's Modules/_posixsubprocess.c.
#
# The parent converts everything to C data first (SpawnArgs); spawn_process() then runs
# without the GIL: clone3(2) like fork(2), and in the child only async-signal-safe system
# calls (signal-safety(7)) on that data: no Python objects, no malloc, no stdio, no
# strerror, no glibc wrapper that keeps process-wide state (see child_set_ids). The child
# has one error exit: write a child_error record to a close-on-exec pipe and _exit(127).
# The parent reads that pipe to EOF: EOF with no record means execve() succeeded.

# execvp(3) and Kubernetes use this PATH when the environment has none.
cdef const char *DEFAULT_PATH = b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The clone flags a caller may ask for: namespaces only. CLONE_VM, CLONE_THREAD, CLONE_FILES
# and friends would break the fork-like contract the child code relies on.
cdef uint64_t CLONE_NEW_MASK = (
    system.CLONE_NEWNS | system.CLONE_NEWPID | system.CLONE_NEWNET | system.CLONE_NEWIPC
    | system.CLONE_NEWUTS | system.CLONE_NEWUSER | system.CLONE_NEWCGROUP
)


# ---------------------------------------------------------------------------------------
# Shared C helpers (parent and child; all async-signal-safe)

cdef inline void close_if_open(int fd) noexcept nogil:
    # close(2): not retried on EINTR, on Linux the fd is released either way.
    if fd >= 0:
        system.close(fd)


cdef int move_above_stdio(int fd) noexcept nogil:
    """Return `fd` itself when it is >= 3, else a close-on-exec duplicate >= 3 (closing the
    original): a fd sitting on 0, 1 or 2 would be clobbered by the dup2() onto stdio."""
    cdef int moved
    if fd < 0 or fd >= 3:
        return fd
    moved = system.fcntl(fd, system.F_DUPFD_CLOEXEC, 3)
    if moved >= 0:
        system.close(fd)
    return moved


cdef pid_t clone_fork(uint64_t flags, int *pidfd, int exit_signal, int cgroup_dir) noexcept nogil:
    """clone3(2) used like fork(2): no CLONE_VM, stack 0 (the child runs on a copy of the
    caller's stack); CLONE_PIDFD when `pidfd` is given. With exit_signal SIGCHLD the child
    is an ordinary one; with 0 it is a "clone" child (wait(2), __WCLONE) that sends no
    signal when it ends and that waitpid(-1) without __WALL never reports. CLONE_INTO_CGROUP
    when `cgroup_dir` >= 0 (a cgroup v2 directory: the child starts life there, so nothing
    it does is accounted elsewhere). The raw syscall
    skips glibc's fork handlers: the child must not use glibc state that belongs to other
    threads (locks, malloc, the thread list)."""
    cdef system.supd_clone_args args
    cdef size_t size = system.SUPD_CLONE_ARGS_SIZE_VER0
    memset(&args, 0, sizeof(args))
    args.flags = flags
    if pidfd != NULL:
        args.flags |= system.CLONE_PIDFD
        args.pidfd = <uint64_t><uintptr_t>pidfd
    if cgroup_dir >= 0:
        args.flags |= system.SUPD_CLONE_INTO_CGROUP
        args.cgroup = <uint64_t>cgroup_dir
        size = system.SUPD_CLONE_ARGS_SIZE_VER2
    args.exit_signal = <uint64_t>exit_signal
    return <pid_t>system.syscall(system.SYS_clone3, &args, size)


cdef pid_t clone_blocked(uint64_t flags, int *pidfd, int exit_signal,
                         int cgroup_dir) noexcept nogil:
    """clone_fork() with every signal blocked across the clone, so that no handler of the
    parent (Python's, which writes to the wakeup fd it shares with the child) runs in the
    child before it resets them. The parent gets its mask back; the child keeps all signals
    blocked until it has reset every disposition (child_reset_signals)."""
    cdef system.sigset_t all_signals, saved
    cdef pid_t pid
    cdef int err
    system.sigfillset(&all_signals)
    system.pthread_sigmask(system.SIG_SETMASK, &all_signals, &saved)
    pid = clone_fork(flags, pidfd, exit_signal, cgroup_dir)
    if pid != 0:
        err = errno
        system.pthread_sigmask(system.SIG_SETMASK, &saved, NULL)
        system.set_errno(err)
    return pid


cdef void child_report_error(int errfd, int step, int err) noexcept nogil:
    cdef child_error rec
    rec.step = step
    rec.err = err
    while system.write(errfd, &rec, sizeof(rec)) < 0 and errno == system.EINTR:
        pass


# Facts about this process that its children inherit with its memory, so that a child
# need not find them out again at each spawn (a container start, an exec probe).
cdef bint DISPOSITIONS_DEFAULT = False  # set by infra and zygote once they have reset them
cdef uint64_t BOUNDING = 0              # the capability bounding set (bounding_set())
cdef bint BOUNDING_KNOWN = False


cdef uint64_t read_bounding() noexcept nogil:
    """The capability bounding set: PR_CAPBSET_READ for each capability until EINVAL past
    the kernel's last one, as libcap does (41 calls, 12 µs here)."""
    cdef uint64_t bset = 0
    cdef int cap, have
    for cap in range(64):
        have = system.prctl(system.PR_CAPBSET_READ, <unsigned long>cap, 0, 0, 0)
        if have < 0:
            break
        if have == 1:
            bset |= (<uint64_t>1) << cap
    return bset


cdef uint64_t bounding_set() noexcept nogil:
    """This process's bounding set, read once. It shrinks only by the process's own
    PR_CAPBSET_DROP, which supd, the zygote and infras never make, and becomes full in a
    user namespace it creates or joins (user_namespaces(7)): forget_bounding() then."""
    global BOUNDING, BOUNDING_KNOWN
    if not BOUNDING_KNOWN:
        BOUNDING = read_bounding()
        BOUNDING_KNOWN = True
    return BOUNDING


cdef void forget_bounding() noexcept nogil:
    global BOUNDING_KNOWN
    BOUNDING_KNOWN = False


cdef void child_reset_dispositions() noexcept nogil:
    """Every disposition back to SIG_DFL: SIG_IGN survives execve(2) (signal(7)), and the
    parent's handlers must not run here. glibc refuses its two internal signals (EINVAL):
    harmless, execve resets handled signals anyway."""
    cdef system.sigaction_t sa
    cdef int signo
    memset(&sa, 0, sizeof(sa))
    sa.sa_handler = system.SIG_DFL
    system.sigemptyset(&sa.sa_mask)
    for signo in range(1, system.NSIG):
        if signo != system.SIGKILL and signo != system.SIGSTOP:
            system.sigaction(signo, &sa, NULL)


cdef void child_reset_signals() noexcept nogil:
    """Reset dispositions, then (only then) clear the mask inherited from clone_blocked().
    A child of infra has nothing to reset: infra reset them all and installs no handler
    (62 sigaction calls, 20 µs a container start here)."""
    cdef system.sigset_t empty
    if not DISPOSITIONS_DEFAULT:
        child_reset_dispositions()
    system.sigemptyset(&empty)
    system.pthread_sigmask(system.SIG_SETMASK, &empty, NULL)


cdef int close_range_raw(unsigned int first, unsigned int last) noexcept nogil:
    if first > last:
        return 0
    return <int>system.syscall(system.SYS_close_range, first, last, 0)


cdef inline bint fd_kept(int fd, const int *keep, int nkeep) noexcept nogil:
    cdef int i
    for i in range(nkeep):
        if keep[i] == fd:
            return True
    return False


cdef void close_fds_slow(const int *keep, int nkeep) noexcept nogil:
    """Fallback when close_range(2) is missing (Linux < 5.9): walk /proc/self/fd with raw
    getdents64(2) into a stack buffer (opendir() would malloc), as _posixsubprocess does;
    without /proc, close every fd below a generous bound."""
    cdef char buf[4096]
    cdef long n, pos
    cdef int dirfd, fd
    cdef unsigned short reclen
    cdef const char *name
    dirfd = system.open(b"/proc/self/fd", system.O_RDONLY | system.O_DIRECTORY | system.O_CLOEXEC)
    if dirfd < 0:
        for fd in range(3, 65536):
            if not fd_kept(fd, keep, nkeep):
                system.close(fd)
        return
    while True:
        n = system.syscall(system.SYS_getdents64, dirfd, buf, sizeof(buf))
        if n <= 0:
            break
        pos = 0
        while pos < n:
            # struct linux_dirent64: u64 d_ino, s64 d_off, u16 d_reclen, u8 d_type, d_name
            memcpy(&reclen, buf + pos + 16, 2)
            name = buf + pos + 19
            fd = parse_fd(name)
            if fd >= 3 and fd != dirfd and not fd_kept(fd, keep, nkeep):
                system.close(fd)
            pos += reclen
    system.close(dirfd)


cdef int parse_fd(const char *s) noexcept nogil:
    cdef int value = 0
    if s[0] == 0:
        return -1
    while s[0] != 0:
        if s[0] < 48 or s[0] > 57 or value > 100000000:
            return -1
        value = value * 10 + (s[0] - 48)
        s += 1
    return value


cdef void close_other_fds(const int *keep, int nkeep) noexcept nogil:
    """Close every fd >= 3 except `keep` (ascending, all >= 3), with close_range(2)."""
    cdef unsigned int first = 3
    cdef int i
    for i in range(nkeep):
        if close_range_raw(first, <unsigned int>keep[i] - 1) < 0:
            close_fds_slow(keep, nkeep)
            return
        first = <unsigned int>keep[i] + 1
    if close_range_raw(first, system.SUPD_CLOSE_RANGE_MAX) < 0:
        close_fds_slow(keep, nkeep)


cdef const char *env_path(char **envp) noexcept nogil:
    """The value of the first PATH= in `envp` (getenv(3) semantics), or NULL."""
    cdef char *entry
    if envp == NULL:
        return NULL
    while envp[0] != NULL:
        entry = envp[0]
        if strncmp(entry, b"PATH=", 5) == 0:
            return entry + 5
        envp += 1
    return NULL


cdef long exec_paths_size(const char *file, const char *path) noexcept nogil:
    """Bytes build_exec_paths() needs for its buffer (an upper bound)."""
    cdef long ndirs = 1
    cdef const char *p = path
    while p[0] != 0:
        if p[0] == 58:  # ':'
            ndirs += 1
        p += 1
    return <long>(p - path) + ndirs * (<long>strlen(file) + 2) + 1


cdef int build_exec_paths(const char *file, const char *path, char *buf, size_t buflen,
                          char **out, int maxout) noexcept nogil:
    """execvp(3)'s candidates for `file`: the file itself when it contains a '/', else
    DIR/file for each DIR of `path` (the child's PATH, or the default when NULL), an empty
    DIR meaning the current directory. Writes a NULL-terminated list to `out`; returns the
    count, or -1 when `buf` or `out` is too small. An empty file has no candidate (ENOENT)."""
    cdef size_t flen = strlen(file)
    cdef size_t used = 0, dlen
    cdef const char *dir_start
    cdef const char *dir_end
    cdef int count = 0
    if maxout < 1:
        return -1
    if flen == 0:
        out[0] = NULL
        return 0
    if strchr(file, 47) != NULL:  # '/'
        if maxout < 2:
            return -1
        out[0] = <char *>file
        out[1] = NULL
        return 1
    if path == NULL:
        path = DEFAULT_PATH
    dir_start = path
    while True:
        dir_end = strchr(dir_start, 58)  # ':'
        if dir_end == NULL:
            dir_end = dir_start + strlen(dir_start)
        dlen = <size_t>(dir_end - dir_start)
        if count + 1 >= maxout or used + dlen + flen + 2 > buflen:
            return -1
        out[count] = buf + used
        count += 1
        if dlen > 0:
            memcpy(buf + used, dir_start, dlen)
            used += dlen
            buf[used] = 47  # '/'
            used += 1
        memcpy(buf + used, file, flen + 1)
        used += flen + 1
        if dir_end[0] == 0:
            break
        dir_start = dir_end + 1
    out[count] = NULL
    return count


# ---------------------------------------------------------------------------------------
# The child

cdef int child_stdio(const int *stdio) noexcept nogil:
    """dup2() the three sources onto 0, 1, 2. A source that already sits on one of 0..2 but
    not on its own target could be overwritten by an earlier dup2 (bpo-12607), so such
    sources are first moved above 2. A source already in place only loses FD_CLOEXEC."""
    cdef int src[3]
    cdef int i, flags
    for i in range(3):
        src[i] = stdio[i]
        if 0 <= src[i] < 3 and src[i] != i:
            src[i] = system.fcntl(src[i], system.F_DUPFD_CLOEXEC, 3)
            if src[i] < 0:
                return -1
    for i in range(3):
        if src[i] < 0:
            continue
        if src[i] == i:
            flags = system.fcntl(i, system.F_GETFD)
            if flags < 0 or system.fcntl(i, system.F_SETFD, flags & ~system.FD_CLOEXEC) < 0:
                return -1
        elif system.dup2(src[i], i) < 0:
            return -1
    return 0


cdef int child_set_ids(const spawn_cfg *c) noexcept nogil:
    """setgroups/setresgid/setresuid as raw system calls. glibc's wrappers broadcast the
    change to every thread it knows of (nptl setxid): after a raw clone those threads are
    the parent's, and the broadcast would signal them or wait forever. The kernel calls
    change the calling thread only, which here is the whole process. Returns the failed
    step, or -1."""
    if c.set_groups and system.syscall(system.SYS_setgroups, c.ngroups, c.groups) < 0:
        return STEP_SETGROUPS
    if c.set_gid and system.syscall(system.SYS_setresgid, c.gid, c.gid, c.gid) < 0:
        return STEP_SETGID
    if c.set_uid and system.syscall(system.SYS_setresuid, c.uid, c.uid, c.uid) < 0:
        return STEP_SETUID
    return -1


cdef int child_join_cgroups(const spawn_cfg *c) noexcept nogil:
    """cgroup v1: write "0" (the writer itself, cgroup-v1.rst) to each hierarchy's
    cgroup.procs, before anything the container does is accounted elsewhere."""
    cdef int i
    for i in range(c.n_cgroup_procs):
        while system.write(c.cgroup_procs[i], b"0", 1) < 0:
            if errno != system.EINTR:
                return -1
    return 0


cdef int child_drop_bounding(const spawn_cfg *c) noexcept nogil:
    """Drop from the bounding set every capability in it and not in `c.caps`
    (PR_CAPBSET_DROP needs CAP_SETPCAP, so this comes before the uid change). The set is
    the parent's, read once (bounding_set()), unless this child made or joined a user
    namespace, where it starts full: then it is read here."""
    cdef bint fresh = (c.clone_flags & system.CLONE_NEWUSER) != 0
    cdef uint64_t drop
    cdef int cap
    for cap in range(c.n_ns):
        if c.ns_types[cap] == system.CLONE_NEWUSER:
            fresh = True
    drop = (read_bounding() if fresh else bounding_set()) & ~c.caps
    for cap in range(64):
        if (drop >> cap) & 1:
            if system.prctl(system.PR_CAPBSET_DROP, <unsigned long>cap, 0, 0, 0) < 0:
                return -1
    return 0


cdef int child_set_caps(uint64_t caps) noexcept nogil:
    """Permitted and effective become what is left of `caps` after the uid change (a
    non-root uid has none left, as runc without ambient capabilities), inheritable none
    (CVE-2022-24769), ambient none. execve then gives a root process its bounding set and
    a non-root one nothing (capabilities(7)), which is what Kubernetes users get from
    containerd and CRI-O."""
    cdef system.supd_cap_header header
    cdef system.supd_cap_data data[2]
    cdef uint64_t permitted
    memset(&header, 0, sizeof(header))
    memset(data, 0, sizeof(data))
    header.version = system.SUPD_CAP_VERSION_3
    if system.syscall(system.SYS_capget, &header, data) < 0:
        return -1
    permitted = (<uint64_t>data[0].permitted | (<uint64_t>data[1].permitted << 32)) & caps
    data[0].permitted = data[0].effective = <uint32_t>permitted
    data[1].permitted = data[1].effective = <uint32_t>(permitted >> 32)
    data[0].inheritable = data[1].inheritable = 0
    if system.syscall(system.SYS_capset, &header, data) < 0:
        return -1
    # Linux < 4.3 has no ambient set (EINVAL): nothing to clear then.
    system.prctl(system.PR_CAP_AMBIENT, system.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    return 0


cdef int child_exec(const spawn_cfg *c) noexcept nogil:
    """execve() each candidate with execvp(3)'s errno rules (glibc posix/execvpe.c): EACCES
    is remembered and the search goes on; "not here" errors (ENOENT, ENOTDIR, ESTALE,
    ENODEV, ETIMEDOUT) go on; any other error stops the search and is reported. A search
    that finds nothing reports EACCES if one candidate had it, else the last error. Unlike
    execvp, ENOEXEC is reported rather than retried with /bin/sh. Sets errno."""
    cdef char **path = c.exec_paths
    cdef int err = system.ENOENT
    cdef bint saw_eacces = False
    while path[0] != NULL:
        system.execve(path[0], c.argv, c.envp)
        err = errno
        if err == system.EACCES:
            saw_eacces = True
        elif (err != system.ENOENT and err != system.ENOTDIR and err != system.ESTALE
              and err != system.ENODEV and err != system.ETIMEDOUT):
            system.set_errno(err)
            return -1
        path += 1
    system.set_errno(system.EACCES if saw_eacces else err)
    return -1


cdef int child_steps(const spawn_cfg *c, int errfd) noexcept nogil:
    """The child's steps in order. Returns the step that failed, errno set; on success
    execve() does not return. Signals stay blocked until everything that a handler could
    interrupt is done, then dispositions are reset before the mask is cleared."""
    cdef int i, step
    cdef int keep[1]
    if child_join_cgroups(c) < 0:
        return STEP_CGROUP
    for i in range(c.n_ns):
        if system.setns(c.ns_fds[i], c.ns_types[i]) < 0:
            return STEP_SETNS
    if c.hostname != NULL and system.sethostname(c.hostname, c.hostname_len) < 0:
        return STEP_SETHOSTNAME
    if c.mount_proc:
        # mount_namespaces(7): a new mount namespace inherits shared propagation; make it
        # private first so the proc mount below does not propagate back to the host.
        if system.mount(NULL, b"/", NULL, system.MS_REC | system.MS_PRIVATE, NULL) < 0:
            return STEP_MOUNT_PRIVATE
        # proc(5): a proc mount shows the PID namespace of the process that mounts it.
        if system.mount(b"proc", b"/proc", b"proc",
                        system.MS_NOSUID | system.MS_NODEV | system.MS_NOEXEC, NULL) < 0:
            return STEP_MOUNT_PROC
    step = child_fs(c)
    if step >= 0:
        return step
    if c.cwd != NULL and system.chdir(c.cwd) < 0:
        return STEP_CHDIR
    if child_stdio(c.stdio) < 0:
        return STEP_DUP2
    if c.setsid and system.setsid() < 0:
        return STEP_SETSID
    # tty_ioctl(4): a session leader without a controlling terminal acquires fd 0's.
    if c.ctty and system.ioctl(0, system.TIOCSCTTY, 0) < 0:
        return STEP_CTTY
    if c.set_caps and child_drop_bounding(c) < 0:
        return STEP_CAPBSET
    step = child_set_ids(c)
    if step >= 0:
        return step
    if c.set_caps and child_set_caps(c.caps) < 0:
        return STEP_CAPSET
    if c.no_new_privs and system.prctl(system.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0:
        return STEP_NO_NEW_PRIVS
    # prctl(2): credential changes clear the parent-death signal, so it comes after them.
    if c.pdeathsig and system.prctl(system.PR_SET_PDEATHSIG, <unsigned long>c.pdeathsig,
                                    0, 0, 0) < 0:
        return STEP_PDEATHSIG
    child_reset_signals()
    keep[0] = errfd
    close_other_fds(keep, 1)
    child_exec(c)
    return STEP_EXEC


cdef void spawn_child(const spawn_cfg *c, int errfd) noexcept nogil:
    cdef int step = child_steps(c, errfd)
    child_report_error(errfd, step, errno)
    system._exit(127)


# ---------------------------------------------------------------------------------------
# The parent

cdef ssize_t read_full(int fd, void *buf, size_t size) noexcept nogil:
    """read(2) until `size` bytes or EOF; returns the count, or -1 with errno."""
    cdef size_t got = 0
    cdef ssize_t n
    while got < size:
        n = system.read(fd, <char *>buf + got, size - got)
        if n == 0:
            break
        if n < 0:
            if errno == system.EINTR:
                continue
            return -1
        got += <size_t>n
    return <ssize_t>got


cdef void reap_pid(pid_t pid) noexcept nogil:
    # __WALL: the child may be a "clone" child (spawn_infra with exit_signal 0).
    cdef int status
    while system.waitpid(pid, &status, system.WALL) < 0 and errno == system.EINTR:
        pass


cdef int wait_child_ready(pid_t pid, int readfd, spawn_result *r) noexcept nogil:
    """Read the error pipe to EOF. A full record means the child failed: reap it and fill
    `r`. Returns 0 when the child got through (exec'd, or infra ready), -1 on failure."""
    cdef child_error rec
    cdef ssize_t got = read_full(readfd, &rec, sizeof(rec))
    system.close(readfd)
    if got != sizeof(rec):
        return 0
    reap_pid(pid)
    r.step = rec.step
    r.err = rec.err
    return -1


cdef int open_error_pipe(int *fds, spawn_result *r) noexcept nogil:
    if system.pipe2(fds, system.O_CLOEXEC) < 0:
        r.step = STEP_PIPE
        r.err = errno
        return -1
    fds[1] = move_above_stdio(fds[1])
    if fds[1] < 0:
        r.step = STEP_PIPE
        r.err = errno
        system.close(fds[0])
        return -1
    return 0


cdef int spawn_process(const spawn_cfg *c, bint want_pidfd, spawn_result *r) noexcept nogil:
    """Clone and exec one process described by `c`. Returns 0 with r.pid (and r.pidfd when
    asked), or -1 with r.step and r.err; a child that failed has been reaped."""
    cdef int errpipe[2]
    cdef int pidfd = -1
    cdef int self_pidns = -1
    cdef int err
    cdef pid_t pid
    r.pid = -1
    r.pidfd = -1
    if open_error_pipe(errpipe, r) < 0:
        return -1
    if c.pidns_fd >= 0:
        # setns(2): joining a PID namespace only sets the one of the caller's future
        # children, so it happens here, in this thread, and is undone after the clone.
        self_pidns = system.open(b"/proc/thread-self/ns/pid", system.O_RDONLY | system.O_CLOEXEC)
        if self_pidns < 0 or system.setns(c.pidns_fd, system.CLONE_NEWPID) < 0:
            r.step = STEP_SETNS
            r.err = errno
            close_if_open(self_pidns)
            system.close(errpipe[0])
            system.close(errpipe[1])
            return -1
    pid = clone_blocked(c.clone_flags, &pidfd if want_pidfd else NULL, system.SIGCHLD,
                        c.cgroup_dir)
    if pid == 0:
        spawn_child(c, errpipe[1])
    err = errno
    if self_pidns >= 0:
        system.setns(self_pidns, system.CLONE_NEWPID)
        system.close(self_pidns)
    system.close(errpipe[1])
    if pid < 0:
        system.close(errpipe[0])
        # clone3(2) with CLONE_INTO_CGROUP: EBADF (not a cgroup2 directory), EBUSY (the
        # cgroup has children with controllers), EOPNOTSUPP (a domain-invalid cgroup).
        r.step = STEP_CGROUP if c.cgroup_dir >= 0 and err != system.EAGAIN else STEP_CLONE
        r.err = err
        return -1
    if wait_child_ready(pid, errpipe[0], r) < 0:
        close_if_open(pidfd)
        return -1
    r.pid = pid
    r.pidfd = pidfd
    return 0


# ---------------------------------------------------------------------------------------
# Python side

bounding_set()  # at import, before supd clones anything: inherited by all it clones

cdef bytes fs_bytes(object value, str what):
    """`value` (str, bytes or path-like) as bytes with no NUL, which C would truncate at."""
    cdef bytes data = _os.fsencode(value)
    if b"\0" in data:
        raise ValueError(f"embedded null byte in {what}")
    return data


cdef uint64_t check_clone_flags(object clone_flags) except? 0:
    cdef uint64_t flags = clone_flags
    if flags & ~CLONE_NEW_MASK:
        raise ValueError(f"clone_flags {flags:#x}: only CLONE_NEW* flags are allowed")
    return flags


cdef class SpawnArgs:
    """The C form of one spawn() call: owns the arrays the child reads (freed with the
    object) and keeps alive the bytes objects they point into."""

    cdef spawn_cfg cfg
    cdef list keep
    cdef char **argv
    cdef char **envp
    cdef char **paths
    cdef char *path_buf
    cdef int *ns_fds
    cdef int *ns_types
    cdef gid_t *groups
    cdef int *cgroup_procs
    cdef fs_op *fs

    def __cinit__(self):
        memset(&self.cfg, 0, sizeof(self.cfg))
        self.keep = []
        self.argv = self.envp = self.paths = NULL
        self.path_buf = NULL
        self.ns_fds = self.ns_types = NULL
        self.groups = NULL
        self.cgroup_procs = NULL
        self.cfg.cgroup_dir = -1
        self.fs = NULL

    def __dealloc__(self):
        PyMem_Free(self.fs)
        PyMem_Free(self.argv)
        PyMem_Free(self.envp)
        PyMem_Free(self.paths)
        PyMem_Free(self.path_buf)
        PyMem_Free(self.ns_fds)
        PyMem_Free(self.ns_types)
        PyMem_Free(self.groups)
        PyMem_Free(self.cgroup_procs)

    cdef char **string_array(self, object items, str what) except NULL:
        cdef list encoded = [fs_bytes(item, what) for item in items]
        cdef char **array = <char **>PyMem_Malloc((len(encoded) + 1) * sizeof(char *))
        cdef Py_ssize_t i
        if array == NULL:
            raise MemoryError()
        for i in range(len(encoded)):
            array[i] = <char *>(<bytes>encoded[i])
        array[len(encoded)] = NULL
        self.keep.append(encoded)
        return array

    cdef const char *keep_string(self, object value, str what) except? NULL:
        if value is None:
            return NULL
        cdef bytes data = fs_bytes(value, what)
        self.keep.append(data)
        return <const char *>data

    cdef int set_program(self, object argv, object env) except -1:
        if isinstance(argv, (str, bytes)) or not argv:
            raise ValueError("argv must be a non-empty sequence of strings")
        if env is None:
            env = [k + b"=" + v for k, v in _os.environb.items()]
        self.argv = self.string_array(argv, "argv")
        self.envp = self.string_array(env, "env")
        self.cfg.argv = self.argv
        self.cfg.envp = self.envp
        cdef const char *path = env_path(self.envp)
        if path == NULL:
            path = DEFAULT_PATH
        cdef long size = exec_paths_size(self.argv[0], path)
        cdef int maxout = <int>(size // 2 + 2)
        self.path_buf = <char *>PyMem_Malloc(<size_t>size)
        self.paths = <char **>PyMem_Malloc(<size_t>maxout * sizeof(char *))
        if self.path_buf == NULL or self.paths == NULL:
            raise MemoryError()
        if build_exec_paths(self.argv[0], path, self.path_buf, <size_t>size,
                            self.paths, maxout) < 0:
            raise ValueError("PATH too long")
        self.cfg.exec_paths = self.paths
        return 0

    cdef int set_namespaces(self, uint64_t clone_flags, object setns, object hostname,
                            bint mount_proc) except -1:
        cdef list entries = [(int(fd), int(nstype)) for fd, nstype in setns]
        cdef Py_ssize_t i
        cdef const char *name
        self.cfg.clone_flags = clone_flags
        self.cfg.pidns_fd = -1
        if entries:
            self.ns_fds = <int *>PyMem_Malloc(len(entries) * sizeof(int))
            self.ns_types = <int *>PyMem_Malloc(len(entries) * sizeof(int))
            if self.ns_fds == NULL or self.ns_types == NULL:
                raise MemoryError()
            for i in range(len(entries)):
                self.ns_fds[i] = entries[i][0]
                self.ns_types[i] = entries[i][1]
                if self.cfg.pidns_fd < 0 and self.ns_types[i] & system.CLONE_NEWPID:
                    self.cfg.pidns_fd = self.ns_fds[i]
        self.cfg.ns_fds = self.ns_fds
        self.cfg.ns_types = self.ns_types
        self.cfg.n_ns = <int>len(entries)
        if hostname is not None:
            if not clone_flags & system.CLONE_NEWUTS:
                raise ValueError("hostname needs CLONE_NEWUTS (it would rename the host)")
            name = self.keep_string(hostname, "hostname")
            self.cfg.hostname = name
            self.cfg.hostname_len = strlen(name)
        if mount_proc and not clone_flags & system.CLONE_NEWNS:
            raise ValueError("mount_proc needs CLONE_NEWNS (it would remount the host's /proc)")
        self.cfg.mount_proc = mount_proc
        return 0

    cdef int set_fs(self, object ops) except -1:
        """The filesystem operations (fs.pyx), through their wire form: spawn() runs what a
        START frame would."""
        cdef bytes data = encode_fs(ops)
        cdef int rc, n = 0
        if not self.cfg.clone_flags & system.CLONE_NEWNS:
            raise ValueError("filesystem operations need CLONE_NEWNS (they would change the host)")
        self.keep.append(data)
        self.fs = <fs_op *>PyMem_Malloc(FS_MAX_OPS * sizeof(fs_op))
        if self.fs == NULL:
            raise MemoryError()
        rc = decode_fs(<const char *>data, len(data), self.fs, &n)
        if rc != 0:
            raise_errno(rc)
        self.cfg.fs_ops = self.fs
        self.cfg.n_fs_ops = n
        return 0

    cdef int set_identity(self, long long uid, long long gid, object groups) except -1:
        cdef list values
        cdef Py_ssize_t i
        if uid < -1 or uid >= 0xFFFFFFFF or gid < -1 or gid >= 0xFFFFFFFF:
            raise ValueError("uid and gid must be -1 or in 0..2**32-2")
        self.cfg.set_uid = uid >= 0
        self.cfg.uid = <uid_t>uid if uid >= 0 else 0
        self.cfg.set_gid = gid >= 0
        self.cfg.gid = <gid_t>gid if gid >= 0 else 0
        if groups is not None:
            values = [int(g) for g in groups]
            self.groups = <gid_t *>PyMem_Malloc((len(values) + 1) * sizeof(gid_t))
            if self.groups == NULL:
                raise MemoryError()
            for i in range(len(values)):
                if not 0 <= values[i] < 0xFFFFFFFF:
                    raise ValueError(f"group {values[i]} out of range")
                self.groups[i] = <gid_t>values[i]
            self.cfg.set_groups = True
            self.cfg.groups = self.groups
            self.cfg.ngroups = <int>len(values)
        return 0

    cdef int set_security(self, object caps, bint no_new_privs, int cgroup_dir,
                          object cgroup_procs) except -1:
        """Capabilities (a bit mask; None keeps them), no_new_privs, and the container's
        cgroup (a v2 directory fd for CLONE_INTO_CGROUP, or v1 cgroup.procs fds)."""
        cdef list procs = [int(fd) for fd in cgroup_procs]
        cdef Py_ssize_t i
        if caps is not None:
            if not 0 <= caps < 2**64:
                raise ValueError("caps must be a 64-bit capability mask")
            self.cfg.set_caps = True
            self.cfg.caps = <uint64_t>caps
        self.cfg.no_new_privs = no_new_privs
        self.cfg.cgroup_dir = cgroup_dir if cgroup_dir >= 0 else -1
        if procs:
            self.cgroup_procs = <int *>PyMem_Malloc(len(procs) * sizeof(int))
            if self.cgroup_procs == NULL:
                raise MemoryError()
            for i in range(len(procs)):
                self.cgroup_procs[i] = procs[i]
            self.cfg.cgroup_procs = self.cgroup_procs
            self.cfg.n_cgroup_procs = <int>len(procs)
        return 0


def spawn(argv, *, env=None, cwd=None, clone_flags=0, setns=(), hostname=None,
          int stdin=-1, int stdout=-1, int stderr=-1, bint setsid=False,
          long long uid=-1, long long gid=-1, groups=None, int pdeathsig=0,
          bint mount_proc=False, fs=None, caps=None, bint no_new_privs=False,
          int cgroup_dir=-1, cgroup_procs=()):
    """Clone and exec one process; returns (pid, pidfd). The GIL is released from clone
    to the end of the exec-status read. Raises SpawnError for any failure in the child,
    of clone itself, or of the error pipe."""
    cdef SpawnArgs args = SpawnArgs()
    cdef spawn_result result
    cdef int rc
    args.set_program(argv, env)
    args.set_namespaces(check_clone_flags(clone_flags), setns, hostname, mount_proc)
    if fs:
        args.set_fs(fs)
    args.set_identity(uid, gid, groups)
    args.set_security(caps, no_new_privs, cgroup_dir, cgroup_procs)
    args.cfg.cwd = args.keep_string(cwd, "cwd")
    args.cfg.stdio[0] = stdin
    args.cfg.stdio[1] = stdout
    args.cfg.stdio[2] = stderr
    args.cfg.setsid = setsid
    if not 0 <= pdeathsig < system.NSIG:
        raise ValueError(f"pdeathsig {pdeathsig} out of range")
    args.cfg.pdeathsig = pdeathsig
    with nogil:
        rc = spawn_process(&args.cfg, True, &result)
    if rc < 0:
        raise spawn_error(result.step, result.err, argv[0], cwd,
                          [op[0] + " " + _os.fsdecode(op[1]) for op in fs] if fs else None)
    return (result.pid, result.pidfd)
