"""Which namespaces a pod gets, given its spec and what this supd may create.

Kubernetes gives every pod its own network, IPC and UTS namespaces unless `hostNetwork`
(network and UTS) or `hostIPC` says otherwise, a PID namespace of its own with
`shareProcessNamespace` and the host's with `hostPID`. Here each container also gets a
mount namespace (for its own /proc) and, unless the pod shares one or uses the host's, a
PID namespace of its own.

Creating a namespace needs CAP_SYS_ADMIN (clone(2)); an ordinary unprivileged container
does not have it. Then supd runs in one of two modes: `none` (`--isolation=none`: no
namespaces at all, every pod runs like a hostNetwork/hostPID/hostIPC pod) or `unavailable`
(`--isolation=auto` found that it cannot create them: only pods that ask for none run).
A pod that asks for more than supd can give is refused with the privilege it lacks and the
spec fields that avoid it.

A leaf module: pure functions of the spec; the runtime maps the names to CLONE_* flags.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import PermissionDenied
from .spec import PodSpec


class Isolation(enum.Enum):
    """What this supd can do; `--isolation=auto` resolves to FULL or UNAVAILABLE."""

    FULL = "full"  # namespaces as the spec asks
    NONE = "none"  # isolation disabled by supd's configuration
    UNAVAILABLE = "unavailable"  # supd lacks the privilege to create namespaces


@dataclass(frozen=True)
class Namespaces:
    pod: frozenset[str] = frozenset()  # created for the infra: net, ipc, uts, pid
    container: frozenset[str] = frozenset()  # created for each container: mnt, pid


def plan_namespaces(spec: PodSpec, isolation: Isolation, why: str = "") -> Namespaces:
    """The namespaces of `spec`'s sandbox and containers; PermissionDenied when the pod
    needs one that `isolation` rules out (`why` says what failed, for the message)."""
    if isolation is Isolation.FULL:
        pod = set()
        if not spec.host_network:
            pod |= {"net", "uts"}
        if not spec.host_ipc:
            pod.add("ipc")
        if spec.share_process_namespace:
            pod.add("pid")
        container = {"mnt"}
        if not spec.share_process_namespace and not spec.host_pid:
            container.add("pid")
        return Namespaces(frozenset(pod), frozenset(container))

    needs = []  # (what the spec says, what it asks for, the setting that avoids it)
    if spec.share_process_namespace:
        needs.append(("spec.shareProcessNamespace is true", "a PID namespace", "false"))
    if isolation is Isolation.NONE and spec.hostname and not spec.host_network:
        needs.append(("spec.hostname is set", "a UTS namespace", "unset"))
    if isolation is Isolation.UNAVAILABLE:
        for field, on, ns in (
            ("spec.hostNetwork", spec.host_network, "network and UTS namespaces"),
            ("spec.hostPID", spec.host_pid, "PID namespaces"),
            ("spec.hostIPC", spec.host_ipc, "an IPC namespace"),
        ):
            if not on:
                needs.append((f"{field} is false", ns, "true"))
    if not needs:
        return Namespaces()
    fix = ", ".join(f"{said.split()[0]}: {value}" for said, _ns, value in needs)
    asked = "; ".join(f"{said}: it asks for {ns}" for said, ns, _ in needs)
    details = {"namespace": spec.namespace, "name": spec.name}
    if isolation is Isolation.NONE:
        raise PermissionDenied(
            f'pod "{spec.name}" needs isolation that this supd does not give '
            f"(--isolation=none): {asked}. Set {fix}, or start supd with --isolation=auto",
            details,
        )
    raise PermissionDenied(
        f'pod "{spec.name}" needs namespaces that this supd cannot create: creating '
        f"namespaces needs CAP_SYS_ADMIN{f' ({why})' if why else ''}. {asked}. Set {fix} "
        "to run it in the host's namespaces, or start supd with --isolation=none",
        details,
    )
