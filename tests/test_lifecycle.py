"""The pod state machine without processes: events in, decisions and statuses out.

Every test drives `supervisor.lifecycle` with a fake clock; nothing sleeps.
"""

from __future__ import annotations

import dataclasses

import pytest

from supervisor import lifecycle as lc
from supervisor.backoff import BackoffPolicy, next_restart
from supervisor.lifecycle import RestartLater, StartContainer, StopPod, StopSandbox
from supervisor.podview import render_pod, rfc3339
from supervisor.spec import ContainerSpec, Handler, PodSpec, Probe
from supervisor.states import ContainerState, Phase, Reason

POLICY = BackoffPolicy(initial=10, maximum=300, reset_after=600)


def pod(restart: str = "Always", init: int = 0, main: int = 1) -> PodSpec:
    return PodSpec(
        name="p",
        uid="u1",
        restart_policy=restart,
        init_containers=tuple(ContainerSpec(f"i{n}", command=("true",)) for n in range(init)),
        containers=tuple(ContainerSpec(f"c{n}", command=("sleep", "1")) for n in range(main)),
    )


class Sim:
    """Plays the runtime's part: applies each decision the way the runtime would."""

    def __init__(self, spec: PodSpec, t: float = 1000.0) -> None:
        self.spec, self.t = spec, t
        self.status = lc.new_status(spec, t)
        self.instance = 0
        lc.sandbox_created(spec, self.status, t)

    def actions(self) -> list[lc.Action]:
        return lc.compute_pod_actions(self.spec, self.status, self.t)

    def start(self, name: str) -> None:
        self.instance += 1
        lc.container_starting(self.status.container(name), self.instance)
        lc.container_started(self.spec, self.status, name, 100 + self.instance, self.t)

    def exit(self, name: str, code: int, after: float = 1.0) -> list[lc.PodEvent]:
        self.t += after
        return lc.container_exited(self.spec, self.status, name, code, 0, self.t, POLICY)

    @property
    def phase(self) -> Phase:
        return self.status.phase


@pytest.mark.parametrize(
    ("pending", "ran", "delay", "nxt"),
    [
        (0, 1, 0, 10),  # first restart at once
        (10, 1, 10, 20),
        (20, 1, 20, 40),
        (160, 1, 160, 300),
        (300, 1, 300, 300),  # capped
        (300, 600, 0, 10),  # ran 10 minutes: starts over
        (300, 599.9, 300, 300),
    ],
)
def test_backoff_table(pending: float, ran: float, delay: float, nxt: float) -> None:
    step = next_restart(POLICY, pending, ran)
    assert (step.delay, step.next) == (delay, nxt)


def test_init_containers_run_one_at_a_time_in_order() -> None:
    s = Sim(pod(init=2, main=2))
    assert s.actions() == [StartContainer("i0", True)]
    assert s.phase is Phase.PENDING
    s.start("i0")
    assert s.actions() == []  # wait for it to finish
    s.exit("i0", 0)
    assert s.actions() == [StartContainer("i1", True)]
    s.start("i1")
    s.exit("i1", 0)
    assert s.status.conditions["Initialized"].status is True
    assert s.actions() == [StartContainer("c0", False), StartContainer("c1", False)]


def test_main_containers_wait_as_pod_initializing() -> None:
    s = Sim(pod(init=1))
    assert s.status.container("c0").reason == Reason.POD_INITIALIZING
    assert s.status.conditions["Initialized"].message == "containers with incomplete status: [i0]"


@pytest.mark.parametrize(
    ("restart", "code", "phase", "restarts"),
    [
        ("Always", 0, Phase.RUNNING, True),
        ("Always", 1, Phase.RUNNING, True),
        ("OnFailure", 0, Phase.SUCCEEDED, False),
        ("OnFailure", 2, Phase.RUNNING, True),
        ("Never", 0, Phase.SUCCEEDED, False),
        ("Never", 3, Phase.FAILED, False),
    ],
)
def test_restart_policy_table(restart: str, code: int, phase: Phase, restarts: bool) -> None:
    s = Sim(pod(restart))
    s.start("c0")
    assert s.phase is Phase.RUNNING
    s.exit("c0", code)
    assert s.phase is phase
    st = s.status.container("c0")
    assert (st.restart_at is not None) is restarts
    if restarts:
        assert s.actions() == [StartContainer("c0", False)]  # first restart is immediate
    elif phase.terminal:
        assert s.actions() == [StopSandbox()]
        assert st.state is ContainerState.TERMINATED
        assert st.terminated is not None
        assert st.terminated.reason == ("Completed" if code == 0 else "Error")


def test_crash_loop_backoff_doubles_and_counts_restarts() -> None:
    s = Sim(pod())
    s.start("c0")
    s.exit("c0", 1)
    s.start("c0")  # immediate restart
    st = s.status.container("c0")
    assert st.restart_count == 1
    assert st.last_state is not None and st.last_state.exit_code == 1
    events = s.exit("c0", 1)
    assert [e.reason for e in events] == ["BackOff"]
    assert st.state is ContainerState.WAITING and st.reason == Reason.CRASH_LOOP_BACK_OFF
    assert st.message.startswith("back-off 10s restarting failed container=c0 pod=p_default(u1)")
    assert s.actions() == [RestartLater("c0", s.t + 10)]
    assert s.phase is Phase.RUNNING  # kubelet: Always + all stopped = Running
    s.t += 10
    assert s.actions() == [StartContainer("c0", False)]
    s.start("c0")
    assert st.restart_count == 2
    s.exit("c0", 1)
    assert s.actions() == [RestartLater("c0", s.t + 20)]
    view = render_pod(s.spec, s.status, node="n")
    cs = view["status"]["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["restartCount"] == 2


def test_backoff_resets_after_a_long_run() -> None:
    s = Sim(pod())
    for _ in range(3):
        s.start("c0")
        s.exit("c0", 1)
        s.t = s.status.container("c0").restart_at or s.t
    s.start("c0")
    s.exit("c0", 1, after=600)
    assert s.actions() == [StartContainer("c0", False)]


def test_failed_init_container_with_never_fails_the_pod() -> None:
    s = Sim(pod("Never", init=1))
    s.start("i0")
    s.exit("i0", 7)
    assert s.phase is Phase.FAILED
    assert s.actions() == [StopSandbox()]
    assert s.status.container("c0").instance == 0  # never started


@pytest.mark.parametrize("restart", ["Always", "OnFailure"])
def test_failed_init_container_is_retried(restart: str) -> None:
    s = Sim(pod(restart, init=1))
    s.start("i0")
    s.exit("i0", 1)
    assert s.phase is Phase.PENDING
    assert s.actions() == [StartContainer("i0", True)]


def test_succeeded_init_container_is_not_rerun_under_always() -> None:
    s = Sim(pod("Always", init=1))
    s.start("i0")
    s.exit("i0", 0)
    assert s.status.container("i0").restart_at is None
    assert s.actions() == [StartContainer("c0", False)]


def test_start_error_is_terminated_with_shell_exit_code() -> None:
    s = Sim(pod("Never"))
    lc.container_starting(s.status.container("c0"), 1)
    events = lc.container_start_failed(
        s.spec, s.status, "c0", "exec nope: No such file or directory", 127, s.t, POLICY
    )
    assert [e.reason for e in events] == ["Failed"]
    t = s.status.container("c0").terminated
    assert t is not None and (t.reason, t.exit_code) == ("StartError", 127)
    assert t.message == "exec nope: No such file or directory"
    assert s.phase is Phase.FAILED


def test_two_containers_never_one_fails_other_runs() -> None:
    s = Sim(pod("Never", main=2))
    s.start("c0")
    s.start("c1")
    s.exit("c0", 1)
    assert s.phase is Phase.RUNNING
    s.exit("c1", 0)
    assert s.phase is Phase.FAILED


def test_conditions_and_their_transition_times() -> None:
    s = Sim(pod(main=2))
    t0 = s.t
    assert s.status.conditions["PodReadyToStartContainers"].status is True
    assert s.status.conditions["Ready"].message == "containers with unready status: [c0 c1]"
    s.t += 5
    s.start("c0")
    s.start("c1")
    ready = s.status.conditions["Ready"]
    assert ready.status is True and ready.last_transition == t0 + 5
    assert s.status.conditions["PodScheduled"].last_transition == t0  # unchanged since
    s.exit("c0", 1, after=3)
    assert s.status.conditions["ContainersReady"].status is False
    assert s.status.conditions["ContainersReady"].last_transition == t0 + 8


def test_completed_pod_ready_reason() -> None:
    s = Sim(pod("Never"))
    s.start("c0")
    s.exit("c0", 0)
    assert s.status.conditions["Ready"].reason == "PodCompleted"


def test_terminal_phase_is_sticky() -> None:
    s = Sim(pod("Never"))
    s.start("c0")
    s.exit("c0", 0)
    lc.sandbox_gone(s.spec, s.status, s.t)
    assert s.phase is Phase.SUCCEEDED
    assert s.actions() == []


def test_deleting_stops_restarts() -> None:
    s = Sim(pod())
    s.start("c0")
    lc.start_stopping(s.spec, s.status, s.t)
    s.exit("c0", 143)
    assert s.status.container("c0").restart_at is None
    assert s.actions() == []


def test_image_container_waits_with_err_image_never_pull() -> None:
    spec = PodSpec(name="p", uid="u", containers=(ContainerSpec("c", image="busybox"),))
    s = Sim(spec)
    st = s.status.container("c")
    assert s.actions() == [StartContainer("c", False)]
    st.reason = Reason.ERR_IMAGE_NEVER_PULL  # what the runtime records
    assert s.actions() == []
    assert s.phase is Phase.PENDING


def test_render_matches_v1_pod_shape() -> None:
    s = Sim(pod(init=1))
    s.start("i0")
    s.exit("i0", 0)
    s.start("c0")
    obj = render_pod(s.spec, s.status, node="host")
    st = obj["status"]
    assert st["phase"] == "Running"
    assert [c["type"] for c in st["conditions"]] == [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    assert all(c["status"] in ("True", "False") for c in st["conditions"])
    assert st["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    c0 = st["containerStatuses"][0]
    assert set(c0["state"]) == {"running"} and c0["ready"] and c0["started"]
    assert st["startTime"].endswith("Z")
    assert obj["spec"]["nodeName"] == "host"


def test_render_copies_the_manifest_and_writes_whole_utc_seconds() -> None:
    manifest = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}
    spec = dataclasses.replace(pod(), manifest=manifest)
    s = Sim(spec)
    s.status.created_at = 1764686400.999  # 2025-12-02T14:40:00.999Z
    obj = render_pod(s.spec, s.status, node="host")
    assert obj["metadata"]["creationTimestamp"] == "2025-12-02T14:40:00Z"
    obj["metadata"]["labels"]["a"] = "changed"
    obj["spec"]["containers"][0]["name"] = "changed"
    assert manifest == {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}
    for ts, wire in [(0.0, "1970-01-01T00:00:00Z"), (59.5, "1970-01-01T00:00:59Z"), (None, None)]:
        assert rfc3339(ts) == wire


# -- issue 3: postStart, probes, sidecars, stopping ---------------------------------------------


EXEC = Handler("exec", command=("true",))


def probe() -> Probe:
    return Probe(EXEC)


def test_post_start_holds_running_and_the_next_container() -> None:
    spec = PodSpec(
        name="p",
        uid="u",
        init_containers=(
            ContainerSpec("side", command=("x",), restart_policy="Always", post_start=EXEC),
            ContainerSpec("after", command=("x",)),
        ),
        containers=(ContainerSpec("c", command=("x",)),),
    )
    s = Sim(spec)
    assert s.actions() == [StartContainer("side", True)]
    s.start("side")
    st = s.status.container("side")
    assert st.hooking and st.state is ContainerState.WAITING and st.reason == "ContainerCreating"
    assert s.actions() == []  # `after` waits for the hook
    lc.post_start_done(spec, s.status, "side", s.t)
    assert st.running and st.started
    assert s.actions() == [StartContainer("after", True)]


def test_probe_results_drive_started_and_ready() -> None:
    spec = PodSpec(
        name="p",
        uid="u",
        containers=(
            ContainerSpec("c", command=("x",), startup_probe=probe(), readiness_probe=probe()),
        ),
    )
    s = Sim(spec)
    s.start("c")
    st = s.status.container("c")
    assert st.running and not st.started and not st.ready
    assert s.status.conditions["Ready"].status is False
    lc.probe_result(spec, s.status, "c", "readiness", True, s.t)
    assert not st.ready  # readiness does not count before the startup probe passed
    lc.probe_result(spec, s.status, "c", "startup", True, s.t)
    assert st.started and st.ready  # the readiness result seen earlier now counts
    assert s.status.conditions["Ready"].status is True
    lc.probe_result(spec, s.status, "c", "readiness", False, s.t + 1)
    assert not st.ready and s.status.conditions["ContainersReady"].status is False


def sidecar_pod(restart: str = "Never") -> PodSpec:
    return PodSpec(
        name="p",
        uid="u",
        restart_policy=restart,
        init_containers=(
            ContainerSpec("log", command=("x",), restart_policy="Always", startup_probe=probe()),
        ),
        containers=(ContainerSpec("c", command=("x",)),),
    )


def test_sidecar_must_start_before_the_next_container() -> None:
    spec = sidecar_pod()
    s = Sim(spec)
    s.start("log")
    assert s.actions() == []  # startup probe not passed yet
    assert s.phase is Phase.PENDING
    lc.probe_result(spec, s.status, "log", "startup", True, s.t)
    assert s.actions() == [StartContainer("c", False)]
    s.start("c")
    assert s.phase is Phase.RUNNING
    assert s.status.conditions["Initialized"].status is True


def test_sidecar_restarts_whatever_the_policy_and_does_not_keep_the_pod() -> None:
    spec = sidecar_pod("Never")
    s = Sim(spec)
    s.start("log")
    lc.probe_result(spec, s.status, "log", "startup", True, s.t)
    s.start("c")
    s.exit("log", 1)  # the sidecar crashes: it restarts although the pod says Never
    assert s.actions() == [StartContainer("log", True)]
    s.start("log")
    assert s.status.container("log").restart_count == 1
    s.exit("c", 0)  # the main container is done: the pod stops, sidecar included
    assert s.actions() == [StopPod()]
    assert s.phase is Phase.RUNNING  # until the sidecar has stopped
    lc.start_stopping(spec, s.status, s.t)
    s.exit("log", 143)
    assert s.phase is Phase.SUCCEEDED  # a stopped sidecar does not count
    assert s.actions() == []


def test_stopping_cancels_a_pending_restart() -> None:
    s = Sim(pod())
    s.start("c0")
    s.exit("c0", 1)
    s.start("c0")
    s.exit("c0", 1)  # now waiting in CrashLoopBackOff
    lc.start_stopping(s.spec, s.status, s.t)
    st = s.status.container("c0")
    assert st.restart_at is None and st.state is ContainerState.TERMINATED


def test_deadline_exceeded_fails_the_pod() -> None:
    s = Sim(pod())
    s.start("c0")
    events = lc.deadline_exceeded(s.spec, s.status, s.t)
    assert s.phase is Phase.FAILED and s.status.reason == "DeadlineExceeded"
    assert [e.reason for e in events] == ["DeadlineExceeded"]
    assert s.actions() == [StopPod()]
    s.exit("c0", 137)
    assert s.phase is Phase.FAILED


def test_a_container_being_restarted_does_not_end_the_pod() -> None:
    """Between its START and its start report, a restarted container still shows its last
    termination with no restart planned: asking again then must not stop the pod."""
    s = Sim(pod("Always"))
    s.start("c0")
    s.exit("c0", 1)
    assert s.actions() == [StartContainer("c0", False)]
    s.instance += 1
    lc.container_starting(s.status.container("c0"), s.instance)  # the START is on its way
    assert s.actions() == []
