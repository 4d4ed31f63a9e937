"""inotify(7): file-change events for following log files without polling.

The stdlib has no binding and these are three plain syscalls, so ctypes calls libc's
wrappers directly; events are parsed with struct. Only the log follower uses it.
"""

from __future__ import annotations

import ctypes
import os
import struct

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


class Inotify:
    def __init__(self) -> None:
        self.fd = _check(_libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC), "inotify_init1")

    def add_watch(self, path: str | os.PathLike[str], mask: int) -> int:
        return _check(
            _libc.inotify_add_watch(self.fd, os.fsencode(path), mask), f"inotify watch {path}"
        )

    def read(self) -> list[tuple[int, int, bytes]]:
        """Drain pending events as (wd, mask, name)."""
        events: list[tuple[int, int, bytes]] = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return events
            pos = 0
            while pos < len(buf):
                wd, mask, _cookie, size = _EVENT.unpack_from(buf, pos)
                pos += _EVENT.size
                events.append((wd, mask, buf[pos : pos + size].rstrip(b"\0")))
                pos += size

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
