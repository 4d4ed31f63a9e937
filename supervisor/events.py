"""Pod events: kept per pod (bounded) and published to watchers. No I/O.

Identical events (same container, type, reason and message) are counted rather than
repeated, as Kubernetes's EventCorrelator aggregates them: `count` grows, `time` moves to
the latest occurrence and `first_time` keeps the first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from .broadcast import Broadcast
from .lifecycle import PodEvent
from .podview import rfc3339

PER_POD = 256  # distinct events kept per pod, least recently seen dropped first

Key = tuple[str | None, str, str, str]


class EventLog:
    def __init__(self) -> None:
        self._by_pod: dict[str, OrderedDict[Key, dict[str, Any]]] = {}
        self.feed: Broadcast[dict[str, Any]] = Broadcast()

    def record(self, namespace: str, pod: str, event: PodEvent, now: float) -> dict[str, Any]:
        events = self._by_pod.setdefault(f"{namespace}/{pod}", OrderedDict())
        key = (event.container, event.type, event.reason, event.message)
        stamp = rfc3339(now)
        item = events.pop(key, None)
        if item is None:
            item = {
                "time": stamp,
                "first_time": stamp,
                "count": 1,
                "namespace": namespace,
                "pod": pod,
                "container": event.container,
                "type": event.type,
                "reason": event.reason,
                "message": event.message,
            }
        else:
            item = {**item, "time": stamp, "count": item["count"] + 1}
        events[key] = item
        if len(events) > PER_POD:
            events.popitem(last=False)
        self.feed.publish(item)
        return item

    def forget(self, namespace: str, pod: str) -> None:
        self._by_pod.pop(f"{namespace}/{pod}", None)

    def backlog(self, namespace: str | None, pod: str | None) -> list[dict[str, Any]]:
        items = [e for q in self._by_pod.values() for e in q.values() if matches(e, namespace, pod)]
        items.sort(key=lambda e: e["time"])
        return items


def matches(event: dict[str, Any], namespace: str | None, pod: str | None) -> bool:
    return (namespace is None or event["namespace"] == namespace) and (
        pod is None or event["pod"] == pod
    )
