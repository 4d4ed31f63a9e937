"""cgroups for pods and containers: one interface, a cgroup v2 (unified) and a v1 driver.

Layout, under supd's parent cgroup (`--cgroup-parent`; absolute from the hierarchy's root,
or relative to supd's own cgroup in that hierarchy):

    PARENT/pod<UID>/_infra        v2: the pod's infra process (v1: in pod<UID> itself)
    PARENT/pod<UID>/<CONTAINER>   one per container, kept across its restarts; none for a
                                  pod's only container when it holds no limit (it stays
                                  in its infra's: runtime.shares_pod_cgroup)
    PARENT/pool-<SUPD>-<PID>/     v1: an infra made ahead of its pod, renamed to pod<UID>
                                  when a pod takes the infra

On v2 a pod cgroup holds only child cgroups (the "no internal processes" rule); v1 lets the
infra stay in the pod's (add_infra). `_infra` cannot clash with a container, whose name is a
DNS label. The driver is
chosen at start-up: v2 when /sys/fs/cgroup is a cgroup2 mount (or asked for), else v1 when the
v1 memory, cpu and pids controllers are mounted, else none (pods run without cgroups, and a
pod with limits is refused with the reason).

What each driver writes (cgroup-v2.rst, and cgroup-v1/{memory,cpuacct,pids}.rst, and
sched-bwc.rst for CFS bandwidth):
  limit            v2                               v1
  cpu              cpu.max "QUOTA PERIOD"           cpu.cfs_period_us, cpu.cfs_quota_us
  memory           memory.max, memory.swap.max 0    memory.limit_in_bytes, memsw = the same
  pids             pids.max                         pids.max
  usage            cpu.stat usage_usec,             cpuacct.usage,
                   memory.current - inactive_file   usage_in_bytes - total_inactive_file
  OOM kills        memory.events oom_kill           memory.oom_control oom_kill
Swap is held at zero as kubelet does without NodeSwap, so a container over its limit is
OOM-killed rather than swapped out.

Placement: a container is put into its cgroup before execve. On v2 infra clones it there
(clone3 CLONE_INTO_CGROUP with a directory fd); on v1 the child writes "0" to each
hierarchy's cgroup.procs (fds opened by supd). This module opens those fds; the runtime
passes them on. Infra itself is moved by supd right after it is created.

Imports only errors from the package.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidArgument, PermissionDenied, SupervisorError

# A cgroup directory or file: the v1 driver works on strings, since a pod start and removal
# join some forty paths and a pathlib join costs fifty times an f-string's here.
Where = str | os.PathLike[str]

log = logging.getLogger("supervisor.cgroups")

DEFAULT_PARENT = "/supervisor"
INFRA = "_infra"
POD_PREFIX = "pod"
POOL_PREFIX = "pool-"
# sched-bwc.rst: the default period, and the smallest quota kubelet sets (MinQuotaPeriod).
CPU_PERIOD_US = 100_000
MIN_CPU_QUOTA_US = 1_000
V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")
V2_CONTROLLERS = ("cpu", "memory", "pids")
# Removing a cgroup whose processes were just killed: they leave it as they exit.
REMOVE_ATTEMPTS = 50
REMOVE_DELAY = 0.02


class CgroupError(SupervisorError):
    code = "Internal"


@dataclass(frozen=True)
class Limits:
    """What one cgroup is limited to (None: unlimited)."""

    cpu_millis: int | None = None  # millicores
    memory_bytes: int | None = None
    pids: int | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.cpu_millis, self.memory_bytes, self.pids))

    def cpu_quota_us(self, period: int = CPU_PERIOD_US) -> int | None:
        """kubelet's MilliCPUToQuota: millicores * period / 1000, at least 1 ms."""
        if self.cpu_millis is None:
            return None
        return max(self.cpu_millis * period // 1000, MIN_CPU_QUOTA_US)


@dataclass(frozen=True)
class Usage:
    cpu_ns: int  # CPU time used since the cgroup was created
    memory_bytes: int | None  # working set (usage - inactive file), as kubectl top shows


@dataclass
class Placement:
    """Open fds that put a process into a container's cgroup: a v2 directory for clone3's
    CLONE_INTO_CGROUP (`clone_into`), or v1 cgroup.procs files the child writes "0" to."""

    fds: list[int]
    clone_into: bool

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


# -- discovery ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    path: Path
    version: int
    controllers: frozenset[str]
    options: tuple[str, ...] = ()  # the super options, as mountinfo lists them


# Super options of a v1 cgroup mount that are not controllers (cgroups(7)).
_V1_OPTIONS = frozenset(
    ("rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode", "none")
)


def mounts(mountinfo: str | None = None) -> list[Mount]:
    """cgroup and cgroup2 mounts from /proc/self/mountinfo (proc(5)): the v1 controllers are
    the mount's super options other than rw/ro and name=."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    found: list[Mount] = []
    seen: set[str] = set()
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 3 or rest[0] not in ("cgroup", "cgroup2"):
            continue
        path = fields[4].replace("\\040", " ")
        if path in seen:
            continue
        seen.add(path)
        if rest[0] == "cgroup2":
            found.append(Mount(Path(path), 2, frozenset(), tuple(rest[2].split(","))))
        else:
            opts = {o for o in rest[2].split(",") if o not in _V1_OPTIONS and "=" not in o}
            found.append(Mount(Path(path), 1, frozenset(opts)))
    return found


MS_REMOUNT = 32  # <sys/mount.h>


def favor_dynamic_mods(found: list[Mount]) -> list[str]:
    """Remount every cgroup2 mount with favordynmods (cgroup-v2.rst, Linux 6.0), keeping
    its other options; returns what was done or why not, one line each.

    Moving a process into a cgroup takes cgroup_threadgroup_rwsem for writing, a percpu
    rwsem whose writer waits for an RCU grace period unless it was taken moments before:
    here 6.5-8 ms for the first write to cgroup.procs after an idle moment, for v1
    hierarchies as well as v2, since the lock is global. With favordynmods on any cgroup2
    root the lock stays on its slow path for readers (fork and exit pay a little more) and
    a move costs 0.3-0.5 ms. Every pod start moves its infra and its containers, so this is
    most of what a cgroup adds to it."""
    done: list[str] = []
    libc = ctypes.CDLL(None, use_errno=True)
    for m in found:
        if m.version != 2 or "favordynmods" in m.options:
            continue
        opts = [o for o in m.options if o not in ("rw", "ro")] + ["favordynmods"]
        path = os.fsencode(m.path)
        if libc.mount(None, path, None, MS_REMOUNT, ",".join(opts).encode()) == 0:
            done.append(f"remounted {m.path} with favordynmods")
        else:
            why = os.strerror(ctypes.get_errno())
            done.append(f"cannot remount {m.path} with favordynmods: {why}")
    return done


def own_cgroups(text: str | None = None) -> dict[str, str]:
    """This process's cgroup per v1 controller, and "" -> its v2 cgroup (/proc/self/cgroup)."""
    if text is None:
        text = Path("/proc/self/cgroup").read_text()
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            out[""] = path
        for c in controllers.split(","):
            if c:
                out[c] = path
    return out


def _join(mount: Path, own: str, parent: str) -> Path:
    """PARENT resolved in one hierarchy: absolute from its root, else under `own`."""
    base = parent if parent.startswith("/") else f"{own.rstrip('/')}/{parent}"
    parts = [p for p in base.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise InvalidArgument(f"--cgroup-parent: {parent!r}: must not contain . or ..")
    return mount.joinpath(*parts)


# -- the interface ---------------------------------------------------------------------------


def pod_dir(uid: str) -> str:
    return f"{POD_PREFIX}{uid}"


class Cgroups(ABC):
    """supd's pods' cgroups. `setup()` once; per pod `create_pod`, `create_container`,
    `add_infra`; `placement` for each container start; `remove_pod` at the end; `prune`
    after a crash."""

    version = 0
    controllers: frozenset[str] = frozenset()

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    def setup(self) -> None: ...

    @abstractmethod
    def create_pod(self, uid: str, limits: Limits) -> None: ...

    @abstractmethod
    def create_container(self, uid: str, name: str, limits: Limits) -> None: ...

    @abstractmethod
    def add_infra(self, uid: str, pid: int) -> None: ...

    def prepare_pooled(self, pid: int) -> str | None:
        """For an infra made before its pod: the cgroups of a pod without limits, with the
        infra in them (the v1 mkdirs and move then happen before the pod's apply, not
        during it). Returns their key for `claim_pooled`, or None when this driver does not
        (v2 clones each infra into its pod's cgroup; renaming a cgroup is v1's only)."""
        return None

    def claim_pooled(self, key: str, uid: str, limits: Limits, pid: int) -> None:
        """The cgroups `prepare_pooled` made become pod `uid`'s (a rename in each
        hierarchy), with `limits`; infra `pid` joins those of hierarchies that only a limit
        needs. CgroupError when they cannot, with the renames undone."""
        raise CgroupError(f"cgroup {key}: not made ahead")

    async def remove_pooled(self, key: str) -> None:
        """Remove what `prepare_pooled` made, killing what is still in it."""
        return None

    def infra_placement(self, uid: str) -> Placement | None:
        """A cgroup v2 directory fd to clone infra into (no migration afterwards: a v1
        move, add_infra, costs an RCU grace period), or None."""
        return None

    @abstractmethod
    def placement(self, uid: str, name: str) -> Placement | None: ...

    @abstractmethod
    def usage(self, uid: str, name: str | None = None) -> Usage | None: ...

    @abstractmethod
    def oom_kills(self, uid: str, name: str | None) -> int: ...

    @abstractmethod
    def pod_uids(self) -> list[str]: ...

    @abstractmethod
    async def remove_pod(self, uid: str, kill: bool = True) -> bool:
        """Remove the pod's cgroups; processes still in them are SIGKILLed first (kubelet
        kills what is left in a pod's cgroup), or with kill=False the cgroups stay."""

    def check_limits(self, limits: Limits, field: str) -> None:
        """PermissionDenied-like refusal when `limits` needs a controller this driver lacks."""
        needs = [
            ("cpu", limits.cpu_millis is not None),
            ("memory", limits.memory_bytes is not None),
            ("pids", limits.pids is not None),
        ]
        missing = [c for c, wanted in needs if wanted and c not in self.controllers]
        if missing:
            raise PermissionDenied(
                f"{field}: the {', '.join(missing)} cgroup controller"
                f"{'s are' if len(missing) > 1 else ' is'} not available to supd "
                f"({self.describe()}); remove the limit or give supd the controller"
            )

    def parents(self) -> list[Path]:
        """supd's parent cgroup in each hierarchy it uses."""
        return []

    def _ensure_parents(self) -> None:
        """Make the parent again where it went: another supd on the same parent removes it
        when it stops with no pod left (one stat per hierarchy)."""
        if not all(os.path.isdir(p) for p in self.parents()):
            self.setup()

    def remove_parent(self) -> None:
        """At supd's exit: its parent cgroup goes if no pod is left in it (a daemon whose
        pods keep running keeps it)."""
        for path in self.parents():
            with contextlib.suppress(OSError):
                path.rmdir()

    async def prune(self, live_uids: Iterable[str]) -> list[str]:
        """Remove the pod cgroups of pods that are gone (after a crash), and the pooled
        infras' cgroups of an earlier supd; returns the pods' uids."""
        live = set(live_uids)
        removed = []
        for uid in self.pod_uids():
            if uid not in live:
                await self.remove_pod(uid)
                removed.append(uid)
        ours = f"{os.getpid()}-"
        for parent in self.parents():
            for name in _names(parent, POOL_PREFIX):
                if not name.startswith(ours):  # v1's only: no cgroup.kill
                    await _rmtree(parent / f"{POOL_PREFIX}{name}", use_kill_file=False)
        return removed


class NoCgroups(Cgroups):
    def __init__(self, why: str = "cgroups disabled") -> None:
        self.why = why

    def describe(self) -> str:
        return self.why

    def setup(self) -> None:
        pass

    def create_pod(self, uid: str, limits: Limits) -> None:
        self.check_limits(limits, "pod")

    def create_container(self, uid: str, name: str, limits: Limits) -> None:
        pass

    def add_infra(self, uid: str, pid: int) -> None:
        pass

    def placement(self, uid: str, name: str) -> Placement | None:
        return None

    def usage(self, uid: str, name: str | None = None) -> Usage | None:
        return None

    def oom_kills(self, uid: str, name: str | None) -> int:
        return 0

    def pod_uids(self) -> list[str]:
        return []

    async def remove_pod(self, uid: str, kill: bool = True) -> bool:
        return True


def _write(path: Where, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: Where) -> str:
    """A small interface file (OSError when it cannot be read)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 65536).decode()
    finally:
        os.close(fd)


def _read_int(path: Where) -> int | None:
    try:
        return int(_read(path).split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _keyed(path: Where) -> dict[str, int]:
    """A flat keyed file (memory.stat, cpu.stat, memory.events): "key value" lines."""
    out: dict[str, int] = {}
    try:
        text = _read(path)
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value)
    return out


def _failed(what: str, path: Where, e: OSError) -> SupervisorError:
    why = os.strerror(e.errno) if e.errno else str(e)
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDenied(
            f"{what} {path}: {why} (supd cannot write this cgroup; remove resources.limits, "
            "or start supd with --cgroups=off, or delegate the cgroup to supd)"
        )
    return CgroupError(f"{what} {path}: {why}")


def _mkdir(path: Where) -> None:
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    except OSError as e:
        raise _failed("create cgroup", path, e) from None


def _procs(directory: Where) -> list[int]:
    try:
        return [int(p) for p in _read(f"{directory}/cgroup.procs").split()]
    except (OSError, ValueError):
        return []


def _child_cgroups(directory: Where) -> list[str]:
    """The child cgroups of `directory` (none when it is gone). scandir's d_type, not a
    stat per entry: a v1 memory cgroup holds some thirty interface files, and a stat of
    each was a third of supd's CPU when pods came and went."""
    try:
        with os.scandir(directory) as entries:
            return [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


async def _rmtree(directory: Where, use_kill_file: bool, kill: bool = True) -> bool:
    """Remove a cgroup and its children, killing what still runs in them (with `kill`;
    without, a busy cgroup is left as it is). Returns whether it is gone (False: something
    would not die in time; a later prune retries).

    rmdir first: a cgroup whose processes are gone and that has no children (a container's,
    the infra's, and then the pod's) goes at once. Only EBUSY, children or processes, makes
    it look inside: reading a cgroup directory costs more than the rmdir."""
    scanned = False
    attempt = 0
    while True:
        try:
            os.rmdir(directory)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY:
                log.warning("remove cgroup %s: %s", directory, os.strerror(e.errno or 0))
                return False
        if not scanned:
            scanned = True
            children = sorted(_child_cgroups(directory), reverse=True)
            if children:
                for child in children:
                    await _rmtree(child, use_kill_file, kill)
                continue
        if not kill or attempt >= REMOVE_ATTEMPTS:
            break
        if attempt == 0:
            kill_file = f"{directory}/cgroup.kill"
            if use_kill_file and os.path.exists(kill_file):
                with contextlib.suppress(OSError):
                    _write(kill_file, "1")
            else:
                for pid in _procs(directory):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        attempt += 1
        await asyncio.sleep(REMOVE_DELAY)
    if kill:
        log.warning("remove cgroup %s: still busy", directory)
    return False


# -- cgroup v2 ------------------------------------------------------------------------------


class CgroupsV2(Cgroups):
    version = 2

    def __init__(self, mount: Path, own: str, parent: str = DEFAULT_PARENT) -> None:
        self.mount = mount
        self.own = own
        self.parent = _join(mount, own, parent)
        self.controllers = frozenset()

    def describe(self) -> str:
        have = " ".join(sorted(self.controllers)) or "no controllers"
        return f"cgroup v2 at {self.parent}, {have}"

    def setup(self) -> None:
        """Create PARENT and enable our controllers from the mount's root down to it, so
        that pod and container cgroups get the interface files."""
        try:
            available = set((self.mount / "cgroup.controllers").read_text().split())
        except OSError as e:
            raise _failed("read", self.mount / "cgroup.controllers", e) from None
        wanted = [c for c in V2_CONTROLLERS if c in available]
        path = self.mount
        for part in self.parent.relative_to(self.mount).parts:
            self._enable(path, wanted)
            path = path / part
            _mkdir(path)
        self._enable(self.parent, wanted)
        try:
            enabled = set((self.parent / "cgroup.subtree_control").read_text().split())
        except OSError:
            enabled = set()
        self.controllers = frozenset(enabled & set(V2_CONTROLLERS))

    def _enable(self, directory: Path, controllers: list[str]) -> None:
        if not controllers:
            return
        try:
            current = set((directory / "cgroup.subtree_control").read_text().split())
        except OSError as e:
            raise _failed("read", directory / "cgroup.subtree_control", e) from None
        missing = [c for c in controllers if c not in current]
        if not missing:
            return
        try:
            _write(directory / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
        except OSError as e:
            if e.errno == errno.EBUSY:
                # "No internal processes" (cgroup-v2.rst): a cgroup with processes cannot
                # hand controllers to children, except the root.
                raise CgroupError(
                    f"enable {' '.join(missing)} in {directory}: it holds processes; start "
                    "supd in a leaf cgroup or choose another --cgroup-parent"
                ) from None
            raise _failed("enable controllers in", directory, e) from None

    def _pod(self, uid: str) -> Path:
        return self.parent / pod_dir(uid)

    def parents(self) -> list[Path]:
        return [self.parent]

    def create_pod(self, uid: str, limits: Limits) -> None:
        self.check_limits(limits, "resources.limits")
        self._ensure_parents()
        path = self._pod(uid)
        _mkdir(path)
        self._limit(path, limits)
        self._enable(path, sorted(self.controllers))
        _mkdir(path / INFRA)

    def create_container(self, uid: str, name: str, limits: Limits) -> None:
        path = self._pod(uid) / name
        _mkdir(path)
        self._limit(path, limits)
        if limits.memory_bytes is not None and (path / "memory.oom.group").exists():
            # kubelet on cgroup v2: an OOM kill takes the whole container, not one process.
            self._set(path / "memory.oom.group", "1")

    def _limit(self, path: Path, limits: Limits) -> None:
        quota = limits.cpu_quota_us()
        if quota is not None:
            self._set(path / "cpu.max", f"{quota} {CPU_PERIOD_US}")
        if limits.memory_bytes is not None:
            self._set(path / "memory.max", str(limits.memory_bytes))
            if (path / "memory.swap.max").exists():
                self._set(path / "memory.swap.max", "0")
        if limits.pids is not None:
            self._set(path / "pids.max", str(limits.pids))

    def _set(self, path: Path, value: str) -> None:
        try:
            _write(path, value)
        except OSError as e:
            raise _failed(f"write {value!r} to", path, e) from None

    def add_infra(self, uid: str, pid: int) -> None:
        self._set(self._pod(uid) / INFRA / "cgroup.procs", str(pid))

    def infra_placement(self, uid: str) -> Placement:
        return self.placement(uid, INFRA)

    def placement(self, uid: str, name: str) -> Placement:
        path = self._pod(uid) / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise _failed("open cgroup", path, e) from None
        return Placement([fd], clone_into=True)

    def usage(self, uid: str, name: str | None = None) -> Usage | None:
        path = self._pod(uid) if name is None else self._pod(uid) / name
        stat = _keyed(path / "cpu.stat")
        if "usage_usec" not in stat:
            return None
        current = _read_int(path / "memory.current")
        memory = None
        if current is not None:
            inactive = _keyed(path / "memory.stat").get("inactive_file", 0)
            memory = max(current - inactive, 0)
        return Usage(stat["usage_usec"] * 1000, memory)

    def oom_kills(self, uid: str, name: str | None) -> int:
        path = self._pod(uid) if name is None else self._pod(uid) / name
        return _keyed(path / "memory.events").get("oom_kill", 0)

    def pod_uids(self) -> list[str]:
        return _pod_uids(self.parent)

    async def remove_pod(self, uid: str, kill: bool = True) -> bool:
        return await _rmtree(self._pod(uid), use_kill_file=True, kill=kill)


def _pod_uids(parent: Where) -> list[str]:
    return _names(parent, POD_PREFIX)


def _names(parent: Where, prefix: str) -> list[str]:
    """The child cgroups of `parent` named `prefix`..., without the prefix."""
    names = (os.path.basename(p) for p in _child_cgroups(parent))
    return sorted(n[len(prefix) :] for n in names if n.startswith(prefix))


# -- cgroup v1 ------------------------------------------------------------------------------


class CgroupsV1(Cgroups):
    version = 1

    def __init__(self, hierarchies: dict[str, Path]) -> None:
        """`hierarchies`: controller -> supd's PARENT directory in that controller's
        hierarchy (controllers mounted together share one)."""
        self.dirs = hierarchies
        self.controllers = frozenset(hierarchies)
        self._roots = {c: str(p) for c, p in hierarchies.items()}  # the same, as strings
        # Each hierarchy once (cpu,cpuacct are often mounted together), and those that
        # every pod is in: cpuacct and memory (the usage `top` shows, OOM kills).
        self._each = list(dict.fromkeys(self._roots.values()))
        self._always = self._in_hierarchies({"cpuacct", "memory"})
        # Where each container's cgroup was made (pod uid -> name -> paths), for placement:
        # an open of a hierarchy it is not in fails, and costs as much as one that works.
        self._made: dict[str, dict[str, list[str]]] = {}

    @classmethod
    def discover(cls, found: list[Mount], own: dict[str, str], parent: str) -> CgroupsV1:
        dirs: dict[str, Path] = {}
        for c in V1_CONTROLLERS:
            for m in found:
                if m.version == 1 and c in m.controllers:
                    dirs[c] = _join(m.path, own.get(c, "/"), parent)
                    break
        return cls(dirs)

    def describe(self) -> str:
        return "cgroup v1, " + (" ".join(sorted(self.controllers)) or "no controllers")

    def setup(self) -> None:
        for path in self.parents():
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise _failed("create cgroup", path, e) from None

    def parents(self) -> list[Path]:
        return list(dict.fromkeys(self.dirs.values()))

    def _paths(self, uid: str, name: str | None = None) -> list[str]:
        rel = pod_dir(uid) if name is None else f"{pod_dir(uid)}/{name}"
        return [f"{p}/{rel}" for p in self._each]

    def _in(self, controller: str, uid: str, name: str | None = None) -> str | None:
        base = self._roots.get(controller)
        if base is None:
            return None
        return f"{base}/{pod_dir(uid)}/{name}" if name is not None else f"{base}/{pod_dir(uid)}"

    def _in_hierarchies(self, controllers: set[str]) -> list[str]:
        return list(dict.fromkeys(p for c, p in self._roots.items() if c in controllers))

    def _needed(self, limits: Limits) -> list[str]:
        """The hierarchies a cgroup with `limits` goes in: cpuacct and memory always, cpu
        and pids only to hold a limit. Creating a v1 cgroup costs a mkdir per hierarchy (a
        memory cgroup's is the dearest) and each is removed again: a cgroup that holds
        nothing is not made."""
        wanted = {"cpuacct", "memory"}
        if limits.cpu_quota_us() is not None:
            wanted.add("cpu")
        if limits.pids is not None:
            wanted.add("pids")
        return self._always if len(wanted) == 2 else self._in_hierarchies(wanted)

    def create_pod(self, uid: str, limits: Limits) -> None:
        self.check_limits(limits, "resources.limits")
        self._ensure_parents()
        rel = pod_dir(uid)
        for parent in self._needed(limits):
            _mkdir(f"{parent}/{rel}")
        self._limit(uid, None, limits)

    def create_container(self, uid: str, name: str, limits: Limits) -> None:
        rel = pod_dir(uid)
        needed = self._needed(limits)
        for parent in needed:
            pod, path = f"{parent}/{rel}", f"{parent}/{rel}/{name}"
            try:
                os.mkdir(path)
            except FileExistsError:
                pass
            except FileNotFoundError:  # a hierarchy the pod is not in (a container's limit)
                _mkdir(pod)
                _mkdir(path)
            except OSError as e:
                raise _failed("create cgroup", path, e) from None
        self._limit(uid, name, limits)
        self._made.setdefault(uid, {})[name] = [f"{parent}/{rel}/{name}" for parent in needed]

    def prepare_pooled(self, pid: int) -> str | None:
        key = f"{os.getpid()}-{pid}"
        made: list[str] = []
        try:
            self._ensure_parents()
            for parent in self._always:
                path = f"{parent}/{POOL_PREFIX}{key}"
                os.mkdir(path)
                made.append(path)
                _write(f"{path}/cgroup.procs", str(pid))
        except (OSError, SupervisorError) as e:
            # What was made is the pod's all the same: claim_pooled renames what is there
            # or fails (and the pod's cgroup is then made as without a pool).
            log.warning("cgroup of pooled infra %d: %s", pid, e)
        return key if made else None

    def claim_pooled(self, key: str, uid: str, limits: Limits, pid: int) -> None:
        self.check_limits(limits, "resources.limits")
        pool, pod = f"{POOL_PREFIX}{key}", pod_dir(uid)
        renamed: list[str] = []
        try:
            for parent in self._always:
                os.rename(f"{parent}/{pool}", f"{parent}/{pod}")
                renamed.append(parent)
        except OSError as e:
            for parent in renamed:
                with contextlib.suppress(OSError):
                    os.rename(f"{parent}/{pod}", f"{parent}/{pool}")
            raise _failed("rename cgroup", f"{parent}/{pool}", e) from None
        for parent in self._needed(limits):
            if parent not in self._always:  # cpu or pids, for a limit: as create_pod, add_infra
                _mkdir(f"{parent}/{pod}")
                self._set(f"{parent}/{pod}/cgroup.procs", str(pid))
        self._limit(uid, None, limits)

    async def remove_pooled(self, key: str) -> None:
        for parent in self._always:
            await _rmtree(f"{parent}/{POOL_PREFIX}{key}", use_kill_file=False)

    def _limit(self, uid: str, name: str | None, limits: Limits) -> None:
        quota = limits.cpu_quota_us()
        cpu = self._in("cpu", uid, name)
        if quota is not None and cpu is not None:
            # sched-bwc.rst: the period first, then the quota it is measured against.
            self._set(f"{cpu}/cpu.cfs_period_us", str(CPU_PERIOD_US))
            self._set(f"{cpu}/cpu.cfs_quota_us", str(quota))
        memory = self._in("memory", uid, name)
        if limits.memory_bytes is not None and memory is not None:
            # memsw (memory + swap) must stay >= the limit: the limit first, then memsw
            # down to it (no swap). It exists only with swap accounting compiled in.
            limit = str(limits.memory_bytes)
            self._set(f"{memory}/memory.limit_in_bytes", limit)
            memsw = f"{memory}/memory.memsw.limit_in_bytes"
            if os.path.exists(memsw):
                self._set(memsw, limit)
        pids = self._in("pids", uid, name)
        if limits.pids is not None and pids is not None:
            self._set(f"{pids}/pids.max", str(limits.pids))

    def _set(self, path: Where, value: str) -> None:
        try:
            _write(path, value)
        except OSError as e:
            raise _failed(f"write {value!r} to", path, e) from None

    def add_infra(self, uid: str, pid: int) -> None:
        """Into the pod's own cgroups: v1 lets a cgroup with children hold processes too
        (v2 does not, hence its leaf), and a leaf per hierarchy would be one more mkdir and
        rmdir for every pod."""
        for path in self._paths(uid):
            try:
                _write(f"{path}/cgroup.procs", str(pid))
            except FileNotFoundError:
                continue  # a hierarchy this pod is not in
            except OSError as e:
                raise _failed(f"write {pid!r} to", f"{path}/cgroup.procs", e) from None

    def placement(self, uid: str, name: str) -> Placement:
        """cgroup.procs of each hierarchy the container's cgroup was made in (by this supd,
        or, for one it took over, wherever it is)."""
        fds: list[int] = []
        for path in self._made.get(uid, {}).get(name) or self._paths(uid, name):
            try:
                fds.append(os.open(f"{path}/cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
            except FileNotFoundError:
                continue
            except OSError as e:
                for fd in fds:
                    os.close(fd)
                raise _failed("open", f"{path}/cgroup.procs", e) from None
        return Placement(fds, clone_into=False)

    def usage(self, uid: str, name: str | None = None) -> Usage | None:
        acct = self._in("cpuacct", uid, name)
        cpu_ns = _read_int(f"{acct}/cpuacct.usage") if acct is not None else None
        if cpu_ns is None:
            return None
        memory = None
        mem = self._in("memory", uid, name)
        if mem is not None:
            used = _read_int(f"{mem}/memory.usage_in_bytes")
            if used is not None:
                inactive = _keyed(f"{mem}/memory.stat").get("total_inactive_file", 0)
                memory = max(used - inactive, 0)
        return Usage(cpu_ns, memory)

    def oom_kills(self, uid: str, name: str | None) -> int:
        mem = self._in("memory", uid, name)
        if mem is None:
            return 0
        return _keyed(f"{mem}/memory.oom_control").get("oom_kill", 0)

    def pod_uids(self) -> list[str]:
        uids: set[str] = set()
        for path in self._each:
            uids.update(_pod_uids(path))
        return sorted(uids)

    async def remove_pod(self, uid: str, kill: bool = True) -> bool:
        self._made.pop(uid, None)
        results = [await _rmtree(p, use_kill_file=False, kill=kill) for p in self._paths(uid)]
        return all(results)


# -- choosing a driver ---------------------------------------------------------------------

DRIVERS = ("auto", "v2", "v1", "off")


def select(driver: str = "auto", parent: str = DEFAULT_PARENT) -> Cgroups:
    """The driver for this machine (`driver`: auto, v2, v1 or off); not yet set up."""
    if driver not in DRIVERS:
        raise InvalidArgument(f"--cgroups: {driver!r}: must be one of {', '.join(DRIVERS)}")
    if driver == "off":
        return NoCgroups("cgroups disabled with --cgroups=off")
    try:
        found = mounts()
        own = own_cgroups()
    except OSError as e:
        return NoCgroups(f"cannot read the cgroup mounts: {e.strerror}")
    unified = next((m for m in found if m.version == 2), None)
    pure_v2 = unified is not None and unified.path == Path("/sys/fs/cgroup")
    v1 = CgroupsV1.discover(found, own, parent)
    if driver == "v2" or (driver == "auto" and pure_v2):
        if unified is None:
            return NoCgroups("no cgroup2 mount")
        return CgroupsV2(unified.path, own.get("", "/"), parent)
    if v1.controllers:
        return v1
    if driver == "auto" and unified is not None:
        return CgroupsV2(unified.path, own.get("", "/"), parent)
    return NoCgroups("no cgroup controllers mounted")
