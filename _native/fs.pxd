# Filesystem setup of a container: a list of operations computed by supd (runtime.py /
# rootfs.py) and run in order by the cloned child before execve, without allocation.

cdef enum:
    FS_MAX_OPS = 128                    # operations in one START (or one spawn())
    FS_MAX_FDS = 64                     # detached binds an FS_OPEN keeps for an FS_BIND_FD
    FS_STEP_BASE = 256                  # op i fails as step FS_STEP_BASE + i
    FS_OP_FIXED = 16                    # u32 kind, u32 arg, u64 flags; then 4 strings

    FS_MOUNT = 1        # mount(source, target, fstype, flags, data); empty strings: NULL
    FS_MKDIR = 2        # mkdir -p target, the last one with mode `arg`
    FS_MKFILE = 3       # an empty file at target (mode `arg`) unless something is there
    FS_SYMLINK = 4      # symlink(source, target); an existing target is kept
    FS_PIVOT = 5        # pivot_root(2) into target (a mount point); the old root detached
    FS_OPEN = 6         # fd slot `arg` = a detached bind of source (data: beneath it)
    #                     with mount attributes `flags` (MOUNT_ATTR_*) set on it
    FS_BIND_FD = 7      # attach the detached bind of fd slot `arg` at target
    FS_SETATTR = 8      # mount_setattr(2) attr_set `flags` on target, AT_RECURSIVE if arg
    FS_KIND_MAX = 8


# One decoded operation; the strings point into the frame (or spawn()'s bytes).
ctypedef struct fs_op:
    uint32_t kind
    uint32_t arg
    uint64_t flags
    const char *source                  # NULL when empty
    const char *target
    const char *fstype                  # NULL when empty
    const char *data                    # NULL when empty
