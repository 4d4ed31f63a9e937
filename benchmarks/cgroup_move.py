"""How long moving a process into a fresh cgroup takes after an idle moment.

The write to cgroup.procs takes the kernel's global cgroup_threadgroup_rwsem for writing; a
percpu rwsem's writer waits for an RCU grace period unless the lock was taken moments
before. The cgroup2 mount option favordynmods keeps it ready for writers. This prints each
sample and whether favordynmods is on (supd sets it at start unless --no-favordynmods):

    sudo .venv/bin/python benchmarks/cgroup_move.py [-n 8] [--idle 0.3] [--hierarchy DIR]

DIR is a v1 hierarchy or the cgroup2 mount (default: the first v1 hierarchy with pids, else
the cgroup2 mount). Bounded: n samples, each a forked child that sleeps until it is killed.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import time
from pathlib import Path

from supervisor import cgroups


def default_hierarchy() -> Path:
    found = cgroups.mounts()
    for m in found:
        if m.version == 1 and "pids" in m.controllers:
            return m.path
    for m in found:
        if m.version == 2:
            return m.path
    raise SystemExit("no cgroup mount found")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=8, help="samples (at most 100)")
    p.add_argument("--idle", type=float, default=0.3, help="seconds of quiet before each move")
    p.add_argument("--hierarchy", type=Path, default=None)
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: it creates cgroups")
    base = (args.hierarchy or default_hierarchy()) / f"cgroup-move-{secrets.token_hex(4)}"
    base.mkdir()
    samples = []
    try:
        for i in range(min(args.n, 100)):
            leaf = base / f"g{i}"
            leaf.mkdir()
            pid = os.fork()
            if pid == 0:
                signal.pause()
                os._exit(0)
            try:
                time.sleep(args.idle)  # the idle moment being measured, not a wait for state
                t = time.perf_counter()
                (leaf / "cgroup.procs").write_text(str(pid))
                samples.append((time.perf_counter() - t) * 1000)
            finally:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                leaf.rmdir()
    finally:
        base.rmdir()
    favor = any("favordynmods" in m.options for m in cgroups.mounts() if m.version == 2)
    print(f"{base.parent}: favordynmods {'on' if favor else 'off'}")
    print("move ms: " + " ".join(f"{x:.2f}" for x in samples))
    print(f"median {sorted(samples)[len(samples) // 2]:.2f} ms")


if __name__ == "__main__":
    main()
