"""The state directory: every accepted pod, written atomically before it is acknowledged.

Two roots: STATE keeps what outlives the machine, RUN what dies with it (a tmpfs, as
/run is; see supd's --run-dir). Both may be one directory. Layout (kubelet's /var/log/pods
naming, so paths stay readable), POD being NAMESPACE_NAME_UID:
    STATE/pods/POD/pod.json          the accepted manifest
    STATE/pods/POD/CONTAINER/N.log   CRI log of the container's Nth instance
    STATE/pods/POD/deleting          a deletion was accepted (a link to pod.json)
    STATE/pods/POD/status.json       the pod's record once its phase is final (restore.py)
    STATE/pods/POD/volumes/, containers/  emptyDirs; termination logs, image containers' upper dirs
    RUN/pods/POD/status.json         the pod's record (restore.py)
    RUN/pods/POD/infra, infra.sock   "PID STARTTIME" of the pod's infra; where it listens
    RUN/pods/POD/etc/, shm/          the pod's hosts, hostname, resolv.conf; its /dev/shm
    RUN/pool/, RUN/pool-sockets/     infras made ahead of their pods
    STATE/trash/, RUN/trash/         removed pods, being deleted
    STATE/spare/                     removed pods' directories, emptied for new pods

Durability. `save` returns once the manifest is in place under its final name: written to a
temporary file and renamed over `pod.json` (rename(2) is atomic), so a supd that crashes at
any point leaves either no pod or the whole manifest, and every acknowledged pod is there for
the next supd (the page cache outlives the process). Surviving a crash of the *machine* also
needs fsync of the file and of the directory; those cost 0.5 to 10 ms each on a shared disk,
and most of a pod start's latency, so they are not on the request path: a flusher thread
fsyncs what was saved, in batches gathered over 50 ms (one fsync of the directory per batch). A pod
acknowledged in the last moments before a power loss may therefore be missing after the
reboot; its processes died with the machine either way. `Store(..., sync=True)` fsyncs
before `save` returns instead, for a state dir where that window matters; `flush()` waits
for the flusher.

Recycling. A new file or directory costs ext4 an inode, and on a file system without a
journal (as on this project's machines) ext4 will not hand out an inode freed in the last
60 seconds and walks past every such one on each allocation: after a thousand pods were
deleted, a mkdir takes 0.3-1 ms, ten times a rename. So a removed pod's directory is not
deleted but emptied by the flusher, down to what the next pod creates (its manifest's
temporary file, one container's log directory and file, all emptied), and kept in
spare/ (at most SPARES); `save` renames a spare into place and the runtime renames its
log directory (`log_dir`), so a pod's start allocates no inode on the state dir's disk,
and a deletion frees none.

Imports only errors and spec; pods are re-validated by the caller when loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import Internal, InvalidArgument, ResourceExhausted
from .spec import PodSpec

# Names come validated as RFC 1123 labels and subdomains; a uid given in a manifest is
# free text in Kubernetes, so it is checked here before it becomes part of a path.
_SAFE_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_LOG = re.compile(r"^[0-9]+\.log")  # N.log, and N.log.TIME rotated (logrotate.py)


@dataclass(frozen=True)
class StoredPod:
    directory: Path
    run: Path  # its run directory (Store.run_of)
    manifest: dict[str, Any]


class Store:
    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        run_dir: str | os.PathLike[str] | None = None,
        *,
        sync: bool = False,
    ) -> None:
        self.root = Path(state_dir)
        self.run = Path(run_dir) if run_dir is not None else self.root
        self.pods = self.root / "pods"
        self.run_pods = self.run / "pods"
        for d in {self.pods, self.run_pods}:
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.run_in_memory = filesystem_of(self.run) in MEMORY_FILESYSTEMS
        self.sync = sync
        self.spare = self.root / "spare"
        self.spare.mkdir(exist_ok=True, mode=0o700)
        # Filled by the flusher thread, taken by save on the loop (deque's append and
        # popleft are atomic).
        self._spares: deque[Path] = deque(self.spare.iterdir())
        self._flusher = _Flusher(self.pods, self._recycle)
        # Removed pods wait here to be deleted by the flusher (a sibling of pods/, so that
        # load_all never sees them); what a previous supd left is deleted now.
        self.trash = self.root / "trash"
        self.run_trash = self.run / "trash"
        self._trashed = 0
        for trash in {self.trash, self.run_trash}:
            trash.mkdir(exist_ok=True, mode=0o700)
            for entry in trash.iterdir():
                self._flusher.queue(entry, remove=True, recycle=trash == self.trash)
        if self.run_pods != self.pods:
            # A pod's run directory whose pod is gone (supd died between the two renames
            # of remove): nothing lives there any more.
            for entry in self.run_pods.iterdir():
                if not (self.pods / entry.name).exists():
                    self._discard(entry, self.run_trash)

    def run_of(self, directory: Path) -> Path:
        """The run directory of the pod saved in `directory` (the same one without a
        separate run dir)."""
        return self.run_pods / directory.name

    def pod_dir(self, spec: PodSpec) -> Path:
        if not _SAFE_UID.match(spec.uid) or ".." in spec.uid:
            raise InvalidArgument(
                f"metadata.uid: Invalid value: {spec.uid!r}: must be letters, digits, "
                "'.', '_' or '-'",
                {"field": "metadata.uid"},
            )
        return self.pods / f"{spec.namespace}_{spec.name}_{spec.uid}"

    def save(self, spec: PodSpec) -> Path:
        """Persist the pod: write a temporary file and rename it into place (see the module
        docstring for when it reaches the disk)."""
        directory = self.pod_dir(spec)
        path = directory / "pod.json"
        try:
            created = self._make_dir(directory)
        except OSError as e:
            raise _save_error(spec, directory, e) from None
        if self.run_pods != self.pods:
            try:
                self.run_of(directory).mkdir(mode=0o700, exist_ok=True)
            except OSError as e:
                if created:
                    directory.rmdir()
                raise _save_error(spec, self.run_of(directory), e) from None
        try:
            write_atomic(path, json.dumps(spec.manifest, sort_keys=True).encode(), fsync=self.sync)
        except OSError as e:
            # Nothing half-created: a pod that could not be saved leaves no directory.
            if created:  # empty again (write_atomic cleans up): rmdir needs no descriptor
                try:
                    directory.rmdir()
                except OSError:
                    shutil.rmtree(directory, ignore_errors=True)
            raise _save_error(spec, directory, e) from None
        if self.sync:
            _fsync_dir(self.pods)
        else:
            self._flusher.queue(path)
        return directory

    def _make_dir(self, directory: Path) -> bool:
        """A spare renamed to `directory`, or a new one; False when it exists already."""
        while self._spares:
            spare = self._spares.popleft()
            try:
                os.rename(spare, directory)
                return True
            except FileNotFoundError:
                continue  # removed behind our back: the next one
            except OSError as e:
                self._spares.appendleft(spare)
                if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    return False
                break  # mkdir will tell what is wrong with the directory
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            return False
        return True

    def _recycle(self, directory: Path) -> bool:
        """On the flusher thread: empty a removed pod's directory and keep it as a spare;
        False when there are enough spares (it is deleted then)."""
        if len(self._spares) >= SPARES:
            return False
        try:
            empty_for_reuse(directory)
            target = self.spare / directory.name
            os.rename(directory, target)
        except OSError:
            return False
        self._spares.append(target)
        return True

    def mark_deleting(self, directory: Path) -> None:
        """Remember that the pod's deletion was accepted (`deleting`), for the next supd,
        even after a reboot. A hard link to pod.json: a new directory entry, but no new
        inode, which ext4 here takes 0.3-1 ms to allocate after many removals (a link
        takes 0.03 ms)."""
        with contextlib.suppress(FileExistsError):
            os.link(directory / "pod.json", directory / DELETING)

    def flush(self) -> None:
        """Wait until everything saved or removed so far is on disk."""
        self._flusher.wait()

    def load_all(self) -> list[StoredPod]:
        found = []
        for entry in sorted(self.pods.iterdir()):
            path = entry / "pod.json"
            try:
                manifest = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue  # a pod whose creation never finished: nothing was acknowledged
            run = self.run_of(entry)
            run.mkdir(mode=0o700, exist_ok=True)  # empty after a reboot
            found.append(StoredPod(entry, run, manifest))
        return found

    def remove(self, directory: Path) -> None:
        """Forget a pod: its directories leave pods/ at once (one rename each, the run
        directory last) and are deleted, logs and all, by the flusher thread (0.5 ms and
        more of unlink calls per pod)."""
        run = self.run_of(directory)
        if self.sync:
            shutil.rmtree(directory, ignore_errors=True)
            _fsync_dir(self.pods)
        else:
            self._discard(directory, self.trash, recycle=True)
        if run != directory:
            self._discard(run, self.run_trash)

    def _discard(self, directory: Path, trash: Path, recycle: bool = False) -> None:
        self._trashed += 1
        target = trash / f"{directory.name}.{os.getpid()}.{self._trashed}"
        try:
            os.rename(directory, target)
        except FileNotFoundError:
            return
        except OSError:
            shutil.rmtree(directory, ignore_errors=True)
            self._flusher.queue(None)
            return
        self._flusher.queue(target, remove=True, recycle=recycle)


# Filesystems that live in memory (mountinfo's names).
MEMORY_FILESYSTEMS = ("tmpfs", "ramfs")


def filesystem_of(path: Path) -> str:
    """The type of the filesystem `path` is on, from /proc/self/mountinfo ("" if unknown)."""
    dev = os.stat(path).st_dev
    want = f"{os.major(dev)}:{os.minor(dev)}"
    found = ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if left.split()[2] == want:
                found = right.split()[0]  # the last one listed is on top
    return found


DELETING = "deleting"  # see Store.mark_deleting
SPARES = 1024  # pod directories kept for reuse (Recycling, above): 4 inodes and 8 KiB each
_SPARE_LOGS = ".log"  # a spare's log directory, renamed to its first container's
# A removed pod's files a new one writes again (write_atomic's temporary names).
_REUSED = {"pod.json": ".pod.json.tmp", "status.json": ".status.json.tmp"}


def log_dir(pod_dir: Path, name: str) -> Path:
    """Container `name`'s log directory in `pod_dir`, made for its first instance: the
    spare's log directory (with an empty 0.log) renamed, when the pod directory was one."""
    directory = pod_dir / name
    try:
        os.rename(pod_dir / _SPARE_LOGS, directory)
    except OSError:  # no spare's (ENOENT), or the container's is there (ENOTEMPTY)
        directory.mkdir(mode=0o700, exist_ok=True)
    return directory


def empty_for_reuse(directory: Path) -> None:
    """Reduce a removed pod's directory to its manifest's and record's temporary files
    and one log directory holding 0.log, all of them empty; delete the rest."""
    logs = directory / _SPARE_LOGS
    have_logs = logs.is_dir() and _keep_one_log(logs)  # a half-emptied directory's
    for entry in list(os.scandir(directory)):
        path = Path(entry.path)
        name = entry.name
        if entry.is_symlink():  # never followed (supd makes none here)
            os.unlink(path)
        elif name in _REUSED.values():
            os.truncate(path, 0)
        elif name in _REUSED and entry.is_file(follow_symlinks=False):
            os.rename(path, directory / _REUSED[name])
            os.truncate(directory / _REUSED[name], 0)
        elif name == _SPARE_LOGS:
            continue
        elif not have_logs and entry.is_dir(follow_symlinks=False) and _keep_one_log(path):
            os.rename(path, logs)
            have_logs = True
        elif entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    if not have_logs:
        logs.mkdir(mode=0o700, exist_ok=True)


def _keep_one_log(directory: Path) -> bool:
    """Leave in a container's log directory only an empty 0.log, made from one of its
    logs; False (and nothing changed) when it holds none."""
    entries = list(os.scandir(directory))
    kept = next(
        (e for e in entries if _LOG.match(e.name) and e.is_file(follow_symlinks=False)), None
    )
    if kept is None:
        return False
    for entry in entries:
        if entry is not kept:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
    os.rename(kept.path, directory / "0.log")
    os.truncate(directory / "0.log", 0)
    return True


# A full disk, a quota or no free descriptor: the request may succeed later, unchanged.
_EXHAUSTED = {errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.ENOMEM}


def _save_error(spec: PodSpec, directory: Path, e: OSError) -> Exception:
    code = errno.errorcode.get(e.errno or 0, str(e.errno))
    message = (
        f"save pod {spec.namespace}/{spec.name} in {directory}: {e.strerror} ({code}); "
        "the pod was not created"
    )
    details = {"path": str(directory), "errno": code}
    if e.errno in _EXHAUSTED:
        return ResourceExhausted(message, details)
    return Internal(message, details)


def write_atomic(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Write `data` to a temporary file and rename it over `path`; on failure neither the
    temporary file nor a partial `path` is left."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


Done = Callable[[OSError | None], None]


class Writer:
    """Small files written atomically off the event loop: the records a pod's state changes
    leave (restore.py), the infra records. Each file is written with `write_atomic` and no
    fsync, or removed (data None). `then` runs on the loop, with the OSError or None, once
    its file is in place.

    A file under `inline` (the run dir when it is in memory) is written at once, on the
    loop: a tmpfs write costs less than handing it to a thread (a lock, a wakeup, the GIL
    passed back and forth, a wakeup of the loop for `then`): 8 % of supd's CPU per pod.
    Others (on a disk, where a metadata operation can take a millisecond) go to a thread of
    its own, and a path queued again before its turn is written once, with the newest data.
    The thread starts with the first such write and stops when it has been idle a while."""

    IDLE_SECONDS = 5.0

    def __init__(self, loop: asyncio.AbstractEventLoop, inline: Path | None = None) -> None:
        self._loop = loop
        self._inline = f"{inline}/" if inline is not None else None
        self._cond = threading.Condition()
        self._pending: dict[Path, tuple[bytes | None, list[Done]]] = {}
        self._writing = False
        self._thread: threading.Thread | None = None

    def write(self, path: Path, data: bytes | None, then: Done | None = None) -> None:
        if self._inline is not None and str(path).startswith(self._inline):
            error = _write_or_remove(path, data)
            if then is not None:
                self._loop.call_soon(then, error)
            return
        with self._cond:
            waiting = self._pending.get(path)
            done = waiting[1] if waiting is not None else []
            if then is not None:
                done.append(then)
            self._pending[path] = (data, done)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="store-write", daemon=True)
                self._thread.start()
            else:
                self._cond.notify_all()

    def discard(self, path: Path) -> None:
        """Forget what waits for `path` (its directory is going), `then` and all."""
        with self._cond:
            self._pending.pop(path, None)

    def flush(self) -> None:
        """Wait until every file queued so far is written (their `then` run later)."""
        with self._cond:
            while self._pending or self._writing:
                self._cond.wait()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._writing = False
                self._cond.notify_all()
                if not self._pending:
                    self._cond.wait(self.IDLE_SECONDS)
                if not self._pending:
                    self._thread = None
                    return
                batch, self._pending = self._pending, {}
                self._writing = True
            results: list[tuple[list[Done], OSError | None]] = []
            for path, (data, done) in batch.items():
                error = _write_or_remove(path, data)
                if done:
                    results.append((done, error))
            if results:
                # A closed loop (RuntimeError): nobody waits for these any more.
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(_report, results)


def _write_or_remove(path: Path, data: bytes | None) -> OSError | None:
    try:
        if data is None:
            path.unlink(missing_ok=True)
        else:
            write_atomic(path, data, fsync=False)
    except OSError as e:
        return e
    return None


def _report(results: list[tuple[list[Done], OSError | None]]) -> None:
    for done, error in results:
        for then in done:
            then(error)


class _Flusher:
    """fsync, on a thread of its own, the files saved (and then their directory) in batches:
    whatever was queued while one batch was being synced goes in the next. The thread starts
    with the first queued item and stops when it has been idle for a while."""

    IDLE_SECONDS = 5.0
    # How long a batch gathers before its fsyncs: the pods just saved are being started
    # meanwhile, and an ext4 fsync commits the journal that their file operations wait on.
    GATHER_SECONDS = 0.05

    def __init__(self, directory: Path, recycle: Callable[[Path], bool]) -> None:
        self.directory = directory
        self._recycle = recycle
        self._cond = threading.Condition()
        self._pending: list[tuple[Path | None, bool, bool]] = []
        self._queued = 0  # items ever queued
        self._synced = 0  # items ever synced
        self._thread: threading.Thread | None = None
        self._gathering = False  # a batch is waiting out GATHER_SECONDS: no need to wake it
        self._urgent = False  # someone waits in wait(): sync now

    def queue(self, path: Path | None, remove: bool = False, recycle: bool = False) -> None:
        """A file to fsync (None: only the directory, after a removal), or with `remove` a
        directory tree to delete, or with `recycle` too a pod directory to keep as a spare
        if it can be."""
        with self._cond:
            self._pending.append((path, remove, recycle))
            self._queued += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="store-flush", daemon=True)
                self._thread.start()
            elif not self._gathering:
                self._cond.notify_all()

    def wait(self) -> None:
        with self._cond:
            target = self._queued
            self._urgent = True
            self._cond.notify_all()
            while self._synced < target:
                self._cond.wait()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._cond.wait(self.IDLE_SECONDS)
                if not self._pending:
                    self._thread = None
                    return
                self._gathering = True
                deadline = time.monotonic() + self.GATHER_SECONDS
                while not self._urgent and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                self._gathering = self._urgent = False
                batch, self._pending = self._pending, []
            for path, remove, recycle in batch:
                if path is None:
                    continue
                if remove:
                    if not (recycle and self._recycle(path)):
                        shutil.rmtree(path, ignore_errors=True)
                else:
                    _fsync_path(path)
            _fsync_path(self.directory, directory=True)
            with self._cond:
                self._synced += len(batch)
                self._cond.notify_all()


def _fsync_path(path: Path, directory: bool = False) -> None:
    """fsync a file or directory by name; one removed meanwhile needs nothing."""
    flags = os.O_RDONLY | os.O_CLOEXEC | (os.O_DIRECTORY if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
