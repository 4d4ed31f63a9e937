"""Where one pod start's time goes inside supd: apply → Succeeded of /bin/true, one pod at a
time, with supd's own steps timed in its process (a wrapper around a few Runtime, Api,
Infra and ServerConnection methods, a perf_counter call at each end). Prints, for each
step, the median time at which it ended, counted from the moment supd read the request,
and the median of its own duration.

    .venv/bin/python benchmarks/timeline.py -n 200 [--supd-flag=--cgroups=off ...] \
        [--wrap cgroups.CgroupsV1.create_pod --wrap lifecycle.compute_pod_actions ...] \
        [--gap MS] [--keep]

`--wrap MODULE.CLASS.METHOD` or `--wrap MODULE.FUNCTION` (a module of the supervisor
package, called through its module) times one more step.

Run as root (supd's namespaces and cgroups). The wrappers cost about 2 µs a call; the
figures are for comparing steps with each other, not for the absolute latency (that is
side_by_side.py's)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (class path, method): each call is recorded as (start, end, label).
WRAPPED = [
    ("daemon.Api", "_create"),
    ("store.Store", "save"),
    ("runtime.Runtime", "_take_pooled"),
    ("runtime.Runtime", "_start_container"),
    ("runtime.Runtime", "_container_fs"),
    ("runtime.Runtime", "_fill_pool"),
    ("runtime.Runtime", "_pooled_spawned"),
    ("runtime.Runtime", "_persist"),
    ("server.ServerConnection", "data_received"),
    ("server.ServerConnection", "_write"),
]


def serve(out: str, argv: list[str]) -> int:
    """supd, with the wrappers; what was recorded goes to `out` when it exits."""
    from supervisor import daemon, runtime, server, store, supd

    modules = {"daemon": daemon, "runtime": runtime, "server": server, "store": store}
    record: list[tuple[float, float, str]] = []
    clock = time.perf_counter

    def wrap(owner: Any, name: str, label: Any) -> None:
        f = getattr(owner, name)

        @functools.wraps(f)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = clock()
            result = f(*args, **kwargs)
            record.append((t, clock(), label(*args, **kwargs) if callable(label) else label))
            return result

        setattr(owner, name, timed)

    for path, name in WRAPPED:
        module, cls = path.split(".")
        wrap(getattr(modules[module], cls), name, f"{cls}.{name}")
    for extra in filter(None, os.environ.get("TIMELINE_WRAP", "").split(",")):
        module, *owners, name = extra.split(".")
        owner: Any = importlib.import_module(f"supervisor.{module}")
        for attr in owners:
            owner = getattr(owner, attr)
        wrap(owner, name, ".".join([*owners, name]) if owners else extra)
    wrap(runtime.Runtime, "_on_report", lambda self, pod, report, seq=0: f"report {report[0]}")
    wrap(
        runtime.Runtime,
        "_publish",
        lambda self, pod, kind: f"publish {kind} {pod.status.phase}",
    )

    try:
        return supd.main(argv)
    finally:
        with open(out, "w") as f:
            for start, end, label in record:
                f.write(f"{start:.7f} {end:.7f} {label}\n")


async def drive(sock: str, n: int, gap: float = 0.0, keep: bool = False) -> None:
    """n pods one at a time: /bin/true to Succeeded and deleted, or with `keep` a `sleep`
    to Running and kept (as `supctl bench -c 1`; all deleted at the end)."""
    from supervisor.client import Client

    phase = "Running" if keep else "Succeeded"
    command = ["/bin/sleep", "1000"] if keep else ["/bin/true"]

    client = await Client.connect(sock)
    waiting: dict[str, asyncio.Future[None]] = {}

    stream = client.open_stream("watch", namespace="timeline")  # sent before the first apply

    async def watch() -> None:
        async for change in stream:
            obj = change["object"]
            fut = waiting.get(obj["metadata"]["name"])
            if fut is not None and not fut.done() and obj["status"]["phase"] == phase:
                fut.set_result(None)

    watcher = asyncio.ensure_future(watch())
    for i in range(n):
        name = f"t{i}"
        manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "timeline"},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "command": command}],
            },
        }
        waiting[name] = asyncio.get_running_loop().create_future()
        await client.call("apply", manifests=[manifest], source="timeline")
        await asyncio.wait_for(waiting[name], 30)
        del waiting[name]
        if not keep:
            await client.call("delete", namespace="timeline", name=name, grace_period=0)
        if gap:
            await asyncio.sleep(gap)  # a quiet moment before the next pod, as side_by_side's
    for i in range(n if keep else 0):
        await client.call("delete", namespace="timeline", name=f"t{i}", grace_period=0)
    watcher.cancel()
    stream.close()
    await client.close()


def analyse(path: Path, skip: int, phase: str = "Succeeded") -> None:
    rows = sorted(
        (float(a), float(b), label)
        for a, b, label in (line.split(" ", 2) for line in path.read_text().splitlines())
    )
    starts = [i for i, r in enumerate(rows) if r[2] == "Api._create"]
    ends: dict[str, list[float]] = {}
    own: dict[str, list[float]] = {}
    for k, i in enumerate(starts[skip:-1], skip):
        # The request's read is the last data_received before the pod's _create.
        j = i
        while rows[j][2] != "ServerConnection.data_received":
            j -= 1
        t0, seen = rows[j][0], set()
        reached = False  # the pod reached `phase`: its next write is that watch frame
        for start, end, label in rows[j : starts[k + 1]]:
            if label == "ServerConnection._write" and reached:
                label = f"watch frame: {phase}"
                reached = False
            if label == f"publish MODIFIED {phase}" and f"watch frame: {phase}" not in seen:
                reached = True
            if label in seen:
                continue
            seen.add(label)
            ends.setdefault(label, []).append((end - t0) * 1e3)
            own.setdefault(label, []).append((end - start) * 1e3)
    print(f"{'step (first of its kind in each pod)':44} {'ends at ms':>10} {'takes ms':>9}")
    for label in sorted(ends, key=lambda k: statistics.median(ends[k])):
        if len(ends[label]) < len(starts) // 2:
            continue  # steps most pods do not take (a pool refill that fell elsewhere)
        print(
            f"{label:44} {statistics.median(ends[label]):10.3f} "
            f"{statistics.median(own[label]):9.3f}"
        )
    print(f"({len(starts) - 1 - skip} pods; medians)")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        sys.exit(serve(sys.argv[2], sys.argv[3:]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200, help="pods, one at a time")
    ap.add_argument("--supd-flag", action="append", default=[], help="one more supd flag")
    ap.add_argument("--wrap", action="append", default=[], help="one more step to time")
    ap.add_argument("--gap", type=float, default=0.0, metavar="MS", help="quiet after each pod")
    ap.add_argument(
        "--keep", action="store_true", help="sleep pods to Running, kept (supctl bench -c 1)"
    )
    args = ap.parse_args()
    os.environ["TIMELINE_WRAP"] = ",".join(args.wrap)
    with tempfile.TemporaryDirectory(prefix="timeline-") as tmp:
        sock, out = f"{tmp}/s.sock", Path(tmp) / "timeline.txt"
        r, w = os.pipe()
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(out), "--socket", sock,
             "--state-dir", f"{tmp}/state", "--notify-fd", str(w), "--log-level", "warning",
             "--cgroup-parent", "timeline", *args.supd_flag],
            pass_fds=(w,),
        )  # fmt: skip
        os.close(w)
        with os.fdopen(r, "rb") as ready:
            if not ready.readline():
                sys.exit("supd did not start")
        try:
            asyncio.run(drive(sock, args.n, args.gap / 1000, args.keep))
        finally:
            proc.terminate()  # supd writes the record as it exits
            proc.wait(30)
        analyse(out, skip=min(20, args.n // 10), phase="Running" if args.keep else "Succeeded")


if __name__ == "__main__":
    main()
