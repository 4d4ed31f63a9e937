"""Live restore: a supd killed with SIGKILL, at any moment, loses nothing; the next one on
the same state dir takes every pod over without restarting a running container.

The record and the instance ids get table tests; the rest runs real supds and real pods,
and checks the kernel's view (/proc) beside `supctl get`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    Supd,
    finish_supd,
    proc_children,
    until_dir_changes,
    until_gone,
    zombies_of,
)
from test_pods import pod_yaml

from supervisor import lifecycle, restore, runtime
from supervisor.client import Client
from supervisor.errors import SupervisorError
from supervisor.manifest import load_pods

# -- the record and the instance ids -----------------------------------------------------


def spec_of(text: str) -> Any:
    (spec,) = [s for s, _w in load_pods(text, "test")]
    return spec


def test_the_record_round_trips_every_field() -> None:
    spec = spec_of(pod_yaml("rec", "a=sleep 1", init=("i=true",)))
    status = lifecycle.new_status(spec, 100.0)
    lifecycle.container_starting(status.init_containers[0], restore.cid_of(1, 0))
    lifecycle.container_started(spec, status, "i", 42, 101.0)
    lifecycle.container_exited(spec, status, "i", 0, 0, 102.0, lifecycle.BackoffPolicy())
    lifecycle.container_starting(status.containers[0], restore.cid_of(2, 1))
    lifecycle.container_started(spec, status, "a", 43, 103.0)
    record = restore.Record(
        status=status, next_instance=3, seq=7, infra=(10, 20), fs_ready=True, deleted_at=5.5
    )
    again = restore.decode_record(restore.encode_record(record))
    assert again == record
    assert restore.matches(again, ["i", "a"]) and not restore.matches(again, ["a", "i"])


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"[]", b'{"version": 2}', b'{"version": 1, "status": {}}', b'{"version": 1}'],
)
def test_a_broken_record_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        restore.decode_record(data)


@pytest.mark.parametrize(
    ("instance", "index"), [(1, 0), (1, 255), (7, 3), (restore.MAX_INSTANCE, 17)]
)
def test_an_instance_id_carries_the_container_index(instance: int, index: int) -> None:
    cid = restore.cid_of(instance, index)
    assert cid < 2**32 and restore.instance_of(cid) == instance and restore.index_of(cid) == index


def test_logs_are_found_oldest_instance_first(tmp_path: Path) -> None:
    for n in (0, 1, 2, 10):
        (tmp_path / "c").mkdir(exist_ok=True)
        (tmp_path / "c" / f"{n}.log").touch()
    (tmp_path / "c" / "junk.log").touch()
    found = restore.find_logs(tmp_path, ["c", "d"])
    assert found == {"c": [tmp_path / "c" / f"{n}.log" for n in (0, 1, 2, 10)]}


# -- real supds ------------------------------------------------------------------------------


def infra_record(d: Supd, name: str) -> tuple[int, int]:
    d.infra_of(name)  # remembered, for the clean-up
    (directory,) = (d.run_dir / "pods").glob(f"default_{name}_*")
    pid, start = (int(x) for x in (directory / "infra").read_text().split())
    return pid, start


def statuses(d: Supd, name: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in d.pod(name)["status"]["containerStatuses"]}


def test_exits_while_supd_is_away_are_learned_and_counted(supd: Supd, tmp_path: Path) -> None:
    """A container that exits while no supd runs: the next one hears of it from the infra
    (its report was kept), counts the restart and starts it again."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    supd.apply(pod_yaml("away", f"c=echo run; read x < {gate}; exit 3", "s=sleep 1000"))
    supd.wait("away")
    infra, _ = infra_record(supd, "away")
    steady = [p for p in proc_children(infra) if "sleep" in Path(f"/proc/{p}/cmdline").read_text()]
    supd.stop(signal.SIGKILL)
    (reader,) = set(proc_children(infra)) - set(steady)
    os.close(os.open(gate, os.O_WRONLY))  # it exits now, with nobody to hear of it but infra
    assert until_gone([reader])
    supd.start()
    status = supd.watch_until("away", lambda p: p["status"]["containerStatuses"][0]["restartCount"])
    c = status["status"]["containerStatuses"][0]
    assert c["restartCount"] == 1 and c["lastState"]["terminated"]["exitCode"] == 3
    assert statuses(supd, "away")["s"]["restartCount"] == 0
    assert set(steady) <= set(proc_children(infra))  # the other container never stopped
    assert supd.ctl("logs", "away", "-c", "c", "--previous").stdout == "run\n"


def test_probe_execs_leave_the_record_alone_and_survive_a_restart(
    supd: Supd, tmp_path: Path
) -> None:
    """Reports of execs alone (a probe's, each second) change nothing in the pod's record:
    it is not rewritten for them (it was, twice a second), not even to acknowledge them,
    and a supd killed while the infra still holds some unacknowledged is followed by one
    that takes the pod over."""
    runs = tmp_path / "runs"
    runs.mkdir()
    supd.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: probed}}
spec:
  containers:
  - name: c
    command: [sleep, "1000"]
    readinessProbe:
      exec: {{command: [sh, -c, 'touch {runs}/$(date +%s%N)']}}
      periodSeconds: 1
""")
    supd.wait("probed")
    infra = infra_record(supd, "probed")
    (directory,) = (supd.run_dir / "pods").glob("default_probed_*")

    def more_runs(n: int) -> bool:
        """Wait until the probe has run `n` more times (each run makes a file in runs/)."""
        seen = len(os.listdir(runs))
        return until_dir_changes(runs, lambda: len(os.listdir(runs)) >= seen + n)

    # The record is written at Ready; once a probe has run since, it is what it will be.
    assert more_runs(1)
    inode = (directory / restore.RECORD).stat().st_ino
    # Past EXEC_ACK_DELAY: the exec reports are acknowledged, and still nothing is written.
    assert more_runs(int(runtime.EXEC_ACK_DELAY) + 2)
    assert (directory / restore.RECORD).stat().st_ino == inode
    supd.stop(signal.SIGKILL)
    supd.start()
    assert more_runs(2)  # the new supd probes on
    pod = supd.pod("probed")
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
    assert statuses(supd, "probed")["c"]["restartCount"] == 0
    assert infra_record(supd, "probed") == infra


def test_a_pod_whose_infra_died_meanwhile_gets_a_new_sandbox(supd: Supd) -> None:
    supd.apply(pod_yaml("lost", "c=sleep 1000"))
    supd.wait("lost")
    infra, _ = infra_record(supd, "lost")
    supd.stop(signal.SIGKILL)
    os.kill(infra, signal.SIGKILL)
    assert until_gone([infra])
    supd.start()
    supd.wait("lost")
    c = statuses(supd, "lost")["c"]
    assert c["restartCount"] == 1
    assert c["lastState"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert c["lastState"]["terminated"]["exitCode"] == 137
    assert infra_record(supd, "lost")[0] != infra


def filesystem_at(path: Path) -> str:
    """The type of the filesystem mounted exactly at `path` ("" when none is)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if left.split()[4] == str(path):
            return right.split()[0]
    return ""


def test_the_run_dir_is_a_tmpfs_and_a_reboot_keeps_finished_pods_finished(
    supd: Supd, tmp_path: Path
) -> None:
    """What dies with the machine (records, infra sockets, /etc files) lives in STATE/run,
    a tmpfs; manifests and logs on disk. A reboot (the infras killed, the tmpfs emptied)
    leaves a finished pod finished and not run again, and starts a running one afresh."""
    assert filesystem_at(supd.run_dir) == "tmpfs"
    runs = tmp_path / "runs"
    supd.apply(pod_yaml("done", f"c=echo once >> {runs}", restart="Never"))
    supd.apply(pod_yaml("up", "c=sleep 1000"))
    supd.watch_until("done", lambda o: o["status"]["phase"] == "Succeeded")
    supd.wait("up")
    infra, _ = infra_record(supd, "up")
    (disk,) = (supd.state_dir / "pods").glob("default_up_*")
    run = supd.run_dir / "pods" / disk.name
    assert {p.name for p in disk.iterdir()} == {"pod.json", "c"}
    assert {"status.json", "infra", "infra.sock", "etc"} <= {p.name for p in run.iterdir()}
    (done,) = (supd.state_dir / "pods").glob("default_done_*")
    assert until_dir_changes(done, lambda: (done / restore.RECORD).exists())

    supd.stop()  # pods keep running, as they would until the machine goes down
    os.kill(infra, signal.SIGKILL)
    assert until_gone([infra])
    subprocess.run(["umount", str(supd.run_dir)], check=True)
    supd.start()
    assert filesystem_at(supd.run_dir) == "tmpfs"  # mounted again, empty
    supd.wait("up")
    after = supd.pod("done")["status"]
    assert after["phase"] == "Succeeded"
    assert after["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert runs.read_text() == "once\n"
    up = statuses(supd, "up")["c"]
    assert up["restartCount"] == 0 and not up.get("lastState"), up  # README: after a reboot
    assert infra_record(supd, "up")[0] != infra


def test_pods_of_a_supd_from_before_the_run_dir_are_taken_over(supd: Supd) -> None:
    """A supd with its run dir in the state dir (the layout from before --run-dir), killed,
    then one with the default run dir: it finds the infra at its old socket and takes the
    pod over, its container never restarted."""
    supd.stop()
    supd.run_dir = supd.state_dir  # the old layout
    supd.start("--run-dir", str(supd.state_dir))
    supd.apply(pod_yaml("old", "c=sleep 1000"))
    supd.wait("old")
    infra, _ = infra_record(supd, "old")
    (directory,) = (supd.state_dir / "pods").glob("default_old_*")
    assert (directory / restore.SOCKET).exists() and (directory / restore.RECORD).exists()
    (container,) = proc_children(infra)
    supd.stop(signal.SIGKILL)
    supd.run_dir = supd.state_dir / "run"
    supd.start()
    supd.wait("old")
    assert statuses(supd, "old")["c"]["restartCount"] == 0
    assert proc_children(infra) == [container]
    supd.ctl("delete", "pod", "old", "--grace-period", "0")
    assert until_gone([infra, container])


def test_a_pod_killed_before_its_first_report_is_taken_over_without_a_record(
    supd: Supd, tmp_path: Path
) -> None:
    """A new pod's first record waits for its infra's first report (Runtime._adopt): a
    supd that dies between the START and that report leaves none, and the next supd takes
    the pod over from the infra's replay alone, its container never restarted."""
    pool = supd.run_dir / "pool"

    def pooled() -> list[int]:  # the infras made ahead (RUN/pool/PID; not a .tmp file)
        return [int(p.name) for p in pool.iterdir() if p.name.isdigit()]

    assert until_dir_changes(pool, lambda: len(pooled()) >= 2)
    infras = pooled()
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    assert supd.proc is not None
    for pid in infras:  # the START waits in the socket of whichever one the pod takes
        os.kill(pid, signal.SIGSTOP)
    try:
        supd.apply(pod_yaml("early", f"c=echo up > {gate}; exec sleep 1000"))
        supd.proc.send_signal(signal.SIGSTOP)  # it reads no report from now on
    finally:
        for pid in infras:
            os.kill(pid, signal.SIGCONT)
    try:
        with open(gate) as f:  # opens once the container runs
            assert f.read() == "up\n"
        infra, _ = infra_record(supd, "early")
        assert infra in infras
        (container,) = proc_children(infra)
        (run,) = (supd.run_dir / "pods").glob("default_early_*")
        assert not (run / restore.RECORD).exists()  # the window this test is about
    finally:
        supd.stop(signal.SIGKILL)  # stopped, it would not hear a SIGTERM
    supd.start()
    supd.wait("early")
    c = statuses(supd, "early")["c"]
    assert c["restartCount"] == 0 and "running" in c["state"], c
    assert proc_children(infra) == [container]
    assert (run / restore.RECORD).exists()
    supd.ctl("delete", "pod", "early", "--grace-period", "0")
    assert until_gone([infra, container])


def test_a_pod_being_deleted_when_supd_died_is_finished_off(supd: Supd) -> None:
    """Its deletion had begun (preStop running, a long grace period): the next supd carries
    the termination sequence on and the pod goes, processes and all."""
    hook = "  terminationGracePeriodSeconds: 30\n"
    text = pod_yaml("going", "c=trap 'exit 0' TERM; sleep 1000 & wait").replace(
        "  terminationGracePeriodSeconds: 2\n", hook
    )
    pre_stop = "    lifecycle:\n      preStop:\n        exec:\n          command: [sleep, '1000']\n"
    text = text.replace("    command:", pre_stop + "    command:")
    supd.apply(text)
    supd.wait("going")
    infra, _ = infra_record(supd, "going")
    supd.ctl("delete", "pod", "going", "--wait=false")
    supd.stop(signal.SIGKILL)  # with the preStop hook still running
    supd.start()
    supd.ctl("delete", "pod", "going", "--grace-period", "0")  # hurried: gone at once
    assert until_gone([infra])
    assert supd.ctl("get", "pod", "going", check=False).returncode == 1
    assert list((supd.state_dir / "pods").iterdir()) == []


# -- SIGKILL at random points, under load ------------------------------------------------------

KILLS = int(os.environ.get("SUP_RESTORE_KILLS", "100"))
SETTLE_TIMEOUT = 60.0
RUNS = 5  # each crashing pod's container runs this many times, then succeeds


def crashing(name: str, marks: Path) -> str:
    """Its container counts its runs in a host file and fails until the RUNS-th."""
    count = marks / name
    script = (
        f"n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}; "
        f"echo run $n; [ $n -ge {RUNS} ] && exit 0; exit 1"
    )
    return pod_yaml(name, f"c={script}", restart="OnFailure")


def steady(name: str, marks: Path) -> str:
    return pod_yaml(name, f"c=echo start >> {marks / name}; echo up; exec sleep 100000")


class Books:
    """What the clients were told: pods accepted or deleted for sure, and those whose
    request went unanswered (supd died first) and so may or may not have happened."""

    def __init__(self) -> None:
        self.accepted: set[str] = set()
        self.maybe_accepted: set[str] = set()
        self.deleted: set[str] = set()
        self.maybe_deleted: set[str] = set()


async def churn(d: Supd, i: int, rng: random.Random, marks: Path, books: Books) -> None:
    """One supd's life: applies and deletes in flight at once, and SIGKILL at a random
    moment among them."""
    assert d.proc is not None
    client = await Client.connect(str(d.socket))

    async def apply(name: str, text: str) -> None:
        manifests = [spec.manifest for spec, _w in load_pods(text, name)]
        try:
            await client.call("apply", manifests=manifests)
        except (SupervisorError, OSError):
            books.maybe_accepted.add(name)
            return
        books.accepted.add(name)

    async def delete(name: str) -> None:
        try:
            await client.call("delete", name=name, grace_period=0)
        except (SupervisorError, OSError):
            books.maybe_deleted.add(name)
            return
        books.deleted.add(name)

    ops = [apply(f"crash-{i}", crashing(f"crash-{i}", marks))]
    if i % 10 == 0:
        ops.append(apply(f"steady-{i}", steady(f"steady-{i}", marks)))
    candidates = sorted(books.accepted - books.deleted - books.maybe_deleted)
    if candidates and rng.random() < 0.3:
        ops.append(delete(rng.choice(candidates)))
    tasks = [asyncio.ensure_future(op) for op in ops]
    await asyncio.sleep(rng.uniform(0, 0.25))  # the random point of the kill
    d.proc.send_signal(signal.SIGKILL)
    await asyncio.get_running_loop().run_in_executor(None, d.proc.wait)
    d.proc = None
    await asyncio.gather(*tasks)
    await client.close()


async def settled(d: Supd, names: set[str]) -> dict[str, Any]:
    """Every pod in `names` as soon as each is done (a steady one Ready, a crashing one
    Succeeded), from one watch stream."""
    client = await Client.connect(str(d.socket))
    seen: dict[str, Any] = {}
    last: dict[str, Any] = {}

    def done(pod: dict[str, Any]) -> bool:
        status = pod["status"]
        if pod["metadata"]["name"].startswith("steady"):
            return any(c["type"] == "Ready" and c["status"] == "True" for c in status["conditions"])
        return bool(status["phase"] == "Succeeded")

    try:
        async with asyncio.timeout(SETTLE_TIMEOUT):
            async for event in client.stream("watch"):
                pod = event["object"]
                name = pod["metadata"]["name"]
                last[name] = pod["status"]
                if name in names and done(pod):
                    seen[name] = pod
                if set(seen) == names:
                    return seen
    except TimeoutError:
        stuck = {n: last.get(n) for n in names - set(seen)}
        raise AssertionError(f"never settled: {json.dumps(stuck, indent=1)}") from None
    finally:
        await client.close()
    raise AssertionError("the watch ended")


def test_supd_killed_at_random_points_loses_nothing(tmp_path: Path) -> None:
    from conftest import require_root

    require_root()
    seed = int(os.environ.get("SUP_RESTORE_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    marks = tmp_path / "runs"
    marks.mkdir()
    d = Supd(socket=tmp_path / "supd.sock", state_dir=tmp_path / "state")
    books = Books()
    try:
        for i in range(KILLS):
            if rng.random() < 0.1:
                # Now and then before it is ready: while it imports, or restores the pods.
                d.start("--log-level", "debug", ready=False)
                time.sleep(rng.uniform(0, 0.6))
                d.stop(signal.SIGKILL)
            d.start("--log-level", "debug")
            asyncio.run(churn(d, i, rng, marks, books))
        d.start()
        try:
            check_books(d, books, marks, seed)
        except AssertionError:
            keep = Path(os.environ.get("SUP_RESTORE_KEEP", "/tmp/restore-failure"))
            shutil.copytree(tmp_path, keep, dirs_exist_ok=True, ignore=ignore_sockets)
            raise
    finally:
        finish_supd(d, tmp_path)


def ignore_sockets(directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n.endswith(".sock")]


def check_books(d: Supd, books: Books, marks: Path, seed: int) -> None:
    why = f"(SUP_RESTORE_SEED={seed})"
    pods = {
        p["metadata"]["name"]: p
        for p in json.loads(d.ctl("get", "pods", "-o", "json").stdout)["items"]
    }
    assert not (books.accepted - books.deleted - books.maybe_deleted) - set(pods), why
    assert not books.deleted & set(pods), why
    for name in books.maybe_accepted - set(pods):
        assert not (marks / name).exists(), f"{name} ran but was lost {why}"
    live = set(pods)
    final = asyncio.run(settled(d, live))
    for name, pod in final.items():
        (c,) = pod["status"]["containerStatuses"]
        runs = (marks / name).read_text().split()
        directory = next((d.state_dir / "pods").glob(f"default_{name}_*"))
        logs = [
            p.read_text()
            for p in sorted((directory / "c").glob("*.log"), key=lambda p: int(p.stem))
        ]
        lines = [line.split(" ", 3)[3] for text in logs for line in text.splitlines()]
        if name.startswith("steady"):
            # Started once and never again, through every kill.
            assert runs == ["start"] and c["restartCount"] == 0, (name, c, why)
            assert lines == ["up"], (name, lines, why)
        else:
            # Each run counted once: as a restart, in its own log, with its line.
            files = sorted(p.name for p in (directory / "c").glob("*.log"))
            record = d.run_dir / "pods" / directory.name / restore.RECORD
            what = (name, files, lines, record.exists() and record.read_text(), why)

            assert runs == [str(RUNS)] and c["restartCount"] == RUNS - 1, what
            assert lines == [f"run {n}" for n in range(1, RUNS + 1)], what
    # The kernel's view: an infra for each steady pod, with its one container, and no
    # other infra in this supd's cgroups (none of a deleted or finished pod, no duplicate).
    steady_infras = set()
    for name in live:
        directory = next((d.run_dir / "pods").glob(f"default_{name}_*"))
        if name.startswith("steady"):
            pid, start = (int(x) for x in (directory / "infra").read_text().split())
            d.infra_pids.add((pid, start))
            assert len(proc_children(pid)) == 1 and zombies_of(pid) == [], (name, why)
            steady_infras.add(pid)
    assert infras_in(d.cgroup_parent) == steady_infras, why
    # Pooled infras (cgroups.py: pool-SUPD-PID) are this supd's only, none a killed one's.
    assert d.proc is not None
    pooled = infras_in(d.cgroup_parent, "pool-")
    assert pooled == infras_in(d.cgroup_parent, f"pool-{d.proc.pid}-"), why


def infras_in(cgroup_parent: str, prefix: str = "pod") -> set[int]:
    """The infras in the cgroups under `cgroup_parent` whose names start with `prefix`
    (pods' by default)."""
    found = set()
    for entry in os.listdir("/proc"):
        try:
            if Path(f"/proc/{entry}/comm").read_text().strip() != "supd-infra":
                continue
            if f"/{cgroup_parent}/{prefix}" in Path(f"/proc/{entry}/cgroup").read_text():
                found.add(int(entry))
        except (OSError, ValueError):
            continue
    return found
