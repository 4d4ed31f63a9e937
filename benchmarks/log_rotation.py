"""Container log throughput with rotation on and off, interleaved in one run.

Starts one supd per setting (each with its own socket and state dir under a temporary
directory), then, round after round, runs on each the same pod: a container that writes
BYTES of LINE-byte lines to stdout as fast as it can (`yes LINE | head -c BYTES`) and
records how long that took, in nanoseconds, in a file on the host. The writer finishes once
infra has taken all but the last pipe-full, so the time is infra's relay rate. Root:

    sudo .venv/bin/python benchmarks/log_rotation.py [--bytes 200M] [--line 100] [-r 3]
        [--setting on=10Mi:5] [--setting small=1Mi:5] [--setting off=0:5]

Prints each sample and, per setting, the median MB/s and its ratio to the last setting's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent


def start_supd(home: Path, max_size: str, max_files: str) -> subprocess.Popen[bytes]:
    r, w = os.pipe()
    proc = subprocess.Popen(
        [
            str(BIN / "supd"), "--socket", str(home / "sock"), "--state-dir", str(home / "state"),
            "--notify-fd", str(w), "--cgroup-parent", f"supd-bench-{home.name}",
            "--container-log-max-size", max_size, "--container-log-max-files", max_files,
        ],
        pass_fds=(w,),
        stderr=open(home / "supd.log", "ab"),  # noqa: SIM115
    )  # fmt: skip
    os.close(w)
    with os.fdopen(r, "rb") as ready:
        if not ready.readline():
            raise SystemExit(f"supd in {home} did not start: see {home / 'supd.log'}")
    return proc


def ctl(home: Path, *args: str, input: str | None = None) -> str:
    res = subprocess.run(
        [str(BIN / "supctl"), "--socket", str(home / "sock"), *args],
        input=input, capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    return res.stdout


def wait_succeeded(home: Path, name: str) -> None:
    """Follow `get -w -o json` until the pod has Succeeded (no polling)."""
    proc = subprocess.Popen(
        [str(BIN / "supctl"), "--socket", str(home / "sock"), "get", "pod", name, "-w",
         "-o", "json"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    decoder, buf = json.JSONDecoder(), ""
    try:
        assert proc.stdout is not None
        while chunk := os.read(proc.stdout.fileno(), 65536):
            buf += chunk.decode()
            while True:
                buf = buf.lstrip()
                try:
                    obj, end = decoder.raw_decode(buf)
                except ValueError:
                    break
                buf = buf[end:]
                phase = obj["status"]["phase"]
                if phase == "Succeeded":
                    return
                if phase == "Failed":
                    raise SystemExit(f"pod {name} failed: {obj['status']}")
        raise SystemExit(f"pod {name}: the watch ended")
    finally:
        proc.kill()
        proc.wait()


def one_run(home: Path, name: str, size: str, line: int, out: Path) -> float:
    text = "x" * (line - 1)
    script = (
        f"t0=$(date +%s%N); yes {text} | head -c {size}; t1=$(date +%s%N); "
        f"echo $((t1 - t0)) > {out}"
    )
    manifest = (
        f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n"
        f"  restartPolicy: Never\n  containers:\n  - name: w\n"
        f"    command: [sh, -c, {json.dumps(script)}]\n"
    )
    ctl(home, "apply", "-f", "-", input=manifest)
    wait_succeeded(home, name)
    files = list((home / "state" / "pods").glob(f"default_{name}_*/w/*"))
    on_disk = sum(p.stat().st_size for p in files)
    ctl(home, "delete", "pod", name, "--grace-period", "0")
    seconds = int(out.read_text()) / 1e9
    print(f"  {home.name:>6} {seconds:7.3f} s  {len(files)} file(s), {on_disk / 2**20:.0f} MiB")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bytes", default="200M", help="what the container writes (head -c)")
    p.add_argument("--line", type=int, default=100, help="bytes per line, newline included")
    p.add_argument("-r", "--rounds", type=int, default=3)
    p.add_argument(
        "--setting", action="append", metavar="NAME=SIZE:FILES",
        help="a supd's --container-log-max-size and -files (default on=10Mi:5, off=0:5)",
    )  # fmt: skip
    args = p.parse_args()
    settings = [s.partition("=") for s in (args.setting or ["on=10Mi:5", "off=0:5"])]
    size = args.bytes
    total = {"K": 1e3, "M": 1e6, "G": 1e9}.get(size[-1], 1) * float(size.rstrip("KMG"))
    with tempfile.TemporaryDirectory(prefix="supd-logbench-") as tmp:
        homes, procs = [], []
        try:
            for name, _, limits in settings:
                home = Path(tmp) / name
                home.mkdir()
                max_size, _, max_files = limits.partition(":")
                procs.append(start_supd(home, max_size, max_files or "5"))
                homes.append(home)
            times: dict[str, list[float]] = {h.name: [] for h in homes}
            for r in range(args.rounds):
                print(f"round {r + 1}")
                for home in homes:  # interleaved: each round runs every setting once
                    out = Path(tmp) / f"{home.name}-{r}.ns"
                    times[home.name].append(one_run(home, f"w{r}", size, args.line, out))
            base = statistics.median(times[homes[-1].name])
            for home in homes:
                med = statistics.median(times[home.name])
                print(
                    f"{home.name:>6}: median {med:.3f} s = {total / med / 1e6:.0f} MB/s "
                    f"({base / med:.2f}x {homes[-1].name}'s rate)"
                )
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()
