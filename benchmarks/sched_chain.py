"""One pod start as the scheduler saw it: `supctl bench -c 1` (sleep pods, kept) against a
fresh supd, under `perf record` of the kernel's sched_switch and sched_waking events, cut
into the process hops between apply and the Running watch frame:

    apply -> START          supd, from the client's sleep after its apply to supd waking
                            the pod's infra (the START frame)
    START -> clone          the infra: the frame, its pipes, clone of the container
    clone -> child runs     the container waiting for a CPU
    child runs -> exec      its set-up (/proc, ids) and execve, until it wakes the infra
    exec -> infra runs      the infra waiting for a CPU
    infra -> Running frame  the STARTED report, supd's step and the watch frame

with the median, p90 and mean of each over the pods, and how often the container ran on
another CPU than the supd that sent its START. Run as root, with perf (Debian's
linux-perf) installed:

    sudo .venv/bin/python benchmarks/sched_chain.py [-n 200] [--state-dir /dev/shm]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENTS = "sched:sched_switch,sched:sched_waking,sched:sched_wakeup_new"
LINE = re.compile(r"\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+(\d+\.\d+):\s+sched:(\S+):\s+(.*)")
STEPS = [
    "apply -> START",
    "START -> clone",
    "clone -> child runs",
    "child runs -> exec",
    "exec -> infra runs",
    "infra -> Running frame",
    "apply -> Running",
]


class Event:
    __slots__ = ("comm", "cpu", "kind", "pid", "rest", "t")

    def __init__(self, m: re.Match[str]) -> None:
        self.comm, self.pid, self.cpu = m[1], int(m[2]), int(m[3])
        self.t, self.kind, self.rest = float(m[4]) * 1e3, m[5], m[6]

    def field(self, key: str) -> int:
        found = re.search(rf"\b{key}=(\d+)", self.rest)
        return int(found[1]) if found else -1


def chains(events: list[Event], supd: int) -> tuple[dict[str, list[float]], list[bool]]:
    """Each pod's hops (ms), found from its container's clone back and forward."""
    wakes = collections.Counter(
        e.field("pid") for e in events if e.pid == supd and e.kind == "sched_waking"
    )
    # The client is what supd wakes most (its replies and watch frames), the infras aside.
    infras = {e.pid for e in events if e.comm == "supd-infra"}
    client = next(p for p, _ in wakes.most_common() if p not in infras)
    steps: dict[str, list[float]] = {s: [] for s in STEPS}
    elsewhere: list[bool] = []
    for ci, clone in enumerate(events):
        if clone.kind != "sched_wakeup_new" or clone.comm != "supd-infra":
            continue
        infra, child = clone.pid, clone.field("pid")
        j = ci
        while j > 0 and not (
            events[j].pid == supd
            and events[j].kind == "sched_waking"
            and events[j].field("pid") == infra
        ):
            j -= 1
        k = j
        while k > 0 and not (
            events[k].kind == "sched_switch" and events[k].field("prev_pid") == client
        ):
            k -= 1
        if j == 0 or k == 0:
            continue
        start, apply = events[j], events[k]
        on = woke = back = running = None
        for e in events[ci : ci + 5000]:
            if on is None:
                if e.kind == "sched_switch" and e.field("next_pid") == child:
                    on = e
            elif woke is None:
                if e.pid == child and e.kind == "sched_waking" and e.field("pid") == infra:
                    woke = e
            elif back is None:
                if e.kind == "sched_switch" and e.field("next_pid") == infra:
                    back = e
            elif e.pid == supd and e.kind == "sched_waking" and e.field("pid") == client:
                running = e
                break
        if on is None or woke is None or back is None or running is None:
            continue
        times = [apply.t, start.t, clone.t, on.t, woke.t, back.t, running.t]
        for name, a, b in zip(STEPS, times, times[1:], strict=False):
            steps[name].append(b - a)
        steps["apply -> Running"].append(running.t - apply.t)
        elsewhere.append(on.cpu != start.cpu)
    return steps, elsewhere


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200, help="pods, one at a time, kept")
    ap.add_argument("--state-dir", default="/dev/shm", help="where supd's state dir goes")
    args = ap.parse_args()
    if shutil.which("perf") is None:
        sys.exit("sched_chain: needs perf (Debian's linux-perf)")
    with tempfile.TemporaryDirectory(prefix="sched-chain-", dir=args.state_dir) as tmp:
        sock, data = f"{tmp}/s.sock", f"{tmp}/perf.data"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        r, w = os.pipe()
        supd = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supd", "--socket", sock,
             "--state-dir", f"{tmp}/state", "--notify-fd", str(w), "--log-level", "warning",
             "--cgroup-parent", "sched-chain"],
            pass_fds=(w,), cwd=ROOT, env=env,
        )  # fmt: skip
        os.close(w)
        with os.fdopen(r, "rb") as ready:
            if not ready.readline():
                sys.exit("supd did not start")
        try:
            bench = [sys.executable, "-m", "supervisor.supctl", "--socket", sock, "bench",
                     "-n", str(args.n), "-c", "1"]  # fmt: skip
            subprocess.run(
                ["perf", "record", "-q", "-a", "-e", EVENTS, "-o", data, "--", *bench],
                check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            text = subprocess.run(
                ["perf", "script", "-i", data],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
        finally:
            supd.terminate()
            supd.wait(30)
            subprocess.run(["umount", "-l", f"{tmp}/state/run"], stderr=subprocess.DEVNULL)
    events = [Event(m) for m in map(LINE.match, text.splitlines()) if m]
    steps, elsewhere = chains(events, supd.pid)
    skip = min(20, len(elsewhere) // 10)  # the first pods warm supd up
    print(f"{'hop (ms)':24} {'p50':>7} {'p90':>7} {'mean':>7}")
    for name in STEPS:
        values = sorted(steps[name][skip:])
        if not values:
            sys.exit("sched_chain: no pod start found in the trace")
        p90 = values[int(len(values) * 0.9)]
        print(
            f"{name:24} {statistics.median(values):7.3f} {p90:7.3f} {statistics.mean(values):7.3f}"
        )
    moved = sum(elsewhere[skip:])
    print(f"container on another CPU than supd's START: {moved}/{len(elsewhere) - skip} pods")


if __name__ == "__main__":
    main()
