"""Kubernetes resource quantities (apimachinery resource.Quantity) as exact numbers.

A leaf: imports nothing from the package. "500m" CPU is 500 millicores, "1Gi" memory is
1073741824 bytes; conversions round up, as Quantity.MilliValue and Quantity.Value do.
"""

from __future__ import annotations

import re

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$")
_SUFFIX = {
    "n": (10, -9), "u": (10, -6), "m": (10, -3), "": (10, 0), "k": (10, 3), "M": (10, 6),
    "G": (10, 9), "T": (10, 12), "P": (10, 15), "E": (10, 18), "Ki": (2, 10), "Mi": (2, 20),
    "Gi": (2, 30), "Ti": (2, 40), "Pi": (2, 50), "Ei": (2, 60),
}  # fmt: skip


def parse_quantity(text: str) -> tuple[int, int] | None:
    """A Kubernetes resource.Quantity as an exact fraction (numerator, denominator), or None
    when it is not one. "500m" -> (1, 2), "1Gi" -> (1073741824, 1), "1e3" -> (1000, 1)."""
    m = _QUANTITY.match(text.strip())
    if not m:
        return None
    number, suffix = m.group(1), m.group(2) or ""
    if number.count(".") > 1 or number in (".", "+.", "-.", "+", "-"):
        return None
    sign = -1 if number.startswith("-") else 1
    number = number.lstrip("+-")
    whole, _, frac = number.partition(".")
    num = int((whole or "0") + frac)
    den = 10 ** len(frac)
    if suffix[:1] in "eE" and suffix:
        exp = int(suffix[1:])
        if abs(exp) > 30:
            return None
        base, power = 10, exp
    else:
        base, power = _SUFFIX[suffix]
    if power >= 0:
        num *= base**power
    else:
        den *= base**-power
    return sign * num, den


def cpu_millis(text: str) -> int | None:
    """CPU quantity -> millicores, rounded up (Quantity.MilliValue)."""
    q = parse_quantity(text)
    if q is None:
        return None
    num, den = q
    return -((-num * 1000) // den)


def memory_bytes(text: str) -> int | None:
    """Memory quantity -> bytes, rounded up (Quantity.Value)."""
    q = parse_quantity(text)
    if q is None:
        return None
    num, den = q
    return -(-num // den)
