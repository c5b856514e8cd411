"""A small hand-built profile set with known callers/callees, a hostile function name, SQL and memory sidecars."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

import celerylab as cl
from celerylab.testing import sidecar, write_profile

APP = "/srv/app/orders.py"
DB = "/venv/lib/python3.11/site-packages/sqlalchemy/engine/base.py"
BODY = (APP, 1, "task_body")
LOAD = (APP, 10, "load_orders")
EVIL = (APP, 20, "<script>alert(1)</script>")
EXEC = (DB, 100, "execute")
SLEEP = ("~", 0, "<built-in method time.sleep>")
ONLY_EVIL = (APP, 30, "only_in_the_evil_task")
EVIL_TASK = "evil.<img src=x onerror=alert(1)>"
N_PLUS_ONE_SQL = "SELECT * FROM items WHERE order_id = ?"


def stats_for(slow: float, *, evil_task: bool = False) -> dict:
    """task_body -> load_orders -> execute; task_body -> <script> -> execute -> sleep.  ``slow`` is the own time
    of the hostile-named function (bigger in the candidate run)."""
    ex_load = (4, 4, 0.004, 0.004)
    ex_evil = (1, 1, 0.001, 0.011)
    extra = {ONLY_EVIL: (1, 1, 0.001, 0.001, {BODY: (1, 1, 0.001, 0.001)})} if evil_task else {}
    return extra | {
        BODY: (1, 1, 0.001, 0.016 + slow, {}),
        LOAD: (1, 1, 0.001, 0.005, {BODY: (1, 1, 0.001, 0.005)}),
        EVIL: (1, 1, slow, slow + 0.011, {BODY: (1, 1, slow, slow + 0.011)}),
        EXEC: (5, 5, 0.005, 0.015, {LOAD: ex_load, EVIL: ex_evil}),
        SLEEP: (1, 1, 0.010, 0.010, {EXEC: (1, 1, 0.010, 0.010)}),
    }


def make_widget_set(folder) -> list[str]:
    """12 profiles a minute apart: runs baseline/candidate alternating; tasks orders.process (10) and the hostile one
    (profiles 2 and 5); in worker pid 200 (profiles 0-5) each orders.process grows RSS by 7.5 MiB (a leak carried by
    that task: 30 MiB over its four runs) while the hostile task leaves it flat; pid 201 stays flat; every task runs
    the N+1 statement 25 times."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    paths = []
    rss = 100 * 2**20
    for i in range(12):
        run = ("baseline", "candidate")[i % 2]
        task = EVIL_TASK if i in (2, 5) else "orders.process"
        pid = 200 + (i // 6)
        grow = 15 * 2**19 if pid == 200 and task == "orders.process" else 0
        if i == 6:
            rss = 100 * 2**20  # the second worker process starts fresh
        memory = {"rss_before": rss, "rss_after": rss + grow, "peak_traced": 2**20,
                  "top": [{"file": APP, "line": 12, "size": 4096 * (i + 1), "count": 3}]}  # fmt: skip
        sql = {"count": 26, "time_s": 0.02, "statements": [
            {"sql": N_PLUS_ONE_SQL, "count": 25, "time_s": 0.015, "callers": ["orders.py:10(load_orders)"]},
            {"sql": "SELECT * FROM orders WHERE id = ?", "count": 1, "time_s": 0.005, "callers": []}]}  # fmt: skip
        rss += grow
        tid = str(uuid.UUID(int=i + 1))
        meta = sidecar(task, tid, run=run, started=t0 + timedelta(minutes=i), wall_s=0.02 + 0.01 * (i % 2),
                       pid=pid, memory=memory, sql=sql)  # fmt: skip
        slow = 0.002 if run == "baseline" else 0.030 + 0.001 * i
        paths.append(
            write_profile(
                str(folder), stats_for(slow, evil_task=task == EVIL_TASK), task_name=task, task_id=tid, meta=meta
            )
        )
    return paths


@pytest.fixture(scope="session")
def widget_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("widget-profiles")
    make_widget_set(folder)
    return folder


@pytest.fixture
def ps(widget_set):
    return cl.load(widget_set, cache=False)


@pytest.fixture
def app(ps):
    from celerylab.widgets import explore

    return explore(ps)
