"""The child steps of the security context and the cgroup, through spawn() and through
infra START frames: capabilities, no_new_privs, cgroup placement (v1 procs files and v2
CLONE_INTO_CGROUP), the pod's sysctls; and a failure test per step."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from native_helpers import CONTAINER_FLAGS, cri_lines, infra, no_leaks, run

from supervisor import _native, cgroups
from supervisor.security import CAP_NUMBER, DEFAULT_CAPABILITIES

__all__ = ["infra", "no_leaks"]

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("no_leaks")]

DEFAULT = sum(1 << CAP_NUMBER[n] for n in DEFAULT_CAPABILITIES)
STATUS = ["sh", "-c", "grep -E '^(Cap|NoNewPrivs)' /proc/self/status"]


def status_of(output: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in output.strip().splitlines())


def supd_caps() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    raise AssertionError("no CapBnd")


def test_capabilities_and_no_new_privs_for_root() -> None:
    caps = DEFAULT & supd_caps()
    status, out = run(STATUS, caps=caps, no_new_privs=True)
    assert status == 0, out
    got = status_of(out)
    assert int(got["CapBnd"], 16) == caps
    assert int(got["CapEff"], 16) == int(got["CapPrm"], 16) == caps
    assert int(got["CapInh"], 16) == int(got["CapAmb"], 16) == 0
    assert got["NoNewPrivs"] == "1"


def test_non_root_user_gets_no_capabilities() -> None:
    caps = DEFAULT & supd_caps()
    status, out = run(STATUS, caps=caps, uid=65534, gid=65534, groups=[])
    assert status == 0, out
    got = status_of(out)
    assert int(got["CapBnd"], 16) == caps
    assert int(got["CapEff"], 16) == int(got["CapPrm"], 16) == 0
    assert got["NoNewPrivs"] == "0"


def test_failure_cgroup_v1_procs_not_writable() -> None:
    fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with pytest.raises(_native.SpawnError) as info:
            _native.spawn(["true"], cgroup_procs=[fd])
    finally:
        os.close(fd)
    assert info.value.step == "cgroup"
    assert str(info.value) == "join the container's cgroup: Bad file descriptor"


def test_failure_cgroup_v2_not_a_cgroup(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with pytest.raises(_native.SpawnError) as info:
            _native.spawn(["true"], cgroup_dir=fd)
    finally:
        os.close(fd)
    assert info.value.step == "cgroup"
    assert info.value.errno == errno.EBADF


def test_failure_capbset_without_cap_setpcap() -> None:
    """Dropping from the bounding set needs CAP_SETPCAP: a supd without it gets a precise
    error (run in a child python whose bounding set lacks CAP_SETPCAP)."""
    code = (
        "from supervisor import _native\n"
        "try:\n"
        "    _native.spawn(['true'], caps=1)\n"
        "except _native.SpawnError as e:\n"
        "    print(e.step, '|', e)\n"
    )
    out = subprocess.run(
        ["setpriv", "--bounding-set", "-setpcap", "--inh-caps", "-all", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == "capbset | prctl PR_CAPBSET_DROP: Operation not permitted\n"


def test_messages_of_steps_a_test_cannot_make_fail() -> None:
    # capset only ever lowers the sets and no_new_privs cannot be refused: their failure
    # messages are checked as formatted.
    steps = _native.STEPS
    assert str(_native.spawn_error(steps.index("capset"), errno.EPERM, "x")) == (
        "capset: Operation not permitted"
    )
    assert str(_native.spawn_error(steps.index("no_new_privs"), errno.EINVAL, "x")) == (
        "prctl PR_SET_NO_NEW_PRIVS: Invalid argument"
    )


def rmdirs(path: Path) -> None:
    """Remove an (empty of processes) cgroup tree, children first; no event loop here: the
    fd-leak check runs after this fixture."""
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True):
        sub.rmdir()
    with contextlib.suppress(FileNotFoundError):
        path.rmdir()


@pytest.fixture
def v1_cgroup() -> Iterator[tuple[cgroups.CgroupsV1, str]]:
    found = cgroups.mounts()
    if not any(m.version == 1 and "memory" in m.controllers for m in found):
        pytest.skip("no cgroup v1 hierarchies")
    drv = cgroups.CgroupsV1.discover(found, cgroups.own_cgroups(), "nt-" + secrets.token_hex(4))
    drv.setup()
    drv.create_pod("u", cgroups.Limits())
    drv.create_container("u", "c", cgroups.Limits(pids=50))
    try:
        yield drv, "u"
    finally:
        for path in drv.parents():
            rmdirs(path)


def test_cgroup_v1_placement_before_exec(v1_cgroup: tuple[cgroups.CgroupsV1, str]) -> None:
    drv, uid = v1_cgroup
    placement = drv.placement(uid, "c")
    try:
        status, out = run(["cat", "/proc/self/cgroup"], cgroup_procs=placement.fds)
    finally:
        placement.close()
    assert status == 0
    lines = dict(line.split(":", 2)[1:] for line in out.strip().splitlines())
    assert lines["memory"].endswith("/podu/c")
    assert lines["pids"].endswith("/podu/c")


@pytest.fixture
def v2_cgroup() -> Iterator[tuple[cgroups.CgroupsV2, str]]:
    unified = next((m for m in cgroups.mounts() if m.version == 2), None)
    if unified is None:
        pytest.skip("no cgroup2 mount")
    own = cgroups.own_cgroups().get("", "/")
    drv = cgroups.CgroupsV2(unified.path, own, "/nt-" + secrets.token_hex(4))
    drv.setup()
    drv.create_pod("u", cgroups.Limits())
    drv.create_container("u", "c", cgroups.Limits())
    try:
        yield drv, "u"
    finally:
        rmdirs(drv.parent)


def test_cgroup_v2_clone_into_cgroup(v2_cgroup: tuple[cgroups.CgroupsV2, str]) -> None:
    drv, uid = v2_cgroup
    placement = drv.placement(uid, "c")
    try:
        status, out = run(["cat", "/proc/self/cgroup"], cgroup_dir=placement.fds[0])
    finally:
        placement.close()
    assert status == 0
    rel = "/" + str((drv.parent / "podu" / "c").relative_to(drv.mount))
    assert f"0::{rel}\n" in out


def test_infra_start_frame_carries_the_security_context_and_cgroup(
    infra: Any, v2_cgroup: tuple[cgroups.CgroupsV2, str]
) -> None:
    drv, uid = v2_cgroup
    pod = infra()
    placement = drv.placement(uid, "c")
    try:
        log = pod.start(
            1,
            ["sh", "-c", "grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status; "
             "grep ^0:: /proc/self/cgroup"],
            caps=DEFAULT & supd_caps(),
            no_new_privs=True,
            cgroup_into=True,
            extra_fds=tuple(placement.fds),
        )  # fmt: skip
    finally:
        placement.close()
    pod.expect("started", 1)
    assert pod.expect("exited", 1)[3] == 0
    lines = [msg for *_, msg in cri_lines(log)]
    assert int(lines[0].split()[1], 16) == DEFAULT & supd_caps()
    assert lines[1] == "NoNewPrivs:\t1"
    assert lines[2].endswith("/podu/c")
    assert pod.shutdown() == 0


def test_infra_start_failure_in_the_cgroup_step(infra: Any, tmp_path: Path) -> None:
    pod = infra()
    fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        pod.start(1, ["true"], extra_fds=(fd,))
    finally:
        os.close(fd)
    assert pod.expect("start_failed", 1)[2:] == (_native.STEPS.index("cgroup"), errno.EBADF)
    assert pod.shutdown() == 0


def test_infra_writes_the_pods_sysctls_in_its_namespaces(infra: Any) -> None:
    host = Path("/proc/sys/net/core/somaxconn").read_text()
    pod = infra(sysctls=(("/proc/sys/net/core/somaxconn", "1234"),))
    inside = subprocess.run(
        ["nsenter", "-t", str(pod.pid), "-n", "cat", "/proc/sys/net/core/somaxconn"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert inside == "1234\n"
    assert Path("/proc/sys/net/core/somaxconn").read_text() == host
    assert pod.shutdown() == 0


@pytest.mark.parametrize(
    ("path", "value", "err"),
    [
        ("/proc/sys/net/core/no_such_sysctl", "1", errno.ENOENT),
        ("/proc/sys/net/ipv4/ip_local_port_range", "nonsense", errno.EINVAL),
    ],
)
def test_failure_sysctl(path: str, value: str, err: int) -> None:
    import socket

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        with pytest.raises(_native.SpawnError) as info:
            _native.spawn_infra(
                theirs.fileno(),
                clone_flags=_native.CLONE_NEWNET | _native.CLONE_NEWUTS,
                hostname="p",
                sysctls=[(path, value)],
            )
    finally:
        ours.close()
        theirs.close()
    assert info.value.step == "sysctl"
    assert info.value.errno == err
    assert str(info.value).startswith("write the pod's sysctls: ")


def test_sysctl_buffer_is_bounded() -> None:
    with pytest.raises(ValueError, match="sysctls take more than"):
        _native.spawn_infra(0, clone_flags=0, hostname="", sysctls=[("/proc/sys/x", "y" * 9000)])


def test_container_flags_constant_is_what_tests_use() -> None:
    assert CONTAINER_FLAGS & _native.CLONE_NEWNS


def test_infra_is_cloned_into_its_v2_cgroup(v2_cgroup: tuple[cgroups.CgroupsV2, str]) -> None:
    import socket

    drv, uid = v2_cgroup
    placement = drv.infra_placement(uid)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        pid, pidfd = _native.spawn_infra(
            theirs.fileno(),
            clone_flags=_native.CLONE_NEWUTS,
            hostname="p",
            cgroup_dir=placement.fds[0],
        )
    finally:
        placement.close()
        theirs.close()
    try:
        line = next(
            x for x in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if x.startswith("0::")
        )
        assert line.endswith("/podu/_infra")
    finally:
        ours.send(_native.encode_shutdown())
        os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
        os.close(pidfd)
        ours.close()


def test_failure_infra_cgroup_not_a_cgroup(tmp_path: Path) -> None:
    import socket

    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        with pytest.raises(_native.SpawnError) as info:
            _native.spawn_infra(theirs.fileno(), clone_flags=0, hostname="", cgroup_dir=fd)
    finally:
        os.close(fd)
        ours.close()
        theirs.close()
    assert info.value.step == "cgroup"
