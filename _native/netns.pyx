# Sockets inside a pod's network namespace, for probes and hooks that supd runs itself.
#
# setns(2) with CLONE_NEWNET changes only the calling thread's network namespace, and a
# socket belongs for its whole life to the namespace it was created in (network_namespaces
# (7)). So supd creates the socket after stepping into the pod's namespace and steps back at
# once; connect, read and write then happen on the event loop as for any other socket.

from libc.stdlib cimport abort

cdef int _host_netns = -1


def unshare(int flags):
    """unshare(2) for the calling process (CLONE_NEWUSER needs it to be single-threaded)."""
    if flags & ~(<int>CLONE_NEW_MASK):
        raise ValueError(f"unshare flags {flags:#x}: only CLONE_NEW* flags are allowed")
    if system.unshare(flags) < 0:
        raise_errno(errno)
    if flags & system.CLONE_NEWUSER:
        forget_bounding()  # full in the new namespace


def socket_in_netns(int nsfd, int family, int type_, int proto=0):
    """A non-blocking, close-on-exec socket created in the network namespace that `nsfd`
    (a pidfd or an open /proc/PID/ns/net) refers to. Returns the fd."""
    global _host_netns
    cdef int fd, err = 0
    if _host_netns < 0:
        # The namespace supd's loop thread lives in; kept open for every switch back.
        _host_netns = system.open(b"/proc/thread-self/ns/net",
                                  system.O_RDONLY | system.O_CLOEXEC)
        if _host_netns < 0:
            raise_errno(errno)
    if system.setns(nsfd, system.CLONE_NEWNET) < 0:
        raise_errno(errno)
    fd = system.socket(family, type_ | system.SOCK_CLOEXEC | system.SOCK_NONBLOCK, proto)
    if fd < 0:
        err = errno
    if system.setns(_host_netns, system.CLONE_NEWNET) < 0:
        # Staying in a pod's namespace would send supd's own traffic there: stop instead.
        abort()
    if fd < 0:
        raise_errno(err)
    return fd
