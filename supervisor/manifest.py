"""Parse and validate Kubernetes v1 Pod manifests into `PodSpec`s.

The only door from user input to the rest of the package: YAML text or decoded objects in,
frozen specs and warnings out, or one `ManifestError` carrying every cause found. Messages
follow Kubernetes's field errors (`pkg/apis/core/validation`, apimachinery `util/validation`)
so that a manifest kubectl rejects is rejected here with the same words.

Three kinds of field besides the ones we implement:
  * ignored: Kubernetes fields with no meaning on one machine; accepted, reported as warnings;
  * not supported yet: fields a later feature implements; a `Forbidden` error, never dropped;
  * anything else: `Unknown field`, with a suggestion when a known name is close.

Pure: no I/O, no clock (the only randomness is uid and generateName, as the API server does).
Imports only leaves from the package: `errors`, `spec`, `quantity` and `security`.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import json
import math
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ManifestError
from .quantity import cpu_millis, memory_bytes
from .security import capability_name, normalize_sysctl, sysctl_namespace
from .spec import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_NAMESPACE,
    DEFAULT_TERMINATION_MESSAGE_PATH,
    HOST_PATH_TYPES,
    ContainerSpec,
    Handler,
    HostPort,
    PodSpec,
    Probe,
    SecurityContext,
    Volume,
    VolumeMount,
)
from .yamlload import LOAD_ERRORS, load_all
from .yamlload import describe_error as _yaml_error
from .yamlload import shape_problem as _shape_problem

__all__ = ["load_documents", "load_pods", "parse_pod"]

# apimachinery TotalAnnotationSizeLimitB: keys + values, in bytes.
MAX_ANNOTATIONS_BYTES = 256 * 1024
INT64_MAX = 2**63 - 1
# Every cause is collected, but a message listing a million of them helps no one.
MAX_CAUSES = 100
# "Did you mean" costs an edit distance per known field: only for the first few unknowns.
_MAX_SUGGESTIONS = 20

# apimachinery util/validation messages, verbatim.
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    f"regex used for validation is '{_DNS1123_LABEL_FMT}')"
)
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + r"(\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    f"regex used for validation is '{_DNS1123_SUBDOMAIN_FMT}')"
)
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    f"validation is '{_QUALIFIED_NAME_FMT}')"
)
_LABEL_VALUE_FMT = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    f"'my_value',  or '12345', regex used for validation is '{_LABEL_VALUE_FMT}')"
)
_ENV_NAME_MSG = (
    "a valid environment variable name must consist only of printable ASCII characters "
    "other than '='"
)

_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_QUALIFIED_NAME_RE = re.compile(_QUALIFIED_NAME_FMT)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_ENV_NAME_RE = re.compile("[\x20-\x3c\x3e-\x7e]+")
_PORT_NAME_CHARSET_RE = re.compile("[-a-z0-9]+")
_HEADER_NAME_RE = re.compile("[-A-Za-z0-9]+")
_UID_RE = re.compile("[A-Za-z0-9][-A-Za-z0-9_.]{0,127}")

# The API server's generateName suffix (apiserver SimpleNameGenerator, utilrand.String): five
# characters from an alphabet without vowels or look-alikes, the base cut to 58 characters.
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_NAME_SUFFIX_LEN = 5
_MAX_GENERATE_NAME_BASE = 63 - _NAME_SUFFIX_LEN

RESTART_POLICIES = ("Always", "OnFailure", "Never")
PORT_PROTOCOLS = ("SCTP", "TCP", "UDP")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")

_NOT_SUPPORTED = "not supported yet"
_ONE_HOST = "no meaning on a single host"


# --- field tables -----------------------------------------------------------------------------


class _Validated:
    """A field this module validates and turns into PodSpec data."""


@dataclass(frozen=True)
class _Ignored:
    """Accepted with a warning; kept in the normalized manifest."""

    reason: str = _ONE_HOST


@dataclass(frozen=True)
class _Dropped:
    """Accepted with a warning; removed from the normalized manifest (server-owned data)."""

    reason: str


@dataclass(frozen=True)
class _Unsupported:
    """A later feature: `Forbidden: not supported yet` unless the value means the same as
    leaving the field out (null, empty, or one of `defaults`)."""

    defaults: tuple[object, ...] = ()


_FieldKind = _Validated | _Ignored | _Dropped | _Unsupported
_V = _Validated()
_UNSUPPORTED = _Unsupported()
_SERVER_SET = _Dropped("set by the API server")

_TOP_FIELDS: dict[str, _FieldKind] = {
    "apiVersion": _V,
    "kind": _V,
    "metadata": _V,
    "spec": _V,
    "status": _Dropped("set by the supervisor"),
}

_METADATA_FIELDS: dict[str, _FieldKind] = {
    "name": _V,
    "generateName": _V,
    "namespace": _V,
    "uid": _V,
    "labels": _V,
    "annotations": _V,
    "selfLink": _SERVER_SET,
    "resourceVersion": _SERVER_SET,
    "generation": _SERVER_SET,
    "creationTimestamp": _SERVER_SET,
    "deletionTimestamp": _SERVER_SET,
    "deletionGracePeriodSeconds": _SERVER_SET,
    "ownerReferences": _Dropped("no owning controllers on a single host"),
    "finalizers": _Dropped("no controllers on a single host"),
    "managedFields": _SERVER_SET,
}

_POD_SPEC_FIELDS: dict[str, _FieldKind] = {
    "containers": _V,
    "initContainers": _V,
    "restartPolicy": _V,
    "terminationGracePeriodSeconds": _V,
    "hostname": _V,
    "shareProcessNamespace": _V,
    "hostNetwork": _V,
    "hostPID": _V,
    "hostIPC": _V,
    "dnsPolicy": _V,
    "resources": _V,
    # Scheduling, cluster identity and image pulling: nothing to decide on one machine.
    "nodeSelector": _Ignored(),
    "nodeName": _Ignored(),
    "tolerations": _Ignored(),
    "affinity": _Ignored(),
    "imagePullSecrets": _Ignored("images come from the local image store"),
    "serviceAccountName": _Ignored(),
    "serviceAccount": _Ignored(),
    "automountServiceAccountToken": _Ignored(),
    "priorityClassName": _Ignored(),
    "priority": _Ignored(),
    "preemptionPolicy": _Ignored(),
    "schedulerName": _Ignored(),
    "topologySpreadConstraints": _Ignored(),
    "enableServiceLinks": _Ignored("no services on a single host"),
    "runtimeClassName": _Ignored(),
    # Later features.
    "volumes": _V,
    "ephemeralContainers": _UNSUPPORTED,
    "securityContext": _V,
    "hostUsers": _UNSUPPORTED,
    "subdomain": _V,
    "hostAliases": _V,
    "hostnameOverride": _UNSUPPORTED,
    "setHostnameAsFQDN": _Unsupported((False,)),
    "dnsConfig": _V,
    "activeDeadlineSeconds": _V,
    "readinessGates": _UNSUPPORTED,
    "os": _UNSUPPORTED,
    "overhead": _UNSUPPORTED,
    "resourceClaims": _UNSUPPORTED,
    "schedulingGates": _UNSUPPORTED,
}

_CONTAINER_FIELDS: dict[str, _FieldKind] = {
    "name": _V,
    "image": _V,
    "command": _V,
    "args": _V,
    "env": _V,
    "workingDir": _V,
    "ports": _V,
    "resources": _V,
    "imagePullPolicy": _Ignored("images come from the local image store"),
    "resizePolicy": _Ignored("resources cannot be changed in place on a single host"),
    "envFrom": _UNSUPPORTED,
    "livenessProbe": _V,
    "readinessProbe": _V,
    "startupProbe": _V,
    "lifecycle": _V,
    "volumeMounts": _V,
    "volumeDevices": _UNSUPPORTED,
    "securityContext": _V,
    "terminationMessagePath": _V,
    "terminationMessagePolicy": _V,
    "stdin": _Unsupported((False,)),
    "stdinOnce": _Unsupported((False,)),
    "tty": _Unsupported((False,)),
    "restartPolicy": _V,
    "restartPolicyRules": _UNSUPPORTED,
}

_PROBE_FIELDS: dict[str, _FieldKind] = {
    "exec": _V,
    "httpGet": _V,
    "tcpSocket": _V,
    "grpc": _V,
    "initialDelaySeconds": _V,
    "timeoutSeconds": _V,
    "periodSeconds": _V,
    "successThreshold": _V,
    "failureThreshold": _V,
    "terminationGracePeriodSeconds": _V,
}

_LIFECYCLE_FIELDS: dict[str, _FieldKind] = {
    "postStart": _V,
    "preStop": _V,
    "stopSignal": _UNSUPPORTED,
}

_HOOK_FIELDS: dict[str, _FieldKind] = {
    "exec": _V,
    "httpGet": _V,
    "sleep": _V,
    # Deprecated in Kubernetes and never run by kubelet: refused rather than ignored.
    "tcpSocket": _UNSUPPORTED,
}

_EXEC_FIELDS: dict[str, _FieldKind] = {"command": _V}
_HTTP_GET_FIELDS: dict[str, _FieldKind] = {
    "path": _V,
    "port": _V,
    "host": _V,
    "scheme": _V,
    "httpHeaders": _V,
}
_HEADER_FIELDS: dict[str, _FieldKind] = {"name": _V, "value": _V}
_TCP_FIELDS: dict[str, _FieldKind] = {"port": _V, "host": _V}
_GRPC_FIELDS: dict[str, _FieldKind] = {"port": _V, "service": _V}
_SLEEP_FIELDS: dict[str, _FieldKind] = {"seconds": _V}
_HANDLER_FIELDS = {
    "exec": _EXEC_FIELDS,
    "httpGet": _HTTP_GET_FIELDS,
    "tcpSocket": _TCP_FIELDS,
    "grpc": _GRPC_FIELDS,
    "sleep": _SLEEP_FIELDS,
}
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
HTTP_SCHEMES = ("HTTP", "HTTPS")

_ENV_FIELDS: dict[str, _FieldKind] = {"name": _V, "value": _V, "valueFrom": _UNSUPPORTED}

_PORT_FIELDS: dict[str, _FieldKind] = {
    "name": _V,
    "containerPort": _V,
    "protocol": _V,
    "hostIP": _V,
    "hostPort": _V,
}

_RESOURCES_FIELDS: dict[str, _FieldKind] = {
    "requests": _Ignored("no scheduler on a single host"),
    "limits": _V,
    "claims": _UNSUPPORTED,
}
# Pod-level resources (KEP-2837) are a later feature.
_POD_RESOURCES_FIELDS: dict[str, _FieldKind] = {
    "requests": _Ignored("no scheduler on a single host"),
    "limits": _UNSUPPORTED,
    "claims": _UNSUPPORTED,
}
LIMIT_RESOURCES = ("cpu", "memory")

_NO_SELINUX = "no SELinux labelling on this host"
_LINUX_ONLY = "Windows options on a Linux host"
_POD_SECURITY_FIELDS: dict[str, _FieldKind] = {
    "runAsUser": _V,
    "runAsGroup": _V,
    "runAsNonRoot": _V,
    "supplementalGroups": _V,
    "supplementalGroupsPolicy": _V,
    "fsGroup": _V,
    "fsGroupChangePolicy": _Ignored("no volumes whose ownership could change"),
    "sysctls": _V,
    "seccompProfile": _V,
    "appArmorProfile": _V,
    "seLinuxOptions": _Ignored(_NO_SELINUX),
    "seLinuxChangePolicy": _Ignored(_NO_SELINUX),
    "windowsOptions": _Ignored(_LINUX_ONLY),
}
_CONTAINER_SECURITY_FIELDS: dict[str, _FieldKind] = {
    "runAsUser": _V,
    "runAsGroup": _V,
    "runAsNonRoot": _V,
    "capabilities": _V,
    "privileged": _V,
    "allowPrivilegeEscalation": _V,
    "procMount": _V,
    "seccompProfile": _V,
    "appArmorProfile": _V,
    "readOnlyRootFilesystem": _V,
    "seLinuxOptions": _Ignored(_NO_SELINUX),
    "windowsOptions": _Ignored(_LINUX_ONLY),
}
_CAPABILITIES_FIELDS: dict[str, _FieldKind] = {"add": _V, "drop": _V}
_SYSCTL_FIELDS: dict[str, _FieldKind] = {"name": _V, "value": _V}
_PROFILE_FIELDS: dict[str, _FieldKind] = {"type": _V, "localhostProfile": _V}
PROFILE_TYPES = ("RuntimeDefault", "Unconfined", "Localhost")
PROC_MOUNT_TYPES = ("Default", "Unmasked")
SUPPLEMENTAL_GROUPS_POLICIES = ("Merge", "Strict")
MAX_ID = 2147483647  # runAsUser, runAsGroup, groups: 0..MaxInt32 (validation.go)
# apimachinery validation: SysctlSegmentFmt joined by '.' or '/'.
_SYSCTL_SEGMENT = "[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
_SYSCTL_RE = re.compile(f"({_SYSCTL_SEGMENT}[\\./])*{_SYSCTL_SEGMENT}")

# Filesystem isolation (issue 4): the volume sources it implements.
_VOLUME_FIELDS: dict[str, _FieldKind] = {"name": _V, "emptyDir": _V, "hostPath": _V}
_VOLUME_SOURCES = ("emptyDir", "hostPath")
_EMPTY_DIR_FIELDS: dict[str, _FieldKind] = {"medium": _V, "sizeLimit": _V}
_HOST_PATH_FIELDS: dict[str, _FieldKind] = {"path": _V, "type": _V}
_VOLUME_MOUNT_FIELDS: dict[str, _FieldKind] = {
    "name": _V,
    "mountPath": _V,
    "readOnly": _V,
    "subPath": _V,
    "mountPropagation": _Unsupported(("None",)),
    "subPathExpr": _UNSUPPORTED,
    "recursiveReadOnly": _Unsupported(("Disabled",)),
}
_HOST_ALIAS_FIELDS: dict[str, _FieldKind] = {"ip": _V, "hostnames": _V}
_DNS_CONFIG_FIELDS: dict[str, _FieldKind] = {"nameservers": _V, "searches": _V, "options": _V}
_DNS_OPTION_FIELDS: dict[str, _FieldKind] = {"name": _V, "value": _V}
# resource.Quantity suffixes (apimachinery), for emptyDir.sizeLimit.
_QUANTITY_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")
_QUANTITY_FACTORS = {
    None: 1,
    "m": 0.001,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}

_LIST_FIELDS = ("apiVersion", "kind", "metadata", "items")
_LIST_KINDS = ("List", "PodList")


# --- value formatting -------------------------------------------------------------------------


def _quote(s: str, limit: int = 80) -> str:
    """A string as Go's %q would show it, cut to `limit` characters."""
    if len(s) > limit:
        s = s[:limit] + "..."
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(s)
    return json.dumps(s, ensure_ascii=False)


def _small(value: object, budget: int) -> int:
    """How much of `budget` `value` leaves unspent (negative: too big to show)."""
    budget -= 1
    if isinstance(value, dict):
        for k, v in value.items():
            if budget < 0 or not isinstance(k, str):
                return -1
            budget = _small(v, budget - 1)
    elif isinstance(value, list):
        for v in value:
            if budget < 0:
                return -1
            budget = _small(v, budget)
    elif isinstance(value, str):
        budget -= len(value) // 16
    elif value is not None and not isinstance(value, int | float):
        return -1
    return budget


def _fmt(value: object) -> str:
    """A value inside an error message, like apimachinery's field.Invalid shows it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 256 else "(an integer too large to show)"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, dict | list):
        if _small(value, 12) >= 0:
            try:
                return json.dumps(value, separators=(", ", ": "), allow_nan=True)
            except (TypeError, ValueError):
                pass
        return "{...}" if isinstance(value, dict) else "[...]"
    return f"(a {type(value).__name__})"


def _path_key(key: str) -> str:
    """A map key or field name as it appears in a field path."""
    if len(key) <= 64 and key.isprintable() and key.isascii():
        return key
    return _quote(key, 64)


def _join(path: str, name: str) -> str:
    return f"{path}.{_path_key(name)}" if path else _path_key(name)


def _distance(a: str, b: str) -> int:
    """Optimal-string-alignment edit distance (insert, delete, substitute, transpose)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def _suggest(name: str, known: dict[str, _FieldKind]) -> str | None:
    """The known field `name` was probably meant to be, if one is close enough."""
    if len(name) > 64:
        return None
    limit = min(2, max(1, len(name) // 3))
    best: tuple[int, str] | None = None
    for candidate in known:
        if abs(len(candidate) - len(name)) > limit:
            continue
        d = 0 if candidate.lower() == name.lower() else _distance(name, candidate)
        if d <= limit and (best is None or (d, candidate) < best):
            best = (d, candidate)
    return best[1] if best else None


# --- the validator ----------------------------------------------------------------------------


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)


def _is_default(value: object, defaults: tuple[object, ...]) -> bool:
    # Type-aware: `hostPort: false` is not the default 0, `stdin: 0` is not False.
    return any(type(value) is type(d) and value == d for d in defaults)


def _random_suffix() -> str:
    return "".join(secrets.choice(_NAME_SUFFIX_ALPHABET) for _ in range(_NAME_SUFFIX_LEN))


class _Validator:
    """Collects every cause and warning for one Pod; never stops at the first error."""

    def __init__(self) -> None:
        self.causes: list[tuple[str, str]] = []
        self.warnings: list[str] = []
        self.suggestions_left = _MAX_SUGGESTIONS
        # The pod's securityContext (validated fields), and what containers inherit of it.
        self.pod_security: dict[str, Any] | None = None
        self.pod_context = SecurityContext()
        self.host_ports: dict[tuple[str, int, str], str] = {}  # (ip, port, proto) -> path

    # Error constructors, worded as apimachinery's field.Error types.
    def required(self, path: str, detail: str = "") -> None:
        self.causes.append((path, f"Required value: {detail}" if detail else "Required value"))

    def invalid(self, path: str, value: object, detail: str) -> None:
        self.causes.append((path, f"Invalid value: {_fmt(value)}: {detail}"))

    def unsupported(self, path: str, value: object, supported: tuple[str, ...]) -> None:
        values = ", ".join(f'"{s}"' for s in supported)
        self.causes.append((path, f"Unsupported value: {_fmt(value)}: supported values: {values}"))

    def duplicate(self, path: str, value: object, detail: str = "") -> None:
        msg = f"Duplicate value: {_fmt(value)}"
        self.causes.append((path, f"{msg}: {detail}" if detail else msg))

    def forbidden(self, path: str, detail: str) -> None:
        self.causes.append((path, f"Forbidden: {detail}"))

    def warn(self, path: str, reason: str) -> None:
        self.warnings.append(f"{path}: ignored ({reason})")

    # Shapes.
    def fields(self, obj: object, path: str, known: dict[str, _FieldKind]) -> dict[str, Any] | None:
        """Check an object's field names; return the `_Validated` fields that are not null.
        Ignored, dropped and not-supported-yet fields are dealt with here."""
        if not isinstance(obj, dict):
            self.invalid(path, obj, "must be an object")
            return None
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                self.invalid(path, key, "field names must be strings")
                continue
            fpath = _join(path, key)
            kind = known.get(key)
            if kind is None:
                hint = _suggest(key, known) if self.suggestions_left > 0 else None
                self.suggestions_left -= 1
                self.causes.append(
                    (fpath, f'Unknown field: did you mean "{hint}"?' if hint else "Unknown field")
                )
            elif value is None:
                continue  # null is "not set", as in Kubernetes.
            elif isinstance(kind, _Validated):
                out[key] = value
            elif isinstance(kind, _Unsupported):
                if not _is_empty(value) and not _is_default(value, kind.defaults):
                    self.forbidden(fpath, _NOT_SUPPORTED)
            elif isinstance(kind, _Ignored):
                self.plain(value, fpath)
                if not _is_empty(value):
                    self.warn(fpath, kind.reason)
            elif not _is_empty(value):  # _Dropped
                self.warn(fpath, kind.reason)
        return out

    def plain(self, value: object, path: str) -> None:
        """An ignored subtree is kept in the manifest: it must be JSON-like data."""
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    self.invalid(path, k, "field names must be strings")
                elif self.text(k, path):
                    self.plain(v, f"{path}[{_path_key(k)}]")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.plain(v, f"{path}[{i}]")
        elif isinstance(value, str):
            self.text(value, path)
        elif isinstance(value, bool) or value is None:
            pass
        elif isinstance(value, int):
            if not -(2**63) <= value <= INT64_MAX:
                self.invalid(path, value, "must fit in a 64-bit signed integer")
        elif isinstance(value, float):
            if not math.isfinite(value):
                self.invalid(path, value, "must be a finite number")
        elif not isinstance(value, datetime.date):
            self.invalid(path, value, "must be a string, number, boolean, list or object")

    def text(self, value: str, path: str) -> bool:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.invalid(path, value, "must be valid Unicode (no unpaired surrogates)")
            return False
        return True

    def string(self, value: object, path: str, *, exec_safe: bool = False) -> str | None:
        if not isinstance(value, str):
            self.invalid(path, value, "must be a string")
            return None
        if not self.text(value, path):
            return None
        if exec_safe and "\0" in value:
            self.invalid(path, value, "must not contain NUL characters")
            return None
        return value

    def integer(self, value: object, path: str) -> int | None:
        if not isinstance(value, int) or isinstance(value, bool):
            self.invalid(path, value, "must be an integer")
            return None
        if not -(2**63) <= value <= INT64_MAX:
            self.invalid(path, value, "must fit in a 64-bit signed integer")
            return None
        return value

    def boolean(self, value: object, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.invalid(path, value, "must be a boolean")
            return None
        return value

    def strings(self, value: object, path: str) -> tuple[str, ...] | None:
        if not isinstance(value, list):
            self.invalid(path, value, "must be a list of strings")
            return None
        items = [self.string(v, f"{path}[{i}]", exec_safe=True) for i, v in enumerate(value)]
        return tuple(s for s in items if s is not None) or None

    def string_map(self, value: object, path: str) -> dict[str, str]:
        out: dict[str, str] = {}
        if not isinstance(value, dict):
            self.invalid(path, value, "must be an object")
            return out
        for k, v in value.items():
            if not isinstance(k, str):
                self.invalid(path, k, "keys must be strings")
                continue
            s = self.string(v, f"{path}[{_path_key(k)}]") if self.text(k, path) else None
            if s is not None:
                out[k] = s
        return out

    # Names (apimachinery util/validation).
    def dns_label(self, value: str, path: str) -> None:
        if len(value) > 63:
            self.invalid(path, value, "must be no more than 63 characters")
        if not _DNS1123_LABEL_RE.fullmatch(value):
            self.invalid(path, value, _DNS1123_LABEL_MSG)

    def dns_subdomain(self, value: str, path: str, shown: str | None = None) -> None:
        if len(value) > 253:
            self.invalid(path, shown or value, "must be no more than 253 characters")
        if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
            self.invalid(path, shown or value, _DNS1123_SUBDOMAIN_MSG)

    def qualified_name(self, value: str, path: str, shown: str) -> None:
        parts = value.split("/")
        if len(parts) > 2:
            self.invalid(
                path,
                shown,
                f"a qualified name {_QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix "
                "and '/' (e.g. 'example.com/MyName')",
            )
            return
        name = parts[-1]
        if len(parts) == 2:
            prefix = parts[0]
            if not prefix:
                self.invalid(path, shown, "prefix part must be non-empty")
            else:
                if len(prefix) > 253:
                    self.invalid(path, shown, "prefix part must be no more than 253 characters")
                if not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix):
                    self.invalid(path, shown, f"prefix part {_DNS1123_SUBDOMAIN_MSG}")
        if not name:
            self.invalid(path, shown, "name part must be non-empty")
        elif len(name) > 63:
            self.invalid(path, shown, "name part must be no more than 63 characters")
        if not _QUALIFIED_NAME_RE.fullmatch(name):
            self.invalid(path, shown, f"name part {_QUALIFIED_NAME_MSG}")

    def port_name(self, value: str, path: str) -> None:
        # apimachinery IsValidPortName (IANA_SVC_NAME, RFC 6335).
        if len(value) > 15:
            self.invalid(path, value, "must be no more than 15 characters")
        if not _PORT_NAME_CHARSET_RE.fullmatch(value):
            self.invalid(
                path,
                value,
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            )
        if not re.search("[a-z]", value):
            self.invalid(path, value, "must contain at least one letter (a-z)")
        if "--" in value:
            self.invalid(path, value, "must not contain consecutive hyphens (--)")
        if value.startswith("-") or value.endswith("-"):
            self.invalid(path, value, "must not begin or end with a hyphen (-)")

    # The Pod.
    def pod(self, obj: object) -> PodSpec | None:
        top = self.fields(obj, "", _TOP_FIELDS)
        if top is None:
            return None
        api_version = top.get("apiVersion")
        if api_version is None:
            self.required("apiVersion")
        elif self.string(api_version, "apiVersion") is not None and api_version != "v1":
            self.unsupported("apiVersion", api_version, ("v1",))
        kind = top.get("kind")
        if kind is None:
            self.required("kind")
        elif self.string(kind, "kind") is not None and kind != "Pod":
            self.unsupported("kind", kind, ("Pod",))

        meta = self.fields(top.get("metadata", {}), "metadata", _METADATA_FIELDS) or {}
        name = self.pod_name(meta)
        namespace = DEFAULT_NAMESPACE
        if "namespace" in meta:
            ns = self.string(meta["namespace"], "metadata.namespace")
            if ns:
                self.dns_label(ns, "metadata.namespace")
                namespace = ns
        uid = ""
        if "uid" in meta:
            given = self.string(meta["uid"], "metadata.uid")
            if given and not _UID_RE.fullmatch(given):
                self.invalid(
                    "metadata.uid",
                    given,
                    "must be 1 to 128 alphanumeric characters, '-', '_' or '.', "
                    "starting with an alphanumeric character",
                )
            uid = given or ""
        labels = self.labels(meta.get("labels"), "metadata.labels")
        annotations = self.annotations(meta.get("annotations"), "metadata.annotations")

        if "spec" not in top:
            self.required("spec")
            return None
        spec = self.fields(top["spec"], "spec", _POD_SPEC_FIELDS)
        if spec is None:
            return None
        if "securityContext" in spec:
            self.pod_security = self.fields(
                spec["securityContext"], "spec.securityContext", _POD_SECURITY_FIELDS
            )
            self.pod_context = self.pod_security_context(
                self.pod_security or {}, "spec.securityContext"
            )
        init_containers, containers = self.containers(spec)

        restart_policy = "Always"
        if "restartPolicy" in spec:
            rp = self.string(spec["restartPolicy"], "spec.restartPolicy")
            if rp and rp not in RESTART_POLICIES:
                self.unsupported("spec.restartPolicy", rp, RESTART_POLICIES)
            elif rp:
                restart_policy = rp
        grace = DEFAULT_GRACE_SECONDS
        if "terminationGracePeriodSeconds" in spec:
            path = "spec.terminationGracePeriodSeconds"
            n = self.integer(spec["terminationGracePeriodSeconds"], path)
            if n is not None and n < 0:
                self.invalid(path, n, "must be greater than or equal to 0")
            elif n is not None:
                grace = n
        hostname = None
        if "hostname" in spec:
            hostname = self.string(spec["hostname"], "spec.hostname") or None
            if hostname:
                self.dns_label(hostname, "spec.hostname")
        deadline = None
        if "activeDeadlineSeconds" in spec:
            path = "spec.activeDeadlineSeconds"
            n = self.integer(spec["activeDeadlineSeconds"], path)
            if n is not None and n <= 0:
                self.invalid(path, n, "must be greater than 0")
            elif n is not None:
                deadline = n
        share = False
        if "shareProcessNamespace" in spec:
            share = bool(self.boolean(spec["shareProcessNamespace"], "spec.shareProcessNamespace"))
        host = {
            field: bool(self.boolean(spec[field], f"spec.{field}")) if field in spec else False
            for field in ("hostNetwork", "hostPID", "hostIPC")
        }
        if share and host["hostPID"]:
            self.invalid(
                "spec.shareProcessNamespace",
                True,
                "ShareProcessNamespace and HostPID cannot both be enabled",
            )
        dns_policy = "ClusterFirst"
        if "dnsPolicy" in spec:
            dns_policy = self.dns_policy(spec["dnsPolicy"], "spec.dnsPolicy")
        dns_config = None
        if "dnsConfig" in spec:
            dns_config = self.dns_config(spec["dnsConfig"], "spec.dnsConfig")
        if dns_policy == "None" and dns_config is None:
            self.required("spec.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None")
        volumes = self.volumes(spec["volumes"], "spec.volumes") if "volumes" in spec else ()
        names = {v.name for v in volumes}
        for i, c in enumerate(init_containers + containers):
            field = "initContainers" if i < len(init_containers) else "containers"
            index = i if i < len(init_containers) else i - len(init_containers)
            for j, m in enumerate(c.volume_mounts):
                if m.name not in names:
                    self.causes.append(
                        (f"spec.{field}[{index}].volumeMounts[{j}].name", f'Not found: "{m.name}"')
                    )
        aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()
        if "hostAliases" in spec:
            aliases = self.host_aliases(spec["hostAliases"], "spec.hostAliases")
        if "resources" in spec:
            self.fields(spec["resources"], "spec.resources", _POD_RESOURCES_FIELDS)
        subdomain = None
        if "subdomain" in spec:
            subdomain = self.string(spec["subdomain"], "spec.subdomain") or None
            if subdomain:
                self.dns_label(subdomain, "spec.subdomain")
        sysctls: tuple[tuple[str, str], ...] = ()
        if self.pod_security is not None and "sysctls" in self.pod_security:
            sysctls = self.sysctls(self.pod_security["sysctls"], "spec.securityContext.sysctls")

        return PodSpec(
            name=name,
            namespace=namespace,
            uid=uid or str(uuid.uuid4()),
            labels=tuple(sorted(labels.items())),
            annotations=tuple(sorted(annotations.items())),
            containers=containers,
            init_containers=init_containers,
            restart_policy=restart_policy,
            termination_grace_period_seconds=grace,
            hostname=hostname,
            share_process_namespace=share,
            host_network=host["hostNetwork"],
            host_pid=host["hostPID"],
            host_ipc=host["hostIPC"],
            active_deadline_seconds=deadline,
            subdomain=subdomain,
            sysctls=sysctls,
            volumes=volumes,
            host_aliases=aliases,
            dns_policy=dns_policy,
            dns_config=dns_config,
        )

    # Volumes and the files a container gets (issue 4).
    def volumes(self, value: object, path: str) -> tuple[Volume, ...]:
        if not isinstance(value, list):
            self.invalid(path, value, "must be a list")
            return ()
        out: list[Volume] = []
        seen: set[str] = set()
        for i, item in enumerate(value):
            ipath = f"{path}[{i}]"
            f = self.fields(item, ipath, _VOLUME_FIELDS)
            if f is None:
                continue
            name = self.string(f.get("name", ""), f"{ipath}.name") or ""
            if not name:
                self.required(f"{ipath}.name")
            else:
                self.dns_label(name, f"{ipath}.name")
                if name in seen:
                    self.duplicate(f"{ipath}.name", name)
                seen.add(name)
            sources = [s for s in _VOLUME_SOURCES if s in f]
            if len(sources) != 1:
                if sources:
                    self.forbidden(
                        f"{ipath}.{sources[1]}", "may not specify more than 1 volume type"
                    )
                else:
                    self.required(ipath, "must specify a volume type (emptyDir or hostPath)")
                continue
            if sources[0] == "emptyDir":
                e = self.fields(f["emptyDir"], f"{ipath}.emptyDir", _EMPTY_DIR_FIELDS) or {}
                medium = self.string(e.get("medium", ""), f"{ipath}.emptyDir.medium") or ""
                if medium not in ("", "Memory"):
                    self.unsupported(f"{ipath}.emptyDir.medium", medium, ("", "Memory"))
                limit = None
                if "sizeLimit" in e:
                    limit = self.quantity(e["sizeLimit"], f"{ipath}.emptyDir.sizeLimit")
                out.append(Volume(name, "emptyDir", medium=medium, size_limit=limit))
            else:
                h = self.fields(f["hostPath"], f"{ipath}.hostPath", _HOST_PATH_FIELDS) or {}
                hp = self.string(h.get("path", ""), f"{ipath}.hostPath.path", exec_safe=True)
                if not hp:
                    self.required(f"{ipath}.hostPath.path")
                elif not hp.startswith("/"):
                    self.invalid(f"{ipath}.hostPath.path", hp, "must be an absolute path")
                elif ".." in hp.split("/"):
                    self.invalid(f"{ipath}.hostPath.path", hp, "must not contain '..'")
                kind = self.string(h.get("type", ""), f"{ipath}.hostPath.type") or ""
                if kind not in HOST_PATH_TYPES:
                    self.unsupported(f"{ipath}.hostPath.type", kind, HOST_PATH_TYPES[1:])
                out.append(Volume(name, "hostPath", path=hp or "", type=kind))
        return tuple(out)

    def quantity(self, value: object, path: str) -> int | None:
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(text, str) or not (m := _QUANTITY_RE.match(text)):
            self.invalid(path, value, "must be a quantity (e.g. 128Mi, 1Gi, 500M)")
            return None
        return int(float(m.group(1)) * _QUANTITY_FACTORS[m.group(2)])

    def volume_mounts(self, value: object, path: str) -> tuple[VolumeMount, ...]:
        if not isinstance(value, list):
            self.invalid(path, value, "must be a list")
            return ()
        out: list[VolumeMount] = []
        seen: set[str] = set()
        for i, item in enumerate(value):
            ipath = f"{path}[{i}]"
            f = self.fields(item, ipath, _VOLUME_MOUNT_FIELDS)
            if f is None:
                continue
            name = self.string(f.get("name", ""), f"{ipath}.name") or ""
            if not name:
                self.required(f"{ipath}.name")
            mp = self.string(f.get("mountPath", ""), f"{ipath}.mountPath", exec_safe=True) or ""
            if not mp:
                self.required(f"{ipath}.mountPath")
            elif not mp.startswith("/"):
                self.invalid(f"{ipath}.mountPath", mp, "must be an absolute path")
            elif mp in seen:
                self.invalid(f"{ipath}.mountPath", mp, "must be unique")
            seen.add(mp)
            ro = (
                bool(self.boolean(f["readOnly"], f"{ipath}.readOnly")) if "readOnly" in f else False
            )
            sp = self.string(f.get("subPath", ""), f"{ipath}.subPath", exec_safe=True) or ""
            if sp.startswith("/"):
                self.invalid(f"{ipath}.subPath", sp, "must be a relative path")
            elif ".." in sp.split("/"):
                self.invalid(f"{ipath}.subPath", sp, "must not contain '..'")
            out.append(VolumeMount(name, mp.rstrip("/") or "/", ro, sp.strip("/")))
        return tuple(out)

    def host_aliases(self, value: object, path: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        if not isinstance(value, list):
            self.invalid(path, value, "must be a list")
            return ()
        out = []
        for i, item in enumerate(value):
            ipath = f"{path}[{i}]"
            f = self.fields(item, ipath, _HOST_ALIAS_FIELDS)
            if f is None:
                continue
            ip = self.string(f.get("ip", ""), f"{ipath}.ip") or ""
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                self.invalid(f"{ipath}.ip", ip, "must be a valid IP address")
            names = self.strings(f.get("hostnames", []), f"{ipath}.hostnames") or ()
            for j, h in enumerate(names):
                self.dns_subdomain(h, f"{ipath}.hostnames[{j}]")
            out.append((ip, names))
        return tuple(out)

    def dns_config(
        self, value: object, path: str
    ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None:
        f = self.fields(value, path, _DNS_CONFIG_FIELDS)
        if f is None:
            return None
        servers = self.strings(f.get("nameservers", []), f"{path}.nameservers") or ()
        for i, s in enumerate(servers):
            try:
                ipaddress.ip_address(s)
            except ValueError:
                self.invalid(f"{path}.nameservers[{i}]", s, "must be a valid IP address")
        if len(servers) > 3:
            self.invalid(f"{path}.nameservers", servers, "must not have more than 3 nameservers")
        searches = self.strings(f.get("searches", []), f"{path}.searches") or ()
        options = []
        opts = f.get("options", [])
        if not isinstance(opts, list):
            self.invalid(f"{path}.options", opts, "must be a list")
            opts = []
        for i, item in enumerate(opts):
            o = self.fields(item, f"{path}.options[{i}]", _DNS_OPTION_FIELDS) or {}
            name = self.string(o.get("name", ""), f"{path}.options[{i}].name") or ""
            if not name:
                self.required(f"{path}.options[{i}].name")
                continue
            val = self.string(o["value"], f"{path}.options[{i}].value") if "value" in o else None
            options.append(f"{name}:{val}" if val else name)
        return (servers, searches, tuple(options))

    def pod_name(self, meta: dict[str, Any]) -> str:
        """metadata.name, or generateName plus a random suffix as the API server makes it.
        Both are checked when given (apimachinery ValidateObjectMeta): both are kept."""
        base = ""
        if "generateName" in meta:
            path = "metadata.generateName"
            base = self.string(meta["generateName"], path) or ""
            # NameIsDNSSubdomain(prefix=true): a trailing '-' is fine in a prefix.
            masked = base[:-1] + "a" if base.endswith("-") else base
            if base and not self.checked(self.dns_subdomain, masked, path, base):
                base = ""
        if "name" in meta:
            name = self.string(meta["name"], "metadata.name")
            if name is None:
                return ""  # reported
            if name:
                self.dns_subdomain(name, "metadata.name")
                return name
        if not base:
            if "generateName" not in meta or meta["generateName"] == "":
                self.required("metadata.name", "name or generateName is required")
            return ""
        return base[:_MAX_GENERATE_NAME_BASE] + _random_suffix()

    def checked(self, check: Callable[[str, str, str], None], *args: str) -> bool:
        """Run `check`; whether it found nothing."""
        before = len(self.causes)
        check(*args)
        return len(self.causes) == before

    def labels(self, value: object, path: str) -> dict[str, str]:
        if value is None:
            return {}
        out = self.string_map(value, path)
        for k, v in out.items():
            self.qualified_name(k, path, k)
            if len(v) > 63:
                self.invalid(path, v, "must be no more than 63 characters")
            if not _LABEL_VALUE_RE.fullmatch(v):
                self.invalid(path, v, _LABEL_VALUE_MSG)
        return out

    def annotations(self, value: object, path: str) -> dict[str, str]:
        if value is None:
            return {}
        out = self.string_map(value, path)
        total = 0
        for k, v in out.items():
            self.qualified_name(k.lower(), path, k)
            total += len(k.encode()) + len(v.encode())
        if total > MAX_ANNOTATIONS_BYTES:
            self.causes.append((path, f"Too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes"))
        return out

    def dns_policy(self, value: object, path: str) -> str:
        # ClusterFirst is the default; with no cluster DNS it means the host's resolver, which
        # is what `Default` asks for too; `None` takes everything from dnsConfig.
        policy = self.string(value, path)
        if not policy or policy == "ClusterFirst":
            return "ClusterFirst"
        if policy == "Default":
            self.warn(path, "no cluster DNS on a single host; pods use the host's resolver")
        elif policy == "None":
            pass
        elif policy in DNS_POLICIES:
            self.forbidden(path, f'"{policy}": {_NOT_SUPPORTED}')
        else:
            self.unsupported(path, policy, DNS_POLICIES)
        return policy

    def containers(
        self, spec: dict[str, Any]
    ) -> tuple[tuple[ContainerSpec, ...], tuple[ContainerSpec, ...]]:
        seen: set[str] = set()
        init: list[ContainerSpec] = []
        main: list[ContainerSpec] = []
        for field, out in (("initContainers", init), ("containers", main)):
            path = f"spec.{field}"
            items = spec.get(field)
            if items is None or items == []:
                if field == "containers":
                    self.required(path)
                continue
            if not isinstance(items, list):
                self.invalid(path, items, "must be a list")
                continue
            for i, item in enumerate(items):
                c = self.container(item, f"{path}[{i}]", seen, init=field == "initContainers")
                if c is not None:
                    out.append(c)
        return tuple(init), tuple(main)

    def container(
        self, obj: object, path: str, seen: set[str], *, init: bool = False
    ) -> ContainerSpec | None:
        f = self.fields(obj, path, _CONTAINER_FIELDS)
        if f is None:
            return None
        name = ""
        if "name" not in f or f["name"] == "":
            self.required(f"{path}.name")
        elif (s := self.string(f["name"], f"{path}.name")) is not None:
            name = s
            self.dns_label(name, f"{path}.name")
            if name in seen:
                self.duplicate(f"{path}.name", name)
            seen.add(name)
        image = None
        if "image" in f and (s := self.string(f["image"], f"{path}.image")) is not None:
            if not s:
                self.invalid(
                    f"{path}.image",
                    s,
                    "must not be empty (leave image out to use the host's files)",
                )
            elif s != s.strip():
                self.invalid(f"{path}.image", s, "must not have leading or trailing whitespace")
            image = s
        before = len(self.causes)
        command = self.strings(f["command"], f"{path}.command") if "command" in f else None
        args = self.strings(f["args"], f"{path}.args") if "args" in f else None
        # No image config can supply an entrypoint yet; an image container gets one later
        # from the image store. (Bad entries in command/args are reported already.)
        if image is None and not command and not args and len(self.causes) == before:
            self.required(f"{path}.command", "a container without an image needs command or args")
        working_dir = None
        if "workingDir" in f:
            wd = self.string(f["workingDir"], f"{path}.workingDir", exec_safe=True)
            if wd and not wd.startswith("/"):
                self.invalid(f"{path}.workingDir", wd, "must be an absolute path")
            working_dir = wd or None
        env = self.env(f["env"], f"{path}.env") if "env" in f else ()
        ports, host_ports = self.ports(f["ports"], f"{path}.ports") if "ports" in f else ((), ())
        cpu_limit = memory_limit = None
        if "resources" in f:
            res = self.fields(f["resources"], f"{path}.resources", _RESOURCES_FIELDS)
            if res and "limits" in res:
                cpu_limit, memory_limit = self.limits(res["limits"], f"{path}.resources.limits")
        security, read_only_root = self.pod_context, False
        if "securityContext" in f:
            security, read_only_root = self.container_security(
                f["securityContext"], f"{path}.securityContext"
            )
        restart_policy = None
        if "restartPolicy" in f:
            rp = self.string(f["restartPolicy"], f"{path}.restartPolicy")
            if rp and not init:
                # Kubernetes before container restart rules: only init containers take one.
                self.forbidden(f"{path}.restartPolicy", "may not be set for non-init containers")
            elif rp and rp != "Always":
                self.unsupported(f"{path}.restartPolicy", rp, ("Always",))
            restart_policy = rp or None
        sidecar = restart_policy == "Always"
        probes: dict[str, Probe | None] = {}
        for key in ("livenessProbe", "readinessProbe", "startupProbe"):
            probes[key] = None
            if key in f:
                if init and not sidecar:
                    self.forbidden(
                        f"{path}.{key}",
                        "may not be set for init containers without restartPolicy=Always",
                    )
                    continue
                probes[key] = self.probe(f[key], f"{path}.{key}", key)
        post_start = pre_stop = None
        if "lifecycle" in f:
            if init and not sidecar:
                self.forbidden(
                    f"{path}.lifecycle",
                    "may not be set for init containers without restartPolicy=Always",
                )
            else:
                post_start, pre_stop = self.lifecycle(f["lifecycle"], f"{path}.lifecycle")
        message_path = DEFAULT_TERMINATION_MESSAGE_PATH
        if "terminationMessagePath" in f:
            mpath = f"{path}.terminationMessagePath"
            mp = self.string(f["terminationMessagePath"], mpath, exec_safe=True)
            if mp is not None and not mp.startswith("/"):
                self.invalid(mpath, mp, "must be an absolute path")
            elif mp is not None and len(mp) > 4096:
                self.invalid(mpath, mp, "must not be greater than 4096 characters")
            elif mp:
                message_path = mp
        message_policy = "File"
        if "terminationMessagePolicy" in f:
            mpol = f"{path}.terminationMessagePolicy"
            pol = self.string(f["terminationMessagePolicy"], mpol)
            if pol and pol not in TERMINATION_MESSAGE_POLICIES:
                self.unsupported(mpol, pol, TERMINATION_MESSAGE_POLICIES)
            elif pol:
                message_policy = pol
        mounts = (
            self.volume_mounts(f["volumeMounts"], f"{path}.volumeMounts")
            if "volumeMounts" in f
            else ()
        )
        return ContainerSpec(
            name=name,
            image=image,
            volume_mounts=mounts,
            read_only_root_filesystem=read_only_root,
            command=command,
            args=args,
            env=env,
            working_dir=working_dir,
            ports=ports,
            liveness_probe=probes["livenessProbe"],
            readiness_probe=probes["readinessProbe"],
            startup_probe=probes["startupProbe"],
            post_start=post_start,
            pre_stop=pre_stop,
            restart_policy=restart_policy,
            termination_message_path=message_path,
            termination_message_policy=message_policy,
            security=security,
            cpu_limit_millis=cpu_limit,
            memory_limit_bytes=memory_limit,
            host_ports=host_ports,
        )

    # Probes and hooks (pkg/apis/core/validation: validateProbe, validateHandler).
    def probe(self, value: object, path: str, kind: str) -> Probe | None:
        f = self.fields(value, path, _PROBE_FIELDS)
        if f is None:
            return None
        handler = self.handler(f, path, ("exec", "httpGet", "tcpSocket", "grpc"))
        numbers: dict[str, int] = {}
        for key, default in (
            ("initialDelaySeconds", 0),
            ("timeoutSeconds", 1),
            ("periodSeconds", 10),
            ("successThreshold", 1),
            ("failureThreshold", 3),
        ):
            n = self.integer(f[key], f"{path}.{key}") if key in f else None
            if n is not None and n < 0:
                self.invalid(f"{path}.{key}", n, "must be greater than or equal to 0")
                n = None
            # Kubernetes defaults a zero (unset) timeout, period and thresholds.
            numbers[key] = n if n else default
        if kind != "readinessProbe" and numbers["successThreshold"] != 1:
            self.invalid(f"{path}.successThreshold", numbers["successThreshold"], "must be 1")
        grace = None
        if "terminationGracePeriodSeconds" in f:
            gpath = f"{path}.terminationGracePeriodSeconds"
            grace = self.integer(f["terminationGracePeriodSeconds"], gpath)
            if kind == "readinessProbe" and grace is not None:
                self.invalid(gpath, grace, "must not be set for readinessProbes")
                grace = None
            elif grace is not None and grace <= 0:
                self.invalid(gpath, grace, "must be greater than 0")
                grace = None
        if handler is None:
            return None
        return Probe(
            handler=handler,
            initial_delay_seconds=numbers["initialDelaySeconds"],
            period_seconds=numbers["periodSeconds"],
            timeout_seconds=numbers["timeoutSeconds"],
            success_threshold=numbers["successThreshold"],
            failure_threshold=numbers["failureThreshold"],
            termination_grace_period_seconds=grace,
        )

    def lifecycle(self, value: object, path: str) -> tuple[Handler | None, Handler | None]:
        f = self.fields(value, path, _LIFECYCLE_FIELDS)
        if f is None:
            return None, None
        hooks: list[Handler | None] = []
        for key in ("postStart", "preStop"):
            hook = None
            if key in f:
                h = self.fields(f[key], f"{path}.{key}", _HOOK_FIELDS)
                if h is not None:
                    hook = self.handler(h, f"{path}.{key}", ("exec", "httpGet", "sleep"))
            hooks.append(hook)
        return hooks[0], hooks[1]

    def handler(self, f: dict[str, Any], path: str, kinds: tuple[str, ...]) -> Handler | None:
        given = [k for k in kinds if k in f]
        if not given:
            self.required(path, "must specify a handler type")
            return None
        if len(given) > 1:
            self.forbidden(f"{path}.{given[1]}", "may not specify more than 1 handler type")
            return None
        kind = given[0]
        hpath = f"{path}.{kind}"
        h = self.fields(f[kind], hpath, _HANDLER_FIELDS[kind])
        if h is None:
            return None
        if kind == "exec":
            if "command" not in h or h["command"] == []:
                self.required(f"{hpath}.command")
                return None
            command = self.strings(h["command"], f"{hpath}.command")
            if not command:
                return None  # its entries were reported
            return Handler("exec", command=command)
        if kind == "sleep":
            if "seconds" not in h:
                self.required(f"{hpath}.seconds")
                return None
            n = self.integer(h["seconds"], f"{hpath}.seconds")
            if n is not None and n < 0:
                self.invalid(f"{hpath}.seconds", n, "must be greater than or equal to 0")
            return Handler("sleep", seconds=n or 0) if n is not None and n >= 0 else None
        port = self.probe_port(h.get("port"), f"{hpath}.port", named=kind != "grpc")
        host = ""
        if "host" in h:
            host = self.string(h["host"], f"{hpath}.host") or ""
        if kind == "tcpSocket":
            return Handler("tcpSocket", host=host, port=port) if port is not None else None
        if kind == "grpc":
            service = ""
            if "service" in h:
                service = self.string(h["service"], f"{hpath}.service") or ""
            return Handler("grpc", port=port, service=service) if port is not None else None
        path_ = "/"
        if "path" in h:
            path_ = self.string(h["path"], f"{hpath}.path") or "/"
        scheme = "HTTP"
        if "scheme" in h:
            sc = self.string(h["scheme"], f"{hpath}.scheme")
            if sc and sc not in HTTP_SCHEMES:
                self.unsupported(f"{hpath}.scheme", sc, HTTP_SCHEMES)
            elif sc:
                scheme = sc
        headers: list[tuple[str, str]] = []
        if "httpHeaders" in h:
            hh = h["httpHeaders"]
            if not isinstance(hh, list):
                self.invalid(f"{hpath}.httpHeaders", hh, "must be a list")
            else:
                for i, item in enumerate(hh):
                    ipath = f"{hpath}.httpHeaders[{i}]"
                    fh = self.fields(item, ipath, _HEADER_FIELDS)
                    if fh is None:
                        continue
                    hname = self.string(fh.get("name", ""), f"{ipath}.name")
                    if not hname:
                        self.required(f"{ipath}.name")
                        continue
                    if not _HEADER_NAME_RE.fullmatch(hname):
                        self.invalid(
                            f"{ipath}.name",
                            hname,
                            "a valid HTTP header must consist of alphanumeric characters or '-'",
                        )
                        continue
                    value = self.string(fh.get("value", ""), f"{ipath}.value")
                    if value is not None:
                        headers.append((hname, value))
        if port is None:
            return None
        return Handler(
            "httpGet", host=host, port=port, path=path_, scheme=scheme, headers=tuple(headers)
        )

    def probe_port(self, value: object, path: str, *, named: bool) -> int | str | None:
        if value is None:
            self.required(path)
            return None
        if isinstance(value, str) and named:
            if value.isdigit():
                value = int(value)  # an IntOrString given as a numeric string
            else:
                self.port_name(value, path)
                return value
        n = self.integer(value, path)
        if n is not None and not 1 <= n <= 65535:
            self.invalid(path, n, "must be between 1 and 65535, inclusive")
            return None
        return n

    def env(self, value: object, path: str) -> tuple[tuple[str, str], ...]:
        if not isinstance(value, list):
            self.invalid(path, value, "must be a list")
            return ()
        # Kubernetes keeps every entry and the last one of a name wins; the variable keeps the
        # position of its first definition.
        out: dict[str, str] = {}
        first: dict[str, int] = {}
        for i, item in enumerate(value):
            ipath = f"{path}[{i}]"
            f = self.fields(item, ipath, _ENV_FIELDS)
            if f is None:
                continue
            name = f.get("name")
            if name is None or name == "":
                self.required(f"{ipath}.name")
                continue
            if self.string(name, f"{ipath}.name") is None:
                continue
            if not _ENV_NAME_RE.fullmatch(name):
                self.invalid(f"{ipath}.name", name, _ENV_NAME_MSG)
                continue
            v = self.string(f.get("value", ""), f"{ipath}.value", exec_safe=True)
            if v is None:
                continue
            if name in out:
                self.warnings.append(
                    f'{ipath}.name: duplicate name "{name}" overrides {path}[{first[name]}]'
                )
            else:
                first[name] = i
            out[name] = v
        return tuple(out.items())

    def ports(
        self, value: object, path: str
    ) -> tuple[tuple[tuple[str, int], ...], tuple[HostPort, ...]]:
        """Validate the ports; return (name, containerPort) of the named ones, and the
        host ports."""
        named: list[tuple[str, int]] = []
        host: list[HostPort] = []
        if not isinstance(value, list):
            self.invalid(path, value, "must be a list")
            return (), ()
        names: set[str] = set()
        for i, item in enumerate(value):
            ipath = f"{path}[{i}]"
            f = self.fields(item, ipath, _PORT_FIELDS)
            if f is None:
                continue
            if "name" in f and (name := self.string(f["name"], f"{ipath}.name")):
                self.port_name(name, f"{ipath}.name")
                if name in names:
                    self.duplicate(f"{ipath}.name", name)
                names.add(name)
            port = f.get("containerPort")
            if port is None or (type(port) is int and port == 0):
                self.required(f"{ipath}.containerPort")
            elif (n := self.integer(port, f"{ipath}.containerPort")) is not None and not (
                1 <= n <= 65535
            ):
                self.invalid(f"{ipath}.containerPort", n, "must be between 1 and 65535, inclusive")
            proto = "TCP"
            if "protocol" in f:
                p = self.string(f["protocol"], f"{ipath}.protocol")
                if p is not None and p not in PORT_PROTOCOLS:
                    self.unsupported(f"{ipath}.protocol", p, PORT_PROTOCOLS)
                elif p:
                    proto = p
            cport: int | None = port if type(port) is int and 1 <= port <= 65535 else None
            if isinstance(f.get("name"), str) and cport is not None:
                named.append((f["name"], cport))
            hp = self.host_port(f, ipath, proto)
            if hp is not None and cport is not None:
                host.append(HostPort(hp[0], cport, proto, hp[1], f"{ipath}.hostPort"))
        return tuple(named), tuple(host)

    def host_port(self, f: dict[str, Any], path: str, proto: str) -> tuple[int, str] | None:
        """hostPort and hostIP of one port; unique per (hostIP, hostPort, protocol) in the
        pod (validation.go AccumulateUniqueHostPorts)."""
        host_ip = "0.0.0.0"
        if "hostIP" in f:
            given = self.string(f["hostIP"], f"{path}.hostIP")
            if given:
                try:
                    host_ip = str(ipaddress.ip_address(given))
                except ValueError:
                    self.invalid(f"{path}.hostIP", given, "must be a valid IP address")
        if "hostPort" not in f or (type(f["hostPort"]) is int and f["hostPort"] == 0):
            return None
        n = self.integer(f["hostPort"], f"{path}.hostPort")
        if n is None:
            return None
        if not 1 <= n <= 65535:
            self.invalid(f"{path}.hostPort", n, "must be between 1 and 65535, inclusive")
            return None
        if proto == "SCTP":
            self.forbidden(f"{path}.hostPort", "SCTP host ports are not supported")
            return None
        key = (host_ip, n, proto)
        if key in self.host_ports:
            self.duplicate(f"{path}.hostPort", f"{n}/{proto}")
            return None
        self.host_ports[key] = f"{path}.hostPort"
        return n, host_ip

    def limits(self, value: object, path: str) -> tuple[int | None, int | None]:
        """resources.limits: cpu (millicores) and memory (bytes); 0 means no limit."""
        cpu = memory = None
        if not isinstance(value, dict):
            self.invalid(path, value, "must be an object")
            return None, None
        for key, raw in value.items():
            kpath = f"{path}[{_path_key(str(key))}]"
            if key not in LIMIT_RESOURCES:
                self.forbidden(kpath, f"{_NOT_SUPPORTED}: only cpu and memory limits are")
                continue
            text = str(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else raw
            if not isinstance(text, str):
                self.invalid(kpath, raw, "must be a quantity")
                continue
            n = cpu_millis(text) if key == "cpu" else memory_bytes(text)
            if n is None:
                self.invalid(
                    kpath,
                    raw,
                    "must match the regular expression "
                    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                )
            elif n < 0:
                self.invalid(kpath, raw, "must be greater than or equal to 0")
            elif key == "cpu":
                cpu = n or None
            else:
                memory = n or None
        return cpu, memory

    # securityContext (validation.go ValidatePodSecurityContext, ValidateSecurityContext).
    def user_id(self, f: dict[str, Any], key: str, path: str) -> int | None:
        if key not in f:
            return None
        n = self.integer(f[key], f"{path}.{key}")
        if n is not None and not 0 <= n <= MAX_ID:
            self.invalid(f"{path}.{key}", n, f"must be between 0 and {MAX_ID}, inclusive")
            return None
        return n

    def profiles(self, f: dict[str, Any], path: str) -> None:
        """seccompProfile and appArmorProfile: only Unconfined, what supd applies."""
        for key in ("seccompProfile", "appArmorProfile"):
            if key not in f:
                continue
            prof = self.fields(f[key], f"{path}.{key}", _PROFILE_FIELDS)
            if prof is None:
                continue
            kind = self.string(prof.get("type"), f"{path}.{key}.type") if "type" in prof else None
            if kind is None:
                if "type" not in prof:
                    self.required(f"{path}.{key}.type")
            elif kind not in PROFILE_TYPES:
                self.unsupported(f"{path}.{key}.type", kind, PROFILE_TYPES)
            elif kind != "Unconfined":
                self.forbidden(
                    f"{path}.{key}.type",
                    f'"{kind}": {_NOT_SUPPORTED}: supd applies no '
                    f"{'seccomp filter' if key == 'seccompProfile' else 'AppArmor profile'}; "
                    "use type: Unconfined",
                )

    def pod_security_context(self, f: dict[str, Any], path: str) -> SecurityContext:
        groups: list[int] = []
        if "supplementalGroups" in f:
            gpath = f"{path}.supplementalGroups"
            items = f["supplementalGroups"]
            if not isinstance(items, list):
                self.invalid(gpath, items, "must be a list")
            else:
                for i, g in enumerate(items):
                    n = self.integer(g, f"{gpath}[{i}]")
                    if n is not None and not 0 <= n <= MAX_ID:
                        self.invalid(
                            f"{gpath}[{i}]", n, f"must be between 0 and {MAX_ID}, inclusive"
                        )
                    elif n is not None:
                        groups.append(n)
        fs_group = self.user_id(f, "fsGroup", path)
        if fs_group is not None and fs_group not in groups:
            groups.append(fs_group)  # kubelet adds fsGroup to every container's groups
        strict = False
        if "supplementalGroupsPolicy" in f:
            ppath = f"{path}.supplementalGroupsPolicy"
            pol = self.string(f["supplementalGroupsPolicy"], ppath)
            if pol and pol not in SUPPLEMENTAL_GROUPS_POLICIES:
                self.unsupported(ppath, pol, SUPPLEMENTAL_GROUPS_POLICIES)
            strict = pol == "Strict"
        non_root = False
        if "runAsNonRoot" in f:
            non_root = bool(self.boolean(f["runAsNonRoot"], f"{path}.runAsNonRoot"))
        self.profiles(f, path)
        return SecurityContext(
            run_as_user=self.user_id(f, "runAsUser", path),
            run_as_group=self.user_id(f, "runAsGroup", path),
            run_as_non_root=non_root,
            supplemental_groups=tuple(groups),
            supplemental_groups_strict=strict,
        )

    def container_security(self, value: object, path: str) -> tuple[SecurityContext, bool]:
        """The container's effective context (its fields over the pod's), and its
        readOnlyRootFilesystem."""
        base = self.pod_context
        f = self.fields(value, path, _CONTAINER_SECURITY_FIELDS)
        if f is None:
            return base, False
        read_only_root = False
        if "readOnlyRootFilesystem" in f:
            ro = self.boolean(f["readOnlyRootFilesystem"], f"{path}.readOnlyRootFilesystem")
            read_only_root = bool(ro)
        changes: dict[str, Any] = {}
        for key, attr in (("runAsUser", "run_as_user"), ("runAsGroup", "run_as_group")):
            n = self.user_id(f, key, path)
            if n is not None:
                changes[attr] = n
        for key, attr in (
            ("runAsNonRoot", "run_as_non_root"),
            ("privileged", "privileged"),
            ("allowPrivilegeEscalation", "allow_privilege_escalation"),
        ):
            if key in f and (b := self.boolean(f[key], f"{path}.{key}")) is not None:
                changes[attr] = b
        if "capabilities" in f:
            caps = self.fields(f["capabilities"], f"{path}.capabilities", _CAPABILITIES_FIELDS)
            for key in ("add", "drop"):
                if caps and key in caps:
                    changes[f"capabilities_{key}"] = self.capabilities(
                        caps[key], f"{path}.capabilities.{key}"
                    )
        if "procMount" in f:
            pm = self.string(f["procMount"], f"{path}.procMount")
            if pm and pm not in PROC_MOUNT_TYPES:
                self.unsupported(f"{path}.procMount", pm, PROC_MOUNT_TYPES)
            elif pm == "Unmasked":
                self.forbidden(
                    f"{path}.procMount", f'"Unmasked": {_NOT_SUPPORTED} (it needs hostUsers: false)'
                )
        self.profiles(f, path)
        sc = dataclasses.replace(base, **changes)
        if sc.allow_privilege_escalation is False:
            if sc.privileged:
                self.invalid(
                    path,
                    value,
                    "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
                )
            if "CAP_SYS_ADMIN" in sc.capabilities_add:
                self.invalid(
                    path,
                    value,
                    "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` "
                    "CAP_SYS_ADMIN",
                )
        return sc, read_only_root

    def capabilities(self, value: object, path: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            self.invalid(path, value, "must be a list")
            return ()
        out: list[str] = []
        for i, item in enumerate(value):
            name = self.string(item, f"{path}[{i}]")
            if name is None:
                continue
            full = capability_name(name)
            if full is None:
                self.invalid(f"{path}[{i}]", name, "not a Linux capability (capabilities(7))")
            elif full not in out:
                out.append(full)
        return tuple(out)

    def sysctls(self, value: object, path: str) -> tuple[tuple[str, str], ...]:
        """Namespaced sysctls only: they are set in the pod's namespaces; any other would
        change the host (kubelet refuses those too, as SysctlForbidden)."""
        if not isinstance(value, list):
            self.invalid(path, value, "must be a list")
            return ()
        out: list[tuple[str, str]] = []
        seen: set[str] = set()
        for i, item in enumerate(value):
            ipath = f"{path}[{i}]"
            f = self.fields(item, ipath, _SYSCTL_FIELDS)
            if f is None:
                continue
            if "name" not in f or f["name"] == "":
                self.required(f"{ipath}.name")
                continue
            name = self.string(f["name"], f"{ipath}.name")
            if name is None:
                continue
            if len(name) > 253 or not _SYSCTL_RE.fullmatch(name):
                self.invalid(
                    f"{ipath}.name",
                    name,
                    f"must have at most 253 characters and match regex {_SYSCTL_RE.pattern}",
                )
                continue
            key = normalize_sysctl(name)
            if key in seen:
                self.duplicate(f"{ipath}.name", name)
                continue
            seen.add(key)
            if sysctl_namespace(name) is None:
                self.forbidden(
                    f"{ipath}.name",
                    f"{_quote(name)} is not a namespaced sysctl: setting it would change the "
                    "host (only kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* and net.* are)",
                )
                continue
            if "value" not in f:
                self.required(f"{ipath}.value")
                continue
            v = self.string(f["value"], f"{ipath}.value", exec_safe=True)
            if v is not None:
                out.append((name, v))
        return tuple(out)


# --- shape guard and normalization ------------------------------------------------------------


def _normalize(value: Any) -> Any:
    """A plain, JSON-able copy: nulls in objects dropped (null means unset), numbers and
    timestamps in ignored fields turned to the strings Kubernetes would hold."""
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _normalized_manifest(obj: dict[str, Any], pod: PodSpec) -> dict[str, Any]:
    manifest: dict[str, Any] = _normalize({k: v for k, v in obj.items() if k != "status"})
    meta = manifest.get("metadata")
    if not isinstance(meta, dict):
        meta = manifest["metadata"] = {}
    for key, kind in _METADATA_FIELDS.items():
        if isinstance(kind, _Dropped):
            meta.pop(key, None)
    meta["name"] = pod.name
    meta["namespace"] = pod.namespace
    meta["uid"] = pod.uid
    spec = manifest["spec"]
    spec["restartPolicy"] = pod.restart_policy
    spec["terminationGracePeriodSeconds"] = pod.termination_grace_period_seconds
    return manifest


# --- public API -------------------------------------------------------------------------------


def parse_pod(obj: object, source: str = "", index: int | None = None) -> tuple[PodSpec, list[str]]:
    """Validate one decoded Pod object. Returns the spec and warnings for ignored fields
    ("spec.nodeSelector: ignored (no meaning on a single host)"); raises ManifestError with
    every cause found. `index` is the 0-based position of the document in its file, shown
    1-based in the error's source: "pod.yaml (document 2)"."""
    label = source if index is None else f"{source} (document {index + 1})".lstrip()
    problem = _shape_problem(obj)
    if problem:
        raise ManifestError(label, [("", problem)])
    v = _Validator()
    pod = v.pod(obj)
    if v.causes or pod is None or not isinstance(obj, dict):
        raise ManifestError(label, _capped(v.causes or [("", "Invalid value: not a Pod")]))
    return dataclasses.replace(pod, manifest=_normalized_manifest(obj, pod)), v.warnings


def _capped(causes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if len(causes) <= MAX_CAUSES:
        return causes
    more = len(causes) - MAX_CAUSES
    return [*causes[:MAX_CAUSES], ("", f"and {more} more error{'s' if more > 1 else ''}")]


def _labeled_documents(text: str | bytes, source: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, where, object) for every Pod-or-whatever object in the stream, Lists expanded.
    `where` is "document 2", "item 3", "document 1, item 2" or "" (the file has one object)."""
    try:
        docs = load_all(text)
    except LOAD_ERRORS as exc:
        raise ManifestError(source, [("", _yaml_error(exc))]) from None

    several = sum(d is not None for d in docs) > 1
    out: list[tuple[str, str, dict[str, Any]]] = []
    failures: list[tuple[str, str, list[tuple[str, str]]]] = []
    for n, doc in enumerate(docs, 1):
        if doc is None:
            continue
        where = f"document {n}" if several else ""
        if not isinstance(doc, dict):
            why = f"Invalid value: {_fmt(doc)}: a document must be a mapping (an object)"
            failures.append((where, _label(source, where), [("", why)]))
            continue
        problem = _shape_problem(doc)
        if problem:
            failures.append((where, _label(source, where), [("", problem)]))
            continue
        if doc.get("apiVersion") == "v1" and doc.get("kind") in _LIST_KINDS:
            causes = _expand_list(doc, source, where, out)
            if causes:
                failures.append((where, _label(source, where), causes))
            continue
        out.append((_label(source, where), where, doc))
    if failures:
        raise _combined(source, failures)
    return out


def _expand_list(
    doc: dict[str, Any], source: str, where: str, out: list[tuple[str, str, dict[str, Any]]]
) -> list[tuple[str, str]]:
    causes: list[tuple[str, str]] = []
    for key in doc:
        if key not in _LIST_FIELDS:
            causes.append((_join("", str(key)), "Unknown field"))
    items = doc.get("items")
    if items is None:
        items = []
    if not isinstance(items, list):
        causes.append(("items", f"Invalid value: {_fmt(items)}: must be a list"))
        return causes
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            why = f"Invalid value: {_fmt(item)}: must be an object"
            causes.append((f"items[{i}]", why))
            continue
        item_where = f"{where}, item {i + 1}" if where else f"item {i + 1}"
        out.append((_label(source, item_where), item_where, item))
    return causes


def _label(source: str, where: str) -> str:
    return f"{source} ({where})".lstrip() if where else source


def _combined(source: str, failures: list[tuple[str, str, list[tuple[str, str]]]]) -> ManifestError:
    """One document's failure keeps its own source ("pod.yaml (document 2)"); several are
    reported together under the file's name, each cause prefixed with where it was."""
    if len(failures) == 1:
        _, label, causes = failures[0]
        return ManifestError(label, causes)
    merged = [
        (f"{where}: {path}" if path else where, message)
        for where, _, causes in failures
        for path, message in causes
    ]
    return ManifestError(source, _capped(merged))


def load_documents(text: str | bytes, source: str) -> list[dict[str, Any]]:
    """Decode a YAML stream: one object per document, empty documents skipped, `kind: List`
    (apiVersion v1) expanded to its items. Raises ManifestError for invalid YAML (with
    line:column) and for documents that are not mappings."""
    return [doc for _, _, doc in _labeled_documents(text, source)]


def load_pods(text: str | bytes, source: str) -> list[tuple[PodSpec, list[str]]]:
    """Decode and validate every Pod in a YAML stream. Nothing is returned unless every
    document is valid and no NAMESPACE/NAME appears twice."""
    results: list[tuple[PodSpec, list[str]]] = []
    failures: list[tuple[str, str, list[tuple[str, str]]]] = []
    seen: dict[str, str] = {}
    for label, where, doc in _labeled_documents(text, source):
        try:
            pod, warnings = parse_pod(doc, label)
        except ManifestError as exc:
            failures.append((where, label, exc.causes))
            continue
        if pod.key in seen:
            other = seen[pod.key] or source
            cause = ("metadata.name", f"Duplicate value: {_fmt(pod.key)}: also in {other}")
            failures.append((where, label, [cause]))
            continue
        seen[pod.key] = where
        results.append((pod, warnings))
    if failures:
        raise _combined(source, failures)
    return results
