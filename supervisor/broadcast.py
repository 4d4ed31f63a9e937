"""Fan-out of items to subscribers (event and pod watchers), bounded per subscriber."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

from .errors import ResourceExhausted

T = TypeVar("T")


class Overflow(ResourceExhausted):
    """A subscriber fell more than its limit behind and was cut off (the stream ends with
    this typed error rather than buffering without bound)."""


class Subscription(Generic[T]):
    def __init__(self, owner: Broadcast[T], limit: int) -> None:
        self._owner = owner
        self._queue: asyncio.Queue[T | None] = asyncio.Queue()
        self._limit = limit
        self.overflowed = False
        self.sink: Callable[[T], bool] | None = None
        """Takes an item at once, inside `publish`, while none waits in the queue and the
        consumer holds none: a watch frame then leaves in the same loop turn as its change,
        not after a task wakeup. It returns False to have the item queued instead, and the
        consumer then takes it in order (a client that does not read, an error)."""
        self._holding = False

    def _offer(self, item: T) -> None:
        if self.sink is not None and not self._holding and not self._queue.qsize():
            try:
                if self.sink(item):
                    return
            except Exception:  # the consumer meets it again, where it can end its stream
                pass
        if self._queue.qsize() >= self._limit:
            # Unbounded queue, bounded by hand: the end marker always fits.
            self.overflowed = True
            self._queue.put_nowait(None)
            self._owner.unsubscribe(self)
        else:
            self._queue.put_nowait(item)

    async def __aiter__(self) -> AsyncIterator[T]:
        try:
            while (item := await self._queue.get()) is not None:
                self._holding = True
                yield item
                self._holding = False
            if self.overflowed:
                raise Overflow(f"watcher fell more than {self._limit} items behind")
        finally:
            self._owner.unsubscribe(self)


class Broadcast(Generic[T]):
    def __init__(self, limit: int = 1024) -> None:
        self._subs: set[Subscription[T]] = set()
        self._limit = limit

    def subscribe(self) -> Subscription[T]:
        sub = Subscription(self, self._limit)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription[T]) -> None:
        self._subs.discard(sub)

    def publish(self, item: T) -> None:
        for sub in list(self._subs):
            sub._offer(item)

    def __len__(self) -> int:
        return len(self._subs)
