"""Probe workers, as kubelet's prober runs them (pkg/kubelet/prober/worker.go).

One worker per (container instance, probe kind), driven by timers on the event loop: no
thread and no task while it waits. A worker only reports: each run's outcome (for events)
and each change of its thresholded result; the runtime decides what a result means (kill on
liveness failure, `ready` on readiness). Initial results are kubelet's: readiness fails,
liveness succeeds, startup is unknown. An error (the handler could not run) is not counted.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from .handlers import Outcome, Result
from .spec import Probe

KINDS = ("startup", "liveness", "readiness")
INITIAL: dict[str, bool | None] = {"readiness": False, "liveness": True, "startup": None}


def first_delay(probe: Probe, ran_for: float, supd_age: float) -> float:
    """Seconds until the first run. kubelet waits out initialDelaySeconds from the start of
    the container, and spreads the first runs over one period at random when it has itself
    just started (so that a restart does not fire every probe at once)."""
    delay = max(0.0, probe.initial_delay_seconds - ran_for)
    if supd_age < probe.period_seconds:
        delay = max(delay, random.uniform(0, probe.period_seconds))
    return delay


class ProbeWorker:
    def __init__(
        self,
        kind: str,
        probe: Probe,
        run: Callable[[float], Awaitable[Outcome]],
        on_outcome: Callable[[str, Outcome], None],
        on_result: Callable[[str, bool], None],
        delay: float,
    ) -> None:
        self.kind = kind
        self.probe = probe
        self.result = INITIAL[kind]
        self._run = run
        self._on_outcome = on_outcome
        self._on_result = on_result
        self._successes = 0
        self._failures = 0
        self._loop = asyncio.get_running_loop()
        self._next = self._loop.time() + delay
        self._timer: asyncio.TimerHandle | None = self._loop.call_at(self._next, self._fire)
        self._task: asyncio.Task[None] | None = None
        self._held = False

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _fire(self) -> None:
        self._timer = None
        self._task = self._loop.create_task(self._once())

    async def _once(self) -> None:
        outcome = await self._run(float(self.probe.timeout_seconds))
        self._task = None
        self._on_outcome(self.kind, outcome)
        self.record(outcome.result)
        if self._task is None and self._timer is None and not self._held:
            # A fixed period from the previous start, like kubelet's ticker.
            self._next = max(self._next + self.probe.period_seconds, self._loop.time())
            self._timer = self._loop.call_at(self._next, self._fire)

    def record(self, result: Result) -> None:
        """Count one run against the thresholds; report a change of the result. After a
        liveness or startup failure the worker holds: the container is being killed, and
        the next instance gets new workers."""
        if result is Result.ERROR:
            return
        if result is Result.SUCCESS:
            self._failures = 0
            self._successes += 1
            if self._successes >= self.probe.success_threshold and self.result is not True:
                self.result = True
                if self.kind == "startup":
                    self._held = True  # a startup probe stops once it has succeeded
                self._on_result(self.kind, True)
            return
        self._successes = 0
        self._failures += 1
        if self._failures >= self.probe.failure_threshold and self.result is not False:
            self.result = False
            if self.kind in ("liveness", "startup"):
                self._held = True
            self._on_result(self.kind, False)
