"""What the pod network and cgroups add to pod start latency: `apply` → Running of a
one-container pod, interleaved in one run on one machine against supds that differ only in:
  base      --network none   --cgroups off     (loopback only, no cgroups)
  bridge    --network bridge --cgroups off     (veth on a bridge, an IPAM lease, a route)
  cgroups   --network none   --cgroups auto    (pod, infra and container cgroups: v1 here)
  cgroups-v2 --network none  --cgroups v2      (the same on the cgroup2 mount: clone3 puts
                                              infra and containers into theirs)
  both      --network bridge --cgroups auto
and prints each one's percentiles and its p50 as a ratio to base's. Each supd gets its own
bridge (a random name, a random 10.244.X.0/24) and cgroup parent, all removed at the end.
Run as root:

    .venv/bin/python benchmarks/sandbox_cost.py -n 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from supervisor.client import Client

NAMESPACE = "bench"
SLEEP = "/bin/sleep"
CONFIGS = {
    "base": ["--network", "none", "--cgroups", "off"],
    "bridge": ["--network", "bridge", "--cgroups", "off"],
    "cgroups": ["--network", "none", "--cgroups", "auto"],
    "cgroups-v2": ["--network", "none", "--cgroups", "v2"],
    "both": ["--network", "bridge", "--cgroups", "auto"],
}


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


class Target:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.running: dict[str, asyncio.Future[float]] = {}
        self.watcher = asyncio.create_task(self.watch())

    async def watch(self) -> None:
        async for change in self.client.stream("watch", namespace=NAMESPACE):
            obj = change["object"]
            fut = self.running.get(obj["metadata"]["name"])
            if fut is not None and not fut.done() and obj["status"]["phase"] == "Running":
                fut.set_result(time.perf_counter())

    async def start(self, i: int) -> float:
        fut = self.running[f"p{i}"] = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        await self.client.call("apply", manifests=[pod(i)], force=False, source="bench")
        return await asyncio.wait_for(fut, 30) - t0

    async def delete_all(self, n: int) -> None:
        await asyncio.gather(
            *(self.client.call("delete", namespace=NAMESPACE, name=f"p{i}") for i in range(n))
        )
        self.watcher.cancel()
        await self.client.close()


def start_supd(tmp: Path, name: str, extra: list[str]) -> subprocess.Popen[bytes]:
    r, w = os.pipe()
    supd = Path(sys.executable).parent / "supd"
    proc = subprocess.Popen(
        [
            str(supd),
            "--socket",
            str(tmp / f"{name}.sock"),
            "--state-dir",
            str(tmp / name),
            "--notify-fd",
            str(w),
            "--log-level",
            "warning",
            *extra,
        ],
        pass_fds=(w,),
    )
    os.close(w)
    with os.fdopen(r, "rb") as ready:
        if not ready.readline():
            raise SystemExit(f"supd ({name}) did not start")
    return proc


async def run(tmp: Path, n: int) -> dict[str, list[float]]:
    targets = {name: Target(await Client.connect(str(tmp / f"{name}.sock"))) for name in CONFIGS}
    results: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for i in range(n):
        for name, target in targets.items():
            results[name].append(await target.start(i))
    for target in targets.values():
        await target.delete_all(n)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=100, help="pods to start with each supd")
    args = p.parse_args()
    tag = secrets.token_hex(3)
    bridges = []
    procs = []
    with tempfile.TemporaryDirectory(prefix="supd-bench-") as name:
        tmp = Path(name)
        try:
            for n, (config, extra) in enumerate(CONFIGS.items()):
                # Each supd its own bridge, CIDR and cgroup parent: they must never share.
                bridge = f"svb{tag}{n}"
                bridges.append(bridge)
                own = [
                    "--bridge",
                    bridge,
                    "--pod-cidr",
                    f"10.244.{secrets.randbelow(60) * 4 + n + 1}.0/24",
                    "--cgroup-parent",
                    f"supd-bench-{tag}-{n}",
                ]
                procs.append(start_supd(tmp, config, [*extra, *own]))
            results = asyncio.run(run(tmp, args.n))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait()
            for bridge in bridges:
                subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
    base = statistics.median(results["base"])
    print(
        f"{'supd':<10}{'n':>5}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'max ms':>10}{'/ base':>9}"
    )
    for config, xs in results.items():
        q = percentiles(xs)
        print(
            f"{config:<11}{len(xs):>5}"
            + "".join(f"{q[k] * 1000:>10.3f}" for k in q)
            + f"{q['p50'] / base:>9.2f}"
        )


if __name__ == "__main__":
    main()
