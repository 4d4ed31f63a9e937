"""Container logs in the CRI format kubelet writes, read and followed for `supctl logs`.

Each record is `TIMESTAMP STREAM TAG MESSAGE\n`, TAG F for a full line and P for a part of
one (pkg/kubelet/kuberuntime/logs). Records are written by the pod's infra, never by supd;
this module only reads them. Following waits on inotify, never on a timer.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path

from .inotify import IN_CLOSE_WRITE, IN_MODIFY, Inotify

READ_CHUNK = 1 << 16


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


def iter_log(
    path: Path, *, tail: int | None = None, timestamps: bool = False, chunk: int = 1 << 20
) -> Iterator[bytes]:
    """The log as `read_log` gives it, in pieces of about `chunk` bytes (a record is never
    split), so that a log larger than a reply frame can be sent, and, without `tail`, is
    never held whole. With a tail the file is read whole, then cut."""
    if tail is not None and tail >= 0:
        data = read_log(path, tail=tail, timestamps=timestamps)
        for i in range(0, len(data), chunk):
            yield data[i : i + chunk]
        return
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return
    with f:
        rest = b""
        while block := f.read(chunk):
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            out = format_records(lines, timestamps)
            if out:
                yield out
        if rest:
            out = format_records([rest], timestamps)
            if out:
                yield out


def read_log(path: Path, *, tail: int | None = None, timestamps: bool = False) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return b""
    return format_records(tail_records(data.splitlines(), tail), timestamps)


async def follow_log(
    path: Path,
    *,
    done: Callable[[], bool],
    changed: Callable[[], asyncio.Future[None]],
    tail: int | None = None,
    timestamps: bool = False,
) -> AsyncIterator[bytes]:
    """Yield the log's output as it grows, until `done()` (the instance exited) and the file
    is read to its end. Wakes on inotify for the file and on `changed()` for the pod."""
    loop = asyncio.get_running_loop()
    notify = Inotify()
    wake: asyncio.Future[None] = loop.create_future()

    def on_inotify() -> None:
        notify.read()
        if not wake.done():
            wake.set_result(None)

    try:
        notify.add_watch(path, IN_MODIFY | IN_CLOSE_WRITE)
        loop.add_reader(notify.fd, on_inotify)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            rest = b""
            first = True
            while True:
                finished = done()  # read before draining: no exit can slip in between
                chunk = _read_all(fd)
                if chunk or first:
                    lines = (rest + chunk).split(b"\n")
                    rest = lines.pop()  # an incomplete record waits for its newline
                    if first:
                        lines = tail_records(lines, tail)
                        first = False
                    out = format_records(lines, timestamps)
                    if out:
                        yield out
                if finished:
                    return
                # The pod's change future is shared by every waiter: wait on it, never cancel it.
                await asyncio.wait({wake, changed()}, return_when=asyncio.FIRST_COMPLETED)
                if wake.done():
                    wake = loop.create_future()
        finally:
            os.close(fd)
    finally:
        if notify.fd >= 0:
            loop.remove_reader(notify.fd)
        notify.close()


def _read_all(fd: int) -> bytes:
    parts = []
    while chunk := os.read(fd, READ_CHUNK):
        parts.append(chunk)
    return b"".join(parts)
