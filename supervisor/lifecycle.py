"""The pod state machine: what kubelet decides, without processes. Pure: it reads no clock
and does no I/O; `now` is always passed in, so tests drive it with a fake clock.

Inputs are events (a container started, failed to start, exited) applied to a PodStatus;
`compute_pod_actions` then says what the runtime must do next, as kubelet's
computePodActions does (pkg/kubelet/kuberuntime/kuberuntime_manager.go). Phases and
conditions follow kubelet's getPhase and status generation (pkg/kubelet/kubelet_pods.go,
pkg/kubelet/status/generate.go).

Imports only leaves: spec, states, backoff.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .backoff import BackoffPolicy, next_restart
from .spec import PodSpec
from .states import ConditionType, ContainerState, EventType, Phase, Reason, RestartPolicy


@dataclass
class Terminated:
    exit_code: int
    reason: str
    finished_at: float
    started_at: float | None = None
    signal: int = 0
    message: str = ""
    container_id: str = ""


@dataclass
class ContainerStatus:
    name: str
    init: bool = False
    state: ContainerState = ContainerState.WAITING
    reason: str = Reason.CONTAINER_CREATING  # while waiting
    message: str = ""  # while waiting
    started_at: float | None = None  # while running
    terminated: Terminated | None = None  # while terminated, or waiting to restart
    last_state: Terminated | None = None
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    instance: int = 0  # the id of the current (or last) instance; 0: never started
    pid: int = 0
    starting: bool = False  # a start was asked for and has not been answered yet
    hooking: bool = False  # the process runs, its postStart hook has not returned yet
    sidecar: bool = False  # a restartable init container
    readiness_ok: bool = False  # the readiness probe's current result
    backoff: float = 0.0  # the delay the next restart will wait
    restart_at: float | None = None  # when a restart is due (None: no restart planned)

    @property
    def running(self) -> bool:
        return self.state is ContainerState.RUNNING

    @property
    def alive(self) -> bool:
        """A process of this container exists or is being created."""
        return self.running or self.starting or self.hooking

    @property
    def succeeded(self) -> bool:
        t = self.terminated
        return self.state is ContainerState.TERMINATED and t is not None and t.exit_code == 0


@dataclass
class Condition:
    type: str
    status: bool
    last_transition: float
    reason: str = ""
    message: str = ""


@dataclass
class PodEvent:
    """Something worth telling a user: becomes a v1 Event."""

    type: str
    reason: str
    message: str
    container: str | None = None


@dataclass
class PodStatus:
    init_containers: list[ContainerStatus]
    containers: list[ContainerStatus]
    phase: Phase = Phase.PENDING
    conditions: dict[str, Condition] = field(default_factory=dict)
    created_at: float = 0.0
    start_time: float | None = None
    sandbox_ready: bool = False
    stopping: bool = False  # the termination sequence has begun: nothing restarts
    reason: str = ""
    message: str = ""
    pod_ip: str | None = None  # status.podIP: set once the sandbox has its network

    def container(self, name: str) -> ContainerStatus:
        for c in self.init_containers + self.containers:
            if c.name == name:
                return c
        raise KeyError(name)

    def all(self) -> list[ContainerStatus]:
        return self.init_containers + self.containers


def new_status(spec: PodSpec, now: float) -> PodStatus:
    status = PodStatus(
        init_containers=[
            ContainerStatus(c.name, init=True, sidecar=c.sidecar, reason=Reason.POD_INITIALIZING)
            for c in spec.init_containers
        ],
        containers=[
            ContainerStatus(
                c.name,
                reason=Reason.POD_INITIALIZING
                if spec.init_containers
                else Reason.CONTAINER_CREATING,
            )
            for c in spec.containers
        ],
        created_at=now,
    )
    refresh(spec, status, now)
    return status


# -- decisions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StartContainer:
    name: str
    init: bool


@dataclass(frozen=True)
class RestartLater:
    """Nothing to do for `name` before `at`; sync the pod again then."""

    name: str
    at: float


@dataclass(frozen=True)
class StopPod:
    """Every regular container has finished for good (or the pod failed): stop what still
    runs, sidecars last, then the sandbox."""


@dataclass(frozen=True)
class StopSandbox:
    """The pod is finished and nothing of it runs: its infra may go."""


Action = StartContainer | RestartLater | StopPod | StopSandbox


def compute_pod_actions(spec: PodSpec, status: PodStatus, now: float) -> list[Action]:
    """What to do next (kubelet's computePodActions). Init containers run one at a time, in
    order, each to success; a sidecar (restartable init container) must have started before
    the next one. Then every regular container starts at once; exited ones restart per the
    restart policy, sidecars always. Once no regular container will run again, the pod
    stops: sidecars do not keep it from finishing."""
    if status.stopping or not status.sandbox_ready:
        return []
    if status.phase.terminal or _regular_done(status):
        return [StopPod()] if _any_alive(status) else [StopSandbox()]
    if not initialized(status):
        return _init_actions(status, now)
    actions: list[Action] = []
    for st in status.init_containers:
        if st.sidecar and not st.alive:
            actions.extend(_start_or_wait(st, now))
    for st in status.containers:
        if not st.alive:
            actions.extend(_start_or_wait(st, now))
    return actions


def _init_actions(status: PodStatus, now: float) -> list[Action]:
    for st in status.init_containers:
        if st.sidecar:
            if not st.alive:
                return _start_or_wait(st, now)
            if not st.started or st.hooking:
                return []  # the next init container waits for this sidecar to start
        elif not st.succeeded:
            return [] if st.alive else _start_or_wait(st, now)
    return []


def initialized(status: PodStatus) -> bool:
    """Every regular init container succeeded and every sidecar has started; once a regular
    container has run, the pod stays initialized (kubelet's rule)."""
    if _any_regular_started(status):
        return True
    return all(
        (st.running and st.started) if st.sidecar else st.succeeded for st in status.init_containers
    )


def _regular_done(status: PodStatus) -> bool:
    """No regular container runs or will run again. One being started again still shows
    its last termination, with no restart planned any more: it is not done."""
    return bool(status.containers) and all(
        st.state is ContainerState.TERMINATED and st.restart_at is None and not st.starting
        for st in status.containers
    )


def _start_or_wait(st: ContainerStatus, now: float) -> list[Action]:
    if st.reason in (Reason.ERR_IMAGE_NEVER_PULL, Reason.CREATE_CONTAINER_CONFIG_ERROR):
        # Nothing to start until the image is there; a spec that cannot be run as given
        # (runAsNonRoot for a root user) never changes: pod specs are immutable.
        return []
    if st.instance == 0:
        return [StartContainer(st.name, st.init)]
    if st.restart_at is None:
        return []
    if st.restart_at > now:
        return [RestartLater(st.name, st.restart_at)]
    return [StartContainer(st.name, st.init)]


def _any_alive(status: PodStatus) -> bool:
    return any(c.alive for c in status.all())


def should_restart(policy: str, init: bool, exit_code: int, sidecar: bool = False) -> bool:
    """kubelet's ShouldContainerBeRestarted; an init container under Always is treated as
    OnFailure, since it must run to completion; a sidecar restarts whatever the policy."""
    if sidecar:
        return True
    if policy == RestartPolicy.NEVER:
        return False
    if policy == RestartPolicy.ON_FAILURE or init:
        return exit_code != 0
    return True


# -- events applied to the status --------------------------------------------------------


def sandbox_created(spec: PodSpec, status: PodStatus, now: float) -> list[PodEvent]:
    status.sandbox_ready = True
    if status.start_time is None:
        status.start_time = now
    refresh(spec, status, now)
    return []


def sandbox_gone(spec: PodSpec, status: PodStatus, now: float) -> list[PodEvent]:
    """The infra exited: nothing of the pod runs any more."""
    status.sandbox_ready = False
    refresh(spec, status, now)
    return []


def container_starting(st: ContainerStatus, instance: int) -> None:
    st.starting = True
    st.instance = instance
    st.restart_at = None


def container_started(
    spec: PodSpec, status: PodStatus, name: str, pid: int, now: float
) -> list[PodEvent]:
    """The process runs. With a postStart hook it is not Running (and the next container
    does not start) until the hook returns: `post_start_done`."""
    st = status.container(name)
    if st.terminated is not None:
        st.last_state = st.terminated
        st.restart_count += 1
    st.starting = False
    st.pid = pid
    st.started_at = now
    st.terminated = None
    if spec.container(name).post_start is not None:
        st.hooking = True
        st.state, st.reason, st.message = ContainerState.WAITING, Reason.CONTAINER_CREATING, ""
    else:
        _now_running(spec, st)
    refresh(spec, status, now)
    return [PodEvent(EventType.NORMAL, "Started", f"Started container {name}", name)]


def post_start_done(spec: PodSpec, status: PodStatus, name: str, now: float) -> None:
    st = status.container(name)
    if st.hooking:
        st.hooking = False
        _now_running(spec, st)
        refresh(spec, status, now)


def _now_running(spec: PodSpec, st: ContainerStatus) -> None:
    c = spec.container(st.name)
    st.state = ContainerState.RUNNING
    st.reason = st.message = ""
    # kubelet's defaults: without a startupProbe a running container has started, and
    # without a readinessProbe a started one is ready.
    st.started = c.startup_probe is None
    st.readiness_ok = False
    _update_ready(spec, st)


def _update_ready(spec: PodSpec, st: ContainerStatus) -> None:
    needs_probe = spec.container(st.name).readiness_probe is not None
    st.ready = (
        st.running
        and st.started
        and (st.readiness_ok or not needs_probe)
        and (st.sidecar or not st.init)
    )


def probe_result(
    spec: PodSpec, status: PodStatus, name: str, kind: str, ok: bool, now: float
) -> None:
    """A probe's result changed (thresholds already applied by the prober). Startup success
    marks the container started; readiness drives `ready`. Liveness and startup failures
    are acted on by killing the container, not here."""
    st = status.container(name)
    if not st.running:
        return
    if kind == "startup" and ok:
        st.started = True
    elif kind == "readiness":
        st.readiness_ok = ok
    _update_ready(spec, st)
    refresh(spec, status, now)


def container_start_failed(
    spec: PodSpec,
    status: PodStatus,
    name: str,
    message: str,
    exit_code: int,
    now: float,
    policy: BackoffPolicy,
) -> list[PodEvent]:
    """The process could not be started (exec failed): kubelet reports it as terminated with
    reason StartError, and the restart policy applies as for any other exit."""
    st = status.container(name)
    st.started_at = None
    events = [PodEvent(EventType.WARNING, "Failed", f"Error: {message}", name)]
    return events + _terminate(
        spec, status, st, exit_code, 0, Reason.START_ERROR, message, now, now, policy
    )


def container_create_failed(
    spec: PodSpec,
    status: PodStatus,
    name: str,
    message: str,
    now: float,
    policy: BackoffPolicy,
) -> list[PodEvent]:
    """The container could not be created (a mount failed, its image config is unusable):
    kubelet leaves it waiting with reason CreateContainerError and tries again on a later
    sync; here, after the restart backoff. Nothing ran, so nothing is terminated."""
    st = status.container(name)
    st.starting = False
    st.state, st.reason, st.message = ContainerState.WAITING, Reason.CREATE_CONTAINER_ERROR, message
    step = next_restart(policy, st.backoff, 0.0)
    st.backoff = step.next
    st.restart_at = now + max(step.delay, policy.initial)
    refresh(spec, status, now)
    return [PodEvent(EventType.WARNING, "Failed", f"Error: {message}", name)]


def container_exited(
    spec: PodSpec,
    status: PodStatus,
    name: str,
    exit_code: int,
    signal: int,
    now: float,
    policy: BackoffPolicy,
    *,
    oom_killed: bool = False,
) -> list[PodEvent]:
    """An instance exited; `oom_killed` when the kernel's OOM killer ended it (its cgroup
    counted an OOM kill), which kubelet reports as reason OOMKilled."""
    st = status.container(name)
    reason = Reason.COMPLETED if exit_code == 0 else Reason.ERROR
    if oom_killed:
        reason = Reason.OOM_KILLED
    started = st.started_at if st.started_at is not None else now
    return _terminate(spec, status, st, exit_code, signal, reason, "", started, now, policy)


def container_lost(
    spec: PodSpec, status: PodStatus, name: str, now: float, policy: BackoffPolicy
) -> list[PodEvent]:
    """An instance that should be running is not, and nobody saw its exit (a supd took the
    pod over and its infra no longer knew it): kubelet's ContainerStatusUnknown, 137."""
    st = status.container(name)
    started = st.started_at if st.started_at is not None else now
    return _terminate(
        spec, status, st, 137, 9, Reason.CONTAINER_STATUS_UNKNOWN,
        "The container could not be located when the pod was restored", started, now, policy,
    )  # fmt: skip


def _terminate(
    spec: PodSpec,
    status: PodStatus,
    st: ContainerStatus,
    exit_code: int,
    signal: int,
    reason: str,
    message: str,
    started_at: float,
    now: float,
    policy: BackoffPolicy,
) -> list[PodEvent]:
    if st.terminated is not None and st.state is not ContainerState.TERMINATED:
        # It was waiting to restart and failed again: the older record becomes lastState.
        st.last_state = st.terminated
    st.state = ContainerState.TERMINATED
    st.starting = st.ready = st.started = st.hooking = st.readiness_ok = False
    st.pid = 0
    st.terminated = Terminated(
        exit_code=exit_code,
        reason=reason,
        finished_at=now,
        started_at=started_at,
        signal=signal,
        message=message,
        container_id=container_id(spec.uid, st.name, st.instance),
    )
    st.started_at = None
    events: list[PodEvent] = []
    if not status.stopping and should_restart(spec.restart_policy, st.init, exit_code, st.sidecar):
        step = next_restart(policy, st.backoff, now - started_at)
        st.backoff = step.next
        st.restart_at = now + step.delay
        if step.delay > 0:
            st.state = ContainerState.WAITING
            st.reason = Reason.CRASH_LOOP_BACK_OFF
            st.message = (
                f"back-off {_seconds(step.delay)} restarting failed container={st.name} "
                f"pod={spec.name}_{spec.namespace}({spec.uid})"
            )
            events.append(
                PodEvent(
                    EventType.WARNING,
                    "BackOff",
                    f"Back-off restarting failed container {st.name} in pod "
                    f"{spec.name}_{spec.namespace}({spec.uid})",
                    st.name,
                )
            )
    else:
        st.restart_at = None
    refresh(spec, status, now)
    return events


def backoff_expired(spec: PodSpec, status: PodStatus, name: str, now: float) -> None:
    """A CrashLoopBackOff wait is over: the container is about to be created again."""
    st = status.container(name)
    if st.state is ContainerState.WAITING and st.reason == Reason.CRASH_LOOP_BACK_OFF:
        st.reason, st.message = Reason.CONTAINER_CREATING, ""


def start_stopping(spec: PodSpec, status: PodStatus, now: float) -> None:
    """The termination sequence begins (deletion, a deadline, or the pod is done): from now
    on nothing restarts."""
    status.stopping = True
    for st in status.all():
        st.restart_at = None
        if st.state is ContainerState.WAITING and st.terminated is not None:
            st.state = ContainerState.TERMINATED  # a pending restart will not happen
    refresh(spec, status, now)


def deadline_exceeded(spec: PodSpec, status: PodStatus, now: float) -> list[PodEvent]:
    """activeDeadlineSeconds passed: the pod fails for good (kubelet's
    pkg/kubelet/active_deadline.go), and its containers are stopped."""
    status.phase = Phase.FAILED
    status.reason = "DeadlineExceeded"
    status.message = "Pod was active on the node longer than the specified deadline"
    refresh(spec, status, now)
    return [PodEvent(EventType.WARNING, "DeadlineExceeded", status.message)]


def container_id(uid: str, name: str, instance: int) -> str:
    """The containerID Kubernetes shows: runtime scheme + an id unique to the instance."""
    return f"supervisor://{uid}/{name}/{instance}"


def _seconds(delay: float) -> str:
    """Go's Duration.String for whole seconds and minutes: 10s, 40s, 1m20s, 5m0s."""
    total = round(delay)
    minutes, seconds = divmod(total, 60)
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


# -- phase and conditions -------------------------------------------------------------------


def compute_phase(spec: PodSpec, status: PodStatus) -> Phase:
    """kubelet's getPhase (pkg/kubelet/kubelet_pods.go), sidecars included: a sidecar that
    runs counts as running, one that has stopped does not count at all."""
    if status.phase.terminal:
        return status.phase  # terminal phases never change
    pending_init = failed_init = 0
    running = waiting = stopped = succeeded = 0
    for st in status.init_containers:
        if st.sidecar:
            if st.running:
                running += 1
                pending_init += not st.started
            elif st.terminated is None:
                pending_init += 1
                waiting += 1
        elif st.running or st.instance == 0:
            pending_init += 1
        elif st.terminated is not None and st.terminated.exit_code != 0:
            failed_init += 1
        elif not st.succeeded:
            pending_init += 1
    for st in status.containers:
        if st.running:
            running += 1
        elif st.state is ContainerState.TERMINATED:
            stopped += 1
            succeeded += st.succeeded
        elif st.terminated is not None:  # waiting to restart after an exit
            stopped += 1
        else:
            waiting += 1
    policy = spec.restart_policy
    if failed_init and policy == RestartPolicy.NEVER:
        return Phase.FAILED
    if (pending_init and not _any_regular_started(status)) or waiting:
        return Phase.PENDING
    if running:
        return Phase.RUNNING
    if stopped:
        if policy == RestartPolicy.ALWAYS:
            return Phase.RUNNING
        if stopped == succeeded:
            return Phase.SUCCEEDED
        if policy == RestartPolicy.NEVER:
            return Phase.FAILED
        return Phase.RUNNING
    return Phase.PENDING


def _any_regular_started(status: PodStatus) -> bool:
    return any(st.instance for st in status.containers)


def refresh(spec: PodSpec, status: PodStatus, now: float) -> None:
    """Recompute the phase and the conditions after any change."""
    status.phase = compute_phase(spec, status)
    is_init = initialized(status)
    not_init = [
        st.name
        for st in status.init_containers
        if not ((st.running and st.started) if st.sidecar else st.succeeded)
    ]
    unready = [st.name for st in status.all() if (st.sidecar or not st.init) and not st.ready]
    completed = status.phase is Phase.SUCCEEDED
    ready_reason = "PodCompleted" if completed else "ContainersNotReady" if unready else ""
    ready_message = (
        ""
        if completed or not unready
        else (f"containers with unready status: [{' '.join(unready)}]")
    )
    _set(status, ConditionType.POD_SCHEDULED, True, now)
    _set(status, ConditionType.READY_TO_START, status.sandbox_ready, now)
    _set(
        status,
        ConditionType.INITIALIZED,
        is_init,
        now,
        "" if is_init else "ContainersNotInitialized",
        "" if is_init else f"containers with incomplete status: [{' '.join(not_init)}]",
    )
    ready = not unready and not completed
    _set(status, ConditionType.CONTAINERS_READY, ready, now, ready_reason, ready_message)
    _set(status, ConditionType.READY, ready, now, ready_reason, ready_message)


def _set(
    status: PodStatus, kind: str, value: bool, now: float, reason: str = "", message: str = ""
) -> None:
    old = status.conditions.get(kind)
    since = old.last_transition if old is not None and old.status == value else now
    status.conditions[kind] = Condition(kind, value, since, reason, message)
