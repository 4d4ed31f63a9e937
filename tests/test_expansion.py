from __future__ import annotations

import pytest

from supervisor.expansion import expand, expand_env

ENV = {"A": "1", "B": "two", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("plain", "plain"),
        ("$(A)", "1"),
        ("x$(A)y$(B)z", "x1ytwoz"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$1"),
        ("$A", "$A"),
        ("cost $5", "cost $5"),
        ("trailing $", "trailing $"),
        ("$(A", "$(A"),
        ("$(EMPTY)!", "!"),
        ("$()", "$()"),
    ],
)
def test_expand(text: str, want: str) -> None:
    assert expand(text, ENV) == want


def test_env_refers_to_earlier_variables_only() -> None:
    env = expand_env([("X", "$(A)-x"), ("Y", "$(X)/$(Z)"), ("Z", "z")], {"A": "a"})
    assert env == {"A": "a", "X": "a-x", "Y": "a-x/$(Z)", "Z": "z"}
