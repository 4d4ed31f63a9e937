"""Container logs in the CRI format kubelet writes, read and followed for `supctl logs`.

Each record is `TIMESTAMP STREAM TAG MESSAGE\n`, TAG F for a full line and P for a part of
one (pkg/kubelet/kuberuntime/logs). Records are written by the pod's infra, never by supd;
this module only reads them. Following waits on inotify, never on a timer.

A log rotated by size (logrotate.py) is a sequence of files: `N.log.<timestamp>`, oldest
first, then `N.log`, the one infra writes. Readers take them in that order: `--tail` counts
across them, and a follower goes on to the next file once the one it reads is rotated and
done with. A record never spans two files.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from .inotify import IN_CLOSE_WRITE, IN_CREATE, IN_MODIFY, IN_MOVED_TO, Inotify

READ_CHUNK = 1 << 16
# What a follower reads before it lets the loop run: a writer as fast as the reader would
# otherwise keep it reading, and supd's loop (which also rotates that log) stalled.
FOLLOW_BUDGET = 1 << 20
LOG_PIECE = 1 << 20  # what iter_log yields at a time, at most (about)
# kubelet's rotated-log suffix is "20060102-150405"; nanoseconds make a fast writer's names
# unique, and the fixed width keeps the names in rotation order when sorted.
_ROTATED = re.compile(r"^\.(\d{8}-\d{6})\.(\d{9})$")


def parse_record(line: bytes) -> tuple[bytes, bytes, bool, bytes] | None:
    """(timestamp, stream, full, message) of one record without its newline, or None."""
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[2] not in (b"F", b"P"):
        return None
    message = parts[3] if len(parts) == 4 else b""
    return parts[0], parts[1], parts[2] == b"F", message


def format_records(lines: Iterable[bytes], timestamps: bool) -> bytes:
    """What `kubectl logs` prints: each message, the newline back on full lines."""
    out = bytearray()
    for line in lines:
        rec = parse_record(line)
        if rec is None:
            continue
        ts, _stream, full, message = rec
        if timestamps:
            out += ts + b" "
        out += message
        if full:
            out += b"\n"
    return bytes(out)


def tail_records(lines: list[bytes], tail: int | None) -> list[bytes]:
    """The records that make up the last `tail` full lines (partials stay with their line)."""
    if tail is None or tail < 0:
        return lines
    if tail == 0:
        return []
    full = 0
    for i in range(len(lines) - 1, -1, -1):
        rec = parse_record(lines[i])
        if rec is not None and rec[2]:
            full += 1
            if full > tail:
                return lines[i + 1 :]
    return lines


def format_rotated_suffix(ns: int) -> str:
    """The suffix ".20261202-033440.123456789" for CLOCK_REALTIME nanoseconds `ns`."""
    secs, nsec = divmod(ns, 1_000_000_000)
    return f".{datetime.fromtimestamp(secs, UTC):%Y%m%d-%H%M%S}.{nsec:09d}"


def parse_rotated_suffix(suffix: str) -> int | None:
    """The nanoseconds a rotated log's suffix names, or None when it is not one."""
    m = _ROTATED.match(suffix)
    if m is None:
        return None
    when = datetime.strptime(m.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    return int(when.timestamp()) * 1_000_000_000 + int(m.group(2))


def rotated_logs(path: Path) -> list[Path]:
    """The rotated files of the log at `path`, oldest first."""
    prefix = path.name
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    return [
        path.with_name(name)
        for name in sorted(names)
        if name.startswith(prefix) and _ROTATED.match(name[len(prefix) :])
    ]


def open_log(path: Path) -> list[int]:
    """Read-only fds of the log's files in order, the current one last ([] when there is
    none). The current file is opened first: a rotation that happens meanwhile shows as
    that file among the rotated ones, and what follows it is left to the follower."""
    try:
        current: int | None = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        current = None  # between a rotation's rename and link: the newest rotated is it
    ident = _ident(current) if current is not None else None
    fds: list[int] = []
    try:
        for rotated in rotated_logs(path):
            try:
                fd = os.open(rotated, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # the oldest, deleted by a rotation meanwhile
            if _ident(fd) == ident:
                os.close(fd)
                break
            fds.append(fd)
    except BaseException:
        for fd in fds + ([current] if current is not None else []):
            os.close(fd)
        raise
    if current is not None:
        fds.append(current)
    return fds


def read_log(path: Path, *, tail: int | None = None, timestamps: bool = False) -> bytes:
    """The log's output across its rotated files; the last `tail` lines with `tail`."""
    fds = open_log(path)
    lines: list[bytes] = []
    try:
        # Newest first, so that a --tail reads only the files it needs.
        for fd in reversed(fds):
            records = _read_all(fd).split(b"\n")
            if not records[-1]:
                records.pop()
            lines = records + lines
            if tail is not None and tail >= 0 and len(tail_records(lines, tail)) < len(lines):
                break
    finally:
        for fd in fds:
            os.close(fd)
    return format_records(tail_records(lines, tail), timestamps)


def iter_log(
    path: Path, *, tail: int | None = None, timestamps: bool = False, chunk: int = 0
) -> Iterator[bytes]:
    """read_log in pieces of at most about LOG_PIECE bytes, so that a caller can send each
    and let its loop run between them: without `tail`, the files are read a piece at a
    time rather than at once (an instance keeps up to max-files x max-size). `chunk`: another
    piece size (tests)."""
    piece = chunk or LOG_PIECE
    if tail is not None and tail >= 0:
        data = read_log(path, tail=tail, timestamps=timestamps)
        for start in range(0, len(data), piece):
            yield data[start : start + piece]
        return
    fds = open_log(path)
    try:
        for fd in fds:
            rest = b""
            while block := os.read(fd, piece):
                lines = (rest + block).split(b"\n")
                rest = lines.pop()
                if out := format_records(lines, timestamps):
                    yield out
            if rest:  # a record without its newline yet, as read_log has it
                yield format_records([rest], timestamps)
    finally:
        for fd in fds:
            os.close(fd)


async def follow_log(
    path: Path,
    *,
    done: Callable[[], bool],
    changed: Callable[[], asyncio.Future[None]],
    tail: int | None = None,
    timestamps: bool = False,
) -> AsyncIterator[bytes]:
    """Yield the log's output as it grows, across rotations, until `done()` (the instance
    exited) and the files are read to their end. Wakes on inotify for the log's directory
    (writes, and the files a rotation renames and links) and on `changed()` for the pod.

    The follower holds an fd of each file from the one it reads to the newest (opened as
    soon as a rotation shows), so a file deleted before it is read is still read. It goes
    on to the next only once that one has data or the instance is done: infra writes the
    old file until supd's REOPEN reaches it and never after, so the old file is complete
    by then and nothing is read out of order."""
    loop = asyncio.get_running_loop()
    notify = Inotify()
    wake: asyncio.Future[None] = loop.create_future()
    pending: list[bytes] = []
    rest = b""

    def on_inotify() -> None:
        notify.read()
        if not wake.done():
            wake.set_result(None)

    def take(data: bytes) -> None:
        nonlocal rest
        lines = (rest + data).split(b"\n")
        rest = lines.pop()  # an incomplete record waits for its newline
        pending.extend(lines)

    files: list[int] = []  # the file being read first, then the newer ones
    try:
        notify.add_watch(path.parent, IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO)
        loop.add_reader(notify.fd, on_inotify)
        while True:
            finished = done()  # read before draining: no exit can slip in between
            if not files:
                files = open_log(path)  # after the watch: no change can slip in between
                if tail is not None:  # what the --tail reaches of all there is now
                    _drop_unreached(files, tail)
                    for fd in files[:-1]:
                        take(_read_all(fd))
                        os.close(fd)
                    del files[:-1]
            more = False
            if files:
                _open_newer(path, files)
                data = _read_all(files[0], FOLLOW_BUDGET)
                more = len(data) >= FOLLOW_BUDGET
                take(data)
                while not more and len(files) > 1 and (finished or _size(files[1]) > 0):
                    take(_read_all(files[0]))  # the last of the old file
                    rest = b""  # a record cut short (a failed write) is not glued on
                    os.close(files.pop(0))
                    data = _read_all(files[0], FOLLOW_BUDGET)
                    more = len(data) >= FOLLOW_BUDGET
                    take(data)
            lines, pending[:] = list(pending), []
            if tail is not None and files:
                lines = tail_records(lines, tail)
                tail = None
            out = format_records(lines, timestamps)
            if out:
                yield out
            if more:
                await asyncio.sleep(0)  # let the loop run, then read on: no wait for inotify
                continue
            if finished:
                return
            # The pod's change future is shared by every waiter: wait on it, never cancel it.
            await asyncio.wait({wake, changed()}, return_when=asyncio.FIRST_COMPLETED)
            if wake.done():
                wake = loop.create_future()
    finally:
        for fd in files:
            os.close(fd)
        if notify.fd >= 0:
            loop.remove_reader(notify.fd)
        notify.close()


def _drop_unreached(files: list[int], tail: int) -> None:
    """Close the oldest of `files` that the last `tail` lines do not reach (counted from the
    newest, so that `-f --tail 10` does not read every kept file in supd's loop), and
    rewind the others, to be read from their start."""
    if tail < 0:
        return
    count, first = 0, 0
    for k in range(len(files) - 1, -1, -1):
        for line in _read_all(files[k]).split(b"\n"):
            rec = parse_record(line)
            count += rec is not None and rec[2]
        if count > tail:
            first = k
            break
    for fd in files[:first]:
        os.close(fd)
    del files[:first]
    for fd in files:
        os.lseek(fd, 0, os.SEEK_SET)


# The most files a follower holds open ahead of the one it reads.
FOLLOW_MAX_FILES = 64


def _ident(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _size(fd: int) -> int:
    return os.fstat(fd).st_size


def _open_newer(path: Path, files: list[int]) -> None:
    """Append fds of the files newer than files[-1] once it has been rotated: one stat when
    it has not (the common case)."""
    ident = _ident(files[-1])
    try:
        st = os.stat(path)
        if (st.st_dev, st.st_ino) == ident:
            return
    except FileNotFoundError:
        pass  # between a rotation's rename and link
    names = [*rotated_logs(path), path]
    idents: list[tuple[int, int] | None] = []
    for name in names:
        try:
            st = os.stat(name)
        except FileNotFoundError:
            idents.append(None)
            continue
        idents.append((st.st_dev, st.st_ino))
    # Not there: it was deleted (the oldest go first), and every file left is newer.
    start = idents.index(ident) + 1 if ident in idents else 0
    for name, seen in zip(names[start:], idents[start:], strict=True):
        if seen is None or len(files) > FOLLOW_MAX_FILES:
            continue
        try:
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        if _ident(fd) != seen:  # rotated again meanwhile: the rest at the next wakeup
            os.close(fd)
            return
        files.append(fd)


def _read_all(fd: int, budget: int = -1) -> bytes:
    """To EOF, or until `budget` bytes are read (-1: no budget)."""
    parts = []
    total = 0
    while (budget < 0 or total < budget) and (chunk := os.read(fd, READ_CHUNK)):
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)
