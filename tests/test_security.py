"""Security-context decisions (pure): capability sets, runAsNonRoot, sysctl namespaces."""

from __future__ import annotations

from supervisor.security import (
    CAP_NUMBER,
    CAPABILITIES,
    DEFAULT_CAPABILITIES,
    capability_mask,
    capability_name,
    no_new_privs,
    non_root_violation,
    normalize_sysctl,
    sysctl_namespace,
    sysctl_path,
)
from supervisor.spec import SecurityContext

ALL = (1 << len(CAPABILITIES)) - 1


def mask(*names: str) -> int:
    return sum(1 << CAP_NUMBER[n] for n in names)


def test_capability_numbers_follow_the_kernel() -> None:
    assert CAP_NUMBER["CAP_CHOWN"] == 0
    assert CAP_NUMBER["CAP_SYS_ADMIN"] == 21
    assert CAP_NUMBER["CAP_CHECKPOINT_RESTORE"] == 40
    assert capability_name("net_admin") == capability_name("CAP_NET_ADMIN") == "CAP_NET_ADMIN"
    assert capability_name("all") == "ALL" and capability_name("FLY") is None


def test_default_add_drop_privileged() -> None:
    default = mask(*DEFAULT_CAPABILITIES)
    assert capability_mask(SecurityContext(), ALL) == default
    assert bin(default).count("1") == 14
    sc = SecurityContext(capabilities_add=("CAP_NET_ADMIN",), capabilities_drop=("CAP_NET_RAW",))
    assert capability_mask(sc, ALL) == (default & ~mask("CAP_NET_RAW")) | mask("CAP_NET_ADMIN")
    sc = SecurityContext(capabilities_drop=("ALL",), capabilities_add=("CAP_NET_BIND_SERVICE",))
    assert capability_mask(sc, ALL) == mask("CAP_NET_BIND_SERVICE")
    assert capability_mask(SecurityContext(capabilities_add=("ALL",)), ALL) == ALL
    # Never more than supd has: privileged is supd's own bounding set.
    supd = ALL & ~mask("CAP_SYS_RESOURCE")
    assert capability_mask(SecurityContext(privileged=True), supd) == supd
    sc = SecurityContext(capabilities_add=("CAP_SYS_RESOURCE",))
    assert capability_mask(sc, supd) == default


def test_no_new_privs_only_when_escalation_is_false() -> None:
    assert not no_new_privs(SecurityContext())
    assert not no_new_privs(SecurityContext(allow_privilege_escalation=True))
    assert no_new_privs(SecurityContext(allow_privilege_escalation=False))


def test_run_as_non_root() -> None:
    assert non_root_violation(SecurityContext(), 0) is None
    sc = SecurityContext(run_as_non_root=True)
    assert "would run as root" in (non_root_violation(sc, 0) or "")
    assert non_root_violation(sc, 1000) is None
    sc = SecurityContext(run_as_non_root=True, run_as_user=0)
    assert non_root_violation(sc, 1000) == "container's runAsUser breaks non-root policy"
    assert non_root_violation(SecurityContext(run_as_non_root=True, run_as_user=5), 0) is None


def test_sysctl_names() -> None:
    assert sysctl_namespace("net.ipv4.ip_forward") == "net"
    assert sysctl_namespace("kernel.shmmax") == sysctl_namespace("kernel.sem") == "ipc"
    assert sysctl_namespace("fs.mqueue.queues_max") == "ipc"
    assert sysctl_namespace("kernel.semx") is None and sysctl_namespace("vm.swappiness") is None
    assert normalize_sysctl("net/ipv4/conf/eth0.100/forwarding") == (
        "net.ipv4.conf.eth0/100.forwarding"
    )
    assert sysctl_path("net.ipv4.conf.eth0/100.forwarding") == (
        "/proc/sys/net/ipv4/conf/eth0.100/forwarding"
    )
    assert sysctl_path("net/core/somaxconn") == "/proc/sys/net/core/somaxconn"
