"""Kubernetes's `$(VAR)` expansion in command, args and env values. Pure.

Rules (k8s.io/kubernetes third_party/forked/golang/expansion): `$(NAME)` becomes the value
of NAME when it is defined, and stays as written when it is not; `$$` is an escaped `$`, so
`$$(NAME)` yields the literal `$(NAME)`; any other `$` is kept. An env value may refer to
variables defined before it in the list.

Imports only the spec leaf.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .spec import DEFAULT_PATH, ContainerSpec, PodSpec


def expand(text: str, env: Mapping[str, str]) -> str:
    if "$" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 == n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:
                out.append(text[i:])
                break
            name = text[i + 2 : close]
            out.append(env[name] if name in env else text[i : close + 1])
            i = close + 1
        else:
            out.append("$")
            i += 1
    return "".join(out)


def expand_env(pairs: Iterable[tuple[str, str]], base: Mapping[str, str]) -> dict[str, str]:
    """Each value expanded against `base` plus the variables defined before it."""
    env = dict(base)
    for name, value in pairs:
        env[name] = expand(value, env)
    return env


def container_env(
    spec: PodSpec, container: ContainerSpec, hostname: str | None = None
) -> dict[str, str]:
    """The environment a container starts with, and an exec into it gets (as kubectl exec
    does): PATH and HOSTNAME unless the spec sets them, then the spec's env in order.
    HOSTNAME is the pod's, or `hostname` for a pod in the host's UTS namespace."""
    base = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname or spec.pod_hostname}
    return expand_env(container.env, base)
