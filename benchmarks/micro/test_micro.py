"""Microbenchmarks (pytest-benchmark), kept out of the default test run (testpaths is tests/):

    .venv/bin/pip install -e '.[bench]'
    sudo .venv/bin/python -m pytest benchmarks/micro --benchmark-columns=median,iqr,ops

The native spawn path against subprocess and os.posix_spawn, the protocol round trip,
manifest validation and the pod state machine. Compare within one run: the machine is shared.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import pytest

from supervisor import _native, lifecycle
from supervisor import protocol as proto
from supervisor.manifest import parse_pod

pytest.importorskip("pytest_benchmark")

TRUE = "/bin/true"
FIVE = (
    _native.CLONE_NEWPID
    | _native.CLONE_NEWNET
    | _native.CLONE_NEWIPC
    | _native.CLONE_NEWUTS
    | _native.CLONE_NEWNS
)
POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
    "spec": {
        "restartPolicy": "Always",
        "containers": [
            {
                "name": "nginx",
                "command": ["/usr/sbin/nginx", "-g", "daemon off;"],
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)-2"}],
                "workingDir": "/srv",
            },
            {"name": "sidecar", "command": ["/bin/sleep", "infinity"]},
        ],
    },
}


def root() -> None:
    if os.geteuid() != 0:
        pytest.skip("namespaces need root")


# -- spawning /bin/true and waiting for it ----------------------------------------------------


def test_spawn_native(benchmark: Any) -> None:
    def run() -> None:
        _pid, pidfd = _native.spawn([TRUE])
        os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
        os.close(pidfd)

    benchmark(run)


def test_spawn_native_five_namespaces(benchmark: Any) -> None:
    root()

    def run() -> None:
        _pid, pidfd = _native.spawn([TRUE], clone_flags=FIVE, mount_proc=True)
        os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
        os.close(pidfd)

    benchmark(run)


def test_spawn_subprocess(benchmark: Any) -> None:
    benchmark(lambda: subprocess.Popen([TRUE]).wait())


def test_spawn_posix_spawn(benchmark: Any) -> None:
    def run() -> None:
        pid = os.posix_spawn(TRUE, [TRUE], os.environ)
        os.waitpid(pid, 0)

    benchmark(run)


# -- the protocol ---------------------------------------------------------------------------


def test_protocol_round_trip(benchmark: Any) -> None:
    """An apply request and its reply: encode, frame, split, decode, validate, both ways."""
    schema = proto.load_schema()
    reply = {"results": [{"name": "web", "namespace": "default", "action": "created"}]}

    def run() -> None:
        frame = proto.encode_frame(proto.request_message(1, "apply", {"manifests": [POD]}))
        (body,) = proto.FrameDecoder().feed(frame)
        req = proto.parse_request(proto.unpack_message(body))
        schema.validate_args(req.op, req.args)
        back = proto.encode_frame(proto.result_message(req.id, reply))
        (body,) = proto.FrameDecoder(proto.MAX_REPLY_FRAME_SIZE).feed(back)
        proto.parse_reply(proto.unpack_message(body))

    benchmark(run)


# -- manifests and the state machine --------------------------------------------------------


def test_manifest_validation(benchmark: Any) -> None:
    benchmark(lambda: parse_pod(POD, "bench"))


def test_state_machine_start_to_running(benchmark: Any) -> None:
    """new status → sandbox created → each container asked, started → actions computed."""
    spec, _ = parse_pod(POD, "bench")

    def run() -> None:
        now = time.time()
        status = lifecycle.new_status(spec, now)
        lifecycle.sandbox_created(spec, status, now)
        for i, action in enumerate(lifecycle.compute_pod_actions(spec, status, now), 1):
            assert isinstance(action, lifecycle.StartContainer)
            lifecycle.container_starting(status.container(action.name), i)
            lifecycle.container_started(spec, status, action.name, 1000 + i, now)
        assert lifecycle.compute_pod_actions(spec, status, now) == []

    benchmark(run)
