"""supctl bench: its arithmetic and output shapes (pure), and small real runs against supd."""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

import pytest
from conftest import Supd

from supervisor import bench

# -- pure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xs", "q", "want"),
    [
        ([], 0.5, math.nan),
        ([7.0], 0.0, 7.0),
        ([7.0], 0.99, 7.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0),  # nearest rank: ceil(0.5 * 4) = 2nd
        ([1.0, 2.0, 3.0, 4.0], 0.51, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 1.0, 4.0),
        ([float(i) for i in range(1, 101)], 0.9, 90.0),
        ([float(i) for i in range(1, 101)], 0.99, 99.0),
        ([float(i) for i in range(1, 1001)], 0.99, 990.0),
    ],
)
def test_percentile_is_nearest_rank(xs: list[float], q: float, want: float) -> None:
    got = bench.percentile(xs, q)
    assert (math.isnan(got) and math.isnan(want)) or got == want


def test_summarize() -> None:
    s = bench.summarize([0.003, 0.001, 0.002, 0.004], wall=2.0)
    assert s == {
        "count": 4,
        "p50": 0.002,
        "p90": 0.004,
        "p99": 0.004,
        "max": 0.004,
        "throughput": 2.0,
    }
    empty = bench.summarize([], wall=1.0)
    assert empty["count"] == 0 and empty["throughput"] == 0.0 and math.isnan(empty["p50"])


def test_pod_manifest_options() -> None:
    opts = bench.Options(
        count=3,
        containers=2,
        command=["/bin/true"],
        readiness_probe=True,
        period=2,
        host_network=True,
        image="busybox",
        volumes=1,
        namespace="ns",
        ready_dir="/run/r",
    )
    m = bench.pod_manifest(2, opts)
    assert m["metadata"] == {"name": "bench-2", "namespace": "ns", "labels": {"app": "bench"}}
    spec = m["spec"]
    assert spec["hostNetwork"] is True
    assert spec["volumes"] == [{"name": "v0", "emptyDir": {}}]
    assert [c["name"] for c in spec["containers"]] == ["c0", "c1"]
    c = spec["containers"][0]
    assert c["command"] == ["/bin/true"] and c["image"] == "busybox"
    assert c["volumeMounts"] == [{"name": "v0", "mountPath": "/bench/v0"}]
    assert c["readinessProbe"] == {
        "exec": {"command": ["cat", "/run/r/bench-2"]},
        "periodSeconds": 2,
        "failureThreshold": 1,
    }
    plain = bench.pod_manifest(0, bench.Options(namespace="ns"))["spec"]
    assert set(plain) == {"restartPolicy", "terminationGracePeriodSeconds", "containers"}
    assert set(plain["containers"][0]) == {"name", "command"}


def _pod(phase: str, ready: bool = False, **container: object) -> dict[str, object]:
    status: dict[str, object] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": [{"name": "c0", **container}],
    }
    return {"metadata": {"name": "p"}, "status": status}


def test_observe_stages_and_failures() -> None:
    rec = bench.PodRecord("p", applied=1.0)
    bench.observe(rec, _pod("Pending", state={"waiting": {"reason": "ContainerCreating"}}), 1.1)
    assert rec.running is None and rec.error is None and not rec.done.is_set()
    bench.observe(rec, _pod("Running", state={"running": {}}), 1.2)
    assert rec.running == 1.2 and not rec.done.is_set()
    bench.observe(rec, _pod("Running", ready=True, state={"running": {}}), 1.5)
    assert rec.ready == 1.5 and rec.done.is_set()
    assert rec.latency("running") == pytest.approx(0.2)
    assert rec.latency("ready") == pytest.approx(0.5)
    assert rec.latency("deleted") is None

    bad = bench.PodRecord("q", applied=0.0)
    waiting = {"waiting": {"reason": "ErrImageNeverPull", "message": "no store"}}
    bench.observe(bad, _pod("Pending", state=waiting), 0.1)
    assert bad.error == "container c0: ErrImageNeverPull: no store" and bad.done.is_set()

    crashed = bench.PodRecord("r", applied=0.0)
    term = {"terminated": {"exitCode": 127, "reason": "StartError", "message": "exec x: nope"}}
    bench.observe(crashed, _pod("Running", state=term), 0.1)
    assert crashed.error == "container c0: StartError exit code 127: exec x: nope"

    quick = bench.PodRecord("s", applied=0.0)
    bench.observe(quick, _pod("Succeeded", state={"terminated": {"exitCode": 0}}), 0.3)
    assert quick.completed == quick.running == 0.3 and quick.error is None


def _result() -> dict[str, object]:
    opts = bench.Options(count=2, namespace="ns")
    return {
        "mode": "start",
        "options": bench._options_json(opts),
        "stages": {
            "running": bench.summarize([0.001, 0.002], 1.0),
            "ready": bench.summarize([], 1),
        },
        "wall_seconds": {"start": 1.0, "delete": 0.5},
        "failures": {"count": 1, "pods": [{"pod": "bench-1", "error": "apply: no"}]},
        "supd": {"pid": 1, "cpu_seconds": 0.5, "peak_rss_kb": 30000},
        "infra": {"pss_kb": 90, "rss_kb": 1600, "private_kb": 40, "infras_alive": 2, "sampled": 2},
        "timeline": [(0.5, "running", 0.001)],
    }


def test_json_output_shape() -> None:
    doc = json.loads(bench.to_json(_result()))
    assert set(doc) == {
        "mode",
        "options",
        "stages",
        "wall_seconds",
        "failures",
        "supd",
        "infra",
        "timeline",
    }
    assert set(doc["stages"]["running"]) == {"count", "p50", "p90", "p99", "max", "throughput"}
    assert doc["stages"]["ready"]["p50"] is None  # NaN is not JSON
    assert doc["timeline"] == [{"t": 0.5, "stage": "running", "latency": 0.001}]
    assert doc["failures"]["pods"][0]["error"] == "apply: no"


def test_table_shows_stages_and_failures() -> None:
    text = bench.render_table(_result())
    assert "apply → Running" in text and "1.00" in text  # p50 in ms
    assert "failures: 1" in text and "bench-1: apply: no" in text
    assert "PSS 90 kB" in text


# -- against a real supd ---------------------------------------------------------------------


def test_bench_small_run_json(supd: Supd) -> None:
    res = supd.ctl("bench", "-n", "5", "-c", "2", "-o", "json", "--bench-namespace", "b1")
    doc = json.loads(res.stdout)
    stages = doc["stages"]
    assert stages["running"]["count"] == 5 and stages["ready"]["count"] == 5
    assert stages["deleted"]["count"] == 5
    assert 0 < stages["running"]["p50"] <= stages["running"]["max"]
    assert doc["failures"] == {"count": 0, "pods": []}
    assert supd.proc is not None and doc["supd"]["pid"] == supd.proc.pid
    assert doc["supd"]["cpu_seconds"] is not None and doc["supd"]["peak_rss_kb"] > 0
    assert doc["infra"]["pss_kb"] > 0 and doc["infra"]["infras_alive"] >= 5  # + pooled
    assert json.loads(supd.ctl("get", "pods", "-n", "b1", "-o", "json").stdout)["items"] == []


def test_bench_counts_failures_and_exits_1(supd: Supd) -> None:
    res = supd.ctl(
        "bench",
        "-n",
        "2",
        "--command",
        "/nonexistent/cmd",
        "--restart-policy",
        "Never",
        "--timeout",
        "20",
        "--bench-namespace",
        "b2",
        check=False,
    )
    assert res.returncode == 1, res.stderr
    assert "failures: 2" in res.stdout
    assert "StartError" in res.stdout and "/nonexistent/cmd" in res.stdout


def test_bench_usage_errors(supd: Supd) -> None:
    assert supd.ctl("bench", "-n", "0", check=False).returncode == 2
    assert supd.ctl("bench", "--plot", "x.pdf", check=False).returncode == 2


def test_bench_plot(supd: Supd, tmp_path: Path) -> None:
    # find_spec, not an import: matplotlib in this process would grow what every infra that
    # later tests clone from it inherits.
    if importlib.util.find_spec("matplotlib") is None:
        if os.environ.get("CI"):
            pytest.fail("matplotlib (the bench extra) is not installed, and CI is set")
        pytest.skip("matplotlib is not installed (the bench extra)")
    for name in ("p.png", "p.svg"):
        out = tmp_path / name
        res = supd.ctl("bench", "-n", "3", "--plot", str(out), "--bench-namespace", "b3")
        assert f"plot: {out}" in res.stdout
        data = out.read_bytes()
        assert data.startswith(b"\x89PNG") if name.endswith("png") else b"<svg" in data[:2000]


def test_bench_steady_mode_reports_probes_and_their_cost(supd: Supd) -> None:
    res = supd.ctl(
        "bench", "--steady", "-n", "3", "--duration", "3", "-o", "json",
        "--bench-namespace", "b4",
    )  # fmt: skip
    doc = json.loads(res.stdout)
    assert doc["mode"] == "steady" and doc["failures"] == {"count": 0, "pods": []}
    assert doc["stages"]["ready"]["count"] == 3 and doc["stages"]["deleted"]["count"] == 3
    assert doc["steady"]["probes_expected"] == 9  # 3 pods x 3 s / 1 s
    assert doc["steady"]["supd_cpu_seconds"] is not None
    # The bench makes NotReady pods Ready again by re-creating the probed file: each such
    # recovery is timed from the probe's read of it to the watch frame.
    assert doc["stages"]["probe_to_status"]["count"] >= 1
    assert 0 < doc["stages"]["probe_to_status"]["p50"] < 2.0
    assert json.loads(supd.ctl("get", "pods", "-n", "b4", "-o", "json").stdout)["items"] == []
