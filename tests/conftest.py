"""Project-wide fixtures."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture(autouse=True)
def _no_profiler_leaks():
    """No test may leave a profiler switched on (it would skew every test after it)."""
    assert sys.getprofile() is None, "a profiler was already active before this test"
    yield
    assert sys.getprofile() is None, "this test left a profiler active"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Tests never read or write the user's ~/.cache/celerylab."""
    monkeypatch.setenv("CELERYLAB_CACHE_DIR", str(tmp_path_factory.mktemp("celerylab-cache")))
