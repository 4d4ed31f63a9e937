"""End to end: a real supd, real pods, real namespaces; checked through `supctl get -o json`
and through the kernel's own view (/proc, namespace inodes, zombies)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    SUPD,
    Supd,
    alive,
    proc_children,
    require_root,
    until_dir_changes,
    until_gone,
    zombies_of,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def pod_yaml(
    name: str,
    *containers: str,
    restart: str = "Always",
    extra: str = "",
    init: tuple[str, ...] = (),
) -> str:
    def block(items: tuple[str, ...]) -> str:
        return "".join(
            f"  - name: {n}\n    command: [sh, -c, {json.dumps(cmd)}]\n"
            for n, cmd in (c.split("=", 1) for c in items)
        )

    text = (
        f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n"
        f"  restartPolicy: {restart}\n  terminationGracePeriodSeconds: 2\n{extra}"
    )
    if init:
        text += "  initContainers:\n" + block(init)
    return text + "  containers:\n" + block(containers)


def ns(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def nspid(pid: int) -> list[int]:
    """The process's pid in each PID namespace it is in, outermost first (proc(5))."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError("no NSpid line")


def status_of(obj: dict[str, Any], name: str) -> dict[str, Any]:
    for st in obj["status"].get("initContainerStatuses", []) + obj["status"]["containerStatuses"]:
        if st["name"] == name:
            return st
    raise KeyError(name)


def test_pod_runs_in_its_own_namespaces(supd: Supd) -> None:
    supd.apply(pod_yaml("web", "main=sleep 1000", "side=sleep 1000"))
    supd.wait("web")
    obj = supd.pod("web")
    assert obj["status"]["phase"] == "Running"
    assert {c["type"]: c["status"] for c in obj["status"]["conditions"]}["Ready"] == "True"
    infra = supd.infra_of("web")
    for kind in ("net", "ipc", "uts"):
        assert ns(infra, kind) != ns("self", kind)
    containers = proc_children(infra)
    assert len(containers) == 2
    a, b = containers
    # Containers share the pod's net/ipc/uts, and each has its own mount and PID namespace.
    for kind in ("net", "ipc", "uts"):
        assert ns(a, kind) == ns(b, kind) == ns(infra, kind)
    for kind in ("mnt", "pid"):
        assert len({ns(a, kind), ns(b, kind), ns(infra, kind)}) == 3
    # Each container is PID 1 of its PID namespace, with a /proc that shows it so.
    assert nspid(a)[-1] == 1


def test_containers_talk_over_localhost_and_hostname_is_pod_name(supd: Supd) -> None:
    server = (
        'server=exec /usr/bin/python3 -c "import socket;s=socket.socket();'
        "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
        "s.bind(('127.0.0.1',9000));s.listen();c,_=s.accept();c.sendall(b'pong')\""
    )
    client = (
        'client=exec /usr/bin/python3 -c "import socket,time\n'
        "for i in range(200):\n"
        "  try: s=socket.create_connection(('127.0.0.1',9000)); break\n"
        "  except OSError: time.sleep(0.02)\n"
        "print(s.recv(4).decode(), open('/proc/sys/kernel/hostname').read().strip())\""
    )
    supd.apply(pod_yaml("talk", server, client, restart="Never"))
    obj = supd.watch_until("talk", lambda o: o["status"]["phase"] in ("Succeeded", "Failed"))
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert supd.ctl("logs", "talk", "-c", "client").stdout == "pong talk\n"


def test_init_containers_run_in_order_before_containers(supd: Supd) -> None:
    supd.apply(
        pod_yaml("init", "main=echo main; sleep 1000", init=("first=echo one", "second=echo two"))
    )
    supd.wait("init")
    obj = supd.pod("init")
    for name in ("first", "second"):
        t = status_of(obj, name)["state"]["terminated"]
        assert (t["exitCode"], t["reason"]) == (0, "Completed")
    first = status_of(obj, "first")["state"]["terminated"]["finishedAt"]
    second = status_of(obj, "second")["state"]["terminated"]["startedAt"]
    assert first <= second
    events = supd.ctl("events", "--for", "pod/init").stdout
    assert events.index("Started container first") < events.index("Created container second")
    assert events.index("Created container second") < events.index("Created container main")
    assert supd.ctl("logs", "init", "-c", "second").stdout == "two\n"


def test_crash_loop_backoff_and_restart_count(supd: Supd) -> None:
    supd.apply(pod_yaml("crash", "c=echo boom; exit 3"))
    obj = supd.watch_until(
        "crash",
        lambda o: (
            status_of(o, "c")["restartCount"] >= 2 and "waiting" in status_of(o, "c")["state"]
        ),
    )
    st = status_of(obj, "c")
    assert st["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert st["lastState"]["terminated"]["exitCode"] == 3
    assert st["lastState"]["terminated"]["reason"] == "Error"
    assert obj["status"]["phase"] == "Running"  # Always: restarting counts as Running
    assert "BackOff" in supd.ctl("events", "--for", "pod/crash").stdout
    assert supd.ctl("logs", "crash", "--previous").stdout == "boom\n"


def test_never_restart_fails_pod_with_exit_code(supd: Supd) -> None:
    supd.apply(pod_yaml("fail", "c=exit 5", restart="Never"))
    obj = supd.watch_until("fail", lambda o: o["status"]["phase"] == "Failed")
    t = status_of(obj, "c")["state"]["terminated"]
    assert (t["exitCode"], t["reason"]) == (5, "Error")
    assert status_of(obj, "c")["restartCount"] == 0


def test_signal_exit_is_128_plus_n(supd: Supd) -> None:
    # In a PID namespace of its own the container is PID 1, which the kernel shields from
    # its own default-action signals; in the pod's shared namespace the infra is PID 1.
    extra = "  shareProcessNamespace: true\n"
    # `$$` in a command is Kubernetes's escape for `$`: the shell's `$$` is written `$$$$`.
    supd.apply(pod_yaml("sig", "c=kill -USR1 $$$$", restart="Never", extra=extra))
    obj = supd.watch_until("sig", lambda o: o["status"]["phase"] == "Failed")
    t = status_of(obj, "c")["state"]["terminated"]
    assert t["exitCode"] == 128 + signal.SIGUSR1
    assert t["signal"] == signal.SIGUSR1


def test_start_error_reports_127_and_126(supd: Supd, tmp_path: Path) -> None:
    noexec = tmp_path / "not-executable"
    noexec.write_text("#!/bin/sh\n")
    manifest = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  restartPolicy: Never\n"
        "  containers:\n  - {name: missing, command: [/nonexistent/nginx]}\n"
        f"  - {{name: noexec, command: [{noexec}]}}\n"
    )
    supd.apply(manifest)
    obj = supd.watch_until("bad", lambda o: o["status"]["phase"] == "Failed")
    missing = status_of(obj, "missing")["state"]["terminated"]
    assert (missing["reason"], missing["exitCode"]) == ("StartError", 127)
    assert missing["message"] == "exec /nonexistent/nginx: No such file or directory"
    noexec_t = status_of(obj, "noexec")["state"]["terminated"]
    assert (noexec_t["reason"], noexec_t["exitCode"]) == ("StartError", 126)
    assert "Permission denied" in noexec_t["message"]


def test_invalid_manifest_names_the_field_and_creates_nothing(supd: Supd) -> None:
    bad = pod_yaml("ok", "a=true") + "---\n" + pod_yaml("dup", "a=true", "a=true")
    res = supd.ctl("apply", "-f", "-", input=bad.encode(), check=False)
    assert res.returncode == 2
    assert 'spec.containers[1].name: Duplicate value: "a"' in res.stderr
    assert json.loads(supd.ctl("get", "pods", "-o", "json").stdout)["items"] == []
    res = supd.ctl("apply", "-f", "-", input=b"kind: Pod\nspec: {containers: [}\n", check=False)
    assert res.returncode == 2 and "error" in res.stderr


def test_apply_unchanged_conflict_and_force(supd: Supd) -> None:
    one = pod_yaml("same", "c=sleep 1000")
    assert "pod/same created" in supd.apply(one).stdout
    assert "pod/same unchanged" in supd.apply(one).stdout
    two = pod_yaml("same", "c=sleep 2000")
    res = supd.ctl("apply", "-f", "-", input=two.encode(), check=False)
    assert res.returncode == 1 and "--force" in res.stderr
    old_infra = supd.infra_of("same")
    assert "pod/same configured" in supd.apply(two, "--force").stdout
    assert not alive(old_infra)
    supd.wait("same")
    assert supd.pod("same")["spec"]["containers"][0]["command"][-1] == "sleep 2000"


def test_delete_stops_everything_and_leaves_no_process(supd: Supd) -> None:
    stubborn = "c=trap '' TERM; sleep 1000 & wait"
    supd.apply(pod_yaml("gone", stubborn, "d=sleep 1000"))
    supd.wait("gone")
    infra = supd.infra_of("gone")
    pids = [infra, *proc_children(infra)]
    pids += [g for c in pids[1:] for g in proc_children(c)]
    assert len(pids) >= 4
    res = supd.ctl("delete", "pod", "gone", "--grace-period", "1")
    assert 'pod "gone" deleted' in res.stdout
    assert [p for p in pids if alive(p)] == []
    assert supd.ctl("get", "pod", "gone", check=False).returncode == 1
    assert supd.proc is not None and zombies_of(supd.proc.pid) == []
    assert list((supd.state_dir / "pods").iterdir()) == []


def test_a_deleted_pods_directory_serves_the_next_pod_and_none_of_its_logs(supd: Supd) -> None:
    """Recycling (store.py): the next pod gets the deleted pod's directory, manifest file
    and log file, the same inodes, emptied: its logs and status are its own."""
    supd.apply(pod_yaml("old", "c=echo old line", restart="Never"))
    supd.watch_until("old", lambda o: o["status"]["phase"] == "Succeeded")
    (old_dir,) = (supd.state_dir / "pods").iterdir()
    inodes = [(old_dir / p).stat().st_ino for p in ("", "pod.json", "c", "c/0.log")]
    supd.ctl("delete", "pod", "old")
    spare = supd.state_dir / "spare"
    assert until_dir_changes(spare, lambda: any(spare.iterdir()))
    supd.apply(pod_yaml("new", "main=echo new line", restart="Never"))
    obj = supd.watch_until("new", lambda o: o["status"]["phase"] == "Succeeded")
    (new_dir,) = (supd.state_dir / "pods").iterdir()
    assert new_dir.name.startswith("default_new_")
    assert [(new_dir / p).stat().st_ino for p in ("", "pod.json", "main", "main/0.log")] == inodes
    assert supd.ctl("logs", "new").stdout == "new line\n"
    assert json.loads((new_dir / "pod.json").read_text())["metadata"]["name"] == "new"
    assert status_of(obj, "main")["restartCount"] == 0
    # Nothing of the old pod's is left; the pod's record (status.json) may be on its way.
    left = {p.name for p in new_dir.iterdir()} - {"status.json", ".status.json.tmp"}
    assert left == {"main", "pod.json"}
    assert [p.name for p in (new_dir / "main").iterdir()] == ["0.log"]


def test_graceful_stop_gets_sigterm(supd: Supd, tmp_path: Path) -> None:
    # The shell says when its trap is set: a pod is Ready from its exec on, and a SIGTERM
    # before the trap would be ignored (the shell is PID 1 of its PID namespace).
    note = tmp_path / "note"
    supd.apply(
        pod_yaml(
            "term",
            f"c=trap 'echo got TERM > {note}; exit 0' TERM; echo trapped; sleep 1000 & wait",
        )
    )
    supd.wait("term")
    follow = supd.follow_logs("term")
    assert follow.stdout is not None
    assert follow.stdout.readline() == "trapped\n"
    supd.ctl("delete", "pod", "term")
    assert note.read_text() == "got TERM\n"


def test_logs_are_cri_formatted_and_tail_works(supd: Supd) -> None:
    # One stream per container: the order of records across two pipes is not defined.
    supd.apply(
        pod_yaml(
            "logs", "c=echo one; echo two; printf three; sleep 1000", "e=echo oops >&2; sleep 1000"
        )
    )
    supd.wait("logs")
    # Reading the followed streams until all output is there is the sync point: no sleeps.
    whole_c, whole_e = (supd.follow_logs("logs", "-c", name) for name in ("c", "e"))
    assert whole_c.stdout is not None and whole_e.stdout is not None
    assert whole_c.stdout.read(len("one\ntwo\nthree")) == "one\ntwo\nthree"
    assert whole_e.stdout.readline() == "oops\n"
    follow = supd.follow_logs("logs", "-c", "c", "--tail", "1")
    (c_log,) = (supd.state_dir / "pods").glob("default_logs_*/c/0.log")
    (e_log,) = (supd.state_dir / "pods").glob("default_logs_*/e/0.log")
    records = [ln.split(b" ", 3) for ln in c_log.read_bytes().splitlines()]
    assert [r[1:] for r in records] == [
        [b"stdout", b"F", b"one"],
        [b"stdout", b"F", b"two"],
        [b"stdout", b"P", b"three"],
    ]
    assert [r[1:] for r in (ln.split(b" ", 3) for ln in e_log.read_bytes().splitlines())] == [
        [b"stderr", b"F", b"oops"]
    ]
    ts = records[0][0].decode()
    assert len(ts) == len("2026-11-22T10:00:00.123456789Z") and ts.endswith("Z")
    assert supd.ctl("logs", "logs", "-c", "c").stdout == "one\ntwo\nthree"
    assert supd.ctl("logs", "logs", "-c", "c", "--tail", "1").stdout == "two\nthree"
    assert supd.ctl("logs", "logs", "-c", "e").stdout == "oops\n"
    stamped = supd.ctl("logs", "logs", "-c", "e", "--timestamps").stdout
    assert stamped == f"{e_log.read_text().split()[0]} oops\n"
    supd.ctl("delete", "pod", "logs", "--grace-period", "0")
    rest, _ = follow.communicate(timeout=30)
    assert rest == "two\nthree"
    for proc in (whole_c, whole_e):
        assert proc.wait(timeout=30) == 0


@pytest.mark.parametrize("flags", [(), ("--sync-state",)], ids=["flusher", "sync-state"])
def test_pods_come_back_after_supd_restart(supd: Supd, flags: tuple[str, ...]) -> None:
    if flags:  # the manifest fsynced before the answer instead of right after
        supd.stop()
        supd.start(*flags)
    supd.apply(pod_yaml("persist", "c=sleep 1000"))
    supd.wait("persist")
    old = supd.infra_of("persist")
    (container,) = proc_children(old)
    before = supd.pod("persist")["status"]["containerStatuses"][0]
    supd.stop(signal.SIGKILL)
    supd.start()
    supd.wait("persist")
    # Taken over, not restarted: the same infra, the same process, the same status.
    assert supd.pod("persist")["status"]["containerStatuses"][0] == before
    assert supd.infra_of("persist") == old and proc_children(old) == [container]


def test_shared_process_namespace(supd: Supd) -> None:
    extra = "  shareProcessNamespace: true\n"
    supd.apply(pod_yaml("shared", "a=sleep 1000", "b=sleep 1000 & sleep 1000", extra=extra))
    supd.wait("shared")
    infra = supd.infra_of("shared")
    a, b = proc_children(infra)
    assert ns(a, "pid") == ns(b, "pid") == ns(infra, "pid_for_children")
    assert nspid(infra)[-1] == 1


def test_orphans_in_shared_namespace_are_reaped(supd: Supd) -> None:
    extra = "  shareProcessNamespace: true\n"
    supd.apply(
        pod_yaml(
            "orphans", "a=for i in 1 2 3 4 5; do (sleep 0.01 &) ; done; sleep 1000", extra=extra
        )
    )
    supd.wait("orphans")
    infra = supd.infra_of("orphans")
    # The grandchildren were reparented to the infra (PID 1 of the pod) and reaped there.
    supd.ctl("delete", "pod", "orphans", "--grace-period", "0")
    assert not alive(infra)


def test_supd_run_example_pod() -> None:
    require_root()
    res = subprocess.run(
        [SUPD, "run", str(EXAMPLES / "hello-pod.yaml")], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "hello/prepare | prepare: pod hello initialised" in out
    assert "hello/client | client: first run, exiting 1 to show a restart" in out
    assert "hello/client | client: got hello from the server, request 2" in out


def test_supd_run_exit_code_is_the_failing_container() -> None:
    require_root()
    res = subprocess.run(
        [SUPD, "run", "-"],
        input=pod_yaml("x", "c=exit 7", restart="Never"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 7
    res = subprocess.run(
        [SUPD, "run", "-"], input="kind: Pod\n", capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 2 and "apiVersion" in res.stderr


def test_no_fd_zombie_or_process_leak_across_pods(supd: Supd) -> None:
    assert supd.proc is not None
    fds = Path(f"/proc/{supd.proc.pid}/fd")

    def held() -> list[str]:
        """supd's open files, but for the directories its store thread is deleting or
        emptying for reuse, and pods/, which it opens for a moment to fsync it."""
        found = []
        pods = str(supd.state_dir / "pods")
        for fd in fds.iterdir():
            with contextlib.suppress(FileNotFoundError):  # closed meanwhile
                target = os.readlink(fd)
                if "/trash/" not in target and target != pods:
                    found.append(target)
        return sorted(found)

    supd.apply(pod_yaml("warm", "c=true", restart="Never"))
    supd.watch_until("warm", lambda o: o["status"]["phase"] == "Succeeded")
    supd.ctl("delete", "pod", "warm")
    before = len(held())
    for round_ in range(3):
        docs = "---\n".join(
            pod_yaml(f"leak{round_}-{i}", "c=sleep 1000", "d=exit 1") for i in range(5)
        )
        supd.apply(docs)
        for i in range(5):
            supd.wait(f"leak{round_}-{i}", "condition=PodReadyToStartContainers")
        infras = [supd.infra_of(f"leak{round_}-{i}") for i in range(5)]
        for i in range(5):
            supd.ctl("delete", "pod", f"leak{round_}-{i}", "--grace-period", "0")
        assert not any(alive(p) for p in infras)
    # The pool of infras made ahead refills after each pod: a pooled infra is recorded in
    # RUN/pool once it serves, so the pool is settled when two records are there.
    pool = supd.run_dir / "pool"
    assert until_dir_changes(pool, lambda: len(list(pool.iterdir())) == 2)
    assert len(held()) == before, held()
    assert zombies_of(supd.proc.pid) == []
    # supd's one child is its infra factory (zygote), which reaps the infras it cloned; what
    # it still has are the pooled infras (recorded in RUN/pool), no pod's.
    children = proc_children(supd.proc.pid)
    assert [Path(f"/proc/{p}/comm").read_text().strip() for p in children] == ["supd-zygote"]
    pooled = {int(p.name) for p in pool.iterdir()}
    assert set(proc_children(children[0])) == pooled and len(pooled) == 2
    assert zombies_of(children[0]) == []


def test_pooled_infras_are_named_and_die_with_supd_unless_a_pod_took_them(supd: Supd) -> None:
    """Infras made ahead of their pods (RUN/pool) take the pod's hostname when used. Those
    no pod took die with supd (their parent-death signal); the one a pod took lives on."""
    pool = supd.run_dir / "pool"
    assert until_dir_changes(pool, lambda: len(list(pool.iterdir())) == 2)
    pooled = {int(p.name) for p in pool.iterdir()}
    assert len(pooled) == 2 and all(alive(p) for p in pooled)
    supd.apply(pod_yaml("named", "c=sleep 1000"))
    supd.wait("named")
    infra = supd.infra_of("named")
    assert infra in pooled  # it came from the pool
    out = subprocess.run(
        ["nsenter", "-t", str(infra), "-u", "hostname"], capture_output=True, text=True
    )
    assert out.stdout.strip() == "named", out.stderr
    refilled = lambda: {int(p.name) for p in pool.iterdir()} - {infra}  # noqa: E731
    assert until_dir_changes(pool, lambda: len(refilled()) == 2)
    left = {int(p.name) for p in pool.iterdir()}
    assert infra not in left and len(left) == 2
    supd.stop(signal.SIGKILL)
    assert until_gone(left)
    assert alive(infra)  # the pod's, told to outlive supd when the pod took it
    supd.start()  # and the next supd takes the pod over, its infra and all
    supd.wait("named")
    assert supd.infra_of("named") == infra


def test_supd_carries_on_when_its_infra_factory_is_killed(supd: Supd) -> None:
    """The zygote is a process like any other: SIGKILLed, it is replaced, pods already
    running keep running, and new pods start."""
    supd.apply(pod_yaml("before", "c=sleep 1000"))
    supd.wait("before")
    infra = supd.infra_of("before")
    assert supd.proc is not None
    (zygote,) = [
        p
        for p in proc_children(supd.proc.pid)
        if Path(f"/proc/{p}/comm").read_text().strip() == "supd-zygote"
    ]
    os.kill(zygote, signal.SIGKILL)
    assert until_gone([zygote])
    for i in range(3):  # more than the pool holds: some infras come from a new zygote
        supd.apply(pod_yaml(f"after{i}", "c=sleep 1000"))
    for i in range(3):
        supd.wait(f"after{i}")
    assert alive(infra) and supd.pod("before")["status"]["containerStatuses"][0]["ready"]
    names = [Path(f"/proc/{p}/comm").read_text().strip() for p in proc_children(supd.proc.pid)]
    assert names.count("supd-zygote") == 1 and zygote not in proc_children(supd.proc.pid)
    assert zombies_of(supd.proc.pid) == []


def test_a_watch_gets_each_pod_added_once_and_its_last_state_before_deleted(supd: Supd) -> None:
    """Watch frames go out once per step that changed the pod (a new pod's ADDED carries
    what the same request did to its sandbox): ADDED first and once, the terminal state
    last before DELETED, none after it. (Two frames in a row may look alike: a step whose
    change does not show, such as a timestamp within the same second.)"""
    import asyncio

    from supervisor.client import Client

    async def main() -> dict[str, list[tuple[str, dict[str, Any]]]]:
        client = await Client.connect(str(supd.socket))
        frames: dict[str, list[tuple[str, dict[str, Any]]]] = {"w1": [], "w2": []}
        try:
            stream = client.open_stream("watch", namespace="default")  # before the applies
            for name in frames:
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "command": ["true"]}],
                    },
                }
                await client.call("apply", manifests=[pod], source="test")
            gone: set[str] = set()
            deleting: set[str] = set()
            async with asyncio.timeout(30):
                async for change in stream:
                    obj = change["object"]
                    name = obj["metadata"]["name"]
                    frames[name].append((change["type"], obj))
                    if obj["status"]["phase"] == "Succeeded" and name not in deleting:
                        deleting.add(name)
                        await client.call("delete", namespace="default", name=name)
                    if change["type"] == "DELETED":
                        gone.add(name)
                        if gone == set(frames):
                            return frames
        finally:
            await client.close()
        raise AssertionError("the watch ended")

    for name, seen in asyncio.run(main()).items():
        kinds = [kind for kind, _ in seen]
        assert kinds[0] == "ADDED" and kinds.count("ADDED") == 1, (name, kinds)
        assert kinds[-1] == "DELETED" and kinds.count("DELETED") == 1, (name, kinds)
        last = seen[-2][1]["status"]
        assert last["phase"] == "Succeeded", (name, last)
