"""signals.decide and its parsers: the table of what supd does with each signal (pure)."""

from __future__ import annotations

import signal

import pytest

from supervisor.errors import InvalidArgument
from supervisor.signals import (
    Act,
    Decision,
    Forward,
    SignalPolicy,
    Target,
    decide,
    parse_rewrites,
    parse_signal,
    pod_policy,
    signal_name,
    taken_signals,
)

S = signal.Signals
PROCESS = SignalPolicy()
GROUP = SignalPolicy(Target.GROUP)
REWRITE = SignalPolicy(rewrite=((S.SIGHUP, S.SIGUSR1), (S.SIGWINCH, 0), (S.SIGTSTP, S.SIGUSR2)))


@pytest.mark.parametrize(
    ("signo", "policy", "pid1", "stopping", "want"),
    [
        (S.SIGCHLD, PROCESS, True, False, Decision(Act.REAP)),
        (S.SIGTERM, PROCESS, True, False, Decision(Act.SHUTDOWN)),
        (S.SIGINT, GROUP, False, False, Decision(Act.SHUTDOWN)),
        (
            S.SIGTERM,
            PROCESS,
            True,
            True,
            Decision(Act.KILL, why="second shutdown signal: SIGKILL now"),
        ),
        (
            S.SIGINT,
            PROCESS,
            False,
            True,
            Decision(Act.KILL, why="second shutdown signal: SIGKILL now"),
        ),
        (S.SIGHUP, PROCESS, True, False, Decision(Act.FORWARD, Forward(S.SIGHUP, False))),
        (S.SIGHUP, GROUP, True, False, Decision(Act.FORWARD, Forward(S.SIGHUP, True))),
        (S.SIGHUP, PROCESS, True, True, Decision(Act.FORWARD, Forward(S.SIGHUP, False))),
        (S.SIGUSR1, PROCESS, False, False, Decision(Act.FORWARD, Forward(S.SIGUSR1, False))),
        (S.SIGQUIT, GROUP, True, False, Decision(Act.FORWARD, Forward(S.SIGQUIT, True))),
        (S.SIGWINCH, PROCESS, True, False, Decision(Act.FORWARD, Forward(S.SIGWINCH, False))),
        (S.SIGCONT, PROCESS, False, False, Decision(Act.FORWARD, Forward(S.SIGCONT, False))),
        (S.SIGRTMIN + 3, GROUP, True, False, Decision(Act.FORWARD, Forward(S.SIGRTMIN + 3, True))),
        # rewrites (dumb-init's --rewrite), 0 drops
        (S.SIGHUP, REWRITE, True, False, Decision(Act.FORWARD, Forward(S.SIGUSR1, False))),
        (S.SIGWINCH, REWRITE, True, False, Decision(Act.DROP, why="rewritten to 0")),
        (S.SIGUSR2, REWRITE, True, False, Decision(Act.FORWARD, Forward(S.SIGUSR2, False))),
        # terminal stop signals: forwarded as PID 1, SIGSTOP + suspend otherwise
        (S.SIGTSTP, PROCESS, True, False, Decision(Act.FORWARD, Forward(S.SIGTSTP, False))),
        (S.SIGTTIN, GROUP, True, False, Decision(Act.FORWARD, Forward(S.SIGTTIN, True))),
        (S.SIGTSTP, PROCESS, False, False, Decision(Act.SUSPEND, Forward(S.SIGSTOP, False))),
        (S.SIGTTOU, GROUP, False, False, Decision(Act.SUSPEND, Forward(S.SIGSTOP, True))),
        (S.SIGTSTP, REWRITE, False, False, Decision(Act.SUSPEND, Forward(S.SIGUSR2, False))),
        (S.SIGTSTP, REWRITE, True, False, Decision(Act.FORWARD, Forward(S.SIGUSR2, False))),
        # never forwarded
        (
            S.SIGSEGV,
            PROCESS,
            True,
            False,
            Decision(Act.DROP, why="fault signals are not forwarded"),
        ),
        (S.SIGBUS, GROUP, False, False, Decision(Act.DROP, why="fault signals are not forwarded")),
        (
            S.SIGABRT,
            PROCESS,
            True,
            False,
            Decision(Act.DROP, why="fault signals are not forwarded"),
        ),
        (
            S.SIGPIPE,
            PROCESS,
            True,
            False,
            Decision(Act.DROP, why="raised by supd's own writes or limits"),
        ),
        (
            S.SIGXFSZ,
            PROCESS,
            True,
            False,
            Decision(Act.DROP, why="raised by supd's own writes or limits"),
        ),
        (S.SIGKILL, PROCESS, True, False, Decision(Act.DROP, why="cannot be caught")),
    ],
)
def test_decide(
    signo: int, policy: SignalPolicy, pid1: bool, stopping: bool, want: Decision
) -> None:
    assert decide(signo, policy, pid1=pid1, shutting_down=stopping) == want


def test_taken_signals_are_everything_but_faults_and_supds_own() -> None:
    taken = taken_signals()
    assert {S.SIGCHLD, S.SIGTERM, S.SIGINT, S.SIGHUP, S.SIGWINCH, S.SIGTSTP} <= taken
    assert {S.SIGRTMIN, S.SIGRTMAX} <= taken
    assert not taken & {S.SIGSEGV, S.SIGBUS, S.SIGPIPE, S.SIGKILL, S.SIGSTOP, S.SIGXCPU}
    assert not taken & {32, 33}  # glibc's own real-time signals
    for signo in taken:  # every one has a decision other than "cannot be caught"
        d = decide(signo, PROCESS, pid1=True, shutting_down=False)
        assert d.act is not Act.DROP or d.why == "rewritten to 0"


@pytest.mark.parametrize(
    ("text", "signo"),
    [
        ("HUP", S.SIGHUP),
        ("sighup", S.SIGHUP),
        ("SIGUSR2", S.SIGUSR2),
        ("1", 1),
        ("0", 0),
        ("RTMIN", S.SIGRTMIN),
        ("SIGRTMIN+2", S.SIGRTMIN + 2),
        ("rtmax-1", S.SIGRTMAX - 1),
        ("RTMAX", S.SIGRTMAX),
    ],
)
def test_parse_signal(text: str, signo: int) -> None:
    assert parse_signal(text) == signo


@pytest.mark.parametrize("text", ["", "NOPE", "SIGRTMIN-1", "RTMAX+1", "RTMIN+", "32", "65", "-1"])
def test_parse_signal_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_signal(text)


def test_signal_name() -> None:
    assert signal_name(S.SIGHUP) == "SIGHUP"
    assert signal_name(S.SIGRTMIN + 2) == "SIGRTMIN+2"
    assert all(parse_signal(signal_name(s)) == s for s in taken_signals())


def test_parse_rewrites() -> None:
    assert parse_rewrites(["HUP:USR1,WINCH:0", "QUIT:TERM", "HUP:2"]) == (
        (S.SIGHUP, S.SIGINT),
        (S.SIGQUIT, S.SIGTERM),
        (S.SIGWINCH, 0),
    )
    assert parse_rewrites([""]) == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("HUP", "is not FROM:TO"),
        ("TERM:QUIT", "SIGTERM is never forwarded"),
        ("INT:0", "SIGINT is never forwarded"),
        ("CHLD:HUP", "SIGCHLD is never forwarded"),
        ("SEGV:HUP", "supd never receives SIGSEGV"),
        ("KILL:HUP", "supd never receives SIGKILL"),
        ("0:HUP", "FROM must be a signal"),
        ("HUP:BOGUS", "invalid signal name"),
    ],
)
def test_parse_rewrites_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rewrites([text])


def test_pod_policy_annotations_override_and_merge() -> None:
    default = SignalPolicy(Target.PROCESS, ((S.SIGHUP, S.SIGUSR1), (S.SIGQUIT, 0)))
    assert pod_policy({}, default) == default
    got = pod_policy(
        {"supd/signal-target": "group", "supd/signal-rewrite": "HUP:USR2, WINCH:0"}, default
    )
    assert got == SignalPolicy(
        Target.GROUP, ((S.SIGHUP, S.SIGUSR2), (S.SIGQUIT, 0), (S.SIGWINCH, 0))
    )


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        (
            {"supd/signal-target": "pgroup"},
            "metadata.annotations[supd/signal-target]: Invalid value: 'pgroup': "
            'supported values: "group", "process"',
        ),
        (
            {"supd/signal-rewrite": "TERM:KILL"},
            "metadata.annotations[supd/signal-rewrite]: Invalid value: 'TERM:KILL': SIGTERM is "
            "never forwarded",
        ),
    ],
)
def test_pod_policy_rejects_bad_annotations(annotations: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        pod_policy(annotations, SignalPolicy())
    assert str(info.value).startswith(message)
