"""rtnetlink through pyroute2 on supd's event loop, for network.py.

pyroute2's AsyncIPRoute reads its socket through an asyncio datagram endpoint, which uvloop
refuses for AF_NETLINK sockets (it knows AF_INET, AF_INET6 and AF_UNIX): RouteSocket serves
the socket with loop.add_reader instead, and turns pyroute2's NetlinkError into the OSError
subclass of its errno (FileExistsError, FileNotFoundError, PermissionError...), so that its
callers handle one kind of error. Loaded only when bridge networking is used.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from typing import Any

from pyroute2 import AsyncIPRoute, IPRoute
from pyroute2.netlink.core import CoreDatagramProtocol
from pyroute2.netlink.exceptions import NetlinkError

NETLINK_ROUTE = 0
_RECV_SIZE = 256 * 1024  # what asyncio's datagram transports read at once


def _oserror(e: NetlinkError) -> OSError:
    code = int(e.code) if e.code and e.code > 0 else errno.EIO
    return OSError(code, os.strerror(code))


class _ReaderTransport(asyncio.BaseTransport):
    """The receive half of a datagram transport, on loop.add_reader. pyroute2 sends on
    the socket itself and only reads through its protocol; uvloop's own datagram endpoint
    refuses AF_NETLINK sockets (it knows AF_INET, AF_INET6 and AF_UNIX)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol: Any) -> None:
        super().__init__()
        self._loop = loop
        self._sock = sock
        self._protocol = protocol
        self._fd = sock.fileno()
        self._closing = False
        loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        while not self._closing:
            try:
                data, addr = self._sock.recvfrom(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._protocol.error_received(e)
                return
            self._protocol.datagram_received(data, addr)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._loop.remove_reader(self._fd)

    def abort(self) -> None:
        self.close()


class RouteSocket(AsyncIPRoute):
    """AsyncIPRoute over a netlink socket that the caller created (in any namespace) and
    that this object owns from then on, served by the running loop (uvloop included)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        super().__init__(use_socket=sock, groups=0)
        self._own_socket = sock

    async def setup_endpoint(self) -> None:
        if getattr(self.local, "transport", None) is not None:
            return
        protocol = CoreDatagramProtocol(
            self.connection_lost, self.enqueue, self._error_event, self.status
        )
        transport = _ReaderTransport(self.event_loop, self.socket, protocol)
        protocol.connection_made(transport)
        self.local.transport, self.local.protocol = transport, protocol

    def close(self, code: int = errno.ECONNRESET) -> None:
        super().close(code)
        self._own_socket.close()

    async def link(self, command: str, **kwarg: Any) -> Any:
        try:
            return await super().link(command, **kwarg)
        except NetlinkError as e:
            raise _oserror(e) from None

    async def addr(self, command: str, **kwarg: Any) -> Any:
        try:
            return await super().addr(command, **kwarg)
        except NetlinkError as e:
            raise _oserror(e) from None

    async def route(self, command: str, **kwarg: Any) -> Any:
        try:
            return await super().route(command, **kwarg)
        except NetlinkError as e:
            raise _oserror(e) from None


def host_route_socket() -> RouteSocket:
    sock = socket.socket(
        socket.AF_NETLINK,
        socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
        NETLINK_ROUTE,
    )
    return RouteSocket(sock)


async def ifindex(ipr: RouteSocket, name: str) -> int | None:
    """The index of interface `name`, or None when there is none."""
    try:
        msgs = await ipr.link("get", ifname=name)
    except OSError as e:
        if e.errno == errno.ENODEV:
            return None
        raise
    for msg in msgs:
        return int(msg["index"])
    return None


def delete_link_blocking(name: str) -> int:
    """RTM_DELLINK of `name` on a netlink socket of the calling thread; the errno (0: it
    is gone now)."""
    try:
        with IPRoute() as ipr:
            ipr.link("del", ifname=name)
    except NetlinkError as e:
        return int(e.code)
    except OSError as e:
        return e.errno or errno.EIO
    return 0
