"""Render a pod as the Kubernetes `v1 Pod` object that `supctl get -o json` prints.

Pure: spec + status in, plain dict out (msgpack- and JSON-able). Imports only leaves.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any

from .lifecycle import ContainerStatus, PodStatus, Terminated, container_id
from .quantity import cpu_millis, memory_bytes
from .spec import PodSpec
from .states import ConditionType, ContainerState


def rfc3339(ts: float | None) -> str | None:
    """metav1.Time's wire form: UTC, whole seconds."""
    return None if ts is None else _utc_second(math.floor(ts))


@functools.lru_cache(maxsize=256)
def _utc_second(second: int) -> str:
    # A pod's timestamps share a few seconds, and every watch frame renders them all.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


def _copy(value: Any) -> Any:
    """A copy of plain data (dicts and lists of scalars): deepcopy's result in a third of
    its time."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def render_pod(
    spec: PodSpec,
    status: PodStatus,
    *,
    node: str,
    deleted_at: float | None = None,
    grace: int | None = None,
) -> dict[str, Any]:
    obj = _copy(spec.manifest)
    meta = obj.setdefault("metadata", {})
    meta["creationTimestamp"] = rfc3339(status.created_at)
    if deleted_at is not None:
        meta["deletionTimestamp"] = rfc3339(deleted_at)
        meta["deletionGracePeriodSeconds"] = grace
    obj.setdefault("spec", {})["nodeName"] = node
    images = {c.name: c.image or "" for c in spec.init_containers + spec.containers}
    out: dict[str, Any] = {
        "phase": status.phase.value,
        "conditions": [
            _condition(status, kind) for kind in ConditionType.ORDER if kind in status.conditions
        ],
        "hostIP": "127.0.0.1",
        "startTime": rfc3339(status.start_time),
        "qosClass": qos_class(spec),
    }
    if status.pod_ip:
        out["podIP"] = status.pod_ip
        out["podIPs"] = [{"ip": status.pod_ip}]
    if status.reason:
        out["reason"] = status.reason
    if status.message:
        out["message"] = status.message
    if status.init_containers:
        out["initContainerStatuses"] = [
            _container(st, images[st.name], spec.uid) for st in status.init_containers
        ]
    out["containerStatuses"] = [
        _container(st, images[st.name], spec.uid) for st in status.containers
    ]
    obj["status"] = out
    return obj


def qos_class(spec: PodSpec) -> str:
    """kubelet's GetPodQOS, from limits (requests default to them) and the requests the
    manifest gives: Guaranteed when every container limits both cpu and memory and asks
    for nothing else or less, BestEffort when none asks for anything, else Burstable."""
    requested = False
    guaranteed = True
    pairs = zip(spec.init_containers + spec.containers, _manifest_containers(spec), strict=False)
    for c, raw in pairs:
        requests = ((raw.get("resources") or {}).get("requests") or {}) if raw else {}
        limits = {"cpu": c.cpu_limit_millis, "memory": c.memory_limit_bytes}
        asked = {
            "cpu": cpu_millis(str(requests["cpu"])) if "cpu" in requests else limits["cpu"],
            "memory": (
                memory_bytes(str(requests["memory"])) if "memory" in requests else limits["memory"]
            ),
        }
        if requests or any(v is not None for v in limits.values()):
            requested = True
        if None in limits.values() or set(requests) - set(limits) or asked != limits:
            guaranteed = False
    if not requested:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _manifest_containers(spec: PodSpec) -> list[dict[str, Any]]:
    s = spec.manifest.get("spec") or {}
    return list(s.get("initContainers") or []) + list(s.get("containers") or [])


def _condition(status: PodStatus, kind: str) -> dict[str, Any]:
    c = status.conditions[kind]
    d: dict[str, Any] = {
        "type": c.type,
        "status": "True" if c.status else "False",
        "lastProbeTime": None,
        "lastTransitionTime": rfc3339(c.last_transition),
    }
    if c.reason:
        d["reason"] = c.reason
    if c.message:
        d["message"] = c.message
    return d


def _container(st: ContainerStatus, image: str, uid: str) -> dict[str, Any]:
    if st.state is ContainerState.RUNNING:
        state: dict[str, Any] = {"running": {"startedAt": rfc3339(st.started_at)}}
    elif st.state is ContainerState.TERMINATED and st.terminated is not None:
        state = {"terminated": _terminated(st.terminated)}
    else:
        waiting: dict[str, Any] = {"reason": st.reason}
        if st.message:
            waiting["message"] = st.message
        state = {"waiting": waiting}
    last = st.last_state
    if st.state is ContainerState.WAITING and st.terminated is not None:
        last = st.terminated  # waiting to restart: the exit just seen is the last state
    d: dict[str, Any] = {
        "name": st.name,
        "state": state,
        "lastState": {"terminated": _terminated(last)} if last is not None else {},
        "ready": st.ready,
        "restartCount": st.restart_count,
        "started": st.started,
        "image": image,
        "imageID": "",
    }
    if st.instance:
        d["containerID"] = container_id(uid, st.name, st.instance)
    return d


def _terminated(t: Terminated) -> dict[str, Any]:
    d: dict[str, Any] = {
        "exitCode": t.exit_code,
        "reason": t.reason,
        "startedAt": rfc3339(t.started_at),
        "finishedAt": rfc3339(t.finished_at),
        "containerID": t.container_id,
    }
    if t.signal:
        d["signal"] = t.signal
    if t.message:
        d["message"] = t.message
    return d
