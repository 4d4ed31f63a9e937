"""Filesystem isolation (issue 4): the child's filesystem operations, the image store, and
real pods checked from inside their containers. Images are built here: a busybox-static
rootfs, as a directory, a tarball, an OCI layout (written in Python, and by umoci where it
is installed) and a docker-save archive."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from conftest import Supd, require_root

from supervisor import _native
from supervisor.images import ImageError, ImageStore, resolve_argv
from supervisor.rootfs import MS_BIND, MS_PRIVATE, MS_REC

BUSYBOX = Path("/bin/busybox")


def busybox_rootfs(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in (
        "sh",
        "cat",
        "ls",
        "echo",
        "touch",
        "mount",
        "id",
        "ln",
        "cp",
        "mkdir",
        "sleep",
        "test",
        "dd",
        "stat",
        "grep",
        "hostname",
        "rm",
        "true",
    ):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1234:4321::/:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\napp:x:4321:\n")
    (root / "etc" / "image-file").write_text("from the image\n")
    return root


def tar_bytes(root: Path | None = None, extra: list[tuple[tarfile.TarInfo, bytes]] = ()) -> bytes:  # type: ignore[assignment]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        if root is not None:
            tar.add(root, arcname=".")
        for info, data in extra:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def member(
    name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o644
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    return info


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_oci_layout(
    out: Path, layers: list[bytes], config: dict[str, Any], tag: str = "latest"
) -> None:
    """An OCI image layout as umoci/skopeo write it: gzip layers, config, manifest, index."""
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (out / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    descs = []
    diff_ids = []
    for raw in layers:
        gz = gzip.compress(raw)
        (blobs / sha(gz)).write_bytes(gz)
        descs.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": f"sha256:{sha(gz)}",
                "size": len(gz),
            }
        )
        diff_ids.append(f"sha256:{sha(raw)}")
    cfg = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    (blobs / sha(cfg)).write_bytes(cfg)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{sha(cfg)}",
                "size": len(cfg),
            },
            "layers": descs,
        }
    ).encode()
    (blobs / sha(manifest)).write_bytes(manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": f"sha256:{sha(manifest)}",
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (out / "index.json").write_text(json.dumps(index))


def write_docker_archive(
    out: Path, layers: list[bytes], config: dict[str, Any], repo_tag: str
) -> None:
    cfg = json.dumps(
        {
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sha(r)}" for r in layers]},
        }
    ).encode()
    extra = [(member(f"{sha(cfg)}.json"), cfg)]
    names = []
    for raw in layers:
        names.append(f"{sha(raw)}/layer.tar")
        extra.append((member(names[-1]), raw))
    extra.append(
        (
            member("manifest.json"),
            json.dumps(
                [{"Config": f"{sha(cfg)}.json", "RepoTags": [repo_tag], "Layers": names}]
            ).encode(),
        )
    )
    extra.append((member("repositories"), b"{}"))
    out.write_bytes(tar_bytes(None, extra))


# -- native: the child's filesystem operations -----------------------------------------------


def spawn_fs(ops: list[Any], argv: list[str] | None = None) -> tuple[int, str]:
    r, w = os.pipe()
    _pid, pidfd = _native.spawn(
        argv or ["/bin/true"],
        clone_flags=_native.CLONE_NEWNS | _native.CLONE_NEWPID,
        fs=ops,
        stdout=w,
        stderr=w,
        env=["PATH=/bin"],
    )
    os.close(w)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    import select

    select.select([pidfd], [], [])
    status = _native.waitid_pidfd(pidfd)
    os.close(pidfd)
    assert status is not None
    return _native.exit_code(status), out.decode()


PRIVATE = ("mount", "/", None, None, MS_REC | MS_PRIVATE, None, 0)


def test_fs_step_failure_names_the_operation(tmp_path: Path) -> None:
    require_root()
    with pytest.raises(_native.SpawnError) as info:
        _native.spawn(
            ["/bin/true"],
            clone_flags=_native.CLONE_NEWNS,
            fs=[PRIVATE, ("mount", str(tmp_path / "missing"), "tmpfs", "tmpfs", 0, None, 0)],
        )
    assert info.value.errno == errno.ENOENT
    assert info.value.step == "mount"
    assert str(info.value) == f"mount {tmp_path / 'missing'}: No such file or directory"
    # The runtime's descriptions name what failed, as a person reads it.
    err = _native.spawn_error(
        256 + 1, errno.ENOENT, "sh", None, ["x", "mount emptyDir 'cache' at /data"]
    )
    assert str(err) == "mount emptyDir 'cache' at /data: No such file or directory"


@pytest.mark.parametrize("sub_path", ["../..", "esc", "esc/passwd", "up/../../x"])
def test_open_beneath_refuses_escapes(tmp_path: Path, sub_path: str) -> None:
    require_root()
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "esc").symlink_to("/etc")
    (vol / "up").mkdir()
    with pytest.raises(_native.SpawnError) as info:
        _native.spawn(
            ["/bin/true"],
            clone_flags=_native.CLONE_NEWNS,
            fs=[PRIVATE, ("open", "-", str(vol), None, 0, sub_path, 0)],
        )
    assert info.value.errno in (errno.EXDEV, errno.ELOOP, errno.ENOENT)


def test_pivot_root_hides_the_host_and_binds_survive(tmp_path: Path) -> None:
    require_root()
    root = busybox_rootfs(tmp_path / "root")
    vol = tmp_path / "vol"
    (vol / "sub").mkdir(parents=True)
    (vol / "sub" / "f").write_text("volume\n")
    ops = [
        PRIVATE,
        ("mount", str(root), str(root), None, MS_BIND | MS_REC, None, 0),
        ("open", "-", str(vol), None, 1, "sub", 0),  # MOUNT_ATTR_RDONLY
        ("pivot", str(root), None, None, 0, None, 0),
        ("mkdir", "/proc", None, None, 0, None, 0o555),
        ("mount", "/proc", "proc", "proc", 0, None, 0),
        ("mkdir", "/v", None, None, 0, None, 0o755),
        ("bind_fd", "/v", None, None, 0, None, 0),
    ]
    code, out = spawn_fs(
        ops,
        ["/bin/sh", "-c", f"cat /v/f; ls {tmp_path} 2>&1; touch /v/x 2>&1; cat /proc/1/cmdline"],
    )
    assert code == 0
    assert "volume\n" in out
    assert "No such file or directory" in out  # the host's tmp_path is gone
    assert "Read-only file system" in out
    assert not (vol / "sub" / "x").exists()


def test_too_many_operations_and_bad_ones_are_refused() -> None:
    with pytest.raises(ValueError, match="more than 128"):
        _native.encode_fs([("mkdir", "/x", None, None, 0, None, 0)] * 129)
    with pytest.raises(ValueError, match="unknown"):
        _native.encode_fs([("chmod", "/x", None, None, 0, None, 0)])
    with pytest.raises(ValueError, match="slot"):
        _native.encode_fs([("open", "-", "/x", None, 0, None, 64)])
    with pytest.raises(ValueError, match="CLONE_NEWNS"):
        _native.encode_start(
            1,
            ["true"],
            [],
            None,
            clone_flags=0,
            mount_proc=False,
            fs=[("mkdir", "/x", None, None, 0, None, 0)],
        )


def test_copy_fallback_keeps_the_guarantees(tmp_path: Path) -> None:
    """Without overlayfs the container gets a copy of its layers (whiteouts applied): the
    same plan, run by the same child code, with writes kept out of the image."""
    require_root()
    from supervisor import rootfs
    from supervisor.spec import ContainerSpec, PodSpec

    store = ImageStore(tmp_path / "state")
    base = tar_bytes(busybox_rootfs(tmp_path / "r"))
    top = tar_bytes(None, [(member("etc/.wh.image-file"), b"")])
    write_oci_layout(tmp_path / "oci", [base, top], {})
    image = store.import_image("fb", tmp_path / "oci")
    layers = [store.layer_path(d) for d in image.layers]
    c = ContainerSpec(name="c", image="fb")
    spec = PodSpec(name="p", containers=(c,))
    pod_dir = tmp_path / "pod"
    pod_dir.mkdir()
    rootfs.prepare_pod(spec, pod_dir, pod_dir, "p", lambda target, data: None)
    root = rootfs.prepare_container(pod_dir, c, layers, overlay=False)
    plan = rootfs.plan_container(spec, c, pod_dir, pod_dir, root, layers, False, "fb")
    code, out = spawn_fs(
        plan.ops, ["/bin/sh", "-c", f"ls /etc; ls {tmp_path} 2>&1; echo w > /bin/new"]
    )
    assert code == 0, out
    assert "image-file" not in out and "passwd" in out and "No such file" in out
    assert (root / "bin" / "new").exists()
    assert not any((layer / "bin" / "new").exists() for layer in layers)


# -- the image store ---------------------------------------------------------------------------


def test_import_rootfs_dir_tarball_oci_and_docker(tmp_path: Path) -> None:
    require_root()
    store = ImageStore(tmp_path / "state")
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    a = store.import_image("bb", rootfs)
    assert a.name == "bb:latest" and len(a.layers) == 1
    (tmp_path / "bb.tar.gz").write_bytes(gzip.compress(tar_bytes(rootfs)))
    b = store.import_image("bb:gz", tmp_path / "bb.tar.gz")
    assert b.layers == a.layers  # same content, unpacked once
    base = tar_bytes(rootfs)
    top = tar_bytes(None, [(member("etc/.wh.image-file"), b""), (member("etc/new"), b"new\n")])
    config = {
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["echo hi"],
        "Env": ["A=1", "PATH=/bin"],
        "WorkingDir": "/etc",
        "User": "app",
    }
    write_oci_layout(tmp_path / "oci", [base, top], config, tag="v1")
    c = store.import_image("bb:oci", tmp_path / "oci")
    assert c.layers[0] == sha(base) and c.layers[1] == sha(top)
    assert c.config["Entrypoint"] == ["/bin/sh", "-c"]
    whiteout = store.layer_path(sha(top)) / "etc" / "image-file"
    assert whiteout.is_char_device() and os.stat(whiteout).st_rdev == 0
    with tarfile.open(tmp_path / "oci.tar", "w") as tar:
        tar.add(tmp_path / "oci", arcname=".")
    assert store.import_image("bb:ocitar", tmp_path / "oci.tar").layers == c.layers
    write_docker_archive(tmp_path / "docker.tar", [base, top], config, "bb:docker")
    d = store.import_image("docker.io/library/bb:docker", tmp_path / "docker.tar")
    assert d.name == "bb:docker" and d.layers == c.layers
    assert [i.name for i in store.list()] == [
        "bb:docker",
        "bb:gz",
        "bb:latest",
        "bb:oci",
        "bb:ocitar",
    ]
    for name in ("bb:docker", "bb:gz", "bb:latest", "bb:oci"):
        store.remove(name)
    assert store.layer_path(sha(top)).is_dir()  # bb:ocitar still uses it
    store.remove("bb:ocitar")
    assert list(store.layers_dir.iterdir()) == []


def test_umoci_layout_imports(tmp_path: Path) -> None:
    require_root()
    umoci = shutil.which("umoci")
    if umoci is None:
        if os.environ.get("CI"):
            pytest.fail("umoci is not installed, and CI is set: .ci/run installs it")
        pytest.skip("umoci is not installed")
    layout = tmp_path / "layout"
    subprocess.run([umoci, "init", "--layout", str(layout)], check=True)
    subprocess.run([umoci, "new", "--image", f"{layout}:t"], check=True)
    bundle = tmp_path / "bundle"
    subprocess.run([umoci, "unpack", "--image", f"{layout}:t", str(bundle)], check=True)
    busybox_rootfs(bundle / "rootfs" / "x")
    subprocess.run([umoci, "repack", "--image", f"{layout}:t", str(bundle)], check=True)
    subprocess.run(
        [umoci, "config", "--image", f"{layout}:t", "--config.cmd", "/x/bin/sh"], check=True
    )
    store = ImageStore(tmp_path / "state")
    image = store.import_image("u:t", layout)
    assert image.config["Cmd"] == ["/x/bin/sh"]
    assert (store.layer_path(image.layers[-1]) / "x" / "bin" / "busybox").is_file()


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([(member("../evil"), b"x")], "leaves the layer's root"),
        ([(member("/abs"), b"x")], "leaves the layer's root"),
        (
            [(member("link", tarfile.SYMTYPE, "/etc"), b""), (member("link/passwd"), b"x")],
            "not a directory",
        ),
        ([(member("hard", tarfile.LNKTYPE, "../../etc/passwd"), b"")], "leaves the root"),
    ],
)
def test_unsafe_layers_are_refused(tmp_path: Path, members: list[Any], match: str) -> None:
    require_root()
    store = ImageStore(tmp_path / "state")
    (tmp_path / "bad.tar").write_bytes(tar_bytes(None, members))
    with pytest.raises(ImageError, match=match):
        store.import_image("bad", tmp_path / "bad.tar")
    assert not (tmp_path / "evil").exists()
    assert list(store.layers_dir.iterdir()) == [] and list(store.tmp.iterdir()) == []


def test_digest_mismatch_is_refused(tmp_path: Path) -> None:
    require_root()
    write_oci_layout(tmp_path / "oci", [tar_bytes(None, [(member("f"), b"x")])], {})
    blob = next(
        p
        for p in (tmp_path / "oci" / "blobs" / "sha256").iterdir()
        if p.read_bytes()[:2] == b"\x1f\x8b"
    )
    blob.write_bytes(gzip.compress(tar_bytes(None, [(member("f"), b"tampered")])))
    with pytest.raises(ImageError, match="digest"):
        ImageStore(tmp_path / "state").import_image("x", tmp_path / "oci")


def test_command_and_args_with_the_image_config() -> None:
    cfg = {"Entrypoint": ["ep"], "Cmd": ["c1"]}
    assert resolve_argv(cfg, None, None) == ["ep", "c1"]
    assert resolve_argv(cfg, None, ("a",)) == ["ep", "a"]
    assert resolve_argv(cfg, ("cmd",), None) == ["cmd"]
    assert resolve_argv(cfg, ("cmd",), ("a",)) == ["cmd", "a"]


# -- real pods -----------------------------------------------------------------------------


def mounts_and_files(supd: Supd) -> tuple[list[str], list[str]]:
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    files = sorted(
        str(p.relative_to(supd.state_dir))
        for root in (supd.state_dir / "pods", supd.run_dir / "pods")
        for p in root.rglob("*")
    )
    return mounts, files


def status_of(obj: dict[str, Any], name: str) -> dict[str, Any]:
    for st in obj["status"].get("initContainerStatuses", []) + obj["status"]["containerStatuses"]:
        if st["name"] == name:
            return st
    raise KeyError(name)


def terminated(name: str) -> Any:
    return lambda o: "terminated" in status_of(o, name)["state"]


def waiting_reason(name: str, reason: str) -> Any:
    return lambda o: status_of(o, name)["state"].get("waiting", {}).get("reason") == reason


def log(supd: Supd, pod: str, container: str) -> str:
    return supd.ctl("logs", pod, "-c", container).stdout


@pytest.fixture
def busybox_image(supd: Supd, tmp_path: Path) -> str:
    supd.ctl("image", "import", "busybox:test", str(busybox_rootfs(tmp_path / "bbroot")))
    return "busybox:test"


WAR_POD = """
apiVersion: v1
kind: Pod
metadata: {name: tomcat}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: webapps, emptyDir: {}}
  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 1Mi}}
  initContainers:
  - name: war
    image: IMAGE
    command:
    - sh
    - -c
    - echo war > /app/sample.war; mkdir /app/sub; echo s > /app/sub/f;
      echo $HOSTNAME > /dev/termination-log
    volumeMounts: [{name: webapps, mountPath: /app}]
  containers:
  - name: tomcat
    image: IMAGE
    command: [sh, -c]
    args:
    - |
      cat /webapps/sample.war /sub/f /etc/image-file
      ls HOSTDIR 2>&1
      echo changed > /etc/image-file && cat /etc/image-file
      touch /webapps/x 2>&1
      dd if=/dev/zero of=/mem/big bs=1k count=2048 2>&1 | grep -o 'No space left on device'
      hostname; cat /etc/hostname; grep tomcat /etc/hosts; grep alias /etc/hosts
      echo done > /dev/termination-log
    volumeMounts:
    - {name: webapps, mountPath: /webapps, readOnly: true}
    - {name: webapps, mountPath: /sub, subPath: sub}
    - {name: mem, mountPath: /mem}
  hostAliases:
  - {ip: 10.1.2.3, hostnames: [alias.example]}
"""


def test_init_container_fills_an_empty_dir_for_the_main_one(
    supd: Supd, busybox_image: str, tmp_path: Path
) -> None:
    before = mounts_and_files(supd)
    supd.apply(WAR_POD.replace("IMAGE", busybox_image).replace("HOSTDIR", str(tmp_path)))
    obj = supd.watch_until("tomcat", terminated("tomcat"))
    st = status_of(obj, "tomcat")["state"]["terminated"]
    assert st["exitCode"] == 0, st
    assert st["message"] == "done\n"
    assert status_of(obj, "war")["state"]["terminated"]["message"] == "tomcat\n"
    out = log(supd, "tomcat", "tomcat")
    assert out.startswith("war\ns\nfrom the image\n")
    assert f"ls: {tmp_path}: No such file or directory" in out  # the host's files are not there
    assert "changed\n" in out
    assert "Read-only file system" in out
    assert "No space left on device" in out
    assert "tomcat\ntomcat\n" in out and "\ttomcat\n" in out and "10.1.2.3\talias.example\n" in out
    # Writes stayed in the container: the image layer is unchanged.
    layer = next((supd.state_dir / "images" / "layers").iterdir())
    assert (layer / "etc" / "image-file").read_text() == "from the image\n"
    supd.ctl("delete", "pod", "tomcat")
    assert mounts_and_files(supd) == before


def test_sub_path_escape_is_refused(supd: Supd, busybox_image: str) -> None:
    manifest = f"""
apiVersion: v1
kind: Pod
metadata: {{name: esc}}
spec:
  restartPolicy: Never
  volumes: [{{name: v, emptyDir: {{}}}}]
  initContainers:
  - name: plant
    image: {busybox_image}
    command: [sh, -c, "ln -s /etc /v/esc"]
    volumeMounts: [{{name: v, mountPath: /v}}]
  containers:
  - name: victim
    image: {busybox_image}
    command: [cat, /x/passwd]
    volumeMounts: [{{name: v, mountPath: /x, subPath: esc}}]
"""
    supd.apply(manifest)
    obj = supd.watch_until("esc", waiting_reason("victim", "CreateContainerError"))
    message = status_of(obj, "victim")["state"]["waiting"]["message"]
    assert message == (
        "create container victim: mount emptyDir 'v' (subPath esc) at /x: Invalid cross-device link"
    )


def test_missing_image_waits_then_starts_once_imported(supd: Supd, tmp_path: Path) -> None:
    supd.apply("""
apiVersion: v1
kind: Pod
metadata: {name: later}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: "later:1"}
""")
    obj = supd.watch_until("later", waiting_reason("c", "ErrImageNeverPull"))
    assert "supctl image import later:1 PATH" in status_of(obj, "c")["state"]["waiting"]["message"]
    root = busybox_rootfs(tmp_path / "r")
    write_oci_layout(
        tmp_path / "oci",
        [tar_bytes(root)],
        {
            "Cmd": ["/bin/sh", "-c", "id -u; pwd; echo $A"],
            "User": "app",
            "WorkingDir": "/etc",
            "Env": ["A=from-image"],
        },
    )
    supd.ctl("image", "import", "later:1", str(tmp_path / "oci"))
    obj = supd.watch_until("later", terminated("c"))
    assert status_of(obj, "c")["state"]["terminated"]["exitCode"] == 0
    assert log(supd, "later", "c") == "1234\n/etc\nfrom-image\n"
    res = supd.ctl("image", "rm", "later:1", check=False)
    assert res.returncode == 1 and "in use by pod default/later" in res.stderr
    supd.ctl("delete", "pod", "later")
    supd.ctl("image", "rm", "later:1")
    assert "later" not in supd.ctl("image", "ls").stdout


def test_read_only_root_and_host_filesystem_container(
    supd: Supd, busybox_image: str, tmp_path: Path
) -> None:
    host_dir = tmp_path / "hostvol"
    supd.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: ro}}
spec:
  restartPolicy: Never
  volumes:
  - {{name: h, hostPath: {{path: {host_dir}, type: DirectoryOrCreate}}}}
  containers:
  - name: img
    image: {busybox_image}
    command: [sh, -c, "touch /x 2>&1; echo ok > /h/from-img"]
    securityContext: {{readOnlyRootFilesystem: true}}
    volumeMounts: [{{name: h, mountPath: /h}}]
  - name: host
    command:
    - sh
    - -c
    - touch {tmp_path}/y 2>&1; cat /etc/hostname; echo ok > {tmp_path}/hostvol/from-host
    securityContext: {{readOnlyRootFilesystem: true}}
    volumeMounts: [{{name: h, mountPath: {tmp_path}}}]
""")
    supd.watch_until("ro", lambda o: terminated("img")(o) and terminated("host")(o))
    assert "Read-only file system" in log(supd, "ro", "img")
    host_out = log(supd, "ro", "host")
    assert "ro\n" in host_out  # /etc/hostname bound over the host's, which is unchanged
    assert (host_dir / "from-img").read_text() == "ok\n"
    assert not (tmp_path / "y").exists()
    supd.ctl("delete", "pod", "ro")
    assert (host_dir / "from-img").exists()  # hostPath is left alone


def test_host_container_mount_path_must_exist(supd: Supd) -> None:
    supd.apply("""
apiVersion: v1
kind: Pod
metadata: {name: nopath}
spec:
  volumes: [{name: v, emptyDir: {}}]
  containers:
  - name: c
    command: [sleep, "100"]
    volumeMounts: [{name: v, mountPath: /no/such/dir}]
""")
    obj = supd.watch_until("nopath", waiting_reason("c", "CreateContainerError"))
    assert (
        "the mount path does not exist on the host"
        in status_of(obj, "c")["state"]["waiting"]["message"]
    )
