"""exec end to end: `supctl exec` against a real supd, and supervisor.execs in-process against
a real Runtime (real infra, real namespaces). Waits on pipes, pidfds and pod changes: no
sleeps."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import termios
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvloop
from conftest import SUPCTL, Supd, require_root

from supervisor import _native
from supervisor import runtime as runtime_module
from supervisor.client import Client
from supervisor.errors import (
    Conflict,
    ExecStartError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from supervisor.events import EventLog
from supervisor.execs import ExecResult, exec_captured, exec_process
from supervisor.manifest import parse_pod
from supervisor.runtime import Pod, Runtime
from supervisor.store import Store
from supervisor.supctl import DEFAULT_CONTAINER_ANNOTATION, default_container

TIMEOUT = 10.0
NS = ("mnt", "pid", "net", "ipc", "uts")
SHOW_NS = "for ns in " + " ".join(NS) + "; do readlink /proc/self/ns/$ns; done"


def manifest(name: str = "web", restart: str = "Always", **commands: str) -> dict[str, Any]:
    """A pod whose containers (name=shell command) each get WHO=name in their env."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": c,
                    "command": ["sh", "-c", cmd],
                    "env": [
                        {"name": "WHO", "value": c},
                        {"name": "GREETING", "value": "hi $(WHO)"},
                    ],
                    "workingDir": "/tmp",
                }
                for c, cmd in commands.items()
            ],
        },
    }


def apply(supd: Supd, obj: dict[str, Any]) -> None:
    supd.apply(json.dumps(obj))


def exec_ctl(
    supd: Supd, *args: str, input: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    return supd.ctl("exec", *args, check=False, input=input)


def wait_readable(fd: int, timeout: float = TIMEOUT) -> None:
    if not select.select([fd], [], [], timeout)[0]:
        raise AssertionError(f"fd {fd} not readable within {timeout}s")


def find_process(token: str) -> int:
    """The host pid of the process whose argv contains `token`."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if token.encode() in argv:
                return int(entry)
    raise AssertionError(f"no process with {token!r} in its argv")


# -- supctl exec ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("containers", "init", "annotation", "expected"),
    [
        (["web"], [], None, ("web", None)),
        (["web", "side"], [], None, ("web", 'Defaulted container "web" out of: web, side')),
        (["web"], ["setup"], None, ("web", 'Defaulted container "web" out of: web, setup (init)')),
        (["web", "side"], [], "side", ("side", None)),
        (["web", "side"], ["setup"], "setup", ("setup", None)),
        (["web", "side"], [], "nope", ("web", 'Defaulted container "web" out of: web, side')),
    ],
)
def test_default_container_is_kubectls(
    containers: list[str], init: list[str], annotation: str | None, expected: Any
) -> None:
    pod = {
        "metadata": {"name": "p", "annotations": {DEFAULT_CONTAINER_ANNOTATION: annotation}},
        "spec": {
            "containers": [{"name": n} for n in containers],
            "initContainers": [{"name": n} for n in init],
        },
    }
    assert default_container(pod) == expected


def test_exec_runs_in_the_container_namespaces_with_its_env(supd: Supd) -> None:
    apply(supd, manifest(main=f"({SHOW_NS}); exec sleep 1000", side="exec sleep 1000"))
    supd.wait("web")
    logs = supd.follow_logs("web", "-c", "main")
    try:
        assert logs.stdout is not None
        container_ns = [logs.stdout.readline().strip() for _ in NS]
    finally:
        logs.kill()
        logs.wait()
    res = exec_ctl(supd, "web", "--", "sh", "-c", SHOW_NS)
    assert res.returncode == 0, res.stderr
    assert res.stderr == 'Defaulted container "main" out of: main, side\n'
    inside = res.stdout.split()
    assert inside == container_ns
    host = [os.readlink(f"/proc/self/ns/{ns}") for ns in NS]
    assert all(a != b for a, b in zip(inside, host, strict=True)), (inside, host)

    res = exec_ctl(
        supd, "web", "-c", "side", "--", "sh", "-c", "echo $WHO/$GREETING; hostname; pwd"
    )
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout.split() == ["side/hi", "side", "web", "/tmp"]
    res = exec_ctl(supd, "web", "-c", "main", "--", "env")
    env = dict(line.split("=", 1) for line in res.stdout.splitlines())
    assert env["WHO"] == "main" and env["HOSTNAME"] == "web" and "/usr/bin" in env["PATH"]
    # The command itself is not expanded, as kubectl exec does not: $(WHO) stays.
    res = exec_ctl(supd, "web", "-c", "main", "--", "echo", "$(WHO)", "--", "-c")
    assert res.stdout == "$(WHO) -- -c\n"


def test_exec_stdin_and_exit_codes(supd: Supd, tmp_path: Path) -> None:
    apply(supd, manifest(main="exec sleep 1000"))
    supd.wait("web")
    res = exec_ctl(supd, "-i", "web", "--", "cat", input=b"hello\nworld\n")
    assert (res.returncode, res.stdout, res.stderr) == (0, "hello\nworld\n", "")
    big = os.urandom(3 << 20).hex().encode()  # several exec_input requests, several pipes full
    res = exec_ctl(supd, "web", "-i", "--", "wc", "-c", input=big)
    assert res.stdout.strip() == str(len(big))
    res = exec_ctl(supd, "web", "--", "cat")  # without -i: stdin is /dev/null
    assert (res.returncode, res.stdout) == (0, "")

    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    cases = [
        (["sh", "-c", "echo out; echo err >&2; exit 3"], 3, "out\n", "err\n"),
        (["/nope"], 127, "", "exec /nope: No such file or directory\n"),
        ([str(script)], 126, "", f"exec {script}: Permission denied\n"),
        (["sh", "-c", "kill -TERM $$"], 128 + signal.SIGTERM, "", ""),
        (["sh", "-c", "kill -KILL $$"], 128 + signal.SIGKILL, "", ""),
    ]
    for argv, code, out, err in cases:
        res = exec_ctl(supd, "web", "--", *argv)
        assert res.returncode == code, (argv, res)
        assert res.stdout == out
        assert res.stderr == f"{err}command terminated with exit code {code}\n"


def test_exec_errors_match_kubectl(supd: Supd) -> None:
    apply(supd, manifest(main="exec sleep 1000", done="exit 0", restart="Never"))
    supd.watch_until(
        "web",
        lambda p: any("terminated" in s["state"] for s in p["status"].get("containerStatuses", [])),
    )
    res = exec_ctl(supd, "web", "-c", "nope", "--", "true")
    assert (res.returncode, res.stderr) == (2, "error: container nope is not valid for pod web\n")
    res = exec_ctl(supd, "web", "-c", "done", "--", "true")
    assert res.returncode == 1
    assert res.stderr == 'error: container "done" in pod "web" is not running (terminated)\n'
    res = exec_ctl(supd, "nope", "--", "true")
    assert (res.returncode, res.stderr) == (
        1,
        'Error from server (NotFound): pods "nope" not found\n',
    )
    res = exec_ctl(supd, "web", "-c", "main")
    assert res.returncode == 2
    assert res.stderr == "error: you must specify at least one command for the container\n"

    apply(supd, manifest("job", restart="Never", main="exit 0"))
    supd.watch_until("job", lambda p: p["status"]["phase"] == "Succeeded")
    res = exec_ctl(supd, "job", "--", "true")
    assert res.returncode == 1
    assert res.stderr == (
        "error: cannot exec into a container in a completed pod; current phase is Succeeded\n"
    )


def test_exec_is_killed_when_the_client_goes_away(supd: Supd) -> None:
    apply(supd, manifest(main="exec sleep 1000"))
    supd.wait("web")
    token = "4242.25"  # a duration sleep accepts, to find the process by
    client = subprocess.Popen(
        [SUPCTL, "--socket", str(supd.socket), "exec", "web", "--", "sh", "-c",
         f"echo up; exec sleep 1000 {token}", token],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert client.stdout is not None
        assert client.stdout.readline() == b"up\n"
        pidfd = os.pidfd_open(find_process(token))
    finally:
        client.kill()
        client.wait()
    try:
        wait_readable(pidfd)  # it exits: supd cancelled the exec when the connection closed
    finally:
        os.close(pidfd)


def test_exec_with_a_tty_follows_the_terminal_size(supd: Supd) -> None:
    apply(supd, manifest(main="exec sleep 1000"))
    supd.wait("web")
    # The shell prints its tty and size, then the new size when SIGWINCH arrives.
    script = (
        "trap 'stty size; exit 7' WINCH; tty; stty size; echo ready; "
        "while :; do sleep 1 & wait; done"
    )
    master, slave = os.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    pid = os.fork()
    if pid == 0:  # the child: supctl on a terminal of its own (as pty.fork does it)
        try:
            os.close(master)
            os.login_tty(slave)
            os.execv(SUPCTL, [SUPCTL, "--socket", str(supd.socket), "exec", "-it", "web", "--",
                              "sh", "-c", script])  # fmt: skip
        finally:
            os._exit(127)
    os.close(slave)
    output = b""

    def read_until(token: bytes) -> None:
        nonlocal output
        while token not in output:
            wait_readable(master)
            try:
                output += os.read(master, 4096)
            except OSError:  # EIO: supctl exited
                raise AssertionError(f"no {token!r} in {output!r}") from None

    try:
        read_until(b"ready\r\n")
        name, size, _ = output.decode().split("\r\n", 2)
        assert name.startswith("/dev/pts/") and size == "24 80"
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        read_until(b"40 100\r\n")
        read_until(b"command terminated with exit code 7\r\n")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(master)
    assert os.waitstatus_to_exitcode(status) == 7


def test_exec_input_is_paced_and_validated(supd: Supd) -> None:
    apply(supd, manifest(main="exec sleep 1000"))
    supd.wait("web")

    async def test() -> None:
        async with await Client.connect(str(supd.socket)) as client:
            # A process that never reads: the pipe fills and the input's reply waits.
            stream = client.open_stream(
                "exec", name="web", command=["sh", "-c", "echo up; exec sleep 1000"], stdin=True
            )
            assert await anext(stream) == {"stdout": b"up\n"}
            big = bytes(1000 * 1000)
            first = asyncio.ensure_future(client.call("exec_input", target=stream.id, data=big))
            await asyncio.sleep(0)  # a yield, not a wait: `first` sends its request
            with pytest.raises(ResourceExhausted, match="still being written"):
                await client.call("exec_input", target=stream.id, data=b"x")
            with pytest.raises(InvalidArgument, match="no tty"):
                await client.call("exec_resize", target=stream.id, rows=1, cols=1)
            assert not first.done()
            stream.close()  # cancels the exec: its process is killed, the write gives up
            assert 0 < (await first)["written"] < len(big)
            with pytest.raises(NotFound, match=f"no exec request {stream.id} is in flight"):
                await client.call("exec_input", target=stream.id, data=b"x")

            stream = client.open_stream("exec", name="web", command=["true"])
            with pytest.raises(InvalidArgument, match="without stdin"):
                await client.call("exec_input", target=stream.id, data=b"x")
            assert [item async for item in stream] == [{"exit_code": 0, "signal": 0}]

            stream = client.open_stream(
                "exec", name="web", command=["sh", "-c", "stty size"], tty=True, rows=70000
            )
            with pytest.raises(InvalidArgument, match="out of range"):
                await anext(stream)
            stream = client.open_stream(
                "exec", name="web", command=["sh", "-c", "stty size; tty"], tty=True, rows=5, cols=9
            )
            out = b"".join([item.get("stdout", b"") async for item in stream])
            assert out.startswith(b"5 9\r\n/dev/pts/")

    uvloop.run(asyncio.wait_for(test(), TIMEOUT))


# -- supervisor.execs in-process, on a real Runtime -----------------------------------------------


@asynccontextmanager
async def running_pod(tmp_path: Path, obj: dict[str, Any]) -> AsyncIterator[tuple[Runtime, Pod]]:
    """A Runtime in this process with one pod, every container of which is running."""
    runtime = Runtime(Store(tmp_path / "state"), EventLog())
    spec, _ = parse_pod(obj, "test", 0)
    pod = runtime.create(spec, runtime.store.save(spec))
    try:
        async with asyncio.timeout(TIMEOUT):
            while not all(st.running for st in pod.status.containers):
                await asyncio.shield(pod.changed)
        yield runtime, pod
    finally:
        await asyncio.wait_for(runtime.stop_all(0), TIMEOUT)


def run_async(test: Callable[[], Awaitable[None]]) -> None:
    require_root()
    uvloop.run(asyncio.wait_for(test(), 3 * TIMEOUT))


async def readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


def infra_children(pod: Pod) -> list[str]:
    assert pod.infra is not None
    return Path(f"/proc/{pod.infra.pid}/task/{pod.infra.pid}/children").read_text().split()


def test_exec_captured_caps_output_and_kills_on_timeout(tmp_path: Path) -> None:
    async def test() -> None:
        async with running_pod(tmp_path, manifest(main="exec sleep 1000")) as (rt, pod):
            # Over the cap: kept up to `limit`, the rest read and dropped (no blocked writer).
            result, out = await exec_captured(
                rt, pod, "main", ["sh", "-c", "echo $WHO; head -c 200000 /dev/zero; echo end"],
                timeout=TIMEOUT,
            )  # fmt: skip
            assert result == ExecResult(0, 0, False)
            assert out == b"main\n" + bytes(10240 - 5)
            result, out = await exec_captured(
                rt, pod, "main", ["sh", "-c", "echo out; echo err >&2; exit 2"], timeout=TIMEOUT
            )
            assert (result, out) == (ExecResult(2, 0, False), b"out\nerr\n")
            # A timeout kills the process and what it started in its process group.
            result, out = await exec_captured(
                rt, pod, "main", ["sh", "-c", "echo started; sleep 1000; echo never"],
                timeout=0.3,
            )  # fmt: skip
            assert (result, out) == (ExecResult(137, signal.SIGKILL, True), b"started\n")
            assert len(infra_children(pod)) == 1  # the container: every exec was reaped

    run_async(test)


def test_exec_captured_through_an_infra_from_before_capture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An infra taken over from an older supd knows no EXEC_CAPTURE: it answers a frame
    without fds "frame: EBADF". supd then hands over a pipe and /dev/null, as it did."""
    encode = _native.encode_exec

    def as_before(*args: Any, capture: bool = False, **kwargs: Any) -> bytes:
        return encode(*args, **kwargs)  # the frame such an infra understands

    async def test() -> None:
        async with running_pod(tmp_path, manifest(main="exec sleep 1000")) as (rt, pod):
            assert pod.infra is not None and pod.infra.captures
            monkeypatch.setattr(runtime_module._native, "encode_exec", as_before)
            for _ in range(2):  # found out once, then never tried again
                result, out = await exec_captured(
                    rt, pod, "main", ["sh", "-c", "echo out; echo err >&2; exit 3"],
                    timeout=TIMEOUT,
                )  # fmt: skip
                assert (result, out) == (ExecResult(3, 0, False), b"out\nerr\n")
                assert not pod.infra.captures
            result, out = await exec_captured(
                rt, pod, "main", ["sh", "-c", "head -c 20000 /dev/zero"], timeout=TIMEOUT
            )
            assert result == ExecResult(0, 0) and out == bytes(_native.CAPTURE_LIMIT)
            result, _ = await exec_captured(rt, pod, "main", ["sleep", "1000"], timeout=0.3)
            assert result == ExecResult(137, signal.SIGKILL, True)
            assert len(infra_children(pod)) == 1  # the container: every exec was reaped

    run_async(test)


def test_exec_process_errors_and_cancellation(tmp_path: Path) -> None:
    async def test() -> None:
        obj = manifest(restart="Never", main="exec sleep 1000", side="exec sleep 1000")
        async with running_pod(tmp_path, obj) as (rt, pod):
            with pytest.raises(ExecStartError) as info:
                await exec_captured(rt, pod, "main", ["/nope"], timeout=TIMEOUT)
            assert (info.value.message, info.value.exit_code) == (
                "exec /nope: No such file or directory",
                127,
            )
            with pytest.raises(InvalidArgument, match="container nope is not valid for pod web"):
                await exec_captured(rt, pod, "nope", ["true"], timeout=TIMEOUT)
            # Cancelling the caller kills the process.
            r, w = os.pipe2(os.O_CLOEXEC)
            null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            token = "4243.25"
            task = asyncio.ensure_future(
                exec_process(
                    rt, pod, "main", ["sh", "-c", f"echo up; exec sleep 1000 {token}", token],
                    stdin=null, stdout=w, stderr=w, close_fds=True,
                )
            )  # fmt: skip
            await readable(r)
            assert os.read(r, 100) == b"up\n"
            pidfd = os.pidfd_open(find_process(token))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await readable(pidfd)
            os.close(pidfd)
            assert os.read(r, 100) == b""  # every holder of the pipe is gone
            os.close(r)
            # A container that is not running (any more): Conflict.
            rt._signal(pod, "side", signal.SIGKILL)
            async with asyncio.timeout(TIMEOUT):
                while pod.status.container("side").running:
                    await asyncio.shield(pod.changed)
            with pytest.raises(Conflict, match='container "side" in pod "web" is not running'):
                await exec_captured(rt, pod, "side", ["true"], timeout=TIMEOUT)

    run_async(test)


def test_exec_slots_per_pod_are_bounded(tmp_path: Path) -> None:
    async def test() -> None:
        async with running_pod(tmp_path, manifest(main="exec sleep 1000")) as (rt, pod):
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            r, w = os.pipe2(os.O_CLOEXEC)
            try:

                def reader() -> Awaitable[ExecResult]:  # runs until the pipe's end
                    return exec_process(rt, pod, "main", ["cat"], stdin=r, stdout=null, stderr=null)

                running = [asyncio.ensure_future(reader()) for _ in range(64)]
                await asyncio.sleep(0)  # a yield, not a wait: each sends its exec frame
                # The infra takes frames in order: the 65th finds every slot taken.
                with pytest.raises(ResourceExhausted, match="too many processes exec'd"):
                    await reader()
                os.close(w)
                w = -1
                assert await asyncio.gather(*running) == [ExecResult(0, 0)] * 64
                # Each slot is free again once its exit is reported.
                result, _ = await exec_captured(rt, pod, "main", ["true"], timeout=TIMEOUT)
                assert result == ExecResult(0, 0)
            finally:
                for fd in (null, r, w):
                    if fd >= 0:
                        os.close(fd)

    run_async(test)
