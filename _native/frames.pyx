# The supd <-> infra frame codec (layout in frames.pxd): the Python encoders supd uses,
# decode_report for infra's replies, and the C-level decoder and encoders infra runs
# without the GIL. One module holds both directions so the layout has one definition.


cdef inline void put_u32(char *p, uint32_t v) noexcept nogil:
    p[0] = <char>(v & 0xFF)
    p[1] = <char>((v >> 8) & 0xFF)
    p[2] = <char>((v >> 16) & 0xFF)
    p[3] = <char>((v >> 24) & 0xFF)


cdef inline void put_u64(char *p, uint64_t v) noexcept nogil:
    put_u32(p, <uint32_t>v)
    put_u32(p + 4, <uint32_t>(v >> 32))


cdef inline uint32_t get_u32(const char *p) noexcept nogil:
    cdef const unsigned char *b = <const unsigned char *>p
    return <uint32_t>b[0] | (<uint32_t>b[1] << 8) | (<uint32_t>b[2] << 16) | (<uint32_t>b[3] << 24)


cdef inline uint64_t get_u64(const char *p) noexcept nogil:
    return <uint64_t>get_u32(p) | (<uint64_t>get_u32(p + 4) << 32)


cdef inline void put_header(char *p, uint32_t frame_type, uint32_t cid) noexcept nogil:
    put_u32(p, frame_type)
    put_u32(p + 4, cid)


# ---------------------------------------------------------------------------------------
# infra side (C level, no GIL, no allocation)

cdef int decode_strings(char *blob, size_t left, uint32_t argc, uint32_t envc, bint has_cwd,
                        char **ptrs, char ***argv, char ***envp, char **cwd) noexcept nogil:
    """Split the blob of a START or an EXEC (argc + envc [+ 1] NUL-terminated strings that
    fill it exactly) into `ptrs`: argv[0..argc), NULL, env[0..envc), NULL. Strings are not
    copied. Returns 0, or EINVAL."""
    cdef uint32_t i, nstrings = argc + envc + (1 if has_cwd else 0)
    cdef char *nul
    argv[0] = ptrs
    envp[0] = ptrs + argc + 1
    cwd[0] = NULL
    for i in range(nstrings):
        nul = <char *>memchr(blob, 0, left)
        if nul == NULL:
            return system.EINVAL
        if i < argc:
            argv[0][i] = blob
        elif i < argc + envc:
            envp[0][i - argc] = blob
        else:
            cwd[0] = blob
        left -= <size_t>(nul - blob) + 1
        blob = nul + 1
    if left != 0:
        return system.EINVAL
    argv[0][argc] = NULL
    envp[0][envc] = NULL
    return 0


cdef int decode_start(char *buf, size_t n, start_request *req, char **ptrs,
                      gid_t *groups, fs_op *fs) noexcept nogil:
    """Validate and decode the START frame buf[:n] into `req`. `ptrs` has room for
    FRAME_MAX_STRINGS + 2 pointers, `groups` for FRAME_MAX_GROUPS, `fs` for FS_MAX_OPS.
    Strings are not copied: they point into `buf`. Returns 0, or the errno for a
    start_failed report: EINVAL for a malformed frame, E2BIG for one over the limits."""
    cdef uint32_t blob_len, i
    cdef uint64_t end
    cdef int rc
    if n < START_FIXED_SIZE:
        return system.EINVAL
    req.cid = get_u32(buf + 4)
    req.clone_flags = get_u64(buf + 8)
    req.uid = get_u32(buf + 16)
    req.gid = get_u32(buf + 20)
    req.flags = get_u32(buf + 24)
    req.ngroups = get_u32(buf + 28)
    req.argc = get_u32(buf + 32)
    req.envc = get_u32(buf + 36)
    blob_len = get_u32(buf + 40)
    req.caps = get_u64(buf + 44)
    req.log_max = get_u64(buf + 52)
    req.cwd = NULL
    req.n_fs = 0
    if req.ngroups > FRAME_MAX_GROUPS:
        return system.E2BIG
    if <uint64_t>req.argc + req.envc > FRAME_MAX_STRINGS:
        return system.E2BIG
    if req.argc < 1 or req.flags & ~(<uint32_t>START_FLAGS_KNOWN):
        return system.EINVAL
    if req.clone_flags & ~CLONE_NEW_MASK:
        return system.EINVAL
    if req.flags & (START_MOUNT_PROC | START_HAS_FS) and not req.clone_flags & system.CLONE_NEWNS:
        return system.EINVAL
    end = <uint64_t>START_FIXED_SIZE + 4 * <uint64_t>req.ngroups + blob_len
    if end > n or (end != n and not req.flags & START_HAS_FS):
        return system.EINVAL
    if req.flags & START_HAS_FS:
        rc = decode_fs(buf + end, n - <size_t>end, fs, &req.n_fs)
        if rc != 0:
            return rc
    for i in range(req.ngroups):
        groups[i] = <gid_t>get_u32(buf + START_FIXED_SIZE + 4 * i)
    return decode_strings(buf + START_FIXED_SIZE + 4 * req.ngroups, blob_len, req.argc,
                          req.envc, (req.flags & START_HAS_CWD) != 0, ptrs, &req.argv,
                          &req.envp, &req.cwd)


cdef int decode_exec(char *buf, size_t n, exec_request *req, char **ptrs) noexcept nogil:
    """Validate and decode the EXEC frame buf[:n] into `req` (as decode_start)."""
    cdef uint32_t blob_len
    if n < EXEC_FIXED_SIZE:
        return system.EINVAL
    req.eid = get_u32(buf + 4)
    req.cid = get_u32(buf + 8)
    req.flags = get_u32(buf + 12)
    req.argc = get_u32(buf + 16)
    req.envc = get_u32(buf + 20)
    blob_len = get_u32(buf + 24)
    req.cwd = NULL
    if <uint64_t>req.argc + req.envc > FRAME_MAX_STRINGS:
        return system.E2BIG
    if req.argc < 1 or req.flags & ~(<uint32_t>EXEC_FLAGS_KNOWN):
        return system.EINVAL
    if req.flags & EXEC_TTY and req.flags & EXEC_CAPTURE:
        return system.EINVAL
    if <uint64_t>EXEC_FIXED_SIZE + blob_len != n:
        return system.EINVAL
    return decode_strings(buf + EXEC_FIXED_SIZE, blob_len, req.argc, req.envc,
                          (req.flags & EXEC_HAS_CWD) != 0, ptrs, &req.argv, &req.envp,
                          &req.cwd)


cdef size_t encode_report(const report_rec *r, char *out) noexcept nogil:
    """Write report `r` to `out` (at least 32 bytes); returns its size. The EXEC_* reports
    have the layouts of their container counterparts; every one ends with its seq."""
    cdef bint exited = r.type == REPORT_EXITED or r.type == REPORT_EXEC_EXITED
    put_header(out, r.type, r.cid)
    if r.type == REPORT_LOG_FULL:
        put_u64(out + 8, <uint64_t>r.ns)
        put_u64(out + 16, r.seq)
        return LOG_FULL_SIZE
    put_u32(out + 8, <uint32_t>r.a)
    if (r.type == REPORT_START_FAILED or r.type == REPORT_EXEC_FAILED
            or r.type == REPORT_LOG_DROPPED):
        put_u32(out + 12, <uint32_t>r.b)
        put_u64(out + 16, r.seq)
        return START_FAILED_SIZE
    put_u32(out + 12, <uint32_t>r.b if exited else 0)
    put_u64(out + 16, <uint64_t>r.ns)
    put_u64(out + 24, r.seq)
    return EXITED_SIZE if exited else STARTED_SIZE


cdef size_t encode_exec_captured(const report_rec *r, const char *output, size_t len,
                                 char *out) noexcept nogil:
    """Write the EXEC_CAPTURED report `r` with `len` bytes of output to `out` (at least
    EXITED_SIZE + len bytes); returns its size."""
    put_header(out, REPORT_EXEC_CAPTURED, r.cid)
    put_u32(out + 8, <uint32_t>r.a)
    put_u32(out + 12, <uint32_t>r.b)
    put_u64(out + 16, <uint64_t>r.ns)
    memcpy(out + 24, output, len)
    put_u64(out + 24 + len, r.seq)
    return EXITED_SIZE + len


cdef void encode_hello_entry(char *out, uint32_t cid, pid_t pid, int64_t ns) noexcept nogil:
    put_u32(out, cid)
    put_u32(out + 4, <uint32_t>pid)
    put_u64(out + 8, <uint64_t>ns)


cdef void encode_hello_header(char *out, uint32_t count, uint64_t dropped,
                              uint64_t last_seq) noexcept nogil:
    put_header(out, REPORT_HELLO, 0)
    put_u32(out + 8, count)
    cdef uint32_t saturated = 0xFFFFFFFF
    if dropped < saturated:
        saturated = <uint32_t>dropped
    put_u32(out + 12, saturated)
    put_u64(out + 16, last_seq)


# ---------------------------------------------------------------------------------------
# supd side (Python)

cdef uint32_t id_field(long long value, str what) except? 0:
    if value < -1 or value >= 0xFFFFFFFF:
        raise ValueError(f"{what} must be -1 or in 0..2**32-2")
    return <uint32_t>value if value >= 0 else <uint32_t>-1


def encode_start(uint32_t cid, argv, env, cwd, *, clone_flags, long long uid=-1,
                 long long gid=-1, groups=(), bint mount_proc=True, fs=None, caps=None,
                 bint no_new_privs=False, bint cgroup_into=False, log_max=0):
    """The START frame for container `cid`. Changing uid or gid, or giving groups, sets the
    supplementary groups to exactly `groups` (none when empty), as Kubernetes does. `fs`:
    the container's filesystem operations (see encode_fs), run after mount_proc. `caps` (a
    capability bit mask, None: keep) becomes the bounding, permitted and effective sets;
    `cgroup_into` says the frame's second fd is a cgroup v2 directory for
    CLONE_INTO_CGROUP; past `log_max` bytes in its log (0: never) infra reports
    LOG_FULL."""
    cdef uint64_t flags64 = check_clone_flags(clone_flags)
    cdef list args = [fs_bytes(a, "argv") for a in argv]
    cdef list envs = [fs_bytes(e, "env") for e in env]
    cdef list gids = [int(g) for g in groups]
    cdef uint32_t flags = 0
    cdef bytes blob
    cdef bytes frame
    cdef bytes fs_section = b""
    cdef char *out
    cdef Py_ssize_t i, size
    if fs:
        if not flags64 & system.CLONE_NEWNS:
            raise ValueError("filesystem operations need CLONE_NEWNS (they would change the host)")
        fs_section = encode_fs(fs)
        flags |= START_HAS_FS
    if isinstance(argv, (str, bytes)) or not args:
        raise ValueError("argv must be a non-empty sequence of strings")
    if len(args) + len(envs) > FRAME_MAX_STRINGS:
        raise ValueError(f"argv and env have more than {FRAME_MAX_STRINGS} entries")
    if len(gids) > FRAME_MAX_GROUPS:
        raise ValueError(f"more than {FRAME_MAX_GROUPS} groups")
    if mount_proc:
        if not flags64 & system.CLONE_NEWNS:
            raise ValueError("mount_proc needs CLONE_NEWNS (it would remount the host's /proc)")
        flags |= START_MOUNT_PROC
    strings = args + envs
    if cwd is not None:
        flags |= START_HAS_CWD
        strings.append(fs_bytes(cwd, "cwd"))
    cdef uint64_t cap_mask = 0
    if caps is not None:
        if not 0 <= caps < 2**64:
            raise ValueError("caps must be a 64-bit capability mask")
        flags |= START_SET_CAPS
        cap_mask = <uint64_t>caps
    if not 0 <= log_max < 2**63:
        raise ValueError("log_max must be in 0..2**63-1")
    if no_new_privs:
        flags |= START_NO_NEW_PRIVS
    if cgroup_into:
        flags |= START_CGROUP_INTO
    if uid != -1:
        flags |= START_SET_UID
    if gid != -1:
        flags |= START_SET_GID
    if uid != -1 or gid != -1 or gids:
        flags |= START_SET_GROUPS
    blob = b"\0".join(strings) + b"\0"
    size = START_FIXED_SIZE + 4 * len(gids) + len(blob) + len(fs_section)
    if size > FRAME_MAX:
        raise ValueError(f"start frame of {size} bytes exceeds {FRAME_MAX}")
    frame = PyBytes_FromStringAndSize(NULL, size)
    out = PyBytes_AS_STRING(frame)
    put_header(out, FRAME_START, cid)
    put_u64(out + 8, flags64)
    put_u32(out + 16, id_field(uid, "uid"))
    put_u32(out + 20, id_field(gid, "gid"))
    put_u32(out + 24, flags)
    put_u32(out + 28, <uint32_t>len(gids))
    put_u32(out + 32, <uint32_t>len(args))
    put_u32(out + 36, <uint32_t>len(envs))
    put_u32(out + 40, <uint32_t>len(blob))
    put_u64(out + 44, cap_mask)
    put_u64(out + 52, <uint64_t>log_max)
    for i in range(len(gids)):
        if not 0 <= gids[i] < 0xFFFFFFFF:
            raise ValueError(f"group {gids[i]} out of range")
        put_u32(out + START_FIXED_SIZE + 4 * i, <uint32_t>gids[i])
    memcpy(out + START_FIXED_SIZE + 4 * len(gids), <const char *>blob, len(blob))
    if fs_section:
        memcpy(out + START_FIXED_SIZE + 4 * len(gids) + len(blob), <const char *>fs_section,
               len(fs_section))
    return frame


cdef bytes signal_frame(uint32_t kind, uint32_t target, int signo, bint group):
    cdef char out[SIGNAL_SIZE]
    if not 0 < signo < system.NSIG:
        raise ValueError(f"signal {signo} out of range")
    put_header(out, kind, target)
    put_u32(out + 8, <uint32_t>signo)
    put_u32(out + 12, SIGNAL_GROUP if group else 0)
    return out[:SIGNAL_SIZE]


def encode_signal(uint32_t cid, int signo, bint group=False):
    """The SIGNAL frame: kill(pid, signo), or kill(-pid, signo) with `group`."""
    return signal_frame(FRAME_SIGNAL, cid, signo, group)


def encode_exec(uint32_t eid, uint32_t cid, argv, env, cwd, *, bint tty=False,
                bint capture=False):
    """The EXEC frame: start argv (env, cwd) as exec `eid` in running container `cid`.
    With `capture`, it goes without fds: infra reads the output and sends it with the exit
    (EXEC_CAPTURED)."""
    cdef list args = [fs_bytes(a, "argv") for a in argv]
    cdef list strings
    cdef uint32_t flags = (EXEC_TTY if tty else 0) | (EXEC_CAPTURE if capture else 0)
    if tty and capture:
        raise ValueError("an exec with a tty cannot have its output captured")
    cdef bytes blob
    cdef bytes frame
    cdef char *out
    cdef Py_ssize_t size
    if isinstance(argv, (str, bytes)) or not args:
        raise ValueError("argv must be a non-empty sequence of strings")
    strings = args + [fs_bytes(e, "env") for e in env]
    if len(strings) > FRAME_MAX_STRINGS:
        raise ValueError(f"argv and env have more than {FRAME_MAX_STRINGS} entries")
    if cwd is not None:
        flags |= EXEC_HAS_CWD
        strings.append(fs_bytes(cwd, "cwd"))
    blob = b"\0".join(strings) + b"\0"
    size = EXEC_FIXED_SIZE + len(blob)
    if size > FRAME_MAX:
        raise ValueError(f"exec frame of {size} bytes exceeds {FRAME_MAX}")
    frame = PyBytes_FromStringAndSize(NULL, size)
    out = PyBytes_AS_STRING(frame)
    put_header(out, FRAME_EXEC, eid)
    put_u32(out + 8, cid)
    put_u32(out + 12, flags)
    put_u32(out + 16, <uint32_t>len(args))
    put_u32(out + 20, <uint32_t>(len(strings) - len(args) - (1 if cwd is not None else 0)))
    put_u32(out + 24, <uint32_t>len(blob))
    memcpy(out + EXEC_FIXED_SIZE, <const char *>blob, len(blob))
    return frame


def encode_exec_signal(uint32_t eid, int signo, bint group=False):
    """The EXEC_SIGNAL frame: signal exec `eid` (its process group with `group`)."""
    return signal_frame(FRAME_EXEC_SIGNAL, eid, signo, group)


def encode_shutdown():
    """The SHUTDOWN frame: infra kills every container, reports their exits and exits 0."""
    cdef char out[SHUTDOWN_SIZE]
    put_header(out, FRAME_SHUTDOWN, 0)
    return out[:SHUTDOWN_SIZE]


def encode_keep():
    """The KEEP frame: infra clears its parent-death signal, so that it outlives supd. A
    pooled infra is made with one (it holds no pod, and must not outlive the supd that
    made it); the pod that takes it, in a daemon, must outlive supd."""
    cdef char out[KEEP_SIZE]
    put_header(out, FRAME_KEEP, 0)
    return out[:KEEP_SIZE]


def encode_ack(uint64_t seq):
    """The ACK frame: every report up to `seq` is recorded; infra forgets them."""
    cdef char out[ACK_SIZE]
    put_header(out, FRAME_ACK, 0)
    put_u64(out + 8, seq)
    return out[:ACK_SIZE]


def report_seq(frame):
    """The seq a report ends with (0 for HELLO and for anything too short)."""
    cdef const unsigned char[::1] view = frame
    cdef size_t n = view.shape[0]
    if n < START_FAILED_SIZE or get_u32(<const char *>&view[0]) == REPORT_HELLO:
        return 0
    return get_u64(<const char *>&view[n - 8])


def encode_reopen(uint32_t cid):
    """The REOPEN frame: container `cid` logs to the file sent with it from now on."""
    cdef char out[REOPEN_SIZE]
    put_header(out, FRAME_REOPEN, cid)
    return out[:REOPEN_SIZE]


def decode_report(frame):
    """One infra -> supd report as a tuple (see the .pyi). Raises ValueError when
    malformed."""
    cdef const unsigned char[::1] view = frame
    cdef const char *p
    cdef size_t n = view.shape[0]
    cdef uint32_t kind, count, i
    cdef const char *entry
    if n < FRAME_HEADER_SIZE:
        raise ValueError(f"report of {n} bytes is shorter than a header")
    p = <const char *>&view[0]
    kind = get_u32(p)
    cid = get_u32(p + 4)
    if kind == REPORT_STARTED and n == STARTED_SIZE:
        return ("started", cid, <int32_t>get_u32(p + 8), <int64_t>get_u64(p + 16))
    if kind == REPORT_START_FAILED and n == START_FAILED_SIZE:
        return ("start_failed", cid, <int32_t>get_u32(p + 8), <int32_t>get_u32(p + 12))
    if kind == REPORT_EXITED and n == EXITED_SIZE:
        return ("exited", cid, <int32_t>get_u32(p + 8), <int32_t>get_u32(p + 12),
                <int64_t>get_u64(p + 16))
    if kind == REPORT_EXEC_STARTED and n == STARTED_SIZE:
        return ("exec_started", cid, <int32_t>get_u32(p + 8))
    if kind == REPORT_EXEC_FAILED and n == START_FAILED_SIZE:
        return ("exec_failed", cid, <int32_t>get_u32(p + 8), <int32_t>get_u32(p + 12))
    if kind == REPORT_EXEC_EXITED and n == EXITED_SIZE:
        return ("exec_exited", cid, <int32_t>get_u32(p + 12))
    if kind == REPORT_EXEC_CAPTURED and EXITED_SIZE <= n <= EXITED_SIZE + INFRA_CAPTURE_LIMIT:
        return ("exec_exited", cid, <int32_t>get_u32(p + 12), p[24:n - 8])
    if kind == REPORT_LOG_DROPPED and n == START_FAILED_SIZE:
        return ("log_dropped", cid, <int32_t>get_u32(p + 8))
    if kind == REPORT_LOG_FULL and n == LOG_FULL_SIZE:
        return ("log_full", cid, <int64_t>get_u64(p + 8))
    if kind == REPORT_HELLO and n >= HELLO_FIXED_SIZE:
        count = get_u32(p + 8)
        if n == HELLO_FIXED_SIZE + <size_t>count * HELLO_ENTRY_SIZE:
            live = []
            for i in range(count):
                entry = p + HELLO_FIXED_SIZE + i * HELLO_ENTRY_SIZE
                live.append((get_u32(entry), <int32_t>get_u32(entry + 4),
                             <int64_t>get_u64(entry + 8)))
            return ("hello", live, get_u32(p + 12), get_u64(p + 16))
    raise ValueError(f"malformed report: type {kind}, {n} bytes")
