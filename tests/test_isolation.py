"""isolation.plan_namespaces: a pod's namespaces for each isolation mode (pure)."""

from __future__ import annotations

import pytest

from supervisor.errors import PermissionDenied
from supervisor.isolation import Isolation, Namespaces, plan_namespaces
from supervisor.spec import PodSpec

F = frozenset
HOST = {"host_network": True, "host_pid": True, "host_ipc": True}


@pytest.mark.parametrize(
    ("fields", "want"),
    [
        ({}, Namespaces(F({"net", "uts", "ipc"}), F({"mnt", "pid"}))),
        (
            {"share_process_namespace": True},
            Namespaces(F({"net", "uts", "ipc", "pid"}), F({"mnt"})),
        ),
        ({"host_network": True}, Namespaces(F({"ipc"}), F({"mnt", "pid"}))),
        ({"host_ipc": True}, Namespaces(F({"net", "uts"}), F({"mnt", "pid"}))),
        ({"host_pid": True}, Namespaces(F({"net", "uts", "ipc"}), F({"mnt"}))),
        (HOST, Namespaces(F(), F({"mnt"}))),
    ],
)
def test_full_isolation_follows_the_spec(fields: dict[str, bool], want: Namespaces) -> None:
    assert plan_namespaces(PodSpec("p", **fields), Isolation.FULL) == want  # type: ignore[arg-type]


def test_host_pods_need_no_namespace_anywhere() -> None:
    spec = PodSpec("p", hostname="ignored", **HOST)  # type: ignore[arg-type]
    for isolation in Isolation:
        if isolation is not Isolation.FULL:
            assert plan_namespaces(spec, isolation) == Namespaces()


def test_isolation_none_runs_plain_pods_without_namespaces() -> None:
    assert plan_namespaces(PodSpec("p"), Isolation.NONE) == Namespaces()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            PodSpec("p", share_process_namespace=True),
            'pod "p" needs isolation that this supd does not give (--isolation=none): '
            "spec.shareProcessNamespace is true: it asks for a PID namespace. Set "
            "spec.shareProcessNamespace: false, or start supd with --isolation=auto",
        ),
        (
            PodSpec("p", hostname="h"),
            'pod "p" needs isolation that this supd does not give (--isolation=none): '
            "spec.hostname is set: it asks for a UTS namespace. Set spec.hostname: unset, or "
            "start supd with --isolation=auto",
        ),
    ],
)
def test_isolation_none_refuses_what_needs_a_namespace(spec: PodSpec, message: str) -> None:
    with pytest.raises(PermissionDenied) as info:
        plan_namespaces(spec, Isolation.NONE)
    assert str(info.value) == message


def test_without_privileges_only_host_pods_run() -> None:
    with pytest.raises(PermissionDenied) as info:
        plan_namespaces(
            PodSpec("web", host_ipc=True), Isolation.UNAVAILABLE, "clone: Operation not permitted"
        )
    assert str(info.value) == (
        'pod "web" needs namespaces that this supd cannot create: creating namespaces needs '
        "CAP_SYS_ADMIN (clone: Operation not permitted). spec.hostNetwork is false: it asks "
        "for network and UTS namespaces; spec.hostPID is false: it asks for PID namespaces. "
        "Set spec.hostNetwork: true, spec.hostPID: true to run it in the host's namespaces, "
        "or start supd with --isolation=none"
    )
    assert info.value.code == "PermissionDenied"
    assert info.value.details == {"namespace": "default", "name": "web"}
