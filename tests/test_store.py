"""The state dir: saved pods are in place at once and on disk after flush()."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from supervisor import store as store_module
from supervisor.manifest import parse_pod
from supervisor.store import Store, Writer, log_dir


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


def test_a_separate_run_dir_holds_each_pods_other_half(tmp_path: Path) -> None:
    """Each saved pod has a directory in both roots; remove takes both; a run directory
    whose pod is gone (supd died between the two renames) goes at the next start."""
    store = Store(tmp_path / "state", tmp_path / "run")
    a, b = store.save(spec("a")), store.save(spec("b"))
    assert store.run_of(a) == tmp_path / "run" / "pods" / a.name and store.run_of(a).is_dir()
    (store.run_of(a) / "status.json").write_text("{}")
    store.remove(a)
    assert not a.exists() and not store.run_of(a).exists()
    (store.run_pods / "ns_gone_uid-gone").mkdir()
    again = Store(tmp_path / "state", tmp_path / "run")
    again.flush()
    assert sorted(p.name for p in again.run_pods.iterdir()) == [b.name]
    assert list(again.trash.iterdir()) == list(again.run_trash.iterdir()) == []
    (loaded,) = again.load_all()
    assert (loaded.directory, loaded.run) == (b, store.run_of(b))


def test_a_deletion_mark_is_a_link_not_a_new_inode(tmp_path: Path) -> None:
    store = Store(tmp_path)
    d = store.save(spec("a"))
    store.mark_deleting(d)
    store.mark_deleting(d)  # again: nothing changes
    assert (d / "deleting").stat().st_ino == (d / "pod.json").stat().st_ino


def test_trash_left_by_a_previous_supd_is_deleted(tmp_path: Path) -> None:
    (tmp_path / "trash" / "old.1" / "c").mkdir(parents=True)
    store = Store(tmp_path)
    store.flush()
    assert list(store.trash.iterdir()) == []


# -- Recycling: a removed pod's directory kept for the next -------------------------------


def _tree(directory: Path) -> dict[str, int]:
    """Every path under `directory` and its size (-1 for a directory)."""
    return {
        str(p.relative_to(directory)): -1 if p.is_dir() else p.stat().st_size
        for p in sorted(directory.rglob("*"))
    }


def test_a_removed_pod_is_emptied_into_a_spare_and_reused_inodes_and_all(tmp_path: Path) -> None:
    store = Store(tmp_path)
    old = store.save(spec("old"))
    store.mark_deleting(old)
    for name, text in [
        ("c/0.log", "zero\n"),
        ("c/1.log", "one\n"),
        ("c/0.log.x", "r\n"),
        ("d/0.log", "d\n"),
        ("status.json", "{}"),
        ("volumes/v/0.log", "data"),
        ("containers/c/termination-log", "t"),
    ]:
        (old / name).parent.mkdir(parents=True, exist_ok=True)
        (old / name).write_text(text)
    inode = {p: (old / p).stat().st_ino for p in ("", "pod.json", "status.json")}
    store.remove(old)
    store.flush()
    assert list(store.trash.iterdir()) == []
    (spare,) = store.spare.iterdir()
    # One log directory of the pod's, one log file, its manifest and record: all empty.
    assert _tree(spare) == {".log": -1, ".log/0.log": 0, ".pod.json.tmp": 0, ".status.json.tmp": 0}
    log_dir_inode = (spare / ".log").stat().st_ino
    log_inode = (spare / ".log" / "0.log").stat().st_ino
    assert (spare / ".pod.json.tmp").stat().st_ino == inode["pod.json"]
    assert (spare / ".status.json.tmp").stat().st_ino == inode["status.json"]

    new = store.save(spec("new"))
    assert new.stat().st_ino == inode[""] and not spare.exists()
    assert (new / "pod.json").stat().st_ino == inode["pod.json"]
    assert json.loads((new / "pod.json").read_text())["metadata"]["name"] == "new"
    logs = log_dir(new, "main")
    assert logs == new / "main" and logs.stat().st_ino == log_dir_inode
    assert (logs / "0.log").stat().st_ino == log_inode
    assert log_dir(new, "side").is_dir()  # the next container's is made
    assert _tree(new) == {
        ".status.json.tmp": 0,
        "main": -1,
        "main/0.log": 0,
        "pod.json": (new / "pod.json").stat().st_size,
        "side": -1,
    }
    assert [p.manifest["metadata"]["name"] for p in store.load_all()] == ["new"]


def test_spares_outlive_supd_and_are_capped(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(store_module, "SPARES", 2)
    store = Store(tmp_path)
    dirs = [store.save(spec(f"p{i}")) for i in range(3)]
    inodes = {d.stat().st_ino for d in dirs}
    for d in dirs:
        store.remove(d)
    store.flush()
    assert len(list(store.spare.iterdir())) == 2  # the third was deleted
    again = Store(tmp_path)
    assert again.save(spec("a")).stat().st_ino in inodes
    assert len(list(again.spare.iterdir())) == 1


def test_a_spare_is_kept_when_the_pod_directory_exists(tmp_path: Path) -> None:
    store = Store(tmp_path)
    a = store.save(spec("a"))
    store.remove(store.save(spec("gone")))
    store.flush()
    (spare,) = store.spare.iterdir()
    assert store.save(spec("a")) == a  # saved again: its directory is there, and stays
    assert list(store.spare.iterdir()) == [spare]
    assert json.loads((a / "pod.json").read_text())["metadata"]["name"] == "a"
    b = store.save(spec("b"))  # the next new pod takes it
    assert not spare.exists() and (b / ".log").is_dir()


def test_trash_left_by_a_previous_supd_becomes_spares(tmp_path: Path) -> None:
    """A pod directory a supd had begun to empty (it died meanwhile) is emptied again."""
    half = tmp_path / "trash" / "ns_p_u.1.1"
    (half / ".log").mkdir(parents=True)
    (half / ".log" / "0.log").write_text("left")
    (half / "c").mkdir()
    (half / "c" / "3.log").write_text("more")
    (half / "pod.json").write_text("{}")
    outside = tmp_path / "outside"
    outside.write_text("not supd's")
    (half / ".status.json.tmp").symlink_to(outside)  # removed, not truncated through
    store = Store(tmp_path)
    store.flush()
    (spare,) = store.spare.iterdir()
    assert _tree(spare) == {".log": -1, ".log/0.log": 0, ".pod.json.tmp": 0}
    assert outside.read_text() == "not supd's"


# -- Writer: the records written off the loop ---------------------------------------------


async def _written(writer: Writer, path: Path, data: bytes | None) -> OSError | None:
    done: asyncio.Future[OSError | None] = asyncio.get_running_loop().create_future()
    writer.write(path, data, done.set_result)
    return await done


@pytest.mark.parametrize("inline", [False, True], ids=["thread", "inline"])
def test_writer_writes_atomically_and_answers_on_the_loop(tmp_path: Path, inline: bool) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        writer = Writer(loop, tmp_path if inline else None)
        path = tmp_path / "status.json"
        assert await _written(writer, path, b"one") is None
        assert path.read_bytes() == b"one"
        assert not (tmp_path / ".status.json.tmp").exists()
        # Removal is a write of None, in order with the writes before it.
        assert await _written(writer, path, None) is None
        assert not path.exists()
        # A failure reaches `then` (no directory), and leaves nothing behind.
        err = await _written(writer, tmp_path / "gone" / "status.json", b"x")
        assert isinstance(err, FileNotFoundError)
        assert sorted(p.name for p in tmp_path.iterdir()) == []

    asyncio.run(main())


def test_writer_coalesces_a_path_and_keeps_the_newest(tmp_path: Path) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        writer = Writer(loop)
        path = tmp_path / "r"
        calls: list[tuple[int, OSError | None]] = []
        # Hold the thread's lock so the three writes queue up before any is taken.
        with writer._cond:
            for i in range(3):

                def then(e: OSError | None, i: int = i) -> None:
                    calls.append((i, e))

                writer.write(path, f"v{i}".encode(), then)
        writer.flush()
        assert path.read_bytes() == b"v2"
        last = loop.create_future()
        writer.write(tmp_path / "other", b"", lambda e: last.set_result(None))
        await last
        assert calls == [(0, None), (1, None), (2, None)]  # each told, once, in order

    asyncio.run(main())


def test_writer_discard_drops_what_waits(tmp_path: Path) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        writer = Writer(loop)
        told: list[OSError | None] = []
        b_done = loop.create_future()
        with writer._cond:
            writer.write(tmp_path / "a", b"a", told.append)
            writer.discard(tmp_path / "a")
            writer.write(tmp_path / "b", b"b", b_done.set_result)
        await b_done  # a's answer, had it been written, would have come first
        assert not (tmp_path / "a").exists() and (tmp_path / "b").read_bytes() == b"b"
        assert told == []

    asyncio.run(main())


def test_writer_writes_under_inline_at_once_and_elsewhere_on_its_thread(tmp_path: Path) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        (tmp_path / "run").mkdir()
        writer = Writer(loop, tmp_path / "run")
        told: list[tuple[str, OSError | None]] = []
        # The thread cannot take its batch while the lock is held: the write outside
        # `inline` waits, the one inside is in place when write returns.
        with writer._cond:
            writer.write(tmp_path / "state", b"s", lambda e: told.append(("state", e)))
            writer.write(tmp_path / "run" / "r", b"r", lambda e: told.append(("run", e)))
            assert (tmp_path / "run" / "r").read_bytes() == b"r"
            assert not (tmp_path / "state").exists()
            assert told == []  # `then` runs on the loop, never inside write
            assert writer._pending
        # A sibling whose name merely starts like the inline dir is not inside it.
        writer.write(tmp_path / "run2", b"x")
        writer.flush()
        assert (tmp_path / "state").read_bytes() == b"s" and (tmp_path / "run2").exists()
        done = loop.create_future()
        writer.write(tmp_path / "last", b"", lambda e: done.set_result(None))
        await done
        assert sorted(told, key=lambda t: t[0]) == [("run", None), ("state", None)]

    asyncio.run(main())
