"""Pod networking: a bridge on the host, one veth pair per pod, addresses from an IPAM kept
in the state dir, and the teardown that leaves nothing behind.

Modes (a supd option):
  * `bridge`: the host bridge (name and CIDR configurable) holds the gateway, the first
    address of the CIDR; each pod gets a veth pair whose host end is enslaved to the bridge
    and whose other end is created directly inside the pod's network namespace as `eth0`
    (IFLA_NET_NS_PID in the create request: moving an interface into a namespace afterwards
    costs several times more), an address from the IPAM, and a default route via the
    gateway. Pods reach each other by IP through the bridge.
  * `none`: loopback only (infra brings `lo` up in every new network namespace).
A `hostNetwork` pod uses the host's namespace in either mode; the caller says so (the flag
is parsed once, by the manifest, and handed in), and such a pod has no veth and no lease.

All netlink traffic is rtnetlink through pyroute2's AsyncIPRoute on supd's event loop: one
socket in the host namespace for the bridge and the veth pairs, and per pod one short
conversation on a socket created inside the pod's namespace (the caller provides it: the
runtime is the only importer of the native extension). The kernel does the rtnetlink work
inside sendmsg(2) and queues the answer before sendmsg returns, so a request costs the loop
the kernel's work and never a wait: about 5 ms for a pod's whole setup here. Deleting an
interface is the exception (unregister_netdevice waits for an RCU grace period inside
sendmsg, some 20 ms): that one runs on a worker thread with pyroute2's IPRoute.

Crash safety: a veth's host end is named after the pod's uid, and an IPAM lease is a file
named after the address holding the pod's uid, created with O_EXCL. A supd that starts
after a crash deletes the veths on its bridge and the leases whose pod it does not have.

Imports only errors from the package, and netlink.py (pyroute2: 130 ms and 10 MB to load)
only once bridge mode needs it; no native code, no clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import ipaddress
import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgument, PermissionDenied, SupervisorError, Unavailable

if TYPE_CHECKING:
    from .netlink import RouteSocket

log = logging.getLogger("supervisor.network")

MODES = ("bridge", "none")
DEFAULT_BRIDGE = "supd0"
# CRI-O's default pod network; any private range that the host does not route will do.
DEFAULT_CIDR = "10.85.0.0/16"
POD_IFNAME = "eth0"
# Host ends of the veth pairs: "sv" + 12 hex digits of the pod uid's hash (IFNAMSIZ 16).
VETH_PREFIX = "sv"


class NetworkError(SupervisorError):
    """Setting up or tearing down a pod's network failed (the message says which step)."""

    code = "Internal"


@dataclass(frozen=True)
class NetworkConfig:
    mode: str = "none"
    bridge: str = DEFAULT_BRIDGE
    cidr: str = DEFAULT_CIDR
    # Where IPAM leases live: STATE/network.
    state_dir: Path = Path("/var/lib/supervisor/network")

    def check(self) -> None:
        """Reject a configuration supd cannot start with (a typed, readable error)."""
        if self.mode not in MODES:
            raise InvalidArgument(f"--network: {self.mode!r}: must be one of {', '.join(MODES)}")
        if not 0 < len(self.bridge.encode()) < 16 or "/" in self.bridge or " " in self.bridge:
            raise InvalidArgument(f"--bridge: {self.bridge!r}: not a valid interface name")
        net = self.network
        if net.prefixlen > 30:
            raise InvalidArgument(f"--pod-cidr: {self.cidr}: needs at least 4 addresses (/30)")

    @property
    def network(self) -> ipaddress.IPv4Network:
        try:
            return ipaddress.IPv4Network(self.cidr, strict=False)
        except ValueError as e:
            raise InvalidArgument(f"--pod-cidr: {self.cidr!r}: {e}") from None

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.network.network_address + 1


@dataclass(frozen=True)
class PodAddress:
    """What a pod got: its IP (podIP) and, in bridge mode, its veth's host end."""

    ip: str
    host_ifname: str | None = None


def veth_name(uid: str) -> str:
    """The host end of a pod's veth pair: stable for the pod (found again after a crash)."""
    return VETH_PREFIX + hashlib.sha256(uid.encode()).hexdigest()[:12]


# -- IPAM ---------------------------------------------------------------------------------


class Ipam:
    """Addresses of one CIDR, leased to owners (pod uids), persisted as one file per lease.

    After CNI's host-local plugin: a lease is the file DIR/ADDRESS holding its owner,
    created with O_EXCL, so an address is never handed out while a lease for it exists,
    even across a crash; allocation goes round-robin from the last address handed out
    (DIR/last_reserved_ip), so a released address is not reused at once (stale ARP and
    conntrack entries of its previous pod have time to expire). The network address, the
    gateway and the broadcast address are never leased. supd is the only writer of DIR;
    the leases are also kept in memory so that finding an owner's lease reads no file."""

    def __init__(self, directory: Path, network: ipaddress.IPv4Network) -> None:
        self.dir = directory
        self.network = network
        self.gateway = network.network_address + 1
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.by_owner: dict[str, ipaddress.IPv4Address] = {}
        for entry in self.dir.iterdir():
            try:
                addr = ipaddress.IPv4Address(entry.name)
            except ValueError:
                continue  # last_reserved_ip, temporary files
            try:
                owner = entry.read_text().strip()
            except OSError:
                continue
            if addr in network and owner:
                self.by_owner[owner] = addr

    @property
    def _first(self) -> int:
        return int(self.gateway) + 1

    @property
    def _last(self) -> int:
        return int(self.network.broadcast_address) - 1

    def leases(self) -> dict[str, str]:
        """owner -> address of every lease."""
        return {owner: str(addr) for owner, addr in self.by_owner.items()}

    def allocate(self, owner: str) -> str:
        """The owner's address: its existing lease, else a new one. ResourceExhausted-like
        Unavailable when every address is leased."""
        if owner in self.by_owner:
            return str(self.by_owner[owner])
        first, last = self._first, self._last
        size = last - first + 1
        start = self._last_reserved()
        start = start + 1 if first <= start <= last else first
        for i in range(size):
            addr = ipaddress.IPv4Address(first + (start - first + i) % size)
            path = self.dir / str(addr)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                continue
            try:
                os.write(fd, owner.encode())
            finally:
                os.close(fd)
            self._write_last(addr)
            self.by_owner[owner] = addr
            return str(addr)
        raise Unavailable(
            f"no free address in {self.network}: all {size} are leased; use a larger "
            "--pod-cidr or delete pods"
        )

    def release(self, owner: str) -> str | None:
        """Give the owner's lease back (no error when it has none). Returns the address."""
        addr = self.by_owner.pop(owner, None)
        if addr is None:
            return None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.dir / str(addr))
        return str(addr)

    def prune(self, live: Iterable[str]) -> list[str]:
        """Release every lease whose owner is not in `live` (after a crash)."""
        keep = set(live)
        return [a for o in list(self.by_owner) if o not in keep if (a := self.release(o))]

    def _last_reserved(self) -> int:
        try:
            return int(ipaddress.IPv4Address((self.dir / "last_reserved_ip").read_text().strip()))
        except (OSError, ValueError):
            return 0

    def _write_last(self, addr: ipaddress.IPv4Address) -> None:
        tmp = self.dir / ".last_reserved_ip.tmp"
        tmp.write_text(str(addr))
        os.replace(tmp, self.dir / "last_reserved_ip")


def _strerror(e: BaseException) -> str:
    if isinstance(e, OSError) and e.errno is not None:
        return os.strerror(e.errno)
    return str(e)


# -- the pod network ------------------------------------------------------------------------


class Network:
    """supd's pod network. `start()` once (the bridge), then `attach`/`detach` per pod
    sandbox, `prune` after restoring pods, `close()` at exit (the bridge stays: pods
    outlive supd)."""

    def __init__(self, config: NetworkConfig) -> None:
        config.check()
        self.config = config
        self.ipam: Ipam | None = None
        self._host: RouteSocket | None = None
        self._bridge_index: int | None = None
        # Why bridge mode cannot work on this supd (set by start), for each pod's message.
        self.unavailable: str | None = None
        # One conversation at a time per pod: a veth's name is the pod's, and the clean-up
        # of a cancelled attach must be over before the next sandbox creates it again.
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, uid: str) -> asyncio.Lock:
        lock = self._locks.get(uid)
        if lock is None:
            lock = self._locks[uid] = asyncio.Lock()
        return lock

    @property
    def mode(self) -> str:
        return self.config.mode

    async def start(self) -> None:
        """Create the bridge (or adopt an existing one), give it the gateway address and
        bring it up. Without CAP_NET_ADMIN this is not an error for supd: every pod that
        needs the bridge then fails with the reason (see `attach`)."""
        if self.config.mode != "bridge":
            return
        from . import netlink

        self.ipam = Ipam(self.config.state_dir / self.config.bridge, self.config.network)
        try:
            self._host = netlink.host_route_socket()
            await self._ensure_bridge()
        except OSError as e:
            self.unavailable = (
                f"set up bridge {self.config.bridge} ({self.config.gateway}/"
                f"{self.config.network.prefixlen}): {_strerror(e)}"
            )
            if e.errno == errno.EPERM:
                self.unavailable += " (creating interfaces needs CAP_NET_ADMIN)"
            log.warning("pod network unavailable: %s", self.unavailable)

    async def _ensure_bridge(self) -> None:
        from .netlink import ifindex

        assert self._host is not None
        cfg = self.config
        index = await ifindex(self._host, cfg.bridge)
        if index is None:
            with contextlib.suppress(FileExistsError):
                await self._host.link("add", ifname=cfg.bridge, kind="bridge")
            index = await ifindex(self._host, cfg.bridge)
            if index is None:
                raise OSError(errno.ENODEV, f"bridge {cfg.bridge} vanished")
        prefix = cfg.network.prefixlen
        with contextlib.suppress(FileExistsError):
            await self._host.addr("add", index=index, address=str(cfg.gateway), prefixlen=prefix)
        await self._host.link("set", index=index, state="up")
        self._bridge_index = index

    async def attach(
        self,
        uid: str,
        infra_pid: int,
        open_netlink: Callable[[], socket.socket],
        *,
        host_network: bool = False,
    ) -> PodAddress | None:
        """Give a new sandbox its network; returns its address (None: loopback only).
        `open_netlink` makes an rtnetlink socket inside the sandbox's network namespace.
        On failure nothing is left behind (veth deleted, a new lease released) and a
        NetworkError or PermissionDenied says what failed and what avoids it."""
        if host_network or self.config.mode != "bridge":
            return None
        if self.unavailable is not None or self._host is None or self.ipam is None:
            raise PermissionDenied(
                f"the pod network (--network=bridge) is unavailable: {self.unavailable}; set "
                "spec.hostNetwork: true to use the host's network, or start supd with "
                "--network=none"
            )
        async with self._lock(uid):
            return await self._attach(uid, infra_pid, open_netlink)

    async def _attach(
        self, uid: str, infra_pid: int, open_netlink: Callable[[], socket.socket]
    ) -> PodAddress:
        assert self.ipam is not None
        had_lease = uid in self.ipam.by_owner
        ip = self.ipam.allocate(uid)
        host_if = veth_name(uid)
        try:
            await self._create_veth(host_if, infra_pid)
            await self._configure_pod_side(ip, open_netlink)
        except BaseException as e:
            await self._delete_link(host_if)
            if not had_lease:
                self.ipam.release(uid)
            if isinstance(e, asyncio.CancelledError | SupervisorError):
                raise
            if isinstance(e, OSError):
                why = _strerror(e)
                if e.errno == errno.EPERM:
                    why += " (needs CAP_NET_ADMIN; spec.hostNetwork: true avoids it)"
                raise NetworkError(f"set up pod network (veth {host_if}, {ip}): {why}") from e
            raise
        return PodAddress(ip, host_if)

    async def _create_veth(self, host_if: str, infra_pid: int) -> None:
        """One RTM_NEWLINK: the pair, its host end up and enslaved to the bridge, its other
        end created as eth0 inside the pod's namespace."""
        assert self._host is not None
        request: dict[str, Any] = {
            "ifname": host_if,
            "kind": "veth",
            "master": self._bridge_index,
            "state": "up",
            "peer": {"ifname": POD_IFNAME, "net_ns_pid": infra_pid},
        }
        try:
            await self._host.link("add", **request)
        except FileExistsError:
            # Left over from a sandbox of this pod that died with supd: start afresh.
            await self._delete_link(host_if)
            await self._host.link("add", **request)

    async def _configure_pod_side(self, ip: str, open_netlink: Callable[[], socket.socket]) -> None:
        """Inside the pod: the address on eth0, eth0 up, the default route via the bridge."""
        from .netlink import RouteSocket, ifindex

        pod = RouteSocket(open_netlink())
        try:
            index = await ifindex(pod, POD_IFNAME)
            if index is None:
                raise OSError(errno.ENODEV, f"{POD_IFNAME} missing in the pod's namespace")
            prefix = self.config.network.prefixlen
            await pod.addr("add", index=index, address=ip, prefixlen=prefix)
            await pod.link("set", index=index, state="up")
            await pod.route("add", dst="0.0.0.0/0", gateway=str(self.config.gateway))
        finally:
            pod.close()

    def adopted(self, uid: str) -> PodAddress | None:
        """The address of a running sandbox that a previous supd attached: its lease and
        its veth, both still in place (prune keeps a live pod's)."""
        if self.config.mode != "bridge" or self.ipam is None:
            return None
        ip = self.ipam.by_owner.get(uid)
        return PodAddress(str(ip), veth_name(uid)) if ip is not None else None

    async def detach(self, uid: str, *, release: bool = True) -> None:
        """Take a sandbox's network away: delete its veth pair (the pod end goes with it)
        and, with `release`, its lease. Idempotent; a sandbox that is re-created keeps its
        lease (release=False), so a pod keeps its IP for its whole life."""
        if self.config.mode != "bridge":
            return
        async with self._lock(uid):
            if self._host is not None:
                await self._delete_link(veth_name(uid))
            if release and self.ipam is not None:
                self.ipam.release(uid)
        if release:
            lock = self._locks.get(uid)
            if lock is not None and not lock.locked():
                del self._locks[uid]

    async def _delete_link(self, name: str) -> None:
        """Delete an interface (a veth takes its peer along). Off the loop thread: the
        kernel unregisters a device inside sendmsg(2) and waits there for an RCU grace
        period (about 20 ms here), which the loop must not spend."""
        if self._host is None:
            return
        from .netlink import delete_link_blocking

        err = await asyncio.to_thread(delete_link_blocking, name)
        if err not in (0, errno.ENODEV, errno.ENOENT):
            log.warning("delete %s: %s", name, os.strerror(err))

    async def prune(self, live_uids: Iterable[str]) -> list[str]:
        """After a crash: delete the veths on our bridge and the leases whose pod is not
        in `live_uids`. Returns what was removed (interface names and addresses)."""
        if self.config.mode != "bridge" or self._host is None or self.ipam is None:
            return []
        live = set(live_uids)
        keep = {veth_name(uid) for uid in live}
        removed: list[str] = []
        if self._bridge_index is not None:
            links = [m async for m in await self._host.link("dump", master=self._bridge_index)]
            for msg in links:
                name = msg.get("ifname")
                if name and name.startswith(VETH_PREFIX) and name not in keep:
                    await self._delete_link(name)
                    removed.append(name)
        removed += self.ipam.prune(live)
        return removed

    async def remove_bridge(self) -> None:
        """Delete the bridge (tests, and an operator's clean-up): pods lose their network."""
        if self._host is None:
            return
        await self._delete_link(self.config.bridge)

    def close(self) -> None:
        if self._host is not None:
            self._host.close()
            self._host = None
