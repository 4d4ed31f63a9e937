# The pod infra process: pause, init and shim in one (after Kubernetes' pause.c, tini and
# conmon). spawn_infra() clones it from supd; from then on it runs only the C-level code in
# this file, without the GIL, a Python thread state or malloc: static tables and buffers.
#
# It holds the pod's namespaces, starts containers when supd sends START frames, relays
# their stdout/stderr into CRI log files, starts processes inside running containers when
# supd sends EXEC frames (their stdio are fds from supd: no relay), reaps every child (it is
# PID 1 of the pod's PID namespace when it has one, else a child subreaper), delivers
# signals, and reports (started / start_failed / exited, and the exec_ ones) to supd over a
# SOCK_SEQPACKET socket, keeping reports in a ring while supd is away. Idle, it sleeps in
# epoll_wait(). Log rotation is supd's (it renames, deletes, opens): infra counts each log's
# bytes, says LOG_FULL past the limit START gave, and swaps in the file a REOPEN brings.

cdef infra_state INFRA
cdef char RECV_BUF[FRAME_MAX]
cdef uint64_t CMSG_BUF[32]                      # 256 bytes, aligned for struct cmsghdr
cdef char READ_BUF[INFRA_READ_CHUNK]
# A HELLO or one report (EXEC_CAPTURED, the largest, holds an exec's output)
cdef char SEND_BUF[HELLO_FIXED_SIZE + INFRA_MAX_CONTAINERS * HELLO_ENTRY_SIZE
                   + EXITED_SIZE + INFRA_CAPTURE_LIMIT]
# Each exec slot's captured output: only the pages an exec writes become the infra's own.
cdef char CAPTURED[INFRA_MAX_EXECS][INFRA_CAPTURE_LIMIT]
cdef system.iovec IOV[INFRA_IOV_BATCH]
cdef char PREFIX_F[64]
cdef char PREFIX_P[64]
cdef char *START_PTRS[FRAME_MAX_STRINGS + 2]
cdef gid_t START_GROUPS[FRAME_MAX_GROUPS]
cdef fs_op START_FS[FS_MAX_OPS]
cdef gid_t SLOT_GROUPS[INFRA_MAX_CONTAINERS][FRAME_MAX_GROUPS]  # each container's, for EXEC
cdef int RECV_FDS[INFRA_CMSG_FDS]
cdef int SLOT_CGROUP_FDS[INFRA_MAX_CONTAINERS][INFRA_CMSG_FDS]  # each container's cgroup fds
cdef char PATH_BUF[INFRA_PATH_BUF]
cdef char *EXEC_PATHS[INFRA_MAX_PATHS]
cdef system.epoll_event EVENTS[INFRA_MAX_EVENTS]

# CRI log line prefix: "2026-11-22T10:00:00.123456789Z stdout F " (timestamp, stream, tag).
cdef enum:
    CRI_TIME_LEN = 30
    CRI_PREFIX_LEN = 40


# ---------------------------------------------------------------------------------------
# Time and the CRI log format

cdef int64_t realtime_ns() noexcept nogil:
    cdef system.timespec ts
    system.clock_gettime(system.CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef void civil_from_days(int64_t z, int *year, int *month, int *day) noexcept nogil:
    """Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
    civil_from_days, "chrono-Compatible Low-Level Date Algorithms"): gmtime(3) is not
    async-signal-safe and strftime would be the only formatter in infra."""
    cdef int64_t era, doe, yoe, doy, mp
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day[0] = <int>(doy - (153 * mp + 2) // 5 + 1)
    month[0] = <int>(mp + 3 if mp < 10 else mp - 9)
    year[0] = <int>(yoe + era * 400 + (1 if month[0] <= 2 else 0))


cdef inline char *put_digits(char *p, int64_t value, int width) noexcept nogil:
    cdef int i
    for i in range(width - 1, -1, -1):
        p[i] = <char>(48 + value % 10)
        value //= 10
    return p + width


cdef void format_cri_time(int64_t ns, char *out) noexcept nogil:
    """RFC 3339 UTC with nanoseconds, fixed width as containerd writes it
    ("2006-01-02T15:04:05.000000000Z"): CRI_TIME_LEN bytes, not NUL-terminated."""
    cdef int64_t secs, nsec, days, rem
    cdef int year, month, day
    cdef char *p = out
    if ns < 0:
        ns = 0
    secs = ns // 1000000000
    nsec = ns % 1000000000
    days = secs // 86400
    rem = secs % 86400
    civil_from_days(days, &year, &month, &day)
    p = put_digits(p, year, 4)
    p[0] = 45  # '-'
    p = put_digits(p + 1, month, 2)
    p[0] = 45
    p = put_digits(p + 1, day, 2)
    p[0] = 84  # 'T'
    p = put_digits(p + 1, rem // 3600, 2)
    p[0] = 58  # ':'
    p = put_digits(p + 1, (rem // 60) % 60, 2)
    p[0] = 58
    p = put_digits(p + 1, rem % 60, 2)
    p[0] = 46  # '.'
    p = put_digits(p + 1, nsec, 9)
    p[0] = 90  # 'Z'


cdef void format_cri_prefix(char *out, int64_t ns, bint is_stderr, char tag) noexcept nogil:
    format_cri_time(ns, out)
    memcpy(out + CRI_TIME_LEN, b" stderr " if is_stderr else b" stdout ", 8)
    out[CRI_TIME_LEN + 8] = tag
    out[CRI_TIME_LEN + 9] = 32  # ' '


cdef int WRITE_ERR = 0  # the errno of the last failed log write (relay_once resets it)


cdef void writev_all(int fd, system.iovec *iov, int count) noexcept nogil:
    """writev(2) until everything is written; a log that fails (ENOSPC, EIO) loses the
    rest of this batch (WRITE_ERR says why): infra must keep serving the pod."""
    global WRITE_ERR
    cdef ssize_t n
    cdef size_t done
    while count > 0:
        n = system.writev(fd, iov, count)
        if n < 0:
            if errno == system.EINTR:
                continue
            WRITE_ERR = errno
            return
        done = <size_t>n
        while count > 0 and done >= iov[0].iov_len:
            done -= iov[0].iov_len
            iov += 1
            count -= 1
        if count > 0:
            iov[0].iov_base = <char *>iov[0].iov_base + done
            iov[0].iov_len -= done


cdef size_t write_cri(int logfd, bint is_stderr, char *data, size_t n) noexcept nogil:
    """Append one read's worth of output to the CRI log: each complete line as
    "TIME STREAM F line\\n"; a trailing piece without '\\n' at once as "TIME STREAM P
    piece\\n" (conmon's behaviour: nothing is buffered across reads). Returns the bytes
    of the records (what the file grew by unless a write failed)."""
    cdef size_t pos = 0, end, total = 0
    cdef char *nl
    cdef int count = 0
    if logfd < 0:
        return 0
    cdef int64_t now = realtime_ns()
    format_cri_prefix(PREFIX_F, now, is_stderr, 70)  # 'F'
    format_cri_prefix(PREFIX_P, now, is_stderr, 80)  # 'P'
    while pos < n:
        nl = <char *>memchr(data + pos, 10, n - pos)
        if nl != NULL:
            end = <size_t>(nl - data) + 1
            IOV[count].iov_base = PREFIX_F
            IOV[count].iov_len = CRI_PREFIX_LEN
            IOV[count + 1].iov_base = data + pos
            IOV[count + 1].iov_len = end - pos
            count += 2
            pos = end
        else:
            IOV[count].iov_base = PREFIX_P
            IOV[count].iov_len = CRI_PREFIX_LEN
            IOV[count + 1].iov_base = data + pos
            IOV[count + 1].iov_len = n - pos
            IOV[count + 2].iov_base = <char *>b"\n"
            IOV[count + 2].iov_len = 1
            count += 3
            total += 1
            pos = n
        total += CRI_PREFIX_LEN
        if count + 3 > INFRA_IOV_BATCH:
            writev_all(logfd, IOV, count)
            count = 0
    if count > 0:
        writev_all(logfd, IOV, count)
    return total + n


# ---------------------------------------------------------------------------------------
# epoll and slots

cdef int ep_add(int fd, uint32_t events, uint32_t kind, uint32_t index) noexcept nogil:
    cdef system.epoll_event ev
    ev.events = events
    ev.data.u64 = (<uint64_t>kind << 32) | index
    return system.epoll_ctl(INFRA.epfd, system.EPOLL_CTL_ADD, fd, &ev)


cdef void conn_set_out(bint armed) noexcept nogil:
    cdef system.epoll_event ev
    if INFRA.conn < 0 or INFRA.conn_out_armed == armed:
        return
    ev.events = system.EPOLLIN | system.EPOLLRDHUP | (system.EPOLLOUT if armed else 0)
    ev.data.u64 = <uint64_t>EV_CONN << 32
    if system.epoll_ctl(INFRA.epfd, system.EPOLL_CTL_MOD, INFRA.conn, &ev) == 0:
        INFRA.conn_out_armed = armed


cdef int slot_running(uint32_t cid) noexcept nogil:
    cdef int i
    for i in range(INFRA_MAX_CONTAINERS):
        if INFRA.slots[i].state == SLOT_RUNNING and INFRA.slots[i].cid == cid:
            return i
    return -1


cdef int slot_by_pid(pid_t pid) noexcept nogil:
    cdef int i
    for i in range(INFRA_MAX_CONTAINERS):
        if INFRA.slots[i].state == SLOT_RUNNING and INFRA.slots[i].pid == pid:
            return i
    return -1


cdef int slot_free() noexcept nogil:
    cdef int i
    for i in range(INFRA_MAX_CONTAINERS):
        if INFRA.slots[i].state == SLOT_FREE:
            return i
    return -1


cdef int exec_by_eid(uint32_t eid, int state=SLOT_RUNNING) noexcept nogil:
    """The exec slot of `eid` in `state` (SLOT_EXITED: reaped, its EXEC_CAPTURED unsent)."""
    cdef int i
    for i in range(INFRA_MAX_EXECS):
        if INFRA.execs[i].state == state and INFRA.execs[i].eid == eid:
            return i
    return -1


cdef int exec_by_pid(pid_t pid) noexcept nogil:
    cdef int i
    for i in range(INFRA_MAX_EXECS):
        if INFRA.execs[i].state == SLOT_RUNNING and INFRA.execs[i].pid == pid:
            return i
    return -1


cdef int exec_free() noexcept nogil:
    cdef int i
    for i in range(INFRA_MAX_EXECS):
        if INFRA.execs[i].state == SLOT_FREE:
            return i
    return -1


cdef void slot_maybe_free(int i) noexcept nogil:
    """A slot is free once its process is reaped and both pipes reached EOF (grandchildren
    may hold them open long after the container's own exit)."""
    cdef container_slot *s = &INFRA.slots[i]
    if s.state == SLOT_EXITED and s.out_fd < 0 and s.err_fd < 0:
        close_if_open(s.log_fd)
        s.log_fd = -1
        s.state = SLOT_FREE


cdef void close_stream(int i, bint is_stderr) noexcept nogil:
    cdef container_slot *s = &INFRA.slots[i]
    cdef int *fd = &s.err_fd if is_stderr else &s.out_fd
    if fd[0] >= 0:
        system.close(fd[0])  # also removes it from the epoll set
        fd[0] = -1
    slot_maybe_free(i)


cdef ssize_t relay_once(int i, bint is_stderr) noexcept nogil:
    """One read() of a container's stdout or stderr into its log. Returns the bytes
    relayed, 0 when nothing is readable now or the stream ended (and was closed)."""
    global WRITE_ERR
    cdef container_slot *s = &INFRA.slots[i]
    cdef int fd = s.err_fd if is_stderr else s.out_fd
    cdef ssize_t n
    if fd < 0:
        return 0
    while True:
        n = system.read(fd, READ_BUF, INFRA_READ_CHUNK)
        if n < 0 and errno == system.EINTR:
            continue
        break
    if n > 0:
        WRITE_ERR = 0
        s.log_bytes += write_cri(s.log_fd, is_stderr, READ_BUF, <size_t>n)
        if (WRITE_ERR != 0) != (s.log_dropping != 0):
            # Output being dropped (a full disk), or written again: supd says so in events.
            s.log_dropping = WRITE_ERR != 0
            queue_report(REPORT_LOG_DROPPED, s.cid, WRITE_ERR, 0, 0)
        check_log_size(i)
        return n
    if n < 0 and errno == system.EAGAIN:
        return 0
    close_stream(i, is_stderr)
    return 0


cdef void check_log_size(int i) noexcept nogil:
    """LOG_FULL once the log passes its limit: once per file, supd answers with REOPEN.
    Until then every record still goes to this file: nothing is lost while supd rotates
    (or is away). A writer faster than supd's answer is held back rather than the file let
    grow: at INFRA_LOG_PAUSE times the limit, with supd there to answer, infra stops
    reading the container's pipes (they fill, and its writes block) until the REOPEN."""
    cdef container_slot *s = &INFRA.slots[i]
    if not s.log_max or s.log_fd < 0 or s.log_bytes < s.log_max:
        return
    if not s.log_reported:
        s.log_reported = True
        queue_report(REPORT_LOG_FULL, s.cid, 0, 0, <int64_t>s.log_bytes)
    if (not s.log_paused and INFRA.conn >= 0
            and s.log_bytes >= INFRA_LOG_PAUSE * s.log_max):
        pause_streams(i, True)


cdef void pause_streams(int i, bint paused) noexcept nogil:
    """Take a container's pipes out of the epoll set (events 0: still registered) or put
    them back. Level-triggered: unread data wakes the loop again once they are back."""
    cdef container_slot *s = &INFRA.slots[i]
    cdef system.epoll_event ev
    s.log_paused = paused
    ev.events = 0 if paused else system.EPOLLIN
    if s.out_fd >= 0:
        ev.data.u64 = (<uint64_t>EV_STDOUT << 32) | <uint32_t>i
        system.epoll_ctl(INFRA.epfd, system.EPOLL_CTL_MOD, s.out_fd, &ev)
    if s.err_fd >= 0:
        ev.data.u64 = (<uint64_t>EV_STDERR << 32) | <uint32_t>i
        system.epoll_ctl(INFRA.epfd, system.EPOLL_CTL_MOD, s.err_fd, &ev)


cdef uint64_t file_size(int fd) noexcept nogil:
    cdef system.off_t end = system.lseek(fd, 0, system.SEEK_END)
    return <uint64_t>end if end > 0 else 0


cdef void drain(int i) noexcept nogil:
    """Relay what is readable now (bounded): the output a process wrote before it exited
    goes to the log before its exit is reported."""
    cdef ssize_t total, n
    cdef int is_stderr
    for is_stderr in range(2):
        total = 0
        while total < INFRA_DRAIN_LIMIT:
            n = relay_once(i, is_stderr)
            if n <= 0:
                break
            total += n


cdef ssize_t capture_once(int e) noexcept nogil:
    """One read() of an EXEC_CAPTURE process's output: kept up to INFRA_CAPTURE_LIMIT,
    read and dropped past it (the process never blocks on a full pipe). Returns the bytes
    read, 0 when nothing is readable now or the pipe reached EOF (and was closed)."""
    cdef exec_slot *x = &INFRA.execs[e]
    cdef ssize_t n
    cdef uint32_t room = INFRA_CAPTURE_LIMIT - x.out_len
    if x.out_fd < 0:
        return 0
    while True:
        if room > 0:
            n = system.read(x.out_fd, &CAPTURED[e][x.out_len], room)
        else:
            n = system.read(x.out_fd, READ_BUF, INFRA_READ_CHUNK)
        if n < 0 and errno == system.EINTR:
            continue
        break
    if n > 0:
        if room > 0:
            x.out_len += <uint32_t>n
        return n
    if n < 0 and errno == system.EAGAIN:
        return 0
    system.close(x.out_fd)  # also removes it from the epoll set
    x.out_fd = -1
    return 0


cdef void capture_finish(int e) noexcept nogil:
    """The process is reaped: what it wrote before it exited is read (bounded, as drain),
    and the pipe is closed even if a leftover child of it still holds the write end."""
    cdef exec_slot *x = &INFRA.execs[e]
    cdef ssize_t total = 0, n
    while total < INFRA_DRAIN_LIMIT:
        n = capture_once(e)
        if n <= 0:
            break
        total += n
    close_if_open(x.out_fd)
    x.out_fd = -1


# ---------------------------------------------------------------------------------------
# Reports to supd

cdef void drop_conn() noexcept nogil:
    """supd went away (or is being replaced): infra keeps running its containers and keeps
    reports until a connection is accepted on the listening socket."""
    cdef int i
    if INFRA.conn >= 0:
        system.close(INFRA.conn)
        INFRA.conn = -1
        INFRA.conn_out_armed = False
    # No REOPEN can come now: held-back containers go on, into the full files.
    for i in range(INFRA_MAX_CONTAINERS):
        if INFRA.slots[i].state != SLOT_FREE and INFRA.slots[i].log_paused:
            pause_streams(i, False)


cdef int send_frame(const char *buf, size_t n) noexcept nogil:
    """Send one frame without blocking. Returns 0 when sent; -1 when it must wait (EPOLLOUT
    armed) or the connection is gone (dropped)."""
    cdef ssize_t r
    while True:
        r = system.send(INFRA.conn, buf, n, system.MSG_DONTWAIT | system.MSG_NOSIGNAL)
        if r >= 0:
            return 0
        if errno == system.EINTR:
            continue
        if errno == system.EAGAIN or errno == system.ENOBUFS:
            conn_set_out(True)
        else:
            drop_conn()
        return -1


cdef void flush_reports() noexcept nogil:
    """Send the reports this connection has not had yet; they stay in the ring until ACK."""
    cdef size_t n
    cdef int e
    cdef report_rec *r
    while INFRA.ring_sent < INFRA.ring_count:
        if INFRA.conn < 0:
            return
        r = &INFRA.ring[(INFRA.ring_head + INFRA.ring_sent) % INFRA_REPORT_RING]
        if r.type == REPORT_EXEC_CAPTURED:
            # Sent once (exec reports are never replayed): the slot is free once it is.
            e = exec_by_eid(r.cid, SLOT_EXITED)
            if e >= 0:
                n = encode_exec_captured(r, CAPTURED[e], INFRA.execs[e].out_len, SEND_BUF)
                if send_frame(SEND_BUF, n) < 0:
                    return
                INFRA.execs[e].state = SLOT_FREE
        elif r.type != 0:  # 0: an exec report of an earlier connection, for nobody now
            n = encode_report(r, SEND_BUF)
            if send_frame(SEND_BUF, n) < 0:
                return
        INFRA.ring_sent += 1
    conn_set_out(False)


cdef void ring_pop() noexcept nogil:
    cdef report_rec *r = &INFRA.ring[INFRA.ring_head]
    cdef int e
    if INFRA.ring_sent == 0 and r.type == REPORT_EXEC_CAPTURED:  # dropped unsent
        e = exec_by_eid(r.cid, SLOT_EXITED)
        if e >= 0:
            INFRA.execs[e].state = SLOT_FREE
    INFRA.ring_head = (INFRA.ring_head + 1) % INFRA_REPORT_RING
    INFRA.ring_count -= 1
    if INFRA.ring_sent > 0:
        INFRA.ring_sent -= 1


cdef void acknowledge(uint64_t seq) noexcept nogil:
    """ACK: supd has recorded every report up to `seq`."""
    while INFRA.ring_count > 0 and INFRA.ring[INFRA.ring_head].seq <= seq:
        ring_pop()


cdef void queue_report(uint32_t kind, uint32_t cid, int32_t a, int32_t b,
                       int64_t ns) noexcept nogil:
    """Append a report and send what can be sent. A full ring drops its oldest report
    (supd has been away, or has not acknowledged, for INFRA_REPORT_RING reports)."""
    cdef report_rec *r
    if INFRA.ring_count == INFRA_REPORT_RING:
        ring_pop()
        INFRA.ring_dropped += 1
    r = &INFRA.ring[(INFRA.ring_head + INFRA.ring_count) % INFRA_REPORT_RING]
    r.type = kind
    r.cid = cid
    r.a = a
    r.b = b
    r.ns = ns
    INFRA.next_seq += 1
    r.seq = INFRA.next_seq
    INFRA.ring_count += 1
    flush_reports()


cdef void report_start_failed(uint32_t cid, int step, int err, int logfd) noexcept nogil:
    close_if_open(logfd)
    queue_report(REPORT_START_FAILED, cid, step, err, 0)


cdef void report_exec_failed(uint32_t eid, int step, int err) noexcept nogil:
    queue_report(REPORT_EXEC_FAILED, eid, step, err, 0)


cdef uint64_t forget_execs() noexcept nogil:
    """A new supd connected: exec'd processes are the old connection's (their stdio was its
    fds), so their reports are for nobody now. They run on, reaped but not reported.
    Returns the seq of the last report the new supd will get (0: none), which it waits
    for before it reconciles: never one of those, which would not come."""
    cdef uint32_t k
    cdef report_rec *r
    cdef int i
    cdef uint64_t last = 0
    for k in range(INFRA.ring_count):
        r = &INFRA.ring[(INFRA.ring_head + k) % INFRA_REPORT_RING]
        if (r.type == REPORT_EXEC_STARTED or r.type == REPORT_EXEC_FAILED
                or r.type == REPORT_EXEC_EXITED or r.type == REPORT_EXEC_CAPTURED):
            r.type = 0
        elif r.type != 0:
            last = r.seq
    for i in range(INFRA_MAX_EXECS):
        INFRA.execs[i].eid = 0
        if INFRA.execs[i].state == SLOT_EXITED:
            INFRA.execs[i].state = SLOT_FREE
    return last


cdef int send_hello(size_t n) noexcept nogil:
    """HELLO with infra's own pidfd in SCM_RIGHTS: pid numbers of infra's PID namespace
    mean nothing to supd, and a pidfd names the process without a race."""
    cdef system.msghdr msg
    cdef system.iovec iov
    cdef system.cmsghdr *cmsg
    cdef ssize_t r
    memset(&msg, 0, sizeof(msg))
    iov.iov_base = SEND_BUF
    iov.iov_len = n
    msg.msg_iov = &iov
    msg.msg_iovlen = 1
    if INFRA.self_pidfd >= 0:
        msg.msg_control = CMSG_BUF
        msg.msg_controllen = system.CMSG_SPACE(sizeof(int))
        memset(CMSG_BUF, 0, msg.msg_controllen)
        cmsg = system.CMSG_FIRSTHDR(&msg)
        cmsg.cmsg_level = system.SOL_SOCKET
        cmsg.cmsg_type = system.SCM_RIGHTS
        cmsg.cmsg_len = system.CMSG_LEN(sizeof(int))
        memcpy(system.CMSG_DATA(cmsg), &INFRA.self_pidfd, sizeof(int))
    while True:
        r = system.sendmsg(INFRA.conn, &msg, system.MSG_DONTWAIT | system.MSG_NOSIGNAL)
        if r < 0 and errno == system.EINTR:
            continue
        return 0 if r >= 0 else -1


cdef void attach(int fd) noexcept nogil:
    """A new supd connected: it replaces the old connection, gets HELLO with the live
    containers, then every report not yet acknowledged (a new socket buffer takes them;
    what does not fit follows on EPOLLOUT)."""
    cdef int i
    cdef uint32_t count = 0
    cdef container_slot *s
    cdef uint64_t last
    drop_conn()
    INFRA.conn = fd
    if ep_add(fd, system.EPOLLIN | system.EPOLLRDHUP, EV_CONN, 0) < 0:
        drop_conn()
        return
    last = forget_execs()
    INFRA.ring_sent = 0
    for i in range(INFRA_MAX_CONTAINERS):
        s = &INFRA.slots[i]
        if s.state == SLOT_RUNNING:
            encode_hello_entry(SEND_BUF + HELLO_FIXED_SIZE + count * HELLO_ENTRY_SIZE,
                               s.cid, s.pid, s.started_ns)
            count += 1
    encode_hello_header(SEND_BUF, count, INFRA.ring_dropped, last)
    if send_hello(HELLO_FIXED_SIZE + count * HELLO_ENTRY_SIZE) < 0:
        drop_conn()
        return
    # A LOG_FULL the supd before did not answer comes again with the rest: it is only
    # acknowledged once answered.
    flush_reports()


# ---------------------------------------------------------------------------------------
# Frames from supd

cdef void start_container(size_t n, const int *fds, int nfds) noexcept nogil:
    """START with its fds: the log file, then the container's cgroup (kept in the slot for
    EXEC while the container runs; closed here when it did not start)."""
    cdef int k
    if not start_container_with(n, fds[0] if nfds > 0 else -1, fds + 1,
                                nfds - 1 if nfds > 0 else 0):
        for k in range(1, nfds):
            system.close(fds[k])


cdef void set_cgroup(spawn_cfg *cfg, uint32_t flags, const int *fds, int n) noexcept nogil:
    cfg.cgroup_dir = -1
    if flags & START_CGROUP_INTO:
        cfg.cgroup_dir = fds[0]
    else:
        cfg.cgroup_procs = fds
        cfg.n_cgroup_procs = n


cdef bint start_container_with(size_t n, int logfd, const int *cgroup_fds,
                               int n_cgroup) noexcept nogil:
    """START: pipes for stdout/stderr, then the spawn core with the container's cgroup,
    namespaces, /proc, filesystem, ids, capabilities, no_new_privs and PR_SET_PDEATHSIG
    SIGKILL (containers die with infra). Replies started, or start_failed (and then never
    exited) for that cid. The slot keeps the container's pidfd, namespaces, ids, security
    context and cgroup fds: what an EXEC into it needs. Returns whether it started (and the
    slot took the cgroup fds)."""
    cdef start_request req
    cdef spawn_cfg cfg
    cdef spawn_result res
    cdef int out[2]
    cdef int err[2]
    cdef int i, rc
    cdef const char *path
    cdef container_slot *s
    cdef int64_t now
    cdef uint32_t cid = get_u32(RECV_BUF + 4)
    rc = decode_start(RECV_BUF, n, &req, START_PTRS, START_GROUPS, START_FS)
    if rc != 0:
        report_start_failed(cid, STEP_FRAME, rc, logfd)
        return False
    if logfd < 0:
        report_start_failed(cid, STEP_FRAME, system.EBADF, logfd)
        return False
    if (req.flags & START_CGROUP_INTO and n_cgroup != 1) or n_cgroup > INFRA_CMSG_FDS - 1:
        report_start_failed(cid, STEP_FRAME, system.EINVAL, logfd)
        return False
    if INFRA.shutting_down:
        report_start_failed(cid, STEP_SLOT, system.ECANCELED, logfd)
        return False
    if slot_running(cid) >= 0:
        report_start_failed(cid, STEP_SLOT, system.EEXIST, logfd)
        return False
    i = slot_free()
    if i < 0:
        report_start_failed(cid, STEP_SLOT, system.EAGAIN, logfd)
        return False
    path = env_path(req.envp)
    if build_exec_paths(req.argv[0], path, PATH_BUF, INFRA_PATH_BUF, EXEC_PATHS,
                        INFRA_MAX_PATHS) < 0:
        report_start_failed(cid, STEP_FRAME, system.E2BIG, logfd)
        return False
    if system.pipe2(out, system.O_CLOEXEC) < 0:
        report_start_failed(cid, STEP_PIPE, errno, logfd)
        return False
    if system.pipe2(err, system.O_CLOEXEC) < 0:
        rc = errno
        system.close(out[0])
        system.close(out[1])
        report_start_failed(cid, STEP_PIPE, rc, logfd)
        return False
    # Only infra's read ends are non-blocking: O_NONBLOCK on pipe2() would also apply to
    # the write ends the container inherits as stdout and stderr.
    system.fcntl(out[0], system.F_SETFL, system.O_NONBLOCK)
    system.fcntl(err[0], system.F_SETFL, system.O_NONBLOCK)

    memset(&cfg, 0, sizeof(cfg))
    cfg.clone_flags = req.clone_flags
    cfg.argv = req.argv
    cfg.envp = req.envp
    cfg.exec_paths = EXEC_PATHS
    cfg.cwd = req.cwd
    cfg.pidns_fd = -1
    cfg.stdio[0] = 0  # infra's /dev/null
    cfg.stdio[1] = out[1]
    cfg.stdio[2] = err[1]
    cfg.setsid = True
    cfg.set_uid = (req.flags & START_SET_UID) != 0
    cfg.uid = req.uid
    cfg.set_gid = (req.flags & START_SET_GID) != 0
    cfg.gid = req.gid
    cfg.set_groups = (req.flags & START_SET_GROUPS) != 0
    cfg.groups = START_GROUPS
    cfg.ngroups = <int>req.ngroups
    cfg.pdeathsig = system.SIGKILL
    cfg.mount_proc = (req.flags & START_MOUNT_PROC) != 0
    cfg.set_caps = (req.flags & START_SET_CAPS) != 0
    cfg.caps = req.caps
    cfg.no_new_privs = (req.flags & START_NO_NEW_PRIVS) != 0
    set_cgroup(&cfg, req.flags, cgroup_fds, n_cgroup)
    cfg.fs_ops = START_FS
    cfg.n_fs_ops = req.n_fs
    rc = spawn_process(&cfg, True, &res)
    system.close(out[1])
    system.close(err[1])
    if rc < 0:
        system.close(out[0])
        system.close(err[0])
        report_start_failed(cid, res.step, res.err, logfd)
        return False
    now = realtime_ns()
    s = &INFRA.slots[i]
    s.state = SLOT_RUNNING
    s.cid = cid
    s.pid = res.pid
    s.started_ns = now
    s.out_fd = out[0]
    s.err_fd = err[0]
    s.log_fd = logfd
    s.log_max = req.log_max
    s.log_bytes = file_size(logfd)
    s.log_reported = s.log_paused = s.log_dropping = False
    s.pidfd = res.pidfd
    s.clone_flags = req.clone_flags
    s.id_flags = req.flags & (START_SET_UID | START_SET_GID | START_SET_GROUPS)
    s.uid = req.uid
    s.gid = req.gid
    s.ngroups = req.ngroups
    memcpy(SLOT_GROUPS[i], START_GROUPS, req.ngroups * sizeof(gid_t))
    s.sec_flags = req.flags & (START_SET_CAPS | START_NO_NEW_PRIVS | START_CGROUP_INTO)
    s.caps = req.caps
    s.n_cgroup = n_cgroup
    memcpy(SLOT_CGROUP_FDS[i], cgroup_fds, n_cgroup * sizeof(int))
    INFRA.running += 1
    # Without a watch the stream cannot be relayed: close it (the writer gets EPIPE).
    if ep_add(out[0], system.EPOLLIN, EV_STDOUT, <uint32_t>i) < 0:
        close_stream(i, False)
    if ep_add(err[0], system.EPOLLIN, EV_STDERR, <uint32_t>i) < 0:
        close_stream(i, True)
    queue_report(REPORT_STARTED, cid, res.pid, 0, now)
    return True


cdef void reopen_log(size_t n, const int *fds, int nfds) noexcept nogil:
    """REOPEN: with one fd, the container's log goes on in it (supd rotated the old file);
    with none, in the same file, counted from zero again (supd could not rotate it: the
    next LOG_FULL comes after another log_max bytes). Frames are handled between reads, so
    a swap falls between two records. Also for an exited container whose pipes are still
    open (a grandchild writes). For no such container, or more fds, the fds are closed."""
    cdef int i, k
    cdef uint32_t cid = get_u32(RECV_BUF + 4)
    cdef container_slot *s
    i = slot_running(cid)
    if i < 0:
        for k in range(INFRA_MAX_CONTAINERS):
            if INFRA.slots[k].state == SLOT_EXITED and INFRA.slots[k].cid == cid:
                i = k
                break
    if n != REOPEN_SIZE or nfds > 1 or i < 0 or INFRA.slots[i].log_fd < 0:
        close_recv_fds(nfds)
        return
    s = &INFRA.slots[i]
    if nfds == 1:
        system.close(s.log_fd)
        s.log_fd = fds[0]
        s.log_bytes = file_size(fds[0])
    else:
        s.log_bytes = 0
    s.log_reported = False
    if s.log_paused:
        pause_streams(i, False)
    check_log_size(i)


cdef void signal_container(size_t n) noexcept nogil:
    """SIGNAL: kill(2) the container, or its process group (it is a session leader, so its
    pgid is its pid). Unknown or exited containers are ignored: supd learns of exits from
    the exited reports."""
    cdef int i
    cdef uint32_t signo, flags
    cdef pid_t pid
    if n != SIGNAL_SIZE:
        return
    signo = get_u32(RECV_BUF + 8)
    flags = get_u32(RECV_BUF + 12)
    i = slot_running(get_u32(RECV_BUF + 4))
    if i < 0 or signo == 0 or signo >= system.NSIG:
        return
    pid = INFRA.slots[i].pid
    system.kill(-pid if flags & SIGNAL_GROUP else pid, <int>signo)


cdef void start_exec(size_t n, const int *fds, int nfds) noexcept nogil:
    """EXEC: the spawn core for a process inside running container `cid`: setns(2) through
    the container's pidfd (Linux 5.8) into the namespaces it has of its own (mount, cgroup;
    its PID namespace is joined around the clone, as the spawn core does), the pod's others
    inherited from infra; the container's ids; a new session, with fd 0 as controlling tty
    for EXEC_TTY; stdio from `fds` (the caller closes them), or with EXEC_CAPTURE infra's
    /dev/null and a pipe of its own; PR_SET_PDEATHSIG SIGKILL. In the container's own PID
    namespace the process dies with the container (pid_namespaces(7)). Replies
    exec_started (none for EXEC_CAPTURE), or exec_failed (and then never an exit) for that
    eid."""
    cdef exec_request req
    cdef spawn_cfg cfg
    cdef spawn_result res
    cdef container_slot *s
    cdef int ns_fd, ns_type, c, e, rc
    cdef int pipe_fds[2]
    cdef bint capture
    cdef uint32_t eid = get_u32(RECV_BUF + 4)
    rc = decode_exec(RECV_BUF, n, &req, START_PTRS)
    if rc != 0:
        report_exec_failed(eid, STEP_FRAME, rc)
        return
    capture = (req.flags & EXEC_CAPTURE) != 0
    if nfds != (0 if capture else 3):
        report_exec_failed(eid, STEP_FRAME, system.EBADF if nfds == 0 else system.EINVAL)
        return
    if INFRA.shutting_down:
        report_exec_failed(eid, STEP_SLOT, system.ECANCELED)
        return
    if exec_by_eid(eid) >= 0:
        report_exec_failed(eid, STEP_SLOT, system.EEXIST)
        return
    c = slot_running(req.cid)
    if c < 0:
        report_exec_failed(eid, STEP_SLOT, system.ESRCH)
        return
    e = exec_free()
    if e < 0:
        report_exec_failed(eid, STEP_SLOT, system.EAGAIN)
        return
    if build_exec_paths(req.argv[0], env_path(req.envp), PATH_BUF, INFRA_PATH_BUF,
                        EXEC_PATHS, INFRA_MAX_PATHS) < 0:
        report_exec_failed(eid, STEP_FRAME, system.E2BIG)
        return
    s = &INFRA.slots[c]
    ns_fd = s.pidfd
    ns_type = <int>(s.clone_flags & ~(<uint64_t>system.CLONE_NEWPID))
    memset(&cfg, 0, sizeof(cfg))
    cfg.argv = req.argv
    cfg.envp = req.envp
    cfg.exec_paths = EXEC_PATHS
    cfg.cwd = req.cwd
    cfg.ns_fds = &ns_fd
    cfg.ns_types = &ns_type
    cfg.n_ns = 1 if ns_type != 0 else 0
    cfg.pidns_fd = s.pidfd if s.clone_flags & system.CLONE_NEWPID else -1
    if capture:
        if system.pipe2(pipe_fds, system.O_CLOEXEC) < 0:
            report_exec_failed(eid, STEP_PIPE, errno)
            return
        system.fcntl(pipe_fds[0], system.F_SETFL, system.O_NONBLOCK)  # not the child's end
        cfg.stdio[0] = 0  # infra's /dev/null
        cfg.stdio[1] = cfg.stdio[2] = pipe_fds[1]
    else:
        cfg.stdio[0] = fds[0]
        cfg.stdio[1] = fds[1]
        cfg.stdio[2] = fds[2]
    cfg.setsid = True
    cfg.ctty = (req.flags & EXEC_TTY) != 0
    cfg.set_uid = (s.id_flags & START_SET_UID) != 0
    cfg.uid = s.uid
    cfg.set_gid = (s.id_flags & START_SET_GID) != 0
    cfg.gid = s.gid
    cfg.set_groups = (s.id_flags & START_SET_GROUPS) != 0
    cfg.groups = SLOT_GROUPS[c]
    cfg.ngroups = <int>s.ngroups
    cfg.pdeathsig = system.SIGKILL
    # What the container got, an exec'd process gets too (runc exec does the same).
    cfg.set_caps = (s.sec_flags & START_SET_CAPS) != 0
    cfg.caps = s.caps
    cfg.no_new_privs = (s.sec_flags & START_NO_NEW_PRIVS) != 0
    set_cgroup(&cfg, s.sec_flags, SLOT_CGROUP_FDS[c], s.n_cgroup)
    rc = spawn_process(&cfg, False, &res)
    if capture:
        system.close(pipe_fds[1])
        if rc < 0 or ep_add(pipe_fds[0], system.EPOLLIN, EV_EXEC_OUT, <uint32_t>e) < 0:
            system.close(pipe_fds[0])
            pipe_fds[0] = -1  # a process that cannot be read from runs with its output lost
    if rc < 0:
        report_exec_failed(eid, res.step, res.err)
        return
    INFRA.execs[e].state = SLOT_RUNNING
    INFRA.execs[e].eid = eid
    INFRA.execs[e].pid = res.pid
    INFRA.execs[e].capture = capture
    INFRA.execs[e].out_fd = pipe_fds[0] if capture else -1
    INFRA.execs[e].out_len = 0
    INFRA.exec_running += 1
    if not capture:
        queue_report(REPORT_EXEC_STARTED, eid, res.pid, 0, realtime_ns())


cdef void signal_exec(size_t n) noexcept nogil:
    """EXEC_SIGNAL: kill(2) an exec'd process, or its process group (it is a session
    leader). Until infra reaps it, its pid cannot be reused; unknown eids are ignored."""
    cdef int e
    cdef uint32_t signo
    cdef pid_t pid
    if n != SIGNAL_SIZE:
        return
    signo = get_u32(RECV_BUF + 8)
    e = exec_by_eid(get_u32(RECV_BUF + 4))
    if e < 0 or signo == 0 or signo >= system.NSIG:
        return
    pid = INFRA.execs[e].pid
    system.kill(-pid if get_u32(RECV_BUF + 12) & SIGNAL_GROUP else pid, <int>signo)


cdef void begin_shutdown() noexcept nogil:
    """SHUTDOWN (or SIGTERM/SIGINT to infra): SIGKILL every live container, exec'd
    process and their process groups; the loop exits once all of them are reaped and
    reported."""
    cdef int i
    cdef pid_t pid
    INFRA.shutting_down = True
    for i in range(INFRA_MAX_CONTAINERS):
        if INFRA.slots[i].state == SLOT_RUNNING:
            pid = INFRA.slots[i].pid
            system.kill(-pid, system.SIGKILL)
            system.kill(pid, system.SIGKILL)
    for i in range(INFRA_MAX_EXECS):
        if INFRA.execs[i].state == SLOT_RUNNING:
            pid = INFRA.execs[i].pid
            system.kill(-pid, system.SIGKILL)
            system.kill(pid, system.SIGKILL)


cdef ssize_t recv_frame(int *nfds, bint *truncated) noexcept nogil:
    """Receive one frame into RECV_BUF and its fds into RECV_FDS. Returns its size, 0 when
    none is waiting or the peer hung up (told apart by the caller), -1 on error. *nfds is
    the number of fds that came with it; beyond INFRA_CMSG_FDS they are closed at once and
    the frame counts as malformed (*nfds > INFRA_CMSG_FDS: only that many are kept)."""
    cdef system.msghdr msg
    cdef system.iovec iov
    cdef system.cmsghdr *cmsg
    cdef ssize_t n
    cdef int count, k, fd
    cdef int *fds
    nfds[0] = 0
    iov.iov_base = RECV_BUF
    iov.iov_len = FRAME_MAX
    memset(&msg, 0, sizeof(msg))
    msg.msg_iov = &iov
    msg.msg_iovlen = 1
    msg.msg_control = CMSG_BUF
    msg.msg_controllen = sizeof(CMSG_BUF)
    while True:
        n = system.recvmsg(INFRA.conn, &msg, system.MSG_DONTWAIT | system.MSG_CMSG_CLOEXEC)
        if n < 0 and errno == system.EINTR:
            continue
        break
    if n < 0:
        return 0 if errno == system.EAGAIN else -1
    truncated[0] = (msg.msg_flags & (system.MSG_TRUNC | system.MSG_CTRUNC)) != 0
    cmsg = system.CMSG_FIRSTHDR(&msg)
    while cmsg != NULL:
        if cmsg.cmsg_level == system.SOL_SOCKET and cmsg.cmsg_type == system.SCM_RIGHTS:
            count = <int>((cmsg.cmsg_len - system.CMSG_LEN(0)) // sizeof(int))
            fds = <int *>system.CMSG_DATA(cmsg)
            for k in range(count):
                memcpy(&fd, &fds[k], sizeof(int))
                if nfds[0] < INFRA_CMSG_FDS:
                    RECV_FDS[nfds[0]] = fd
                else:
                    system.close(fd)
                nfds[0] += 1
        cmsg = system.CMSG_NXTHDR(&msg, cmsg)
    return n


cdef void close_recv_fds(int nfds) noexcept nogil:
    cdef int k
    for k in range(nfds if nfds < INFRA_CMSG_FDS else INFRA_CMSG_FDS):
        system.close(RECV_FDS[k])


cdef void handle_frame(size_t n, int nfds, bint truncated) noexcept nogil:
    """Dispatch one frame; a malformed one gets a start_failed (START), an exec_failed
    (EXEC) or nothing. START takes ownership of its fd; every other fd is closed here."""
    cdef uint32_t kind
    cdef uint32_t target
    if n < FRAME_HEADER_SIZE:
        close_recv_fds(nfds)
        return
    kind = get_u32(RECV_BUF)
    target = get_u32(RECV_BUF + 4)
    if kind == FRAME_START:
        if truncated:
            close_recv_fds(nfds)
            report_start_failed(target, STEP_FRAME, system.E2BIG, -1)
        elif nfds > INFRA_CMSG_FDS:
            close_recv_fds(nfds)
            report_start_failed(target, STEP_FRAME, system.EINVAL, -1)
        else:
            start_container(n, RECV_FDS, nfds)
        return
    if kind == FRAME_EXEC:
        if truncated:
            report_exec_failed(target, STEP_FRAME, system.E2BIG)
        elif nfds > INFRA_CMSG_FDS:
            report_exec_failed(target, STEP_FRAME, system.EINVAL)
        else:
            start_exec(n, RECV_FDS, nfds)
        close_recv_fds(nfds)
        return
    if kind == FRAME_REOPEN and not truncated:
        reopen_log(n, RECV_FDS, nfds)
        return
    close_recv_fds(nfds)
    if truncated:
        return
    if kind == FRAME_SIGNAL:
        signal_container(n)
    elif kind == FRAME_EXEC_SIGNAL:
        signal_exec(n)
    elif kind == FRAME_SHUTDOWN and n == SHUTDOWN_SIZE:
        INFRA.await_ack = INFRA.listen >= 0
        begin_shutdown()
    elif kind == FRAME_KEEP and n == KEEP_SIZE:
        system.prctl(system.PR_SET_PDEATHSIG, 0, 0, 0, 0)
    elif kind == FRAME_ACK and n == ACK_SIZE:
        acknowledge(get_u64(RECV_BUF + 8))


cdef void serve_conn(uint32_t events) noexcept nogil:
    cdef int _frame, nfds
    cdef ssize_t n
    cdef bint truncated
    if events & system.EPOLLOUT:
        flush_reports()
    for _frame in range(INFRA_FRAMES_PER_WAKEUP):
        if INFRA.conn < 0:
            return
        n = recv_frame(&nfds, &truncated)
        if n < 0:
            drop_conn()
            return
        if n == 0 and nfds == 0:
            # No frame now, or an orderly hang-up (recvmsg(2) returns 0 for both on a
            # SOCK_SEQPACKET socket): epoll says which.
            if events & (system.EPOLLHUP | system.EPOLLRDHUP | system.EPOLLERR):
                drop_conn()
            return
        handle_frame(<size_t>n, nfds, truncated)


cdef void serve_listen() noexcept nogil:
    cdef int fd = system.accept4(INFRA.listen, NULL, NULL,
                                 system.SOCK_CLOEXEC | system.SOCK_NONBLOCK)
    if fd >= 0:
        attach(fd)


cdef void close_cgroup_fds(int i) noexcept nogil:
    cdef int k
    for k in range(INFRA.slots[i].n_cgroup):
        system.close(SLOT_CGROUP_FDS[i][k])
    INFRA.slots[i].n_cgroup = 0


cdef void reap_children() noexcept nogil:
    """waitpid(-1, WNOHANG) until 0 or ECHILD (tini, pause.c): containers, exec'd
    processes and any orphan reparented to infra. A container's exit is reported after its
    pipes are drained."""
    cdef int status, i
    cdef pid_t pid
    cdef container_slot *s
    while True:
        pid = system.waitpid(-1, &status, system.WNOHANG)
        if pid < 0 and errno == system.EINTR:
            continue
        if pid <= 0:
            return
        i = slot_by_pid(pid)
        if i < 0:
            i = exec_by_pid(pid)
            if i >= 0:
                INFRA.execs[i].state = SLOT_FREE
                INFRA.exec_running -= 1
                if INFRA.execs[i].capture:
                    capture_finish(i)
                    if INFRA.execs[i].eid != 0:  # the slot holds the output until sent
                        INFRA.execs[i].state = SLOT_EXITED
                        queue_report(REPORT_EXEC_CAPTURED, INFRA.execs[i].eid, pid, status,
                                     realtime_ns())
                elif INFRA.execs[i].eid != 0:
                    queue_report(REPORT_EXEC_EXITED, INFRA.execs[i].eid, pid, status,
                                 realtime_ns())
            continue
        drain(i)
        s = &INFRA.slots[i]
        s.state = SLOT_EXITED
        s.pid = 0
        close_if_open(s.pidfd)
        s.pidfd = -1
        close_cgroup_fds(i)
        INFRA.running -= 1
        # Release what can be released before telling supd: once it hears of the exit, the
        # slot's fds are gone unless a grandchild still holds a pipe.
        slot_maybe_free(i)
        queue_report(REPORT_EXITED, s.cid, pid, status, realtime_ns())


cdef void serve_signals() noexcept nogil:
    cdef system.signalfd_siginfo infos[16]
    cdef ssize_t n
    cdef int k
    while True:
        n = system.read(INFRA.sigfd, infos, sizeof(infos))
        if n < 0 and errno == system.EINTR:
            continue
        if n <= 0:
            break
        for k in range(<int>(n // sizeof(system.signalfd_siginfo))):
            if infos[k].ssi_signo == system.SIGTERM or infos[k].ssi_signo == system.SIGINT:
                begin_shutdown()
    # SIGCHLD coalesces: reap on any wakeup rather than count signals.
    reap_children()


# ---------------------------------------------------------------------------------------
# Setup and the loop

cdef int loopback_up() noexcept nogil:
    """SIOCGIFFLAGS/SIOCSIFFLAGS on "lo" (netdevice(7)): a new network namespace starts
    with lo down."""
    cdef system.ifreq ifr
    cdef int fd = system.socket(system.AF_INET, system.SOCK_DGRAM | system.SOCK_CLOEXEC, 0)
    cdef int rc
    if fd < 0:
        return -1
    memset(&ifr, 0, sizeof(ifr))
    memcpy(ifr.ifr_name, b"lo", 3)
    rc = system.ioctl(fd, system.SIOCGIFFLAGS, &ifr)
    if rc == 0:
        ifr.ifr_flags |= system.IFF_UP
        rc = system.ioctl(fd, system.SIOCSIFFLAGS, &ifr)
    system.close(fd)
    return rc


cdef int write_sysctls(infra_cfg *cfg) noexcept nogil:
    """The pod's sysctls, written through /proc/sys from inside its namespaces: a sysctl
    file shows the namespace of the process that opens it (net, ipc). Returns -1 with
    errno at the first that fails."""
    cdef const char *p = cfg.sysctls
    cdef const char *value
    cdef int i, fd
    cdef ssize_t wrote
    for i in range(cfg.n_sysctls):
        value = p + strlen(p) + 1
        fd = system.open(p, system.O_WRONLY | system.O_CLOEXEC)
        if fd < 0:
            return -1
        while True:
            wrote = system.write(fd, value, strlen(value))
            if wrote < 0 and errno == system.EINTR:
                continue
            break
        if wrote < 0:
            i = errno
            system.close(fd)
            system.set_errno(i)
            return -1
        system.close(fd)
        p = value + strlen(value) + 1
    return 0


cdef int stdio_to_devnull() noexcept nogil:
    """0, 1 and 2 onto /dev/null, as a daemon's: 0, or the step that failed."""
    cdef int devnull = system.open(b"/dev/null", system.O_RDWR | system.O_CLOEXEC)
    cdef int i
    if devnull < 0:
        return STEP_DEVNULL
    for i in range(3):
        if system.dup2(devnull, i) < 0:
            return STEP_DUP2
    if devnull > 2:
        system.close(devnull)
    return 0


cdef int infra_setup(infra_cfg *cfg) noexcept nogil:
    """Everything before the loop, each step one call that succeeds or fails. Returns the
    failed step (errno set), or -1. Signals stay blocked for good: they arrive on the
    signalfd."""
    cdef int keep[3]
    cdef int nkeep = 0
    cdef int i, t, step
    cdef system.sigset_t mask
    global DISPOSITIONS_DEFAULT
    child_reset_dispositions()
    DISPOSITIONS_DEFAULT = True  # for its children (child_reset_signals)
    if cfg.clone_flags & system.CLONE_NEWUSER:
        forget_bounding()  # full in the new namespace
    if system.prctl(system.PR_SET_NAME, <char *>b"supd-infra", 0, 0, 0) < 0:
        return STEP_PRCTL
    # A session of its own: the signals a terminal sends to supd's foreground process group
    # (Ctrl-C, Ctrl-Z, SIGHUP on hangup) are supd's to handle (a graceful stop, forwarding);
    # infra would turn SIGINT into an immediate SIGKILL of every container.
    if system.setsid() < 0:
        return STEP_SETSID
    if cfg.pdeathsig and system.prctl(system.PR_SET_PDEATHSIG, <unsigned long>cfg.pdeathsig,
                                      0, 0, 0) < 0:
        return STEP_PDEATHSIG
    # A parent that died before the prctl sends no signal (prctl(2)): outlived already, so
    # go now. Outside a new PID namespace only (inside it, getppid() is 0).
    if (cfg.pdeathsig and not cfg.clone_flags & system.CLONE_NEWPID
            and system.getppid() != cfg.parent):
        system._exit(0)
    # Orphans of containers come to infra when it is not PID 1 of the pod's namespace.
    if system.prctl(system.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0:
        return STEP_PRCTL
    if cfg.hostname_len and system.sethostname(cfg.hostname, cfg.hostname_len) < 0:
        return STEP_SETHOSTNAME
    if cfg.clone_flags & system.CLONE_NEWNET and loopback_up() < 0:
        return STEP_LOOPBACK
    if write_sysctls(cfg) < 0:
        return STEP_SYSCTL
    cfg.errfd = move_above_stdio(cfg.errfd)
    cfg.sock = move_above_stdio(cfg.sock)
    cfg.listen = move_above_stdio(cfg.listen)
    if cfg.errfd < 0 or cfg.sock < 0:
        return STEP_DUP2
    step = stdio_to_devnull()
    if step:
        return step
    keep[nkeep] = cfg.errfd
    nkeep += 1
    keep[nkeep] = cfg.sock
    nkeep += 1
    if cfg.listen >= 0:
        keep[nkeep] = cfg.listen
        nkeep += 1
    for i in range(nkeep):  # ascending for close_other_fds
        for t in range(i + 1, nkeep):
            if keep[t] < keep[i]:
                keep[i], keep[t] = keep[t], keep[i]
    close_other_fds(keep, nkeep)
    INFRA.self_pidfd = -1
    if cfg.listen >= 0:  # for HELLO; without it (an old kernel) supd finds infra by pid
        INFRA.self_pidfd = <int>system.syscall(system.SYS_pidfd_open, system.getpid(), 0)
    if system.chdir(b"/") < 0:
        return STEP_CHDIR
    system.sigemptyset(&mask)
    system.sigaddset(&mask, system.SIGCHLD)
    system.sigaddset(&mask, system.SIGTERM)
    system.sigaddset(&mask, system.SIGINT)
    INFRA.sigfd = system.signalfd(-1, &mask, system.SFD_NONBLOCK | system.SFD_CLOEXEC)
    if INFRA.sigfd < 0:
        return STEP_SIGNALFD
    INFRA.epfd = system.epoll_create1(system.EPOLL_CLOEXEC)
    if INFRA.epfd < 0:
        return STEP_EPOLL
    for i in range(INFRA_MAX_CONTAINERS):
        INFRA.slots[i].state = SLOT_FREE
        INFRA.slots[i].out_fd = INFRA.slots[i].err_fd = INFRA.slots[i].log_fd = -1
        INFRA.slots[i].log_max = INFRA.slots[i].log_bytes = 0
        INFRA.slots[i].log_reported = INFRA.slots[i].log_paused = False
        INFRA.slots[i].log_dropping = False
        INFRA.slots[i].pidfd = -1
        INFRA.slots[i].n_cgroup = 0
    for i in range(INFRA_MAX_EXECS):
        INFRA.execs[i].state = SLOT_FREE
        INFRA.execs[i].out_fd = -1
    INFRA.conn = cfg.sock
    INFRA.listen = cfg.listen
    if ep_add(INFRA.sigfd, system.EPOLLIN, EV_SIGNALFD, 0) < 0:
        return STEP_EPOLL
    if ep_add(INFRA.conn, system.EPOLLIN | system.EPOLLRDHUP, EV_CONN, 0) < 0:
        return STEP_EPOLL
    if INFRA.listen >= 0:
        # accept4() must not block when a connection vanished between epoll and accept.
        t = system.fcntl(INFRA.listen, system.F_GETFL)
        system.fcntl(INFRA.listen, system.F_SETFL, t | system.O_NONBLOCK)
        if ep_add(INFRA.listen, system.EPOLLIN, EV_LISTEN, 0) < 0:
            return STEP_EPOLL
    release_inherited_memory()
    return -1


cdef void infra_exit() noexcept nogil:
    flush_reports()
    system._exit(0)


cdef void infra_loop() noexcept nogil:
    cdef int n, k
    cdef uint32_t kind, index, events
    while True:
        n = system.epoll_wait(INFRA.epfd, EVENTS, INFRA_MAX_EVENTS, -1)
        if n < 0:
            if errno == system.EINTR:
                continue
            system._exit(1)
        for k in range(n):
            kind = <uint32_t>(EVENTS[k].data.u64 >> 32)
            index = <uint32_t>EVENTS[k].data.u64
            events = EVENTS[k].events
            if kind == EV_SIGNALFD:
                serve_signals()
            elif kind == EV_CONN:
                serve_conn(events)
            elif kind == EV_LISTEN:
                serve_listen()
            elif kind == EV_STDOUT or kind == EV_STDERR:
                # Level-triggered: one read per wakeup keeps the streams fair. Not from a
                # stream paused by an earlier event of this batch.
                if not INFRA.slots[index].log_paused:
                    relay_once(<int>index, kind == EV_STDERR)
            elif kind == EV_EXEC_OUT:
                capture_once(<int>index)
        if INFRA.shutting_down and INFRA.running == 0 and INFRA.exec_running == 0:
            # Told by supd with a listening socket to take over: its last reports matter
            # (the exits of a finished pod), so it stays until supd has recorded them,
            # through a supd that dies meanwhile and the next one that connects.
            if not INFRA.await_ack or INFRA.ring_count == 0:
                infra_exit()


cdef void infra_main(infra_cfg *cfg) noexcept nogil:
    """The infra child: never returns. A setup failure is reported on the error pipe like
    a spawn failure; closing the pipe tells supd that infra is serving."""
    cdef int step = infra_setup(cfg)
    if step >= 0:
        child_report_error(cfg.errfd, step, errno)
        system._exit(127)
    system.close(cfg.errfd)
    infra_loop()
    system._exit(1)


cdef int start_infra(infra_cfg *cfg, spawn_result *r) noexcept nogil:
    cdef int errpipe[2]
    cdef int pidfd = -1
    cdef int err
    cdef pid_t pid
    if open_error_pipe(errpipe, r) < 0:
        return -1
    cfg.errfd = errpipe[1]
    cfg.parent = system.getpid()
    pid = clone_blocked(cfg.clone_flags, &pidfd, cfg.exit_signal, cfg.cgroup_dir)
    if pid == 0:
        infra_main(cfg)
    err = errno
    system.close(errpipe[1])
    if pid < 0:
        system.close(errpipe[0])
        r.step = STEP_CGROUP if cfg.cgroup_dir >= 0 and err != system.EAGAIN else STEP_CLONE
        r.err = err
        return -1
    if wait_child_ready(pid, errpipe[0], r) < 0:
        close_if_open(pidfd)
        return -1
    r.pid = pid
    r.pidfd = pidfd
    return 0


def spawn_infra(int sock, *, clone_flags, hostname, int listen=-1, int pdeathsig=0,
                int exit_signal=system.SIGCHLD, sysctls=(), int cgroup_dir=-1):
    """Clone a pod's infra process (see the module comment); returns (pid, pidfd) once it
    serves `sock`. `sysctls` are (path under /proc/sys, value) pairs infra writes in the
    pod's namespaces before it serves; `cgroup_dir`, a cgroup v2 directory, is where clone3
    puts it (CLONE_INTO_CGROUP). The caller keeps its own copies of `sock` and
    `listen` (close them). PR_SET_PDEATHSIG fires when the calling *thread* exits: call
    from a long-lived one. exit_signal 0 makes infra a "clone" child: its end sends no
    SIGCHLD and waitpid(-1) never reaps it, so a process that reaps orphans with
    waitpid(-1) cannot steal the exit status it learns from the pidfd (waitid_pidfd)."""
    cdef infra_cfg cfg
    cdef spawn_result result
    cdef int rc
    cdef uint64_t flags = check_clone_flags(clone_flags)
    cdef bytes name = fs_bytes(hostname, "hostname")
    if len(name) > 64:
        raise ValueError("hostname longer than 64 bytes")
    if name and not flags & system.CLONE_NEWUTS:
        raise ValueError("hostname needs CLONE_NEWUTS (it would rename the host)")
    if sock < 0:
        raise ValueError("sock must be an open SOCK_SEQPACKET socket")
    if not 0 <= pdeathsig < system.NSIG:
        raise ValueError(f"pdeathsig {pdeathsig} out of range")
    if not 0 <= exit_signal < system.NSIG:
        raise ValueError(f"exit_signal {exit_signal} out of range")
    memset(&cfg, 0, sizeof(cfg))
    cfg.exit_signal = exit_signal
    cfg.sock = sock
    cfg.listen = listen if listen >= 0 else -1
    cfg.pdeathsig = pdeathsig
    cfg.clone_flags = flags
    cfg.hostname_len = len(name)
    memcpy(cfg.hostname, <const char *>name, len(name))
    cdef bytes packed = b"".join(
        fs_bytes(path, "sysctl path") + b"\0" + fs_bytes(value, "sysctl value") + b"\0"
        for path, value in sysctls
    )
    if len(packed) > INFRA_SYSCTL_BUF:
        raise ValueError(f"sysctls take more than {INFRA_SYSCTL_BUF} bytes")
    cfg.sysctls = <const char *>packed
    cfg.n_sysctls = <int>len(sysctls)
    cfg.cgroup_dir = cgroup_dir if cgroup_dir >= 0 else -1
    with nogil:
        rc = start_infra(&cfg, &result)
    if rc < 0:
        raise spawn_error(result.step, result.err, "supd-infra")
    return (result.pid, result.pidfd)


def _cri_timestamp(int64_t ns):
    """The CRI log timestamp for `ns` (for tests of the formatter)."""
    cdef char out[CRI_TIME_LEN]
    format_cri_time(ns, out)
    return out[:CRI_TIME_LEN].decode("ascii")
