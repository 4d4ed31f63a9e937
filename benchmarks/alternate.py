"""Two or more source trees' supds, pods alternating between them one at a time.

Run-level alternation (a fresh supd of each tree per `supctl bench` run, in turn) drifts
with the machine: on this VM consecutive runs of one tree differ by 10-20 %. Here every
supd runs at once, each on its own state dir in /dev/shm, and pod i goes to each of them in
turn before pod i+1, so that the machine's noise falls on all alike:

    run     a `sleep` pod: apply -> Running on the watch, then delete (waited for)
    true    a /bin/true pod: apply -> Succeeded, then delete
    accum   a `sleep` pod: apply -> Running, kept (as `supctl bench -c 1` does); all
            deleted at the end

For each tree: the p50 and p90 of those latencies and its supd's CPU per pod (utime +
stime of the supd process, its threads included; not the zygote or the infras).

    sudo .venv/bin/python benchmarks/alternate.py -n 300 --mode run . /tmp/base

Each tree's supd runs from inside that tree (`python -m` puts the working directory first
on sys.path) with PYTHONPATH set to it, after a check of which package it imports; a tree
must be built in place (`setup.py build_ext --inplace`). Pass the trees in both orders to
see whether the order matters.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from supervisor.client import Client  # noqa: E402

WORK = Path("/dev/shm/supd-alternate")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_supd(tree: Path, i: int) -> tuple[subprocess.Popen[bytes], Path]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    found = subprocess.run(
        [sys.executable, "-c", "import supervisor; print(supervisor.__file__)"],
        env=env, cwd=tree, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if not Path(found).resolve().is_relative_to(tree):
        raise SystemExit(f"{tree}: its supd would import {found}")
    base = WORK / str(i)
    base.mkdir(parents=True)
    r, w = os.pipe()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "supervisor.supd",
            "--socket", str(base / "s.sock"), "--state-dir", str(base / "state"),
            "--cgroup-parent", f"supd-alternate-{i}", "--notify-fd", str(w),
            "--log-level", "warning",
        ],
        env=env, cwd=tree, pass_fds=(w,),
    )  # fmt: skip
    os.close(w)
    with os.fdopen(r, "rb") as ready:
        if not ready.readline():
            raise SystemExit(f"{tree}: supd did not start")
    return proc, base / "s.sock"


def manifest(name: str, mode: str) -> dict[str, Any]:
    command = ["/bin/true"] if mode == "true" else ["sleep", "3600"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "alternate"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "command": command}],
        },
    }


async def alternate(socks: list[Path], n: int, mode: str, gap: float) -> list[list[float]]:
    want = "Succeeded" if mode == "true" else "Running"
    sides = []
    for sock in socks:
        calls, watch = await Client.connect(str(sock)), await Client.connect(str(sock))
        waiting: dict[str, asyncio.Future[float]] = {}

        async def follow(watch: Client = watch, waiting: dict[str, Any] = waiting) -> None:
            async for change in watch.stream("watch", namespace="alternate"):
                obj = change["object"]
                fut = waiting.get(obj["metadata"]["name"])
                if fut is not None and not fut.done() and obj["status"]["phase"] == want:
                    fut.set_result(time.monotonic())

        sides.append((calls, waiting, asyncio.ensure_future(follow())))
    await asyncio.sleep(0.3)  # the watches are in place
    out: list[list[float]] = [[] for _ in socks]
    for i in range(n):
        for k, (calls, waiting, _) in enumerate(sides):
            name = f"p{i}"
            fut = waiting[name] = asyncio.get_running_loop().create_future()
            t0 = time.monotonic()
            await calls.call("apply", manifests=[manifest(name, mode)], source="alternate")
            out[k].append((await asyncio.wait_for(fut, 30) - t0) * 1000)
            del waiting[name]
            if mode != "accum":
                await calls.call("delete", namespace="alternate", name=name, grace_period=0,
                                 wait=True)  # fmt: skip
            if gap:
                await asyncio.sleep(gap)
    for calls, _, task in sides:
        if mode == "accum":
            for i in range(n):
                await calls.call("delete", namespace="alternate", name=f"p{i}", grace_period=0)
        task.cancel()
        await calls.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trees", nargs="+", type=Path, help="source trees, built in place")
    p.add_argument("-n", type=int, default=300, help="pods per tree")
    p.add_argument("--mode", choices=("run", "true", "accum"), default="run")
    p.add_argument("--gap", type=float, default=0, metavar="MS", help="quiet after each pod")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: supd makes namespaces and cgroups")
    trees = [t.resolve() for t in args.trees]
    shutil.rmtree(WORK, ignore_errors=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        socks = []
        for i, tree in enumerate(trees):
            proc, sock = start_supd(tree, i)
            procs.append(proc)
            socks.append(sock)
        before = [cpu_seconds(proc.pid) for proc in procs]
        results = asyncio.run(alternate(socks, args.n, args.mode, args.gap / 1000))
        after = [cpu_seconds(proc.pid) for proc in procs]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()
        for i in range(len(procs)):
            subprocess.run(["umount", "-l", str(WORK / str(i) / "state" / "run")],
                           stderr=subprocess.DEVNULL, check=False)  # fmt: skip
        shutil.rmtree(WORK, ignore_errors=True)
    first = statistics.median(results[0])
    print(f"{args.mode}, {args.n} pods per tree, alternating")
    print(f"{'tree':40} {'p50 ms':>8} {'p90 ms':>8} {'cpu ms/pod':>11} {'p50/first':>10}")
    for tree, lat, b, a in zip(trees, results, before, after, strict=True):
        q = statistics.quantiles(lat, n=10)
        print(
            f"{tree!s:40} {statistics.median(lat):8.2f} {q[-1]:8.2f} "
            f"{(a - b) * 1000 / args.n:11.2f} {statistics.median(lat) / first:10.2f}"
        )


if __name__ == "__main__":
    main()
