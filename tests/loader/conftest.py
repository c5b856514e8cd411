"""Fixtures: folders of deterministic (fake-timer) profiles of real code, with and without sidecars."""

from __future__ import annotations

import cProfile
import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from celerylab.testing import FakeClock, profile_fake_clock, sidecar, workload, write_profile

TASKS = ("orders.process", "reports.build", "email.send")


def make_set(folder, n: int = 12, *, with_sidecars: bool = True, runs=("baseline", "candidate")) -> list[str]:
    paths = []
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(n):
        clock = FakeClock()
        stats = profile_fake_clock(workload, i % 6, clock, clock=clock)
        tid = str(uuid.UUID(int=i + 1))
        task = TASKS[i % 3]
        meta = (
            sidecar(task, tid, run=runs[i % len(runs)], started=t0 + timedelta(seconds=i), wall_s=0.01 * (1 + i % 5),
                    pid=100 + i % 2, state="FAILURE" if i == 5 else "SUCCESS")
            if with_sidecars
            else None
        )  # fmt: skip
        paths.append(write_profile(str(folder), stats, task_name=task, task_id=tid, meta=meta))
    return sorted(paths)


@pytest.fixture
def fake_set(tmp_path):
    folder = tmp_path / "profiles"
    return folder, make_set(folder)


def real_profile(path: str, fn, *args) -> str:
    """A profile of real code with the real clock (numbers vary run to run; exactness compares with pstats)."""
    p = cProfile.Profile()
    p.enable()
    try:
        fn(*args)
    finally:
        p.disable()
    p.dump_stats(path)
    return path


def write_json(path, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


@pytest.fixture
def chdir_tmp(tmp_path):
    old = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(old)
