"""supd's own exit code when it runs pods to completion (`supd run`, or PID 1 mode).

0 when every pod Succeeded; else the exit code of the container that failed first (the
shell's and Kubernetes's 128+N for signal N), after the remap table (`--remap-exit`, as
tini's `-e`: a code the application uses for "stopped as asked", 143 for a SIGTERM it does
not handle, can count as success).

A leaf module: pure functions of the containers' results.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def parse_remap(text: str) -> tuple[int, int]:
    """CODE (remapped to 0, tini's `-e CODE`) or CODE:NEW, each 0..255."""
    old_s, sep, new_s = text.partition(":")
    try:
        old = int(old_s)
        new = int(new_s) if sep else 0
    except ValueError:
        raise ValueError(f"{text!r} is not CODE or CODE:NEW") from None
    if not (0 <= old <= 255 and 0 <= new <= 255):
        raise ValueError(f"{text!r}: exit codes are 0..255")
    return old, new


def pick_exit_code(
    failures: Iterable[tuple[float, int]], *, all_succeeded: bool, remap: Mapping[int, int]
) -> int:
    """`failures`: (finished_at, exit code) of every container termination with a non-zero
    code. The earliest that is still non-zero after `remap` wins. When there is none: 0 if
    every pod Succeeded or every failure was remapped to 0, else 1 (a pod failed without a
    container exit code, for example one that was never started)."""
    seen = False
    for _at, code in sorted(failures):
        seen = True
        code = remap.get(code, code)
        if code != 0:
            return code & 0xFF
    return 0 if all_succeeded or seen else 1
