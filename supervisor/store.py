"""The state directory: every accepted pod, written atomically before it is acknowledged.

Layout (kubelet's /var/log/pods naming, so paths stay readable):
    STATE/pods/NAMESPACE_NAME_UID/pod.json        the accepted manifest
    STATE/pods/NAMESPACE_NAME_UID/infra           "PID STARTTIME" of the pod's infra
    STATE/pods/NAMESPACE_NAME_UID/CONTAINER/N.log CRI log of the container's Nth instance

Imports only errors and spec; pods are re-validated by the caller when loaded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidArgument
from .spec import PodSpec

# Names come validated as RFC 1123 labels and subdomains; a uid given in a manifest is
# free text in Kubernetes, so it is checked here before it becomes part of a path.
_SAFE_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class StoredPod:
    directory: Path
    manifest: dict[str, Any]


class Store:
    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.root = Path(state_dir)
        self.pods = self.root / "pods"
        self.pods.mkdir(parents=True, exist_ok=True, mode=0o700)

    def pod_dir(self, spec: PodSpec) -> Path:
        if not _SAFE_UID.match(spec.uid) or ".." in spec.uid:
            raise InvalidArgument(
                f"metadata.uid: Invalid value: {spec.uid!r}: must be letters, digits, "
                "'.', '_' or '-'",
                {"field": "metadata.uid"},
            )
        return self.pods / f"{spec.namespace}_{spec.name}_{spec.uid}"

    def save(self, spec: PodSpec) -> Path:
        """Persist the pod durably: write a temporary file, fsync, rename, fsync the dir."""
        directory = self.pod_dir(spec)
        directory.mkdir(exist_ok=True, mode=0o700)
        write_atomic(directory / "pod.json", json.dumps(spec.manifest, sort_keys=True).encode())
        _fsync_dir(self.pods)
        return directory

    def load_all(self) -> list[StoredPod]:
        found = []
        for entry in sorted(self.pods.iterdir()):
            path = entry / "pod.json"
            try:
                manifest = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue  # a pod whose creation never finished: nothing was acknowledged
            found.append(StoredPod(entry, manifest))
        return found

    def remove(self, directory: Path) -> None:
        shutil.rmtree(directory, ignore_errors=True)
        _fsync_dir(self.pods)


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
