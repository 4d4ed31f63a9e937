"""hostPort forwarding in the event loop: TCP and UDP through a real host port to a server
on loopback (no namespaces needed: the target factory is the only thing that differs)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest
import uvloop

from supervisor.errors import Conflict
from supervisor.hostports import HostPorts, PortMapping

LOOP = "127.0.0.1"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((LOOP, 0))
        port: int = s.getsockname()[1]
        return port


def plain(kind: int) -> socket.socket:
    return socket.socket(socket.AF_INET, kind)


def run(coro: Any) -> Any:
    return uvloop.run(asyncio.wait_for(coro, 10))


async def echo_tcp() -> tuple[asyncio.AbstractServer, int]:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        data = await r.read()  # to EOF: proves the half-close reaches the pod
        w.write(b"echo:" + data)
        await w.drain()
        w.close()

    server = await asyncio.start_server(handle, LOOP, 0)
    return server, server.sockets[0].getsockname()[1]


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(b"echo:" + data, addr)


def mapping(host: int, container: int, proto: str = "TCP") -> PortMapping:
    return PortMapping(host, container, proto, LOOP, "spec.containers[0].ports[0].hostPort")


def test_tcp_is_forwarded_with_half_close() -> None:
    async def main() -> None:
        server, port = await echo_tcp()
        ports = HostPorts()
        host = free_port()
        ports.reserve("default/web", [mapping(host, port)])
        await ports.start("default/web")
        ports.set_target("default/web", (plain, LOOP))
        for _ in range(3):
            r, w = await asyncio.open_connection(LOOP, host)
            w.write(b"x" * 100_000)
            w.write_eof()
            assert await r.read() == b"echo:" + b"x" * 100_000
            w.close()
        ports.release("default/web")
        server.close()
        # Released: the port can be bound again.
        with socket.socket() as s:
            s.bind((LOOP, host))

    run(main())


def test_no_target_refuses_the_connection() -> None:
    async def main() -> None:
        ports = HostPorts()
        host = free_port()
        ports.reserve("default/web", [mapping(host, 1)])
        await ports.start("default/web")
        r, w = await asyncio.open_connection(LOOP, host)
        assert await r.read() == b""
        w.close()
        ports.release("default/web")

    run(main())


def test_taken_port_is_a_clear_conflict() -> None:
    ports = HostPorts()
    host = free_port()
    ports.reserve("default/a", [mapping(host, 80)])
    with pytest.raises(
        Conflict,
        match=rf"hostPort {host}/TCP is already allocated to pod default/a",
    ):
        ports.reserve("default/b", [mapping(host, 81)])
    # The same number over UDP is another port.
    ports.reserve("default/c", [mapping(host, 80, "UDP")])
    ports.release("default/a")
    ports.release("default/c")
    with socket.socket() as other:
        other.bind((LOOP, host))
        other.listen()
        with pytest.raises(
            Conflict,
            match=r"not available on this host: Address already in use",
        ):
            ports.reserve("default/b", [mapping(free_port(), 1), mapping(host, 81)])
    assert ports.pods == {} and ports.owner == {}  # all or nothing


def test_udp_is_forwarded_per_client() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        echo, _ = await loop.create_datagram_endpoint(_Echo, local_addr=(LOOP, 0))
        port = echo.get_extra_info("sockname")[1]
        ports = HostPorts()
        host = free_port(socket.SOCK_DGRAM)
        ports.reserve("default/dns", [mapping(host, port, "UDP")])
        await ports.start("default/dns")
        ports.set_target("default/dns", (plain, LOOP))

        async def ask(payload: bytes) -> bytes:
            got: asyncio.Future[bytes] = loop.create_future()

            class Client(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: Any) -> None:
                    if not got.done():
                        got.set_result(data)

            factory: Callable[[], asyncio.DatagramProtocol] = Client
            t, _ = await loop.create_datagram_endpoint(factory, remote_addr=(LOOP, host))
            t.sendto(payload)
            try:
                return await got
            finally:
                t.close()

        assert await asyncio.gather(ask(b"a"), ask(b"b")) == [b"echo:a", b"echo:b"]
        ports.release("default/dns")
        echo.close()

    run(main())


def test_a_pod_that_speaks_first_and_hangs_up_is_relayed_whole() -> None:
    """The pod's greeting and its EOF may both arrive before the proxy has finished
    connecting: they still reach the client, in order."""

    async def main() -> None:
        async def greet(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(b"hello")
            w.close()

        server = await asyncio.start_server(greet, LOOP, 0)
        ports = HostPorts()
        host = free_port()
        ports.reserve("default/greet", [mapping(host, server.sockets[0].getsockname()[1])])
        await ports.start("default/greet")
        ports.set_target("default/greet", (plain, LOOP))
        for _ in range(50):
            r, w = await asyncio.open_connection(LOOP, host)
            assert await r.read() == b"hello"
            w.close()
        ports.release("default/greet")
        server.close()

    run(main())
