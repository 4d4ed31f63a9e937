"""How long a new supd takes to take N running pods over (live restore), beside the same
supd starting on an empty state dir, interleaved: SIGKILL supd, start it again, time until
it is ready (its --notify-fd) and until every pod is reported Running with no restart.

    sudo .venv/bin/python benchmarks/takeover.py -n 200 -r 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from supervisor.client import Client

BIN = Path(sys.executable).parent


def start(state: Path, sock: Path) -> tuple[subprocess.Popen[bytes], float]:
    """supd on `state`; returns it and the seconds until it said READY. Each state dir has
    a cgroup parent of its own: a supd removes the pod cgroups of pods it does not know."""
    r, w = os.pipe()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [str(BIN / "supd"), "--socket", str(sock), "--state-dir", str(state),
         "--notify-fd", str(w), "--cgroup-parent", f"supd-takeover-{os.getpid()}-{state.name}"],
        pass_fds=(w,), stderr=open(state.parent / f"{state.name}.log", "ab"),  # noqa: SIM115
    )  # fmt: skip
    os.close(w)
    with os.fdopen(r, "rb") as ready:
        if not ready.readline():
            raise SystemExit(f"supd exited with {proc.wait()}")
    return proc, time.monotonic() - t0


def forget(state: Path) -> None:
    """Remove a state dir whose supd was killed: its run dir's tmpfs first."""
    subprocess.run(["umount", "-l", str(state / "run")], stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(state, ignore_errors=True)


def pod(i: int) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p{i}"},
        "spec": {"terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "command": ["sleep", "100000"]}]},
    }  # fmt: skip


async def all_running(sock: Path, n: int) -> None:
    async with await Client.connect(str(sock)) as client:
        running: set[str] = set()
        async for event in client.stream("watch"):
            obj = event["object"]
            (c,) = obj["status"].get("containerStatuses") or [{}]
            if c.get("state", {}).get("running") and c.get("restartCount") == 0:
                running.add(obj["metadata"]["name"])
            if len(running) == n:
                return


async def apply_all(sock: Path, n: int) -> None:
    async with await Client.connect(str(sock)) as client:
        for i in range(0, n, 50):
            await asyncio.gather(
                *(client.call("apply", manifests=[pod(j)]) for j in range(i, min(n, i + 50)))
            )


async def delete_all(sock: Path, n: int) -> None:
    async with await Client.connect(str(sock)) as client:
        await asyncio.gather(
            *(client.call("delete", name=f"p{i}", grace_period=0) for i in range(n))
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200, help="pods to take over")
    ap.add_argument("-r", "--rounds", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="takeover-"))
    full, empty = tmp / "full", tmp / "empty"
    sock, sock0 = tmp / "s.sock", tmp / "s0.sock"
    proc, _ = start(full, sock)
    asyncio.run(apply_all(sock, args.n))
    asyncio.run(all_running(sock, args.n))
    ready, settled, ready0 = [], [], []
    try:
        for _ in range(args.rounds):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            t0 = time.monotonic()
            proc, took = start(full, sock)
            asyncio.run(all_running(sock, args.n))
            ready.append(took)
            settled.append(time.monotonic() - t0)
            forget(empty)
            p0, took0 = start(empty, sock0)
            ready0.append(took0)
            p0.send_signal(signal.SIGKILL)
            p0.wait()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        cleanup = start(full, sock)[0]  # takes the pods over once more, to delete them
        asyncio.run(delete_all(sock, args.n))
        cleanup.send_signal(signal.SIGTERM)
        cleanup.wait()
        if os.environ.get("KEEP") is None:
            forget(empty)
            shutil.rmtree(tmp, ignore_errors=True)
    med = statistics.median
    print(f"{args.n} pods, {args.rounds} rounds (medians, seconds)")
    print(f"  supd ready, empty state dir      {med(ready0):.3f}")
    ratio = med(ready) / med(ready0)
    print(f"  supd ready, {args.n} pods taken over  {med(ready):.3f}  ({ratio:.2f}x)")
    print(f"  every pod Running again          {med(settled):.3f}")
    print(f"  take-over cost per pod           {(med(ready) - med(ready0)) / args.n * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
