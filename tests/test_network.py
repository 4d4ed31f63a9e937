"""The pod network: IPAM (plain files), and bridge + veth + teardown on
real namespaces. Every root test makes its own bridge (a random name) with a random
10.244.X.0/24 and deletes it; traffic goes only between namespaces the test creates."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
from conftest import require_root

from supervisor import _native
from supervisor.errors import InvalidArgument, PermissionDenied, Unavailable
from supervisor.network import (
    Ipam,
    Network,
    NetworkConfig,
    NetworkError,
    veth_name,
)

# -- IPAM -----------------------------------------------------------------------------------


def test_ipam_leases_are_unique_and_skip_network_gateway_broadcast(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path, ipaddress.IPv4Network("10.9.0.0/29"))
    got = [ipam.allocate(f"pod{i}") for i in range(5)]
    assert got == ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]
    with pytest.raises(Unavailable, match=r"no free address in 10\.9\.0\.0/29"):
        ipam.allocate("pod5")
    assert ipam.allocate("pod3") == "10.9.0.5"  # an owner's lease is its address


def test_ipam_round_robin_does_not_reuse_a_released_address_at_once(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path, ipaddress.IPv4Network("10.9.0.0/24"))
    a = ipam.allocate("a")
    assert ipam.release("a") == a
    b = ipam.allocate("b")
    assert b != a
    assert ipam.release("nobody") is None


def test_ipam_is_persisted_and_never_hands_out_a_leased_address(tmp_path: Path) -> None:
    net = ipaddress.IPv4Network("10.9.0.0/24")
    first = Ipam(tmp_path, net)
    leased = {first.allocate(f"p{i}") for i in range(10)}
    # A second supd (after a crash) sees the leases, and the last one handed out.
    second = Ipam(tmp_path, net)
    assert second.leases() == first.leases()
    new = second.allocate("new")
    assert new not in leased
    assert int(ipaddress.IPv4Address(new)) == max(int(ipaddress.IPv4Address(a)) for a in leased) + 1
    # A lease file made by someone else is respected too (O_EXCL).
    third = Ipam(tmp_path, net)
    (tmp_path / str(ipaddress.IPv4Address(new) + 1)).write_text("other")
    assert third.allocate("x") == str(ipaddress.IPv4Address(new) + 2)


def test_ipam_prune_releases_leases_of_unknown_owners(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path, ipaddress.IPv4Network("10.9.0.0/24"))
    keep, gone = ipam.allocate("keep"), ipam.allocate("gone")
    assert ipam.prune(["keep"]) == [gone]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([keep, "last_reserved_ip"])


def test_config_is_checked() -> None:
    with pytest.raises(InvalidArgument, match="--network"):
        NetworkConfig(mode="overlay").check()
    with pytest.raises(InvalidArgument, match="--pod-cidr"):
        NetworkConfig(mode="bridge", cidr="10.0.0.0/31").check()
    with pytest.raises(InvalidArgument, match="--pod-cidr"):
        NetworkConfig(mode="bridge", cidr="nonsense").check()
    with pytest.raises(InvalidArgument, match="--bridge"):
        NetworkConfig(mode="bridge", bridge="x" * 16).check()


def test_veth_names_fit_ifnamsiz_and_are_stable() -> None:
    assert veth_name("abc") == veth_name("abc") != veth_name("abd")
    assert len(veth_name("a" * 128)) <= 15


# -- real namespaces -----------------------------------------------------------------------


def run_loop(coro: Any) -> Any:
    return uvloop.run(coro)


@contextlib.contextmanager
def netns_process() -> Iterator[tuple[int, int]]:
    """A process alone in a new network namespace: (pid, pidfd)."""
    pid, pidfd = _native.spawn(["sleep", "1000"], clone_flags=_native.CLONE_NEWNET)
    try:
        yield pid, pidfd
    finally:
        with contextlib.suppress(ProcessLookupError):
            _native.pidfd_send_signal(pidfd, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(pidfd)


def opener(pidfd: int, kind: int = socket.SOCK_DGRAM, proto: int = 0) -> Any:
    def open_netlink() -> socket.socket:
        return socket.socket(fileno=_native.socket_in_netns(pidfd, socket.AF_NETLINK, kind, proto))

    return open_netlink


def ip(*args: str, pid: int | None = None) -> str:
    cmd = ["ip", *args] if pid is None else ["nsenter", "-t", str(pid), "-n", "ip", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout


@pytest.fixture
def net_config(tmp_path: Path) -> Iterator[NetworkConfig]:
    require_root()
    bridge = "svt" + secrets.token_hex(4)
    cidr = f"10.244.{secrets.randbelow(250) + 1}.0/24"
    cfg = NetworkConfig(mode="bridge", bridge=bridge, cidr=cidr, state_dir=tmp_path / "net")
    try:
        yield cfg
    finally:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        assert bridge not in ip("-br", "link")


def connect_in(pidfd: int, addr: str, port: int) -> socket.socket:
    s = socket.socket(fileno=_native.socket_in_netns(pidfd, socket.AF_INET, socket.SOCK_STREAM))
    s.setblocking(True)
    s.settimeout(5)
    s.connect((addr, port))
    return s


def test_two_pods_reach_each_other_over_the_bridge(net_config: NetworkConfig) -> None:
    async def main() -> None:
        net = Network(net_config)
        await net.start()
        assert net.unavailable is None
        with netns_process() as (pa, fa), netns_process() as (pb, fb):
            a = await net.attach("uid-a", pa, opener(fa))
            b = await net.attach("uid-b", pb, opener(fb))
            assert a is not None and b is not None
            assert ipaddress.IPv4Address(a.ip) in net_config.network
            assert a.ip != b.ip
            assert f"{a.ip}/" in ip("-br", "addr", "show", "eth0", pid=pa)
            assert f"default via {net_config.gateway} dev eth0" in ip("route", pid=pa)
            assert a.host_ifname in ip("-br", "link", "show", "master", net_config.bridge)
            # A server in pod A, on its pod address; a client in pod B.
            srv = socket.socket(
                fileno=_native.socket_in_netns(fa, socket.AF_INET, socket.SOCK_STREAM)
            )
            srv.setblocking(True)
            srv.bind((a.ip, 7000))
            srv.listen()
            client = await asyncio.to_thread(connect_in, fb, a.ip, 7000)
            conn, peer = srv.accept()
            assert peer[0] == b.ip
            client.sendall(b"ping")
            conn.settimeout(5)
            assert conn.recv(4) == b"ping"
            for s in (client, conn, srv):
                s.close()
            await net.detach("uid-a")
            await net.detach("uid-b")
            assert veth_name("uid-a") not in ip("-br", "link")
            assert "eth0" not in ip("-br", "link", pid=pa)
            assert net.ipam is not None and net.ipam.leases() == {}
            assert sorted(os.listdir(net_config.state_dir / net_config.bridge)) == [
                "last_reserved_ip"
            ]
        net.close()

    run_loop(main())


def test_a_failed_attach_leaves_nothing_behind(net_config: NetworkConfig) -> None:
    async def main() -> None:
        net = Network(net_config)
        await net.start()
        with netns_process() as (pid, _pidfd):
            pass  # gone: its pid names no process any more
        with pytest.raises(NetworkError, match=r"set up pod network \(veth sv"):
            await net.attach("uid-x", pid, opener(-1))
        assert veth_name("uid-x") not in ip("-br", "link")
        assert net.ipam is not None and net.ipam.leases() == {}
        # The pod end cannot be configured (no socket in its namespace): the pair goes too.
        with netns_process() as (pid, _pidfd):

            def broken() -> socket.socket:
                raise OSError(9, "Bad file descriptor")

            with pytest.raises(NetworkError, match="Bad file descriptor"):
                await net.attach("uid-y", pid, broken)
            assert veth_name("uid-y") not in ip("-br", "link")
            assert "eth0" not in ip("-br", "link", pid=pid)
        assert net.ipam.leases() == {}
        net.close()

    run_loop(main())


def test_restart_prunes_what_a_crashed_supd_left(net_config: NetworkConfig) -> None:
    async def main() -> None:
        first = Network(net_config)
        await first.start()
        with netns_process() as (pa, fa), netns_process() as (pb, fb):
            a = await first.attach("live", pa, opener(fa))
            b = await first.attach("dead", pb, opener(fb))
            assert a is not None and b is not None
            first.close()  # supd "crashes": nothing is torn down
            second = Network(net_config)
            await second.start()
            removed = await second.prune(["live"])
            assert sorted(removed) == sorted([veth_name("dead"), b.ip])
            links = ip("-br", "link", "show", "master", net_config.bridge)
            assert veth_name("live") in links and veth_name("dead") not in links
            # The live pod keeps its address when its sandbox is set up again.
            await second.detach("live", release=False)
            again = await second.attach("live", pa, opener(fa))
            assert again is not None and again.ip == a.ip
            await second.detach("live")
            second.close()

    run_loop(main())


def test_none_mode_and_host_network_get_no_interface(tmp_path: Path) -> None:
    async def main() -> None:
        net = Network(NetworkConfig(mode="none", state_dir=tmp_path))
        await net.start()
        assert await net.attach("u", 1, opener(-1)) is None
        bridge = Network(NetworkConfig(mode="bridge", bridge="svtunused0", state_dir=tmp_path))
        bridge.unavailable = "test"
        assert await bridge.attach("u", 1, opener(-1), host_network=True) is None
        with pytest.raises(PermissionDenied, match=r"spec.hostNetwork: true"):
            await bridge.attach("u", 1, opener(-1))

    run_loop(main())


def test_per_pod_setup_cost(net_config: NetworkConfig) -> None:
    """Not a benchmark: a bound that catches a slow path (moving a veth into a namespace
    afterwards, or exec'ing ip) in the per-pod cost."""

    async def main() -> float:
        net = Network(net_config)
        await net.start()
        times = []
        for i in range(5):
            with netns_process() as (pid, pidfd):
                t = time.perf_counter()
                await net.attach(f"u{i}", pid, opener(pidfd))
                times.append(time.perf_counter() - t)
                await net.detach(f"u{i}")
        net.close()
        return min(times)

    best = run_loop(main())
    assert best < 0.05, f"per-pod network setup took {best * 1e3:.1f} ms"
