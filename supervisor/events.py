"""Pod events: kept per pod (bounded) and published to watchers. No I/O."""

from __future__ import annotations

import collections
from typing import Any

from .broadcast import Broadcast
from .lifecycle import PodEvent
from .podview import rfc3339

PER_POD = 256  # events kept per pod, oldest dropped first


class EventLog:
    def __init__(self) -> None:
        self._by_pod: dict[str, collections.deque[dict[str, Any]]] = {}
        self.feed: Broadcast[dict[str, Any]] = Broadcast()

    def record(self, namespace: str, pod: str, event: PodEvent, now: float) -> dict[str, Any]:
        item = {
            "time": rfc3339(now),
            "namespace": namespace,
            "pod": pod,
            "container": event.container,
            "type": event.type,
            "reason": event.reason,
            "message": event.message,
        }
        key = f"{namespace}/{pod}"
        self._by_pod.setdefault(key, collections.deque(maxlen=PER_POD)).append(item)
        self.feed.publish(item)
        return item

    def forget(self, namespace: str, pod: str) -> None:
        self._by_pod.pop(f"{namespace}/{pod}", None)

    def backlog(self, namespace: str | None, pod: str | None) -> list[dict[str, Any]]:
        items = [e for q in self._by_pod.values() for e in q if matches(e, namespace, pod)]
        items.sort(key=lambda e: e["time"])
        return items


def matches(event: dict[str, Any], namespace: str | None, pod: str | None) -> bool:
    return (namespace is None or event["namespace"] == namespace) and (
        pod is None or event["pod"] == pod
    )
