"""The state dir: saved pods are in place at once and on disk after flush()."""

from __future__ import annotations

import json
from pathlib import Path

from supervisor.manifest import parse_pod
from supervisor.store import Store


def spec(name: str):  # type: ignore[no-untyped-def]
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
        "spec": {"containers": [{"name": "c", "command": ["true"]}]},
    }
    return parse_pod(manifest, "test")[0]


def test_save_is_in_place_before_flush_and_synced_after(tmp_path: Path) -> None:
    store = Store(tmp_path)
    dirs = [store.save(spec(f"p{i}")) for i in range(20)]
    for d in dirs:  # renamed into place by the time save returns
        assert json.loads((d / "pod.json").read_text())["metadata"]["name"].startswith("p")
        assert not (d / ".pod.json.tmp").exists()
    store.flush()
    assert store._flusher._synced == store._flusher._queued == 20
    (dirs[0] / "c").mkdir()
    (dirs[0] / "c" / "0.log").write_text("log\n")
    store.remove(dirs[0])
    assert not dirs[0].exists()  # gone from pods/ at once
    store.flush()
    assert list(store.trash.iterdir()) == []  # and deleted by the flusher
    names = sorted(p.manifest["metadata"]["name"] for p in store.load_all())
    assert names == sorted(f"p{i}" for i in range(1, 20))


def test_sync_store_fsyncs_before_returning(tmp_path: Path) -> None:
    store = Store(tmp_path, sync=True)
    d = store.save(spec("a"))
    assert (d / "pod.json").exists()
    assert store._flusher._queued == 0  # nothing left for a flusher
    store.flush()


def test_trash_left_by_a_previous_supd_is_deleted(tmp_path: Path) -> None:
    (tmp_path / "trash" / "old.1" / "c").mkdir(parents=True)
    store = Store(tmp_path)
    store.flush()
    assert list(store.trash.iterdir()) == []
