# Reaping and signals for supd: the subreaper flag, waitpid(-1) reaping, pidfd waits and
# signals, and a signalfd for the event loop (tini's model: signals are blocked and read
# synchronously, never handled asynchronously).


def set_child_subreaper(bint on=True):
    """PR_SET_CHILD_SUBREAPER (prctl(2)): orphaned descendants are reparented to this
    process instead of init, so supd can reap them."""
    if system.prctl(system.PR_SET_CHILD_SUBREAPER, <unsigned long>(1 if on else 0),
                    0, 0, 0) < 0:
        raise_errno(errno)


def reap_all():
    """waitpid(-1, WNOHANG) until 0 or ECHILD: [(pid, wait_status), ...]."""
    cdef list reaped = []
    cdef int status
    cdef pid_t pid
    while True:
        pid = system.waitpid(-1, &status, system.WNOHANG)
        if pid > 0:
            reaped.append((pid, status))
            continue
        if pid == 0:
            break
        if errno == system.EINTR:
            continue
        if errno == system.ECHILD:
            break
        raise_errno(errno)
    return reaped


cdef int status_from_siginfo(const system.siginfo_t *info) noexcept nogil:
    """The waitpid(2)-style status for a waitid(2) result (the encoding of <bits/waitstatus.h>):
    exit code << 8, or the signal number (| 0x80 with a core dump)."""
    if info.si_code == system.CLD_EXITED:
        return (info.si_status & 0xFF) << 8
    if info.si_code == system.CLD_DUMPED:
        return (info.si_status & 0x7F) | 0x80
    return info.si_status & 0x7F


def waitid_pidfd(int pidfd):
    """Reap the process behind `pidfd` if it has exited: its wait status, else None.
    waitid(2) P_PIDFD with WEXITED|WNOHANG (Linux 5.4), and __WALL so that a "clone" child
    (spawn_infra with exit_signal 0) is found too. A pidfd polls readable once the process
    exits, so callers wait on the fd and then call this."""
    cdef system.siginfo_t info
    cdef int rc
    memset(&info, 0, sizeof(info))
    while True:
        rc = system.waitid(system.SUPD_P_PIDFD, pidfd, &info,
                           system.WEXITED | system.WNOHANG | system.WALL)
        if rc < 0 and errno == system.EINTR:
            continue
        break
    if rc < 0:
        raise_errno(errno)
    if info.si_pid == 0:
        return None
    return status_from_siginfo(&info)


def exit_code(int wait_status):
    """The exit code a shell (and Kubernetes) reports: the code, or 128+N for signal N."""
    if system.WIFEXITED(wait_status):
        return system.WEXITSTATUS(wait_status)
    if system.WIFSIGNALED(wait_status):
        return 128 + system.WTERMSIG(wait_status)
    raise ValueError(f"wait status {wait_status:#x} is not a termination")


def pidfd_send_signal(int pidfd, int signo):
    """pidfd_send_signal(2): signal exactly the process the pidfd refers to (no pid reuse
    race)."""
    if system.syscall(system.SYS_pidfd_send_signal, pidfd, signo, NULL, 0) < 0:
        raise_errno(errno)


def kill_group(int pgid, int signo):
    """kill(-pgid, signo). pgid 0 and 1 are refused: kill(2) reads -0 as the caller's own
    group and -1 as every process."""
    if pgid <= 1:
        raise ValueError(f"refusing to signal process group {pgid}")
    if system.kill(-pgid, signo) < 0:
        raise_errno(errno)


def signalfd(signals):
    """Block `signals` in the calling thread (pthread_sigmask) and return a non-blocking,
    close-on-exec signalfd(2) that reads them. Other threads must block them too, or the
    kernel may deliver them there."""
    cdef system.sigset_t mask
    cdef int fd, signo
    system.sigemptyset(&mask)
    for value in signals:
        signo = value
        if signo <= 0 or signo >= system.NSIG or system.sigaddset(&mask, signo) < 0:
            raise ValueError(f"invalid signal {value}")
    if system.pthread_sigmask(system.SIG_BLOCK, &mask, NULL) != 0:
        raise_errno(system.EINVAL)
    fd = system.signalfd(-1, &mask, system.SFD_NONBLOCK | system.SFD_CLOEXEC)
    if fd < 0:
        raise_errno(errno)
    return fd


def read_signalfd(int fd):
    """The signal numbers waiting on a signalfd, in arrival order ([] when none)."""
    cdef system.signalfd_siginfo infos[16]
    cdef ssize_t n
    cdef size_t k
    cdef list signos = []
    while True:
        n = system.read(fd, infos, sizeof(infos))
        if n < 0:
            if errno == system.EINTR:
                continue
            if errno == system.EAGAIN:
                break
            raise_errno(errno)
        if n == 0:
            break
        for k in range(<size_t>n // sizeof(system.signalfd_siginfo)):
            signos.append(infos[k].ssi_signo)
        if <size_t>n < sizeof(infos):
            break
    return signos
