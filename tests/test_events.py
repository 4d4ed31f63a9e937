from __future__ import annotations

import asyncio

from supervisor.broadcast import Broadcast, Overflow
from supervisor.events import PER_POD, EventLog
from supervisor.lifecycle import PodEvent

BACKOFF = PodEvent("Warning", "BackOff", "Back-off restarting failed container c", "c")


def test_identical_events_are_counted_not_repeated() -> None:
    log = EventLog()
    log.record("default", "p", PodEvent("Normal", "Started", "Started container c", "c"), 10)
    log.record("default", "p", BACKOFF, 11)
    log.record("default", "p", BACKOFF, 25)
    items = log.backlog("default", "p")
    assert [(e["reason"], e["count"]) for e in items] == [("Started", 1), ("BackOff", 2)]
    assert items[1]["first_time"] == "1970-01-01T00:00:11Z"
    assert items[1]["time"] == "1970-01-01T00:00:25Z"


def test_events_are_bounded_per_pod_and_filtered() -> None:
    log = EventLog()
    for i in range(PER_POD + 10):
        log.record("default", "p", PodEvent("Normal", "R", f"m{i}"), i)
    log.record("other", "q", PodEvent("Normal", "R", "x"), 0)
    assert len(log.backlog("default", "p")) == PER_POD
    assert log.backlog("default", "p")[0]["message"] == "m10"
    assert [e["pod"] for e in log.backlog("other", None)] == ["q"]
    log.forget("default", "p")
    assert log.backlog("default", None) == []


def test_slow_watcher_is_cut_off_not_buffered_forever() -> None:
    async def main() -> None:
        feed: Broadcast[int] = Broadcast(limit=3)
        sub = feed.subscribe()
        for i in range(5):
            feed.publish(i)
        assert len(feed) == 0  # dropped at the overflow
        got = []
        try:
            async for item in sub:
                got.append(item)
        except Overflow:
            pass
        else:
            raise AssertionError("no Overflow")
        assert got == [0, 1, 2]

    asyncio.run(main())


def test_sink_takes_items_at_once_and_the_queue_keeps_their_order() -> None:
    async def main() -> None:
        feed: Broadcast[int] = Broadcast(limit=10)
        sub = feed.subscribe()
        sunk: list[int] = []
        accept = True

        def sink(item: int) -> bool:
            if item == 99:
                raise RuntimeError("the consumer meets this one")
            if accept:
                sunk.append(item)
            return accept

        sub.sink = sink
        feed.publish(1)
        feed.publish(2)
        assert sunk == [1, 2] and sub._queue.qsize() == 0
        accept = False
        feed.publish(3)  # refused: queued
        accept = True
        feed.publish(4)  # behind 3 in the queue, so not sunk
        feed.publish(99)  # raised: queued
        assert sunk == [1, 2]
        got = []
        async for item in sub:
            got.append(item)
            if item == 99:
                feed.publish(5)  # none queued, but the consumer holds 99: queued
                assert sunk == [1, 2] and sub._queue.qsize() == 1
            if item == 5:
                break
        assert got == [3, 4, 99, 5]

    asyncio.run(main())


def test_sink_is_used_again_once_the_consumer_waits() -> None:
    async def main() -> None:
        feed: Broadcast[int] = Broadcast(limit=10)
        sub = feed.subscribe()
        sunk: list[int] = []
        sub.sink = lambda item: sunk.append(item) is None and item != 2
        got: list[int] = []

        async def consume() -> None:
            async for item in sub:
                got.append(item)

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0)  # the consumer waits on an empty queue
        feed.publish(1)
        feed.publish(2)  # refused: the consumer takes it
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        feed.publish(3)
        assert (sunk, got) == ([1, 2, 3], [2])
        task.cancel()

    asyncio.run(main())
