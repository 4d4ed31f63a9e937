"""Lint and type checks are part of the suite: ruff, cython-lint and mypy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "supervisor", "tests", "setup.py", "benchmarks"],
        ["ruff", "format", "--check", "supervisor", "tests", "setup.py", "benchmarks"],
        ["cython-lint", "_native"],
        ["mypy"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_clean(command: list[str]) -> None:
    # cython-lint runs pycodestyle by name: the venv's bin must be on PATH.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    res = subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, f"{' '.join(command)}:\n{res.stdout}{res.stderr}"
