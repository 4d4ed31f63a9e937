"""exitcodes: supd's own exit code from its containers' results, and the remap table."""

from __future__ import annotations

import pytest

from supervisor.exitcodes import parse_remap, pick_exit_code


@pytest.mark.parametrize("code", range(256))
def test_every_exit_code_passes_through(code: int) -> None:
    failures = [(1.0, code)] if code else []
    assert pick_exit_code(failures, all_succeeded=code == 0, remap={}) == code


@pytest.mark.parametrize(
    ("failures", "all_succeeded", "remap", "want"),
    [
        ([], True, {}, 0),
        ([], False, {}, 1),  # failed without any container exit code
        ([(2.0, 143), (1.0, 3)], False, {}, 3),  # the first to fail wins
        ([(1.0, 143)], False, {143: 0}, 0),  # tini -e 143
        ([(1.0, 143), (2.0, 1)], False, {143: 0}, 1),  # the next failure then counts
        ([(1.0, 3)], False, {3: 7}, 7),
        ([(1.0, 137)], False, {3: 7}, 137),
    ],
)
def test_pick_exit_code(
    failures: list[tuple[float, int]], all_succeeded: bool, remap: dict[int, int], want: int
) -> None:
    assert pick_exit_code(failures, all_succeeded=all_succeeded, remap=remap) == want


@pytest.mark.parametrize(
    ("text", "want"), [("143", (143, 0)), ("1:3", (1, 3)), ("0:255", (0, 255))]
)
def test_parse_remap(text: str, want: tuple[int, int]) -> None:
    assert parse_remap(text) == want


@pytest.mark.parametrize("text", ["", "x", "256", "1:256", "-1", "1:", "1:2:3"])
def test_parse_remap_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_remap(text)
