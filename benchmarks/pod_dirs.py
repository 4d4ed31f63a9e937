"""What a pod's files on the state dir cost after pods were deleted, with and without spares.

A pod start creates its directory, pod.json, its container's log directory and log file on
the state dir's disk (store.py). On ext4 without a journal each new inode costs a walk past
every inode freed in the last minute; a spare (a deleted pod's directory, emptied) is
renamed instead. This saves N pods, then removes them, for several rounds, once without
spares and then once with them, and prints the microseconds per pod of each round:

    .venv/bin/python benchmarks/pod_dirs.py [-n 1000] [--rounds 4] [--state-dir /var/tmp]

The run dir goes on /dev/shm, as supd's is a tmpfs. Bounded: n at most 5000, rounds at
most 10; everything made is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from supervisor import store
from supervisor.manifest import parse_pod
from supervisor.spec import PodSpec


def pod(i: int, round_: int) -> PodSpec:
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p{i}", "namespace": "bench", "uid": f"u{round_}-{i}"},
        "spec": {"containers": [{"name": "c", "command": ["true"]}]},
    }
    return parse_pod(manifest, "pod_dirs")[0]


def one_round(st: store.Store, round_: int, n: int) -> float:
    """Microseconds per pod to save it and open its first log file; then all are removed."""
    specs = [pod(i, round_) for i in range(n)]
    t0 = time.perf_counter()
    dirs = []
    for spec in specs:
        directory = st.save(spec)
        log = store.log_dir(directory, "c") / "0.log"
        os.close(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600))
        dirs.append(directory)
    elapsed = time.perf_counter() - t0
    for directory in dirs:
        st.remove(directory)
    st.flush()
    return elapsed * 1e6 / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=1000, help="pods per round (at most 5000)")
    p.add_argument("--rounds", type=int, default=4, help="rounds per store (at most 10)")
    p.add_argument("--state-dir", default="/var/tmp", help="where the state dirs go")
    args = p.parse_args()
    n, rounds = min(args.n, 5000), min(args.rounds, 10)
    made = []
    try:
        for spares in (0, store.SPARES):
            state = Path(tempfile.mkdtemp(prefix="pod-dirs-", dir=args.state_dir))
            run = Path(tempfile.mkdtemp(prefix="pod-dirs-", dir="/dev/shm"))
            made += [state, run]
            store.SPARES = spares
            st = store.Store(state, run)
            us = [one_round(st, r, n) for r in range(rounds)]
            label = f"spares {spares}".ljust(12)
            print(f"{label} µs per pod, round by round: " + " ".join(f"{u:.0f}" for u in us))
    finally:
        for directory in made:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
