"""Container log rotation: the names, rotate() on real files, reading and following across
rotated files (a simulated writer that behaves as infra does), then real pods whose logs
rotate under a real supd, `supctl logs`, `supd run` and the flags."""

from __future__ import annotations

import asyncio
import os
import re
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SUPD, Supd, finish_supd, require_root

from supervisor import inotify
from supervisor.logrotate import parse_max_files, parse_max_size, rotate
from supervisor.logs import (
    LOG_PIECE,
    follow_log,
    format_rotated_suffix,
    iter_log,
    parse_rotated_suffix,
    read_log,
    rotated_logs,
)

TS = "2026-12-02T03:00:00.000000000Z"


def records(first: int, last: int) -> bytes:
    return b"".join(f"{TS} stdout F {i}\n".encode() for i in range(first, last + 1))


def numbers(text: str | bytes) -> list[int]:
    if isinstance(text, bytes):
        text = text.decode()
    return [int(x) for x in text.splitlines()]


def open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


# -- flags and names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("10Mi", 10 << 20), ("64Ki", 65536), ("1G", 10**9), ("0", 0), ("1024", 1024)],
)
def test_max_size_quantities(text: str, value: int) -> None:
    assert parse_max_size(text) == value


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("10Q", "not a quantity of bytes"),
        ("ten", "not a quantity of bytes"),
        ("512", "below the minimum of 1Ki"),
        ("-1Mi", "below the minimum"),
        ("1e30", "out of range"),
    ],
)
def test_max_size_rejects(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_max_size(text)


def test_max_files() -> None:
    assert parse_max_files("2") == 2
    assert parse_max_files("5") == 5
    for text, error in (("1", "at least 2"), ("0", "at least 2"), ("x", "not a whole number")):
        with pytest.raises(ValueError, match=error):
            parse_max_files(text)


def test_rotated_suffix_round_trip_and_order() -> None:
    ns = 1_795_000_000_123_456_789
    suffix = format_rotated_suffix(ns)
    assert re.fullmatch(r"\.\d{8}-\d{6}\.\d{9}", suffix), suffix
    assert parse_rotated_suffix(suffix) == ns
    assert parse_rotated_suffix(".tmp") is None
    assert parse_rotated_suffix(suffix + ".gz") is None
    stamps = [ns - 10**9, ns - 1, ns, ns + 1, ns + 10**12]
    assert sorted(format_rotated_suffix(t) for t in stamps) == [
        format_rotated_suffix(t) for t in stamps
    ]


def test_flags_are_validated_with_the_flag_named(tmp_path: Path) -> None:
    for args, needle in (
        (["--container-log-max-size", "10Q"], "--container-log-max-size: '10Q' is not a quantity"),
        (["--container-log-max-size", "100"], "below the minimum of 1Ki"),
        (["--container-log-max-files", "1"], "--container-log-max-files: 1 must be at least 2"),
    ):
        for prefix in ([], ["run", str(tmp_path / "none.yaml")]):
            res = subprocess.run(
                [SUPD, *prefix, "--socket", str(tmp_path / "s"), *args]
                if not prefix
                else [SUPD, *prefix, *args],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert res.returncode == 2, res
            assert needle in res.stderr, res.stderr
    assert not (tmp_path / "s").exists()


# -- rotate() and read_log on files ------------------------------------------------------------


def test_rotate_keeps_max_files_and_names_in_order(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    fd = open_append(path)
    ns = 1_795_000_000_000_000_000
    written = 0
    for n in range(6):
        os.write(fd, records(written + 1, written + 10))
        written += 10
        os.close(fd)
        # The same nanosecond twice: names stay unique and in rotation order.
        fd = rotate(path, 3, ns if n < 2 else ns + n)
        files = [*rotated_logs(path), path]
        assert len(files) == min(n + 2, 3)
        assert os.fstat(fd).st_ino == path.stat().st_ino and path.stat().st_size == 0
    os.write(fd, records(61, 65))
    os.close(fd)
    assert sorted(tmp_path.iterdir()) == sorted(files)  # nothing else: no temporary left
    assert numbers(read_log(path)) == list(range(41, 66))
    assert numbers(read_log(path, tail=7)) == list(range(59, 66))
    assert numbers(read_log(path, tail=25)) == list(range(41, 66))
    assert read_log(path, tail=0) == b""
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_rotate_failure_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    rotated = path.with_name("0.log" + format_rotated_suffix(10**18))
    rotated.write_bytes(records(1, 3))
    with pytest.raises(FileNotFoundError):
        rotate(path, 5, 10**18)  # no current file to rename
    assert list(tmp_path.iterdir()) == [rotated]  # and no new file left behind


def test_read_log_while_the_current_file_was_just_renamed(tmp_path: Path) -> None:
    """Between a rotation's rename and link there is no current file: the newest rotated
    one is it."""
    path = tmp_path / "0.log"
    older = path.with_name("0.log" + format_rotated_suffix(10**18))
    newest = path.with_name("0.log" + format_rotated_suffix(10**18 + 1))
    older.write_bytes(records(1, 5))
    newest.write_bytes(records(6, 8))
    assert numbers(read_log(path)) == list(range(1, 9))
    assert numbers(read_log(path, tail=4)) == list(range(5, 9))


def test_iter_log_is_read_log_in_pieces(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    old = path.with_name("0.log" + format_rotated_suffix(10**18))
    old.write_bytes(records(1, 40000))  # more than one piece
    path.write_bytes(records(40001, 40010) + f"{TS} stdout P partial".encode())
    pieces = list(iter_log(path))
    assert len(pieces) > 1 and all(len(p) <= 2 * LOG_PIECE for p in pieces)
    assert b"".join(pieces) == read_log(path)
    assert read_log(path).endswith(b"40010\npartial")
    assert b"".join(iter_log(path, tail=3, timestamps=True)) == read_log(
        path, tail=3, timestamps=True
    )


# -- following across rotations, with a writer that behaves as infra does ----------------------


class Writer:
    """infra and supd in miniature: records go to the fd infra holds; a rotation gives a
    new fd that infra takes only at `reopen()` (until then it writes the renamed file)."""

    def __init__(self, path: Path, max_files: int) -> None:
        self.path, self.max_files = path, max_files
        self.fd = open_append(path)
        self.pending: int | None = None
        self.next = 1

    def write(self, count: int) -> int:
        os.write(self.fd, records(self.next, self.next + count - 1))
        self.next += count
        return self.next - 1

    def rotate(self) -> None:
        assert self.pending is None
        self.pending = rotate(self.path, self.max_files, time.time_ns())

    def reopen(self) -> None:
        assert self.pending is not None
        os.close(self.fd)
        self.fd, self.pending = self.pending, None

    def close(self) -> None:
        for fd in (self.fd, self.pending):
            if fd is not None:
                os.close(fd)


def test_follow_across_rotations_in_order(tmp_path: Path) -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        writer = Writer(tmp_path / "0.log", max_files=50)
        writer.write(5)  # there before the follower: all of it comes (no --tail)
        finished = False
        changed: asyncio.Future[None] = loop.create_future()
        seen: list[int] = []
        progress = asyncio.Event()

        async def follow() -> None:
            async for chunk in follow_log(
                writer.path, done=lambda: finished, changed=lambda: changed
            ):
                seen.extend(numbers(chunk))
                progress.set()

        async def until(last: int) -> None:
            while not seen or seen[-1] < last:
                progress.clear()
                await asyncio.wait_for(progress.wait(), 10)

        task = loop.create_task(follow())
        try:
            await until(5)
            writer.rotate()
            await until(writer.write(3))  # infra still writes the renamed file: it is read
            writer.reopen()
            await until(writer.write(4))
            # A burst with the follower away: three rotations, old files written after
            # their rename, and a REOPEN each, all before the follower runs again.
            for _ in range(3):
                writer.write(2)
                writer.rotate()
                writer.write(2)
                writer.reopen()
            await until(writer.write(1))
            # Rotated, and the instance ends before the new file has a record.
            writer.rotate()
            last = writer.write(2)
            finished = True
            changed.set_result(None)
            await asyncio.wait_for(task, 10)
            assert seen[-1] == last
            return seen
        finally:
            task.cancel()
            writer.close()

    assert asyncio.run(main()) == list(range(1, 28))


@pytest.mark.parametrize(
    ("tail", "expected"),
    [(5, [19, 20, 21, 22, 23]), (2, [22, 23]), (3, [21, 22, 23]), (0, []), (50, range(1, 24))],
)
def test_follow_with_tail_across_files(tmp_path: Path, tail: int, expected: list[int]) -> None:
    async def main() -> bytes:
        writer = Writer(tmp_path / "0.log", max_files=5)
        for count in (10, 10):
            writer.write(count)
            writer.rotate()
            writer.reopen()
        writer.write(3)
        writer.close()
        out = b""
        async for chunk in follow_log(
            writer.path,
            done=lambda: True,
            changed=asyncio.get_running_loop().create_future,
            tail=tail,
        ):
            out += chunk
        return out

    assert numbers(asyncio.run(main())) == list(expected)


# -- real pods under a real supd ---------------------------------------------------------------


@pytest.fixture
def rotating(tmp_path: Path) -> Iterator[Any]:
    """A factory of supd daemons with the given log rotation flags."""
    require_root()
    made: list[tuple[Supd, Path]] = []

    def make(max_size: str, max_files: int) -> Supd:
        home = tmp_path / f"supd{len(made)}"
        home.mkdir()
        d = Supd(socket=home / "supd.sock", state_dir=home / "state")
        d.start("--container-log-max-size", max_size, "--container-log-max-files", str(max_files))
        made.append((d, home))
        return d

    yield make
    for d, home in made:
        finish_supd(d, home)


def writer_pod(name: str, script: str, restart: str = "Never") -> str:
    return (
        f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n"
        f"  restartPolicy: {restart}\n  terminationGracePeriodSeconds: 1\n"
        f"  containers:\n  - name: c\n    command: [sh, -c, {script!r}]\n"
    )


def log_dir(d: Supd, pod: str) -> Path:
    (found,) = (d.state_dir / "pods").glob(f"default_{pod}_*/c")
    return found


def cri_numbers(files: list[Path]) -> list[int]:
    lines = cri_text(files)
    assert all(lines), lines
    return [int(x) for x in lines]


def cri_text(files: list[Path]) -> list[str]:
    """The numbered lines of a sequence of CRI log files: every record valid, partial
    records (P) joined to their line, also across a file boundary (infra swaps files between
    two reads, as containerd's log reopen does). The first may be the end of a line whose
    start was in a deleted file."""
    out: list[str] = []
    part = ""
    for path in files:
        data = path.read_text()
        assert not data or data.endswith("\n"), f"{path.name} ends in the middle of a record"
        for line in data.splitlines():
            ts, stream, tag, message = line.split(" ", 3)
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", ts), line
            assert stream == "stdout" and tag in ("F", "P"), line
            part += message
            if tag == "F":
                out.append(part)
                part = ""
    assert part == "", "the log ends in a partial line"
    return out


class DirWatch:
    """Every entry created, renamed or removed in a directory, to check a bound that must
    hold at every moment and not only at the end."""

    EVENTS = 0x100 | 0x200 | 0x40 | 0x80  # IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO

    def __init__(self, directory: Path) -> None:
        self.watch = inotify.Inotify()
        self.watch.add_watch(directory, self.EVENTS)
        self.names = {p.name for p in directory.iterdir()}
        self.most = len(self.names)

    def drain(self) -> None:
        while select.select([self.watch.fd], [], [], 0)[0]:
            for _wd, mask, name in self.watch.read():
                assert not mask & 0x4000, "inotify queue overflowed"
                if mask & (0x100 | 0x80):
                    self.names.add(name.decode())
                else:
                    self.names.discard(name.decode())
                self.most = max(self.most, len(self.names))

    def close(self) -> None:
        self.watch.close()


def test_a_fast_writer_keeps_max_files_and_a_contiguous_tail(rotating: Any, tmp_path: Path) -> None:
    d = rotating("64Ki", 3)
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    d.apply(writer_pod("fast", f"read x < {fifo}; seq 1 300000"))
    d.wait("fast", "condition=Ready")
    directory = log_dir(d, "fast")
    watch = DirWatch(directory)
    try:
        os.close(os.open(fifo, os.O_WRONLY))  # go
        done = d.watch_until("fast", lambda p: p["status"]["phase"] == "Succeeded", timeout=120)
        assert done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
        watch.drain()
    finally:
        watch.close()
    files = sorted(directory.iterdir())
    names = [p.name for p in files]
    assert names[0] == "0.log" and len(names) == 3, names
    assert all(re.fullmatch(r"0\.log\.\d{8}-\d{6}\.\d{9}", n) for n in names[1:]), names
    assert watch.most <= 3, f"{watch.most} files at once"
    kept = [*files[1:], files[0]]  # oldest first, current last
    assert all(p.stat().st_size for p in kept[:-1]), "a rotated file is empty"
    first, *rest = cri_text(kept)
    whole = [int(x) for x in rest]
    # Contiguous across every file boundary, ending with the last line: the older files
    # are gone by design, nothing else is. The first line may be the end of one cut by a
    # rotation (its start went with a deleted file).
    assert whole == list(range(whole[0], 300001)), "a gap or a duplicate"
    assert str(whole[0] - 1).endswith(first) and whole[0] > 2
    # Rotated once over the limit, not before; and infra holds a writer faster than supd's
    # rotation back at twice the limit, so a file has one read's records over that at most
    # (32 KiB of output as records of lines of 1 byte and more).
    sizes = [p.stat().st_size for p in kept[:-1]]
    assert all(64 * 1024 <= size < 2 * 64 * 1024 + 32768 + 41 * 16384 for size in sizes), sizes

    tail = len(rest) - 3  # into the oldest kept file: it holds far more than 3 lines
    assert tail > len(cri_text(kept[1:]))
    out = d.ctl("logs", "fast", "--tail", str(tail)).stdout
    assert numbers(out) == list(range(300001 - tail, 300001))
    assert d.ctl("logs", "fast").stdout.splitlines() == [first, *rest]
    stamped = d.ctl("logs", "fast", "--tail", "2", "--timestamps").stdout.splitlines()
    assert [line.split(" ")[1] for line in stamped] == ["299999", "300000"]


def test_follow_sees_every_line_across_rotations(rotating: Any, tmp_path: Path) -> None:
    d = rotating("128Ki", 100)  # nothing the follower must see is deleted
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    d.apply(writer_pod("followed", f"read x < {fifo}; seq 1 100000"))
    d.wait("followed", "condition=Ready")
    follow = d.follow_logs("followed")
    try:
        os.close(os.open(fifo, os.O_WRONLY))
        assert follow.stdout is not None
        out = follow.stdout.read()  # to EOF: logs -f ends when the container does
        assert follow.wait(timeout=60) == 0
    finally:
        follow.kill()
        follow.wait()
    assert numbers(out) == list(range(1, 100001))
    rotated = rotated_logs(log_dir(d, "followed") / "0.log")
    assert len(rotated) >= 2, "it did not rotate twice"


def test_restart_and_previous_with_rotated_logs(rotating: Any, tmp_path: Path) -> None:
    d = rotating("16Ki", 2)
    marker = tmp_path / "ran-once"
    script = (
        f"if [ -e {marker} ]; then seq 1 50; exec sleep 1000; fi; "
        f"touch {marker}; seq 1 100000; exit 3"
    )
    d.apply(writer_pod("again", script, restart="OnFailure"))
    d.watch_until(
        "again",
        lambda p: (
            (p["status"].get("containerStatuses") or [{}])[0].get("restartCount") == 1
            and "running" in p["status"]["containerStatuses"][0]["state"]
        ),
    )
    follow = d.follow_logs("again")  # instance 2 writes 50 lines and sleeps
    try:
        assert follow.stdout is not None
        assert [follow.stdout.readline() for _ in range(50)] == [f"{i}\n" for i in range(1, 51)]
    finally:
        follow.kill()
        follow.wait()
    directory = log_dir(d, "again")
    assert numbers(d.ctl("logs", "again").stdout) == list(range(1, 51))
    first, *rest = d.ctl("logs", "again", "--previous").stdout.splitlines()
    previous = [int(x) for x in rest]  # the first may be the end of a line cut by rotation
    assert previous == list(range(previous[0], 100001)) and str(previous[0] - 1).endswith(first)
    assert numbers(d.ctl("logs", "again", "--previous", "--tail", "3").stdout) == [
        99998,
        99999,
        100000,
    ]
    names = sorted(p.name for p in directory.iterdir())
    # Instance 0's files, at most 2, and instance 1's own.
    assert len(names) == 3 and names[0] == "0.log" and names[2] == "1.log", names
    assert re.fullmatch(r"0\.log\.\d{8}-\d{6}\.\d{9}", names[1]), names


def test_supd_run_prints_every_line_across_rotations(tmp_path: Path) -> None:
    require_root()
    manifest = tmp_path / "pod.yaml"
    state = tmp_path / "state"
    # The container counts the rotated files at its end: supd run removes its pods.
    manifest.write_text(writer_pod("run", f"seq 1 200000; ls {state}/pods/*/c | grep -c 'log[.]'"))
    res = subprocess.run(
        [
            SUPD, "run", "--container-log-max-size", "16Ki", "--container-log-max-files", "1000",
            "--state-dir", str(state), str(manifest),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    *lines, count = res.stdout.splitlines()
    assert lines == [f"run/c | {i}" for i in range(1, 200001)]
    assert int(count.removeprefix("run/c | ")) >= 2, "it did not rotate twice"


def test_logs_larger_than_a_reply_frame(rotating: Any) -> None:
    """Kept rotated files can hold more than one protocol frame (16 MiB): the output comes
    in several."""
    d = rotating("8Mi", 5)
    d.apply(writer_pod("big", "yes 0123456789012345678901234567890123456789 | head -n 500000"))
    d.watch_until("big", lambda p: p["status"]["phase"] == "Succeeded", timeout=120)
    assert len(rotated_logs(log_dir(d, "big") / "0.log")) >= 1  # and nothing deleted:
    out = d.ctl("logs", "big").stdout  # 20.5 MB of output
    assert out == "0123456789012345678901234567890123456789\n" * 500000
