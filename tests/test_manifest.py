"""Manifest parsing and validation: table-driven, no I/O, plus bounded fuzzing."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import textwrap
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor import manifest as mf
from supervisor.errors import ManifestError
from supervisor.manifest import load_documents, load_pods, parse_pod
from supervisor.spec import ContainerSpec

SHOP = """\
apiVersion: v1
kind: Pod
metadata: {name: shop, labels: {app: shop}}
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: setup
    command: [sh, -c, "echo ready > /tmp/x"]
  containers:
  - name: web
    command: [python3, -m, http.server, "8080"]
    env: [{name: A, value: "1"}]
    ports: [{containerPort: 8080}]
    imagePullPolicy: IfNotPresent
  - name: sidecar
    image: busybox
    args: [sleep, "3600"]
  nodeSelector: {disk: ssd}
"""

LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*"
    "[a-z0-9])?)*')"
)
NEEDS_COMMAND = "Required value: a container without an image needs command or args"


def base() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "command": ["true"]}]},
    }


def causes(obj: object) -> list[tuple[str, str]]:
    with pytest.raises(ManifestError) as info:
        parse_pod(obj, "t.yaml")
    assert info.value.source == "t.yaml"
    return info.value.causes


def with_(path: str, value: object) -> dict[str, Any]:
    """base() with the dotted `path` (list indexes as numbers) set to `value`."""
    obj = base()
    *parents, last = path.split(".")
    node: Any = obj
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return obj


def container(**fields: object) -> dict[str, Any]:
    return with_("spec.containers.0", {"name": "c", "command": ["true"], **fields})


def without(path: str) -> dict[str, Any]:
    obj = base()
    *parents, last = path.split(".")
    node: Any = obj
    for part in parents:
        node = node[part]
    del node[last]
    return obj


# --- the valid example ------------------------------------------------------------------------


def test_example_manifest() -> None:
    [(pod, warnings)] = load_pods(SHOP, "shop.yaml")
    assert pod.name == "shop" and pod.namespace == "default" and pod.key == "default/shop"
    assert pod.labels == (("app", "shop"),)
    assert pod.restart_policy == "OnFailure"
    assert pod.termination_grace_period_seconds == 5
    assert pod.init_containers == (
        ContainerSpec(name="setup", command=("sh", "-c", "echo ready > /tmp/x")),
    )
    web, sidecar = pod.containers
    assert web == ContainerSpec(
        name="web", command=("python3", "-m", "http.server", "8080"), env=(("A", "1"),)
    )
    assert sidecar == ContainerSpec(name="sidecar", image="busybox", args=("sleep", "3600"))
    assert sidecar.argv() == ("sleep", "3600")
    assert warnings == [
        "spec.nodeSelector: ignored (no meaning on a single host)",
        "spec.containers[0].imagePullPolicy: ignored (images come from the local image store)",
    ]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", pod.uid)
    m = pod.manifest
    assert json.loads(json.dumps(m)) == m
    assert m["metadata"] == {
        "name": "shop",
        "labels": {"app": "shop"},
        "namespace": "default",
        "uid": pod.uid,
    }
    assert m["spec"]["nodeSelector"] == {"disk": "ssd"}  # ignored, but kept as given
    assert m["spec"]["containers"][1] == {
        "name": "sidecar",
        "image": "busybox",
        "args": ["sleep", "3600"],
    }


def test_defaults_filled() -> None:
    pod, warnings = parse_pod(base())
    assert warnings == []
    assert (pod.namespace, pod.restart_policy, pod.termination_grace_period_seconds) == (
        "default",
        "Always",
        30,
    )
    assert pod.hostname is None and pod.share_process_namespace is False
    assert pod.manifest["spec"]["restartPolicy"] == "Always"
    assert pod.manifest["spec"]["terminationGracePeriodSeconds"] == 30
    assert pod.manifest["metadata"]["namespace"] == "default"


def test_optional_fields_read() -> None:
    obj = base()
    obj["metadata"].update(
        namespace="team-a",
        uid="1234-abcd",
        labels={"b": "2", "example.com/a": "1", "empty": ""},
        annotations={"note": "anything at all: {}", "Example.com/Mixed_Case": ""},
    )
    obj["spec"].update(hostname="box", shareProcessNamespace=True, restartPolicy="Never")
    obj["spec"]["terminationGracePeriodSeconds"] = 0
    obj["spec"]["containers"][0].update(
        image="docker.io/library/busybox:1.36", args=["-c", "x"], workingDir="/srv"
    )
    pod, _ = parse_pod(obj)
    assert pod.key == "team-a/p" and pod.uid == "1234-abcd"
    assert parse_pod(with_("metadata.uid", ""))[0].uid  # empty: generated
    assert pod.labels == (("b", "2"), ("empty", ""), ("example.com/a", "1"))  # sorted
    assert pod.annotations[1] == ("note", "anything at all: {}")
    assert (pod.hostname, pod.pod_hostname, pod.share_process_namespace) == ("box", "box", True)
    assert (pod.restart_policy, pod.termination_grace_period_seconds) == ("Never", 0)
    c = pod.containers[0]
    assert (c.image, c.command, c.args, c.working_dir) == (
        "docker.io/library/busybox:1.36",
        ("true",),
        ("-c", "x"),
        "/srv",
    )


def test_null_means_unset() -> None:
    obj = base()
    obj["spec"].update(restartPolicy=None, nodeSelector=None, volumes=None, hostname=None)
    obj["spec"]["containers"][0].update(image=None, env=None, livenessProbe=None)
    pod, warnings = parse_pod(obj)
    assert warnings == [] and pod.restart_policy == "Always"
    assert "volumes" not in pod.manifest["spec"]
    assert pod.manifest["spec"]["containers"][0] == {"name": "c", "command": ["true"]}


def test_equality_means_same_spec() -> None:
    a = base()
    a["metadata"]["labels"] = {"x": "1", "y": "2"}
    b = copy.deepcopy(a)
    b["metadata"]["labels"] = {"y": "2", "x": "1"}
    (pa, _), (pb, _) = parse_pod(a), parse_pod(b)
    assert pa.uid != pb.uid and pa == pb
    assert parse_pod(container(args=["x"]))[0] != pa


def test_image_container_needs_no_command() -> None:
    pod, _ = parse_pod(with_("spec.containers.0", {"name": "c", "image": "busybox"}))
    assert pod.containers[0].command is None and pod.containers[0].argv() == ()


def test_args_only_host_container() -> None:
    pod, _ = parse_pod(with_("spec.containers.0", {"name": "c", "args": ["sleep", "1"]}))
    assert pod.containers[0].argv() == ("sleep", "1")


def test_env_later_wins_with_warning() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "B"}, {"name": "A", "value": "2"}]
    pod, warnings = parse_pod(container(env=env))
    assert pod.containers[0].env == (("A", "2"), ("B", ""))
    assert warnings == [
        'spec.containers[0].env[2].name: duplicate name "A" overrides spec.containers[0].env[0]'
    ]
    # Relaxed names (Kubernetes >= 1.32): any printable ASCII but '='.
    assert parse_pod(container(env=[{"name": "my.var-1 x", "value": ""}]))[0].containers[0].env


def test_ports_informational() -> None:
    ports = [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"containerPort": 53, "protocol": "UDP", "hostPort": 0},
        {"containerPort": 9, "protocol": "SCTP", "hostIP": "127.0.0.1"},
    ]
    pod, warnings = parse_pod(container(ports=ports))
    assert warnings == []
    assert pod.containers[0].host_ports == ()
    assert pod.manifest["spec"]["containers"][0]["ports"] == ports


# --- generateName -----------------------------------------------------------------------------


def test_generate_name() -> None:
    obj = with_("metadata", {"generateName": "web-"})
    a, _ = parse_pod(obj)
    b, _ = parse_pod(obj)
    assert re.fullmatch(r"web-[bcdfghjklmnpqrstvwxz2456789]{5}", a.name)
    assert a.name != b.name or a.name == b.name  # random; the shape is what matters
    assert a.manifest["metadata"]["name"] == a.name
    assert a.manifest["metadata"]["generateName"] == "web-"


def test_generate_name_truncated_and_name_wins() -> None:
    pod, _ = parse_pod(with_("metadata", {"generateName": "a" * 70}))
    assert len(pod.name) == 63 and pod.name.startswith("a" * 58)
    pod, _ = parse_pod(with_("metadata", {"name": "fixed", "generateName": "x-"}))
    assert pod.name == "fixed"


def test_generate_name_invalid() -> None:
    assert causes(with_("metadata", {"generateName": "Web-"})) == [
        ("metadata.generateName", f'Invalid value: "Web-": {SUBDOMAIN_MSG}')
    ]
    # Checked even when name wins: both are kept in the manifest.
    assert causes(with_("metadata", {"name": "a", "generateName": 5})) == [
        ("metadata.generateName", "Invalid value: 5: must be a string")
    ]


# --- one rule, one message --------------------------------------------------------------------

ERRORS: list[tuple[str, dict[str, Any], tuple[str, str]]] = [
    ("apiVersion missing", without("apiVersion"), ("apiVersion", "Required value")),
    (
        "apiVersion wrong",
        with_("apiVersion", "apps/v1"),
        ("apiVersion", 'Unsupported value: "apps/v1": supported values: "v1"'),
    ),
    (
        "kind wrong",
        with_("kind", "Deployment"),
        ("kind", 'Unsupported value: "Deployment": supported values: "Pod"'),
    ),
    ("kind missing", without("kind"), ("kind", "Required value")),
    (
        "name missing",
        with_("metadata", {}),
        ("metadata.name", "Required value: name or generateName is required"),
    ),
    (
        "metadata missing",
        without("metadata"),
        ("metadata.name", "Required value: name or generateName is required"),
    ),
    (
        "name empty",
        with_("metadata.name", ""),
        ("metadata.name", "Required value: name or generateName is required"),
    ),
    (
        "name invalid",
        with_("metadata.name", "Web_1"),
        ("metadata.name", f'Invalid value: "Web_1": {SUBDOMAIN_MSG}'),
    ),
    (
        "name too long",
        with_("metadata.name", "a" * 254),
        ("metadata.name", f'Invalid value: "{"a" * 80}...": must be no more than 253 characters'),
    ),
    (
        "name not a string",
        with_("metadata.name", 7),
        ("metadata.name", "Invalid value: 7: must be a string"),
    ),
    (
        "namespace invalid",
        with_("metadata.namespace", "a.b"),
        ("metadata.namespace", f'Invalid value: "a.b": {LABEL_MSG}'),
    ),
    (
        "namespace too long",
        with_("metadata.namespace", "n" * 64),
        ("metadata.namespace", f'Invalid value: "{"n" * 64}": must be no more than 63 characters'),
    ),
    (
        "uid invalid",
        with_("metadata.uid", "../etc"),
        (
            "metadata.uid",
            'Invalid value: "../etc": must be 1 to 128 alphanumeric characters, '
            "'-', '_' or '.', starting with an alphanumeric character",
        ),
    ),
    (
        "label key invalid",
        with_("metadata.labels", {"-x": "1"}),
        (
            "metadata.labels",
            "Invalid value: \"-x\": name part must consist of alphanumeric characters, '-', '_' "
            "or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or "
            "'my.name',  or '123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
    ),
    (
        "label key prefix empty",
        with_("metadata.labels", {"/x": "1"}),
        ("metadata.labels", 'Invalid value: "/x": prefix part must be non-empty'),
    ),
    (
        "label key prefix invalid",
        with_("metadata.labels", {"Ex.com/x": "1"}),
        ("metadata.labels", f'Invalid value: "Ex.com/x": prefix part {SUBDOMAIN_MSG}'),
    ),
    (
        "label name part too long",
        with_("metadata.labels", {"k" * 64: "1"}),
        (
            "metadata.labels",
            f'Invalid value: "{"k" * 64}": name part must be no more than 63 characters',
        ),
    ),
    (
        "label value invalid",
        with_("metadata.labels", {"a": "b c"}),
        (
            "metadata.labels",
            'Invalid value: "b c": a valid label must be an empty string or consist of '
            "alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
            "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ),
    ),
    (
        "label value too long",
        with_("metadata.labels", {"a": "v" * 64}),
        ("metadata.labels", f'Invalid value: "{"v" * 64}": must be no more than 63 characters'),
    ),
    (
        "label value not a string",
        with_("metadata.labels", {"version": 1.0}),
        ("metadata.labels[version]", "Invalid value: 1.0: must be a string"),
    ),
    (
        "labels not an object",
        with_("metadata.labels", ["a"]),
        ("metadata.labels", 'Invalid value: ["a"]: must be an object'),
    ),
    (
        "annotation value not a string",
        with_("metadata.annotations", {"a": True}),
        ("metadata.annotations[a]", "Invalid value: true: must be a string"),
    ),
    (
        "annotations too big",
        with_("metadata.annotations", {"a": "x" * (256 * 1024)}),
        ("metadata.annotations", "Too long: must have at most 262144 bytes"),
    ),
    ("spec missing", without("spec"), ("spec", "Required value")),
    ("spec not an object", with_("spec", "x"), ("spec", 'Invalid value: "x": must be an object')),
    ("containers missing", with_("spec", {}), ("spec.containers", "Required value")),
    ("containers empty", with_("spec.containers", []), ("spec.containers", "Required value")),
    (
        "containers not a list",
        with_("spec.containers", {"name": "c"}),
        ("spec.containers", 'Invalid value: {"name": "c"}: must be a list'),
    ),
    (
        "container not an object",
        with_("spec.containers", ["c"]),
        ("spec.containers[0]", 'Invalid value: "c": must be an object'),
    ),
    (
        "container name missing",
        with_("spec.containers.0", {"command": ["x"]}),
        ("spec.containers[0].name", "Required value"),
    ),
    (
        "container name invalid",
        container(name="Web"),
        ("spec.containers[0].name", f'Invalid value: "Web": {LABEL_MSG}'),
    ),
    (
        "no command, no image",
        with_("spec.containers.0", {"name": "c"}),
        ("spec.containers[0].command", NEEDS_COMMAND),
    ),
    (
        "empty command, no image",
        with_("spec.containers.0", {"name": "c", "command": [], "args": []}),
        ("spec.containers[0].command", NEEDS_COMMAND),
    ),
    (
        "command not a list",
        container(command="sleep 1"),
        ("spec.containers[0].command", 'Invalid value: "sleep 1": must be a list of strings'),
    ),
    (
        "args item not a string",
        container(args=["sleep", 1]),
        ("spec.containers[0].args[1]", "Invalid value: 1: must be a string"),
    ),
    (
        "command with NUL",
        container(command=["a\0b"]),
        (
            "spec.containers[0].command[0]",
            'Invalid value: "a\\u0000b": must not contain NUL characters',
        ),
    ),
    (
        "image empty",
        container(image=""),
        (
            "spec.containers[0].image",
            'Invalid value: "": must not be empty (leave image out to use the host\'s files)',
        ),
    ),
    (
        "image whitespace",
        container(image=" busybox"),
        (
            "spec.containers[0].image",
            'Invalid value: " busybox": must not have leading or trailing whitespace',
        ),
    ),
    (
        "image not a string",
        container(image=["busybox"]),
        ("spec.containers[0].image", 'Invalid value: ["busybox"]: must be a string'),
    ),
    (
        "workingDir relative",
        container(workingDir="srv"),
        ("spec.containers[0].workingDir", 'Invalid value: "srv": must be an absolute path'),
    ),
    (
        "env not a list",
        container(env={"A": "1"}),
        ("spec.containers[0].env", 'Invalid value: {"A": "1"}: must be a list'),
    ),
    (
        "env name missing",
        container(env=[{"value": "1"}]),
        ("spec.containers[0].env[0].name", "Required value"),
    ),
    (
        "env name with =",
        container(env=[{"name": "A=B"}]),
        (
            "spec.containers[0].env[0].name",
            'Invalid value: "A=B": a valid environment variable name must consist only of '
            "printable ASCII characters other than '='",
        ),
    ),
    (
        "env value not a string",
        container(env=[{"name": "A", "value": 1}]),
        ("spec.containers[0].env[0].value", "Invalid value: 1: must be a string"),
    ),
    (
        "env valueFrom",
        container(env=[{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]),
        ("spec.containers[0].env[0].valueFrom", "Forbidden: not supported yet"),
    ),
    (
        "port missing",
        container(ports=[{"name": "http"}]),
        ("spec.containers[0].ports[0].containerPort", "Required value"),
    ),
    (
        "port zero",
        container(ports=[{"containerPort": 0}]),
        ("spec.containers[0].ports[0].containerPort", "Required value"),
    ),
    (
        "port out of range",
        container(ports=[{"containerPort": 65536}]),
        (
            "spec.containers[0].ports[0].containerPort",
            "Invalid value: 65536: must be between 1 and 65535, inclusive",
        ),
    ),
    (
        "port a string",
        container(ports=[{"containerPort": "80"}]),
        ("spec.containers[0].ports[0].containerPort", 'Invalid value: "80": must be an integer'),
    ),
    (
        "port protocol",
        container(ports=[{"containerPort": 80, "protocol": "tcp"}]),
        (
            "spec.containers[0].ports[0].protocol",
            'Unsupported value: "tcp": supported values: "SCTP", "TCP", "UDP"',
        ),
    ),
    (
        "port name too long",
        container(ports=[{"containerPort": 80, "name": "a" * 16}]),
        (
            "spec.containers[0].ports[0].name",
            f'Invalid value: "{"a" * 16}": must be no more than 15 characters',
        ),
    ),
    (
        "port name no letter",
        container(ports=[{"containerPort": 80, "name": "80"}]),
        (
            "spec.containers[0].ports[0].name",
            'Invalid value: "80": must contain at least one letter (a-z)',
        ),
    ),
    (
        "port name double hyphen",
        container(ports=[{"containerPort": 80, "name": "a--b"}]),
        (
            "spec.containers[0].ports[0].name",
            'Invalid value: "a--b": must not contain consecutive hyphens (--)',
        ),
    ),
    (
        "port name duplicate",
        container(
            ports=[{"containerPort": 80, "name": "web"}, {"containerPort": 81, "name": "web"}]
        ),
        ("spec.containers[0].ports[1].name", 'Duplicate value: "web"'),
    ),
    (
        "hostPort out of range",
        container(ports=[{"containerPort": 80, "hostPort": 70000}]),
        (
            "spec.containers[0].ports[0].hostPort",
            "Invalid value: 70000: must be between 1 and 65535, inclusive",
        ),
    ),
    (
        "hostPort SCTP",
        container(ports=[{"containerPort": 80, "hostPort": 80, "protocol": "SCTP"}]),
        ("spec.containers[0].ports[0].hostPort", "Forbidden: SCTP host ports are not supported"),
    ),
    (
        "hostIP",
        container(ports=[{"containerPort": 80, "hostPort": 80, "hostIP": "host"}]),
        ("spec.containers[0].ports[0].hostIP", 'Invalid value: "host": must be a valid IP address'),
    ),
    (
        "resources limits other",
        container(resources={"limits": {"nvidia.com/gpu": "1"}}),
        (
            "spec.containers[0].resources.limits[nvidia.com/gpu]",
            "Forbidden: not supported yet: only cpu and memory limits are",
        ),
    ),
    (
        "resources limits negative",
        container(resources={"limits": {"memory": "-1Mi"}}),
        (
            "spec.containers[0].resources.limits[memory]",
            'Invalid value: "-1Mi": must be greater than or equal to 0',
        ),
    ),
    (
        "resources limits not a quantity",
        container(resources={"limits": {"cpu": "lots"}}),
        (
            "spec.containers[0].resources.limits[cpu]",
            'Invalid value: "lots": must match the regular expression '
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ),
    ),
    (
        "runAsUser negative",
        with_("spec.securityContext", {"runAsUser": -1}),
        (
            "spec.securityContext.runAsUser",
            "Invalid value: -1: must be between 0 and 2147483647, inclusive",
        ),
    ),
    (
        "capability unknown",
        container(securityContext={"capabilities": {"add": ["NET_ADMIN", "FLY"]}}),
        (
            "spec.containers[0].securityContext.capabilities.add[1]",
            'Invalid value: "FLY": not a Linux capability (capabilities(7))',
        ),
    ),
    (
        "privileged without escalation",
        container(securityContext={"privileged": True, "allowPrivilegeEscalation": False}),
        (
            "spec.containers[0].securityContext",
            'Invalid value: {"privileged": true, "allowPrivilegeEscalation": false}: cannot set '
            "`allowPrivilegeEscalation` to false and `privileged` to true",
        ),
    ),
    (
        "procMount Unmasked",
        container(securityContext={"procMount": "Unmasked"}),
        (
            "spec.containers[0].securityContext.procMount",
            'Forbidden: "Unmasked": not supported yet (it needs hostUsers: false)',
        ),
    ),
    (
        "seccomp RuntimeDefault",
        with_("spec.securityContext", {"seccompProfile": {"type": "RuntimeDefault"}}),
        (
            "spec.securityContext.seccompProfile.type",
            'Forbidden: "RuntimeDefault": not supported yet: supd applies no seccomp filter; '
            "use type: Unconfined",
        ),
    ),
    (
        "sysctl of the host",
        with_("spec.securityContext", {"sysctls": [{"name": "kernel.panic", "value": "1"}]}),
        (
            "spec.securityContext.sysctls[0].name",
            'Forbidden: "kernel.panic" is not a namespaced sysctl: setting it would change the '
            "host (only kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* and net.* are)",
        ),
    ),
    (
        "sysctl name",
        with_("spec.securityContext", {"sysctls": [{"name": "net..x", "value": "1"}]}),
        (
            "spec.securityContext.sysctls[0].name",
            'Invalid value: "net..x": must have at most 253 characters and match regex '
            "([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?",
        ),
    ),
    (
        "subdomain",
        with_("spec.subdomain", "Not_A_Label"),
        (
            "spec.subdomain",
            'Invalid value: "Not_A_Label": a lowercase RFC 1123 label must consist of lower '
            "case alphanumeric characters or '-', and must start and end with an alphanumeric "
            "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ),
    ),
    (
        "restartPolicy",
        with_("spec.restartPolicy", "Sometimes"),
        (
            "spec.restartPolicy",
            'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
        ),
    ),
    (
        "grace a string",
        with_("spec.terminationGracePeriodSeconds", "30s"),
        ("spec.terminationGracePeriodSeconds", 'Invalid value: "30s": must be an integer'),
    ),
    (
        "grace a bool",
        with_("spec.terminationGracePeriodSeconds", True),
        ("spec.terminationGracePeriodSeconds", "Invalid value: true: must be an integer"),
    ),
    (
        "grace a float",
        with_("spec.terminationGracePeriodSeconds", 30.0),
        ("spec.terminationGracePeriodSeconds", "Invalid value: 30.0: must be an integer"),
    ),
    (
        "grace negative",
        with_("spec.terminationGracePeriodSeconds", -1),
        (
            "spec.terminationGracePeriodSeconds",
            "Invalid value: -1: must be greater than or equal to 0",
        ),
    ),
    (
        "grace huge",
        with_("spec.terminationGracePeriodSeconds", 2**64),
        (
            "spec.terminationGracePeriodSeconds",
            "Invalid value: 18446744073709551616: must fit in a 64-bit signed integer",
        ),
    ),
    (
        "hostname invalid",
        with_("spec.hostname", "my.host"),
        ("spec.hostname", f'Invalid value: "my.host": {LABEL_MSG}'),
    ),
    (
        "shareProcessNamespace not a bool",
        with_("spec.shareProcessNamespace", "yes"),
        ("spec.shareProcessNamespace", 'Invalid value: "yes": must be a boolean'),
    ),
    (
        "dnsPolicy unknown",
        with_("spec.dnsPolicy", "Cluster"),
        (
            "spec.dnsPolicy",
            'Unsupported value: "Cluster": supported values: "ClusterFirstWithHostNet", '
            '"ClusterFirst", "Default", "None"',
        ),
    ),
    (
        "dnsPolicy None",
        with_("spec.dnsPolicy", "None"),
        ("spec.dnsConfig", "Required value: must provide `dnsConfig` when `dnsPolicy` is None"),
    ),
    (
        "unknown container field, close",
        container(comand=["x"]),
        ("spec.containers[0].comand", 'Unknown field: did you mean "command"?'),
    ),
    (
        "unknown container field, case",
        container(WorkingDir="/"),
        ("spec.containers[0].WorkingDir", 'Unknown field: did you mean "workingDir"?'),
    ),
    (
        "unknown spec field, far",
        with_("spec.frobnicate", 1),
        ("spec.frobnicate", "Unknown field"),
    ),
    ("unknown top-level field", with_("extra", 1), ("extra", "Unknown field")),
    (
        "unknown metadata field",
        with_("metadata.lables", {"a": "b"}),
        ("metadata.lables", 'Unknown field: did you mean "labels"?'),
    ),
    (
        "unknown port field",
        container(ports=[{"containerPort": 1, "port": 2}]),
        ("spec.containers[0].ports[0].port", "Unknown field"),
    ),
    (
        "non-string key",
        with_("spec.containers.0", {"name": "c", "command": ["x"], 1: "x"}),
        ("spec.containers[0]", "Invalid value: 1: field names must be strings"),
    ),
    (
        "ignored field not JSON-like",
        with_("spec.nodeSelector", {"a": float("nan")}),
        ("spec.nodeSelector[a]", "Invalid value: nan: must be a finite number"),
    ),
    (
        "ignored field with bytes",
        with_("spec.nodeSelector", {"a": b"x"}),
        (
            "spec.nodeSelector[a]",
            "Invalid value: (a bytes): must be a string, number, boolean, list or object",
        ),
    ),
    (
        "lone surrogate",
        container(args=["\ud800"]),
        (
            "spec.containers[0].args[0]",
            'Invalid value: "\\ud800": must be valid Unicode (no unpaired surrogates)',
        ),
    ),
]


@pytest.mark.parametrize(("obj", "cause"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_error(obj: dict[str, Any], cause: tuple[str, str]) -> None:
    assert cause in causes(obj)


def test_duplicate_container_names_across_lists() -> None:
    obj = base()
    obj["spec"]["initContainers"] = [{"name": "web", "command": ["x"]}]
    obj["spec"]["containers"] = [{"name": "a", "command": ["x"]}, {"name": "web", "image": "i"}]
    assert causes(obj) == [("spec.containers[1].name", 'Duplicate value: "web"')]
    obj["spec"]["initContainers"] = []
    obj["spec"]["containers"][0]["name"] = "web"
    assert causes(obj) == [("spec.containers[1].name", 'Duplicate value: "web"')]


def test_all_causes_reported() -> None:
    obj = {
        "apiVersion": "v2",
        "kind": "Pod",
        "metadata": {"name": "Bad!"},
        "spec": {
            "restartPolicy": "Sometimes",
            "volumes": [{"name": "x"}],
            "containers": [{"name": "a", "comand": ["x"]}, {"name": "a", "image": "i"}],
        },
        "status": {"phase": "Running"},
    }
    got = [path for path, _ in causes(obj)]
    assert got == [
        "apiVersion",
        "metadata.name",
        "spec.containers[0].comand",
        "spec.containers[0].command",
        "spec.containers[1].name",
        "spec.restartPolicy",
        "spec.volumes[0]",
    ]
    with pytest.raises(ManifestError) as info:
        parse_pod(obj, "pod.yaml", 1)
    assert info.value.source == "pod.yaml (document 2)"
    assert info.value.message.startswith(
        'pod.yaml (document 2): apiVersion: Unsupported value: "v2"'
    )
    assert info.value.details["causes"][0] == {
        "field": "apiVersion",
        "message": 'Unsupported value: "v2": supported values: "v1"',
    }


# --- not supported yet, and ignored -----------------------------------------------------------

POD_UNSUPPORTED = {
    "ephemeralContainers": [{"name": "e"}],
    "hostUsers": False,
    "hostnameOverride": "h",
    "setHostnameAsFQDN": True,
    "readinessGates": [{"conditionType": "x"}],
    "os": {"name": "linux"},
    "overhead": {"cpu": "1"},
    "resourceClaims": [{"name": "x"}],
    "schedulingGates": [{"name": "x"}],
    "resources": {"limits": {"cpu": "1"}},
}
CONTAINER_UNSUPPORTED = {
    "envFrom": [{"configMapRef": {"name": "x"}}],
    "volumeDevices": [{"name": "v", "devicePath": "/dev/x"}],
    "stdin": True,
    "stdinOnce": True,
    "tty": True,
    "restartPolicyRules": [{"action": "Restart"}],
}


@pytest.mark.parametrize(("field", "value"), POD_UNSUPPORTED.items())
def test_pod_field_not_supported_yet(field: str, value: object) -> None:
    path = "spec.resources.limits" if field == "resources" else f"spec.{field}"
    assert causes(with_(f"spec.{field}", value)) == [(path, "Forbidden: not supported yet")]


@pytest.mark.parametrize(("field", "value"), CONTAINER_UNSUPPORTED.items())
def test_container_field_not_supported_yet(field: str, value: object) -> None:
    for key in ("containers", "initContainers"):
        obj = base()
        obj["spec"][key] = [{"name": "x", "command": ["true"], field: value}]
        if key == "initContainers":
            obj["spec"]["containers"] = [{"name": "c", "command": ["true"]}]
        assert causes(obj) == [(f"spec.{key}[0].{field}", "Forbidden: not supported yet")]


def test_values_that_mean_unset_are_accepted() -> None:
    """What `kubectl get pod -o yaml` prints for a default pod applies cleanly."""
    obj = base()
    obj["spec"].update(
        volumes=[],
        hostNetwork=False,
        hostPID=False,
        hostIPC=False,
        setHostnameAsFQDN=False,
        securityContext={},
        dnsPolicy="ClusterFirst",
        subdomain="",
    )
    obj["spec"]["containers"][0].update(
        terminationMessagePath="/dev/termination-log",
        terminationMessagePolicy="File",
        stdin=False,
        tty=False,
        volumeMounts=[],
        resources={},
        securityContext={},
    )
    pod, warnings = parse_pod(obj)
    assert warnings == []
    assert pod.manifest["spec"]["hostNetwork"] is False


def test_host_namespaces() -> None:
    obj = base()
    obj["spec"].update(hostNetwork=True, hostPID=True, hostIPC=True)
    pod, _ = parse_pod(obj)
    assert (pod.host_network, pod.host_pid, pod.host_ipc) == (True, True, True)
    pod, _ = parse_pod(base())
    assert (pod.host_network, pod.host_pid, pod.host_ipc) == (False, False, False)
    assert causes(with_("spec.hostPID", "yes")) == [
        ("spec.hostPID", 'Invalid value: "yes": must be a boolean')
    ]
    obj["spec"]["shareProcessNamespace"] = True
    assert causes(obj) == [
        (
            "spec.shareProcessNamespace",
            "Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled",
        )
    ]


IGNORED = [
    ("spec.nodeSelector", {"disk": "ssd"}, "no meaning on a single host"),
    ("spec.nodeName", "node-1", "no meaning on a single host"),
    ("spec.tolerations", [{"operator": "Exists"}], "no meaning on a single host"),
    ("spec.affinity", {"nodeAffinity": {}}, "no meaning on a single host"),
    ("spec.imagePullSecrets", [{"name": "r"}], "images come from the local image store"),
    ("spec.serviceAccountName", "default", "no meaning on a single host"),
    ("spec.serviceAccount", "default", "no meaning on a single host"),
    ("spec.automountServiceAccountToken", False, "no meaning on a single host"),
    ("spec.priorityClassName", "high", "no meaning on a single host"),
    ("spec.priority", 0, "no meaning on a single host"),
    ("spec.preemptionPolicy", "Never", "no meaning on a single host"),
    ("spec.schedulerName", "default-scheduler", "no meaning on a single host"),
    ("spec.topologySpreadConstraints", [{"maxSkew": 1}], "no meaning on a single host"),
    ("spec.enableServiceLinks", True, "no services on a single host"),
    ("spec.runtimeClassName", "gvisor", "no meaning on a single host"),
    (
        "spec.dnsPolicy",
        "Default",
        "no cluster DNS on a single host; pods use the host's resolver",
    ),
    ("spec.resources.requests", {"cpu": "1"}, "no scheduler on a single host"),
    (
        "spec.containers.0.imagePullPolicy",
        "Always",
        "images come from the local image store",
    ),
    ("spec.containers.0.resources.requests", {"cpu": 0.5}, "no scheduler on a single host"),
    (
        "spec.containers.0.resizePolicy",
        [{"resourceName": "cpu"}],
        "resources cannot be changed in place on a single host",
    ),
]


@pytest.mark.parametrize(("path", "value", "reason"), IGNORED, ids=[i[0] for i in IGNORED])
def test_ignored_with_warning(path: str, value: object, reason: str) -> None:
    pod, warnings = parse_pod(with_(path, value))
    shown = re.sub(r"\.(\d+)", r"[\1]", path)
    assert warnings == [f"{shown}: ignored ({reason})"]
    node: Any = pod.manifest
    for part in path.split("."):
        node = node[int(part)] if part.isdigit() else node[part]
    assert node == (value if path != "spec.containers.0.resources.requests" else {"cpu": "0.5"})


def test_server_set_metadata_and_status_dropped() -> None:
    obj = base()
    obj["metadata"].update(
        creationTimestamp="2024-01-01T00:00:00Z",
        resourceVersion="123",
        generation=1,
        managedFields=[{"manager": "kubectl"}],
        selfLink="/api/v1/x",
        ownerReferences=[{"kind": "ReplicaSet"}],
        finalizers=["x"],
        deletionTimestamp=None,
    )
    obj["status"] = {"phase": "Running", "startTime": 5}
    pod, warnings = parse_pod(obj)
    assert warnings == [
        "status: ignored (set by the supervisor)",
        "metadata.creationTimestamp: ignored (set by the API server)",
        "metadata.resourceVersion: ignored (set by the API server)",
        "metadata.generation: ignored (set by the API server)",
        "metadata.managedFields: ignored (set by the API server)",
        "metadata.selfLink: ignored (set by the API server)",
        "metadata.ownerReferences: ignored (no owning controllers on a single host)",
        "metadata.finalizers: ignored (no controllers on a single host)",
    ]
    assert set(pod.manifest) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(pod.manifest["metadata"]) == {"name", "namespace", "uid"}


def test_empty_ignored_fields_do_not_warn() -> None:
    obj = base()
    obj["spec"].update(nodeSelector={}, tolerations=[], nodeName="")
    obj["status"] = {}
    assert parse_pod(obj)[1] == []


# --- YAML streams -----------------------------------------------------------------------------


def pod_yaml(name: str, **extra: str) -> str:
    lines = [f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    lines.append("spec: {containers: [{name: c, command: ['true']}]}")
    return "\n".join(lines) + "\n"


def test_multi_document_and_empty_documents() -> None:
    text = "---\n" + pod_yaml("a") + "---\n# only a comment\n---\n" + pod_yaml("b") + "---\n"
    assert [d["metadata"]["name"] for d in load_documents(text, "f")] == ["a", "b"]
    pods = load_pods(text, "f")
    assert [p.name for p, _ in pods] == ["a", "b"]
    assert load_pods("", "f") == [] and load_pods("---\n", "f") == []


def test_bytes_input() -> None:
    assert load_pods(pod_yaml("a").encode(), "f")[0][0].name == "a"
    assert load_pods(b"\xef\xbb\xbf" + pod_yaml("a").encode(), "f")[0][0].name == "a"
    with pytest.raises(ManifestError) as info:
        load_documents(b"a: \xff\n", "f")
    assert info.value.message.startswith("f: invalid YAML at character 3:")


def test_kind_list_expands() -> None:
    text = textwrap.dedent(
        """\
        apiVersion: v1
        kind: List
        metadata: {resourceVersion: ""}
        items:
        - apiVersion: v1
          kind: Pod
          metadata: {name: a}
          spec: {containers: [{name: c, image: i}]}
        - apiVersion: v1
          kind: Pod
          metadata: {name: b}
          spec: {containers: [{name: c, image: i}]}
        """
    )
    assert [p.name for p, _ in load_pods(text, "l.yaml")] == ["a", "b"]
    bad = text[: text.rindex("  spec:")]
    with pytest.raises(ManifestError) as info:
        load_pods(bad, "l.yaml")
    assert (info.value.source, info.value.causes) == (
        "l.yaml (item 2)",
        [("spec", "Required value")],
    )
    with pytest.raises(ManifestError) as info:
        load_documents("apiVersion: v1\nkind: List\nitems: [1]\nextra: 2\n", "l")
    assert info.value.causes == [
        ("extra", "Unknown field"),
        ("items[0]", "Invalid value: 1: must be an object"),
    ]


def test_yaml_syntax_error_names_line_and_column() -> None:
    with pytest.raises(ManifestError) as info:
        load_pods("apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n bad: [\n", "pod.yaml")
    assert info.value.source == "pod.yaml"
    assert re.fullmatch(r"pod\.yaml: invalid YAML at line \d+:\d+: .+", info.value.message)
    with pytest.raises(ManifestError) as info:
        load_documents("a: b: c\n", "x.yaml")
    assert (
        info.value.message
        == "x.yaml: invalid YAML at line 1:5: mapping values are not allowed here"
    )


def test_duplicate_yaml_keys_rejected() -> None:
    text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n"
    text += "  containers: []\n  containers: [{}]\n"
    with pytest.raises(ManifestError) as info:
        load_documents(text, "d.yaml")
    assert (
        info.value.message == 'd.yaml: invalid YAML at line 6:3: found duplicate key "containers"'
    )
    # A merge key's values may be overridden: that is not a duplicate.
    merged = "base: &b {x: 1, y: 2}\nother: {<<: *b, x: 3}\n"
    assert load_documents(merged, "m")[0]["other"] == {"x": 3, "y": 2}


def test_timestamps_stay_strings() -> None:
    [doc] = load_documents("a: 2024-01-01\nb: 2024-01-01T00:00:00Z\nc: yes\n", "t")
    assert doc == {"a": "2024-01-01", "b": "2024-01-01T00:00:00Z", "c": True}


def test_document_not_a_mapping() -> None:
    with pytest.raises(ManifestError) as info:
        load_documents("- a\n- b\n", "f")
    assert info.value.causes == [
        ("", 'Invalid value: ["a", "b"]: a document must be a mapping (an object)')
    ]
    with pytest.raises(ManifestError) as info:
        load_pods(pod_yaml("a") + "---\njust text\n", "f")
    assert info.value.source == "f (document 2)"


def test_errors_in_several_documents_reported_together() -> None:
    text = pod_yaml("a") + "---\n" + pod_yaml("B") + "---\n" + pod_yaml("c", extra="1")
    with pytest.raises(ManifestError) as info:
        load_pods(text, "f.yaml")
    assert info.value.source == "f.yaml"
    assert [p for p, _ in info.value.causes] == ["document 2: metadata.name", "document 3: extra"]
    assert "; document 3: extra: Unknown field" in info.value.message


def test_one_bad_document_keeps_its_source() -> None:
    text = pod_yaml("a") + "---\n" + pod_yaml("b", extra="1")
    with pytest.raises(ManifestError) as info:
        load_pods(text, "f.yaml")
    assert (info.value.source, info.value.causes) == (
        "f.yaml (document 2)",
        [("extra", "Unknown field")],
    )


def test_duplicate_pods_across_documents() -> None:
    text = pod_yaml("a") + "---\n" + pod_yaml("b") + "---\n" + pod_yaml("a")
    with pytest.raises(ManifestError) as info:
        load_pods(text, "f.yaml")
    assert info.value.source == "f.yaml (document 3)"
    assert info.value.causes == [
        ("metadata.name", 'Duplicate value: "default/a": also in document 1')
    ]
    other_ns = (
        pod_yaml("a") + "---\n" + pod_yaml("a").replace("{name: a}", "{name: a, namespace: x}")
    )
    assert [p.key for p, _ in load_pods(other_ns, "f")] == ["default/a", "x/a"]


# --- limits -----------------------------------------------------------------------------------


def test_alias_bomb_is_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    text = pod_yaml("a") + "\n".join(f"  {line}" for line in ["x:"]) + "\n"
    text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  nodeSelector:\n"
    text += "".join(f"    {line}\n" for line in lines)
    text += "  containers: [{name: c, image: i}]\n"
    with pytest.raises(ManifestError) as info:
        load_pods(text, "bomb.yaml")
    assert info.value.causes == [
        ("", "Too many values: must have at most 200000 (after expanding aliases)")
    ]


def test_recursive_alias_is_bounded() -> None:
    text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: &s {containers: [*s]}\n"
    with pytest.raises(ManifestError) as info:
        load_pods(text, "loop.yaml")
    assert info.value.causes == [("", "Too deep: must be nested at most 64 levels")]


def test_deep_yaml_nesting() -> None:
    with pytest.raises(ManifestError) as info:
        load_pods("a: " + "[" * 1000 + "]" * 1000 + "\n", "deep.yaml")
    assert info.value.message == "deep.yaml: invalid YAML at line 1:67: nested more than 64 levels"


def test_huge_yaml_integer() -> None:
    with pytest.raises(ManifestError):
        load_pods("a: " + "9" * 5000 + "\n", "big.yaml")
    pod = base()
    pod["spec"]["priority"] = 10**5000
    assert causes(pod)[0][0] == "spec.priority"


def test_causes_are_capped() -> None:
    obj = base()
    obj["spec"]["containers"][0].update({f"field{i}": 1 for i in range(50_000)})
    got = causes(obj)
    assert len(got) == mf.MAX_CAUSES + 1
    assert got[-1] == ("", "and 49900 more errors")


def test_long_strings_are_fast_and_shown_short() -> None:
    long = "a-" * 500_000 + "!"
    got = causes(with_("metadata.name", long))
    assert all(len(msg) < 500 for _, msg in got)
    assert causes(with_("metadata.labels", {long: long}))


# --- fuzz: never a traceback ------------------------------------------------------------------

JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=4),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers() | st.none(), children, max_size=4)
    ),
    max_leaves=25,
)
FIELD_NAMES = sorted(
    {
        *mf._TOP_FIELDS,
        *mf._METADATA_FIELDS,
        *mf._POD_SPEC_FIELDS,
        *mf._CONTAINER_FIELDS,
        *mf._ENV_FIELDS,
        *mf._PORT_FIELDS,
        *mf._RESOURCES_FIELDS,
    }
)
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check_never_crashes(obj: object) -> None:
    try:
        pod, warnings = parse_pod(obj, "fuzz")
    except ManifestError as exc:
        assert exc.causes and all(isinstance(p, str) and isinstance(m, str) for p, m in exc.causes)
        exc.message.encode("utf-8")
        return
    assert json.loads(json.dumps(pod.manifest, allow_nan=False)) == pod.manifest
    assert all(isinstance(w, str) for w in warnings)


@FUZZ
@given(JSONISH)
def test_fuzz_random_objects(obj: object) -> None:
    check_never_crashes(obj)


def _mutations() -> st.SearchStrategy[Callable[[Any], None]]:
    def set_at(path: list[str | int], value: object) -> Callable[[Any], None]:
        def apply(obj: Any) -> None:
            node = obj
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = value

        return apply

    paths: list[list[str | int]] = [
        ["apiVersion"],
        ["metadata"],
        ["metadata", "name"],
        ["metadata", "labels"],
        ["metadata", "annotations"],
        ["spec"],
        ["spec", "containers"],
        ["spec", "containers", 0],
        ["spec", "containers", 0, "name"],
        ["spec", "containers", 0, "env"],
        ["spec", "containers", 0, "ports"],
        ["spec", "containers", 0, "command"],
    ]
    return st.builds(
        set_at,
        st.sampled_from(paths)
        | st.builds(
            lambda p, f: [*p, f],
            st.sampled_from([["metadata"], ["spec"], ["spec", "containers", 0]]),
            st.sampled_from(FIELD_NAMES),
        ),
        JSONISH,
    )


@FUZZ
@given(st.lists(_mutations(), min_size=1, max_size=4))
def test_fuzz_mutated_pods(mutations: list[Callable[[Any], None]]) -> None:
    obj = base()
    obj["metadata"]["labels"] = {"a": "b"}
    obj["metadata"]["annotations"] = {"a": "b"}
    obj["spec"]["containers"][0].update(
        env=[{"name": "A", "value": "1"}], ports=[{"containerPort": 1}]
    )
    for mutate in mutations:
        with contextlib.suppress(KeyError, IndexError, TypeError):
            mutate(obj)
    check_never_crashes(obj)


@FUZZ
@given(st.text(alphabet=":-[]{}&*!|>'\"#%@`, \n\tab01.?<=~", max_size=60))
def test_fuzz_yaml_text(text: str) -> None:
    try:
        load_pods(text, "fuzz.yaml")
    except ManifestError as exc:
        exc.message.encode("utf-8")


# --- probes, hooks, sidecars (issue 3) ---------------------------------------------------------


def test_probe_defaults_and_handlers() -> None:
    pod, _ = parse_pod(
        container(
            ports=[{"name": "http", "containerPort": 8080}],
            livenessProbe={
                "httpGet": {
                    "port": "http",
                    "path": "/healthz",
                    "httpHeaders": [{"name": "X-A", "value": "1"}],
                }
            },
            readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 2, "successThreshold": 2},
            startupProbe={
                "grpc": {"port": 9000},
                "failureThreshold": 30,
                "terminationGracePeriodSeconds": 5,
            },
        )
    )
    c = pod.containers[0]
    assert c.liveness_probe is not None and c.readiness_probe and c.startup_probe
    live = c.liveness_probe
    assert (
        live.initial_delay_seconds,
        live.period_seconds,
        live.timeout_seconds,
        live.success_threshold,
        live.failure_threshold,
    ) == (0, 10, 1, 1, 3)
    assert live.handler.kind == "httpGet" and live.handler.port == "http"
    assert live.handler.headers == (("X-A", "1"),) and live.handler.scheme == "HTTP"
    assert c.port_number("http") == 8080 and c.port_number("nope") is None
    assert c.readiness_probe.success_threshold == 2 and c.readiness_probe.period_seconds == 2
    assert c.startup_probe.termination_grace_period_seconds == 5
    assert c.startup_probe.handler.kind == "grpc"


def test_zero_means_default_as_in_kubernetes() -> None:
    pod, _ = parse_pod(
        container(
            readinessProbe={"exec": {"command": ["true"]}, "periodSeconds": 0, "timeoutSeconds": 0}
        )
    )
    probe = pod.containers[0].readiness_probe
    assert probe is not None and (probe.period_seconds, probe.timeout_seconds) == (10, 1)


P = "spec.containers[0]"


@pytest.mark.parametrize(
    ("fields", "cause"),
    [
        (
            {"livenessProbe": {"exec": {"command": ["true"]}, "successThreshold": 2}},
            (f"{P}.livenessProbe.successThreshold", "Invalid value: 2: must be 1"),
        ),
        (
            {"startupProbe": {"exec": {"command": ["true"]}, "successThreshold": 3}},
            (f"{P}.startupProbe.successThreshold", "Invalid value: 3: must be 1"),
        ),
        (
            {"livenessProbe": {"periodSeconds": 1}},
            (f"{P}.livenessProbe", "Required value: must specify a handler type"),
        ),
        (
            {"livenessProbe": {"exec": {"command": ["a"]}, "tcpSocket": {"port": 1}}},
            (f"{P}.livenessProbe.tcpSocket", "Forbidden: may not specify more than 1 handler type"),
        ),
        ({"livenessProbe": {"exec": {}}}, (f"{P}.livenessProbe.exec.command", "Required value")),
        (
            {"livenessProbe": {"httpGet": {"port": 0}}},
            (
                f"{P}.livenessProbe.httpGet.port",
                "Invalid value: 0: must be between 1 and 65535, inclusive",
            ),
        ),
        (
            {"livenessProbe": {"httpGet": {"port": 80, "scheme": "FTP"}}},
            (
                f"{P}.livenessProbe.httpGet.scheme",
                'Unsupported value: "FTP": supported values: "HTTP", "HTTPS"',
            ),
        ),
        (
            {"livenessProbe": {"tcpSocket": {"port": 80}, "timeoutSeconds": -1}},
            (
                f"{P}.livenessProbe.timeoutSeconds",
                "Invalid value: -1: must be greater than or equal to 0",
            ),
        ),
        (
            {"readinessProbe": {"tcpSocket": {"port": 80}, "terminationGracePeriodSeconds": 3}},
            (
                f"{P}.readinessProbe.terminationGracePeriodSeconds",
                "Invalid value: 3: must not be set for readinessProbes",
            ),
        ),
        (
            {"lifecycle": {"preStop": {"tcpSocket": {"port": 80}}}},
            (f"{P}.lifecycle.preStop.tcpSocket", "Forbidden: not supported yet"),
        ),
        (
            {"lifecycle": {"postStart": {"sleep": {"seconds": -1}}}},
            (
                f"{P}.lifecycle.postStart.sleep.seconds",
                "Invalid value: -1: must be greater than or equal to 0",
            ),
        ),
        (
            {"lifecycle": {"posStart": {}}},
            (f"{P}.lifecycle.posStart", 'Unknown field: did you mean "postStart"?'),
        ),
        (
            {"restartPolicy": "Always"},
            (f"{P}.restartPolicy", "Forbidden: may not be set for non-init containers"),
        ),
        (
            {"terminationMessagePath": "relative"},
            (f"{P}.terminationMessagePath", 'Invalid value: "relative": must be an absolute path'),
        ),
        (
            {"terminationMessagePolicy": "Sometimes"},
            (
                f"{P}.terminationMessagePolicy",
                'Unsupported value: "Sometimes": supported values: "File", "FallbackToLogsOnError"',
            ),
        ),
    ],
)
def test_probe_and_hook_errors(fields: dict[str, Any], cause: tuple[str, str]) -> None:
    assert cause in causes(container(**fields))


def test_sidecars_and_init_container_rules() -> None:
    obj = base()
    obj["spec"]["initContainers"] = [
        {
            "name": "side",
            "command": ["sleep", "9"],
            "restartPolicy": "Always",
            "startupProbe": {"exec": {"command": ["true"]}},
            "lifecycle": {"postStart": {"sleep": {"seconds": 1}}},
        },
        {"name": "once", "command": ["true"]},
    ]
    pod, _ = parse_pod(obj)
    side, once = pod.init_containers
    assert side.sidecar and not once.sidecar
    assert side.post_start is not None and side.post_start.kind == "sleep"
    obj["spec"]["initContainers"][1]["readinessProbe"] = {"exec": {"command": ["true"]}}
    obj["spec"]["initContainers"][1]["restartPolicy"] = "OnFailure"
    found = causes(obj)
    assert (
        "spec.initContainers[1].readinessProbe",
        "Forbidden: may not be set for init containers without restartPolicy=Always",
    ) in found
    assert (
        "spec.initContainers[1].restartPolicy",
        'Unsupported value: "OnFailure": supported values: "Always"',
    ) in found


def test_active_deadline_and_termination_message() -> None:
    obj = container(
        terminationMessagePath="/tmp/msg", terminationMessagePolicy="FallbackToLogsOnError"
    )
    obj["spec"]["activeDeadlineSeconds"] = 30
    pod, _ = parse_pod(obj)
    assert pod.active_deadline_seconds == 30
    c = pod.containers[0]
    assert (c.termination_message_path, c.termination_message_policy) == (
        "/tmp/msg",
        "FallbackToLogsOnError",
    )
    obj["spec"]["activeDeadlineSeconds"] = 0
    assert ("spec.activeDeadlineSeconds", "Invalid value: 0: must be greater than 0") in causes(obj)


# --- securityContext, resources.limits, hostPort, subdomain, sysctls ------------------------


def test_effective_security_context_is_the_containers_over_the_pods() -> None:
    obj = base()
    obj["spec"]["securityContext"] = {
        "runAsUser": 1000,
        "runAsGroup": 2000,
        "runAsNonRoot": True,
        "supplementalGroups": [3000, 3001],
        "fsGroup": 4000,
        "supplementalGroupsPolicy": "Strict",
        "seccompProfile": {"type": "Unconfined"},
        "seLinuxOptions": {"level": "s0"},
    }
    obj["spec"]["containers"] = [
        {"name": "a", "command": ["true"]},
        {
            "name": "b",
            "command": ["true"],
            "securityContext": {
                "runAsUser": 0,
                "runAsNonRoot": False,
                "capabilities": {"add": ["net_admin", "CAP_SYS_TIME"], "drop": ["ALL"]},
                "allowPrivilegeEscalation": False,
                "procMount": "Default",
                "readOnlyRootFilesystem": False,
            },
        },
    ]
    pod, warnings = parse_pod(obj)
    assert warnings == ["spec.securityContext.seLinuxOptions: ignored (no SELinux labelling on "
                        "this host)"]  # fmt: skip
    a, b = (c.security for c in pod.containers)
    assert (a.run_as_user, a.run_as_group, a.run_as_non_root) == (1000, 2000, True)
    assert a.supplemental_groups == (3000, 3001, 4000) and a.supplemental_groups_strict
    assert (b.run_as_user, b.run_as_group, b.run_as_non_root) == (0, 2000, False)
    assert b.capabilities_add == ("CAP_NET_ADMIN", "CAP_SYS_TIME")
    assert b.capabilities_drop == ("ALL",)
    assert b.allow_privilege_escalation is False and not b.privileged


def test_escalation_false_with_sys_admin_added_is_refused() -> None:
    got = causes(
        container(
            securityContext={
                "allowPrivilegeEscalation": False,
                "capabilities": {"add": ["SYS_ADMIN"]},
            }
        )
    )
    assert got[0][0] == "spec.containers[0].securityContext"
    assert got[0][1].endswith("`capabilities.Add` CAP_SYS_ADMIN")


def test_limits_and_host_ports_and_subdomain() -> None:
    obj = base()
    obj["spec"]["subdomain"] = "svc"
    obj["spec"]["initContainers"] = [
        {"name": "i", "command": ["true"], "ports": [{"containerPort": 53, "hostPort": 5353,
                                                      "protocol": "UDP"}]},
    ]  # fmt: skip
    obj["spec"]["containers"] = [
        {
            "name": "c",
            "command": ["true"],
            "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}, "requests": {"cpu": 1}},
            "ports": [
                {"containerPort": 80, "hostPort": 8080},
                {"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1", "protocol": "UDP"},
            ],
        },
        {"name": "d", "command": ["true"], "resources": {"limits": {"cpu": 2, "memory": 0}}},
    ]
    pod, _ = parse_pod(obj)
    c, d = pod.containers
    assert (c.cpu_limit_millis, c.memory_limit_bytes) == (250, 64 << 20)
    assert (d.cpu_limit_millis, d.memory_limit_bytes) == (2000, None)  # 0: no limit
    assert [(h.host_port, h.container_port, h.protocol, h.host_ip) for h in c.host_ports] == [
        (8080, 80, "TCP", "0.0.0.0"),
        (8080, 80, "UDP", "127.0.0.1"),
    ]
    assert c.host_ports[0].field == "spec.containers[0].ports[0].hostPort"
    assert pod.init_containers[0].host_ports[0].protocol == "UDP"
    assert pod.subdomain == "svc"


def test_host_port_is_unique_in_the_pod() -> None:
    obj = base()
    obj["spec"]["containers"] = [
        {"name": "a", "command": ["true"], "ports": [{"containerPort": 1, "hostPort": 9000}]},
        {"name": "b", "command": ["true"], "ports": [{"containerPort": 2, "hostPort": 9000}]},
    ]
    assert causes(obj) == [("spec.containers[1].ports[0].hostPort", 'Duplicate value: "9000/TCP"')]


def test_sysctls_namespaced_only_and_unique() -> None:
    obj = with_(
        "spec.securityContext",
        {
            "sysctls": [
                {"name": "net.core.somaxconn", "value": "1024"},
                {"name": "kernel.shm_rmid_forced", "value": "1"},
                {"name": "net/ipv4/conf/eth0.100/forwarding", "value": "1"},
                {"name": "fs.mqueue.msg_max", "value": "20"},
            ]
        },
    )
    pod, _ = parse_pod(obj)
    assert [n for n, _ in pod.sysctls] == [
        "net.core.somaxconn",
        "kernel.shm_rmid_forced",
        "net/ipv4/conf/eth0.100/forwarding",
        "fs.mqueue.msg_max",
    ]
    dup = with_(
        "spec.securityContext",
        {"sysctls": [{"name": "net.a.b", "value": "1"}, {"name": "net/a/b", "value": "2"}]},
    )
    assert causes(dup) == [("spec.securityContext.sysctls[1].name", 'Duplicate value: "net/a/b"')]
