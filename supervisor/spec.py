"""The validated, normalized form of a v1 Pod manifest.

A leaf module: plain frozen dataclasses, no I/O. `manifest.py` builds these from YAML;
everything after validation (the lifecycle, the runtime, the store) reads only these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_NAMESPACE = "default"
DEFAULT_GRACE_SECONDS = 30
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"


@dataclass(frozen=True)
class Handler:
    """What a probe or a lifecycle hook runs: exactly one kind, with its fields."""

    kind: str  # exec | httpGet | tcpSocket | grpc | sleep
    command: tuple[str, ...] = ()  # exec
    host: str = ""  # httpGet, tcpSocket: empty means the pod's own address
    port: int | str = 0  # httpGet, tcpSocket, grpc: a number or a named container port
    path: str = "/"  # httpGet
    scheme: str = "HTTP"  # httpGet: HTTP or HTTPS
    headers: tuple[tuple[str, str], ...] = ()  # httpGet
    service: str = ""  # grpc
    seconds: int = 0  # sleep


@dataclass(frozen=True)
class Probe:
    """A container probe with Kubernetes's defaults (pkg/apis/core/v1/defaults.go)."""

    handler: Handler
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace_period_seconds: int | None = None


HOST_PATH_TYPES = (
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
)


@dataclass(frozen=True)
class Volume:
    """A pod volume: emptyDir (on disk under the pod's state dir, or tmpfs with medium
    Memory) or hostPath."""

    name: str
    kind: str  # emptyDir | hostPath
    medium: str = ""  # emptyDir: "" (disk) or "Memory"
    size_limit: int | None = None  # emptyDir: bytes
    path: str = ""  # hostPath
    type: str = ""  # hostPath: one of HOST_PATH_TYPES


@dataclass(frozen=True)
class VolumeMount:
    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str = ""


@dataclass(frozen=True)
class SecurityContext:
    """A container's effective security context: its own securityContext over the pod's
    (kubelet's DetermineEffectiveSecurityContext). Capability names are "CAP_X" or "ALL"."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool = False
    supplemental_groups: tuple[int, ...] = ()  # the pod's, with its fsGroup
    # supplementalGroupsPolicy Strict: exactly those; Merge (default): also the groups
    # the user has in /etc/group (the host's, since containers run on the host's files).
    supplemental_groups_strict: bool = False
    capabilities_add: tuple[str, ...] = ()
    capabilities_drop: tuple[str, ...] = ()
    privileged: bool = False
    allow_privilege_escalation: bool | None = None  # None: true (Kubernetes' default)


@dataclass(frozen=True)
class HostPort:
    """ports[].hostPort: HOST_IP:HOST_PORT/PROTOCOL forwarded to CONTAINER_PORT."""

    host_port: int
    container_port: int
    protocol: str = "TCP"
    host_ip: str = "0.0.0.0"
    field: str = ""  # its path in the manifest, for messages


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str | None = None
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str | None = None
    ports: tuple[tuple[str, int], ...] = ()  # (name, containerPort) of the named ports
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    post_start: Handler | None = None
    pre_stop: Handler | None = None
    restart_policy: str | None = None  # "Always" on an init container: a native sidecar
    termination_message_path: str = DEFAULT_TERMINATION_MESSAGE_PATH
    termination_message_policy: str = "File"  # or FallbackToLogsOnError
    security: SecurityContext = SecurityContext()
    cpu_limit_millis: int | None = None  # resources.limits.cpu
    memory_limit_bytes: int | None = None  # resources.limits.memory
    host_ports: tuple[HostPort, ...] = ()
    volume_mounts: tuple[VolumeMount, ...] = ()
    read_only_root_filesystem: bool = False  # securityContext.readOnlyRootFilesystem

    @property
    def sidecar(self) -> bool:
        """A restartable init container (KEP-753): starts in init order, keeps running."""
        return self.restart_policy == "Always"

    def port_number(self, port: int | str) -> int | None:
        """A probe's port: the number itself, or the containerPort of a named port."""
        if isinstance(port, int):
            return port
        return next((n for name, n in self.ports if name == port), None)

    def argv(self) -> tuple[str, ...]:
        """The command line: `command` + `args`, or `args` alone (an image without an
        entrypoint, as Kubernetes defines it for a container with no image config)."""
        return (self.command or ()) + (self.args or ())


@dataclass(frozen=True)
class PodSpec:
    name: str
    namespace: str = DEFAULT_NAMESPACE
    uid: str = field(default="", compare=False)
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    containers: tuple[ContainerSpec, ...] = ()
    init_containers: tuple[ContainerSpec, ...] = ()
    restart_policy: str = "Always"  # Always | OnFailure | Never
    termination_grace_period_seconds: int = DEFAULT_GRACE_SECONDS
    hostname: str | None = None
    share_process_namespace: bool = False
    host_network: bool = False  # the host's network and UTS namespaces
    host_pid: bool = False  # the host's PID namespace, for infra and every container
    host_ipc: bool = False  # the host's IPC namespace
    active_deadline_seconds: int | None = None
    subdomain: str | None = None
    sysctls: tuple[tuple[str, str], ...] = ()  # securityContext.sysctls, in order
    volumes: tuple[Volume, ...] = ()
    host_aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (ip, hostnames)
    dns_policy: str = "ClusterFirst"
    # dnsConfig: (nameservers, searches, options as "name" or "name:value")
    dns_config: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None = None
    # The manifest as accepted (a plain dict, JSON-able): what `get -o yaml` prints as the
    # spec and what the store persists. Compared to decide "unchanged" on re-apply.
    manifest: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """The pod's identity on this host: NAMESPACE/NAME."""
        return f"{self.namespace}/{self.name}"

    @property
    def pod_hostname(self) -> str:
        """kubelet's rule: spec.hostname, else the pod name cut to 63 characters (a UTS
        hostname's limit) without a trailing '-' or '.'."""
        return self.hostname or self.name[:63].rstrip("-.")

    def volume(self, name: str) -> Volume | None:
        return next((v for v in self.volumes if v.name == name), None)

    def container(self, name: str) -> ContainerSpec:
        for c in self.init_containers + self.containers:
            if c.name == name:
                return c
        raise KeyError(name)
