"""Probes, lifecycle hooks, native sidecars and the termination sequence, end to end: real
servers (HTTP, TCP, gRPC) run inside pods, supd probes them through the pod's own network
namespace, and the tests watch `supctl get -w` and the event stream; nothing sleeps to wait.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import SUPCTL, Supd, read_until

PY = "/usr/bin/python3"

HTTP_SERVER = """\
import http.server, os, signal, sys
port, log = int(sys.argv[1]), sys.argv[2]
def note(line):
    with open(log, "a") as f:
        f.write(line + "\\n")
signal.signal(signal.SIGTERM, lambda *_: (note("TERM"), os._exit(0)))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        note(f"{self.path} {self.headers.get('User-Agent')} {self.headers.get('X-Check')}")
        code = {"/ok": 200, "/redirect": 302, "/bad": 500}.get(self.path, 200)
        if self.path == "/header":
            code = 200 if self.headers.get("X-Check") == "yes" else 403
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"hi")
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""

GRPC_SERVER = """\
import asyncio, sys
from grpclib.health.v1.health_grpc import HealthBase
from grpclib.health.v1.health_pb2 import HealthCheckResponse
from grpclib.server import Server
class Health(HealthBase):  # grpc.health.v1: "ok" is SERVING, anything else NOT_SERVING
    async def Check(self, stream):
        request = await stream.recv_message()
        serving = request.service == "ok"
        status = HealthCheckResponse.SERVING if serving else HealthCheckResponse.NOT_SERVING
        await stream.send_message(HealthCheckResponse(status=status))
    async def Watch(self, stream):
        raise NotImplementedError
async def main():
    server = Server([Health()])
    await server.start("127.0.0.1", int(sys.argv[1]))
    await server.wait_closed()
asyncio.run(main())
"""


def manifest(name: str, containers: list[dict[str, Any]], **spec: Any) -> str:
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 2, **spec, "containers": containers},
    }
    return json.dumps(obj)


def server(tmp: Path, port: int = 8080, name: str = "web", **extra: Any) -> dict[str, Any]:
    script = tmp / "http_server.py"
    script.write_text(HTTP_SERVER)
    return {
        "name": name,
        "command": [PY, str(script), str(port), str(tmp / f"{name}.log")],
        "ports": [{"name": "http", "containerPort": port}],
        **extra,
    }


def cstatus(obj: dict[str, Any], name: str) -> dict[str, Any]:
    for st in obj["status"].get("initContainerStatuses", []) + obj["status"]["containerStatuses"]:
        if st["name"] == name:
            return st
    raise KeyError(name)


def condition(obj: dict[str, Any], kind: str) -> bool:
    return any(c["type"] == kind and c["status"] == "True" for c in obj["status"]["conditions"])


def event_text(supd: Supd, pod: str) -> str:
    return supd.ctl("events", "--for", f"pod/{pod}").stdout


def test_http_readiness_with_named_port_headers_and_user_agent(supd: Supd, tmp_path: Path) -> None:
    probe = {
        "httpGet": {
            "path": "/header",
            "port": "http",
            "httpHeaders": [{"name": "X-Check", "value": "yes"}],
        },
        "periodSeconds": 1,
    }
    supd.apply(manifest("ready", [server(tmp_path, readinessProbe=probe)]))
    obj = supd.watch_until("ready", lambda o: condition(o, "Ready"))
    assert cstatus(obj, "web")["ready"] is True
    seen = (tmp_path / "web.log").read_text().splitlines()[0].split()
    assert seen[0] == "/header" and seen[1].startswith("kube-probe/") and seen[-1] == "yes"


def test_http_liveness_failure_restarts_the_container(supd: Supd, tmp_path: Path) -> None:
    probe = {"httpGet": {"path": "/bad", "port": 8080}, "periodSeconds": 1, "failureThreshold": 2}
    supd.apply(manifest("live", [server(tmp_path, livenessProbe=probe)]))
    obj = supd.watch_until("live", lambda o: cstatus(o, "web")["restartCount"] >= 1)
    last = cstatus(obj, "web")["lastState"]["terminated"]
    assert last["exitCode"] == 0  # the server exits 0 on the SIGTERM the kill sent
    assert "TERM" in (tmp_path / "web.log").read_text()
    text = event_text(supd, "live")
    assert "Liveness probe failed: HTTP probe failed with statuscode: 500" in text
    assert "Container web failed liveness probe, will be restarted" in text


def test_tcp_readiness_refused_then_ready(supd: Supd, tmp_path: Path) -> None:
    closed = {"tcpSocket": {"port": 9}, "periodSeconds": 1}
    supd.apply(manifest("tcp", [server(tmp_path, readinessProbe=closed)]))
    supd.watch_until("tcp", lambda o: o["status"]["phase"] == "Running")
    _wait_event(
        supd, "tcp", "Readiness probe failed: dial tcp 127.0.0.1:9: connect: connection refused"
    )
    assert not condition(supd.pod("tcp"), "Ready")
    open_ = {"tcpSocket": {"port": "http"}, "periodSeconds": 1}
    supd.apply(manifest("tcp2", [server(tmp_path, name="web2", port=8081, readinessProbe=open_)]))
    supd.watch_until("tcp2", lambda o: condition(o, "Ready"))


def test_grpc_health_probe(supd: Supd, tmp_path: Path) -> None:
    script = tmp_path / "grpc_server.py"
    script.write_text(GRPC_SERVER)
    good = {
        "name": "ok",
        "command": [sys.executable, str(script), "9000"],
        "readinessProbe": {"grpc": {"port": 9000, "service": "ok"}, "periodSeconds": 1},
    }
    bad = {
        "name": "down",
        "command": [sys.executable, str(script), "9001"],
        "readinessProbe": {"grpc": {"port": 9001, "service": "down"}, "periodSeconds": 1},
    }
    supd.apply(manifest("grpc", [good, bad]))
    obj = supd.watch_until("grpc", lambda o: cstatus(o, "ok")["ready"])
    assert cstatus(obj, "down")["ready"] is False
    _wait_event(
        supd, "grpc", 'Readiness probe failed: service unhealthy (responded with "NOT_SERVING")'
    )


def test_startup_probe_gates_and_kills(supd: Supd, tmp_path: Path) -> None:
    startup = {"tcpSocket": {"port": 9}, "periodSeconds": 1, "failureThreshold": 2}
    live = {"httpGet": {"path": "/bad", "port": 8080}, "periodSeconds": 1}
    supd.apply(manifest("startup", [server(tmp_path, startupProbe=startup, livenessProbe=live)]))
    obj = supd.watch_until("startup", lambda o: cstatus(o, "web")["restartCount"] >= 1)
    assert cstatus(obj, "web")["started"] is False
    text = event_text(supd, "startup")
    assert "Container web failed startup probe, will be restarted" in text
    assert "Liveness probe failed" not in text  # liveness waits for startup to succeed


def test_post_start_holds_the_container_until_it_returns(supd: Supd, tmp_path: Path) -> None:
    c = {
        "name": "c",
        "command": ["sleep", "1000"],
        "lifecycle": {"postStart": {"sleep": {"seconds": 1}}},
    }
    supd.apply(manifest("hook", [c]))
    seen = []

    def record(o: dict[str, Any]) -> bool:
        seen.append(next(iter(cstatus(o, "c")["state"])))
        return "running" in cstatus(o, "c")["state"]

    supd.watch_until("hook", record)
    assert "Started container c" in event_text(supd, "hook")
    assert seen.count("waiting") >= 1 and seen[-1] == "running"


def test_failed_post_start_kills_and_restart_policy_applies(supd: Supd, tmp_path: Path) -> None:
    c = {
        "name": "c",
        "command": ["sleep", "1000"],
        "lifecycle": {"postStart": {"httpGet": {"port": 9, "path": "/"}}},
    }
    supd.apply(manifest("badhook", [c], restartPolicy="Never"))
    obj = supd.watch_until("badhook", lambda o: o["status"]["phase"] == "Failed")
    # sleep is PID 1 of its namespace and ignores SIGTERM: SIGKILL after the grace period.
    assert cstatus(obj, "c")["state"]["terminated"]["exitCode"] == 137
    assert "FailedPostStartHook" in event_text(supd, "badhook")


def test_pre_stop_runs_before_the_stop_signal(supd: Supd, tmp_path: Path) -> None:
    hook = {"preStop": {"httpGet": {"path": "/prestop", "port": 8080}}}
    supd.apply(manifest("stop", [server(tmp_path, lifecycle=hook)]))
    supd.wait("stop")
    supd.ctl("delete", "pod", "stop")
    lines = (tmp_path / "web.log").read_text().splitlines()
    assert lines[-2].startswith("/prestop") and lines[-1] == "TERM"


def test_grace_period_after_pre_stop_has_a_two_second_floor(supd: Supd) -> None:
    stubborn = {
        "name": "c",
        "command": ["sh", "-c", "trap '' TERM; sleep 1000 & wait"],
        "lifecycle": {"preStop": {"sleep": {"seconds": 2}}},
    }
    supd.apply(manifest("floor", [stubborn], terminationGracePeriodSeconds=2))
    supd.wait("floor")
    t0 = time.monotonic()
    supd.ctl("delete", "pod", "floor")
    took = time.monotonic() - t0
    # preStop used the whole 2 s budget; SIGKILL still waits the 2 s floor after it.
    assert 3.5 < took < 10, took


def test_sidecar_starts_first_keeps_running_and_stops_last(supd: Supd, tmp_path: Path) -> None:
    logfile = tmp_path / "app.log"
    logfile.write_text("")
    forwarder = {
        "name": "forward",
        "restartPolicy": "Always",
        "command": ["tail", "-n", "+1", "-F", str(logfile)],
    }
    app = {
        "name": "app",
        "command": ["sh", "-c", f"for i in 1 2 3; do echo line $i >> {logfile}; done"],
    }
    supd.apply(manifest("side", [app], restartPolicy="Never", initContainers=[forwarder]))
    obj = supd.watch_until("side", lambda o: o["status"]["phase"] in ("Succeeded", "Failed"))
    assert obj["status"]["phase"] == "Succeeded"
    fwd = cstatus(obj, "forward")
    assert "terminated" in fwd["state"]  # stopped by supd once the app was done
    text = event_text(supd, "side")
    assert text.index("Started container forward") < text.index("Created container app")
    assert "Stopping container forward" in text
    assert supd.ctl("logs", "side", "-c", "forward").stdout.splitlines()[:3] == [
        "line 1",
        "line 2",
        "line 3",
    ]


def test_active_deadline_fails_the_pod(supd: Supd) -> None:
    c = {"name": "c", "command": ["sleep", "1000"]}
    supd.apply(manifest("deadline", [c], activeDeadlineSeconds=1))
    obj = supd.watch_until(
        "deadline",
        lambda o: o["status"]["phase"] == "Failed" and "terminated" in cstatus(o, "c")["state"],
    )
    assert obj["status"]["reason"] == "DeadlineExceeded"
    assert "DeadlineExceeded" in event_text(supd, "deadline")


def test_termination_message_fallback_to_logs(supd: Supd) -> None:
    c = {
        "name": "c",
        "command": ["sh", "-c", "echo first; echo boom; exit 3"],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    supd.apply(manifest("msg", [c], restartPolicy="Never"))
    obj = supd.watch_until("msg", lambda o: o["status"]["phase"] == "Failed")
    assert cstatus(obj, "c")["state"]["terminated"]["message"] == "first\nboom\n"


def _wait_event(supd: Supd, pod: str, text: str, timeout: float = 30) -> None:
    """Follow `supctl events -w` until a line with `text` arrives."""
    proc = subprocess.Popen(
        [SUPCTL, "--socket", str(supd.socket), "events", "-w", "--for", f"pod/{pod}"],
        stdout=subprocess.PIPE,
    )
    seen = b""
    try:
        assert proc.stdout is not None
        for chunk in read_until(proc.stdout.fileno(), time.monotonic() + timeout):
            seen += chunk
            if text.encode() in seen:
                return
        raise AssertionError(f"no event {text!r} for pod {pod}; seen:\n{seen.decode()}")
    finally:
        proc.kill()
        proc.wait()


# -- the seed manifests (../shared/seeds), run as written but for `image` and times ---------


def test_seed_liveness_exec_restarts_the_container(supd: Supd, tmp_path: Path) -> None:
    healthy = tmp_path / "healthy"  # /tmp/healthy in the seed: here, the test's own dir
    seed = f"""
apiVersion: v1
kind: Pod
metadata:
  labels:
    test: liveness
  name: test-liveness-exec
spec:
  containers:
  - name: liveness
    args:
    - /bin/sh
    - -c
    - touch {healthy}; sleep 1; rm -rf {healthy}; sleep 600
    livenessProbe:
      exec:
        command:
        - cat
        - {healthy}
      initialDelaySeconds: 1
      periodSeconds: 1
  terminationGracePeriodSeconds: 1
"""
    supd.apply(seed)
    obj = supd.watch_until(
        "test-liveness-exec", lambda o: cstatus(o, "liveness")["restartCount"] >= 1, timeout=60
    )
    assert cstatus(obj, "liveness")["lastState"]["terminated"]["exitCode"] == 137
    text = event_text(supd, "test-liveness-exec")
    assert f"Liveness probe failed: cat: {healthy}: No such file or directory" in text
    assert "Container liveness failed liveness probe, will be restarted" in text


def test_seed_lifecycle_demo_post_start_and_pre_stop(supd: Supd, tmp_path: Path) -> None:
    message = tmp_path / "message"  # /usr/share/message in the seed
    stopped = tmp_path / "stopped"
    # nginx's `-s quit` becomes a shell stand-in that records that preStop ran.
    seed = f"""
apiVersion: v1
kind: Pod
metadata:
  name: lifecycle-demo
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: lifecycle-demo-container
    command: ["sleep", "1000"]
    lifecycle:
      postStart:
        exec:
          command: ["/bin/sh", "-c", "echo Hello from the postStart handler > {message}"]
      preStop:
        exec:
          command: ["/bin/sh", "-c", "echo preStop ran > {stopped}"]
"""
    supd.apply(seed)
    supd.wait("lifecycle-demo")
    assert message.read_text() == "Hello from the postStart handler\n"
    supd.ctl("delete", "pod", "lifecycle-demo")
    assert stopped.read_text() == "preStop ran\n"


def test_exec_readiness_uses_the_container_env(supd: Supd) -> None:
    c = {
        "name": "c",
        "command": ["sleep", "1000"],
        "env": [{"name": "WANT", "value": "yes"}],
        "readinessProbe": {
            "exec": {"command": ["sh", "-c", "test $(WANT) = yes"]},
            "periodSeconds": 1,
        },
    }
    supd.apply(manifest("envready", [c]))
    supd.watch_until("envready", lambda o: condition(o, "Ready"))


def test_exec_probe_that_cannot_start_is_an_error_not_a_failure(supd: Supd) -> None:
    c = {
        "name": "c",
        "command": ["sleep", "1000"],
        "livenessProbe": {
            "exec": {"command": ["/nonexistent"]},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    }
    supd.apply(manifest("errprobe", [c]))
    _wait_event(supd, "errprobe", "Liveness probe errored: exec /nonexistent: No such file")
    assert cstatus(supd.pod("errprobe"), "c")["restartCount"] == 0


def test_shorter_grace_period_hurries_a_deletion_under_way(supd: Supd) -> None:
    stubborn = {"name": "c", "command": ["sh", "-c", "trap '' TERM; sleep 1000 & wait"]}
    supd.apply(manifest("hurry", [stubborn], terminationGracePeriodSeconds=300))
    supd.wait("hurry")
    supd.ctl("delete", "pod", "hurry", "--wait=false")
    t0 = time.monotonic()
    supd.ctl("delete", "pod", "hurry", "--grace-period", "0")
    assert time.monotonic() - t0 < 10  # not the 300 s of the first deletion
    assert supd.ctl("get", "pod", "hurry", check=False).returncode == 1
