"""End to end: the pod network (bridge, IPAM, /etc/hosts, hostPort), cgroups (limits,
OOMKilled, top, removal) and the security context, through a real supd. Traffic goes only
to loopback and to pod addresses on a bridge each test makes (random name, random
10.244.X.0/24) and removes."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SUPCTL, Supd, _json_stream, finish_supd, require_root

from supervisor import cgroups
from supervisor.network import veth_name
from supervisor.security import CAP_NUMBER, DEFAULT_CAPABILITIES

PY = sys.executable


def pod(
    name: str,
    *containers: dict[str, Any],
    restart: str = "Always",
    **spec: Any,
) -> str:
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 1,
            "containers": list(containers),
            **spec,
        },
    }
    return json.dumps(obj)


def container(name: str, script: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "command": ["sh", "-c", script], **fields}


def links(*args: str) -> str:
    return subprocess.run(["ip", "-br", "link", *args], capture_output=True, text=True).stdout


def cgroup_dirs(d: Supd) -> list[Path]:
    drv = cgroups.select("auto", d.cgroup_parent)
    return drv.parents()


def pod_cgroups(d: Supd) -> list[str]:
    return sorted({p.name for parent in cgroup_dirs(d) if parent.is_dir()
                   for p in parent.iterdir() if p.name.startswith("pod")})  # fmt: skip


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def bridged(tmp_path: Path) -> Iterator[Callable[..., tuple[Supd, str, Any]]]:
    """Factory: a supd with --network bridge on its own bridge and CIDR (prefix length
    configurable), stopped and cleaned up after the test, bridge included."""
    require_root()
    made: list[tuple[Supd, Path, str]] = []

    def make(prefix: int = 24) -> tuple[Supd, str, Any]:
        bridge = "svt" + secrets.token_hex(4)
        net = ipaddress.IPv4Network(f"10.244.{secrets.randbelow(250) + 1}.0/{prefix}")
        root = tmp_path / bridge
        root.mkdir()
        d = Supd(socket=root / "supd.sock", state_dir=root / "state")
        made.append((d, root, bridge))
        d.start("--network", "bridge", "--bridge", bridge, "--pod-cidr", str(net))
        return d, bridge, net

    try:
        yield make
    finally:
        for d, root, bridge in made:
            try:
                finish_supd(d, root)
            finally:
                subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)


# -- the bridge ------------------------------------------------------------------------------

SERVER = (
    "import socket\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 8080)); s.listen()\n"
    "while True:\n"
    "    c, peer = s.accept(); c.sendall(('hello ' + peer[0]).encode()); c.close()\n"
)
CLIENT = (
    "import os, socket, time\n"
    "for i in range(300):\n"
    "    try:\n"
    "        s = socket.create_connection((os.environ['TARGET'], 8080), timeout=2); break\n"
    "    except OSError:\n"
    "        time.sleep(0.02)\n"
    "print(s.recv(100).decode())\n"
)


def test_pods_reach_each_other_by_ip_and_teardown_leaves_nothing(
    bridged: Callable[..., tuple[Supd, str, Any]],
) -> None:
    d, bridge, net = bridged()
    host_port = free_port()
    server = container(
        "srv",
        f'grep -w web /etc/hosts; exec {PY} -c "$SERVER"',
        env=[{"name": "SERVER", "value": SERVER}],
        ports=[{"containerPort": 8080, "hostPort": host_port}],
        readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1},
    )
    d.apply(pod("web", server, hostname="web", subdomain="svc"))
    d.wait("web")
    server_ip = d.pod("web")["status"]["podIP"]
    assert ipaddress.IPv4Address(server_ip) in net
    client = container(
        "cli", f'exec {PY} -c "$CLIENT"',
        env=[{"name": "CLIENT", "value": CLIENT}, {"name": "TARGET", "value": server_ip}],
    )  # fmt: skip
    d.apply(pod("client", client, restart="Never"))
    obj = d.watch_until("client", lambda o: o["status"]["phase"] in ("Succeeded", "Failed"))
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    client_ip = obj["status"]["podIP"]
    assert client_ip != server_ip and ipaddress.IPv4Address(client_ip) in net
    assert d.ctl("logs", "client").stdout == f"hello {client_ip}\n"
    # kubelet's /etc/hosts: the pod's address, FQDN and hostname.
    assert d.ctl("logs", "web").stdout == (f"{server_ip}\tweb.svc.default.svc.cluster.local\tweb\n")
    # The host port reaches the pod over the bridge (from the gateway's address).
    with socket.create_connection(("127.0.0.1", host_port), timeout=5) as s:
        assert s.recv(100) == f"hello {net.network_address + 1}".encode()
    uid = d.pod("web")["metadata"]["uid"]
    assert veth_name(uid) in links("show", "master", bridge)
    for name in ("web", "client"):
        d.ctl("delete", "pod", name)
    assert links("show", "master", bridge).strip() == ""
    assert os.listdir(d.state_dir / "network" / bridge) == ["last_reserved_ip"]
    assert pod_cgroups(d) == []
    with socket.socket() as s:
        # Released: it can be listened on again (SO_REUSEADDR: the proxied connection's
        # TIME_WAIT stays, and does not keep a listener off the port).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", host_port))
        s.listen()


def test_restart_after_a_crash_prunes_leftovers_and_keeps_the_ip(
    bridged: Callable[..., tuple[Supd, str, Any]],
) -> None:
    d, bridge, net = bridged()
    d.apply(pod("keep", container("c", "sleep 1000")))
    d.wait("keep")
    ip = d.pod("keep")["status"]["podIP"]
    d.stop(signal.SIGKILL)
    # What a supd that crashed could leave: a veth of a pod it never saw deleted, its
    # address lease, and its cgroup.
    ghost = "0123-ghost"
    subprocess.run(
        ["ip", "link", "add", veth_name(ghost), "type", "veth", "peer", "name", "svtghostpeer"],
        check=True,
    )
    subprocess.run(["ip", "link", "set", veth_name(ghost), "master", bridge], check=True)
    lease = d.state_dir / "network" / bridge / str(net.network_address + 200)
    lease.write_text(ghost)
    for parent in cgroup_dirs(d):
        (parent / f"pod{ghost}").mkdir()
    d.start("--network", "bridge", "--bridge", bridge, "--pod-cidr", str(net))
    d.wait("keep")
    assert d.pod("keep")["status"]["podIP"] == ip
    assert veth_name(ghost) not in links() and "svtghostpeer" not in links()
    assert not lease.exists()
    assert pod_cgroups(d) == [f"pod{d.pod('keep')['metadata']['uid']}"]


def test_a_sandbox_that_gets_no_address_fails_and_leaves_nothing(
    bridged: Callable[..., tuple[Supd, str, Any]],
) -> None:
    d, bridge, net = bridged(prefix=30)  # the gateway and one pod address
    d.apply(pod("first", container("c", "sleep 1000")))
    d.wait("first")
    d.apply(pod("second", container("c", "sleep 1000")))
    obj = d.watch_until("second", lambda o: o["status"].get("reason") == "FailedCreatePodSandBox")
    assert obj["status"]["phase"] == "Pending"
    assert f"no free address in {net}" in obj["status"]["message"]
    uid = obj["metadata"]["uid"]
    assert veth_name(uid) not in links()
    d.ctl("delete", "pod", "second")
    assert veth_name(uid) not in links()
    assert set(os.listdir(d.state_dir / "network" / bridge)) == {
        "last_reserved_ip",
        str(net.network_address + 2),
    }
    assert d.pod("first")["status"]["phase"] == "Running"


# -- hostPort -----------------------------------------------------------------------------------

ECHO = (
    "import socket, threading\n"
    "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('0.0.0.0', 9001))\n"
    "def udp():\n"
    "    while True:\n"
    "        data, peer = u.recvfrom(100); u.sendto(b'udp:' + data, peer)\n"
    "threading.Thread(target=udp, daemon=True).start()\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 9000)); s.listen()\n"
    "while True:\n"
    "    c, _ = s.accept(); c.sendall(b'tcp:' + c.recv(100)); c.close()\n"
)


def test_host_ports_forward_tcp_and_udp_to_a_loopback_only_pod(supd: Supd) -> None:
    tcp, udp = free_port(), free_port(socket.SOCK_DGRAM)
    echo = container(
        "echo",
        f'exec {PY} -c "$ECHO"',
        env=[{"name": "ECHO", "value": ECHO}],
        ports=[
            {"containerPort": 9000, "hostPort": tcp},
            {"containerPort": 9001, "hostPort": udp, "protocol": "UDP"},
        ],
        readinessProbe={"tcpSocket": {"port": 9000}, "periodSeconds": 1},
    )
    supd.apply(pod("echo", echo))
    supd.wait("echo")
    with socket.create_connection(("127.0.0.1", tcp), timeout=5) as s:
        s.sendall(b"ping")
        assert s.recv(100) == b"tcp:ping"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(0.5)
        got = b""
        for _ in range(20):  # the UDP server starts with the TCP one; datagrams may be lost
            u.sendto(b"ping", ("127.0.0.1", udp))
            with contextlib.suppress(TimeoutError):
                got = u.recv(100)
                break
        assert got == b"udp:ping"
    # The same port for another pod, or one taken by another process: refused at apply.
    other = container("c", "sleep 1000", ports=[{"containerPort": 1, "hostPort": tcp}])
    res = supd.ctl("apply", "-f", "-", input=pod("other", other).encode(), check=False)
    assert res.returncode == 1
    assert f"hostPort {tcp}/TCP is already allocated to pod default/echo" in res.stderr
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = container("c", "sleep 1000", ports=[{"containerPort": 1, "hostPort": port}])
        res = supd.ctl("apply", "-f", "-", input=pod("busy", busy).encode(), check=False)
        assert res.returncode == 1
        assert "is not available on this host: Address already in use" in res.stderr
    assert "other" not in supd.ctl("get", "pods").stdout
    supd.ctl("delete", "pod", "echo")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", tcp))
        s.listen()


# -- cgroups -------------------------------------------------------------------------------------


def test_oom_killed_is_reported_and_restarted_and_top_shows_usage(supd: Supd) -> None:
    hog = container(
        "hog",
        f"exec {PY} -c \"b = b'x' * (256 << 20)\"",
        resources={"limits": {"memory": "32Mi"}},
    )
    supd.apply(pod("hog", hog))
    obj = supd.watch_until(
        "hog",
        lambda o: (
            o["status"]["containerStatuses"][0]["restartCount"] >= 1
            and o["status"]["containerStatuses"][0]["lastState"]
        ),
    )
    last = obj["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert (last["reason"], last["exitCode"], last.get("signal")) == ("OOMKilled", 137, 9)
    assert obj["status"]["qosClass"] == "Burstable"
    busy = container(
        "main", "while :; do :; done", resources={"limits": {"cpu": "250m", "memory": "64Mi"}}
    )
    supd.apply(pod("busy", busy))
    supd.wait("busy")
    uid = supd.pod("busy")["metadata"]["uid"]
    drv = cgroups.select("auto", supd.cgroup_parent)
    if isinstance(drv, cgroups.CgroupsV1):
        quota = drv.dirs["cpu"] / f"pod{uid}" / "main" / "cpu.cfs_quota_us"
        assert quota.read_text().strip() == "25000"
    out = supd.ctl("top", "pods").stdout.splitlines()
    assert out[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    rows = {line.split()[0]: line.split()[1:] for line in out[1:]}
    millis = int(rows["busy"][0].rstrip("m"))
    assert 100 <= millis <= 300, rows  # held to 250m by its quota
    out = supd.ctl("top", "containers", "busy").stdout.splitlines()
    assert out[0].split() == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert out[1].split()[:2] == ["busy", "main"]
    assert supd.pod("busy")["status"]["qosClass"] == "Guaranteed"
    supd.ctl("delete", "pod", "busy", "hog")
    assert pod_cgroups(supd) == []


# -- securityContext -----------------------------------------------------------------------------

STATUS = "id -u; id -g; id -G; grep -E '^(Cap(Bnd|Eff)|NoNewPrivs|Sig(Ign|Blk))' /proc/self/status"


def caps_of(lines: list[str]) -> dict[str, str]:
    return dict(line.split(":\t") for line in lines if ":\t" in line)


def supd_bounding() -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("CapBnd")).split()[1], 16)


def test_security_context_ids_capabilities_no_new_privs_and_sysctls(supd: Supd) -> None:
    default = sum(1 << CAP_NUMBER[n] for n in DEFAULT_CAPABILITIES) & supd_bounding()
    manifest = pod(
        "sec",
        container(
            "user",
            STATUS + "; sleep 1000",
            securityContext={
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                "allowPrivilegeEscalation": False,
            },
        ),
        container("root", STATUS + "; sleep 1000", securityContext={"runAsUser": 0}),
        container(
            "priv", STATUS + "; sleep 1000", securityContext={"runAsUser": 0, "privileged": True}
        ),
        container(
            "sysctl",
            "cat /proc/sys/net/core/somaxconn /proc/sys/kernel/shm_rmid_forced; sleep 1000",
        ),
        securityContext={
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "supplementalGroups": [1234],
            "sysctls": [
                {"name": "net.core.somaxconn", "value": "1234"},
                {"name": "kernel.shm_rmid_forced", "value": "1"},
            ],
        },
    )
    supd.apply(manifest)
    supd.wait("sec")

    def lines(name: str) -> list[str]:
        return supd.ctl("logs", "sec", "-c", name).stdout.splitlines()

    user = lines("user")
    assert user[:3] == ["65534", "65534", "65534 1234"]
    got = caps_of(user)
    assert int(got["CapBnd"], 16) == 1 << CAP_NUMBER["CAP_NET_BIND_SERVICE"]
    assert int(got["CapEff"], 16) == 0 and got["NoNewPrivs"] == "1"
    root = lines("root")
    assert root[:2] == ["0", "65534"]
    assert int(caps_of(root)["CapBnd"], 16) == int(caps_of(root)["CapEff"], 16) == default
    assert caps_of(root)["NoNewPrivs"] == "0"
    # supd (Python) ignores SIGPIPE and SIGXFSZ; infra reset that once for all it starts.
    assert caps_of(root)["SigIgn"] == caps_of(root)["SigBlk"] == "0000000000000000"
    assert int(caps_of(lines("priv"))["CapBnd"], 16) == supd_bounding()
    assert lines("sysctl") == ["1234", "1"]
    # An exec'd process gets the container's capabilities too.
    out = supd.ctl("exec", "sec", "-c", "user", "--", "grep", "-E", "^(CapBnd|SigIgn)",
                   "/proc/self/status")  # fmt: skip
    got = caps_of(out.stdout.splitlines())
    assert int(got["CapBnd"], 16) == 1 << CAP_NUMBER["CAP_NET_BIND_SERVICE"]
    assert got["SigIgn"] == "0000000000000000"


def test_run_as_non_root_refuses_a_root_container(supd: Supd) -> None:
    supd.apply(
        pod(
            "nonroot",
            container("c", "sleep 1000"),
            securityContext={"runAsNonRoot": True},
        )
    )
    obj = supd.watch_until(
        "nonroot",
        lambda o: (
            o["status"]["containerStatuses"][0]["state"].get("waiting", {}).get("reason")
            == "CreateContainerConfigError"
        ),
    )
    waiting = obj["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["message"].startswith("container has runAsNonRoot and would run as root")
    events = supd.ctl("events", "--for", "pod/nonroot").stdout
    assert "Error: container has runAsNonRoot" in events


def test_net_sysctls_with_host_network_are_refused_at_apply(supd: Supd) -> None:
    manifest = pod(
        "hn",
        container("c", "sleep 1000"),
        hostNetwork=True,
        securityContext={"sysctls": [{"name": "net.core.somaxconn", "value": "1"}]},
    )
    res = supd.ctl("apply", "-f", "-", input=manifest.encode(), check=False)
    assert res.returncode != 0
    assert "the pod uses the host's (spec.hostNetwork: true)" in res.stderr


# -- without a privilege -----------------------------------------------------------------------


def test_without_cap_net_admin_bridge_pods_fail_with_the_reason_and_supd_runs_on(
    tmp_path: Path,
) -> None:
    require_root()
    bridge = "svt" + secrets.token_hex(4)
    d = Supd(socket=tmp_path / "supd.sock", state_dir=tmp_path / "state")
    d.start(
        "--network",
        "bridge",
        "--bridge",
        bridge,
        "--pod-cidr",
        f"10.244.{secrets.randbelow(250) + 1}.0/24",
        prefix=("setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-all"),
    )
    try:
        d.apply(pod("netpod", container("c", "sleep 1000")))
        obj = d.watch_until(
            "netpod", lambda o: o["status"].get("reason") == "FailedCreatePodSandBox"
        )
        message = obj["status"]["message"]
        # Without CAP_NET_ADMIN even lo of a new network namespace cannot come up.
        assert message == (
            "create pod sandbox: bring up lo: Operation not permitted (supd lacks "
            "CAP_NET_ADMIN; spec.hostNetwork: true avoids it)"
        ), message
        # supd goes on, and a pod that does not need the bridge runs.
        d.apply(pod("hostnet", container("c", "sleep 1000"), hostNetwork=True))
        d.wait("hostnet")
        assert bridge not in links()
    finally:
        finish_supd(d, tmp_path)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)


def test_pod_start_waits_for_its_network(bridged: Callable[..., tuple[Supd, str, Any]]) -> None:
    """The container starts only once eth0 has its address and route."""
    d, _bridge, net = bridged()
    d.apply(
        pod(
            "ready",
            container(
                "c",
                "ip -4 -o addr show eth0; ip route show default",
            ),
            restart="Never",
        )
    )
    obj = d.watch_until("ready", lambda o: o["status"]["phase"] in ("Succeeded", "Failed"))
    out = d.ctl("logs", "ready").stdout
    assert obj["status"]["podIP"] + "/" in out
    assert f"default via {net.network_address + 1} dev eth0" in out


# -- rootless ----------------------------------------------------------------------------------

USER = 12345  # any uid without privileges (no passwd entry needed)


def test_rootless_supd_runs_pods_in_a_user_namespace_and_says_what_it_cannot() -> None:
    require_root()  # to become another user; supd itself then has no privilege at all
    # Not under pytest's tmp_path: its parents are root's, mode 0700.
    home = Path(tempfile.mkdtemp(prefix="supd-rootless-"))
    os.chown(home, USER, USER)
    as_user = ("setpriv", "--reuid", str(USER), "--regid", str(USER), "--clear-groups")
    d = Supd(socket=home / "supd.sock", state_dir=home / "state")

    def ctl(*args: str, manifest: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*as_user, SUPCTL, "--socket", str(d.socket), *args],
            input=manifest,
            capture_output=True,
            text=True,
            timeout=60,
        )

    d.start(prefix=as_user)
    try:
        script = "id -u; cat /proc/self/uid_map; grep CapEff /proc/self/status"
        res = ctl("apply", "-f", "-", manifest=pod("rl", container("c", script), restart="Never"))
        assert res.returncode == 0, res.stderr
        watch = subprocess.Popen(
            [*as_user, SUPCTL, "--socket", str(d.socket), "get", "pod", "rl", "-w", "-o",
             "json"],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        try:
            assert watch.stdout is not None
            for obj in _json_stream(watch.stdout.fileno(), time.monotonic() + 30):
                if obj["status"]["phase"] in ("Succeeded", "Failed"):
                    break
            assert obj["status"]["phase"] == "Succeeded", obj["status"]
        finally:
            watch.kill()
            watch.wait()
        lines = ctl("logs", "rl").stdout.splitlines()
        assert lines[0] == "0"  # root in the pod: the user outside
        assert lines[1].split() == ["0", str(USER), "1"]
        refused = {
            "memory limit": (
                container("c", "true", resources={"limits": {"memory": "64Mi"}}),
                "memory cgroup controller is not available",
            ),
            "host port": (
                container("c", "true", ports=[{"containerPort": 80, "hostPort": free_port()}]),
                "supd runs rootless, in a network namespace of its own",
            ),
            "another uid": (
                container("c", "true", securityContext={"runAsUser": 1000}),
                "its user namespace maps only uid and gid 0",
            ),
        }
        for what, (c, message) in refused.items():
            res = ctl("apply", "-f", "-", manifest=pod("no", c))
            assert res.returncode != 0 and message in res.stderr, (what, res.stderr)
        ctl("delete", "pod", "rl")
        log = (home / "supd.log").read_text()
        assert "rootless: pods run in a user namespace where uid 12345 is root" in log
        assert "Traceback" not in log
    finally:
        if d.proc is not None:
            d.stop()
        shutil.rmtree(home)
