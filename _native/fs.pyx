# A container's filesystem, built in the cloned child before execve (issue 4).
#
# supd computes everything (rootfs.py): which overlay to mount, which files to bind, in
# which order; the child only runs the list, one system call or two per operation, with the
# rules of spawn.pyx (async-signal-safe calls, no allocation, paths formatted into stack
# buffers). An operation that fails is reported as step FS_STEP_BASE + its index, and supd,
# which keeps a description of each operation, turns that into "mount emptyDir 'cache' at
# /data: No such file or directory". Every mount happens in the child's own mount namespace
# (CLONE_NEWNS, made rec-private by the first operation): when the child dies, so do they,
# and a half-built container leaves nothing mounted behind.
#
# Wire form (FS section of a START frame, and spawn(fs=...)): u32 nops, then per operation
# u32 kind, u32 arg, u64 flags and four NUL-terminated strings: source, target, fstype, data.

cdef enum:
    FS_PATH_MAX = 4096


cdef int fs_mkdir_p(const char *path, unsigned int mode) noexcept nogil:
    """mkdir -p: every missing component of `path` (0755 for the parents). Returns 0, or
    -1 with errno."""
    cdef char buf[FS_PATH_MAX]
    cdef size_t n = strlen(path)
    cdef size_t i
    if n == 0 or n >= FS_PATH_MAX:
        system.set_errno(system.ENAMETOOLONG if n else system.ENOENT)
        return -1
    memcpy(buf, path, n + 1)
    for i in range(1, n):
        if buf[i] == 47:  # '/'
            buf[i] = 0
            if system.mkdir(buf, 0o755) < 0 and errno != system.EEXIST:
                return -1
            buf[i] = 47
    if system.mkdir(buf, mode) < 0 and errno != system.EEXIST:
        return -1
    return 0


cdef int fs_parent_dirs(const char *path) noexcept nogil:
    """mkdir -p of the directory that holds `path`."""
    cdef char buf[FS_PATH_MAX]
    cdef size_t n = strlen(path)
    cdef char *slash
    if n >= FS_PATH_MAX:
        system.set_errno(system.ENAMETOOLONG)
        return -1
    memcpy(buf, path, n + 1)
    slash = strrchr(buf, 47)
    if slash == NULL or slash == buf:
        return 0
    slash[0] = 0
    return fs_mkdir_p(buf, 0o755)


cdef int fs_mkfile(const char *path, unsigned int mode) noexcept nogil:
    """An empty file to bind a file onto; whatever exists there already is kept (a read-only
    host filesystem has its files)."""
    cdef int fd
    if system.access(path, system.F_OK) == 0:
        return 0
    if fs_parent_dirs(path) < 0:
        return -1
    fd = system.open(path, system.O_WRONLY | system.O_CREAT | system.O_EXCL | system.O_CLOEXEC
                     | system.O_NOCTTY | system.O_NOFOLLOW, mode)
    if fd < 0:
        return -1 if errno != system.EEXIST else 0
    system.close(fd)
    return 0


cdef int fs_open(const fs_op *op) noexcept nogil:
    """A detached recursive bind (open_tree(2) OPEN_TREE_CLONE) of op.source, or of op.data
    resolved beneath it with openat2(2) RESOLVE_BENEATH: a subPath that leaves the volume,
    by '..' or through a symlink, or that goes through a magic link, fails with EXDEV or
    ELOOP instead of reaching the host. Taken before pivot_root, attached after it (a bind
    from the detached old root would be refused), so that the target resolves inside the new
    root whatever symlinks the image has. op.flags: MOUNT_ATTR_* set on the bind."""
    cdef system.supd_open_how how
    cdef system.supd_mount_attr attr
    cdef int root, fd, tree
    root = system.open(op.source, system.O_PATH | system.O_CLOEXEC)
    if root < 0:
        return -1
    fd = root
    if op.data != NULL:
        memset(&how, 0, sizeof(how))
        how.flags = system.O_PATH | system.O_CLOEXEC
        how.resolve = system.RESOLVE_BENEATH | system.RESOLVE_NO_MAGICLINKS
        fd = <int>system.syscall(system.SYS_openat2, root, op.data, &how, sizeof(how))
        system.close(root)
        if fd < 0:
            return -1
    tree = <int>system.syscall(system.SYS_open_tree, fd, b"", system.AT_EMPTY_PATH
                               | system.AT_RECURSIVE | system.OPEN_TREE_CLONE
                               | system.O_CLOEXEC)
    system.close(fd)
    if tree < 0 or op.flags == 0:
        return tree
    memset(&attr, 0, sizeof(attr))
    attr.attr_set = op.flags
    if system.syscall(system.SYS_mount_setattr, tree, b"", system.AT_EMPTY_PATH
                      | system.AT_RECURSIVE, &attr, sizeof(attr)) < 0:
        system.close(tree)
        return -1
    return tree


cdef int fs_pivot(const char *new_root) noexcept nogil:
    """pivot_root(".", ".") inside the new root, then detach the old root stacked beneath
    it (pivot_root(2), the runc way): no directory for the old root is needed, and after
    this nothing of the host's tree is reachable."""
    if system.chdir(new_root) < 0:
        return -1
    if system.syscall(system.SYS_pivot_root, b".", b".") < 0:
        return -1
    if system.umount2(b".", system.MNT_DETACH) < 0:
        return -1
    return system.chdir(b"/")


cdef int fs_run_op(const fs_op *op, int *fds) noexcept nogil:
    cdef system.supd_mount_attr attr
    cdef int fd
    if op.kind == FS_MOUNT:
        return system.mount(op.source, op.target, op.fstype, <unsigned long>op.flags, op.data)
    if op.kind == FS_MKDIR:
        return fs_mkdir_p(op.target, op.arg)
    if op.kind == FS_MKFILE:
        return fs_mkfile(op.target, op.arg)
    if op.kind == FS_SYMLINK:
        if system.symlink(op.source, op.target) < 0 and errno != system.EEXIST:
            return -1
        return 0
    if op.kind == FS_PIVOT:
        return fs_pivot(op.target)
    if op.kind == FS_OPEN:
        fd = fs_open(op)
        if fd < 0:
            return -1
        close_if_open(fds[op.arg])
        fds[op.arg] = fd
        return 0
    if op.kind == FS_BIND_FD:
        if fds[op.arg] < 0:
            system.set_errno(system.EBADF)
            return -1
        return <int>system.syscall(system.SYS_move_mount, fds[op.arg], b"", system.AT_FDCWD,
                                   op.target, system.MOVE_MOUNT_F_EMPTY_PATH)
    if op.kind == FS_SETATTR:
        memset(&attr, 0, sizeof(attr))
        attr.attr_set = op.flags
        return <int>system.syscall(system.SYS_mount_setattr, system.AT_FDCWD, op.target,
                                   system.AT_RECURSIVE if op.arg else 0, &attr, sizeof(attr))
    system.set_errno(system.EINVAL)
    return -1


cdef int child_fs(const spawn_cfg *c) noexcept nogil:
    """Run the filesystem operations in order. Returns the failed step (FS_STEP_BASE +
    index, errno set), or -1. The O_PATH fds are close-on-exec and closed with the rest."""
    cdef int fds[FS_MAX_FDS]
    cdef int i
    for i in range(FS_MAX_FDS):
        fds[i] = -1
    for i in range(c.n_fs_ops):
        if fs_run_op(&c.fs_ops[i], fds) < 0:
            return FS_STEP_BASE + i
    return -1


cdef int decode_fs(const char *buf, size_t n, fs_op *ops, int *nops) noexcept nogil:
    """Validate and decode an FS section (strings are not copied). Returns 0, or EINVAL
    (malformed) or E2BIG (more than FS_MAX_OPS operations)."""
    cdef uint32_t count, i
    cdef int k
    cdef size_t pos = 4
    cdef const char *s[4]
    cdef const char *nul
    if n < 4:
        return system.EINVAL
    count = get_u32(buf)
    if count > FS_MAX_OPS:
        return system.E2BIG
    for i in range(count):
        if n - pos < FS_OP_FIXED:
            return system.EINVAL
        ops[i].kind = get_u32(buf + pos)
        ops[i].arg = get_u32(buf + pos + 4)
        ops[i].flags = get_u64(buf + pos + 8)
        pos += FS_OP_FIXED
        for k in range(4):
            nul = <const char *>memchr(buf + pos, 0, n - pos)
            if nul == NULL:
                return system.EINVAL
            s[k] = buf + pos if nul != buf + pos else NULL
            pos = <size_t>(nul - buf) + 1
        ops[i].source = s[0]
        ops[i].target = s[1]
        ops[i].fstype = s[2]
        ops[i].data = s[3]
        if ops[i].kind < 1 or ops[i].kind > FS_KIND_MAX or ops[i].target == NULL:
            return system.EINVAL
        if (ops[i].kind == FS_OPEN or ops[i].kind == FS_BIND_FD) and ops[i].arg >= FS_MAX_FDS:
            return system.EINVAL
        if (ops[i].kind == FS_OPEN or ops[i].kind == FS_SYMLINK) and ops[i].source == NULL:
            return system.EINVAL
    if pos != n:
        return system.EINVAL
    nops[0] = <int>count
    return 0


# ---------------------------------------------------------------------------------------
# Python side

FS_OPS = {
    "mount": FS_MOUNT,
    "mkdir": FS_MKDIR,
    "mkfile": FS_MKFILE,
    "symlink": FS_SYMLINK,
    "pivot": FS_PIVOT,
    "open": FS_OPEN,
    "bind_fd": FS_BIND_FD,
    "setattr": FS_SETATTR,
}


def encode_fs(ops):
    """The FS section for `ops`: (kind name, target, source, fstype, flags, data, arg)
    tuples, None or "" for an absent string. ValueError for what decode_fs would refuse."""
    cdef list parts
    cdef list items = list(ops)
    if len(items) > FS_MAX_OPS:
        raise ValueError(f"more than {FS_MAX_OPS} filesystem operations")
    parts = [int(len(items)).to_bytes(4, "little")]
    for kind, target, source, fstype, flags, data, arg in items:
        code = FS_OPS.get(kind)
        if code is None:
            raise ValueError(f"unknown filesystem operation {kind!r}")
        if not target:
            raise ValueError(f"filesystem operation {kind}: empty target")
        if code in (FS_OPEN, FS_BIND_FD) and not 0 <= arg < FS_MAX_FDS:
            raise ValueError(f"filesystem operation {kind}: fd slot {arg} out of range")
        if code in (FS_OPEN, FS_SYMLINK) and not source:
            raise ValueError(f"filesystem operation {kind}: empty source")
        parts.append(int(code).to_bytes(4, "little") + int(arg).to_bytes(4, "little")
                     + int(flags).to_bytes(8, "little"))
        for value in (source, target, fstype, data):
            parts.append((fs_bytes(value, "filesystem operation") if value else b"") + b"\0")
    return b"".join(parts)


def mount_tmpfs(target, data):
    """mount -t tmpfs -o nosuid,nodev,DATA tmpfs TARGET, in the caller's mount namespace
    (supd's: the medium Memory emptyDirs that a pod's containers share)."""
    cdef bytes t = fs_bytes(target, "target")
    cdef bytes d = fs_bytes(data, "data")
    cdef const char *tp = t
    cdef const char *dp = d
    cdef int rc
    with nogil:
        rc = system.mount(b"tmpfs", tp, b"tmpfs", system.MS_NOSUID | system.MS_NODEV, dp)
    if rc < 0:
        raise_errno(errno)


def umount(target):
    """umount2(target, MNT_DETACH)."""
    cdef bytes t = fs_bytes(target, "target")
    cdef const char *tp = t
    cdef int rc
    with nogil:
        rc = system.umount2(tp, system.MNT_DETACH)
    if rc < 0:
        raise_errno(errno)
