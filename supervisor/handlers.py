"""Running a probe's or a hook's handler: exec, httpGet, tcpSocket, grpc, sleep.

Network handlers connect from supd itself, through a socket created inside the pod's
network namespace (`_native.socket_in_netns`), so they work for a pod that has nothing but
loopback, and never leave the pod. HTTP/1.1 framing is h11's and gRPC's is grpclib's: no
hand-written parser reads what a container sends. Results follow kubelet's prober
(pkg/probe): success, failure (the handler ran and said no), or error (it could not run;
not counted as a failure).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import h11

from . import __version__
from .errors import SupervisorError
from .spec import ContainerSpec, Handler

BODY_LIMIT = 10 * 1024  # kubelet reads at most 10 KiB of a probe's body or output
USER_AGENT = f"kube-probe/{__version__} (supervisor)"


class Result(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


@dataclass(frozen=True)
class Outcome:
    result: Result
    message: str = ""  # the handler's output or why it failed, for events


# An exec runner: (argv, timeout) -> (exit code, timed out, output). Provided by the
# runtime, which runs the command inside the container's namespaces through its infra.
ExecRunner = Callable[[list[str], float | None], Awaitable[tuple[int, bool, bytes]]]
# Makes a connected-later socket inside the pod's network namespace.
SocketFactory = Callable[[int], socket.socket]


@dataclass(frozen=True)
class Target:
    """Where a handler runs: the container it belongs to, and how to reach its pod."""

    container: ContainerSpec
    make_socket: SocketFactory
    run_exec: ExecRunner


async def run(handler: Handler, target: Target, timeout: float | None) -> Outcome:
    """Run `handler` once. `timeout` bounds it (None: no bound, for hooks)."""
    try:
        if handler.kind == "exec":
            return await _exec(handler, target, timeout)
        if handler.kind == "sleep":
            await asyncio.sleep(handler.seconds)
            return Outcome(Result.SUCCESS)
        port = target.container.port_number(handler.port)
        if port is None:
            return Outcome(Result.ERROR, f"port {handler.port!r} not found in the container")
        host = handler.host or "127.0.0.1"
        async with asyncio.timeout(timeout):
            if handler.kind == "tcpSocket":
                return await _tcp(host, port, target)
            if handler.kind == "grpc":
                return await _grpc(host, port, handler.service, target)
            return await _http(handler, host, port, target)
    except TimeoutError:
        return Outcome(Result.FAILURE, _timeout_message(handler, timeout))


def _timeout_message(handler: Handler, timeout: float | None) -> str:
    if handler.kind == "exec":
        return f"command {_shell(handler.command)} timed out"
    if handler.kind == "httpGet":
        return f'Get "{_url(handler, handler.host or "127.0.0.1")}": context deadline exceeded'
    return f"timeout: failed to connect within {timeout}s"


async def _exec(handler: Handler, target: Target, timeout: float | None) -> Outcome:
    try:
        code, timed_out, output = await target.run_exec(list(handler.command), timeout)
    except SupervisorError as e:  # it could not run (not started, container gone)
        return Outcome(Result.ERROR, e.message)
    text = output[:BODY_LIMIT].decode(errors="replace")
    if timed_out:
        return Outcome(Result.FAILURE, f"command {_shell(handler.command)} timed out")
    if code == 0:
        return Outcome(Result.SUCCESS, text)
    return Outcome(Result.FAILURE, text or f"command exited with status {code}")


async def _connect(host: str, port: int, target: Target) -> socket.socket:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, _type, _proto, _name, address = infos[0]
    sock = target.make_socket(family)
    try:
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


async def _tcp(host: str, port: int, target: Target) -> Outcome:
    try:
        sock = await _connect(host, port, target)
    except OSError as e:
        return Outcome(Result.FAILURE, f"dial tcp {host}:{port}: connect: {_reason(e)}")
    sock.close()
    return Outcome(Result.SUCCESS)


async def _http(handler: Handler, host: str, port: int, target: Target) -> Outcome:
    url = _url(handler, host, port)
    try:
        sock = await _connect(host, port, target)
    except OSError as e:
        return Outcome(
            Result.FAILURE, f'Get "{url}": dial tcp {host}:{port}: connect: {_reason(e)}'
        )
    tls = None
    if handler.scheme == "HTTPS":
        # kubelet's HTTPS probes skip certificate verification (InsecureSkipVerify).
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    try:
        reader, writer = await asyncio.open_connection(
            sock=sock, ssl=tls, server_hostname=host if tls else None
        )
    except (OSError, ssl.SSLError) as e:
        sock.close()
        return Outcome(Result.FAILURE, f'Get "{url}": {e}')
    try:
        status, body = await _exchange(reader, writer, handler, host, port)
    except (OSError, h11.ProtocolError) as e:
        return Outcome(Result.FAILURE, f'Get "{url}": {e}')
    finally:
        writer.close()
    text = body.decode(errors="replace")
    if 200 <= status < 400:
        return Outcome(Result.SUCCESS, text)
    return Outcome(Result.FAILURE, f"HTTP probe failed with statuscode: {status}")


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: Handler,
    host: str,
    port: int,
) -> tuple[int, bytes]:
    conn = h11.Connection(our_role=h11.CLIENT)
    headers = {"host": f"{host}:{port}", "user-agent": USER_AGENT, "accept": "*/*"}
    for name, value in handler.headers:
        headers[name.lower()] = value  # the pod's headers replace the defaults
    request = h11.Request(method="GET", target=_target(handler.path), headers=list(headers.items()))
    writer.write(conn.send(request) + conn.send(h11.EndOfMessage()))
    await writer.drain()
    status = 0
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data[: BODY_LIMIT - len(body)]
            if len(body) >= BODY_LIMIT:
                break
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            break
    return status, bytes(body)


async def _grpc(host: str, port: int, service: str, target: Target) -> Outcome:
    """grpc.health.v1.Health/Check over a connection made in the pod's namespace."""
    from grpclib.client import Channel
    from grpclib.health.v1.health_grpc import HealthStub
    from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

    try:
        sock = await _connect(host, port, target)
    except OSError as e:
        return Outcome(
            Result.FAILURE,
            f'timeout: failed to connect service "{host}:{port}": {_reason(e)}',
        )

    class PodChannel(Channel):
        async def _create_connection(self) -> Any:
            _transport, protocol = await self._loop.create_connection(
                self._protocol_factory, sock=sock
            )
            return protocol

    channel = PodChannel(host, port)
    try:
        reply = await HealthStub(channel).Check(HealthCheckRequest(service=service))
    except Exception as e:  # grpclib raises GRPCError, StreamTerminatedError, OSError
        return Outcome(Result.FAILURE, f"rpc error: {e}")
    finally:
        channel.close()
    state = HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status == HealthCheckResponse.SERVING:
        return Outcome(Result.SUCCESS, state)
    return Outcome(Result.FAILURE, f'service unhealthy (responded with "{state}")')


def _target(path: str) -> str:
    path = path if path.startswith("/") else "/" + path
    return quote(path, safe="/?&=%:@!$'()*+,;~-._")


def _url(handler: Handler, host: str, port: int | str | None = None) -> str:
    port = handler.port if port is None else port
    return f"{handler.scheme.lower()}://{host}:{port}{_target(handler.path)}"


def _reason(e: OSError) -> str:
    """Go's wording for a dial error: "connection refused", "no route to host"."""
    return (os.strerror(e.errno) if e.errno else str(e)).lower()


def _shell(argv: tuple[str, ...]) -> str:
    return "[" + " ".join(argv) + "]"
