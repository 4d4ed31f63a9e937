"""A container's filesystem as data: the operations its cloned child runs before execve.

`plan_container` turns a pod spec, a container spec and the pod's volumes into a list of
operations (the tuples `_native.encode_fs` takes) and a description of each, which is what
a failure message names ("mount emptyDir 'cache' at /data: No such file or directory").
`prepare_pod` and `prepare_container` do the host side first: volume directories, the
files bound over /etc/hosts, /etc/hostname and /etc/resolv.conf, the per-container overlay
upper dir. Everything the child mounts lives in its own mount namespace and vanishes with
it; the only mounts on the host are the tmpfs of `medium: Memory` emptyDirs, which
`release_pod` unmounts.

Imports spec and images (for the image config), never the native extension's internals:
the runtime passes `mount`/`umount` in.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .spec import ContainerSpec, PodSpec, Volume, VolumeMount

# mount(2) flags, linux/mount.h
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
# mount_setattr(2) attributes
MOUNT_ATTR_RDONLY = 1
MOUNT_ATTR_NOSUID = 2
MOUNT_ATTR_NODEV = 4
MOUNT_ATTR_NOEXEC = 8

# kubelet's minimal /dev (runc's default devices), bound from the host's nodes.
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# The page a mount(2) data string must fit in.
MOUNT_DATA_MAX = 4095
# kubelet: a termination message is cut to 4096 bytes.
TERMINATION_MESSAGE_MAX = 4096

Op = tuple[str, str, str | None, str | None, int, str | None, int]


class FsError(Exception):
    """A container whose filesystem cannot be set up: CreateContainerError, with this
    message."""


@dataclass
class FsPlan:
    ops: list[Op] = field(default_factory=list)
    descriptions: list[str] = field(default_factory=list)
    slots: int = 0

    def add(
        self,
        what: str,
        kind: str,
        target: str,
        source: str | None = None,
        fstype: str | None = None,
        flags: int = 0,
        data: str | None = None,
        arg: int = 0,
    ) -> None:
        self.ops.append((kind, target, source, fstype, flags, data, arg))
        self.descriptions.append(what)

    def open(self, what: str, source: str, sub_path: str = "", attrs: int = 0) -> int:
        """A detached bind of `source` (or sub_path beneath it), taken now: its slot."""
        slot = self.slots
        if slot >= 64:
            raise FsError("more than 64 bind mounts in one container")
        self.slots += 1
        self.add(what, "open", "-", source, None, attrs, sub_path or None, slot)
        return slot


# -- the pod's side: volumes and etc files ----------------------------------------------


def volume_path(pod_dir: Path, volume: Volume) -> Path:
    if volume.kind == "hostPath":
        return Path(volume.path)
    return pod_dir / "volumes" / volume.name


def hosts_file(
    spec: PodSpec, hostname: str, pod_ip: str | None, cluster_domain: str = "cluster.local"
) -> str:
    """kubelet's managed /etc/hosts (pkg/kubelet/kubelet_pods.go managedHostsFileContent):
    the pod's IP and hostname line (with a subdomain, its FQDN HOSTNAME.SUBDOMAIN.NAMESPACE
    .svc.CLUSTER_DOMAIN first), then `hostAliases` under their comment. Without a pod IP
    (no pod network) the hostname goes on 127.0.1.1, as Debian's installer does."""
    names = hostname
    if spec.subdomain:
        names = f"{hostname}.{spec.subdomain}.{spec.namespace}.svc.{cluster_domain}\t{hostname}"
    lines = [
        "# Kubernetes-managed hosts file.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
        f"{pod_ip or '127.0.1.1'}\t{names}",
    ]
    if spec.host_aliases:
        lines += ["", "# Entries added by HostAliases."]
        lines += [f"{ip}\t{chr(9).join(names)}" for ip, names in spec.host_aliases]
    return "\n".join(lines) + "\n"


def resolv_conf(spec: PodSpec, host_resolv: str) -> str:
    """dnsPolicy Default (and ClusterFirst, with no cluster DNS): the host's file, merged
    with dnsConfig; None: dnsConfig alone (kubelet's dns.go)."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if spec.dns_policy != "None":
        for line in host_resolv.splitlines():
            parts = line.split()
            if not parts or parts[0].startswith(("#", ";")):
                continue
            if parts[0] == "nameserver" and len(parts) > 1:
                servers.append(parts[1])
            elif parts[0] in ("search", "domain"):
                searches = parts[1:]
            elif parts[0] == "options":
                options += parts[1:]
    if spec.dns_config is not None:
        more_servers, more_searches, more_options = spec.dns_config
        servers += [s for s in more_servers if s not in servers]
        searches += [s for s in more_searches if s not in searches]
        for opt in more_options:
            name = opt.split(":", 1)[0]
            options = [o for o in options if o.split(":", 1)[0] != name] + [opt]
    out = [f"nameserver {s}" for s in servers[:3]]
    if searches:
        out.append("search " + " ".join(searches[:32]))
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out) + "\n"


def prepare_pod(
    spec: PodSpec,
    pod_dir: Path,
    run_dir: Path,
    hostname: str,
    mount_tmpfs: Callable[[str, str], None],
    pod_ip: str | None = None,
    cluster_domain: str = "cluster.local",
) -> None:
    """The pod's host side, once per sandbox: emptyDir directories (tmpfs for medium
    Memory, sized by sizeLimit) in `pod_dir`, hostPath checks and creation by type, the etc
    files and the /dev/shm directory in `run_dir`."""
    etc = run_dir / "etc"
    etc.mkdir(exist_ok=True, mode=0o755)
    _write_file(etc / "hosts", hosts_file(spec, hostname, pod_ip, cluster_domain).encode())
    _write_file(etc / "hostname", f"{hostname}\n".encode())
    # Only a container of an image gets the pod's resolv.conf and /dev/shm; the others see
    # the host's.
    if any(c.image is not None for c in spec.init_containers + spec.containers):
        try:
            host_resolv = Path("/etc/resolv.conf").read_text()
        except OSError:
            host_resolv = ""
        _write_file(etc / "resolv.conf", resolv_conf(spec, host_resolv).encode())
        (run_dir / "shm").mkdir(exist_ok=True, mode=0o1777)
        os.chmod(run_dir / "shm", 0o1777)
    for v in spec.volumes:
        path = volume_path(pod_dir, v)
        if v.kind == "emptyDir":
            if path.is_dir():
                continue
            path.mkdir(parents=True, mode=0o777)
            os.chmod(path, 0o777)  # kubelet: emptyDir is world-writable
            if v.medium == "Memory":
                size = f",size={v.size_limit}" if v.size_limit else ""
                mount_tmpfs(str(path), f"mode=1777{size}")
        else:
            check_host_path(v)


def _write_file(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write a small file whole, with two system calls and no Python file object; `mode`
    is set whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if mode is not None:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


def check_host_path(v: Volume) -> None:
    """hostPath `type` checks, with kubelet's messages (pkg/volume/hostpath)."""
    path = Path(v.path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if v.type == "DirectoryOrCreate" and st is None:
        path.mkdir(parents=True, mode=0o755)
        return
    if v.type == "FileOrCreate" and st is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        os.close(fd)
        return
    checks = {
        "Directory": (stat.S_ISDIR, "a directory"),
        "DirectoryOrCreate": (stat.S_ISDIR, "a directory"),
        "File": (stat.S_ISREG, "a file"),
        "FileOrCreate": (stat.S_ISREG, "a file"),
        "Socket": (stat.S_ISSOCK, "a socket file"),
        "CharDevice": (stat.S_ISCHR, "a character device"),
        "BlockDevice": (stat.S_ISBLK, "a block device"),
    }
    if v.type not in checks:
        return  # unset: no check, whatever is (or is not) there
    test, what = checks[v.type]
    if st is None:
        raise FsError(f"hostPath type check failed: {v.path} does not exist")
    if not test(st.st_mode):
        raise FsError(f"hostPath type check failed: {v.path} is not {what}")


def release_pod(spec: PodSpec, pod_dir: Path, umount: Callable[[str], None]) -> None:
    """Unmount what prepare_pod mounted on the host (before the pod dir is removed)."""
    for v in spec.volumes:
        if v.kind == "emptyDir" and v.medium == "Memory":
            with contextlib.suppress(OSError):
                umount(str(volume_path(pod_dir, v)))


def empty_dir_usage(pod_dir: Path, volume: Volume) -> int:
    """Bytes used in an emptyDir (du, as kubelet's eviction manager measures it)."""
    total = 0
    for dirpath, _dirs, files in os.walk(volume_path(pod_dir, volume)):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
    return total


# -- one container ------------------------------------------------------------------------


def container_dir(pod_dir: Path, name: str) -> Path:
    return pod_dir / "containers" / name


def prepare_container(
    pod_dir: Path, c: ContainerSpec, layers: list[Path] | None, overlay: bool
) -> Path | None:
    """A fresh writable layer for an image container (a restarted container starts from
    the image again, as a new container does in Kubernetes), and the termination-log file.
    Returns the root directory, None for a host-filesystem container."""
    cdir = container_dir(pod_dir, c.name)
    # On the host's filesystem the log is bound only over a file that is there (_plan_host).
    if layers is None and not os.path.isfile(c.termination_message_path):
        return None
    try:
        os.mkdir(cdir, 0o700)
    except FileExistsError:
        pass
    except FileNotFoundError:
        cdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_file(cdir / "termination-log", b"", 0o666)
    if layers is None:
        return None
    for sub in ("upper", "work", "rootfs"):
        p = cdir / sub
        if p.exists():
            shutil.rmtree(p)
        p.mkdir(mode=0o755)
    if not overlay:
        copy_layers(layers, cdir / "rootfs")
    return cdir / "rootfs"


def copy_layers(layers: list[Path], root: Path) -> None:
    """The fallback when the state dir's filesystem cannot hold overlayfs upper dirs: the
    layers copied into the container's own root, whiteouts applied, so that writes still
    stay in the container and the image is never changed."""
    for layer in layers:
        for dirpath, dirs, files in os.walk(layer):
            rel = Path(dirpath).relative_to(layer)
            dest = root / rel
            with contextlib.suppress(OSError):
                if os.getxattr(dirpath, "trusted.overlay.opaque") == b"y":
                    for entry in list(dest.iterdir()) if dest.is_dir() else []:
                        _remove(entry)
            for name in dirs + files:
                src = Path(dirpath) / name
                dst = dest / name
                st = os.lstat(src)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    _remove(dst)  # a whiteout
                    continue
                if stat.S_ISDIR(st.st_mode) and not dst.is_symlink() and dst.is_dir():
                    continue
                _remove(dst)
                if stat.S_ISDIR(st.st_mode):
                    dst.mkdir(mode=st.st_mode & 0o7777)
                elif stat.S_ISLNK(st.st_mode):
                    os.symlink(os.readlink(src), dst)
                elif stat.S_ISREG(st.st_mode):
                    shutil.copy2(src, dst, follow_symlinks=False)
                else:
                    os.mknod(dst, st.st_mode, st.st_rdev)
                os.lchown(dst, st.st_uid, st.st_gid)
            dirs[:] = [d for d in dirs if not (Path(dirpath) / d).is_symlink()]


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.exists():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def plan_container(
    spec: PodSpec,
    c: ContainerSpec,
    pod_dir: Path,
    run_dir: Path,
    root: Path | None,
    layers: list[Path] | None,
    overlay: bool,
    image: str = "",
) -> FsPlan:
    """The operations for container `c` (see the module docstring). `root`: its root dir
    for an image container (prepare_container), None to share the host's filesystem.
    `pod_dir` and `run_dir` are the pod's directories in the state and run dirs."""
    plan = FsPlan()
    etc = run_dir / "etc"
    cdir = container_dir(pod_dir, c.name)
    if root is None:
        return _plan_host(spec, c, pod_dir, etc, cdir, plan)
    assert layers is not None
    plan.add("make the container's mounts private", "mount", "/", None, None, MS_REC | MS_PRIVATE)
    if overlay:
        lower = ":".join(str(p) for p in reversed(layers))
        data = f"lowerdir={lower},upperdir={cdir / 'upper'},workdir={cdir / 'work'}"
        if len(data) > MOUNT_DATA_MAX:
            raise FsError(
                f"image {image} has too many layers for one overlay mount "
                f"({len(layers)} layers, {len(data)} bytes of options)"
            )
        plan.add(
            f"mount overlay root of image {image}",
            "mount",
            str(root),
            "overlay",
            "overlay",
            0,
            data,
        )
    else:
        plan.add(
            f"bind root of image {image}", "mount", str(root), str(root), None, MS_BIND | MS_REC
        )
    # Everything from the host is taken before pivot_root and attached after it.
    devices = {
        d: plan.open(f"bind /dev/{d}", f"/dev/{d}") for d in DEVICES if os.path.exists(f"/dev/{d}")
    }
    shm = plan.open(
        "bind /dev/shm", str(run_dir / "shm"), attrs=MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
    )
    etc_slots = {
        name: plan.open(f"bind /etc/{name}", str(etc / name))
        for name in ("hostname", "hosts", "resolv.conf")
    }
    mounts = [(m, *_open_volume(plan, spec, pod_dir, m)) for m in c.volume_mounts]
    log_slot = None
    if c.termination_message_policy in ("File", "FallbackToLogsOnError"):
        log_slot = plan.open(
            f"bind termination log at {c.termination_message_path}", str(cdir / "termination-log")
        )
    plan.add(f"pivot_root into the root of image {image}", "pivot", str(root))
    plan.add("mount proc at /proc", "mkdir", "/proc", arg=0o555)
    plan.add(
        "mount proc at /proc", "mount", "/proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC
    )
    plan.add("mount tmpfs at /dev", "mkdir", "/dev", arg=0o755)
    plan.add(
        "mount tmpfs at /dev",
        "mount",
        "/dev",
        "tmpfs",
        "tmpfs",
        MS_NOSUID | MS_NOEXEC,
        "mode=755,size=65536k",
    )
    for d, slot in devices.items():
        plan.add(f"bind /dev/{d}", "mkfile", f"/dev/{d}", arg=0o666)
        plan.add(f"bind /dev/{d}", "bind_fd", f"/dev/{d}", arg=slot)
    plan.add("mount devpts at /dev/pts", "mkdir", "/dev/pts", arg=0o755)
    plan.add(
        "mount devpts at /dev/pts",
        "mount",
        "/dev/pts",
        "devpts",
        "devpts",
        MS_NOSUID | MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620",
    )
    plan.add("bind /dev/shm", "mkdir", "/dev/shm", arg=0o1777)
    plan.add("bind /dev/shm", "bind_fd", "/dev/shm", arg=shm)
    for link, to in (
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ):
        plan.add(f"symlink /dev/{link}", "symlink", f"/dev/{link}", to)
    plan.add("mount sysfs at /sys", "mkdir", "/sys", arg=0o555)
    plan.add(
        "mount sysfs at /sys",
        "mount",
        "/sys",
        "sysfs",
        "sysfs",
        MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
    )
    for name, slot in etc_slots.items():
        plan.add(f"bind /etc/{name}", "mkfile", f"/etc/{name}", arg=0o644)
        plan.add(f"bind /etc/{name}", "bind_fd", f"/etc/{name}", arg=slot)
    for m, slot, what, is_file in mounts:
        plan.add(
            what, "mkfile" if is_file else "mkdir", m.mount_path, arg=0o644 if is_file else 0o755
        )
        plan.add(what, "bind_fd", m.mount_path, arg=slot)
    if log_slot is not None:
        what = f"bind termination log at {c.termination_message_path}"
        plan.add(what, "mkfile", c.termination_message_path, arg=0o666)
        plan.add(what, "bind_fd", c.termination_message_path, arg=log_slot)
    if c.read_only_root_filesystem:
        plan.add("make the root filesystem read-only", "setattr", "/", flags=MOUNT_ATTR_RDONLY)
    return plan


def _open_volume(
    plan: FsPlan, spec: PodSpec, pod_dir: Path, m: VolumeMount
) -> tuple[int, str, bool]:
    v = spec.volume(m.name)
    if v is None:
        raise FsError(f"volume {m.name!r} is not defined")
    where = f" (subPath {m.sub_path})" if m.sub_path else ""
    what = f"mount {v.kind} {v.name!r}{where} at {m.mount_path}"
    source = volume_path(pod_dir, v)
    if m.sub_path:
        make_sub_path(source, m.sub_path)
    slot = plan.open(what, str(source), m.sub_path, MOUNT_ATTR_RDONLY if m.read_only else 0)
    target = source / m.sub_path if m.sub_path else source
    is_file = target.exists() and not target.is_dir()
    return slot, what, is_file


def make_sub_path(volume: Path, sub_path: str) -> None:
    """kubelet creates a missing subPath directory. Walked one component at a time without
    following symlinks, so that it never creates anything outside the volume; a symlink on
    the way stops the walk (the child's openat2 RESOLVE_BENEATH then decides)."""
    fd = os.open(volume, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for comp in sub_path.split("/"):
            if comp in ("", "."):
                continue
            if comp == "..":
                raise FsError(f"subPath {sub_path!r} must not contain '..'")
            try:
                nfd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(comp, 0o755, dir_fd=fd)
                nfd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                return  # a symlink, or a file: left to the child's check
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)


def _plan_host(
    spec: PodSpec, c: ContainerSpec, pod_dir: Path, etc: Path, cdir: Path, plan: FsPlan
) -> FsPlan:
    """A container on the host's filesystem (mount namespace of its own, /proc mounted by
    mount_proc): /etc/hosts and /etc/hostname bound over the host's files when they exist,
    volumes at mount paths that must exist (creating one would change the host), the
    termination log only over an existing file, and readOnlyRootFilesystem as a recursive
    read-only view of the whole host tree (volumes, mounted after, keep their own mode)."""
    if c.read_only_root_filesystem:
        plan.add(
            "make the host's filesystem read-only", "setattr", "/", flags=MOUNT_ATTR_RDONLY, arg=1
        )
    for name in ("hosts", "hostname"):
        if os.path.isfile(f"/etc/{name}"):
            plan.add(f"bind /etc/{name}", "mount", f"/etc/{name}", str(etc / name), None, MS_BIND)
    for m in c.volume_mounts:
        slot, what, _is_file = _open_volume(plan, spec, pod_dir, m)
        if not os.path.lexists(m.mount_path):
            raise FsError(
                f"{what}: the mount path does not exist on the host, and a container without an "
                "image does not create it (that would change the host's filesystem)"
            )
        plan.add(what, "bind_fd", m.mount_path, arg=slot)
    if os.path.isfile(c.termination_message_path):
        slot = plan.open(
            f"bind termination log at {c.termination_message_path}", str(cdir / "termination-log")
        )
        plan.add(
            f"bind termination log at {c.termination_message_path}",
            "bind_fd",
            c.termination_message_path,
            arg=slot,
        )
    return plan


def read_termination_message(pod_dir: Path, name: str) -> str:
    """The container's termination-log file, cut to 4096 bytes (kubelet's limit)."""
    try:
        fd = os.open(container_dir(pod_dir, name) / "termination-log", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        data = os.read(fd, TERMINATION_MESSAGE_MAX)
    except OSError:
        return ""
    finally:
        os.close(fd)
    return data.decode(errors="replace")
