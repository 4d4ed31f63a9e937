"""supctl: kubectl's STATUS/RESTARTS/AGE rules as table-driven tests with a fixed clock,
the table and describe layouts, argparse exit codes, and every command against an
in-process fake server."""

from __future__ import annotations

import asyncio
import io
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvloop
import yaml

from supervisor import supctl
from supervisor.errors import DeadlineExceeded, ManifestError, NotFound
from supervisor.printers import (
    TablePrinter,
    describe_pod,
    human_duration,
    parse_time,
    pod_table,
    summarize_pod,
    tabwrite,
)
from supervisor.server import Call, Server
from supervisor.supctl import main, parse_duration

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- durations and times -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1.5, "0s"),
        (0, "0s"),
        (0.9, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (9 * 60 + 59, "9m59s"),
        (10 * 60 + 30, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 30 * 60, "3h30m"),
        (8 * 3600 + 59 * 60, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (50 * 3600, "2d2h"),
        (8 * 86400, "8d"),
        (400 * 86400, "400d"),
        (730 * 86400, "2y"),
        (731 * 86400, "2y1d"),
        (8 * 365 * 86400, "8y"),
    ],
)
def test_human_duration_matches_kubectl(seconds: float, text: str) -> None:
    assert human_duration(timedelta(seconds=seconds)) == text


def test_parse_time() -> None:
    assert parse_time("2024-05-01T12:00:00Z") == NOW
    assert parse_time("2024-05-01T11:59:59.123456789Z") == NOW - timedelta(microseconds=876544)
    assert parse_time("2024-05-01T14:00:00+02:00") == NOW
    assert parse_time("yesterday") is None
    assert parse_time(None) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), ("10", 10), ("-1s", -1)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_parse_duration_rejects_garbage() -> None:
    with pytest.raises(supctl.UsageError, match="invalid duration"):
        parse_duration("5 parsecs")


# -- kubectl's printPod ------------------------------------------------------------------------


def cs(
    name: str = "c",
    *,
    ready: bool = False,
    restarts: int = 0,
    running: bool = False,
    waiting: str | None = None,
    terminated: dict[str, Any] | None = None,
    last_finished: str | None = None,
    started: bool | None = None,
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if running:
        state["running"] = {"startedAt": ago(minutes=1)}
    elif waiting is not None:
        state["waiting"] = {"reason": waiting} if waiting else {}
    elif terminated is not None:
        state["terminated"] = terminated
    status: dict[str, Any] = {"name": name, "ready": ready, "restartCount": restarts}
    status["state"] = state
    if last_finished:
        status["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": last_finished}}
    if started is not None:
        status["started"] = started
    return status


def pod(
    containers: list[dict[str, Any]] | None = None,
    *,
    init: list[dict[str, Any]] | None = None,
    sidecars: tuple[str, ...] = (),
    phase: str = "Running",
    conditions: dict[str, str] | None = None,
    deleting: bool = False,
    reason: str | None = None,
    name: str = "p",
) -> dict[str, Any]:
    containers = containers if containers is not None else [cs(ready=True, running=True)]
    init = init or []
    spec: dict[str, Any] = {"containers": [{"name": c["name"]} for c in containers]}
    if init:
        spec["initContainers"] = [
            {"name": c["name"], **({"restartPolicy": "Always"} if c["name"] in sidecars else {})}
            for c in init
        ]
    status: dict[str, Any] = {"phase": phase, "containerStatuses": containers}
    if init:
        status["initContainerStatuses"] = init
    if conditions:
        status["conditions"] = [{"type": k, "status": v} for k, v in conditions.items()]
    if reason:
        status["reason"] = reason
    meta: dict[str, Any] = {"name": name, "namespace": "default", "creationTimestamp": ago(hours=5)}
    if deleting:
        meta["deletionTimestamp"] = ago(seconds=5)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def term(exit_code: int = 0, reason: str = "", signal: int = 0) -> dict[str, Any]:
    t: dict[str, Any] = {"exitCode": exit_code}
    if reason:
        t["reason"] = reason
    if signal:
        t["signal"] = signal
    return t


STATUS_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("running", pod(), "1/1", "Running"),
    ("pending without statuses", pod([], phase="Pending"), "0/0", "Pending"),
    (
        "creating",
        pod([cs(waiting="ContainerCreating")], phase="Pending"),
        "0/1",
        "ContainerCreating",
    ),
    ("crash loop", pod([cs(waiting="CrashLoopBackOff")]), "0/1", "CrashLoopBackOff"),
    (
        "waiting without reason keeps phase",
        pod([cs(waiting="")], phase="Pending"),
        "0/1",
        "Pending",
    ),
    ("running, not ready", pod([cs(running=True)]), "0/1", "Running"),
    (
        "terminated with reason",
        pod([cs(terminated=term(1, "Error"))], phase="Failed"),
        "0/1",
        "Error",
    ),
    ("exit code", pod([cs(terminated=term(3))], phase="Failed"), "0/1", "ExitCode:3"),
    ("signal", pod([cs(terminated=term(137, signal=9))], phase="Failed"), "0/1", "Signal:9"),
    (
        "completed",
        pod([cs(terminated=term(0, "Completed"))], phase="Succeeded"),
        "0/1",
        "Completed",
    ),
    ("evicted", pod([], phase="Failed", reason="Evicted"), "0/0", "Evicted"),
    (
        "first of two init containers running",
        pod([cs(waiting="PodInitializing")], init=[cs("i1", running=True), cs("i2", waiting="")]),
        "0/1",
        "Init:0/2",
    ),
    (
        "second init container starting",
        pod(
            [cs(waiting="PodInitializing")],
            init=[cs("i1", terminated=term(0, "Completed")), cs("i2", waiting="PodInitializing")],
        ),
        "0/1",
        "Init:1/2",
    ),
    (
        "init crash loop",
        pod([cs(waiting="PodInitializing")], init=[cs("i1", waiting="CrashLoopBackOff")]),
        "0/1",
        "Init:CrashLoopBackOff",
    ),
    (
        "init failed with reason",
        pod([cs(waiting="PodInitializing")], init=[cs("i1", terminated=term(1, "Error"))]),
        "0/1",
        "Init:Error",
    ),
    (
        "init exit code",
        pod([cs(waiting="PodInitializing")], init=[cs("i1", terminated=term(2))]),
        "0/1",
        "Init:ExitCode:2",
    ),
    (
        "init signal",
        pod([cs(waiting="PodInitializing")], init=[cs("i1", terminated=term(137, signal=9))]),
        "0/1",
        "Init:Signal:9",
    ),
    (
        "inits done, container initializing",
        pod([cs(waiting="PodInitializing")], init=[cs("i1", terminated=term(0, "Completed"))]),
        "0/1",
        "PodInitializing",
    ),
    (
        "terminating",
        pod(deleting=True),
        "1/1",
        "Terminating",
    ),
    (
        "a finished pod being deleted is not Terminating",
        pod([cs(terminated=term(0, "Completed"))], phase="Succeeded", deleting=True),
        "0/1",
        "Completed",
    ),
    (
        "node lost",
        pod(deleting=True, reason="NodeLost"),
        "1/1",
        "Unknown",
    ),
    (
        "one completed, one running, pod ready",
        pod(
            [cs("a", terminated=term(0, "Completed")), cs("b", ready=True, running=True)],
            conditions={"Ready": "True"},
        ),
        "1/2",
        "Running",
    ),
    (
        "one running, one completed: the first container's reason wins",
        pod(
            [cs("a", ready=True, running=True), cs("b", terminated=term(0, "Completed"))],
            conditions={"Ready": "False"},
        ),
        "1/2",
        "NotReady",
    ),
    (
        "native sidecar counts in READY",
        pod(
            [cs(ready=True, running=True)],
            init=[cs("side", ready=True, running=True, started=True)],
            sidecars=("side",),
            conditions={"Initialized": "True"},
        ),
        "2/2",
        "Running",
    ),
    (
        "sidecar not started yet blocks init",
        pod(
            [cs(waiting="PodInitializing")],
            init=[cs("side", running=True, started=False)],
            sidecars=("side",),
        ),
        "0/2",
        "Init:0/1",
    ),
]


@pytest.mark.parametrize(
    ("pod_", "ready", "status"),
    [c[1:] for c in STATUS_CASES],
    ids=[c[0] for c in STATUS_CASES],
)
def test_status_and_ready_follow_kubectl(pod_: dict[str, Any], ready: str, status: str) -> None:
    s = summarize_pod(pod_, NOW)
    assert (s.ready, s.status) == (ready, status)


def test_scheduling_gated() -> None:
    p = pod([], phase="Pending")
    p["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
    ]
    assert summarize_pod(p, NOW).status == "SchedulingGated"


@pytest.mark.parametrize(
    ("containers", "init", "restarts"),
    [
        ([cs(running=True)], [], "0"),
        ([cs(running=True, restarts=3)], [], "3"),  # no lastState: no "ago"
        ([cs(running=True, restarts=3, last_finished=ago(minutes=5))], [], "3 (5m ago)"),
        (
            [
                cs("a", running=True, restarts=1, last_finished=ago(hours=3)),
                cs("b", running=True, restarts=2, last_finished=ago(seconds=42)),
            ],
            [],
            "3 (42s ago)",
        ),
        # While initializing, init container restarts count; afterwards they do not.
        ([cs(waiting="PodInitializing")], [cs("i", waiting="CrashLoopBackOff", restarts=4)], "4"),
        (
            [cs(running=True, restarts=1, last_finished=ago(minutes=2))],
            [cs("i", terminated=term(0, "Completed"), restarts=4, last_finished=ago(minutes=9))],
            "1 (2m ago)",
        ),
    ],
)
def test_restarts_follow_kubectl(
    containers: list[dict[str, Any]], init: list[dict[str, Any]], restarts: str
) -> None:
    assert summarize_pod(pod(containers, init=init), NOW).restarts == restarts


def test_age() -> None:
    assert summarize_pod(pod(), NOW).age == "5h"  # 2h would be "120m", as in kubectl
    p = pod()
    del p["metadata"]["creationTimestamp"]
    assert summarize_pod(p, NOW).age == "<unknown>"


# -- layouts ------------------------------------------------------------------------------------


def test_pod_table_is_laid_out_like_kubectl() -> None:
    web = pod(name="web")
    web["status"]["podIP"] = "10.88.0.2"
    web["spec"]["nodeName"] = "box"
    crash = pod(
        [cs(waiting="CrashLoopBackOff", restarts=12, last_finished=ago(seconds=30))],
        name="a-much-longer-name",
    )
    assert pod_table([web, crash], NOW) == (
        "NAME                 READY   STATUS             RESTARTS       AGE\n"
        "web                  1/1     Running            0              5h\n"
        "a-much-longer-name   0/1     CrashLoopBackOff   12 (30s ago)   5h\n"
    )
    assert pod_table([web], NOW, wide=True, all_namespaces=True) == (
        "NAMESPACE   NAME   READY   STATUS    RESTARTS   AGE   IP          NODE\n"
        "default     web    1/1     Running   0          5h    10.88.0.2   box\n"
    )


def test_table_widths_are_remembered_across_batches() -> None:
    table = TablePrinter(["NAME", "STATUS"])
    assert table.format([["a", "x"]]) == "NAME   STATUS\na      x\n"
    assert table.format([["longer-name", "y"]]) == "longer-name   y\n"
    assert table.format([["b", "z"]]) == "b             z\n"


def test_tabwrite_aligns_column_blocks_like_go() -> None:
    text = "Name:\tweb\nLabels:\ta=b\n\tc=d\nContainers:\n  web:\n    Image:\tnginx\n"
    assert tabwrite(text) == (
        "Name:    web\nLabels:  a=b\n         c=d\nContainers:\n  web:\n    Image:  nginx\n"
    )


def test_describe_pod() -> None:
    p = pod(
        [cs("web", ready=True, running=True, restarts=1, last_finished=ago(minutes=3))],
        conditions={"Initialized": "True", "Ready": "True"},
        name="web",
    )
    p["metadata"]["labels"] = {"app": "web", "tier": "front"}
    p["spec"]["containers"][0].update(
        image="nginx", command=["nginx", "-g", "daemon off;"], env=[{"name": "A", "value": "1"}]
    )
    p["status"]["podIP"] = "10.88.0.2"
    events: list[dict[str, Any]] = [
        {"time": ago(seconds=50), "type": "Normal", "reason": "Started", "message": "Started"},
        {
            "time": ago(minutes=3),
            "first_time": ago(minutes=20),
            "count": 4,
            "type": "Warning",
            "reason": "BackOff",
            "message": "Back-off restarting failed container",
        },
    ]
    text = describe_pod(p, events, NOW, UTC)
    assert text.startswith(
        "Name:         web\n"
        "Namespace:    default\n"
        "Node:         <none>\n"
        "Labels:       app=web\n"
        "              tier=front\n"
        "Annotations:  <none>\n"
        "Status:       Running\n"
        "IP:           10.88.0.2\n"
        "IPs:\n"
        "  IP:  10.88.0.2\n"
        "Containers:\n"
        "  web:\n"
    )
    assert "    Command:\n      nginx\n      -g\n      daemon off;\n" in text
    assert (
        "    State:          Running\n      Started:      Wed, 01 May 2024 11:59:00 +0000\n" in text
    )
    assert "    Last State:     Terminated\n" in text
    assert "    Restart Count:  1\n" in text
    # Go's tabwriter aligns "A:" with the "Mounts:" line below it, as kubectl prints it.
    assert "    Environment:\n      A:     1\n    Mounts:  <none>\n" in text
    assert (
        "Conditions:\n  Type          Status\n  Initialized   True \n  Ready         True \n"
        in text
    )
    assert text.endswith(
        "Events:\n"
        "  Type     Reason   Age               From  Message\n"
        "  ----     ------   ----              ----  -------\n"
        "  Normal   Started  50s               supd  Started\n"
        "  Warning  BackOff  3m (x4 over 20m)  supd  Back-off restarting failed container\n"
    )
    text = describe_pod(pod(), [], NOW, UTC)
    assert text.endswith("\nVolumes:            <none>\nEvents:             <none>\n")


# -- argparse and exit codes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        ([], 2),
        (["bogus"], 2),
        (["--help"], 0),
        (["get"], 2),
        (["get", "pods", "-o", "table"], 2),
        (["logs"], 2),
        (["wait", "pod/x"], 2),
        (["delete", "pod", "x", "--wait=maybe"], 2),
        (["apply"], 2),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == code


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["get", "services"], 'the server doesn\'t have a resource type "services"'),
        (["get", "pods", "x", "-A"], "cannot be retrieved by name across all namespaces"),
        (["get", "pod/x", "pod"], "no need to specify a resource type"),
        (
            ["apply", "-f", "/nonexistent/pod.yaml"],
            'the path "/nonexistent/pod.yaml" does not exist',
        ),
        (["wait", "pod/x", "--for=jsonpath={.x}"], "unrecognized condition"),
        (["wait", "pod/x", "--for=delete", "--timeout=soon"], 'invalid duration "soon"'),
        (["delete", "pod"], "no name was specified"),
    ],
)
def test_bad_input_exits_2_before_connecting(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["--socket", str(tmp_path / "none.sock"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_unreachable_server_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "none.sock"
    assert main(["get", "pods", "--socket", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"error: cannot connect to supd at {path}: no such file or directory\n"
    )


def test_version_prints_the_client_even_without_a_server(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SUP_SOCKET", str(tmp_path / "none.sock"))
    assert main(["version"]) == 1
    out, err = capsys.readouterr()
    assert out == "Client Version: 0.1.0\n"
    assert "cannot connect to supd at" in err and "none.sock" in err


# -- against a fake server ------------------------------------------------------------------------


def running_pod(name: str, namespace: str = "default") -> dict[str, Any]:
    p = pod(name=name)
    p["metadata"]["namespace"] = namespace
    return p


class PodsHandler:
    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict[str, Any]] = {
            ("default", "web"): running_pod("web"),
            ("default", "db"): running_pod("db"),
            ("kube", "dns"): running_pod("dns", "kube"),
        }
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _pod(self, namespace: str | None, name: str) -> dict[str, Any]:
        try:
            return self.pods[(namespace or "default", name)]
        except KeyError:
            raise NotFound(f'pods "{name}" not found') from None

    async def op_apply(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        self.calls.append(("apply", args))
        results = []
        for m in args["manifests"]:
            meta = m["metadata"]
            if meta["name"] == "bad":
                raise ManifestError(args["source"], [("spec.containers[0].foo", "unknown field")])
            key = (meta.get("namespace", "default"), meta["name"])
            warnings = ["spec.nodeSelector: ignored"] if "nodeSelector" in m.get("spec", {}) else []
            action = "unchanged" if key in self.pods else "created"
            results.append(
                {
                    **dict(zip(("namespace", "name"), key, strict=True)),
                    "action": action,
                    "warnings": warnings,
                }
            )
        return {"results": results}

    async def op_get(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        namespace, name = args["namespace"], args["name"]
        if name is not None:
            return {"items": [self._pod(namespace, name)]}
        return {"items": [p for (ns, _), p in sorted(self.pods.items()) if namespace in (None, ns)]}

    async def op_watch(self, args: dict[str, Any], call: Call) -> None:
        web = running_pod("web")
        await call.send({"type": "ADDED", "object": web})
        gone = running_pod("web")
        gone["metadata"]["deletionTimestamp"] = ago(seconds=1)
        await call.send({"type": "MODIFIED", "object": gone})
        await call.send({"type": "DELETED", "object": gone})

    async def op_delete(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        self._pod(args["namespace"], args["name"])
        self.calls.append(("delete", args))
        return {"namespace": args["namespace"], "name": args["name"]}

    async def op_logs(self, args: dict[str, Any], call: Call) -> None:
        self._pod(args["namespace"], args["name"])
        self.calls.append(("logs", args))
        await call.send({"data": b"hello\n"})
        await call.send({"data": b"\xff\xfe raw bytes\n"})

    async def op_wait(self, args: dict[str, Any], call: Call) -> dict[str, Any]:
        self.calls.append(("wait", args))
        if args["name"] == "slow":
            raise DeadlineExceeded("timed out")
        self._pod(args["namespace"], args["name"])
        return {"met": True}

    async def op_events(self, args: dict[str, Any], call: Call) -> None:
        self.calls.append(("events", args))
        await call.send(
            {
                "time": ago(seconds=30),
                "namespace": "default",
                "pod": "web",
                "container": "web",
                "type": "Normal",
                "reason": "Started",
                "message": "Started container web",
            }
        )
        await call.send(
            {
                "time": ago(minutes=2),
                "first_time": ago(minutes=10),
                "count": 3,
                "namespace": "default",
                "pod": "web",
                "container": None,
                "type": "Warning",
                "reason": "Unhealthy",
                "message": "Readiness probe failed",
            }
        )


class ServerThread:
    def __init__(self, handler: object) -> None:
        self.dir = tempfile.mkdtemp(prefix="supctl-test-")
        self.path = os.path.join(self.dir, "supd.sock")
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = Server(handler, self.path)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(timeout=1), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        os.rmdir(self.dir)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[PodsHandler, str]]:
    monkeypatch.setattr(supctl, "utcnow", lambda: NOW)
    handler = PodsHandler()
    with ServerThread(handler) as server:
        monkeypatch.setenv("SUP_SOCKET", server.path)
        yield handler, server.path


Fake = tuple[PodsHandler, str]


def test_apply_prints_results_and_warnings(
    fake: Fake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handler, _ = fake
    f = tmp_path / "pods.yaml"
    f.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: []}\n"
        "---\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: new}\n"
        "spec: {nodeSelector: {a: b}, containers: []}\n"
    )
    assert main(["apply", "-f", str(f)]) == 0
    out, err = capsys.readouterr()
    assert out == "pod/web unchanged\npod/new created\n"
    assert err == "Warning: spec.nodeSelector: ignored\n"
    op, args = handler.calls[0]
    assert op == "apply" and args["source"] == str(f) and args["force"] is False
    assert [m["metadata"]["name"] for m in args["manifests"]] == ["web", "new"]


def test_apply_from_stdin_with_namespace_and_force(
    fake: Fake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    handler, _ = fake
    monkeypatch.setattr("sys.stdin", io.StringIO("kind: Pod\nmetadata:\n  name: dns\n"))
    assert main(["apply", "-f", "-", "-n", "kube", "--force"]) == 0
    assert capsys.readouterr().out == "pod/dns unchanged\n"
    _, args = handler.calls[0]
    assert args["source"] == "STDIN" and args["force"] is True
    assert args["manifests"][0]["metadata"]["namespace"] == "kube"


def test_apply_invalid_manifest_exits_2(
    fake: Fake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("kind: Pod\nmetadata: {name: bad}\n")
    assert main(["apply", "-f", str(f)]) == 2
    assert capsys.readouterr().err == f"error: {f}: spec.containers[0].foo: unknown field\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Pod\nmetadata: {name: x, namespace: other}\n", "does not match the namespace"),
        ("kind: [unclosed\n", "error parsing"),
        ("- just\n- a list\n", "document 1 is not a mapping"),
        ("", "no objects passed to apply"),
    ],
)
def test_apply_bad_input_exits_2(
    fake: Fake, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(text)
    assert main(["apply", "-f", str(f), "-n", "default"]) == 2
    assert message in capsys.readouterr().err
    assert fake[0].calls == []


def test_get_pods_table(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "pods"]) == 0
    assert capsys.readouterr().out == (
        "NAME   READY   STATUS    RESTARTS   AGE\n"
        "db     1/1     Running   0          5h\n"
        "web    1/1     Running   0          5h\n"
    )
    assert main(["get", "po", "-A"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == [
        "NAMESPACE",
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
    ]
    assert main(["get", "pods", "-n", "empty"]) == 0
    assert capsys.readouterr().err == "No resources found in empty namespace.\n"


def test_get_outputs(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "pod", "web", "-o", "json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["kind"] == "Pod" and obj["metadata"]["name"] == "web"
    assert main(["get", "pods", "-o", "json"]) == 0
    lst = json.loads(capsys.readouterr().out)
    assert lst["kind"] == "List" and [i["metadata"]["name"] for i in lst["items"]] == ["db", "web"]
    assert main(["get", "pod/web", "pod/db", "-o", "yaml"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["kind"] == "List"
    assert main(["get", "pods", "-o", "name"]) == 0
    assert capsys.readouterr().out == "pod/db\npod/web\n"
    assert main(["get", "pods", "web", "-o", "wide"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[-2:] == ["IP", "NODE"]


def test_get_missing_pod_uses_kubectl_wording(
    fake: Fake, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["get", "pods", "web", "nosuch"]) == 1
    out, err = capsys.readouterr()
    assert err == 'Error from server (NotFound): pods "nosuch" not found\n'
    assert out.splitlines()[1].startswith("web ")


def test_get_watch_prints_a_row_per_change(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "pods", "-w"]) == 0
    assert capsys.readouterr().out == (
        # Columns only ever widen, as with kubectl's RememberWidths.
        "NAME   READY   STATUS    RESTARTS   AGE\n"
        "web    1/1     Running   0          5h\n"
        "web    1/1     Terminating   0          5h\n"
        "web    1/1     Terminating   0          5h\n"
    )
    assert main(["get", "pods", "-w", "-o", "name"]) == 0
    assert capsys.readouterr().out == "pod/web\n" * 3


def test_delete(fake: Fake, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    handler, _ = fake
    assert main(["delete", "pod", "web", "db"]) == 0
    assert capsys.readouterr().out == 'pod "web" deleted\npod "db" deleted\n'
    assert handler.calls[0] == ("delete", {"namespace": "default", "name": "web", "wait": True})
    assert main(["delete", "pod/web", "--grace-period", "5", "--wait=false"]) == 0
    assert handler.calls[-1][1] == {
        "namespace": "default",
        "name": "web",
        "grace_period": 5,
        "wait": False,
    }
    f = tmp_path / "p.yaml"
    f.write_text("kind: Pod\nmetadata: {name: dns, namespace: kube}\n")
    assert main(["delete", "-f", str(f)]) == 0
    assert handler.calls[-1][1]["namespace"] == "kube"
    capsys.readouterr()
    assert main(["delete", "pod", "nosuch", "web"]) == 1
    out, err = capsys.readouterr()
    assert err == 'Error from server (NotFound): pods "nosuch" not found\n'
    assert out == 'pod "web" deleted\n'


def test_logs_writes_raw_bytes(fake: Fake, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    handler, _ = fake
    assert main(["logs", "web", "-c", "web", "--tail", "5", "-f", "--timestamps"]) == 0
    assert capsysbinary.readouterr().out == b"hello\n\xff\xfe raw bytes\n"
    assert handler.calls[-1][1] == {
        "namespace": "default",
        "name": "web",
        "container": "web",
        "follow": True,
        "previous": False,
        "tail": 5,
        "timestamps": True,
    }
    assert main(["logs", "pod/web", "--previous"]) == 0
    assert handler.calls[-1][1]["tail"] is None and handler.calls[-1][1]["container"] is None


def test_logs_of_a_missing_pod(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "nosuch"]) == 1
    assert capsys.readouterr().err == 'Error from server (NotFound): pods "nosuch" not found\n'


def test_wait(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    handler, _ = fake
    assert main(["wait", "pod/web", "--for=condition=Ready", "--timeout=1m"]) == 0
    assert capsys.readouterr().out == "pod/web condition met\n"
    assert handler.calls[-1][1] == {
        "namespace": "default",
        "name": "web",
        "for": "condition=Ready",
        "timeout": 60.0,
    }
    assert main(["wait", "pod", "web", "--for", "delete"]) == 0
    assert capsys.readouterr().out == "pod/web deleted\n"
    assert main(["wait", "pod/slow", "--for=condition=Ready"]) == 1
    assert capsys.readouterr().err == "error: timed out waiting for the condition on pods/slow\n"
    assert main(["wait", "pod/nosuch", "--for=condition=Ready"]) == 1
    assert capsys.readouterr().err == 'Error from server (NotFound): pods "nosuch" not found\n'


def test_events(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    handler, _ = fake
    assert main(["events", "--for", "pod/web"]) == 0
    assert capsys.readouterr().out == (
        "LAST SEEN          TYPE      REASON      OBJECT    MESSAGE\n"
        "30s                Normal    Started     pod/web   Started container web\n"
        "2m (x3 over 10m)   Warning   Unhealthy   pod/web   Readiness probe failed\n"
    )
    assert handler.calls[-1][1] == {"namespace": "default", "name": "web", "watch": False}
    assert main(["events", "-A", "-w"]) == 0
    assert capsys.readouterr().out.startswith("NAMESPACE   LAST SEEN")
    assert handler.calls[-1][1] == {"namespace": None, "name": None, "watch": True}


def test_describe(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "pod", "web"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Name:         web\nNamespace:    default\n")
    assert "Events:\n  Type     Reason     Age               From  Message\n" in out
    assert main(["describe", "pods", "nosuch"]) == 1
    assert capsys.readouterr().err == 'Error from server (NotFound): pods "nosuch" not found\n'


def test_version(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out == (
        "Client Version: 0.1.0\nServer Version: supd 0.1.0\nProtocol Version: 1\n"
    )


def test_global_flags_go_before_or_after_the_command(
    fake: Fake, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path = fake
    monkeypatch.delenv("SUP_SOCKET")
    assert main(["--socket", path, "-n", "kube", "get", "pods", "-o", "name"]) == 0
    assert main(["get", "pods", "-o", "name", "--socket", path, "--namespace", "kube"]) == 0
    assert capsys.readouterr().out == "pod/dns\npod/dns\n"
