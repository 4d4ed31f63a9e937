"""Pod start latency: `apply` → Running for one-container pods, one at a time.

Starts its own supd on a temporary socket and state dir (or uses --socket), then
interleaves, N times each, in one run on one machine:
  supd     apply a one-container pod (`sleep`), until the watch stream says Running;
  spawn    supervisor._native.spawn of the same `sleep` with the pod's five namespaces
           (new net, ipc, uts, mount and pid) from this process: the floor of our own path;
  popen    subprocess.Popen of the same `sleep`: plain fork/exec from Python.
and prints each one's percentiles and the ratios to supd. Run as root:

    .venv/bin/python benchmarks/start_latency.py -n 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from supervisor import _native
from supervisor.client import Client

NAMESPACE = "bench"
SLEEP = "/bin/sleep"


def pod(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p{i}", "namespace": NAMESPACE},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "command": [SLEEP, "1000"]}],
        },
    }


def percentiles(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    at = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]  # noqa: E731
    return {"p50": statistics.median(xs), "p90": at(0.9), "p99": at(0.99), "max": xs[-1]}


class Bench:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.running: dict[str, asyncio.Future[float]] = {}

    async def watch(self) -> None:
        async for change in self.client.stream("watch", namespace=NAMESPACE):
            obj = change["object"]
            fut = self.running.get(obj["metadata"]["name"])
            if fut is not None and not fut.done() and obj["status"]["phase"] == "Running":
                fut.set_result(time.perf_counter())

    async def supd_once(self, i: int) -> float:
        fut = self.running[f"p{i}"] = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        await self.client.call("apply", manifests=[pod(i)], force=False, source="bench")
        return await asyncio.wait_for(fut, 30) - t0


def spawn_once() -> float:
    flags = (
        _native.CLONE_NEWNET
        | _native.CLONE_NEWIPC
        | _native.CLONE_NEWUTS
        | _native.CLONE_NEWNS
        | _native.CLONE_NEWPID
    )
    t0 = time.perf_counter()
    _pid, pidfd = _native.spawn([SLEEP, "1000"], clone_flags=flags, mount_proc=True)
    t = time.perf_counter() - t0
    _native.pidfd_send_signal(pidfd, signal.SIGKILL)
    os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
    os.close(pidfd)
    return t


def popen_once() -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen([SLEEP, "1000"])
    t = time.perf_counter() - t0
    proc.kill()
    proc.wait()
    return t


async def run(socket: str, n: int) -> dict[str, list[float]]:
    client = await Client.connect(socket)
    bench = Bench(client)
    watcher = asyncio.create_task(bench.watch())
    results: dict[str, list[float]] = {"supd": [], "spawn": [], "popen": []}
    try:
        for i in range(n):
            results["supd"].append(await bench.supd_once(i))
            results["spawn"].append(spawn_once())
            results["popen"].append(popen_once())
        t0 = time.perf_counter()
        await asyncio.gather(
            *(client.call("delete", namespace=NAMESPACE, name=f"p{i}") for i in range(n))
        )
        results["delete all (s)"] = [time.perf_counter() - t0]
    finally:
        watcher.cancel()
        await client.close()
    return results


def start_supd(tmp: Path) -> subprocess.Popen[bytes]:
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
        ],
        pass_fds=(w,),
    )
    os.close(w)
    with os.fdopen(r, "rb") as ready:
        if not ready.readline():
            raise SystemExit("supd did not start")
    return proc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=200, help="pods (and baseline runs) to start")
    p.add_argument("--socket", help="use a running supd instead of starting one")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="supd-bench-") as tmp:
        proc = None if args.socket else start_supd(Path(tmp))
        try:
            results = asyncio.run(run(args.socket or str(Path(tmp) / "s.sock"), args.n))
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait()
    base = statistics.median(results["supd"])
    print(
        f"{'path':<16}{'n':>5}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'max ms':>10}"
        f"{'p50 / supd':>12}"
    )
    for name, xs in results.items():
        if len(xs) == 1:
            print(f"{name:<16}{1:>5}{xs[0]:>10.3f}")
            continue
        q = percentiles(xs)
        print(
            f"{name:<16}{len(xs):>5}"
            + "".join(f"{q[k] * 1000:>10.3f}" for k in q)
            + f"{q['p50'] / base:>12.2f}"
        )


if __name__ == "__main__":
    main()
