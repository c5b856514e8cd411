"""The lint, format and type configuration in pyproject.toml is enforced by the test command, not by hand."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args", [("ruff", "check", "."), ("ruff", "format", "--check", ".")], ids=["lint", "format"])
def test_ruff(args):
    r = _run(*args)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy():
    r = _run("mypy")
    assert r.returncode == 0, r.stdout + r.stderr
