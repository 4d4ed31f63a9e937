# The infra factory ("zygote"), after Android's zygote and the fork servers of
# multiprocessing. Cloning an infra from supd copies supd's page tables (tens of MB of
# mappings: about 40 µs per MB here) on supd's loop thread, and then the infra spends as long
# again unmapping what it inherited. The zygote is cloned once, while supd is small, releases
# what it inherited like an infra does, and from then on clones each infra from its own small
# image, in its own process: supd only sends a frame and carries on.
#
# The zygote runs only C-level code (the rules of spawn.pyx's child apply) and keeps every
# signal blocked, taking SIGCHLD on a signalfd. It dies with supd (PR_SET_PDEATHSIG, and it
# exits when supd's end of the socket hangs up); the infras it cloned are then reparented
# like any orphan, so pods outlive supd exactly as when supd cloned them itself. It reaps the
# infras (they are its children) and reports their wait status to supd.

cdef char ZYGOTE_BUF[ZYGOTE_SPAWN_SIZE + 8]
cdef uint64_t ZYGOTE_CMSG[16]                   # 128 bytes, aligned for struct cmsghdr


cdef void zygote_send(uint32_t kind, uint32_t rid, int32_t a, int32_t b,
                      int fd) noexcept nogil:
    """One reply frame, with `fd` in SCM_RIGHTS when >= 0. Blocking: supd reads its end from
    its loop; a supd that is gone makes send fail, and the zygote exits."""
    cdef char buf[ZYGOTE_REPLY_SIZE]
    cdef system.msghdr msg
    cdef system.iovec iov
    cdef system.cmsghdr *cmsg
    cdef ssize_t r
    put_u32(buf, kind)
    put_u32(buf + 4, rid)
    put_u32(buf + 8, <uint32_t>a)
    put_u32(buf + 12, <uint32_t>b)
    iov.iov_base = buf
    iov.iov_len = ZYGOTE_REPLY_SIZE
    memset(&msg, 0, sizeof(msg))
    msg.msg_iov = &iov
    msg.msg_iovlen = 1
    if fd >= 0:
        memset(ZYGOTE_CMSG, 0, sizeof(ZYGOTE_CMSG))
        msg.msg_control = ZYGOTE_CMSG
        msg.msg_controllen = system.CMSG_SPACE(sizeof(int))
        cmsg = system.CMSG_FIRSTHDR(&msg)
        cmsg.cmsg_level = system.SOL_SOCKET
        cmsg.cmsg_type = system.SCM_RIGHTS
        cmsg.cmsg_len = system.CMSG_LEN(sizeof(int))
        memcpy(system.CMSG_DATA(cmsg), &fd, sizeof(int))
    while True:
        r = system.sendmsg(INFRA.conn, &msg, system.MSG_NOSIGNAL)
        if r < 0 and errno == system.EINTR:
            continue
        break
    if r < 0:
        system._exit(0)


cdef int zygote_recv(int *fds, int maxfds, int *nfds) noexcept nogil:
    """One frame into ZYGOTE_BUF and its fds. Returns its size; 0 when supd hung up, -1 when
    nothing is waiting. Fds beyond `maxfds` are closed; *nfds = -1 marks such a frame."""
    cdef system.msghdr msg
    cdef system.iovec iov
    cdef system.cmsghdr *cmsg
    cdef ssize_t n
    cdef int k, count, fd
    nfds[0] = 0
    iov.iov_base = ZYGOTE_BUF
    iov.iov_len = sizeof(ZYGOTE_BUF)
    memset(&msg, 0, sizeof(msg))
    msg.msg_iov = &iov
    msg.msg_iovlen = 1
    msg.msg_control = ZYGOTE_CMSG
    msg.msg_controllen = sizeof(ZYGOTE_CMSG)
    while True:
        n = system.recvmsg(INFRA.conn, &msg, system.MSG_DONTWAIT | system.MSG_CMSG_CLOEXEC)
        if n < 0 and errno == system.EINTR:
            continue
        break
    if n < 0:
        return -1 if errno == system.EAGAIN else 0
    cmsg = system.CMSG_FIRSTHDR(&msg)
    while cmsg != NULL:
        if cmsg.cmsg_level == system.SOL_SOCKET and cmsg.cmsg_type == system.SCM_RIGHTS:
            count = <int>((cmsg.cmsg_len - system.CMSG_LEN(0)) // sizeof(int))
            for k in range(count):
                memcpy(&fd, system.CMSG_DATA(cmsg) + k * sizeof(int), sizeof(int))
                if 0 <= nfds[0] < maxfds:
                    fds[nfds[0]] = fd
                    nfds[0] += 1
                else:  # too many: the frame is refused, and none of its fds is kept
                    system.close(fd)
                    for fd in range(nfds[0] if nfds[0] > 0 else 0):
                        system.close(fds[fd])
                    nfds[0] = -1
        cmsg = system.CMSG_NXTHDR(&msg, cmsg)
    if msg.msg_flags & (system.MSG_TRUNC | system.MSG_CTRUNC):
        for fd in range(nfds[0] if nfds[0] > 0 else 0):
            system.close(fds[fd])
        nfds[0] = -1
    return <int>n


cdef void zygote_spawn(int n, int *fds, int nfds) noexcept nogil:
    """SPAWN: clone an infra with the frame's flags and hostname on the fds supd sent (its
    socket, its error pipe, [its listening socket], [its cgroup v2 directory, for clone3's
    CLONE_INTO_CGROUP]) and reply with its pid and pidfd. The infra reports its own set-up
    on the error pipe, which supd reads."""
    cdef infra_cfg cfg
    cdef uint32_t rid = get_u32(ZYGOTE_BUF + 4)
    cdef uint32_t hostname_len = get_u32(ZYGOTE_BUF + 20)
    cdef uint32_t extras = get_u32(ZYGOTE_BUF + 88)
    cdef int want = 2 + (1 if extras & ZYGOTE_WITH_LISTEN else 0) + (
        1 if extras & ZYGOTE_WITH_CGROUP else 0)
    cdef int pidfd = -1
    cdef int i, err
    cdef pid_t pid
    if (n != ZYGOTE_SPAWN_SIZE or nfds != want or hostname_len > ZYGOTE_HOSTNAME_MAX
            or extras & ~<uint32_t>(ZYGOTE_WITH_LISTEN | ZYGOTE_WITH_CGROUP)
            or get_u64(ZYGOTE_BUF + 8) & ~CLONE_NEW_MASK
            or get_u32(ZYGOTE_BUF + 16) >= <uint32_t>system.NSIG):
        for i in range(nfds):
            system.close(fds[i])
        zygote_send(ZYGOTE_SPAWNED, rid, -1, system.EINVAL, -1)
        return
    memset(&cfg, 0, sizeof(cfg))
    cfg.sock = fds[0]
    cfg.errfd = fds[1]
    cfg.listen = fds[2] if extras & ZYGOTE_WITH_LISTEN else -1
    cfg.clone_flags = get_u64(ZYGOTE_BUF + 8)
    cfg.pdeathsig = <int>get_u32(ZYGOTE_BUF + 16)
    cfg.hostname_len = hostname_len
    memcpy(cfg.hostname, ZYGOTE_BUF + 24, hostname_len)
    cfg.hostname[hostname_len] = 0
    cfg.exit_signal = system.SIGCHLD  # the zygote reaps its infras
    cfg.cgroup_dir = fds[nfds - 1] if extras & ZYGOTE_WITH_CGROUP else -1
    cfg.parent = system.getpid()
    pid = clone_blocked(cfg.clone_flags, &pidfd, cfg.exit_signal, cfg.cgroup_dir)
    if pid == 0:
        infra_main(&cfg)
    err = errno
    for i in range(nfds):
        system.close(fds[i])
    if pid < 0:
        zygote_send(ZYGOTE_SPAWNED, rid, -1, err, -1)
        return
    zygote_send(ZYGOTE_SPAWNED, rid, pid, 0, pidfd)
    system.close(pidfd)


cdef void zygote_reap() noexcept nogil:
    cdef system.signalfd_siginfo infos[16]
    cdef int status
    cdef pid_t pid
    while system.read(INFRA.sigfd, infos, sizeof(infos)) > 0:
        pass
    while True:
        pid = system.waitpid(-1, &status, system.WNOHANG)
        if pid < 0 and errno == system.EINTR:
            continue
        if pid <= 0:
            return
        zygote_send(ZYGOTE_EXITED, 0, pid, status, -1)


cdef void zygote_serve() noexcept nogil:
    cdef int fds[4]
    cdef int nfds, n, i, _frame
    for _frame in range(ZYGOTE_FRAMES_PER_WAKEUP):
        n = zygote_recv(fds, 4, &nfds)
        if n == -1:
            return
        if n == 0:
            system._exit(0)  # supd is gone
        if n < 8 or nfds < 0 or get_u32(ZYGOTE_BUF) != ZYGOTE_SPAWN:
            for i in range(nfds if nfds > 0 else 0):
                system.close(fds[i])
            if n >= 8:
                zygote_send(ZYGOTE_SPAWNED, get_u32(ZYGOTE_BUF + 4), -1, system.EINVAL, -1)
            continue
        zygote_spawn(n, fds, nfds)


cdef int zygote_setup(zygote_cfg *cfg) noexcept nogil:
    """Like infra_setup, without the pod: name, parent-death signal, stdio on /dev/null,
    only its socket kept, SIGCHLD on a signalfd, epoll, then the memory released."""
    cdef int keep[2]
    cdef int step
    cdef system.sigset_t mask
    global DISPOSITIONS_DEFAULT
    child_reset_dispositions()
    DISPOSITIONS_DEFAULT = True  # for its children (child_reset_signals)
    if system.prctl(system.PR_SET_NAME, <char *>b"supd-zygote", 0, 0, 0) < 0:
        return STEP_PRCTL
    if system.prctl(system.PR_SET_PDEATHSIG, <unsigned long>system.SIGKILL, 0, 0, 0) < 0:
        return STEP_PDEATHSIG
    cfg.errfd = move_above_stdio(cfg.errfd)
    cfg.sock = move_above_stdio(cfg.sock)
    if cfg.errfd < 0 or cfg.sock < 0:
        return STEP_DUP2
    step = stdio_to_devnull()
    if step:
        return step
    keep[0] = cfg.errfd if cfg.errfd < cfg.sock else cfg.sock
    keep[1] = cfg.sock if cfg.errfd < cfg.sock else cfg.errfd
    close_other_fds(keep, 2)
    if system.chdir(b"/") < 0:
        return STEP_CHDIR
    system.sigemptyset(&mask)
    system.sigaddset(&mask, system.SIGCHLD)
    INFRA.sigfd = system.signalfd(-1, &mask, system.SFD_NONBLOCK | system.SFD_CLOEXEC)
    if INFRA.sigfd < 0:
        return STEP_SIGNALFD
    INFRA.epfd = system.epoll_create1(system.EPOLL_CLOEXEC)
    if INFRA.epfd < 0:
        return STEP_EPOLL
    INFRA.conn = cfg.sock
    if ep_add(INFRA.sigfd, system.EPOLLIN, EV_SIGNALFD, 0) < 0:
        return STEP_EPOLL
    if ep_add(INFRA.conn, system.EPOLLIN | system.EPOLLRDHUP, EV_CONN, 0) < 0:
        return STEP_EPOLL
    release_inherited_memory()
    return -1


cdef void zygote_main(zygote_cfg *cfg) noexcept nogil:
    """The zygote child: never returns. Its state lives in infra's static INFRA (only sigfd,
    epfd and conn), which every infra it clones resets in infra_setup."""
    cdef int step = zygote_setup(cfg)
    cdef int n, k
    if step >= 0:
        child_report_error(cfg.errfd, step, errno)
        system._exit(127)
    system.close(cfg.errfd)
    while True:
        n = system.epoll_wait(INFRA.epfd, EVENTS, ZYGOTE_MAX_EVENTS, -1)
        if n < 0:
            if errno == system.EINTR:
                continue
            system._exit(1)
        for k in range(n):
            if <uint32_t>(EVENTS[k].data.u64 >> 32) == EV_SIGNALFD:
                zygote_reap()
            else:
                zygote_serve()


def start_zygote(int sock):
    """Clone the infra factory serving the SOCK_SEQPACKET fd `sock` (the caller closes its
    own copy); returns (pid, pidfd) once it serves. Call it early, while the caller is
    small: the zygote's image, and so every infra's, is a copy of the caller's at this time,
    less what it releases. PR_SET_PDEATHSIG fires when the calling *thread* exits."""
    cdef zygote_cfg cfg
    cdef spawn_result result
    cdef int errpipe[2]
    cdef int pidfd = -1
    cdef int err
    cdef pid_t pid
    if sock < 0:
        raise ValueError("sock must be an open SOCK_SEQPACKET socket")
    memset(&cfg, 0, sizeof(cfg))
    cfg.sock = sock
    with nogil:
        if open_error_pipe(errpipe, &result) < 0:
            pid = -2
        else:
            cfg.errfd = errpipe[1]
            # exit_signal 0, as for infras: only its pidfd sees it end, so the orphan
            # reaper of PID 1 mode (waitpid(-1)) never takes its status.
            pid = clone_blocked(0, &pidfd, 0, -1)
            if pid == 0:
                zygote_main(&cfg)
            err = errno
            system.close(errpipe[1])
            if pid < 0:
                system.close(errpipe[0])
                result.step = STEP_CLONE
                result.err = err
            elif wait_child_ready(pid, errpipe[0], &result) < 0:
                close_if_open(pidfd)
                pid = -2
    if pid < 0:
        raise spawn_error(result.step, result.err, "supd-zygote")
    return (pid, pidfd)


def encode_zygote_spawn(uint32_t rid, clone_flags, hostname, int pdeathsig=0, *,
                        bint listen=False, bint cgroup=False):
    """A SPAWN frame; send it with the infra's socket, the write end of its error pipe,
    then its listening socket (`listen`) and a cgroup v2 directory to clone it into
    (`cgroup`) in SCM_RIGHTS, in that order."""
    cdef uint64_t flags = check_clone_flags(clone_flags)
    cdef bytes name = fs_bytes(hostname, "hostname")
    cdef char buf[ZYGOTE_SPAWN_SIZE]
    if len(name) > ZYGOTE_HOSTNAME_MAX:
        raise ValueError("hostname longer than 64 bytes")
    if name and not flags & system.CLONE_NEWUTS:
        raise ValueError("hostname needs CLONE_NEWUTS (it would rename the host)")
    if not 0 <= pdeathsig < system.NSIG:
        raise ValueError(f"pdeathsig {pdeathsig} out of range")
    memset(buf, 0, sizeof(buf))
    put_u32(buf, ZYGOTE_SPAWN)
    put_u32(buf + 4, rid)
    put_u64(buf + 8, flags)
    put_u32(buf + 16, <uint32_t>pdeathsig)
    put_u32(buf + 20, <uint32_t>len(name))
    memcpy(buf + 24, <const char *>name, len(name))
    put_u32(buf + 88, (ZYGOTE_WITH_LISTEN if listen else 0) | (ZYGOTE_WITH_CGROUP if cgroup else 0))
    return buf[:ZYGOTE_SPAWN_SIZE]


def decode_zygote_reply(bytes frame):
    """("spawned", rid, pid, errno) or ("exited", pid, wait_status); ValueError otherwise."""
    cdef const char *p = frame
    cdef uint32_t kind
    if len(frame) != ZYGOTE_REPLY_SIZE:
        raise ValueError(f"zygote frame of {len(frame)} bytes")
    kind = get_u32(p)
    if kind == ZYGOTE_SPAWNED:
        return ("spawned", get_u32(p + 4), <int32_t>get_u32(p + 8), <int32_t>get_u32(p + 12))
    if kind == ZYGOTE_EXITED:
        return ("exited", <int32_t>get_u32(p + 8), <int32_t>get_u32(p + 12))
    raise ValueError(f"zygote frame of unknown type {kind}")


cdef int _own_uts = -1  # supd's UTS namespace, opened at the first set_hostname


def set_hostname(int pidfd, hostname):
    """sethostname(2) in the UTS namespace of the process behind `pidfd` (a pod's infra made
    ahead of its pod): this thread joins that namespace with setns(2) (Linux 5.8 takes a
    pidfd), sets the name and returns to its own; other threads are never affected. Every
    thread of supd is in the one namespace it returns to, kept open (a procfs lookup costs
    more than the two setns)."""
    global _own_uts
    cdef bytes name = fs_bytes(hostname, "hostname")
    cdef int rc = 0, err = 0
    if len(name) > ZYGOTE_HOSTNAME_MAX:
        raise ValueError("hostname longer than 64 bytes")
    if _own_uts < 0:
        _own_uts = system.open(b"/proc/thread-self/ns/uts", system.O_RDONLY | system.O_CLOEXEC)
        if _own_uts < 0:
            raise_errno(errno)
    if system.setns(pidfd, system.CLONE_NEWUTS) < 0:
        raise_errno(errno)
    if system.sethostname(<const char *>name, len(name)) < 0:
        rc = -1
        err = errno
    if system.setns(_own_uts, system.CLONE_NEWUTS) < 0:
        raise RuntimeError(f"cannot return to supd's UTS namespace: {_os.strerror(errno)}")
    if rc < 0:
        raise_errno(err)
