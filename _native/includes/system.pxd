# Extern declarations of the kernel and libc interfaces the core uses, grouped by header.
#
# Everything here is `nogil`: the child of clone() and the infra loop run without the GIL
# and without a Python thread state. Declarations only; no code lives in this file except
# the small verbatim block below for constants older headers may lack.

from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t


cdef extern from "sys/types.h" nogil:
    ctypedef int pid_t
    ctypedef unsigned int uid_t
    ctypedef unsigned int gid_t
    ctypedef long ssize_t
    ctypedef long off_t


cdef extern from "errno.h" nogil:
    int errno
    int *errno_location "__errno_location"()
    enum:
        EPERM
        ENOENT
        ESRCH
        EINTR
        EIO
        E2BIG
        ENOEXEC
        EBADF
        ECHILD
        EAGAIN
        ENOMEM
        EACCES
        EEXIST
        ENODEV
        ENOTDIR
        EISDIR
        EINVAL
        EMFILE
        ETXTBSY
        ENOSPC
        EPIPE
        ENAMETOOLONG
        ELOOP
        ESTALE
        ETIMEDOUT
        ENOBUFS
        ENOTCONN
        ECONNRESET
        EMSGSIZE
        ENOSYS
        ECANCELED
        EXDEV


cdef extern from "unistd.h" nogil:
    long syscall(long number, ...)
    int close(int fd)
    int dup(int fd)
    int dup2(int oldfd, int newfd)
    int pipe2(int pipefd[2], int flags)
    ssize_t read(int fd, void *buf, size_t count)
    ssize_t write(int fd, const void *buf, size_t count)
    off_t lseek(int fd, off_t offset, int whence)
    enum:
        SEEK_END
    int chdir(const char *path)
    int access(const char *path, int mode)
    enum:
        F_OK
    int symlink(const char *target, const char *linkpath)
    int execve(const char *path, char *const argv[], char *const envp[])
    void _exit(int status)
    pid_t getpid()
    pid_t getppid()
    pid_t setsid()
    int sethostname(const char *name, size_t len)
    int kill(pid_t pid, int sig)


cdef extern from "fcntl.h" nogil:
    int open(const char *path, int flags, ...)
    int fcntl(int fd, int cmd, ...)
    enum:
        O_RDONLY
        O_WRONLY
        O_RDWR
        O_CLOEXEC
        O_NONBLOCK
        O_DIRECTORY
        O_APPEND
        O_PATH
        O_CREAT
        O_EXCL
        O_NOCTTY
        O_NOFOLLOW
        AT_FDCWD
        F_GETFD
        F_SETFD
        F_GETFL
        F_SETFL
        F_DUPFD_CLOEXEC
        FD_CLOEXEC


cdef extern from "sys/syscall.h" nogil:
    enum:
        SYS_clone3
        SYS_setns
        SYS_setresuid
        SYS_setresgid
        SYS_setgroups
        SYS_close_range
        SYS_getdents64
        SYS_pidfd_send_signal
        SYS_pidfd_open
        SYS_capget
        SYS_capset
        SYS_openat2
        SYS_mount_setattr
        SYS_pivot_root
        SYS_open_tree
        SYS_move_mount


cdef extern from "sched.h" nogil:
    enum:
        CLONE_NEWNS
        CLONE_NEWPID
        CLONE_NEWNET
        CLONE_NEWIPC
        CLONE_NEWUTS
        CLONE_NEWUSER
        CLONE_NEWCGROUP
        CLONE_PIDFD
    int setns(int fd, int nstype)
    int unshare(int flags)


cdef extern from "signal.h" nogil:
    ctypedef struct sigset_t:
        pass
    ctypedef void (*sighandler_t)(int)
    struct sigaction_t "sigaction":
        sighandler_t sa_handler
        sigset_t sa_mask
        int sa_flags
    sighandler_t SIG_DFL
    sighandler_t SIG_IGN
    enum:
        SIG_BLOCK
        SIG_UNBLOCK
        SIG_SETMASK
        SIGHUP
        SIGINT
        SIGKILL
        SIGSTOP
        SIGPIPE
        SIGTERM
        SIGCHLD
        NSIG "_NSIG"
    int sigemptyset(sigset_t *s)
    int sigfillset(sigset_t *s)
    int sigaddset(sigset_t *s, int signo)
    int sigaction(int signo, const sigaction_t *act, sigaction_t *old)
    int pthread_sigmask(int how, const sigset_t *s, sigset_t *old)


cdef extern from "sys/signalfd.h" nogil:
    struct signalfd_siginfo:
        uint32_t ssi_signo
    enum:
        SFD_NONBLOCK
        SFD_CLOEXEC
    int signalfd(int fd, const sigset_t *mask, int flags)


cdef extern from "sys/wait.h" nogil:
    ctypedef int idtype_t
    ctypedef struct siginfo_t:
        int si_signo
        int si_code
        int si_status
        pid_t si_pid
    enum:
        WNOHANG
        WEXITED
        CLD_EXITED
        CLD_KILLED
        CLD_DUMPED
    pid_t waitpid(pid_t pid, int *status, int options)
    int waitid(idtype_t idtype, int id, siginfo_t *info, int options)
    bint WIFEXITED(int status)
    int WEXITSTATUS(int status)
    bint WIFSIGNALED(int status)
    int WTERMSIG(int status)


cdef extern from "sys/stat.h" nogil:
    int mkdir(const char *path, unsigned int mode)


cdef extern from "sys/mount.h" nogil:
    enum:
        MS_RDONLY
        MS_BIND
        MS_REMOUNT
        MNT_DETACH
        MS_REC
        MS_PRIVATE
        MS_NOSUID
        MS_NODEV
        MS_NOEXEC
    int mount(const char *source, const char *target, const char *fstype,
              unsigned long flags, const void *data)
    int umount2(const char *target, int flags)


cdef extern from "sys/prctl.h" nogil:
    enum:
        PR_SET_PDEATHSIG
        PR_SET_NAME
        PR_SET_CHILD_SUBREAPER
        PR_CAPBSET_READ
        PR_CAPBSET_DROP
        PR_SET_NO_NEW_PRIVS
        PR_CAP_AMBIENT
        PR_CAP_AMBIENT_CLEAR_ALL
    int prctl(int option, ...)


cdef extern from "sys/mman.h" nogil:
    int munmap(void *addr, size_t length)


cdef extern from "sys/auxv.h" nogil:
    enum:
        AT_PHDR
        AT_BASE
        AT_PAGESZ
    unsigned long getauxval(unsigned long kind)


cdef extern from "pthread.h" nogil:
    ctypedef unsigned long pthread_t
    pthread_t pthread_self()


cdef extern from "sys/uio.h" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len
    ssize_t writev(int fd, const iovec *iov, int iovcnt)


cdef extern from "sys/socket.h" nogil:
    ctypedef unsigned int socklen_t
    struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    struct cmsghdr:
        size_t cmsg_len
        int cmsg_level
        int cmsg_type
    enum:
        AF_INET
        SOCK_DGRAM
        SOCK_CLOEXEC
        SOCK_NONBLOCK
        SOL_SOCKET
        SCM_RIGHTS
        MSG_DONTWAIT
        MSG_NOSIGNAL
        MSG_TRUNC
        MSG_CTRUNC
        MSG_CMSG_CLOEXEC
    int socket(int domain, int type, int protocol)
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    ssize_t recvmsg(int fd, msghdr *msg, int flags)
    ssize_t sendmsg(int fd, const msghdr *msg, int flags)
    int accept4(int fd, void *addr, socklen_t *addrlen, int flags)
    cmsghdr *CMSG_FIRSTHDR(msghdr *msg)
    cmsghdr *CMSG_NXTHDR(msghdr *msg, cmsghdr *cmsg)
    unsigned char *CMSG_DATA(cmsghdr *cmsg)
    size_t CMSG_LEN(size_t n)
    size_t CMSG_SPACE(size_t n)


cdef extern from "net/if.h" nogil:
    enum:
        IFNAMSIZ
        IFF_UP
    struct ifreq:
        char ifr_name[16]
        short ifr_flags


cdef extern from "sys/ioctl.h" nogil:
    enum:
        SIOCGIFFLAGS
        SIOCSIFFLAGS
        TIOCSCTTY
    int ioctl(int fd, unsigned long request, ...)


cdef extern from "sys/epoll.h" nogil:
    union epoll_data_t "epoll_data":
        uint64_t u64
    struct epoll_event:
        uint32_t events
        epoll_data_t data
    enum:
        EPOLL_CLOEXEC
        EPOLL_CTL_ADD
        EPOLL_CTL_MOD
        EPOLL_CTL_DEL
        EPOLLIN
        EPOLLOUT
        EPOLLERR
        EPOLLHUP
        EPOLLRDHUP
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)


cdef extern from "time.h" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    enum:
        CLOCK_REALTIME
    int clock_gettime(int clk, timespec *ts)


# Constants some libc headers lack (glibc < 2.36 has no P_PIDFD) or name awkwardly (__WALL);
# raw values from the kernel's uapi headers: linux/wait.h, linux/close_range.h.
cdef extern from * nogil:
    """
    #include <errno.h>
    #define SUPD_P_PIDFD 3
    #define SUPD_WALL 0x40000000
    /* Cython reads an assigned name as a local: errno is written through this. */
    static inline void supd_set_errno(int value) { errno = value; }
    #define SUPD_CLOSE_RANGE_MAX 0xFFFFFFFFu
    /* clone3(2): struct clone_args up to CLONE_ARGS_SIZE_VER2 (cgroup, Linux 5.7). The
       size passed is VER0's unless CLONE_INTO_CGROUP is asked for. */
    struct supd_clone_args {
        uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
        uint64_t set_tid, set_tid_size, cgroup;
    };
    #define SUPD_CLONE_ARGS_SIZE_VER0 64
    #define SUPD_CLONE_ARGS_SIZE_VER2 88
    #define SUPD_CLONE_INTO_CGROUP 0x200000000ULL
    /* capget(2)/capset(2), linux/capability.h: version 3 holds 64 bits in two halves. */
    #define SUPD_CAP_VERSION_3 0x20080522
    struct supd_cap_header { uint32_t version; int pid; };
    struct supd_cap_data { uint32_t effective, permitted, inheritable; };
    /* openat2(2) and mount_setattr(2): linux/openat2.h, linux/mount.h (Linux 5.6, 5.12). */
    struct supd_open_how { uint64_t flags, mode, resolve; };
    struct supd_mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };
    #define SUPD_RESOLVE_NO_MAGICLINKS 0x02
    #define SUPD_RESOLVE_BENEATH 0x08
    #define SUPD_AT_RECURSIVE 0x8000
    #define SUPD_AT_EMPTY_PATH 0x1000
    #define SUPD_OPEN_TREE_CLONE 1
    #define SUPD_MOVE_MOUNT_F_EMPTY_PATH 0x4
    """
    void set_errno "supd_set_errno"(int value)
    enum:
        SUPD_P_PIDFD
        WALL "SUPD_WALL"
        SUPD_CLOSE_RANGE_MAX
    enum:
        RESOLVE_NO_MAGICLINKS "SUPD_RESOLVE_NO_MAGICLINKS"
        RESOLVE_BENEATH "SUPD_RESOLVE_BENEATH"
        AT_RECURSIVE "SUPD_AT_RECURSIVE"
        AT_EMPTY_PATH "SUPD_AT_EMPTY_PATH"
        OPEN_TREE_CLONE "SUPD_OPEN_TREE_CLONE"
        MOVE_MOUNT_F_EMPTY_PATH "SUPD_MOVE_MOUNT_F_EMPTY_PATH"
    struct supd_open_how:
        uint64_t flags
        uint64_t mode
        uint64_t resolve
    struct supd_mount_attr:
        uint64_t attr_set
        uint64_t attr_clr
        uint64_t propagation
        uint64_t userns_fd
    struct supd_clone_args:
        uint64_t flags
        uint64_t pidfd
        uint64_t child_tid
        uint64_t parent_tid
        uint64_t exit_signal
        uint64_t stack
        uint64_t stack_size
        uint64_t tls
        uint64_t set_tid
        uint64_t set_tid_size
        uint64_t cgroup
    enum:
        SUPD_CLONE_ARGS_SIZE_VER0
        SUPD_CLONE_ARGS_SIZE_VER2
        SUPD_CAP_VERSION_3
    const uint64_t SUPD_CLONE_INTO_CGROUP
    struct supd_cap_header:
        uint32_t version
        int pid
    struct supd_cap_data:
        uint32_t effective
        uint32_t permitted
        uint32_t inheritable
