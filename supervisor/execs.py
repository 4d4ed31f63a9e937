"""Processes started inside a running container: exec probes, exec lifecycle hooks and
`supctl exec` (kubelet's ExecSync and Exec, from the CRI runtime service).

The pod's infra starts them (EXEC frames, through `runtime.Infra.start_exec`) in the
container's namespaces, with its ids, and with stdio fds that supd hands over, or (probes
and hooks) with their output captured by the infra and sent with the exit report; this
module waits for their reports and moves their bytes. Event-driven only: futures resolved by the
infra's reports, pipes and ptys read and written through loop.add_reader/add_writer; no
threads, no polling.

Imports _native (a constant), errors and expansion; the runtime only for types (the runtime
may import this).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import signal
import struct
import termios
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _native
from .errors import (
    Conflict,
    ExecStartError,
    Internal,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
    process_limit_hint,
)
from .expansion import container_env

if TYPE_CHECKING:
    from .runtime import Infra, Pod, Runtime
    from .spec import ContainerSpec

_CHUNK = 65536
_DRAIN_LIMIT = 1 << 20
"""Bytes still read from a stream once its process has exited: what was in the pipe
(at most /proc/sys/fs/pipe-max-size), not whatever a leftover child keeps writing."""
_TTY_DRAIN_GRACE = 1.0
"""Seconds a pty is still read after its process exited while some other process holds it
open (a background job): the common case ends at once with EIO, when no one holds it."""
_WINSIZE = struct.Struct("HHHH")  # struct winsize, tty_ioctl(4)


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int
    """The exit code a shell reports: the process's own, or 128+N for signal N."""
    signal: int
    """The signal that killed it, or 0."""
    timed_out: bool = False
    """It was killed because its timeout expired."""

    @classmethod
    def from_wait_status(cls, status: int, timed_out: bool = False) -> ExecResult:
        if os.WIFSIGNALED(status):
            signo = os.WTERMSIG(status)
            return cls(128 + signo, signo, timed_out)
        return cls(os.WEXITSTATUS(status), 0, timed_out)


def exec_target(
    pod: Pod, container: str, *, for_hook: bool = False
) -> tuple[Infra, int, ContainerSpec]:
    """The infra, the running instance id and the spec of `container`, or the error kubectl
    would show: an unknown container, a completed pod, a container that is not running.

    A container's process exists before it is Running (its postStart hook runs then), and
    a preStop hook runs in a pod whose phase may already be final (activeDeadlineSeconds):
    hooks and probes (`for_hook`) need only the process."""
    spec = pod.spec
    try:
        c = spec.container(container)
    except KeyError:
        names = [x.name for x in spec.containers + spec.init_containers]
        raise InvalidArgument(
            f"container {container} is not valid for pod {spec.name}", {"containers": names}
        ) from None
    phase = pod.status.phase
    if phase.terminal and not for_hook:
        raise Conflict(f"cannot exec into a container in a completed pod; current phase is {phase}")
    st = pod.status.container(container)
    present = st.running or (for_hook and st.hooking)
    if not present or not st.instance or pod.infra is None:
        state = f"waiting: {st.reason}" if st.state == "waiting" and st.reason else st.state
        raise Conflict(
            f'container "{container}" in pod "{spec.name}" is not running ({state})',
            {"container": container, "state": str(st.state)},
        )
    return pod.infra, st.instance, c


def _start_failed(err: Any, runtime: Runtime, pod: Pod, container: str) -> Exception:
    """The error for an exec_failed report (a SpawnError: step, errno, exit_code)."""
    where = f'container "{container}" in pod "{pod.spec.name}"'
    if err.step == "slot":
        if err.errno == errno.ESRCH:
            return Conflict(f"{where} is not running")
        if err.errno == errno.EAGAIN:
            return ResourceExhausted(
                f"too many processes exec'd in pod {pod.spec.name} at once", {"limit": "execs"}
            )
        if err.errno == errno.ECANCELED:
            return Conflict(f"pod {pod.spec.name} is shutting down")
        return Internal(f"exec in {where}: {err}")
    if err.step == "frame":
        return InvalidArgument(f"exec in {where}: {err}")
    hint = process_limit_hint(err, runtime.pod_pids_limit)
    return ExecStartError(f"{err}{hint}", err.exit_code, {"step": err.step})


async def exec_process(
    runtime: Runtime,
    pod: Pod,
    container: str,
    argv: Sequence[str],
    *,
    stdin: int,
    stdout: int,
    stderr: int,
    tty: bool = False,
    timeout: float | None = None,
    close_fds: bool = False,
    for_hook: bool = False,
) -> ExecResult:
    """Run argv inside running `container` of `pod` and wait for it to exit.

    The process gets the container's namespaces, ids, working directory and environment
    (as kubectl exec: PATH, HOSTNAME and the spec's env), a session of its own, and
    `stdin`, `stdout`, `stderr` as its stdio (with `tty`, one pty slave given three times,
    which becomes its controlling terminal). argv is used as is: no $(VAR) expansion.

    With `close_fds`, the three fds are closed once handed to the infra, so that the
    caller's other ends see EOF and EPIPE when the process's ends close.

    Raises InvalidArgument for an unknown container, Conflict when it is not running,
    ExecStartError when the command cannot start (`exit_code` 127 or 126), Unavailable if
    supd loses the pod's infra meanwhile. After `timeout` seconds the process and its
    process group are SIGKILLed, and once it is reaped the result says `timed_out`; if the
    caller is cancelled, they are SIGKILLed too.
    """
    loop = runtime.loop
    started: asyncio.Future[int] = loop.create_future()
    exited: asyncio.Future[int] = loop.create_future()

    def on_report(report: tuple[Any, ...]) -> None:
        kind = report[0]
        if kind == "exec_started":
            _resolve(started, report[2])
        elif kind == "exec_exited":
            _resolve(started, 0)
            _resolve(exited, report[2])
        elif kind == "exec_failed":
            _fail(started, _start_failed(report[2], runtime, pod, container))
        else:  # exec_lost
            err = Unavailable(f"lost contact with the infra of pod {pod.spec.name}")
            if not started.done():
                started.set_exception(err)
                exited.cancel()  # whoever waits learns it from `started`
            _fail(exited, err)

    fds = (stdin, stdout, stderr)
    try:
        infra, eid = _send(
            pod, container, argv, fds, None, tty=tty, on_report=on_report, for_hook=for_hook
        )
    finally:
        if close_fds:
            for fd in set(fds):
                os.close(fd)
    timed_out = False
    try:
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(started)
                status = await asyncio.shield(exited)
        except TimeoutError:
            timed_out = True
            infra.signal_exec(eid, signal.SIGKILL, group=True)
            await asyncio.shield(started)
            status = await asyncio.shield(exited)
    except asyncio.CancelledError:
        infra.signal_exec(eid, signal.SIGKILL, group=True)
        raise
    finally:
        infra.forget_exec(eid)
    return ExecResult.from_wait_status(status, timed_out)


async def exec_captured(
    runtime: Runtime,
    pod: Pod,
    container: str,
    argv: Sequence[str],
    *,
    timeout: float | None,
    env: Sequence[str] | None = None,
) -> tuple[ExecResult, bytes]:
    """exec_process with stdin /dev/null and stdout and stderr on one pipe that the infra
    reads: what exec probes and exec hooks need, with no fd passed and one report. Returns
    the result and the first 10 KiB of the output (_native.CAPTURE_LIMIT, kubelet's
    maxProbeOutputLength); the infra reads and drops the rest, so the process never blocks
    on a full pipe. `env`: the container's environment as NAME=value, when the caller has
    it already (a probe runs every period with the same one).

    The one report resolves one future, and the timeout is one timer: this runs 1,000
    times a second for 1,000 probed pods."""
    if pod.infra is not None and not pod.infra.captures:
        return await _captured_by_supd(runtime, pod, container, argv, timeout)
    loop = runtime.loop
    done: asyncio.Future[tuple[int, bytes] | None] = loop.create_future()

    def on_report(report: tuple[Any, ...]) -> None:
        if done.done():
            return
        kind = report[0]
        if kind == "exec_exited":
            done.set_result((report[2], report[3]))
        elif kind == "exec_failed" and (report[2].step, report[2].errno) == ("frame", errno.EBADF):
            done.set_result(None)  # an older infra: it wants the stdio fds
        elif kind == "exec_failed":
            done.set_exception(_start_failed(report[2], runtime, pod, container))
        else:  # exec_lost
            done.set_exception(Unavailable(f"lost contact with the infra of pod {pod.spec.name}"))

    infra, eid = _send(pod, container, argv, None, env, tty=False, on_report=on_report)
    expired: list[bool] = []

    def expire() -> None:  # kill it and its process group; the exit report still comes
        expired.append(True)
        infra.signal_exec(eid, signal.SIGKILL, group=True)

    timer = loop.call_later(timeout, expire) if timeout is not None else None
    try:
        exited = await done
    except asyncio.CancelledError:
        infra.signal_exec(eid, signal.SIGKILL, group=True)
        raise
    finally:
        infra.forget_exec(eid)
        if timer is not None:
            timer.cancel()
    if exited is None:
        infra.captures = False
        return await _captured_by_supd(runtime, pod, container, argv, timeout)
    return ExecResult.from_wait_status(exited[0], bool(expired)), exited[1]


async def _captured_by_supd(
    runtime: Runtime, pod: Pod, container: str, argv: Sequence[str], timeout: float | None
) -> tuple[ExecResult, bytes]:
    """exec_captured through an infra that cannot capture (taken over from an older supd):
    the pipe and /dev/null are supd's, handed over with the EXEC."""
    loop = runtime.loop
    captured = bytearray()

    def keep(data: bytes) -> None:
        captured.extend(data[: _native.CAPTURE_LIMIT - len(captured)])

    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        r, w = os.pipe2(os.O_CLOEXEC)
    except OSError:
        os.close(null)
        raise
    os.set_blocking(r, False)

    def readable() -> None:
        data, at_end = _read_some(r, _CHUNK)  # one read per wakeup
        keep(data)
        if at_end:
            loop.remove_reader(r)

    loop.add_reader(r, readable)
    try:
        result = await exec_process(
            runtime, pod, container, argv, stdin=null, stdout=w, stderr=w,
            timeout=timeout, close_fds=True, for_hook=True,
        )  # fmt: skip
        keep(_read_some(r, _DRAIN_LIMIT)[0])  # what it wrote before it exited
    finally:
        loop.remove_reader(r)
        os.close(r)
    return result, bytes(captured)


def _send(
    pod: Pod,
    container: str,
    argv: Sequence[str],
    fds: tuple[int, int, int] | None,
    env: Sequence[str] | None,
    *,
    tty: bool,
    on_report: Callable[[tuple[Any, ...]], None],
    for_hook: bool = True,
) -> tuple[Infra, int]:
    """Send the EXEC frame for argv in `container` (see exec_target): (infra, eid)."""
    infra, cid, c = exec_target(pod, container, for_hook=for_hook)
    if env is None:
        env = [f"{k}={v}" for k, v in container_env(pod.spec, c).items()]
    try:
        eid = infra.start_exec(
            cid, list(argv), env, c.working_dir or "/", fds, tty=tty, on_report=on_report
        )
    except (ValueError, TypeError, IndexError) as e:
        raise InvalidArgument(f"exec in container {container}: {e}") from None
    return infra, eid


def _resolve(fut: asyncio.Future[int], value: int) -> None:
    if not fut.done():
        fut.set_result(value)


def _fail(fut: asyncio.Future[Any], err: BaseException) -> None:
    if not fut.done():
        fut.set_exception(err)


async def _wait_fd(
    loop: asyncio.AbstractEventLoop,
    fd: int,
    *,
    write: bool = False,
    stop: asyncio.Future[None] | None = None,
) -> bool:
    """Wait until `fd` is readable (writable), or `stop` is done: True when the fd is."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        if stop is None:
            await ready
        else:
            await asyncio.wait((ready, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
    return ready.done()


def _read_some(fd: int, budget: int) -> tuple[bytes, bool]:
    """What is readable now, up to `budget` bytes: (data, at_end), at_end on EOF or EIO
    (a pty master once no slave fd is open)."""
    chunks: list[bytes] = []
    got = 0
    while got < budget:
        try:
            data = os.read(fd, min(_CHUNK, budget - got))
        except BlockingIOError:
            break
        except OSError as e:
            if e.errno == errno.EIO:
                return b"".join(chunks), True
            raise
        if not data:
            return b"".join(chunks), True
        chunks.append(data)
        got += len(data)
    return b"".join(chunks), False


Send = Callable[[dict[str, Any]], Awaitable[None]]


class ExecSession:
    """One `exec` request of the API: the process's stdio as supd holds them (pipes, or a
    pty), its input from sibling `exec_input` requests, pty resizes from `exec_resize`, and
    its output sent as stream payloads ({stdout: bytes}, {stderr: bytes}), then its exit
    status ({exit_code, signal[, message]}).

    Bounded: output is read only as fast as the client takes it (a full pipe blocks the
    process, as a slow terminal would); input is taken one exec_input at a time and the
    reply waits until it is written to the process."""

    def __init__(
        self, *, stdin: bool, tty: bool, rows: int | None = None, cols: int | None = None
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.tty = tty
        self._owned: list[int] = []  # supd's ends, closed by close()
        self._child: list[int] = []  # the process's ends, until exec_process takes them
        self._outputs: list[tuple[int, str]] = []
        self.stdin_fd = -1  # where exec_input writes (-1: no stdin, or closed)
        self._writing = False
        self._closed = False
        self._finishing: asyncio.Future[None] = self.loop.create_future()
        self._grace: asyncio.TimerHandle | None = None
        try:
            self._open(stdin, rows, cols)
        except BaseException:
            self.close()
            raise

    def _open(self, stdin: bool, rows: int | None, cols: int | None) -> None:
        if self.tty:
            master, slave = os.openpty()  # both non-inheritable (O_CLOEXEC)
            self._owned.append(master)
            self._child.append(slave)
            os.set_blocking(master, False)
            self.master = master
            if rows or cols:
                self.resize(rows or 0, cols or 0)
            self._outputs.append((master, "stdout"))
            if stdin:
                self.stdin_fd = master
            return
        if stdin:
            r, w = os.pipe2(os.O_CLOEXEC)
            self._child.append(r)
            self._owned.append(w)
            os.set_blocking(w, False)
            self.stdin_fd = w
        else:
            self._child.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        for key in ("stdout", "stderr"):
            r, w = os.pipe2(os.O_CLOEXEC)
            self._owned.append(r)
            self._child.append(w)
            os.set_blocking(r, False)
            self._outputs.append((r, key))

    def _stdio(self) -> tuple[int, int, int]:
        if self.tty:
            return self._child[0], self._child[0], self._child[0]
        return self._child[0], self._child[1], self._child[2]

    async def run(
        self, runtime: Runtime, pod: Pod, container: str, argv: Sequence[str], send: Send
    ) -> None:
        """Start the process, relay its output until it exits, then send its status. A
        failed send (the client went away, or stopped reading) kills the process."""
        stdin, stdout, stderr = self._stdio()
        self._child = []  # exec_process closes them
        process = asyncio.ensure_future(
            exec_process(
                runtime,
                pod,
                container,
                argv,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                tty=self.tty,
                close_fds=True,
            )
        )
        pumps = [asyncio.ensure_future(self._pump(fd, key, send)) for fd, key in self._outputs]
        tasks = [process, *pumps]
        try:
            pending: set[asyncio.Future[Any]] = set(tasks)
            while not process.done():
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    error = None if task is process else task.exception()
                    if error is not None:
                        raise error
            try:
                result = process.result()
                status: dict[str, Any] = {"exit_code": result.exit_code, "signal": result.signal}
            except ExecStartError as e:
                status = {"exit_code": e.exit_code, "signal": 0, "message": e.message}
            self._exited()
            for pump in pumps:
                await pump
            await send(status)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _exited(self) -> None:
        """The process is gone. A pipe holds what it wrote: read it, then stop. A pty is read
        until EIO (no slave fd open any more), or for a grace period while a leftover child
        still holds it."""
        if self.tty:
            self._grace = self.loop.call_later(_TTY_DRAIN_GRACE, self._finish)
        else:
            self._finish()

    def _finish(self) -> None:
        if not self._finishing.done():
            self._finishing.set_result(None)

    async def _pump(self, fd: int, key: str, send: Send) -> None:
        budget = _DRAIN_LIMIT
        while True:
            finishing = self._finishing.done()
            data, at_end = _read_some(fd, min(_CHUNK, budget) if finishing else _CHUNK)
            if data:
                await send({key: data})
                if finishing:
                    budget -= len(data)
            if at_end or (finishing and (not data or budget <= 0)):
                return
            if not data:
                await _wait_fd(self.loop, fd, stop=self._finishing)

    async def write_input(self, data: bytes, eof: bool) -> int:
        """Write `data` to the process's stdin; with `eof`, close it afterwards (a pty has
        no end of input to send: the terminal's own ^D is data). Returns the bytes written:
        fewer when the process stopped reading (it closed stdin, or exited)."""
        if self.stdin_fd < 0 and not self._closed:
            raise InvalidArgument("this exec was started without stdin, or its stdin is closed")
        if self._writing:
            raise ResourceExhausted(
                "an exec_input for this exec is still being written: send the next one "
                "after its reply",
                {"limit": "exec_input_in_flight"},
            )
        self._writing = True
        written = 0
        try:
            view = memoryview(data)
            while written < len(view) and not self._closed and self.stdin_fd >= 0:
                try:
                    written += os.write(self.stdin_fd, view[written:])
                except BlockingIOError:
                    if not await _wait_fd(
                        self.loop, self.stdin_fd, write=True, stop=self._finishing
                    ):
                        break
                except OSError as e:
                    if e.errno in (errno.EPIPE, errno.EIO):
                        break  # nobody reads it any more: the rest is dropped
                    raise
            if eof and not self.tty and self.stdin_fd >= 0:
                fd, self.stdin_fd = self.stdin_fd, -1
                self._owned.remove(fd)
                os.close(fd)
        finally:
            self._writing = False
            if self._closed:
                self._release()
        return written

    def resize(self, rows: int, cols: int) -> None:
        """TIOCSWINSZ on the pty: the kernel sends SIGWINCH to its foreground process
        group (tty_ioctl(4))."""
        if not self.tty:
            raise InvalidArgument("this exec has no tty to resize")
        if not (0 <= rows <= 0xFFFF and 0 <= cols <= 0xFFFF):
            raise InvalidArgument(f"window size {rows}x{cols} out of range (0..65535)")
        if not self._closed:
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, _WINSIZE.pack(rows, cols, 0, 0))

    def close(self) -> None:
        """Release every fd (once a write in progress has returned)."""
        self._closed = True
        self._finish()
        if self._grace is not None:
            self._grace.cancel()
        if not self._writing:
            self._release()

    def _release(self) -> None:
        for fd in self._owned + self._child:
            os.close(fd)
        self._owned, self._child = [], []
        self.stdin_fd = -1
