"""The short soak (benchmarks/soak.py): 150 pods with a readiness probe, an emptyDir and
a veth on a bridge of their own, created and deleted in batches against a real supd; then
nothing may be left over that was not there before (fds, processes, zombies, mounts,
links, addresses, cgroups, state files), and supd's RSS may not climb past its plateau by
more than soak.RSS_MARGIN_KB (why: the module's docstring)."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from conftest import require_root

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import soak


def test_create_and_delete_150_pods_leaks_nothing() -> None:
    require_root()
    # A /24 of its own: a long soak elsewhere on the machine has its own bridge and range.
    cidr = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(256)}.0/24"
    result = soak.run(150, 15, 120, network=True, cidr=cidr)
    assert result.pods == 150, "the soak ran out of time"
    table = soak.table(result.before, result.mid_rss, result.after)
    assert result.leaks == [], table
    # Each kind was actually measured: the pool's infras, supd's fds, the bridge.
    assert result.before.names["supd-infra"] >= 1
    assert result.before.values["supd fds"] > 0 and result.before.values["links"] == 1
    assert result.after.values["state files"] > 0
    # Deleted pods' directories are kept for the next (store.py), as many as were in use.
    assert 0 < result.after.values["spare pod dirs"] <= 150


def test_every_kind_of_leak_is_reported() -> None:
    base = {k: 5 for k in ("supd fds", "processes", "mounts", "links", "cgroups")}
    before = soak.Snapshot({**base, "supd RSS (KiB)": 40_000, "zombies (system)": 0})
    for key in base:
        after = soak.Snapshot({**before.values, key: 6})
        assert soak.leaks(before, after, 40_000) == [f"{key}: 5 -> 6"]
    grown = soak.Snapshot({**before.values, "supd RSS (KiB)": 40_000 + soak.RSS_MARGIN_KB + 1})
    assert soak.leaks(before, grown, 40_000) and not soak.leaks(before, grown, 41_000)
    # Zombies elsewhere on the machine are shown, not judged.
    assert soak.leaks(before, soak.Snapshot({**before.values, "zombies (system)": 3}), 0) == []
    # Spare pod directories are shown, and judged only beyond their bound.
    spares = {**before.values, "spare pod dirs": 0}
    more = soak.Snapshot({**spares, "spare pod dirs": 40})
    assert soak.leaks(soak.Snapshot(spares), more, 0) == []
    too_many = soak.Snapshot({**spares, "spare pod dirs": soak.store.SPARES + 1})
    assert soak.leaks(soak.Snapshot(spares), too_many, 0) == [
        f"spare pod dirs: {soak.store.SPARES + 1}, more than store.SPARES ({soak.store.SPARES})"
    ]
