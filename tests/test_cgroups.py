"""cgroups: discovery and quantities (pure), then the v1 driver on this machine's v1
hierarchies and the v2 driver on a cgroup2 mount. Every real test uses a parent cgroup of
its own (a random name) and removes it."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop
from conftest import Supd, finish_supd, require_root, until_dir_changes

from supervisor import cgroups
from supervisor.cgroups import (
    CgroupsV1,
    CgroupsV2,
    Limits,
    NoCgroups,
)
from supervisor.errors import InvalidArgument, PermissionDenied
from supervisor.manifest import parse_pod
from supervisor.quantity import cpu_millis, memory_bytes, parse_quantity
from supervisor.runtime import shares_pod_cgroup

MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""


def test_mounts_and_own_cgroups_are_parsed() -> None:
    found = {str(m.path): m for m in cgroups.mounts(MOUNTINFO)}
    assert found["/sys/fs/cgroup/cpu,cpuacct"].controllers == {"cpu", "cpuacct"}
    assert found["/sys/fs/cgroup/systemd"].controllers == frozenset()
    assert found["/sys/fs/cgroup/unified"].version == 2
    assert found["/sys/fs/cgroup/unified"].options == ("rw", "nsdelegate")
    own = cgroups.own_cgroups("4:memory:/a/b\n1:cpu,cpuacct:/\n0::/init.scope\n")
    assert own == {"memory": "/a/b", "cpu": "/", "cpuacct": "/", "": "/init.scope"}
    v1 = CgroupsV1.discover(list(found.values()), own, "sup")
    # cpu and cpuacct share a hierarchy: one directory, under supd's own cgroup there.
    assert v1.dirs["cpu"] == v1.dirs["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct/sup")
    assert v1.dirs["memory"] == Path("/sys/fs/cgroup/memory/a/b/sup")
    assert "pids" not in v1.controllers
    absolute = CgroupsV1.discover(list(found.values()), own, "/top/sup")
    assert absolute.dirs["memory"] == Path("/sys/fs/cgroup/memory/top/sup")
    with pytest.raises(InvalidArgument, match="--cgroup-parent"):
        CgroupsV1.discover(list(found.values()), own, "../escape")


@pytest.mark.parametrize(
    ("text", "millis", "nbytes"),
    [
        ("500m", 500, 1),
        ("1", 1000, 1),
        ("0.5", 500, 1),
        ("2.5", 2500, 3),
        ("1Mi", 1048576000, 1048576),
        ("128M", 128_000_000_000, 128_000_000),
        ("1e3", 1_000_000, 1000),
        ("1.5Gi", 1610612736000, 1610612736),
        ("100k", 100_000_000, 100_000),
        ("1n", 1, 1),
    ],
)
def test_quantities_round_up_like_kubernetes(text: str, millis: int, nbytes: int) -> None:
    assert cpu_millis(text) == millis
    assert memory_bytes(text) == nbytes


@pytest.mark.parametrize("text", ["", "m", "1.2.3", "1Qi", "abc", "1e99", "."])
def test_bad_quantities(text: str) -> None:
    assert parse_quantity(text) is None


def test_cpu_quota_is_kubelets() -> None:
    assert Limits(cpu_millis=500).cpu_quota_us() == 50_000
    assert Limits(cpu_millis=1).cpu_quota_us() == 1_000  # at least 1 ms
    assert Limits().cpu_quota_us() is None
    assert not Limits() and Limits(pids=10)


def _c(name: str, limits: dict[str, str] | None = None, kind: str = "limits") -> dict[str, object]:
    c: dict[str, object] = {"name": name, "command": ["sleep", "1"]}
    if limits is not None:
        c["resources"] = {kind: limits}
    return c


@pytest.mark.parametrize(
    ("containers", "init", "shared"),
    [
        ([_c("a")], [], [True]),
        ([_c("a", {"cpu": "100m"})], [], [False]),
        ([_c("a", {"memory": "64Mi"})], [], [False]),
        ([_c("a", {"cpu": "100m", "memory": "64Mi"}, "requests")], [], [True]),
        ([_c("a"), _c("b")], [], [False, False]),
        ([_c("a")], [_c("setup")], [False, False]),  # init first, then a
    ],
)
def test_a_pods_only_container_without_limits_shares_the_pods_cgroup(
    containers: list[dict[str, object]], init: list[dict[str, object]], shared: list[bool]
) -> None:
    spec, _ = parse_pod(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": containers, "initContainers": init},
        }
    )
    got = [shares_pod_cgroup(spec, c) for c in spec.containers + spec.init_containers]
    assert got == shared


def test_no_cgroups_refuses_limits_with_the_reason() -> None:
    none = NoCgroups("cgroups disabled with --cgroups=off")
    none.create_pod("u", Limits())
    with pytest.raises(PermissionDenied, match=r"memory cgroup controller is not available"):
        none.create_pod("u", Limits(memory_bytes=1 << 20))


# -- real cgroups ---------------------------------------------------------------------------


def run(coro: object) -> object:
    return uvloop.run(coro)  # type: ignore[arg-type]


@pytest.fixture
def v1() -> Iterator[CgroupsV1]:
    require_root()
    found = cgroups.mounts()
    if not any(m.version == 1 and "memory" in m.controllers for m in found):
        pytest.skip("no cgroup v1 memory hierarchy on this machine")
    drv = CgroupsV1.discover(found, cgroups.own_cgroups(), "supd-test-" + secrets.token_hex(4))
    drv.setup()
    try:
        yield drv
    finally:
        for uid in drv.pod_uids():
            run(drv.remove_pod(uid))
        for path in drv.parents():
            with contextlib.suppress(FileNotFoundError):
                path.rmdir()


@contextlib.contextmanager
def process_in(procs_files: list[Path], *argv: str) -> Iterator[subprocess.Popen[bytes]]:
    """A process that puts itself into the given cgroups ("0" is the writer) and then
    execs argv; yielded once it is in."""
    writes = "".join(f"echo 0 > {p} && " for p in procs_files)
    proc = subprocess.Popen(
        ["sh", "-c", f'{writes}echo in; exec "$@"', "sh", *argv], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"in\n"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_v1_limits_usage_oom_and_removal(v1: CgroupsV1) -> None:
    uid = "uid-" + secrets.token_hex(3)
    v1.create_pod(uid, Limits(cpu_millis=500, memory_bytes=64 << 20, pids=100))
    v1.create_container(uid, "hog", Limits(cpu_millis=250, memory_bytes=32 << 20))
    mem = v1.dirs["memory"] / f"pod{uid}"
    assert (mem / "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
    assert (mem / "hog" / "memory.limit_in_bytes").read_text().strip() == str(32 << 20)
    cpu = v1.dirs["cpu"] / f"pod{uid}" / "hog"
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "25000"
    assert (v1.dirs["pids"] / f"pod{uid}" / "pids.max").read_text().strip() == "100"
    placement = v1.placement(uid, "hog")
    # No pids limit on the container: no pids cgroup for it.
    held = {v1.dirs[c] for c in ("cpu", "cpuacct", "memory")}
    assert not placement.clone_into and len(placement.fds) == len(held)
    placement.close()
    files = [p / f"pod{uid}" / "hog" / "cgroup.procs" for p in held]
    before = v1.oom_kills(uid, "hog")
    # Over its limit (no swap: memsw is held to the limit), the kernel OOM-kills it.
    with process_in(files, sys.executable, "-c", "b = b'x' * (200 << 20)") as proc:
        assert proc.wait(timeout=30) == -signal.SIGKILL
    assert v1.oom_kills(uid, "hog") == before + 1
    usage = v1.usage(uid, "hog")
    assert usage is not None and usage.cpu_ns > 0 and usage.memory_bytes is not None
    pod_usage = v1.usage(uid)
    assert pod_usage is not None and pod_usage.cpu_ns >= usage.cpu_ns
    # A process still inside is killed on removal.
    with process_in(files, "sleep", "1000") as proc:
        assert run(v1.remove_pod(uid)) is True
        assert proc.wait(timeout=10) == -signal.SIGKILL
    assert not mem.exists() and v1.pod_uids() == []


def test_v1_prune_removes_pods_that_are_gone(v1: CgroupsV1) -> None:
    v1.create_pod("live", Limits())
    v1.create_pod("dead", Limits())
    v1.create_container("dead", "c", Limits(pids=5))
    assert run(v1.prune(["live"])) == ["dead"]
    assert v1.pod_uids() == ["live"]


def test_v1_a_parent_another_supd_removed_is_made_again(v1: CgroupsV1) -> None:
    """Two supds on one parent: the one that stops with no pod left removes it; the other's
    next pod makes it again rather than failing its sandbox for good."""
    v1.remove_parent()
    assert not any(p.exists() for p in v1.parents())
    v1.create_pod("again", Limits(pids=5))
    assert v1.pod_uids() == ["again"]
    assert (v1.dirs["pids"] / "podagain" / "pids.max").read_text().strip() == "5"


def test_v1_infra_is_moved_into_the_pod_cgroup(v1: CgroupsV1) -> None:
    v1.create_pod("p", Limits())
    proc = subprocess.Popen(["sleep", "1000"])
    try:
        v1.add_infra("p", proc.pid)
        for c in ("cpuacct", "memory"):
            procs = v1.dirs[c] / "podp" / "cgroup.procs"
            assert procs.read_text().split() == [str(proc.pid)]
    finally:
        proc.kill()
        proc.wait()


def test_v1_cgroups_that_would_hold_nothing_are_not_made(v1: CgroupsV1) -> None:
    """cpuacct and memory always (usage, OOM kills); cpu and pids only for a limit."""
    v1.create_pod("p", Limits())
    v1.create_container("p", "plain", Limits())
    v1.create_container("p", "capped", Limits(cpu_millis=100))
    always = {v1.dirs["cpuacct"], v1.dirs["memory"]}
    for c in ("cpu", "pids"):
        if v1.dirs[c] not in always:
            assert not (v1.dirs[c] / "podp" / "plain").exists(), c
    assert (v1.dirs["cpu"] / "podp" / "capped" / "cpu.cfs_quota_us").read_text().strip() == "10000"
    placement = v1.placement("p", "plain")
    assert len(placement.fds) == len(always)
    placement.close()
    assert run(v1.remove_pod("p")) is True
    assert v1.pod_uids() == []


def _procs_of(path: Path) -> list[str]:
    return (path / "cgroup.procs").read_text().split()


def test_v1_pooled_cgroups_are_made_ahead_and_renamed_for_their_pod(v1: CgroupsV1) -> None:
    """prepare_pooled: pool-SUPD-PID/ in cpuacct and memory, the infra in it and nothing
    under it; claim_pooled renames it to pod<UID> (the same directory) and adds the
    limits' hierarchies; containers get cgroups of their own under it."""
    always = list(dict.fromkeys([v1.dirs["cpuacct"], v1.dirs["memory"]]))
    proc = subprocess.Popen(["sleep", "1000"])
    try:
        key = v1.prepare_pooled(proc.pid)
        assert key == f"{os.getpid()}-{proc.pid}"
        for parent in always:
            assert _procs_of(parent / f"pool-{key}") == [str(proc.pid)]
            assert [p.name for p in (parent / f"pool-{key}").iterdir() if p.is_dir()] == []
        made = {p: (p / f"pool-{key}").stat().st_ino for p in always}
        v1.claim_pooled(key, "u", Limits(cpu_millis=500, pids=20), proc.pid)
        for parent in always:
            assert not (parent / f"pool-{key}").exists()
            assert (parent / "podu").stat().st_ino == made[parent]
            assert _procs_of(parent / "podu") == [str(proc.pid)]
        for c in ("cpu", "pids"):  # made for the limits, the infra moved in
            assert _procs_of(v1.dirs[c] / "podu") == [str(proc.pid)]
        assert (v1.dirs["pids"] / "podu" / "pids.max").read_text().strip() == "20"
        v1.create_container("u", "main", Limits())
        v1.create_container("u", "side", Limits())
        for parent in always:
            assert (parent / "podu" / "main").is_dir()
            assert (parent / "podu" / "side").is_dir()
        assert v1.pod_uids() == ["u"]
    finally:
        proc.kill()
        proc.wait()
    assert run(v1.remove_pod("u")) is True and v1.pod_uids() == []


def test_v1_pooled_cgroups_that_cannot_be_claimed_change_nothing(v1: CgroupsV1) -> None:
    always = list(dict.fromkeys([v1.dirs["cpuacct"], v1.dirs["memory"]]))
    with subprocess.Popen(["sleep", "1000"]) as proc:
        key = v1.prepare_pooled(proc.pid)
        assert key is not None
        (always[-1] / f"pool-{key}").rename(always[-1] / "elsewhere")  # one is missing
        with pytest.raises(cgroups.CgroupError, match="rename cgroup"):
            v1.claim_pooled(key, "u", Limits(), proc.pid)
        assert v1.pod_uids() == []  # the renames done were undone
        assert all(_procs_of(p / f"pool-{key}") == [str(proc.pid)] for p in always[:-1])
        (always[-1] / "elsewhere").rename(always[-1] / f"pool-{key}")
        run(v1.remove_pooled(key))  # what is still inside is killed
        assert proc.wait(timeout=10) == -signal.SIGKILL
    assert not any((p / f"pool-{key}").exists() for p in always)


def test_v1_prune_removes_pooled_cgroups_of_another_supd(v1: CgroupsV1) -> None:
    always = list(dict.fromkeys([v1.dirs["cpuacct"], v1.dirs["memory"]]))
    proc = subprocess.Popen(["sleep", "1000"])
    try:
        ours = v1.prepare_pooled(proc.pid)
        assert ours is not None
        for parent in v1.parents():
            (parent / "pool-1-2" / "_first").mkdir(parents=True)  # a supd that died
        assert run(v1.prune([])) == []
        for parent in always:
            assert _procs_of(parent / f"pool-{ours}") == [str(proc.pid)]
        assert not any((p / "pool-1-2").exists() for p in v1.parents())
        run(v1.remove_pooled(ours))
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()


def start_sleeper(d: Supd, name: str, more: str = "") -> tuple[str, int, int]:
    """Apply a pod whose container sleeps (`more`: lines added after its spec: its
    resources, or more containers) and wait until it is Ready: its uid, its infra's pid
    and its first container's."""
    d.apply(
        f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n"
        "  terminationGracePeriodSeconds: 0\n"
        "  containers:\n  - name: c\n    command: [sleep, '1000']\n" + more
    )
    d.wait(name)
    infra = d.infra_of(name)
    children = sorted(
        int(p) for p in Path(f"/proc/{infra}/task/{infra}/children").read_text().split()
    )
    assert len(children) == 1 + more.count("- name:"), children
    return d.pod(name)["metadata"]["uid"], infra, children[0]


def test_supd_v1_pooled_infras_bring_their_pods_cgroup(tmp_path: Path) -> None:
    """A pod that takes a pooled infra finds it in its cgroup (pod<UID>). Its only
    container, with no limit, runs beside it there (shares_pod_cgroup), and `top` gives it
    the pod's usage; one with a limit gets a cgroup of its own. The pool's cgroups go with
    supd."""
    require_root()
    if not any(m.version == 1 and "memory" in m.controllers for m in cgroups.mounts()):
        pytest.fail("this machine has no cgroup v1 memory hierarchy to test with")
    d = Supd(socket=tmp_path / "s.sock", state_dir=tmp_path / "state")
    d.start("--cgroups", "v1")
    drv = cgroups.select("v1", d.cgroup_parent)
    assert isinstance(drv, CgroupsV1)
    memory = drv.dirs["memory"]
    try:
        assert d.proc is not None
        pattern = f"pool-{d.proc.pid}-*"
        assert until_dir_changes(memory, lambda: len(list(memory.glob(pattern))) == 2)
        uid, infra, container = start_sleeper(d, "p1")
        for parent in (memory, drv.dirs["cpuacct"]):
            assert sorted(_procs_of(parent / f"pod{uid}")) == sorted([str(infra), str(container)])
            assert [p.name for p in (parent / f"pod{uid}").iterdir() if p.is_dir()] == []
        assert not (memory / f"pool-{d.proc.pid}-{infra}").exists()
        out = d.ctl("top", "containers", "p1").stdout.splitlines()
        assert out[1].split()[:2] == ["p1", "c"] and "<unknown>" not in out[1], out
        limited = "    resources:\n      limits:\n        memory: 64Mi\n"
        uid2, infra2, container2 = start_sleeper(d, "p2", limited)
        assert _procs_of(memory / f"pod{uid2}") == [str(infra2)]
        assert _procs_of(memory / f"pod{uid2}" / "c") == [str(container2)]
        limit = (memory / f"pod{uid2}" / "c" / "memory.limit_in_bytes").read_text()
        assert int(limit) == 64 << 20
        d.ctl("delete", "pod", "p1", "p2")
        d.stop()
        # No pod left: the parent cgroup went, and the pool's cgroups before it.
        assert not memory.exists(), list(memory.iterdir())
    finally:
        finish_supd(d, tmp_path)


@pytest.fixture
def v2() -> Iterator[CgroupsV2]:
    """The v2 driver on this machine's cgroup2 mount (with whatever controllers it has)."""
    require_root()
    unified = next((m for m in cgroups.mounts() if m.version == 2), None)
    if unified is None:
        pytest.skip("no cgroup2 mount")
    own = cgroups.own_cgroups().get("", "/")
    drv = CgroupsV2(unified.path, own, "/supd-test-" + secrets.token_hex(4))
    try:
        drv.setup()
    except cgroups.CgroupError as e:
        pytest.skip(f"cgroup2 mount not usable here: {e}")
    try:
        yield drv
    finally:
        for uid in drv.pod_uids():
            run(drv.remove_pod(uid))
        with contextlib.suppress(FileNotFoundError):
            drv.parent.rmdir()


def test_v2_pods_usage_and_removal_with_cgroup_kill(v2: CgroupsV2) -> None:
    v2.create_pod("p", Limits())
    v2.create_container("p", "c", Limits())
    placement = v2.placement("p", "c")
    assert placement.clone_into and len(placement.fds) == 1
    placement.close()
    with process_in([v2.parent / "podp" / "c" / "cgroup.procs"], "sleep", "1000") as proc:
        assert (v2.parent / "podp" / "c" / "cgroup.procs").read_text().split() == [str(proc.pid)]
        usage = v2.usage("p", "c")
        assert usage is not None and usage.cpu_ns >= 0
        if "memory" not in v2.controllers:
            assert usage.memory_bytes is None
        assert run(v2.remove_pod("p")) is True
        assert proc.wait(timeout=10) == -signal.SIGKILL
    assert v2.pod_uids() == []


def test_v2_limits_need_their_controllers(v2: CgroupsV2) -> None:
    limits = Limits(cpu_millis=100, memory_bytes=1 << 20, pids=4)
    missing = {"cpu", "memory", "pids"} - v2.controllers
    if not missing:
        v2.create_pod("l", limits)
        assert (v2.parent / "podl" / "pids.max").read_text().strip() == "4"
        return
    with pytest.raises(PermissionDenied, match="cgroup controller") as info:
        v2.create_pod("l", limits)
    for c in missing:
        assert c in str(info.value)


def test_select_picks_a_driver_for_this_machine() -> None:
    drv = cgroups.select("auto", "/x")
    if Path("/sys/fs/cgroup/memory").is_dir():
        assert drv.version == 1
    assert cgroups.select("off").version == 0
    with pytest.raises(InvalidArgument):
        cgroups.select("v3")


def test_remove_gives_up_on_a_process_that_will_not_leave(tmp_path: Path) -> None:
    # Not a cgroup at all: rmdir of a non-empty directory fails with ENOTEMPTY, which is
    # reported as "not removed" without waiting.
    (tmp_path / "podx" / "c").mkdir(parents=True)
    (tmp_path / "podx" / "c" / "file").write_text("")
    assert asyncio.run(cgroups._rmtree(tmp_path / "podx", use_kill_file=True)) is False
    assert os.path.isdir(tmp_path / "podx")


# -- favordynmods ------------------------------------------------------------------------


def cgroup2_options() -> dict[str, tuple[str, ...]]:
    return {str(m.path): m.options for m in cgroups.mounts() if m.version == 2}


def clear_favordynmods() -> None:
    """Remount every cgroup2 mount with its options less favordynmods (the kernel clears
    a root flag that a remount does not name)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for path, opts in cgroup2_options().items():
        keep = ",".join(o for o in opts if o not in ("rw", "ro", "favordynmods"))
        assert libc.mount(None, path.encode(), None, cgroups.MS_REMOUNT, keep.encode()) == 0


@pytest.mark.parametrize("flag", ["--favordynmods", "--no-favordynmods"])
def test_supd_remounts_cgroup2_with_favordynmods_unless_told_not_to(
    tmp_path: Path, flag: str
) -> None:
    require_root()
    if not cgroup2_options():
        pytest.fail("this machine has no cgroup2 mount to test with")
    clear_favordynmods()
    before = cgroup2_options()
    assert not any("favordynmods" in o for o in before.values())
    d = Supd(socket=tmp_path / "s.sock", state_dir=tmp_path / "state")
    d.start(flag)
    try:
        after = cgroup2_options()
        log = (tmp_path / "supd.log").read_text()
    finally:
        finish_supd(d, tmp_path)
    if flag == "--favordynmods":
        for path, opts in after.items():
            # the other options are kept
            assert opts == (*before[path], "favordynmods"), path
            assert f"remounted {path} with favordynmods" in log
    else:
        assert after == before


def test_supd_on_cgroup_v2_clones_infras_into_their_cgroup_through_the_zygote(
    tmp_path: Path,
) -> None:
    """On v2 the zygote clones each infra straight into PARENT/pod<UID>/_infra (clone3
    CLONE_INTO_CGROUP) and infra clones a container into PARENT/pod<UID>/<NAME>, but a
    pod's only container without limits, which stays beside it in _infra."""
    require_root()
    if not cgroup2_options():
        pytest.fail("this machine has no cgroup2 mount to test with")
    d = Supd(socket=tmp_path / "s.sock", state_dir=tmp_path / "state")
    d.start("--cgroups", "v2")
    try:
        uid, infra, container = start_sleeper(d, "v2")
        parent = int(Path(f"/proc/{infra}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert Path(f"/proc/{parent}/comm").read_text().strip() == "supd-zygote"

        def v2_path(pid: int) -> str:
            line = next(
                x
                for x in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                if x.startswith("0::")
            )
            return line[3:]

        assert v2_path(infra).endswith(f"/{d.cgroup_parent}/pod{uid}/_infra")
        assert v2_path(container).endswith(f"/{d.cgroup_parent}/pod{uid}/_infra")
        second = "  - name: d\n    command: [sleep, '1000']\n"
        uid2, infra2, _ = start_sleeper(d, "two", second)
        children = Path(f"/proc/{infra2}/task/{infra2}/children").read_text().split()
        assert sorted(v2_path(int(pid)).rsplit("/", 2)[1:] for pid in children) == [
            [f"pod{uid2}", "c"],
            [f"pod{uid2}", "d"],
        ]
        d.ctl("delete", "pod", "v2", "two")
        drv = cgroups.select("v2", d.cgroup_parent)
        assert uid not in drv.pod_uids() and uid2 not in drv.pod_uids()
    finally:
        finish_supd(d, tmp_path)
