"""Container restart backoff, as kubelet computes it. Pure: no clock, no I/O.

kubelet (pkg/kubelet/kuberuntime/kuberuntime_manager.go, doBackOff) restarts a container
at once the first time; each further restart waits a delay that starts at 10 s and doubles
up to 300 s, measured from the previous instance's finishedAt. A container that ran for
10 minutes before it exited starts again from the beginning (KEP-4603's reset rule).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    initial: float = 10.0
    maximum: float = 300.0
    reset_after: float = 600.0


@dataclass(frozen=True)
class BackoffStep:
    delay: float  # how long after finishedAt this restart waits
    next: float  # the delay the restart after it will wait, unless reset


def next_restart(policy: BackoffPolicy, pending: float, ran_for: float) -> BackoffStep:
    """The delay before restarting a container that exited after running `ran_for`
    seconds, when `pending` is the delay its previous restarts have built up (0 at first)."""
    if ran_for >= policy.reset_after:
        pending = 0.0
    if pending <= 0:
        return BackoffStep(0.0, min(policy.initial, policy.maximum))
    return BackoffStep(pending, min(pending * 2, policy.maximum))
