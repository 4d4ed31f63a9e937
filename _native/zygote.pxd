# The infra factory ("zygote"): a small process cloned from supd once, early, that clones
# every pod's infra. Its frames on a SOCK_SEQPACKET socketpair, integers little-endian:
#
# supd -> zygote
#   SPAWN    u32 type, u32 rid, u64 clone_flags, u32 pdeathsig, u32 hostname_len,
#            char hostname[64], u32 extras (ZYGOTE_WITH_*); SCM_RIGHTS: the infra's socket,
#            the write end of its error pipe, then its listening socket (WITH_LISTEN) and a
#            cgroup v2 directory to clone it into (WITH_CGROUP), in that order.
# zygote -> supd
#   SPAWNED  u32 type, u32 rid, i32 pid (-1: clone failed), i32 errno; SCM_RIGHTS: the
#            infra's pidfd when pid > 0.
#   EXITED   u32 type, u32 0, i32 pid, i32 wait_status (an infra the zygote reaped)

cdef enum:
    ZYGOTE_SPAWN = 1
    ZYGOTE_SPAWNED = 2
    ZYGOTE_EXITED = 3

    ZYGOTE_SPAWN_SIZE = 92
    ZYGOTE_WITH_LISTEN = 1
    ZYGOTE_WITH_CGROUP = 2
    ZYGOTE_REPLY_SIZE = 16
    ZYGOTE_HOSTNAME_MAX = 64
    ZYGOTE_MAX_EVENTS = 8
    ZYGOTE_FRAMES_PER_WAKEUP = 64


ctypedef struct zygote_cfg:
    int sock
    int errfd
