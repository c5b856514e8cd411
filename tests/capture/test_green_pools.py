"""gevent, eventlet and threads pools with 20 concurrent tasks, started through ``celerylab worker``.

Two task kinds interleave at cooperative sleeps (``time.sleep``, patched under gevent/eventlet): each profile must
hold only its own task's functions, a task that yielded 100 times must be one call of its entry function, and at
least 90 % of the tasks must be profiled at sample rate 1.
"""

from __future__ import annotations

import json
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import CELERYLAB, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow]

N_EACH = 40  # 40 of each kind: 80 tasks over 20 slots
TIMES = 100


def _run_interleaved(w: Any) -> tuple[dict[str, str], dict[str, Path]]:
    """Send 80 tasks (a, b, a, b, ...), check every one finished, wait for the files; ``({id: kind}, {id: prof})``."""
    sent = []
    for _ in range(N_EACH):
        sent.append(("a", w.send("captest.yield_a", TIMES, 0.002)))
        sent.append(("b", w.send("captest.yield_b", TIMES, 0.002)))
    for kind, r in sent:
        assert r.get(timeout=180) == TIMES * (1 if kind == "a" else 2)  # every task finishes
    kinds = {r.id: kind for kind, r in sent}

    def profiles() -> dict[str, Path]:
        out = {}
        for p in w.dir.glob("captest.yield_*.prof"):
            tid = p.name.split(".")[2]
            if tid in kinds:
                out[tid] = p
        return out

    # the postrun write follows the result: wait until every file is there or nothing new came for 2 s
    last: list[Any] = [-1, time.monotonic()]

    def settled() -> bool:
        n = len(profiles())
        if n != last[0]:
            last[:] = [n, time.monotonic()]
        return n == len(kinds) or time.monotonic() - last[1] > 2.0

    wait_for(settled, 60, "the profiles to be written", interval=0.1, check=w.check_alive)
    return kinds, profiles()


def _check_profiles(w: Any, pool: str, cpu_scope: str) -> int:
    kinds, profs = _run_interleaved(w)
    profiled = len(profs)
    sys.stderr.write(f"\n[{pool}] profiled {profiled} of {len(kinds)} tasks (-c 20, sample rate 1)\n")
    assert profiled >= 0.9 * len(kinds), f"only {profiled} of {len(kinds)} tasks profiled"
    for tid, prof in profs.items():
        kind = kinds[tid]
        own, other = ("step_a", "step_b") if kind == "a" else ("step_b", "step_a")
        stats = pstats.Stats(str(prof)).stats  # the standard library reads the file as written
        by_name: dict[str, Any] = {}
        for key, value in stats.items():
            by_name.setdefault(key[2], []).append(value)
        assert other not in by_name, f"{prof.name} holds the other task's {other}"
        assert [v[:2] for v in by_name[own]] == [(TIMES, TIMES)], prof.name
        entry = by_name[f"yield_{kind}"]
        assert [v[:2] for v in entry] == [(1, 1)], f"{prof.name}: the entry function is one call, not {entry}"
        assert [v[:2] for v in by_name["_interleave"]] == [(1, 1)]
        meta = json.loads(prof.with_suffix(".json").read_text(encoding="utf-8"))
        assert (meta["task_id"], meta["task_name"], meta["pool"]) == (tid, f"captest.yield_{kind}", pool)
        assert meta["cpu_scope"] == cpu_scope and meta["rss_scope"] == "process" and meta["concurrent"] is True
        # a task sleeping 100 x 2 ms while 19 others run uses far less CPU than its wall time
        assert 0 <= meta["cpu_s"] < meta["wall_s"]
    return profiled


@pytest.mark.parametrize(
    ("pool", "pool_args"),
    [("gevent", ["--pool=gevent"]), ("eventlet", ["-P", "eventlet"])],
)
def test_green_pool_through_celerylab_worker_profiles_each_task_alone(start_worker, pool, pool_args):
    # GIVEN `celerylab worker` around an app that knows nothing of celerylab, with a green pool of 20
    w = start_worker(f"cli{pool}", [*CELERYLAB, "worker", "--dir", "{dir}", "--", "-A", "tests.capture.plainapp",
                                    *pool_args, "-c", "20"])  # fmt: skip
    # THEN the worker patched and runs (today's hang is gone), every task finishes, and the profiles are per task
    _check_profiles(w, pool, "task")
    assert "MonkeyPatchWarning" not in w.log()


@pytest.mark.parametrize("pool", ["gevent", "eventlet"])
def test_green_pool_sql_is_recorded_per_task(start_worker, pool):
    # GIVEN tasks on two tables whose queries interleave at cooperative sleeps in one thread
    w = start_worker(f"sql{pool}", [*CELERYLAB, "worker", "--dir", "{dir}", "--", "-A", "tests.capture.plainapp",
                                    "-P", pool, "-c", "10"])  # fmt: skip
    sent = [(t, w.send("captest.sql_interleave", t, 20 + i)) for i in range(5) for t in ("item_a", "item_b")]
    assert [r.get(timeout=120) for _, r in sent] == [20 + i for i in range(5) for _ in range(2)]
    # THEN each task's sidecar holds its own statements only, with its own count
    for i, (table, r) in enumerate(sent):
        _, meta = w.files(r.id)
        stmts = {s["sql"]: s["count"] for s in meta["sql"]["statements"]}
        assert stmts == {f"CREATE TABLE {table} (id INTEGER PRIMARY KEY)": 1,
                         f"SELECT count(*) FROM {table} WHERE id <= ?": 20 + i // 2}, stmts  # fmt: skip


def test_threads_pool_20_profiles_each_task_alone(start_worker):
    w = start_worker("clithreads20", [*CELERYLAB, "worker", "--dir", "{dir}", "--", "-A", "tests.capture.plainapp",
                                      "-P", "threads", "-c", "20"])  # fmt: skip
    _check_profiles(w, "threads", "thread")


def test_pool_from_environment_is_patched_for(start_worker):
    # celery's command line reads --pool from $CELERY_WORKER_POOL: celerylab worker patches for it too
    w = start_worker("clienvgevent", [*CELERYLAB, "worker", "--dir", "{dir}", "--", "-A", "tests.capture.plainapp",
                                      "-c", "4"], {"CELERY_WORKER_POOL": "gevent"})  # fmt: skip
    rs = [w.send("captest.yield_a", 5, 0.001) for _ in range(4)]
    assert [r.get(timeout=60) for r in rs] == [5] * 4
    metas = [w.files(r.id)[1] for r in rs]
    assert {m["pool"] for m in metas} == {"gevent"} and {m["cpu_scope"] for m in metas} == {"task"}


def test_pool_from_app_config_restarts_with_patching(start_worker):
    # the pool is named only in the app's configuration (worker_pool = "gevent"): the command starts again with -P
    w = start_worker("cliconfgevent", [*CELERYLAB, "worker", "--dir", "{dir}", "--", "-A", "tests.capture.plainapp",
                                       "-c", "4"], {"CAPTEST_POOL": "gevent"})  # fmt: skip
    rs = [w.send("captest.yield_b", 5, 0.001) for _ in range(4)]
    assert [r.get(timeout=60) for r in rs] == [10] * 4
    metas = [w.files(r.id)[1] for r in rs]
    assert {m["pool"] for m in metas} == {"gevent"} and {m["pid"] for m in metas} == {w.proc.pid}


def test_patching_happens_before_click_and_the_app_are_imported(tmp_path):
    # `celerylab worker -P gevent`: the process is patched before click (which imports threading) is imported
    import subprocess

    code = (
        "import sys; sys.argv = ['celerylab', 'worker', '--dir', 'x', '--', '-A', 'proj', '-P', 'gevent']\n"
        "import celerylab.cli\n"
        "import gevent.monkey, threading\n"
        "print(gevent.monkey.is_module_patched('threading'), gevent.monkey.is_module_patched('socket'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]
    imports = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line]
    # importtime lists a module when its import ends: gevent.monkey (and what it imports) ends before click starts
    assert imports.index("gevent.monkey") < imports.index("click"), "patched after click was imported"


# ------------------------------------------------------------------------------------------ one file set per attempt
@pytest.fixture(scope="module")
def redelivering(start_worker):
    """Prefork, one process; acks_late tasks whose pool process is SIGKILLed are delivered again."""
    return start_worker("redeliver", [*CELERYLAB, "worker", "--dir", "{dir}", "--", "-A", "tests.capture.plainapp",
                                      "-P", "prefork", "-c", "1"], {"CAPTEST_KILL_AFTER_POSTRUN": "1"})  # fmt: skip


def _sidecars(w: Any, tid: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(w.dir.glob(f"*{tid}*.json"))]


def test_redelivery_after_the_files_were_written_keeps_both_file_sets(start_worker, tmp_path):
    # GIVEN a solo worker whose process is SIGKILLed after capture wrote an acks_late task's files, before the ack
    argv = [*CELERYLAB, "worker", "--dir", "{dir}", "--", "-A", "tests.capture.plainapp", "-P", "solo"]
    env = {"CAPTEST_KILL_AFTER_POSTRUN": "1", "CAPTEST_VISIBILITY": "2"}
    # a Redis database of its own: a 2 s visibility timeout hands out again every unacknowledged message of the
    # database that is older than that, other workers' running acks_late tasks included
    broker = "redis://127.0.0.1:6379/7"
    first = start_worker("killedsolo", argv, env, broker=broker)
    r = first.send("captest.after_write", str(tmp_path / "marker-after"))
    wait_for(lambda: first.proc.poll() is not None, 60, "the first worker to be killed")
    assert len(_sidecars(first, r.id)) == 1
    # WHEN another worker on the same queue gets the unacknowledged message again (Redis visibility timeout)
    second = start_worker("redeliversolo", argv, env, queue=first.queue, directory=first.dir, broker=broker)
    try:
        # THEN the redelivered run writes a second file set beside the first instead of replacing it
        wait_for(lambda: len(list(first.dir.glob(f"*{r.id}*.prof"))) >= 2, 90, "the second file set",
                 check=second.check_alive)  # fmt: skip
        metas = _sidecars(first, r.id)
        assert sorted(m["attempt"] for m in metas) == [1, 2]
        assert {m["task_id"] for m in metas} == {r.id} and {m["state"] for m in metas} == {"SUCCESS"}
        by_attempt = sorted(metas, key=lambda m: m["attempt"])
        assert [m["pid"] for m in by_attempt] == [first.proc.pid, second.proc.pid]
        assert [m["redelivered"] for m in by_attempt] == [False, True]  # what the broker said
        names = sorted(p.name for p in first.dir.glob(f"*{r.id}*"))
        assert names == [f"captest.after_write.{r.id}.a2.json", f"captest.after_write.{r.id}.a2.prof",
                         f"captest.after_write.{r.id}.json", f"captest.after_write.{r.id}.prof"]  # fmt: skip
        ps = __import__("celerylab").load(first.dir, cache=False)
        assert len(ps.errors) == 0 and list(ps.profiles["task_id"].astype(str)) == [r.id, r.id]
    finally:
        second.stop()


def test_redelivery_after_a_kill_mid_run_profiles_the_run_that_finished(redelivering, tmp_path):
    # GIVEN an acks_late task whose pool process is SIGKILLed mid-run (no files for that run)
    w = redelivering
    r = w.send("captest.redelivered", str(tmp_path / "marker-mid"))
    assert r.get(timeout=90) == "second delivery"
    prof, meta = w.files(r.id)
    names = {k[2] for k in pstats.Stats(str(prof)).stats}
    # THEN the one file set is the redelivered run's alone
    assert "step_b" in names and "step_a" not in names
    assert meta["attempt"] == 1 and meta["state"] == "SUCCESS" and len(_sidecars(w, r.id)) == 1
