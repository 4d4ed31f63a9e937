"""Security-context decisions: capability sets, runAsNonRoot, namespaced sysctls.

Pure and a leaf (imports only `spec`): the manifest validates with it, the runtime turns a
container's effective security context into the numbers the native child applies.
"""

from __future__ import annotations

from .spec import SecurityContext

# linux/capability.h, in number order.
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
CAP_NUMBER = {name: i for i, name in enumerate(CAPABILITIES)}

# What containerd, CRI-O and Docker give a container that asks for nothing
# (containerd oci.defaultUnixCaps).
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)  # fmt: skip


def capability_name(name: str) -> str | None:
    """ "NET_ADMIN" or "CAP_NET_ADMIN" (any case, as containerd accepts) -> "CAP_NET_ADMIN";
    "ALL" -> "ALL"; None when unknown."""
    upper = name.upper()
    if upper == "ALL":
        return "ALL"
    full = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    return full if full in CAP_NUMBER else None


def _mask(names: tuple[str, ...] | list[str]) -> int:
    out = 0
    for n in names:
        out |= 1 << CAP_NUMBER[n]
    return out


def capability_mask(sc: SecurityContext, available: int) -> int:
    """The container's capability set (bounding = permitted = effective for root) as a
    bit mask, within `available` (supd's own bounding set): privileged gets all of them;
    otherwise the runtime default set, minus `drop`, plus `add` (containerd applies drops
    to the defaults, then adds; "ALL" in either means every capability)."""
    if sc.privileged:
        return available
    caps = _mask(DEFAULT_CAPABILITIES)
    if "ALL" in sc.capabilities_drop:
        caps = 0
    else:
        caps &= ~_mask([n for n in sc.capabilities_drop if n != "ALL"])
    if "ALL" in sc.capabilities_add:
        caps = available
    else:
        caps |= _mask([n for n in sc.capabilities_add if n != "ALL"])
    return caps & available


def no_new_privs(sc: SecurityContext) -> bool:
    """PR_SET_NO_NEW_PRIVS: what allowPrivilegeEscalation false asks for (it defaults to
    true, and validation refuses false with privileged or CAP_SYS_ADMIN)."""
    return sc.allow_privilege_escalation is False


def non_root_violation(sc: SecurityContext, default_uid: int) -> str | None:
    """kubelet's verifyRunAsNonRoot: why a container with runAsNonRoot would run as root
    (None when it would not). Without an image, the user is supd's own (`default_uid`)."""
    if not sc.run_as_non_root:
        return None
    if sc.run_as_user is not None:
        return "container's runAsUser breaks non-root policy" if sc.run_as_user == 0 else None
    if default_uid == 0:
        return (
            "container has runAsNonRoot and would run as root (it has no image user and "
            "supd runs as root): set securityContext.runAsUser to a non-zero uid"
        )
    return None


# kubelet pkg/kubelet/sysctl/namespace.go: which sysctls belong to which namespace.
_SYSCTL_NAMESPACES = {"kernel.sem": "ipc"}
_SYSCTL_PREFIXES = (
    ("kernel.shm", "ipc"),
    ("kernel.msg", "ipc"),
    ("fs.mqueue.", "ipc"),
    ("net.", "net"),
)


_SWAP = str.maketrans("./", "/.")


def normalize_sysctl(name: str) -> str:
    """The dotted form kubelet compares. sysctl.d(5): when the first separator is '/', the
    name is a path and a '.' belongs to a segment (net/ipv4/conf/eth0.100/forwarding is
    net.ipv4.conf.eth0/100.forwarding)."""
    dot, slash = name.find("."), name.find("/")
    if slash != -1 and (dot == -1 or slash < dot):
        return name.translate(_SWAP)
    return name


def sysctl_namespace(name: str) -> str | None:
    """ "ipc" or "net" for a namespaced sysctl, None for one that would change the host."""
    name = normalize_sysctl(name)
    if name in _SYSCTL_NAMESPACES:
        return _SYSCTL_NAMESPACES[name]
    for prefix, ns in _SYSCTL_PREFIXES:
        if name.startswith(prefix):
            return ns
    return None


def sysctl_path(name: str) -> str:
    """The /proc/sys file of a sysctl given in either form."""
    return "/proc/sys/" + normalize_sysctl(name).translate(_SWAP)
