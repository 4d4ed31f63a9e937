"""Soak: create and delete many pods, then compare what supd and the machine hold.

Starts its own supd on a temporary socket and state dir (its own cgroup parent, and with
--network bridge its own bridge and pod CIDR), warms up (a first batch, so that lazily made
things exist: the bridge, the pool of infras, the event log's first entries), takes a
snapshot, then creates and deletes N pods in batches of --concurrency: each pod has a
readiness probe (exec), an emptyDir volume and, with --network bridge, a veth, an address
and a lease. Every batch is applied in one request, waited for Ready on a watch stream, and
deleted (each delete returns once every process of the pod is gone). After the last batch
it waits (inotify, not sleeps) for the infra pool to refill and the trash to empty, takes a
second snapshot and prints the table:

  supd fds, supd RSS      /proc/SUPD/fd, VmRSS
  processes               supd's descendants (zygote, pooled infras, infras), by name
  zombies                 zombies among supd's descendants (and, not judged, on the system)
  mounts                  /proc/self/mountinfo lines naming the temporary dir
  links, addresses        `ip -o link` / `ip -o addr` lines naming the bridge or its veths
  cgroups                 directories under supd's cgroup parent, every hierarchy
  state files             entries under the state dir, but spare/
  spare pod dirs          deleted pods' directories kept for reuse (store.py): not judged,
                          but more than store.SPARES of them is a leak

Any difference is a leak, and the exit code is 1, except RSS, which may grow by
RSS_MARGIN over the snapshot taken a tenth of the way in: CPython's allocator keeps arenas
that still hold a live object, dicts and free lists keep their high-water size, so the
first pods raise RSS to a plateau that the rest must not climb above. Run as root:

    .venv/bin/python benchmarks/soak.py -n 10000 --network bridge
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import select
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor import inotify, store
from supervisor.client import Client

NAMESPACE = "soak"
RSS_MARGIN_KB = 8 << 10
"""How much supd's RSS may grow past its plateau (a tenth of the way in) without a leak."""
IN_ENTRY_EVENTS = 0x100 | 0x200 | 0x40 | 0x80  # IN_CREATE | IN_DELETE | IN_MOVED_FROM/TO


def manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "volumes": [{"name": "scratch", "emptyDir": {}}],
            "containers": [
                {
                    "name": "c",
                    "command": ["/bin/sleep", "100000"],
                    "volumeMounts": [{"name": "scratch", "mountPath": "/mnt"}],
                    "readinessProbe": {"exec": {"command": ["/bin/true"]}, "periodSeconds": 1},
                }
            ],
        },
    }


# -- what is held ---------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def stat_of(pid: int) -> tuple[str, str] | None:
    """(comm, state) of `pid`, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    return comm, text.rsplit(")", 1)[1].split()[0]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def system_zombies() -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = stat_of(int(entry.name))
            count += st is not None and st[1] == "Z"
    return count


def cgroup_dirs(parent: str) -> int:
    """Directories at and under `parent` in every cgroup hierarchy (v1 and v2)."""
    from supervisor import cgroups

    drv = cgroups.select("auto", parent)
    roots = drv.parents()
    return sum(1 + sum(1 for p in r.rglob("*") if p.is_dir()) for r in roots if r.is_dir())


def ip_lines(kind: str, pattern: str | None) -> int:
    if pattern is None:
        return 0
    out = subprocess.run(["ip", "-o", kind], capture_output=True, text=True, check=False).stdout
    return sum(1 for line in out.splitlines() if re.search(pattern, line))


def state_files(state: Path) -> int:
    spare = state / "spare"
    return sum(1 for p in state.rglob("*") if spare not in p.parents)


def spare_dirs(state: Path) -> int:
    spare = state / "spare"
    return sum(1 for _ in spare.iterdir()) if spare.is_dir() else 0


@dataclass
class Snapshot:
    values: dict[str, int] = field(default_factory=dict)
    names: Counter[str] = field(default_factory=Counter)


def snapshot(supd: int, tmp: Path, cgroup_parent: str, net: str | None) -> Snapshot:
    snap = Snapshot()
    procs = descendants(supd)
    stats = [s for s in map(stat_of, procs) if s is not None]
    snap.names = Counter(comm for comm, state in stats if state != "Z")
    mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    snap.values = {
        "supd fds": len(os.listdir(f"/proc/{supd}/fd")),
        "supd RSS (KiB)": rss_kb(supd),
        "processes": len(stats),
        "zombies (supd's)": sum(1 for _c, state in stats if state == "Z"),
        "mounts": sum(1 for line in mountinfo if str(tmp) in line),
        "links": ip_lines("link", net),
        "addresses": ip_lines("addr", net),
        "cgroups": cgroup_dirs(cgroup_parent),
        "state files": state_files(tmp / "state"),
        "spare pod dirs": spare_dirs(tmp / "state"),
        "zombies (system)": system_zombies(),
    }
    return snap


# Other work on the machine makes and reaps zombies of its own; spares are bounded (leaks).
NOT_JUDGED = {"zombies (system)", "spare pod dirs"}


def leaks(before: Snapshot, after: Snapshot, plateau_rss: int) -> list[str]:
    found = []
    for key, was in before.values.items():
        now = after.values[key]
        if key == "spare pod dirs" and now > store.SPARES:
            found.append(f"{key}: {now}, more than store.SPARES ({store.SPARES})")
        if key in NOT_JUDGED:
            continue
        if key == "supd RSS (KiB)":
            if now > max(was, plateau_rss) + RSS_MARGIN_KB:
                found.append(f"{key}: {was} -> {now} (plateau {plateau_rss})")
        elif now > was or (now < was and key != "supd fds"):
            # One fd fewer is no leak: what supd held at the start for a moment (a pooled
            # infra's pipe being made) may be closed at the end.
            found.append(f"{key}: {was} -> {now}")
    if before.names != after.names:
        found.append(f"processes by name: {dict(before.names)} -> {dict(after.names)}")
    return found


def table(before: Snapshot, mid_rss: int, after: Snapshot) -> str:
    rows = [f"{'':<20}{'before':>12}{'after':>12}{'change':>10}"]
    for key, was in before.values.items():
        now = after.values[key]
        rows.append(f"{key:<20}{was:>12}{now:>12}{now - was:>+10}")
    rows.append(f"{'RSS at 1/10 (KiB)':<20}{mid_rss:>12}")
    rows.append(f"{'processes by name':<20}{dict(before.names)} -> {dict(after.names)}")
    return "\n".join(rows)


# -- the run ----------------------------------------------------------------------------


def until_dir(directory: Path, done: Callable[[], bool], timeout: float = 30) -> bool:
    """Wait until `done()`, re-checked at each entry created or removed in `directory`."""
    watch = inotify.Inotify()
    try:
        watch.add_watch(directory, IN_ENTRY_EVENTS)
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([watch.fd], [], [], left)[0]:
                return done()
            watch.read()
        return True
    finally:
        watch.close()


def settle(state: Path, pool_size: int = 2) -> None:
    """Wait for the pool of infras to refill and the removed pods to be deleted."""
    pool = state / "run" / "pool"
    if not until_dir(pool, lambda: len(list(pool.iterdir())) == pool_size):
        print(f"warning: pool has {len(list(pool.iterdir()))} records", file=sys.stderr)
    for trash in (state / "trash", state / "run" / "trash"):
        if not until_dir(trash, lambda: not any(trash.iterdir())):  # noqa: B023
            print(f"warning: {trash} is not empty", file=sys.stderr)


class Soak:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.ready: dict[str, asyncio.Future[None]] = {}

    async def watch(self) -> None:
        async for change in self.client.stream("watch", namespace=NAMESPACE):
            obj = change["object"]
            fut = self.ready.get(obj["metadata"]["name"])
            conditions = obj["status"].get("conditions") or []
            if (
                fut is not None
                and not fut.done()
                and any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
            ):
                fut.set_result(None)

    async def batch(self, first: int, count: int) -> None:
        names = [f"p{i}" for i in range(first, first + count)]
        loop = asyncio.get_running_loop()
        futs = [self.ready.setdefault(n, loop.create_future()) for n in names]
        await self.client.call(
            "apply", manifests=[manifest(n) for n in names], force=False, source="soak"
        )
        await asyncio.wait_for(asyncio.gather(*futs), 60)
        await asyncio.gather(
            *(self.client.call("delete", namespace=NAMESPACE, name=n) for n in names)
        )
        for n in names:
            del self.ready[n]


def start_supd(tmp: Path, cgroup_parent: str, net: list[str]) -> subprocess.Popen[bytes]:
    r, w = os.pipe()
    supd = Path(sys.executable).parent / "supd"
    proc = subprocess.Popen(
        [
            str(supd),
            "--socket",
            str(tmp / "s.sock"),
            "--state-dir",
            str(tmp / "state"),
            "--notify-fd",
            str(w),
            "--log-level",
            "warning",
            "--cgroup-parent",
            cgroup_parent,
            *net,
        ],
        pass_fds=(w,),
        stderr=open(tmp / "supd.log", "ab"),  # noqa: SIM115
    )
    os.close(w)
    with os.fdopen(r, "rb") as ready:
        if not ready.readline():
            raise SystemExit(f"supd did not start:\n{(tmp / 'supd.log').read_text()}")
    return proc


@dataclass
class Result:
    pods: int
    seconds: float
    before: Snapshot
    mid_rss: int
    after: Snapshot
    leaks: list[str]


async def soak(
    tmp: Path,
    supd: int,
    n: int,
    concurrency: int,
    duration: float,
    cgroup_parent: str,
    net: str | None,
) -> Result:
    client = await Client.connect(str(tmp / "s.sock"))
    runner = Soak(client)
    watcher = asyncio.create_task(runner.watch())
    try:
        await runner.batch(-concurrency, concurrency)  # warm-up: names p-C .. p-1
        settle(tmp / "state")
        before = snapshot(supd, tmp, cgroup_parent, net)
        mid_rss = 0
        done, t0 = 0, time.monotonic()
        while done < n and time.monotonic() - t0 < duration:
            count = min(concurrency, n - done)
            await runner.batch(done, count)
            done += count
            if not mid_rss and done >= n // 10:
                mid_rss = rss_kb(supd)
            if done % (concurrency * 50) == 0:
                rate = done / (time.monotonic() - t0)
                print(f"{done} pods, {rate:.0f}/s", file=sys.stderr, flush=True)
        seconds = time.monotonic() - t0
        settle(tmp / "state")
        after = snapshot(supd, tmp, cgroup_parent, net)
    finally:
        watcher.cancel()
        # Whatever a failed run left: a supd that stops leaves its pods running.
        left = await client.call("get", namespace=NAMESPACE)
        await asyncio.gather(
            *(
                client.call("delete", namespace=NAMESPACE, name=p["metadata"]["name"])
                for p in left["items"]
            ),
            return_exceptions=True,
        )
        await client.close()
    mid_rss = mid_rss or before.values["supd RSS (KiB)"]
    return Result(done, seconds, before, mid_rss, after, leaks(before, after, mid_rss))


def run(
    n: int, concurrency: int, duration: float, network: bool, cidr: str = "10.213.0.0/16"
) -> Result:
    """Start a supd, soak it, stop it; its cgroup parent and bridge are removed after."""
    tag = secrets.token_hex(3)
    cgroup_parent = f"supd-soak-{tag}"
    bridge = f"svs{tag}"
    net_flags = ["--network", "bridge", "--bridge", bridge, "--pod-cidr", cidr] if network else []
    # Veths are named sv + a hash of the pod's uid; ours are the ones on our bridge.
    net = rf"\b{bridge}\b" if network else None
    with tempfile.TemporaryDirectory(prefix="supd-soak-") as name:
        tmp = Path(name)
        proc = start_supd(tmp, cgroup_parent, net_flags)
        try:
            result = asyncio.run(soak(tmp, proc.pid, n, concurrency, duration, cgroup_parent, net))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            log = (tmp / "supd.log").read_text()
            if "Traceback" in log:
                print(log, file=sys.stderr)
            for path in reversed(_cgroup_parents(cgroup_parent)):
                for sub in sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True):
                    sub.rmdir()
                path.rmdir()
            if network:
                subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
    return result


def _cgroup_parents(parent: str) -> list[Path]:
    from supervisor import cgroups

    return [p for p in cgroups.select("auto", parent).parents() if p.is_dir()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=10_000, help="pods to create and delete")
    p.add_argument("-c", "--concurrency", type=int, default=20, help="pods per batch")
    p.add_argument("--duration", type=float, default=1200, help="stop after this many seconds")
    p.add_argument("--network", choices=["none", "bridge"], default="bridge")
    p.add_argument("--pod-cidr", default="10.213.0.0/16", help="with --network bridge")
    args = p.parse_args()
    r = run(args.n, args.concurrency, args.duration, args.network == "bridge", args.pod_cidr)
    print(f"{r.pods} pods created and deleted in {r.seconds:.1f} s ({r.pods / r.seconds:.0f}/s)")
    print(table(r.before, r.mid_rss, r.after))
    if r.leaks:
        print("LEAKS:\n  " + "\n  ".join(r.leaks))
        sys.exit(1)
    print("no leaks")


if __name__ == "__main__":
    main()
