"""A long fuzz run against a real supd: the fuzzers of tests/test_hostile.py, for longer.

    sudo .venv/bin/python benchmarks/fuzz.py [--examples 5000] [--time 600] [--only requests]

Rounds of 200 hypothesis examples (a fresh random seed each) of fuzzed requests for every op
on one supd (with a live pod to reach), of mutated Pod objects through its apply op, and of
mutated example manifests through the validator, until `--examples`
examples or `--time` seconds, whichever comes first. After each round supd must be alive,
serve a fresh `supctl get`, know no pod, and hold no more than 8 fds and 64 MiB RSS above
what it held after the first round; at the end its log must hold no traceback. A failure
prints hypothesis's smallest falsifying example and exits 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import Supd, finish_supd
from test_hostile import bounded, healthy, run_apply_fuzz, run_manifest_fuzz, run_request_fuzz

ROUND = 200


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--examples", type=int, default=5000, help="examples per fuzzer, at most")
    p.add_argument("--time", type=float, default=600.0, help="seconds, at most")
    p.add_argument("--only", choices=("requests", "apply", "manifests"), help="run one fuzzer")
    a = p.parse_args()
    deadline = time.monotonic() + a.time
    with tempfile.TemporaryDirectory(prefix="supd-fuzz-") as tmp:
        tmp_path = Path(tmp)
        d = Supd(socket=tmp_path / "supd.sock", state_dir=tmp_path / "state")
        d.start()
        done = {"requests": 0, "apply": 0, "manifests": 0}
        try:
            healthy(d)
            with bounded(d):
                while (
                    time.monotonic() < deadline
                    and min(n for k, n in done.items() if a.only in (None, k)) < a.examples
                ):
                    if a.only in (None, "requests") and done["requests"] < a.examples:
                        run_request_fuzz(d, ROUND)
                        done["requests"] += ROUND
                        healthy(d)
                    if a.only in (None, "apply") and done["apply"] < a.examples:
                        run_apply_fuzz(d, ROUND)
                        done["apply"] += ROUND
                        healthy(d)
                    if a.only in (None, "manifests") and done["manifests"] < a.examples:
                        run_manifest_fuzz(ROUND)
                        done["manifests"] += ROUND
                    print(f"{done} examples, supd alive", flush=True)
        finally:
            finish_supd(d, tmp_path)  # fails on a traceback in supd's log
    print(f"done: {done} examples, no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
