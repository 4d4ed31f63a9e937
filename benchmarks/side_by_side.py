"""Side by side: one container's start through supd, crun, runc, Python and the kernel floor.

The same workload, interleaved in one run on one machine so that the machine's noise falls
on every path alike: N containers with new pid, net, ipc, uts and mount namespaces, each
   true    start → exited of /bin/true
   sleep   start → running of a sleeping process (until its execve is done)
one after another (concurrency 1), then C at a time, through
   supd     apply of a one-container pod (host filesystem), until the watch shows it
            Succeeded (true) or Running (sleep); supd started by this script
   floor    a C loop: clone(2) with the five namespaces, execve(2), wait: the kernel's own
            cost, compiled here with cc
   spawn    supervisor._native.spawn from Python: the five namespaces, a private /proc mount
   popen    subprocess.Popen: plain fork/exec from Python, no namespaces
   crun     `crun run` of an OCI bundle (busybox-static rootfs, /proc and /dev mounted, the
            same five namespaces), with its cgroup (crun) and without (crun-nocg)
   runc     `runc run` of the same bundle (runc always makes a cgroup)
with --gap ms of quiet after each one (or each block), and prints each path's percentiles,
throughput and p50 ratio to supd, then the targets.

It installs crun, runc and busybox-static from Debian's packages when missing (root), and says
what it skipped and why. crun refuses a hybrid cgroup layout whose cgroup2 mount still lists
controllers ("cgroups in hybrid mode not supported"); the script then mounts the hugetlb
controller as a v1 hierarchy at /sys/fs/cgroup/hugetlb, which lets it run, and says so.
supd runs twice: with its per-pod cgroups (the default driver, v1 here) and with
`--cgroups off` (supd-nocg), as crun does with and without its cgroup.

    sudo .venv/bin/python benchmarks/side_by_side.py -n 200 -c 16 [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from supervisor import _native
from supervisor.client import Client

NAMESPACE = "side"
FIVE = (
    _native.CLONE_NEWPID
    | _native.CLONE_NEWNET
    | _native.CLONE_NEWIPC
    | _native.CLONE_NEWUTS
    | _native.CLONE_NEWNS
)
KINDS = ("true", "sleep")

FLOOR_C = r"""
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

/* floor KIND N: N times clone(2) with new pid, net, ipc, uts and mount namespaces, execve(2)
   of /bin/true (timed to its exit) or /bin/sleep (timed to the end of its execve, seen as
   EOF on a close-on-exec pipe); prints one latency in ns per line. */
static long long now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    int sleep_kind = argc > 1 && strcmp(argv[1], "sleep") == 0;
    int n = argc > 2 ? atoi(argv[2]) : 100;
    int flags = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS;
    char *true_argv[] = {"/bin/true", NULL};
    char *sleep_argv[] = {"/bin/sleep", "1000", NULL};
    char *envp[] = {"PATH=/bin", NULL};
    for (int i = 0; i < n; i++) {
        int p[2];
        char c;
        int status;
        if (pipe2(p, O_CLOEXEC) < 0) return 1;
        long long t0 = now();
        pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
        if (pid == 0) {
            execve(sleep_kind ? "/bin/sleep" : "/bin/true", sleep_kind ? sleep_argv : true_argv,
                   envp);
            _exit(127);
        }
        if (pid < 0) return 1;
        close(p[1]);
        if (sleep_kind) {
            while (read(p[0], &c, 1) > 0) {}
        } else {
            waitpid(pid, &status, 0);
        }
        long long t1 = now();
        close(p[0]);
        if (sleep_kind) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
        printf("%lld\n", t1 - t0);
    }
    return 0;
}
"""


def log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


def percentile(xs: list[float], q: float) -> float:
    """Nearest rank, as supctl bench reports it."""
    if not xs:
        return math.nan
    s = sorted(xs)
    return s[min(len(s), max(1, math.ceil(q * len(s)))) - 1]


# -- preparing the peers -------------------------------------------------------------------


def ensure_packages(skipped: list[str]) -> None:
    missing = [
        pkg
        for pkg, binary in (("crun", "crun"), ("runc", "runc"), ("busybox-static", "busybox"))
        if shutil.which(binary) is None
    ]
    if not missing:
        return
    if os.geteuid() != 0:
        skipped.append(f"installing {', '.join(missing)}: not root")
        return
    log(f"installing {' '.join(missing)} from Debian's packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-qq", *missing]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            skipped.append(f"apt-get install {' '.join(missing)} failed: {res.stderr.strip()}")


def make_bundle(root: Path, kind: str) -> Path | None:
    """An OCI bundle for `kind`: busybox-static as the rootfs, `runc spec` trimmed to /proc
    and /dev, the five namespaces of the default spec."""
    busybox = shutil.which("busybox")
    runc = shutil.which("runc")
    if busybox is None or runc is None:
        return None
    bundle = root / f"bundle-{kind}"
    (bundle / "rootfs" / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(busybox, bundle / "rootfs" / "bin" / "busybox")
    for name in ("true", "sleep"):
        link = bundle / "rootfs" / "bin" / name
        if not link.exists():
            link.symlink_to("busybox")
    subprocess.run([runc, "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"] if kind == "true" else ["/bin/sleep", "1000"]
    config["mounts"] = [m for m in config["mounts"] if m["destination"] in ("/proc", "/dev")]
    namespaces = sorted(ns["type"] for ns in config["linux"]["namespaces"])
    assert namespaces == ["ipc", "mount", "network", "pid", "uts"], namespaces
    (bundle / "config.json").write_text(json.dumps(config, indent=1))
    return bundle


def fix_hybrid_cgroups_for_crun(notes: list[str]) -> None:
    """crun 1.8 refuses a hybrid layout whose cgroup2 mount lists controllers; this
    machine's lists hugetlb. Mounting hugetlb as a v1 hierarchy takes it off cgroup2."""
    controllers = Path("/sys/fs/cgroup/unified/cgroup.controllers")
    target = Path("/sys/fs/cgroup/hugetlb")
    if os.path.ismount(target):
        notes.append(
            "hugetlb is mounted as a v1 hierarchy at /sys/fs/cgroup/hugetlb (arranged "
            "earlier), which crun needs on this hybrid cgroup layout"
        )
        return
    if not controllers.exists() or "hugetlb" not in controllers.read_text().split():
        return
    target.mkdir(exist_ok=True)
    res = subprocess.run(
        ["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", str(target)],
        capture_output=True,
        text=True,
    )
    if res.returncode == 0:
        notes.append(
            "crun refuses this hybrid cgroup layout (cgroup2 lists hugetlb): mounted hugetlb "
            "as a v1 hierarchy at /sys/fs/cgroup/hugetlb so that it runs"
        )
    else:
        notes.append(f"mounting hugetlb for crun failed: {res.stderr.strip()}")


def build_floor(root: Path) -> Path | None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    src = root / "floor.c"
    src.write_text(FLOOR_C)
    out = root / "floor"
    subprocess.run([cc, "-O2", "-o", str(out), str(src)], check=True)
    return out


# -- the paths -------------------------------------------------------------------------------


class Runner:
    """One way of starting the container: `once(kind, i)` returns the seconds it took."""

    name = ""
    note = ""

    def once(self, kind: str, i: int) -> float:
        raise NotImplementedError

    def batch(self, kind: str, items: list[int], concurrency: int) -> list[float]:
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(lambda i: self.once(kind, i), items))


class Popen(Runner):
    name = "popen"
    note = "subprocess.Popen, no namespaces"

    def once(self, kind: str, i: int) -> float:
        argv = ["/bin/true"] if kind == "true" else ["/bin/sleep", "1000"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv)
        if kind == "true":
            proc.wait()
            return time.perf_counter() - t0
        t = time.perf_counter() - t0
        proc.kill()
        proc.wait()
        return t


class Spawn(Popen):
    name = "spawn"
    note = "_native.spawn from Python: 5 namespaces + /proc"

    def once(self, kind: str, i: int) -> float:
        argv = ["/bin/true"] if kind == "true" else ["/bin/sleep", "1000"]
        t0 = time.perf_counter()
        _pid, pidfd = _native.spawn(argv, clone_flags=FIVE, mount_proc=True)
        if kind == "true":
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
            t = time.perf_counter() - t0
        else:
            t = time.perf_counter() - t0
            _native.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
        os.close(pidfd)
        return t


class Floor(Runner):
    name = "floor"
    note = "C: clone(5 namespaces) + execve + wait"

    def __init__(self, binary: Path) -> None:
        self.binary = binary

    def run(self, kind: str, n: int) -> list[float]:
        out = subprocess.run(
            [str(self.binary), kind, str(n)], capture_output=True, text=True, check=True
        ).stdout
        return [int(line) / 1e9 for line in out.split()]

    def once(self, kind: str, i: int) -> float:
        return self.run(kind, 1)[0]

    def batch(self, kind: str, items: list[int], concurrency: int) -> list[float]:
        # C processes, each timing its share in its own loop.
        shares = [
            len(items) // concurrency + (1 if k < len(items) % concurrency else 0)
            for k in range(concurrency)
        ]
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            parts = pool.map(lambda n: self.run(kind, n) if n else [], shares)
            return [x for part in parts for x in part]


class Oci(Runner):
    """crun or runc: `run` in the foreground for true, `run -d` for sleep (returns once the
    container's process has started), with its state under a private --root."""

    def __init__(
        self, name: str, binary: str, bundles: dict[str, Path], root: Path, extra: list[str]
    ) -> None:
        self.name = name
        self.binary = binary
        self.bundles = bundles
        self.root = root
        self.extra = extra
        self.note = f"{Path(binary).name} run {' '.join(extra)}".strip()
        self._n = 0
        self._lock = threading.Lock()

    def _id(self) -> str:
        with self._lock:
            self._n += 1
            return f"{self.name}-{os.getpid()}-{self._n}"

    def cmd(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.root), *self.extra, *args]

    def once(self, kind: str, i: int) -> float:
        # stderr goes to a file, not a pipe: a detached container inherits it and would
        # hold a pipe open for as long as it runs.
        cid = self._id()
        bundle = str(self.bundles[kind])
        null = subprocess.DEVNULL
        args = (
            ("run", "--bundle", bundle, cid)
            if kind == "true"
            else ("run", "-d", "--bundle", bundle, cid)
        )
        with tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            res = subprocess.run(self.cmd(*args), stdin=null, stdout=null, stderr=err, timeout=60)
            t = time.perf_counter() - t0
            if kind != "true" or res.returncode != 0:
                subprocess.run(self.cmd("delete", "-f", cid), stdout=null, stderr=null, timeout=60)
            if res.returncode != 0:
                err.seek(0)
                raise RuntimeError(f"{self.name}: {err.read().decode().strip()}")
        return t


def check_source(source: str, env: dict[str, str]) -> None:
    """Refuse a baseline supd that would not run the package of `source`."""
    found = subprocess.run(
        [sys.executable, "-c", "import supervisor; print(supervisor.__file__)"],
        env=env,
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(found).resolve().is_relative_to(Path(source).resolve()):
        raise SystemExit(f"--supd-from {source}: its supd would import {found}")


class Supd(Runner):
    """A supd of our own; pods applied over one connection from a loop in a thread."""

    name = "supd"
    note = "supctl apply → watch, host filesystem"

    def __init__(
        self,
        tmp: Path,
        name: str = "supd",
        source: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        """`source`: run the supervisor package of that source tree (built in place), to
        compare a change with its baseline in one run; `extra`: more supd flags."""
        self.name = name
        if source is not None:
            self.note = f"supd from {source}"
        if extra:
            self.note = f"{self.note}, {' '.join(extra)}"
        tmp.mkdir(parents=True, exist_ok=True)
        r, w = os.pipe()
        env = dict(os.environ)
        if source is not None:
            env["PYTHONPATH"] = source
            check_source(source, env)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "supervisor.supd",
                "--socket",
                str(tmp / "s.sock"),
                "--state-dir",
                str(tmp / "state"),
                "--notify-fd",
                str(w),
                "--log-level",
                "warning",
                # a cgroup parent each (older trees have no such flag): a supd prunes the
                # pod cgroups it does not know
                *(("--cgroup-parent", f"side-by-side-{name}") if source is None else ()),
                *extra,
            ],
            pass_fds=(w,),
            env=env,
            # `-m` puts the working directory first on sys.path, before PYTHONPATH: run from
            # this checkout, a baseline would have imported this tree (check_source).
            cwd=source,
        )
        os.close(w)
        with os.fdopen(r, "rb") as ready:
            if not ready.readline():
                raise RuntimeError("supd did not start")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.waiting: dict[str, tuple[str, asyncio.Future[float]]] = {}
        self.client: Client = self.call(Client.connect(str(tmp / "s.sock")))
        self.watcher = asyncio.run_coroutine_threadsafe(self._watch(), self.loop)
        self._n = 0

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def _watch(self) -> None:
        async for change in self.client.stream("watch", namespace=NAMESPACE):
            obj = change["object"]
            entry = self.waiting.get(obj["metadata"]["name"])
            if entry is None or entry[1].done():
                continue
            phase = obj["status"]["phase"]
            if phase == entry[0]:
                entry[1].set_result(time.perf_counter())
            elif phase == "Failed":
                entry[1].set_exception(RuntimeError(f"pod {obj['metadata']['name']} Failed"))

    async def _once(self, kind: str, name: str) -> float:
        argv = ["/bin/true"] if kind == "true" else ["/bin/sleep", "1000"]
        manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "command": argv}],
            },
        }
        fut = self.loop.create_future()
        self.waiting[name] = ("Succeeded" if kind == "true" else "Running", fut)
        try:
            t0 = time.perf_counter()
            await self.client.call("apply", manifests=[manifest], source="side-by-side")
            t = await asyncio.wait_for(fut, 30) - t0
        finally:
            del self.waiting[name]
        await self.client.call("delete", namespace=NAMESPACE, name=name, grace_period=0)
        return t

    def _name(self) -> str:
        self._n += 1
        return f"p{self._n}"

    def once(self, kind: str, i: int) -> float:
        return float(self.call(self._once(kind, self._name())))

    def batch(self, kind: str, items: list[int], concurrency: int) -> list[float]:
        names = [self._name() for _ in items]

        async def run() -> list[float]:
            queue = list(reversed(names))
            out: list[float] = []

            async def worker() -> None:
                while queue:
                    out.append(await self._once(kind, queue.pop()))

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return out

        return list(self.call(run()))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.watcher.cancel()
        self.call(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.proc.terminate()
        self.proc.wait(30)


# -- the run ---------------------------------------------------------------------------------


def measure(
    paths: list[Runner], n: int, concurrency: int, skipped: list[str], gap: float = 0.02
) -> dict[str, dict[str, Any]]:
    """Interleave the paths: at concurrency 1 one container each in turn; at C, blocks of
    2*C containers each in turn, with `gap` seconds of quiet after each: a path's
    containers leave work behind (the kernel tears a network namespace down in a worker,
    several ms of CPU on a 2-core machine), which would otherwise land on the next path's
    clock. Returns {kind: {mode: {path: stats}}}."""
    results: dict[str, Any] = {}
    live = list(paths)
    for kind in KINDS:
        results[kind] = {}
        for mode, c in (("c1", 1), (f"c{concurrency}", concurrency)):
            samples: dict[str, list[float]] = {p.name: [] for p in live}
            walls: dict[str, float] = {p.name: 0.0 for p in live}
            block = 1 if c == 1 else 2 * c
            done = 0
            for p in live:  # one warm-up each: page cache, first-time costs
                try:
                    p.once(kind, -1)
                except Exception as e:
                    skipped.append(f"{p.name}: {e}")
            live = [p for p in live if not any(s.startswith(f"{p.name}:") for s in skipped)]
            while done < n:
                size = min(block, n - done)
                for p in live:
                    t0 = time.perf_counter()
                    try:
                        samples[p.name] += p.batch(kind, list(range(size)), c)
                    except Exception as e:
                        skipped.append(f"{p.name} ({kind}, {mode}): {e}")
                        live.remove(p)
                        break
                    walls[p.name] += time.perf_counter() - t0
                    time.sleep(gap)
                done += size
                if sys.stderr.isatty():  # a progress line on a terminal, not into a log
                    print(f"\r# {kind} {mode}: {done}/{n}", end="", file=sys.stderr, flush=True)
            print(f"\r# {kind} {mode}: {done}/{n}", file=sys.stderr)
            results[kind][mode] = {
                name: {
                    "n": len(xs),
                    "p50": percentile(xs, 0.5),
                    "p90": percentile(xs, 0.9),
                    "p99": percentile(xs, 0.99),
                    "max": max(xs) if xs else math.nan,
                    "per_second": len(xs) / walls[name] if walls[name] else 0.0,
                }
                for name, xs in samples.items()
                if xs
            }
    return results


def report(results: dict[str, Any], notes: list[str], skipped: list[str], out: Any) -> None:
    for kind, modes in results.items():
        for mode, rows in modes.items():
            what = "start → exited of /bin/true" if kind == "true" else "start → running (sleep)"
            print(f"\n{what}, concurrency {mode[1:]}", file=out)
            print(
                f"{'path':<11}{'n':>6}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
                f"{'per s':>8}{'p50/supd':>10}",
                file=out,
            )
            base = rows.get("supd", {}).get("p50", math.nan)
            for name, s in rows.items():
                print(
                    f"{name:<11}{s['n']:>6}"
                    + "".join(f"{s[k] * 1e3:>9.2f}" for k in ("p50", "p90", "p99", "max"))
                    + f"{s['per_second']:>8.0f}{s['p50'] / base:>10.2f}",
                    file=out,
                )
    print("\ntargets (p50, concurrency 1, /bin/true):", file=out)
    rows = results.get("true", {}).get("c1", {})
    supd = rows.get("supd", {}).get("p50")
    for name, want, text in (
        ("floor", 1.6, "supd within 1.6x of the floor"),
        ("crun", 6.0, "crun at least 6x supd"),
        ("runc", 9.0, "runc at least 9x supd"),
    ):
        other = rows.get(name, {}).get("p50")
        if supd is None or other is None:
            print(f"  {text}: not measured", file=out)
            continue
        ratio = supd / other if name == "floor" else other / supd
        ok = ratio <= want if name == "floor" else ratio >= want
        label = "supd/floor" if name == "floor" else f"{name}/supd"
        print(f"  {text}: {label} = {ratio:.2f} {'met' if ok else 'MISSED'}", file=out)
    for note in notes:
        print(f"note: {note}", file=out)
    for s in skipped:
        print(f"skipped: {s}", file=out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=200, help="containers per path, kind and mode")
    p.add_argument("-c", "--concurrency", type=int, default=16)
    p.add_argument("--only", help="comma-separated paths to run (default: all)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument(
        "--gap", type=float, default=20, metavar="MS", help="quiet after each block (20 ms)"
    )
    p.add_argument(
        "--supd-from",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also run a supd from another source tree (built in place), e.g. a baseline",
    )
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: every path creates namespaces")
    # SIGTERM (a timeout) unwinds like ^C, so that supd and the temporary files go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    notes: list[str] = []
    skipped: list[str] = []
    ensure_packages(skipped)
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as tmp_s:
        tmp = Path(tmp_s)
        paths: list[Runner] = []
        supd = Supd(tmp / "supd")
        paths.append(supd)
        others = [Supd(tmp / "supd-nocg", "supd-nocg", extra=("--cgroups", "off"))]
        for spec in args.supd_from:
            name, sep, source = spec.partition("=")
            if not sep:  # DIR alone: named after it
                name, source = os.path.basename(spec.rstrip("/")), spec
            others.append(Supd(tmp / name, name, os.path.abspath(source)))
        paths += others
        floor = build_floor(tmp)
        if floor is None:
            skipped.append("floor: no C compiler")
        else:
            paths.append(Floor(floor))
        paths += [Spawn(), Popen()]
        bundles = {k: b for k in KINDS if (b := make_bundle(tmp, k)) is not None}
        if len(bundles) < len(KINDS):
            skipped.append("crun, runc: busybox-static or runc missing (no OCI bundle)")
        else:
            crun = shutil.which("crun")
            if crun is None:
                skipped.append("crun: not installed")
            else:
                fix_hybrid_cgroups_for_crun(notes)
                paths.append(Oci("crun", crun, bundles, tmp / "crun", []))
                paths.append(
                    Oci("crun-nocg", crun, bundles, tmp / "crun", ["--cgroup-manager=disabled"])
                )
            runc = shutil.which("runc")
            if runc is None:
                skipped.append("runc: not installed")
            else:
                paths.append(Oci("runc", runc, bundles, tmp / "runc", []))
        if args.only:
            wanted = set(args.only.split(",")) | {"supd"} | {o.name for o in others}
            paths = [p for p in paths if p.name in wanted]
        log("paths: " + ", ".join(f"{p.name} ({p.note})" for p in paths))
        cpu0 = supd.cpu_seconds()
        try:
            results = measure(paths, args.n, args.concurrency, skipped, args.gap / 1000)
        finally:
            cpu = supd.cpu_seconds() - cpu0
            supd.close()
            for other in others:
                other.close()
    notes.append(f"supd CPU over the run: {cpu:.2f} s")
    report(results, notes, skipped, sys.stdout)
    if args.json:
        doc = {
            "machine": {"cores": os.cpu_count(), "kernel": os.uname().release},
            "n": args.n,
            "concurrency": args.concurrency,
            "results": results,
            "notes": notes,
            "skipped": skipped,
        }
        Path(args.json).write_text(json.dumps(doc, indent=1, default=str))


if __name__ == "__main__":
    main()
