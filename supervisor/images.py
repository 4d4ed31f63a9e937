"""The local image store: images imported from files, their layers unpacked once.

Layout under the state directory:
    STATE/images/images.json            NAME:TAG -> {id, layers, config, size, created}
    STATE/images/layers/HEX/            one unpacked layer; HEX is the sha256 of its
                                        uncompressed tar (the OCI diff_id), so a layer that
                                        two images share is unpacked once
    STATE/images/tmp/                   work space of imports in progress

`import_image` takes a rootfs directory, a rootfs tarball (optionally compressed), an OCI
image layout (directory or tar, as umoci, skopeo and buildah write it) or a `docker save`
archive. Blobs are checked against their sha256 digests where the format has them (OCI
manifest and config, layers' compressed digests and diff_ids; docker's config and diff_ids).
Layers are unpacked by `unpack_layer`, which never follows a path outside the layer's root:
absolute names and `..` are refused, no member is written through a symlink (every parent
is opened with O_NOFOLLOW), hard links must point inside, and OCI whiteouts become overlayfs
whiteouts (a 0/0 character device; `.wh..wh..opq` an opaque directory xattr).

Blocking work (reading and unpacking tars) runs in a thread pool executor, chosen over
chunking because tarfile's stream is synchronous; the event loop only waits on the future.
Imports only errors and store.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .errors import InvalidArgument, NotFound
from .store import write_atomic

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
# Image names as Kubernetes takes them: [registry/]path[:tag][@digest]; the tag defaults to
# "latest". Stored names are normalized (docker.io/library/ dropped) so that `busybox`,
# `busybox:latest` and `docker.io/library/busybox` are the same image.
_NAME_RE = re.compile(r"^[a-z0-9]+([._/:-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class ImageError(InvalidArgument):
    """An import that cannot be done: a bad archive, a digest mismatch, an unsafe member."""


def normalize(ref: str) -> str:
    """NAME:TAG with the default tag and without the default registry prefixes."""
    ref = ref.strip()
    for prefix in ("docker.io/library/", "docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
    if "@" in ref:
        ref = ref.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        ref += ":latest"
    return ref


def valid_name(ref: str) -> bool:
    return bool(_NAME_RE.match(ref)) and len(ref) <= 255


@dataclass
class Image:
    name: str  # NAME:TAG, normalized
    id: str  # sha256:HEX of the config (or of the layer list for a plain rootfs)
    layers: list[str]  # diff_id hex digests, lowest first
    config: dict[str, Any] = field(default_factory=dict)  # the OCI config's "config"
    size: int = 0
    created: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "layers": self.layers,
            "config": self.config,
            "size": self.size,
            "created": self.created,
        }


class ImageStore:
    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.root = Path(state_dir) / "images"
        self.layers_dir = self.root / "layers"
        self.tmp = self.root / "tmp"
        for d in (self.root, self.layers_dir, self.tmp):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()  # images.json: imports run in executor threads
        for leftover in self.tmp.iterdir():  # an import that a crash interrupted
            _remove_tree(leftover)

    # -- the index --------------------------------------------------------------------------

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data: dict[str, dict[str, Any]] = json.loads((self.root / "images.json").read_bytes())
        except FileNotFoundError:
            return {}
        return data

    def list(self) -> list[Image]:
        return [Image(**v) for _k, v in sorted(self._read().items())]

    def get(self, ref: str) -> Image | None:
        entry = self._read().get(normalize(ref))
        return Image(**entry) if entry is not None else None

    def layer_path(self, digest: str) -> Path:
        return self.layers_dir / digest

    def remove(self, ref: str) -> Image:
        """Forget NAME:TAG, and delete the layers that no other image uses."""
        name = normalize(ref)
        with self._lock:
            index = self._read()
            entry = index.pop(name, None)
            if entry is None:
                raise NotFound(f'image "{ref}" not found', {"image": ref})
            write_atomic(self.root / "images.json", json.dumps(index, sort_keys=True).encode())
            used = {layer for v in index.values() for layer in v["layers"]}
        for layer in entry["layers"]:
            if layer not in used:
                _remove_tree(self.layer_path(layer))
        return Image(**entry)

    def _add(self, image: Image) -> None:
        with self._lock:
            index = self._read()
            index[image.name] = image.to_json()
            write_atomic(self.root / "images.json", json.dumps(index, sort_keys=True).encode())

    # -- import -----------------------------------------------------------------------------

    def import_image(self, ref: str, path: str | os.PathLike[str]) -> Image:
        """Import `path` as NAME:TAG (blocking: run it in an executor)."""
        name = normalize(ref)
        if not valid_name(name):
            raise ImageError(
                f"invalid image name {ref!r}: lower-case letters, digits and '._/-', then "
                "an optional :TAG",
                {"image": ref},
            )
        src = Path(path)
        if not src.exists():
            raise ImageError(f"import {src}: no such file or directory", {"path": str(src)})
        if not (src.is_dir() or src.is_file()):
            # A device or a FIFO never ends (/dev/zero) or blocks the import forever.
            raise ImageError(f"import {src}: not a directory or a regular file", {"path": str(src)})
        try:
            image = self._import(name, src)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
            # index.json, manifest.json and configs are the caller's JSON: a missing key or
            # a list where a map belongs is a bad image, not a fault of supd.
            what = f"missing key {e}" if isinstance(e, KeyError) else str(e)
            raise ImageError(f"import {src}: malformed image metadata: {what}") from None
        image.created = time.time()
        image.size = sum(_tree_size(self.layer_path(d)) for d in image.layers)
        self._add(image)
        return image

    def _import(self, name: str, src: Path) -> Image:
        with tempfile.TemporaryDirectory(dir=self.tmp) as work:
            if src.is_dir():
                if (src / "oci-layout").exists():
                    image = self._import_oci(name, _DirSource(src))
                elif (src / "manifest.json").exists() and (src / "repositories").exists():
                    image = self._import_docker(name, _DirSource(src))
                else:
                    tar_path = Path(work) / "rootfs.tar"
                    with tarfile.open(tar_path, "w") as tar:
                        tar.add(src, arcname=".")
                    image = self._import_rootfs_tar(name, tar_path)
            elif tarfile.is_tarfile(src):
                names = _tar_top_names(src)
                if "oci-layout" in names:
                    image = self._import_oci(name, _TarSource(src, Path(work)))
                elif "manifest.json" in names:
                    image = self._import_docker(name, _TarSource(src, Path(work)))
                else:
                    image = self._import_rootfs_tar(name, src)
            else:
                raise ImageError(
                    f"import {src}: not a directory or a tar archive (plain, gzip, bzip2 or xz)",
                    {"path": str(src)},
                )
        return image

    def _import_rootfs_tar(self, name: str, path: Path) -> Image:
        with open(path, "rb") as f:
            digest = self._layer(_decompressed(f), None)
        return Image(name, "sha256:" + hashlib.sha256(digest.encode()).hexdigest(), [digest])

    def _import_oci(self, name: str, src: _Source) -> Image:
        """OCI image layout (image-spec layout.md): index.json -> manifest -> config, layers."""
        index = json.loads(src.read("index.json"))
        manifests = index.get("manifests") or []
        if not manifests:
            raise ImageError("OCI layout: index.json lists no manifest")
        chosen = manifests[0]
        tag = name.rsplit(":", 1)[1]
        for m in manifests:  # prefer the manifest whose ref.name annotation is the tag asked
            if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag:
                chosen = m
        manifest = json.loads(src.blob(chosen["digest"]))
        if manifest.get("manifests"):  # an image index: take the first (amd64, linux) one
            plats = manifest["manifests"]
            pick = next(
                (
                    m
                    for m in plats
                    if (m.get("platform") or {}).get("architecture") in ("amd64", None)
                ),
                plats[0],
            )
            manifest = json.loads(src.blob(pick["digest"]))
        config_raw = src.blob(manifest["config"]["digest"])
        config = json.loads(config_raw)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        layers = manifest.get("layers") or []
        if diff_ids and len(diff_ids) != len(layers):
            raise ImageError("OCI image: config's diff_ids do not match the manifest's layers")
        digests = []
        for i, layer in enumerate(layers):
            expected = _hex(diff_ids[i]) if diff_ids else None
            if expected and self.layer_path(expected).is_dir():
                digests.append(expected)  # unpacked once; the blob was checked then
                continue
            with src.open_blob(layer["digest"]) as f:
                digests.append(self._layer(_decompressed(f), expected))
        return Image(name, manifest["config"]["digest"], digests, _run_config(config))

    def _import_docker(self, name: str, src: _Source) -> Image:
        """`docker save` (image-spec-v1.2): manifest.json -> Config and Layers."""
        entries = json.loads(src.read("manifest.json"))
        if not entries:
            raise ImageError("docker archive: manifest.json is empty")
        entry = entries[0]
        for e in entries:
            if name in [normalize(t) for t in e.get("RepoTags") or []]:
                entry = e
        config_name = entry["Config"]
        config_raw = src.read(config_name)
        stem = Path(config_name).name.removesuffix(".json")
        if _HEX_RE.match(stem) and hashlib.sha256(config_raw).hexdigest() != stem:
            raise ImageError(f"docker archive: config {config_name} does not match its digest")
        config = json.loads(config_raw)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        digests = []
        for i, layer_name in enumerate(entry["Layers"]):
            expected = _hex(diff_ids[i]) if i < len(diff_ids) else None
            if expected and self.layer_path(expected).is_dir():
                digests.append(expected)
                continue
            with src.open(layer_name) as f:
                digests.append(self._layer(_decompressed(f), expected))
        image_id = "sha256:" + hashlib.sha256(config_raw).hexdigest()
        return Image(name, image_id, digests, _run_config(config))

    def _layer(self, stream: Any, expected: str | None) -> str:
        """Unpack one layer tar stream; returns its diff_id hex (checked when expected)."""
        hashing = _HashingReader(stream)
        work = Path(tempfile.mkdtemp(dir=self.tmp, prefix="layer-"))
        try:
            unpack_layer(hashing, work)
            hashing.drain()
            digest = hashing.hexdigest()
            if expected is not None and digest != expected:
                raise ImageError(
                    f"layer sha256:{digest} does not match its diff_id sha256:{expected}"
                )
            target = self.layer_path(digest)
            try:
                os.rename(work, target)
            except OSError:
                if not target.is_dir():
                    raise
            else:
                os.chmod(target, 0o755)
            return digest
        finally:
            if work.exists():
                _remove_tree(work)


# -- sources: a directory or a tar holding an OCI layout or a docker archive --------------


class _Source:
    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()

    def open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def open_blob(self, digest: str) -> Any:
        """A blob of an OCI layout, checked against its digest while it is read."""
        hexd = _hex(digest)
        return _VerifiedReader(self.open(f"blobs/sha256/{hexd}"), hexd)

    def blob(self, digest: str) -> bytes:
        with self.open_blob(digest) as f:
            data = f.read()
            f.read()  # EOF: the check
        return data


class _DirSource(_Source):
    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self, name: str) -> IO[bytes]:
        """`name` beneath the layout, reached without following a symlink on the way: a
        link in the layout (`blobs -> /`) must not let an import read what the caller
        could not (supd reads as root)."""
        rel = _safe_name(name)
        if not rel:
            raise ImageError(f"{name!r} leaves the image's root")
        root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            with _parent_fd(root_fd, rel, create=False) as pfd:
                # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                fd = os.open(rel.rsplit("/", 1)[-1], flags, dir_fd=pfd)
        except FileNotFoundError:
            raise ImageError(f"{name}: no such file in the image") from None
        except OSError as e:
            raise ImageError(f"{name}: not a regular file in the image (a link?)") from e
        finally:
            os.close(root_fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ImageError(f"{name}: no such file in the image")
        return os.fdopen(fd, "rb")


class _TarSource(_Source):
    """Members of a tar: extracted (regular files only) into `work` on first use."""

    def __init__(self, path: Path, work: Path) -> None:
        self.path = path
        self.work = work / "archive"
        self.work.mkdir()
        with tarfile.open(path, "r:*") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                rel = _safe_name(m.name)
                if rel is None:
                    raise ImageError(f"archive member {m.name!r} leaves the archive's root")
                dest = self.work / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                assert src is not None
                with src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)

    def open(self, name: str) -> IO[bytes]:
        return open(_inside(self.work, name), "rb")


def _inside(root: Path, name: str) -> Path:
    rel = _safe_name(name)
    if rel is None:
        raise ImageError(f"{name!r} leaves the image's root")
    path = root / rel
    if not path.is_file() or path.is_symlink():
        raise ImageError(f"{name}: no such file in the image")
    return path


def _tar_top_names(path: Path) -> set[str]:
    names = set()
    with tarfile.open(path, "r:*") as tar:
        for m in tar:
            rel = _safe_name(m.name)
            if rel:
                names.add(rel.split("/", 1)[0])
            if len(names) > 64:
                break
    return names


def _run_config(config: Any) -> dict[str, Any]:
    """The image config's `config` (Cmd, Entrypoint, Env, User, WorkingDir), checked to be
    of the shapes a pod start reads (image-spec config.md), so that a bad image fails its
    import rather than every pod that uses it."""
    run = (config.get("config") if isinstance(config, dict) else None) or {}
    if not isinstance(run, dict):
        raise ImageError("image config: 'config' must be an object")
    for key in ("Cmd", "Entrypoint", "Env"):
        value = run.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise ImageError(f"image config: config.{key} must be a list of strings")
    for key in ("User", "WorkingDir"):
        if run.get(key) is not None and not isinstance(run[key], str):
            raise ImageError(f"image config: config.{key} must be a string")
    return run


def _hex(digest: str) -> str:
    algo, _, value = digest.partition(":")
    if algo != "sha256" or not _HEX_RE.match(value):
        raise ImageError(f"unsupported digest {digest!r}: only sha256 is supported")
    return value


class _HashingReader(io.RawIOBase):
    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.h = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.f.read(len(b))
        self.h.update(data)
        b[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.f.read(_CHUNK):
            pass

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.h.update(data)
        return data

    def hexdigest(self) -> str:
        return self.h.hexdigest()


class _VerifiedReader(_HashingReader):
    """Raises ImageError at EOF when the content does not match `expected`."""

    def __init__(self, f: IO[bytes], expected: str) -> None:
        super().__init__(f)
        self.expected = expected

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        if not data or size < 0:
            got = self.hexdigest()
            if got != self.expected:
                raise ImageError(f"blob sha256:{self.expected} has digest sha256:{got}")
        return data

    def close(self) -> None:
        self.f.close()
        super().close()


def _decompressed(f: Any) -> Any:
    """`f`, or a decompressing reader by its magic number (gzip, bzip2, xz)."""
    head = f.read(6)
    rest = _Prefixed(head, f)
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=rest)
    if head[:3] == b"BZh":
        return bz2.BZ2File(rest)
    if head[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(rest)  # type: ignore[arg-type]
    if head[:4] == b"\x28\xb5\x2f\xfd":
        raise ImageError("zstd-compressed layers are not supported: use gzip or none")
    return rest


class _Prefixed(io.RawIOBase):
    def __init__(self, head: bytes, f: IO[bytes]) -> None:
        self.head = head
        self.f = f

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size < 0:
                data, self.head = self.head + self.f.read(), b""
                return data
            data, self.head = self.head[:size], self.head[size:]
            return data
        return self.f.read(size)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


# -- unpacking a layer -------------------------------------------------------------------


def _safe_name(name: str) -> str | None:
    """A member name relative to the root, or None when it is absolute after `./` or has
    a `..` component (tar members never need either)."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") and not name.startswith("./"):
        # Absolute names: refused as the OCI spec's "must not" and tar's own warning say.
        return None
    if any(p == ".." for p in parts):
        return None
    return "/".join(parts)


@contextlib.contextmanager
def _parent_fd(root_fd: int, rel: str, create: bool = True) -> Iterator[int]:
    """An fd of the directory that holds `rel`, reached from `root_fd` one component at a
    time with O_NOFOLLOW: a symlink anywhere on the way is refused, never followed."""
    fd = os.dup(root_fd)
    try:
        for comp in rel.split("/")[:-1]:
            try:
                nfd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(comp, 0o755, dir_fd=fd)
                nfd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as e:
                raise ImageError(
                    f"layer member {rel!r}: {comp!r} is not a directory (a link?)"
                ) from e
            os.close(fd)
            fd = nfd
        yield fd
    finally:
        os.close(fd)


def _remove_at(dfd: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
        try:
            for entry in os.listdir(sub):
                _remove_at(sub, entry)
        finally:
            os.close(sub)
        os.rmdir(name, dir_fd=dfd)
    else:
        os.unlink(name, dir_fd=dfd)


def unpack_layer(stream: Any, root: Path) -> None:
    """Unpack the tar `stream` into `root` (see the module docstring for the rules)."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for m in tar:
                rel = _safe_name(m.name)
                if rel is None:
                    raise ImageError(f"layer member {m.name!r} leaves the layer's root")
                if rel == "":
                    continue
                with _parent_fd(root_fd, rel) as pfd:
                    base = rel.rsplit("/", 1)[-1]
                    if base == OPAQUE_MARKER:
                        os.setxattr(pfd, "trusted.overlay.opaque", b"y")
                        continue
                    if base.startswith(WHITEOUT_PREFIX):
                        gone = base[len(WHITEOUT_PREFIX) :]
                        if gone in ("", ".", ".."):
                            raise ImageError(f"layer member {m.name!r}: bad whiteout")
                        _remove_at(pfd, gone)
                        os.mknod(gone, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
                        continue
                    if not (m.isdir() and _is_dir_at(pfd, base)):
                        _remove_at(pfd, base)
                    _create_member(tar, m, rel, base, pfd, root_fd)
                    if m.isdir():
                        dirs.append((rel, m))
        # Directory modes and times last: a read-only directory must still take its files.
        for rel, m in reversed(dirs):
            with _parent_fd(root_fd, rel, create=False) as pfd:
                base = rel.rsplit("/", 1)[-1]
                os.chmod(base, m.mode & 0o7777, dir_fd=pfd, follow_symlinks=False)
                os.utime(base, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise ImageError(f"unpack layer: {e}") from e
    finally:
        os.close(root_fd)


def _is_dir_at(dfd: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _create_member(
    tar: tarfile.TarFile, m: tarfile.TarInfo, rel: str, base: str, pfd: int, root_fd: int
) -> None:
    if m.isdir():
        if not _is_dir_at(pfd, base):
            os.mkdir(base, 0o700, dir_fd=pfd)
    elif m.isreg():
        fd = os.open(
            base,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=pfd,
        )
        with os.fdopen(fd, "wb") as out:
            src = tar.extractfile(m)
            assert src is not None
            shutil.copyfileobj(src, out, _CHUNK)
    elif m.issym():
        # The target is kept as written: it is resolved inside the container's root at run
        # time (after pivot_root), never while unpacking.
        os.symlink(m.linkname, base, dir_fd=pfd)
        with contextlib.suppress(OSError):
            os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        return
    elif m.islnk():
        target = _safe_name(m.linkname)
        if not target:
            raise ImageError(
                f"layer member {m.name!r}: hard link to {m.linkname!r} leaves the root"
            )
        with _parent_fd(root_fd, target, create=False) as tfd:
            os.link(
                target.rsplit("/", 1)[-1],
                base,
                src_dir_fd=tfd,
                dst_dir_fd=pfd,
                follow_symlinks=False,
            )
        return
    elif m.ischr() or m.isblk():
        kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
        os.mknod(base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
    elif m.isfifo():
        os.mkfifo(base, 0o600, dir_fd=pfd)
    else:
        return  # sparse and other GNU extensions come through as regular files already
    os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
    if not m.isdir():
        os.chmod(base, m.mode & 0o7777, dir_fd=pfd, follow_symlinks=False)
        os.utime(base, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def _remove_tree(path: Path) -> None:
    """rmtree that also removes read-only directories (layers keep image modes)."""

    def onerror(func: Any, p: str, exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            func(p)

    shutil.rmtree(path, onerror=onerror)


# -- what an image gives a container -------------------------------------------------------


def resolve_argv(
    config: dict[str, Any], command: tuple[str, ...] | None, args: tuple[str, ...] | None
) -> list[str]:
    """Kubernetes's rule (container.md "Notes on command and args"): command replaces the
    Entrypoint and drops Cmd; args alone replace Cmd; neither: Entrypoint + Cmd."""
    entry = list(config.get("Entrypoint") or [])
    cmd = list(config.get("Cmd") or [])
    if command:
        return list(command) + list(args or [])
    if args:
        return entry + list(args)
    return entry + cmd


def parse_user(user: str, rootfs: list[Path]) -> tuple[int, int] | None:
    """The image config's User (uid, uid:gid, name, name:group) as numbers, looked up in
    the image's /etc/passwd and /etc/group (the topmost layer that has them). None: root,
    or an empty User."""
    if not user:
        return None
    name, _, group = user.partition(":")

    def lookup(file: str, key: str, field_no: int) -> int | None:
        if key.isdigit():
            return int(key)
        for layer in reversed(rootfs):
            path = layer / "etc" / file
            if path.is_file() and not path.is_symlink():
                for line in path.read_text(errors="replace").splitlines():
                    parts = line.split(":")
                    if len(parts) > field_no and parts[0] == key:
                        return int(parts[field_no])
                return None
        return None

    uid = lookup("passwd", name, 2)
    if uid is None:
        raise ImageError(f"image user {name!r} is not in the image's /etc/passwd")
    if group:
        gid = lookup("group", group, 2)
        if gid is None:
            raise ImageError(f"image group {group!r} is not in the image's /etc/group")
    else:
        gid = lookup("passwd", name, 3) if not name.isdigit() else 0
        gid = gid or 0
    return uid, gid
