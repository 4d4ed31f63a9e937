"""How supctl prints pods and events, the way kubectl does. Pure: v1 Pod dicts and `now`
in, text out, so every rule is tested with a fixed clock.

STATUS, RESTARTS and AGE follow kubectl's own rules (pkg/printers/internalversion/
printers.go printPod, apimachinery duration.HumanDuration); describe follows kubectl's
describePod layout; tables are aligned like Go's text/tabwriter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

DEFAULT_NAMESPACE = "default"

# -- times -------------------------------------------------------------------------------

_TIME_RE = re.compile(r"(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:?\d\d)?")


def parse_time(value: Any) -> datetime | None:
    """An RFC3339 time (fractions to nanoseconds) as an aware datetime; None if absent/bad."""
    if not isinstance(value, str):
        return None
    m = _TIME_RE.fullmatch(value.strip())
    if m is None:
        return None
    day, clock, frac, tz = m.groups()
    text = f"{day}T{clock}"
    if frac:
        text += "." + (frac + "000000")[:6]
    text += "+00:00" if tz is None or tz in "Zz" else tz
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def human_duration(d: timedelta) -> str:
    """kubectl's AGE: apimachinery duration.HumanDuration, ~2-3 significant figures."""
    micros = (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds
    seconds = abs(micros) // 1_000_000 * (1 if micros >= 0 else -1)  # Go truncates to zero
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


def since(now: datetime, value: Any) -> str:
    t = parse_time(value)
    return "<unknown>" if t is None else human_duration(now - t)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def rfc1123z(value: Any, tz: tzinfo | None = None) -> str:
    """Go's time.RFC1123Z in the local zone (or `tz`), independent of the C locale."""
    t = parse_time(value)
    if t is None:
        return "<unknown>"
    t = t.astimezone(tz)
    offset = t.strftime("%z") or "+0000"
    return (
        f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} {offset}"
    )


# -- tables ------------------------------------------------------------------------------


class TablePrinter:
    """kubectl's table layout (cli-runtime printers: tabwriter minwidth 6, padding 3): each
    column but the last is padded to its widest cell + 3. Widths are remembered across
    batches, as kubectl's RememberWidths does, so that rows printed by a watch line up."""

    def __init__(self, header: Sequence[str], *, minwidth: int = 6, padding: int = 3) -> None:
        self.header = list(header)
        self._widths = [0] * (len(header) - 1)
        self._minwidth = minwidth
        self._padding = padding
        self._started = False

    def format(self, rows: Iterable[Sequence[str]]) -> str:
        batch = [list(r) for r in rows]
        if not self._started:
            batch.insert(0, self.header)
            self._started = True
        for row in batch:
            for j, cell in enumerate(row[:-1]):
                self._widths[j] = max(self._widths[j], len(cell) + self._padding, self._minwidth)
        return "".join(
            "".join(c.ljust(w) for c, w in zip(row[:-1], self._widths, strict=True))
            + row[-1]
            + "\n"
            for row in batch
        )


def tabwrite(text: str, *, minwidth: int = 0, padding: int = 2) -> str:
    """Go's text/tabwriter (padchar ' ', no flags) over `text`: a tab ends a cell, and cells
    of one column are aligned across the consecutive lines that have that column (a column
    block), as kubectl describe lays out its output."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            parts = []
            for j, cell in enumerate(cells):
                if j < len(widths) and j < len(cells) - 1:
                    parts.append(cell.ljust(widths[j]))
                else:
                    parts.append(cell)
            out.append("".join(parts) + ("\n" if i + 1 < len(lines) else ""))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    return "".join(out)


# -- pods --------------------------------------------------------------------------------


def as_map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _restartable(container: Any) -> bool:
    """A native sidecar: an init container with restartPolicy Always."""
    return isinstance(container, dict) and container.get("restartPolicy") == "Always"


def _condition_true(status: Mapping[str, Any], kind: str) -> bool:
    for c in as_list(status.get("conditions")):
        if as_map(c).get("type") == kind:
            return as_map(c).get("status") == "True"
    return False


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


@dataclass(frozen=True, slots=True)
class PodSummary:
    namespace: str
    name: str
    ready: str
    status: str
    restarts: str
    age: str
    ip: str
    node: str


def summarize_pod(pod: Mapping[str, Any], now: datetime) -> PodSummary:
    """The columns of `kubectl get pods`, computed by kubectl's printPod rules."""
    meta, spec, status = (
        as_map(pod.get("metadata")),
        as_map(pod.get("spec")),
        as_map(pod.get("status")),
    )
    init_specs = [c for c in as_list(spec.get("initContainers")) if isinstance(c, dict)]
    init_by_name = {c.get("name"): c for c in init_specs}
    total = len(as_list(spec.get("containers"))) + sum(1 for c in init_specs if _restartable(c))
    ready = 0
    restarts = sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    phase = str(status.get("phase") or "")
    reason = str(status.get("reason") or phase)
    for c in as_list(status.get("conditions")):
        c = as_map(c)
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    for i, cs in enumerate(as_list(status.get("initContainerStatuses"))):
        cs = as_map(cs)
        count = as_int(cs.get("restartCount"))
        finished = parse_time(
            as_map(as_map(cs.get("lastState")).get("terminated")).get("finishedAt")
        )
        restarts += count
        last_restart = _later(last_restart, finished)
        sidecar = _restartable(init_by_name.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        state = as_map(cs.get("state"))
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if isinstance(terminated, dict) and as_int(terminated.get("exitCode")) == 0:
            continue
        if sidecar and cs.get("started") is True:
            if cs.get("ready"):
                ready += 1
            continue
        if isinstance(terminated, dict):
            if terminated.get("reason"):
                reason = f"Init:{terminated['reason']}"
            elif as_int(terminated.get("signal")):
                reason = f"Init:Signal:{as_int(terminated.get('signal'))}"
            else:
                reason = f"Init:ExitCode:{as_int(terminated.get('exitCode'))}"
        elif (
            isinstance(waiting, dict)
            and waiting.get("reason")
            and waiting["reason"] != "PodInitializing"
        ):
            reason = f"Init:{waiting['reason']}"
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(status, "Initialized"):
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed(as_list(status.get("containerStatuses"))):
            cs = as_map(cs)
            restarts += as_int(cs.get("restartCount"))
            last_restart = _later(
                last_restart,
                parse_time(as_map(as_map(cs.get("lastState")).get("terminated")).get("finishedAt")),
            )
            state = as_map(cs.get("state"))
            terminated, waiting = state.get("terminated"), state.get("waiting")
            if isinstance(waiting, dict) and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif isinstance(terminated, dict) and terminated.get("reason"):
                reason = str(terminated["reason"])
            elif isinstance(terminated, dict):
                signal = as_int(terminated.get("signal"))
                exit_code = as_int(terminated.get("exitCode"))
                reason = f"Signal:{signal}" if signal else f"ExitCode:{exit_code}"
            elif cs.get("ready") and isinstance(state.get("running"), dict):
                has_running = True
                ready += 1
        # Back to Running if a container still runs after others completed.
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration(now - last_restart)} ago)"
    return PodSummary(
        namespace=str(meta.get("namespace") or DEFAULT_NAMESPACE),
        name=str(meta.get("name") or ""),
        ready=f"{ready}/{total}",
        status=reason,
        restarts=restarts_text,
        age=since(now, meta.get("creationTimestamp")),
        ip=str(status.get("podIP") or "<none>"),
        node=str(spec.get("nodeName") or "<none>"),
    )


def pod_header(*, wide: bool = False, all_namespaces: bool = False) -> list[str]:
    cols = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    if wide:
        cols += ["IP", "NODE"]
    return (["NAMESPACE"] if all_namespaces else []) + cols


def pod_row(
    pod: Mapping[str, Any], now: datetime, *, wide: bool = False, all_namespaces: bool = False
) -> list[str]:
    s = summarize_pod(pod, now)
    cells = [s.name, s.ready, s.status, s.restarts, s.age]
    if wide:
        cells += [s.ip, s.node]
    return ([s.namespace] if all_namespaces else []) + cells


def pod_table(
    pods: Iterable[Mapping[str, Any]],
    now: datetime,
    *,
    wide: bool = False,
    all_namespaces: bool = False,
) -> str:
    table = TablePrinter(pod_header(wide=wide, all_namespaces=all_namespaces))
    return table.format(pod_row(p, now, wide=wide, all_namespaces=all_namespaces) for p in pods)


# -- top -------------------------------------------------------------------------------


def cpu_cores(millis: Any) -> str:
    """kubectl top's CPU(cores) column: millicores, "<unknown>" without a sample."""
    return f"{int(millis)}m" if isinstance(millis, int | float) else "<unknown>"


def memory_mib(nbytes: Any) -> str:
    """kubectl top's MEMORY(bytes) column: whole MiB."""
    return f"{int(nbytes) // (1024 * 1024)}Mi" if isinstance(nbytes, int | float) else "<unknown>"


def top_table(items: Iterable[Mapping[str, Any]], *, containers: bool, all_namespaces: bool) -> str:
    """`kubectl top pod` (NAME CPU MEMORY) or `--containers` (POD NAME CPU MEMORY)."""
    cols = ["CPU(cores)", "MEMORY(bytes)"]
    head = (["NAMESPACE"] if all_namespaces else []) + (["POD", "NAME"] if containers else ["NAME"])
    rows: list[list[str]] = []
    for item in items:
        ns = [str(item.get("namespace"))] if all_namespaces else []
        if not containers:
            rows.append(
                [*ns, str(item.get("name")), cpu_cores(item.get("cpu_millis")),
                 memory_mib(item.get("memory_bytes"))]
            )  # fmt: skip
            continue
        for c in as_list(item.get("containers")):
            c = as_map(c)
            rows.append(
                [*ns, str(item.get("name")), str(c.get("name")), cpu_cores(c.get("cpu_millis")),
                 memory_mib(c.get("memory_bytes"))]
            )  # fmt: skip
    return TablePrinter(head + cols).format(rows)


# -- events ------------------------------------------------------------------------------


def event_header(*, all_namespaces: bool = False) -> list[str]:
    cols = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    return (["NAMESPACE"] if all_namespaces else []) + cols


def _event_interval(event: Mapping[str, Any], now: datetime) -> str:
    last = since(now, event.get("time"))
    count = as_int(event.get("count"))
    if count > 1:
        first = event.get("first_time")
        return f"{last} (x{count} over {since(now, first)})" if first else f"{last} (x{count})"
    return last


def event_row(
    event: Mapping[str, Any], now: datetime, *, all_namespaces: bool = False
) -> list[str]:
    cells = [
        _event_interval(event, now),
        str(event.get("type") or ""),
        str(event.get("reason") or ""),
        f"pod/{event.get('pod') or ''}",
        " ".join(str(event.get("message") or "").split("\n")).strip(),
    ]
    return ([str(event.get("namespace") or "")] if all_namespaces else []) + cells


# -- describe ----------------------------------------------------------------------------


class _Lines:
    """kubectl's PrefixWriter: each level indents two spaces; tabs separate cells."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def __call__(self, level: int, text: str) -> None:
        self.parts.append("  " * level + text + "\n")

    def text(self) -> str:
        return "".join(self.parts)


def _multiline(w: _Lines, title: str, items: Mapping[str, Any], sep: str) -> None:
    if not items:
        w(0, f"{title}:\t<none>")
        return
    for i, key in enumerate(sorted(items)):
        prefix = f"{title}:" if i == 0 else ""
        w(0, f"{prefix}\t{key}{sep}{items[key]}")


def _probe(probe: Mapping[str, Any]) -> str:
    attrs = (
        f"delay={as_int(probe.get('initialDelaySeconds'))}s "
        f"timeout={probe.get('timeoutSeconds') or 1}s "
        f"period={probe.get('periodSeconds') or 10}s "
        f"#success={probe.get('successThreshold') or 1} "
        f"#failure={probe.get('failureThreshold') or 3}"
    )
    if isinstance(probe.get("exec"), dict):
        command = " ".join(str(a) for a in as_list(probe["exec"].get("command")))
        return f"exec [{command}] {attrs}"
    if isinstance(probe.get("httpGet"), dict):
        h = probe["httpGet"]
        scheme = str(h.get("scheme") or "HTTP").lower()
        host = str(h.get("host") or "")
        port = h.get("port")
        hostport = f"{host}:{port}" if port is not None else host
        return f"http-get {scheme}://{hostport}{h.get('path') or ''} {attrs}"
    if isinstance(probe.get("tcpSocket"), dict):
        t = probe["tcpSocket"]
        return f"tcp-socket {t.get('host') or ''}:{t.get('port')} {attrs}"
    if isinstance(probe.get("grpc"), dict):
        g = probe["grpc"]
        return f"grpc <pod>:{g.get('port')} {g.get('service') or ''} {attrs}"
    return f"unknown {attrs}"


def _describe_state(w: _Lines, title: str, state: Mapping[str, Any], tz: tzinfo | None) -> None:
    if isinstance(state.get("running"), dict):
        w(2, f"{title}:\tRunning")
        w(3, f"Started:\t{rfc1123z(state['running'].get('startedAt'), tz)}")
    elif isinstance(state.get("waiting"), dict):
        w(2, f"{title}:\tWaiting")
        if state["waiting"].get("reason"):
            w(3, f"Reason:\t{state['waiting']['reason']}")
    elif isinstance(state.get("terminated"), dict):
        t = state["terminated"]
        w(2, f"{title}:\tTerminated")
        if t.get("reason"):
            w(3, f"Reason:\t{t['reason']}")
        if t.get("message"):
            w(3, f"Message:\t{t['message']}")
        w(3, f"Exit Code:\t{as_int(t.get('exitCode'))}")
        if as_int(t.get("signal")) > 0:
            w(3, f"Signal:\t{as_int(t.get('signal'))}")
        w(3, f"Started:\t{rfc1123z(t.get('startedAt'), tz)}")
        w(3, f"Finished:\t{rfc1123z(t.get('finishedAt'), tz)}")
    else:
        w(2, f"{title}:\tWaiting")


def _env_value(e: Mapping[str, Any]) -> str:
    source = as_map(e.get("valueFrom"))
    if isinstance(source.get("fieldRef"), dict):
        ref = source["fieldRef"]
        return f" ({ref.get('apiVersion') or 'v1'}:{ref.get('fieldPath')})"
    if isinstance(source.get("resourceFieldRef"), dict):
        return f" ({source['resourceFieldRef'].get('resource')})"
    if isinstance(source.get("secretKeyRef"), dict):
        ref = source["secretKeyRef"]
        return f"<set to the key '{ref.get('key')}' in secret '{ref.get('name')}'>"
    if isinstance(source.get("configMapKeyRef"), dict):
        ref = source["configMapKeyRef"]
        return f"<set to the key '{ref.get('key')}' of config map '{ref.get('name')}'>"
    return "<unknown source>"


def _describe_containers(
    w: _Lines,
    title: str,
    containers: list[Any],
    statuses: list[Any],
    tz: tzinfo | None,
) -> None:
    by_name = {as_map(s).get("name"): as_map(s) for s in statuses}
    w(0, f"{title}:")
    for c in containers:
        c = as_map(c)
        st = by_name.get(c.get("name"))
        w(1, f"{c.get('name')}:")
        if st is not None:
            w(2, f"Container ID:\t{st.get('containerID') or ''}")
        w(2, f"Image:\t{c.get('image') or '<none>'}")
        if st is not None:
            w(2, f"Image ID:\t{st.get('imageID') or ''}")
        ports = [as_map(p) for p in as_list(c.get("ports"))]
        cports = ", ".join(
            f"{as_int(p.get('containerPort'))}/{p.get('protocol') or 'TCP'}" for p in ports
        )
        hports = ", ".join(
            f"{as_int(p.get('hostPort'))}/{p.get('protocol') or 'TCP'}" for p in ports
        )
        w(2, f"Ports:\t{cports}" if len(ports) > 1 else f"Port:\t{cports or '<none>'}")
        w(2, f"Host Ports:\t{hports}" if len(ports) > 1 else f"Host Port:\t{hports or '<none>'}")
        for key, label in (("command", "Command"), ("args", "Args")):
            if as_list(c.get(key)):
                w(2, f"{label}:")
                for arg in as_list(c.get(key)):
                    for line in str(arg).split("\n"):
                        w(3, line)
        if st is not None:
            _describe_state(w, "State", as_map(st.get("state")), tz)
            last = as_map(st.get("lastState"))
            if isinstance(last.get("terminated"), dict):
                _describe_state(w, "Last State", last, tz)
            w(2, f"Ready:\t{'True' if st.get('ready') else 'False'}")
            w(2, f"Restart Count:\t{as_int(st.get('restartCount'))}")
        resources = as_map(c.get("resources"))
        for key, label in (("limits", "Limits"), ("requests", "Requests")):
            if as_map(resources.get(key)):
                w(2, f"{label}:")
                for name, qty in sorted(as_map(resources.get(key)).items()):
                    w(3, f"{name}:\t{qty}")
        for key, label in (
            ("livenessProbe", "Liveness"),
            ("readinessProbe", "Readiness"),
            ("startupProbe", "Startup"),
        ):
            if isinstance(c.get(key), dict):
                w(2, f"{label}:\t{_probe(c[key])}")
        env = [as_map(e) for e in as_list(c.get("env"))]
        w(2, "Environment:" + ("" if env else "\t<none>"))
        for e in env:
            if "valueFrom" in e:
                w(3, f"{e.get('name')}:\t{_env_value(e)}")
                continue
            for i, line in enumerate(str(e.get("value") or "").split("\n")):
                w(3, f"{e.get('name')}:\t{line}" if i == 0 else f"\t{line}")
        mounts = sorted(
            (as_map(m) for m in as_list(c.get("volumeMounts"))),
            key=lambda m: str(m.get("mountPath")),
        )
        w(2, "Mounts:" + ("" if mounts else "\t<none>"))
        for m in mounts:
            flags = ["ro" if m.get("readOnly") else "rw"]
            if m.get("subPath"):
                flags.append(f'path="{m["subPath"]}"')
            w(3, f"{m.get('mountPath')} from {m.get('name')} ({','.join(flags)})")


def _describe_volumes(w: _Lines, volumes: list[Any]) -> None:
    if not volumes:
        w(0, "Volumes:\t<none>")
        return
    w(0, "Volumes:")
    for v in volumes:
        v = as_map(v)
        w(1, f"{v.get('name')}:")
        if isinstance(v.get("hostPath"), dict):
            w(2, "Type:\tHostPath (bare host directory volume)")
            w(2, f"Path:\t{v['hostPath'].get('path')}")
            w(2, f"HostPathType:\t{v['hostPath'].get('type') or ''}")
        elif isinstance(v.get("emptyDir"), dict):
            w(2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)")
            w(2, f"Medium:\t{v['emptyDir'].get('medium') or ''}")
            w(2, f"SizeLimit:\t{v['emptyDir'].get('sizeLimit') or '<unset>'}")
        else:
            kinds = [k for k in v if k != "name"]
            w(2, f"Type:\t{kinds[0] if kinds else '<unknown>'}")


def describe_events(events: Sequence[Mapping[str, Any]], now: datetime) -> str:
    if not events:
        return tabwrite("Events:\t<none>\n")
    w = _Lines()
    w(0, "Events:")
    w(1, "Type\tReason\tAge\tFrom\tMessage")
    w(1, "----\t------\t----\t----\t-------")
    for e in events:
        message = " ".join(str(e.get("message") or "").split("\n")).strip()
        source = str(e.get("source") or "supd")
        w(1, f"{e.get('type')}\t{e.get('reason')}\t{_event_interval(e, now)}\t{source}\t{message}")
    return tabwrite(w.text())


def describe_pod(
    pod: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    now: datetime,
    tz: tzinfo | None = None,
) -> str:
    """`kubectl describe pod` for one v1 Pod dict and its events."""
    meta, spec, status = (
        as_map(pod.get("metadata")),
        as_map(pod.get("spec")),
        as_map(pod.get("status")),
    )
    w = _Lines()
    w(0, f"Name:\t{meta.get('name')}")
    w(0, f"Namespace:\t{meta.get('namespace') or DEFAULT_NAMESPACE}")
    if spec.get("priority") is not None:
        w(0, f"Priority:\t{spec['priority']}")
    node = spec.get("nodeName")
    host_ip = status.get("hostIP")
    w(0, f"Node:\t{node}/{host_ip}" if node and host_ip else f"Node:\t{node or '<none>'}")
    if status.get("startTime"):
        w(0, f"Start Time:\t{rfc1123z(status['startTime'], tz)}")
    _multiline(w, "Labels", as_map(meta.get("labels")), "=")
    _multiline(w, "Annotations", as_map(meta.get("annotations")), ": ")
    deletion = parse_time(meta.get("deletionTimestamp"))
    if deletion is not None:
        w(0, f"Status:\tTerminating (lasts {human_duration(deletion - now)})")
        if meta.get("deletionGracePeriodSeconds") is not None:
            w(0, f"Termination Grace Period:\t{meta['deletionGracePeriodSeconds']}s")
    else:
        w(0, f"Status:\t{status.get('phase') or ''}")
    if status.get("reason"):
        w(0, f"Reason:\t{status['reason']}")
    if status.get("message"):
        w(0, f"Message:\t{status['message']}")
    w(0, f"IP:\t{status.get('podIP') or ''}")
    ips = [as_map(i).get("ip") for i in as_list(status.get("podIPs")) if as_map(i).get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    if ips:
        w(0, "IPs:")
        for ip in ips:
            w(1, f"IP:\t{ip}")
    else:
        w(0, "IPs:\t<none>")
    if as_list(spec.get("initContainers")):
        _describe_containers(
            w,
            "Init Containers",
            as_list(spec.get("initContainers")),
            as_list(status.get("initContainerStatuses")),
            tz,
        )
    _describe_containers(
        w,
        "Containers",
        as_list(spec.get("containers")),
        as_list(status.get("containerStatuses")),
        tz,
    )
    conditions = [as_map(c) for c in as_list(status.get("conditions"))]
    if conditions:
        w(0, "Conditions:")
        w(1, "Type\tStatus")
        for c in conditions:
            w(1, f"{c.get('type')} \t{c.get('status')} ")
    _describe_volumes(w, as_list(spec.get("volumes")))
    if status.get("qosClass"):
        w(0, f"QoS Class:\t{status['qosClass']}")
    if not events:
        w(0, "Events:\t<none>")
        return tabwrite(w.text())
    # kubectl flushes its tabwriter before the events table, so it aligns on its own.
    return tabwrite(w.text()) + describe_events(events, now)
