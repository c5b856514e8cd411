"""Fake-timer corpora whose answers are fixed by construction.

Every workload below runs real Python code under :func:`celerylab.testing.profile_fake_clock`, so the stats of
each invocation are identical on every run; the functions that "cost" time advance the fake clock by a set number
of ticks (1 tick = 1 ms with ``timeunit=0.001``) with ``clock.now += ticks`` inline — calling ``clock.advance``
would put the ticks into ``advance``'s own time, not the workload function's.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from celerylab.testing import FakeClock, profile_fake_clock, serialize, sidecar, write_profile

T0 = datetime(2026, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------------------------------------- workloads
def leaf(clock: FakeClock, ticks: int) -> None:
    """The planted regression: own time only."""
    clock.now += ticks


def fetch(clock: FakeClock, ticks: int) -> None:
    """leaf's only caller: its exclusive time must not change when leaf gets slower."""
    leaf(clock, ticks)


def render(clock: FakeClock, ticks: int) -> None:
    clock.now += ticks


def only_in_a(clock: FakeClock) -> None:
    clock.now += 7


def only_in_b(clock: FakeClock) -> None:
    clock.now += 7


def sometimes(clock: FakeClock, ticks: int) -> None:
    clock.now += ticks


def report_task(clock: FakeClock, side: str, i: int) -> None:
    """A: leaf 100-103 ticks; B: leaf +200.  render unchanged; only_in_a / only_in_b; ``sometimes`` in part of
    the invocations on each side (absent = 0 for the per-invocation numbers)."""
    fetch(clock, 100 + i % 4 + (200 if side == "b" else 0))
    render(clock, 50 + i % 3)
    (only_in_a if side == "a" else only_in_b)(clock)
    if (side == "a" and i % 2 == 0) or (side == "b" and i % 3 == 0):
        sometimes(clock, 20 + i)
    serialize(3)


def mail_task(clock: FakeClock, side: str, i: int) -> None:
    """Unchanged between the sides."""
    render(clock, 30 + i % 5)
    serialize(2)


def query_task(clock: FakeClock, side: str, i: int) -> None:
    """Real sqlite3 calls (the db category), n+1 style in B."""
    con = sqlite3.connect(":memory:")
    con.execute("create table t (id integer primary key, v text)")
    con.executemany("insert into t (v) values (?)", [(str(k),) for k in range(5)])
    for k in range(1 if side == "a" else 5):
        con.execute("select v from t where id = ?", (k + 1,)).fetchall()
    con.close()


WORKLOADS = {"app.report": report_task, "app.mail": mail_task, "app.query": query_task}


def make_runs(folder, n_per_task: int = 10, tasks=("app.report", "app.mail")) -> dict[str, list[str]]:
    """Two runs (``a``, ``b``) of ``n_per_task`` invocations per task; returns run -> profile paths."""
    paths: dict[str, list[str]] = {"a": [], "b": []}
    k = 0
    for side in ("a", "b"):
        for task in tasks:
            for i in range(n_per_task):
                clock = FakeClock()
                stats = profile_fake_clock(WORKLOADS[task], clock, side, i, clock=clock)
                tid = str(uuid.UUID(int=k + 1))
                meta = sidecar(task, tid, run=side, started=T0 + timedelta(seconds=k), pid=100 + i % 2)
                paths[side].append(write_profile(str(folder), stats, task_name=task, task_id=tid, meta=meta))
                k += 1
    return paths


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(folder, {"a": paths, "b": paths}) with app.report (regressed leaf) and app.mail (unchanged)."""
    folder = tmp_path_factory.mktemp("runs")
    return folder, make_runs(folder)
