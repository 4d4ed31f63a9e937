"""`ports[].hostPort`: a host port forwarded to a pod, TCP and UDP, in supd's event loop.

The port is bound when the pod is applied, so a port that is taken is an error at apply
time rather than a pod that never gets traffic, and it stays bound for the pod's whole
life (a sandbox being re-created meanwhile refuses TCP connections and drops datagrams)
until the pod is deleted. The forwarding is a userland proxy, like docker-proxy: it needs
no iptables or nftables and works in every network mode, because the connection to the
pod is made by a socket factory the runtime supplies (a plain socket to the pod's IP on
the bridge, or a socket created inside the pod's network namespace for `127.0.0.1` when
the pod has loopback only). The price: the pod sees the proxy's address as the peer, not
the client's.

Imports only errors from the package; no native code.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from .errors import Conflict, PermissionDenied

log = logging.getLogger("supervisor.hostports")

# docker-proxy's UDP "connection" timeout; a client silent this long loses its session.
UDP_IDLE_SECONDS = 90.0
UDP_MAX_SESSIONS = 1024  # per host port; the least recently used goes first
UDP_MAX_DATAGRAM = 65535
TCP_BACKLOG = 128


@dataclass(frozen=True)
class PortMapping:
    """One forwarded port: HOST_IP:HOST_PORT/PROTOCOL -> the pod's CONTAINER_PORT."""

    host_port: int
    container_port: int
    protocol: str = "TCP"  # TCP | UDP
    host_ip: str = "0.0.0.0"
    field: str = ""  # where the manifest asked for it, for messages

    def __str__(self) -> str:
        return f"{self.host_ip}:{self.host_port}/{self.protocol}"


# What a forwarded connection or datagram is sent to: a factory for a socket of the given
# type (SOCK_STREAM or SOCK_DGRAM) that can reach the pod, and the pod's address there.
Target = tuple[Callable[[int], socket.socket], str]


class _Relay(asyncio.Protocol):
    """One direction-pair of a proxied TCP connection: what one side receives is written
    to the other; a full write buffer pauses reading on the other side (backpressure)."""

    def __init__(self, on_made: Callable[[_Relay], None] | None = None) -> None:
        self.on_made = on_made
        self.transport: asyncio.Transport | None = None
        self.peer: _Relay | None = None
        self.pending: list[bytes] = []
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio's.
        self.transport = cast(asyncio.Transport, transport)
        if self.on_made is not None:
            self.on_made(self)

    def link(self, peer: _Relay) -> None:
        self.peer = peer
        peer.peer = self

    def data_received(self, data: bytes) -> None:
        if self.peer is None or self.peer.transport is None:
            self.pending.append(data)  # the pod's side is still connecting
            return
        self.peer.transport.write(data)

    def eof_received(self) -> bool:
        if self.peer is None or self.peer.transport is None:
            self.eof = True
            return True
        if self.peer.transport.can_write_eof():
            self.peer.transport.write_eof()
            return True  # keep the other direction open (half-close)
        return False

    def flush_to_peer(self) -> None:
        assert self.peer is not None and self.peer.transport is not None
        for data in self.pending:
            self.peer.transport.write(data)
        self.pending.clear()
        if self.eof and self.peer.transport.can_write_eof():
            self.peer.transport.write_eof()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


class _TcpForward:
    def __init__(self, owner: _Forwarder, sock: socket.socket) -> None:
        self.owner = owner
        self.sock = sock
        self.server: asyncio.AbstractServer | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self.server is not None:
            return
        self.server = await asyncio.get_running_loop().create_server(
            self._accepted, sock=self.sock, backlog=TCP_BACKLOG
        )

    def _accepted(self) -> _Relay:
        return _Relay(on_made=self._connect_soon)

    def _connect_soon(self, client: _Relay) -> None:
        # Nothing is read from the client until the pod's side is connected.
        assert client.transport is not None
        client.transport.pause_reading()
        task = asyncio.get_running_loop().create_task(self._connect(client))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _connect(self, client: _Relay) -> None:
        loop = asyncio.get_running_loop()
        target = self.owner.target
        try:
            if target is None:
                raise ConnectionRefusedError(errno.ECONNREFUSED, "the pod has no sandbox")
            make, addr = target
            sock = make(socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, (addr, self.owner.mapping.container_port))
            except BaseException:
                sock.close()
                raise
            # Linked before its transport exists: what the pod sends at once (and its EOF)
            # goes to the client in order, whenever it arrives.
            pod = _Relay()
            client.link(pod)
            await loop.connect_accepted_socket(lambda: pod, sock=sock)
        except (OSError, asyncio.CancelledError) as e:
            if client.transport is not None:
                client.transport.abort()
            if isinstance(e, asyncio.CancelledError):
                raise
            log.debug("hostPort %s: connect to the pod: %s", self.owner.mapping, e)
            return
        if client.transport is None or client.transport.is_closing():
            if pod.transport is not None:
                pod.transport.close()
            return
        client.flush_to_peer()
        client.transport.resume_reading()

    def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.server is not None:
            self.server.close()
        else:
            self.sock.close()


class _UdpSession(asyncio.DatagramProtocol):
    """The pod's replies to one client, sent back from the host port."""

    def __init__(self, forward: _UdpForward, client: tuple[str, int]) -> None:
        self.forward = forward
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.last = asyncio.get_running_loop().time()
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self._arm(UDP_IDLE_SECONDS)

    def _arm(self, delay: float) -> None:
        self.timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        idle = asyncio.get_running_loop().time() - self.last
        if idle < UDP_IDLE_SECONDS:
            self._arm(UDP_IDLE_SECONDS - idle)
        else:
            self.forward.drop(self.client)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.last = asyncio.get_running_loop().time()
        if self.forward.transport is not None:
            self.forward.transport.sendto(data, self.client)

    def error_received(self, exc: Exception) -> None:
        log.debug("hostPort %s: from the pod: %s", self.forward.owner.mapping, exc)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.transport is not None:
            self.transport.close()


class _UdpForward(asyncio.DatagramProtocol):
    def __init__(self, owner: _Forwarder, sock: socket.socket) -> None:
        self.owner = owner
        self.sock = sock
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[tuple[str, int], _UdpSession] = {}
        self.opening: dict[tuple[str, int], list[bytes]] = {}

    async def start(self) -> None:
        if self.transport is None:
            await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, sock=self.sock)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        client = (addr[0], addr[1])
        session = self.sessions.get(client)
        if session is not None and session.transport is not None:
            session.last = asyncio.get_running_loop().time()
            session.transport.sendto(data)
            return
        if client in self.opening:
            self.opening[client].append(data)
            return
        if self.owner.target is None:
            return  # no sandbox: dropped, as a datagram to a closed port would be
        if len(self.sessions) + len(self.opening) >= UDP_MAX_SESSIONS:
            oldest = min(self.sessions.values(), key=lambda s: s.last, default=None)
            if oldest is None:
                return
            self.drop(oldest.client)
        self.opening[client] = [data]
        asyncio.get_running_loop().create_task(self._open(client))

    async def _open(self, client: tuple[str, int]) -> None:
        target = self.owner.target
        session: _UdpSession | None = None
        try:
            if target is None:
                raise OSError(errno.ENETUNREACH, "the pod has no sandbox")
            make, addr = target
            sock = make(socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.connect((addr, self.owner.mapping.container_port))
                _transport, session = await asyncio.get_running_loop().create_datagram_endpoint(
                    lambda: _UdpSession(self, client), sock=sock
                )
            except BaseException:
                sock.close()
                raise
        except OSError as e:
            log.debug("hostPort %s: open a session to the pod: %s", self.owner.mapping, e)
        queued = self.opening.pop(client, [])
        if session is None:
            return
        if self.transport is None or self.transport.is_closing():
            session.close()
            return
        self.sessions[client] = session
        assert session.transport is not None
        for data in queued:
            session.transport.sendto(data)

    def drop(self, client: tuple[str, int]) -> None:
        session = self.sessions.pop(client, None)
        if session is not None:
            session.close()

    def error_received(self, exc: Exception) -> None:
        log.debug("hostPort %s: %s", self.owner.mapping, exc)

    def close(self) -> None:
        for client in list(self.sessions):
            self.drop(client)
        if self.transport is not None:
            self.transport.close()
        else:
            self.sock.close()


class _Forwarder:
    def __init__(self, mapping: PortMapping, sock: socket.socket) -> None:
        self.mapping = mapping
        self.target: Target | None = None
        self.impl: _TcpForward | _UdpForward = (
            _TcpForward(self, sock) if mapping.protocol == "TCP" else _UdpForward(self, sock)
        )


def bind_port(mapping: PortMapping) -> socket.socket:
    """The listening (TCP) or receiving (UDP) socket of a host port, non-blocking."""
    kind = socket.SOCK_STREAM if mapping.protocol == "TCP" else socket.SOCK_DGRAM
    family = socket.AF_INET6 if ":" in mapping.host_ip else socket.AF_INET
    sock = socket.socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        if kind == socket.SOCK_STREAM:
            # TIME_WAIT of earlier connections must not keep a re-created pod off its port;
            # SO_REUSEADDR does not let a second listener bind it (SO_REUSEPORT would).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((mapping.host_ip, mapping.host_port))
        if kind == socket.SOCK_STREAM:
            sock.listen(TCP_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


class HostPorts:
    """Every pod's host ports: bound at `reserve` (apply), forwarding once `set_target`
    says where the pod is, closed at `release` (delete)."""

    def __init__(self) -> None:
        self.pods: dict[str, list[_Forwarder]] = {}
        self.owner: dict[tuple[str, int, str], str] = {}  # (ip, port, proto) -> pod key

    def reserve(self, key: str, mappings: list[PortMapping]) -> None:
        """Bind every host port of pod `key`, or none: Conflict names the port, the field
        that asked for it and who has it."""
        if key in self.pods or not mappings:
            return
        bound: list[_Forwarder] = []
        try:
            for m in mappings:
                other = self._holder(m)
                if other is not None and other != key:
                    raise Conflict(
                        f"{m.field}: hostPort {m.host_port}/{m.protocol} is already allocated "
                        f"to pod {other} on this host",
                        {"field": m.field, "hostPort": m.host_port, "pod": other},
                    )
                try:
                    sock = bind_port(m)
                except OSError as e:
                    details = {"field": m.field, "hostPort": m.host_port}
                    if e.errno in (errno.EACCES, errno.EPERM):
                        raise PermissionDenied(
                            f"{m.field}: hostPort {m}: {os.strerror(e.errno)} (ports below "
                            "1024 need CAP_NET_BIND_SERVICE; remove hostPort or use a higher "
                            "one)",
                            details,
                        ) from None
                    why = os.strerror(e.errno) if e.errno else str(e)
                    raise Conflict(
                        f"{m.field}: hostPort {m} is not available on this host: {why}", details
                    ) from None
                bound.append(_Forwarder(m, sock))
        except BaseException:
            for f in bound:
                f.impl.close()
            raise
        self.pods[key] = bound
        for f in bound:
            self.owner[(f.mapping.host_ip, f.mapping.host_port, f.mapping.protocol)] = key

    def _holder(self, m: PortMapping) -> str | None:
        for (ip, port, proto), key in self.owner.items():
            wildcard = "0.0.0.0" in (ip, m.host_ip) or "::" in (ip, m.host_ip)
            if port == m.host_port and proto == m.protocol and (ip == m.host_ip or wildcard):
                return key
        return None

    async def start(self, key: str) -> None:
        """Start serving a reserved pod's ports (connections are refused until a target)."""
        for f in self.pods.get(key, []):
            await f.impl.start()

    def set_target(self, key: str, target: Target | None) -> None:
        """Where pod `key` is now (None while it has no sandbox)."""
        for f in self.pods.get(key, []):
            f.target = target

    def release(self, key: str) -> None:
        for f in self.pods.pop(key, []):
            self.owner.pop((f.mapping.host_ip, f.mapping.host_port, f.mapping.protocol), None)
            f.impl.close()

    def close(self) -> None:
        for key in list(self.pods):
            self.release(key)
