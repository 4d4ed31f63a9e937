"""`supctl bench`: load tests of pod start latency and cost against a running supd.

    supctl bench [-n 1000] [-c 16] [-k 1] [--command sleep 100000] [-o json] [--plot F.png]
    supctl bench --steady -n 1000 --duration 60        readiness probes every second

A start run applies N pods, at most C at a time (a worker applies a pod, waits for it to be
Running and Ready, then takes the next), then deletes them C at a time, and reports for each
stage (apply → Running, apply → Ready, delete → gone) the count, p50/p90/p99/max and the
throughput, with supd's CPU seconds and peak RSS and the PSS of one pod's infra process.
Failures (an error reply, a pod that fails or never starts within --timeout) are counted and
listed, never dropped. Times are the client's: a request's send to the watch frame that shows
the change, so they include the socket and the client's own decoding, as a user sees them.

Steady mode holds N pods with a readiness probe (exec `cat FILE`, every --period seconds)
for --duration seconds and reports supd's CPU per probe and the probe-to-status latency: the
probe's read of FILE sets its atime (relatime: the first read after a write), so the time
from that read to the watch frame showing Ready is measured for pods whose FILE is re-created
while they are NotReady. File times tick at the kernel's coarse clock: the resolution is
printed with the result.

supd's CPU and memory are read from /proc of the process at the other end of the socket
(SO_PEERCRED), so they need the same machine and PID namespace; otherwise they are null.

Imports: client, protocol and errors only (supctl's budget), and matplotlib lazily for --plot.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from supervisor.client import Client
from supervisor.errors import SupervisorError

STAGES = ("running", "ready", "completed", "deleted")
STAGE_TITLES = {
    "running": "apply → Running",
    "ready": "apply → Ready",
    "completed": "apply → Succeeded",
    "deleted": "delete → gone",
    "probe_to_status": "probe → status",
}
TERMINAL_WAITING = frozenset(
    {
        "ErrImageNeverPull",
        "ErrImagePull",
        "ImagePullBackOff",
        "CrashLoopBackOff",
        "InvalidImageName",
    }
)
CONNECTION_REQUESTS = 32  # requests in flight per connection (supd allows 64)


@dataclass
class Options:
    count: int = 1000
    concurrency: int = 16
    containers: int = 1
    command: list[str] = field(default_factory=lambda: ["/bin/sleep", "100000"])
    restart_policy: str = "Always"
    readiness_probe: bool = False
    period: int = 1
    host_network: bool = False
    image: str | None = None
    volumes: int = 0
    timeout: float = 60.0
    grace_period: float = 0.0
    namespace: str = ""
    steady: bool = False
    duration: float = 30.0
    ready_dir: str = ""

    def __post_init__(self) -> None:
        if not self.namespace:
            self.namespace = f"bench-{os.getpid()}"


# -- pure parts --------------------------------------------------------------------------


def pod_manifest(i: int, opts: Options) -> dict[str, Any]:
    """The v1 Pod of the i-th bench pod."""
    name = f"bench-{i}"
    mounts = [{"name": f"v{v}", "mountPath": f"/bench/v{v}"} for v in range(opts.volumes)]
    containers = []
    for k in range(opts.containers):
        c: dict[str, Any] = {"name": f"c{k}", "command": list(opts.command)}
        if opts.image:
            c["image"] = opts.image
        if mounts:
            c["volumeMounts"] = mounts
        if opts.readiness_probe:
            c["readinessProbe"] = {
                "exec": {"command": ["cat", ready_file(opts, name)]},
                "periodSeconds": opts.period,
                "failureThreshold": 1,
            }
        containers.append(c)
    spec: dict[str, Any] = {
        "restartPolicy": opts.restart_policy,
        "terminationGracePeriodSeconds": 0,
        "containers": containers,
    }
    if opts.host_network:
        spec["hostNetwork"] = True
    if opts.volumes:
        spec["volumes"] = [{"name": f"v{v}", "emptyDir": {}} for v in range(opts.volumes)]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": opts.namespace, "labels": {"app": "bench"}},
        "spec": spec,
    }


def ready_file(opts: Options, name: str) -> str:
    return os.path.join(opts.ready_dir or "/nonexistent", name)


def percentile(sorted_xs: Sequence[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least q of the values at or
    below it (q in 0..1); NaN for no values."""
    if not sorted_xs:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_xs)))
    return sorted_xs[min(rank, len(sorted_xs)) - 1]


def summarize(latencies: Iterable[float], wall: float) -> dict[str, Any]:
    """count, p50, p90, p99, max (seconds) and throughput (per second over `wall`)."""
    xs = sorted(latencies)
    return {
        "count": len(xs),
        "p50": percentile(xs, 0.50),
        "p90": percentile(xs, 0.90),
        "p99": percentile(xs, 0.99),
        "max": xs[-1] if xs else math.nan,
        "throughput": len(xs) / wall if xs and wall > 0 else 0.0,
    }


@dataclass
class PodRecord:
    name: str
    applied: float | None = None  # monotonic times, seconds
    running: float | None = None
    ready: float | None = None
    completed: float | None = None
    delete_sent: float | None = None
    deleted: float | None = None
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def latency(self, stage: str) -> float | None:
        start = self.delete_sent if stage == "deleted" else self.applied
        end = getattr(self, stage)
        if start is None or end is None:
            return None
        return float(end - start)


def observe(rec: PodRecord, obj: dict[str, Any], now: float) -> None:
    """Update `rec` from one watch frame's v1 Pod, seen at `now`."""
    status = obj.get("status") or {}
    phase = status.get("phase")
    if phase == "Running" and rec.running is None:
        rec.running = now
    if phase == "Succeeded" and rec.completed is None:
        rec.completed = now
        if rec.running is None:
            rec.running = now  # too quick to be seen Running: it ran and finished
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "True" and rec.ready is None:
            rec.ready = now
    if rec.error is None:
        rec.error = pod_failure(status)
    started = rec.running is not None and rec.ready is not None
    if rec.error is not None or rec.completed is not None or started:
        rec.done.set()


def pod_failure(status: dict[str, Any]) -> str | None:
    """Why a pod will not get to Running/Ready by itself, or None."""
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in TERMINAL_WAITING:
            msg = waiting.get("message") or ""
            return f"container {cs.get('name')}: {waiting['reason']}" + (f": {msg}" if msg else "")
        term = state.get("terminated") or {}
        if term and term.get("exitCode", 0) != 0:
            msg = term.get("message") or ""
            return (
                f"container {cs.get('name')}: {term.get('reason')} exit code {term.get('exitCode')}"
                + (f": {msg}" if msg else "")
            )
    if status.get("phase") == "Failed":
        why = status.get("reason") or status.get("message") or "a container failed"
        return f"pod Failed: {why}"
    return None


# -- the process at the other end of the socket ---------------------------------------------


def clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of `pid` (proc(5) fields 14 and 15), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / clock_ticks()


def status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM (proc(5): writing 5 to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def descendants(pid: int, depth: int = 3) -> list[int]:
    found: list[int] = []
    level = [pid]
    for _ in range(depth):
        nxt: list[int] = []
        for p in level:
            try:
                tasks = os.listdir(f"/proc/{p}/task")
            except OSError:
                continue
            for t in tasks:
                with contextlib.suppress(OSError, ValueError):
                    nxt += [
                        int(c) for c in Path(f"/proc/{p}/task/{t}/children").read_text().split()
                    ]
        found += nxt
        level = nxt
    return found


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def smaps_rollup(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                out[parts[0][:-1]] = int(parts[1])
    except OSError:
        pass
    return out


@dataclass
class ServerProbe:
    """CPU and memory of supd (and its helper processes) over a run."""

    pid: int | None
    cpu0: float | None = None
    helpers0: dict[int, float] = field(default_factory=dict)
    peak_reset: bool = False
    rss_samples: list[int] = field(default_factory=list)

    def start(self) -> None:
        if self.pid is None:
            return
        self.cpu0 = cpu_seconds(self.pid)
        self.helpers0 = {p: cpu_seconds(p) or 0.0 for p in self.helpers()}
        self.peak_reset = reset_peak_rss(self.pid)
        self.sample()

    def helpers(self) -> list[int]:
        """supd's own helpers (not pods): children named supd-* other than supd-infra."""
        if self.pid is None:
            return []
        return [
            p
            for p in descendants(self.pid, 1)
            if comm(p).startswith("supd-") and comm(p) != "supd-infra"
        ]

    def sample(self) -> None:
        if self.pid is not None:
            rss = status_kb(self.pid, "VmRSS")
            if rss is not None:
                self.rss_samples.append(rss)

    def cpu(self) -> float | None:
        if self.pid is None or self.cpu0 is None:
            return None
        now = cpu_seconds(self.pid)
        return None if now is None else now - self.cpu0

    def helpers_cpu(self) -> float:
        return sum((cpu_seconds(p) or 0.0) - self.helpers0.get(p, 0.0) for p in self.helpers())

    def peak_rss_kb(self) -> int | None:
        if self.pid is None:
            return None
        peak = status_kb(self.pid, "VmHWM") if self.peak_reset else None
        return max([*self.rss_samples, *([peak] if peak is not None else [])], default=None)

    def infra_memory(self, limit: int = 9) -> dict[str, Any] | None:
        """PSS/RSS/private of up to `limit` pod infra processes (the median one's)."""
        if self.pid is None:
            return None
        infras = [p for p in descendants(self.pid) if comm(p) == "supd-infra"]
        rows = [r for r in (smaps_rollup(p) for p in infras[:limit]) if "Pss" in r]
        if not rows:
            return None
        rows.sort(key=lambda r: r["Pss"])
        mid = rows[len(rows) // 2]
        return {
            "pss_kb": mid["Pss"],
            "rss_kb": mid.get("Rss"),
            "private_kb": mid.get("Private_Clean", 0) + mid.get("Private_Dirty", 0),
            "infras_alive": len(infras),
            "sampled": len(rows),
        }


# -- the run -----------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal (nothing otherwise)."""

    def __init__(self, out: TextIO | None, total: int, title: str) -> None:
        self.out = out if out is not None and out.isatty() else None
        self.total = total
        self.title = title
        self.t0 = time.monotonic()
        self._last = 0.0

    def update(self, done: int, detail: str | Callable[[], str], force: bool = False) -> None:
        """Redraw at most ten times a second; `detail` is called only then (the counts of
        a start walk every pod: worked out for each pod done, they took N² steps)."""
        if self.out is None:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        if callable(detail):
            detail = detail()
        self._last = now
        width = 30
        filled = int(width * done / self.total) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        self.out.write(
            f"\r{self.title:<8} [{bar}] {done}/{self.total} {detail} {now - self.t0:6.1f}s\x1b[K"
        )
        self.out.flush()

    def close(self) -> None:
        if self.out is not None:
            self.out.write("\n")
            self.out.flush()


class Bench:
    def __init__(self, clients: list[Client], opts: Options, progress_out: TextIO | None) -> None:
        self.clients = clients
        self.opts = opts
        self.progress_out = progress_out
        self.pods: dict[str, PodRecord] = {}
        self.errors: list[dict[str, Any]] = []
        self.timeline: list[tuple[float, str, float]] = []  # (t since start, stage, latency)
        self.t0 = time.monotonic()
        self.watch_error: BaseException | None = None
        self.on_change: Callable[[PodRecord, dict[str, Any], float], None] | None = None

    def client(self, i: int) -> Client:
        return self.clients[i % len(self.clients)]

    async def watch(self) -> None:
        try:
            async for change in self.clients[0].stream("watch", namespace=self.opts.namespace):
                now = time.monotonic()
                obj = change.get("object") or {}
                name = (obj.get("metadata") or {}).get("name")
                rec = self.pods.get(name) if isinstance(name, str) else None
                if rec is None:
                    continue
                if rec.delete_sent is not None:  # what deletion does is no failure
                    if change.get("type") == "DELETED" and rec.deleted is None:
                        rec.deleted = now
                    continue
                observe(rec, obj, now)
                if self.on_change is not None:
                    self.on_change(rec, obj, now)
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # the watch ended: every waiter must hear of it
            self.watch_error = e
            for rec in self.pods.values():
                rec.done.set()

    async def start_one(self, i: int) -> None:
        manifest = pod_manifest(i, self.opts)
        rec = self.pods[manifest["metadata"]["name"]] = PodRecord(manifest["metadata"]["name"])
        rec.applied = time.monotonic()
        try:
            await self.client(i).call("apply", manifests=[manifest], source="supctl-bench")
        except SupervisorError as e:
            rec.error = f"apply: {e.message}"
            rec.applied = None
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.opts.timeout):
                await rec.done.wait()
        if self.watch_error is not None and rec.error is None:
            rec.error = f"watch ended: {self.watch_error}"
        elif not rec.done.is_set():
            rec.error = f"not Running and Ready within {self.opts.timeout:g}s"
        for stage in ("running", "ready", "completed"):
            lat = rec.latency(stage)
            if lat is not None:
                self.timeline.append((getattr(rec, stage) - self.t0, stage, lat))

    async def delete_one(self, i: int, rec: PodRecord) -> None:
        rec.delete_sent = time.monotonic()
        try:
            await self.client(i).call(
                "delete",
                namespace=self.opts.namespace,
                name=rec.name,
                grace_period=self.opts.grace_period,
                wait=True,
            )
        except SupervisorError as e:
            rec.error = rec.error or f"delete: {e.message}"
            return
        if rec.deleted is None:
            rec.deleted = time.monotonic()  # the reply came before the watch frame
        lat = rec.latency("deleted")
        if lat is not None:
            self.timeline.append((rec.deleted - self.t0, "deleted", lat))

    async def pool(
        self, title: str, items: Sequence[Any], work: Callable[[int, Any], Any], detail: Any
    ) -> float:
        """Run `work(i, item)` over items, C at a time; returns the wall time."""
        queue = list(enumerate(items))
        queue.reverse()
        done = 0
        progress = Progress(self.progress_out, len(items), title)

        async def worker() -> None:
            nonlocal done
            while queue:
                i, item = queue.pop()
                await work(i, item)
                done += 1
                progress.update(done, detail)

        t = time.monotonic()
        workers = [
            asyncio.create_task(worker()) for _ in range(min(self.opts.concurrency, len(items)))
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            progress.update(done, detail, force=True)
            progress.close()
        return time.monotonic() - t

    def counts(self) -> str:
        recs = self.pods.values()
        running = sum(r.running is not None for r in recs)
        ready = sum(r.ready is not None for r in recs)
        failed = sum(r.error is not None for r in recs)
        return f"running {running} ready {ready} failed {failed}"


async def run_start(bench: Bench, probe: ServerProbe) -> dict[str, Any]:
    opts = bench.opts
    watcher = asyncio.create_task(bench.watch())
    sampler = asyncio.create_task(_sample(probe))
    try:
        await asyncio.sleep(0)  # the watch request goes out before the first apply
        probe.start()
        start_wall = await bench.pool(
            "start", range(opts.count), lambda i, _item: bench.start_one(i), bench.counts
        )
        start_cpu = probe.cpu()
        infra = probe.infra_memory()
        peak_after_start = probe.peak_rss_kb()
        recs = [r for r in bench.pods.values() if r.applied is not None]
        delete_wall = await bench.pool(
            "delete",
            recs,
            lambda i, rec: bench.delete_one(i, rec),
            lambda: f"gone {sum(r.deleted is not None for r in recs)}",
        )
        total_cpu = probe.cpu()
    finally:
        watcher.cancel()
        sampler.cancel()
    stages: dict[str, Any] = {}
    for stage in STAGES:
        lats = [lat for r in bench.pods.values() if (lat := r.latency(stage)) is not None]
        if stage == "completed" and not lats:
            continue
        stages[stage] = summarize(lats, delete_wall if stage == "deleted" else start_wall)
    failures = [{"pod": r.name, "error": r.error} for r in bench.pods.values() if r.error]
    return {
        "mode": "start",
        "options": _options_json(opts),
        "stages": stages,
        "wall_seconds": {"start": start_wall, "delete": delete_wall},
        "failures": {"count": len(failures), "pods": failures},
        "supd": {
            "pid": probe.pid,
            "cpu_seconds": total_cpu,
            "cpu_seconds_start": start_cpu,
            "helpers_cpu_seconds": probe.helpers_cpu() if probe.pid else None,
            "peak_rss_kb": max(filter(None, [peak_after_start, probe.peak_rss_kb()]), default=None),
        },
        "infra": infra,
        "timeline": sorted(bench.timeline),
    }


async def _sample(probe: ServerProbe) -> None:
    while True:
        probe.sample()
        await asyncio.sleep(0.25)


async def run_steady(bench: Bench, probe: ServerProbe) -> dict[str, Any]:
    """N pods with readiness probes; supd's CPU per probe and probe-to-status latency."""
    opts = bench.opts
    ready_dir = Path(opts.ready_dir)
    for i in range(opts.count):
        (ready_dir / f"bench-{i}").write_text("ready\n")
    latencies: list[float] = []
    flipped: dict[str, float] = {}  # pod name -> when its file was re-created (monotonic)
    not_ready: set[str] = set()
    offset = time.time() - time.monotonic()

    changed = asyncio.Event()  # set at each watch frame: the flips below wait on it

    async def until(done: Callable[[], bool], deadline: float) -> None:
        while not done() and (left := deadline - time.monotonic()) > 0:
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)

    def on_change(rec: PodRecord, obj: dict[str, Any], now: float) -> None:
        changed.set()
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (obj.get("status") or {}).get("conditions") or []
        )
        if not ready:
            not_ready.add(rec.name)
        elif rec.name in flipped:
            flipped.pop(rec.name)
            with contextlib.suppress(OSError):
                atime = os.stat(ready_dir / rec.name).st_atime_ns / 1e9 - offset
                latencies.append(now - atime)

    bench.on_change = on_change
    watcher = asyncio.create_task(bench.watch())
    sampler = asyncio.create_task(_sample(probe))
    recs: list[PodRecord] = []
    try:
        await asyncio.sleep(0)
        start_wall = await bench.pool(
            "start", range(opts.count), lambda i, _item: bench.start_one(i), bench.counts
        )
        recs = [r for r in bench.pods.values() if r.applied is not None]
        probe.start()
        t_end = time.monotonic() + opts.duration
        sample = [r.name for r in recs if r.error is None][: max(1, min(50, len(recs) // 20))]
        progress = Progress(bench.progress_out, int(opts.duration), "steady")
        rounds = 0
        while recs and time.monotonic() < t_end and rounds < 10_000:
            rounds += 1
            # Make a sample NotReady, wait for it, then ready again and time the probes.
            for name in sample:
                with contextlib.suppress(OSError):
                    (ready_dir / name).unlink()
            not_ready.clear()
            deadline = min(t_end, time.monotonic() + 3 * opts.period + 1)
            await until(lambda: not_ready.issuperset(sample), deadline)
            for name in sample:
                (ready_dir / name).write_text("ready\n")
                flipped[name] = time.monotonic()
            deadline = min(t_end, time.monotonic() + 3 * opts.period + 1)
            await until(lambda: not flipped, deadline)
            progress.update(
                int(opts.duration - max(0.0, t_end - time.monotonic())),
                f"flips {len(latencies)}",
                force=True,
            )
        progress.close()
        cpu = probe.cpu()
        window = opts.duration
        delete_wall = await bench.pool(
            "delete", recs, lambda i, rec: bench.delete_one(i, rec), lambda: ""
        )
    finally:
        watcher.cancel()
        sampler.cancel()
    probes = len([r for r in recs if r.error is None]) * opts.containers * window / opts.period
    failures = [{"pod": r.name, "error": r.error} for r in bench.pods.values() if r.error]
    res = clock_resolution()
    return {
        "mode": "steady",
        "options": _options_json(opts),
        "stages": {
            "ready": summarize(
                [lat for r in bench.pods.values() if (lat := r.latency("ready")) is not None],
                start_wall,
            ),
            "probe_to_status": summarize(latencies, window),
            "deleted": summarize(
                [lat for r in bench.pods.values() if (lat := r.latency("deleted")) is not None],
                delete_wall,
            ),
        },
        "steady": {
            "seconds": window,
            "probes_expected": probes,
            "supd_cpu_seconds": cpu,
            "supd_cpu_per_probe_us": (cpu / probes * 1e6) if cpu is not None and probes else None,
            "supd_core_fraction": (cpu / window) if cpu is not None and window else None,
            "file_time_resolution_ms": res * 1e3,
        },
        "failures": {"count": len(failures), "pods": failures},
        "supd": {"pid": probe.pid, "peak_rss_kb": probe.peak_rss_kb()},
        "infra": None,
        "timeline": sorted(bench.timeline),
    }


def clock_resolution() -> float:
    """File times come from the coarse realtime clock (one scheduler tick)."""
    try:
        return time.clock_getres(getattr(time, "CLOCK_REALTIME_COARSE", 5))
    except OSError:
        return 0.004


def _options_json(opts: Options) -> dict[str, Any]:
    return {
        "pods": opts.count,
        "concurrency": opts.concurrency,
        "containers": opts.containers,
        "command": opts.command,
        "restart_policy": opts.restart_policy,
        "readiness_probe": opts.readiness_probe,
        "period": opts.period,
        "host_network": opts.host_network,
        "image": opts.image,
        "volumes": opts.volumes,
        "namespace": opts.namespace,
        "timeout": opts.timeout,
        "duration": opts.duration if opts.steady else None,
    }


# -- output ------------------------------------------------------------------------------


def _ms(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{x * 1e3:.2f}"


def _clean(obj: Any) -> Any:
    """NaN is not JSON: absent values are null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def to_json(result: dict[str, Any]) -> str:
    out = dict(result)
    out["timeline"] = [
        {"t": t, "stage": stage, "latency": lat} for t, stage, lat in result.get("timeline", [])
    ]
    return json.dumps(_clean(out), indent=2)


def render_table(result: dict[str, Any]) -> str:
    o = result["options"]
    lines = [
        f"supctl bench ({result['mode']}): {o['pods']} pods x {o['containers']} container(s) "
        f"{' '.join(o['command'])!r}, concurrency {o['concurrency']}",
        "",
        f"{'STAGE':<22}{'COUNT':>7}{'P50 ms':>10}{'P90 ms':>10}{'P99 ms':>10}{'MAX ms':>10}"
        f"{'PER SEC':>10}",
    ]
    for stage, s in result["stages"].items():
        title = STAGE_TITLES.get(stage, stage)
        lines.append(
            f"{title:<22}{s['count']:>7}{_ms(s['p50']):>10}{_ms(s['p90']):>10}"
            f"{_ms(s['p99']):>10}{_ms(s['max']):>10}{s['throughput']:>10.1f}"
        )
    lines.append("")
    supd = result.get("supd") or {}
    if supd.get("pid") is None:
        lines.append("supd: not on this machine's /proc (no CPU or memory figures)")
    else:
        parts = [f"supd pid {supd['pid']}"]
        if supd.get("cpu_seconds") is not None:
            parts.append(f"CPU {supd['cpu_seconds']:.2f} s")
        if supd.get("helpers_cpu_seconds"):
            parts.append(f"helpers CPU {supd['helpers_cpu_seconds']:.2f} s")
        if supd.get("peak_rss_kb") is not None:
            parts.append(f"peak RSS {supd['peak_rss_kb'] / 1024:.1f} MB")
        lines.append(", ".join(parts))
    infra = result.get("infra")
    if infra:
        lines.append(
            f"infra (median of {infra['sampled']}, {infra['infras_alive']} alive): "
            f"PSS {infra['pss_kb']} kB, RSS {infra['rss_kb']} kB, private {infra['private_kb']} kB"
        )
    steady = result.get("steady")
    if steady:
        cpu = steady.get("supd_cpu_seconds")
        per = steady.get("supd_cpu_per_probe_us")
        frac = steady.get("supd_core_fraction")
        lines.append(
            f"steady {steady['seconds']:g} s: {steady['probes_expected']:.0f} probes due "
            "(pods x seconds / period), supd CPU "
            + ("-" if cpu is None else f"{cpu:.2f} s")
            + ("" if per is None else f" = {per:.0f} µs/probe")
            + ("" if frac is None else f" ({frac * 100:.1f} % of one core)")
            + f"; file times tick every {steady['file_time_resolution_ms']:.1f} ms"
        )
    failures = result["failures"]
    lines.append(f"failures: {failures['count']}")
    for f in failures["pods"][:20]:
        lines.append(f"  {f['pod']}: {f['error']}")
    if failures["count"] > 20:
        lines.append(f"  ... and {failures['count'] - 20} more (-o json lists them all)")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: str) -> None:
    """Latency distribution (CDF per stage) and latency over time, to PNG or SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_stage: dict[str, list[tuple[float, float]]] = {}
    for t, stage, lat in result.get("timeline", []):
        by_stage.setdefault(stage, []).append((t, lat))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for stage, points in by_stage.items():
        lats = sorted(lat * 1e3 for _t, lat in points)
        ys = [(i + 1) / len(lats) for i in range(len(lats))]
        label = STAGE_TITLES.get(stage, stage)
        style = "--" if stage == "ready" else "-"  # Ready often lies on Running
        ax1.step(lats, ys, style, where="post", label=label)
        ax2.plot([t for t, _ in points], [lat * 1e3 for _, lat in points], ".", ms=2, label=label)
    ax1.set_xscale("log")
    ax1.set_xlabel("latency (ms)")
    ax1.set_ylabel("fraction of pods")
    ax1.set_title("latency distribution")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend()
    ax2.set_yscale("log")
    ax2.set_xlabel("time since start (s)")
    ax2.set_ylabel("latency (ms)")
    ax2.set_title("latency over time")
    ax2.grid(True, which="both", alpha=0.3)
    o = result["options"]
    fig.suptitle(f"supctl bench: {o['pods']} pods, concurrency {o['concurrency']}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# -- command line ------------------------------------------------------------------------


def add_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("-n", "--pods", type=int, default=1000, dest="count", help="pods (1000)")
    s.add_argument("-c", "--concurrency", type=int, default=16, help="pods in flight (16)")
    s.add_argument("-k", "--containers", type=int, default=1, help="containers per pod (1)")
    s.add_argument(
        "--command",
        nargs="+",
        dest="container_command",
        default=["/bin/sleep", "100000"],
        help="container command (/bin/sleep 100000)",
    )
    s.add_argument("--restart-policy", choices=("Always", "OnFailure", "Never"), default="Always")
    s.add_argument("--readiness-probe", action="store_true", help="exec probe per container")
    s.add_argument("--period", type=int, default=1, help="probe period in seconds (1)")
    s.add_argument("--host-network", action="store_true", help="hostNetwork: true")
    s.add_argument("--image", help="container image (default: the host's filesystem)")
    s.add_argument("--volumes", type=int, default=0, help="emptyDir volumes per pod")
    s.add_argument("--timeout", type=float, default=60.0, help="seconds for one pod to start")
    s.add_argument("--grace-period", type=float, default=0.0, help="for the deletes (0)")
    s.add_argument("--bench-namespace", dest="bench_namespace", help="default: bench-PID")
    s.add_argument("--steady", action="store_true", help="steady-state probe mode")
    s.add_argument("--duration", type=float, default=30.0, help="steady mode seconds (30)")
    s.add_argument("-o", "--output", choices=("table", "json"), default="table")
    s.add_argument("--plot", metavar="FILE", help="draw the latencies to FILE.png or FILE.svg")


def options_from_args(a: argparse.Namespace) -> Options:
    for name in ("count", "concurrency", "containers", "period"):
        if getattr(a, name) < 1:
            raise ValueError(f"--{name}: must be at least 1")
    if a.plot and not a.plot.lower().endswith((".png", ".svg")):
        raise ValueError("--plot: the file name must end in .png or .svg")
    return Options(
        count=a.count,
        concurrency=a.concurrency,
        containers=a.containers,
        command=list(a.container_command),
        restart_policy=a.restart_policy,
        readiness_probe=a.readiness_probe or a.steady,
        period=a.period,
        host_network=a.host_network,
        image=a.image,
        volumes=a.volumes,
        timeout=a.timeout,
        grace_period=a.grace_period,
        namespace=a.bench_namespace or "",
        steady=a.steady,
        duration=a.duration,
    )


def peer_pid(client: Client) -> int | None:
    """supd's pid as the kernel saw it at connect (SO_PEERCRED), if its /proc is ours."""
    pid = client.peer_pid()
    if pid is None or pid <= 0 or not os.path.exists(f"/proc/{pid}/stat"):
        return None
    return pid


async def run(socket: str, opts: Options, progress_out: TextIO | None) -> dict[str, Any]:
    n_clients = max(1, math.ceil(opts.concurrency / CONNECTION_REQUESTS))
    clients = [await Client.connect(socket) for _ in range(n_clients)]
    tmp = None
    try:
        if opts.readiness_probe and not opts.ready_dir:
            tmp = tempfile.mkdtemp(prefix="supctl-bench-")
            os.chmod(tmp, 0o755)
            opts.ready_dir = tmp
            if not opts.steady:
                for i in range(opts.count):
                    Path(tmp, f"bench-{i}").write_text("ready\n")
        probe = ServerProbe(peer_pid(clients[0]))
        bench = Bench(clients, opts, progress_out)
        if opts.steady:
            return await run_steady(bench, probe)
        return await run_start(bench, probe)
    finally:
        for c in clients:
            await c.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


async def main(args: argparse.Namespace, socket: str, out: TextIO, err: TextIO) -> int:
    """`supctl bench`: 0 when every pod started (and was deleted), 1 when any failed."""
    try:
        opts = options_from_args(args)
    except ValueError as e:
        err.write(f"error: {e}\n")
        return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            err.write("error: --plot needs matplotlib: pip install 'supervisor-pods[bench]'\n")
            return 2
    result = await run(socket, opts, err)
    if args.output == "json":
        out.write(to_json(result) + "\n")
    else:
        out.write(render_table(result))
    if args.plot:
        plot(result, args.plot)
        if args.output != "json":
            out.write(f"plot: {args.plot}\n")
    return 1 if result["failures"]["count"] else 0


if __name__ == "__main__":  # pragma: no cover - `supctl bench` is the entry point
    sys.exit("run `supctl bench`")
