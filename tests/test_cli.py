"""supctl and supd's flags against a real daemon: the paths users type."""

from __future__ import annotations

import json
import socket
import stat
import struct
from pathlib import Path

import yaml
from conftest import Supd, alive
from test_pods import pod_yaml


def test_manifests_dir_starts_pods_at_boot(supd: Supd, tmp_path: Path) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "a.yaml").write_text(pod_yaml("boot-a", "c=sleep 1000"))
    (boot / "notes.txt").write_text("not a manifest")
    supd.stop()
    supd.start("--manifests", str(boot))
    supd.wait("boot-a")
    assert supd.pod("boot-a")["status"]["phase"] == "Running"


def test_delete_from_file_without_waiting_then_wait_for_delete(supd: Supd, tmp_path: Path) -> None:
    manifest = tmp_path / "p.yaml"
    manifest.write_text(pod_yaml("df", "c=sleep 1000") + "---\n" + pod_yaml("dg", "c=sleep 1000"))
    supd.ctl("apply", "-f", str(manifest))
    supd.wait("df")
    supd.wait("dg")
    infras = [supd.infra_of("df"), supd.infra_of("dg")]
    out = supd.ctl("delete", "-f", str(manifest), "--wait=false").stdout
    assert out.splitlines() == ['pod "df" deleted', 'pod "dg" deleted']
    for name in ("df", "dg"):
        assert supd.ctl("wait", f"pod/{name}", "--for=delete", "--timeout=30s").returncode == 0
    assert not any(alive(pid) for pid in infras)


def test_wait_times_out_with_exit_1(supd: Supd) -> None:
    supd.apply(pod_yaml("never-ready", "c=exit 1", restart="Never"))
    res = supd.ctl(
        "wait", "pod/never-ready", "--for=condition=Ready", "--timeout=0.5s", check=False
    )
    assert res.returncode == 1
    assert "timed out waiting for the condition on pods/never-ready" in res.stderr


def test_output_formats(supd: Supd) -> None:
    supd.apply(pod_yaml("fmt", "c=sleep 1000"))
    supd.wait("fmt")
    as_yaml = yaml.safe_load(supd.ctl("get", "pod", "fmt", "-o", "yaml").stdout)
    as_json = supd.pod("fmt")
    assert as_yaml["status"]["phase"] == as_json["status"]["phase"] == "Running"
    assert as_json["apiVersion"] == "v1" and as_json["kind"] == "Pod"
    assert supd.ctl("get", "pods", "-o", "name").stdout == "pod/fmt\n"
    listing = json.loads(supd.ctl("get", "pods", "-o", "json").stdout)
    assert listing["kind"] == "List" and len(listing["items"]) == 1
    table = supd.ctl("get", "pods").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[:4] == ["fmt", "1/1", "Running", "0"]


def test_describe_counts_repeated_events(supd: Supd) -> None:
    supd.apply(pod_yaml("desc", "c=exit 2"))
    supd.watch_until("desc", lambda o: o["status"]["containerStatuses"][0]["restartCount"] >= 3)
    text = supd.ctl("describe", "pod", "desc").stdout
    assert "Name:         desc" in text
    assert "CrashLoopBackOff" in text or "Error" in text
    backoff = [ln for ln in text.splitlines() if "Warning  BackOff" in ln]
    assert len(backoff) == 1 and "(x" in backoff[0]


def test_warnings_for_ignored_fields(supd: Supd) -> None:
    res = supd.apply(pod_yaml("warn", "c=sleep 1", extra="  nodeSelector: {disk: ssd}\n"))
    assert "spec.nodeSelector: ignored" in res.stderr


def test_unsupported_field_is_refused(supd: Supd) -> None:
    manifest = pod_yaml("later", "c=sleep 1").replace(
        "command:", "volumeDevices: [{name: v, devicePath: /dev/v}]\n    command:"
    )
    res = supd.ctl("apply", "-f", "-", input=manifest.encode(), check=False)
    assert res.returncode == 2
    assert "spec.containers[0].volumeDevices: Forbidden: not supported yet" in res.stderr


def test_socket_is_private_and_garbage_does_not_hurt_supd(supd: Supd) -> None:
    assert stat.S_IMODE(supd.socket.stat().st_mode) == 0o600
    supd.apply(pod_yaml("steady", "c=sleep 1000"))
    for junk in (b"\xff" * 64, struct.pack(">I", 1 << 30) + b"x", b"\x00\x00\x00\x02\xc1\xc1"):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(supd.socket))
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(10)
            while s.recv(4096):
                pass
    supd.wait("steady")  # still serving, the pod untouched
    assert supd.proc is not None and supd.proc.poll() is None


def test_version(supd: Supd) -> None:
    out = supd.ctl("version").stdout
    assert "Server Version: supd" in out and "Protocol Version: 1" in out
