"""A real prefork worker (concurrency 2) over Redis, capture switched on by environment variables only."""

from __future__ import annotations

import inspect
import json
import marshal
import os
import re
from pathlib import Path

import pytest

from . import tasks_common
from .conftest import CELERY, PG_DSN, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow]

ENV = {"CELERYLAB_DIR": "{dir}", "CELERYLAB_MEMORY": "tracemalloc", "CELERYLAB_RUN": "release-42",
       "CELERYLAB_ARGS": "1", "CAPTEST_KILL_MIDWRITE": "1"}  # fmt: skip
TASKS_FILE = str(Path(tasks_common.__file__).resolve())


def _line(fragment: str) -> int:
    """Line number in tasks_common.py of the first line containing ``fragment``."""
    lines = inspect.getsource(tasks_common).splitlines()
    return next(i for i, text in enumerate(lines, 1) if fragment in text)


@pytest.fixture(scope="module")
def worker(start_worker):
    return start_worker("prefork", [*CELERY, "-A", "tests.capture.capapp", "worker", "-P", "prefork", "-c", "2"], ENV)


def _stats(prof: Path) -> dict:
    with open(prof, "rb") as f:
        return marshal.load(f)


def test_success_writes_profile_and_sidecar(worker):
    r = worker.send("captest.ok", 100)
    assert r.get(timeout=30) == sum(range(100))
    prof, meta = worker.files(r.id)
    assert prof.name == f"captest.ok.{r.id}.prof"
    assert meta["schema"] == "celerylab.task/1"
    assert (meta["task_id"], meta["task_name"], meta["state"]) == (r.id, "captest.ok", "SUCCESS")
    assert meta["pool"] == "prefork" and meta["queue"] == worker.queue and meta["hostname"] == worker.hostname
    assert meta["run"] == "release-42" and meta["retries"] == 0
    assert meta["pid"] != worker.proc.pid  # written by a pool process, not the main process
    assert meta["started_at"].endswith("+00:00") and meta["finished_at"] >= meta["started_at"]
    assert meta["cpu_s"] > 0 and 0 < meta["wall_s"] < 30
    assert meta["python"] and meta["celery"] and isinstance(meta["sys_prefixes"], list)
    assert meta["memory"]["rss_before"] > 0 and meta["memory"]["rss_after"] > 0
    # the profile is a real pstats dump that contains the task body
    assert any(k[0] == TASKS_FILE and k[2] == "ok" for k in _stats(prof))
    # no temporary file is left behind
    assert not [p for p in worker.dir.iterdir() if p.name.startswith(".")]


def test_failure_records_exception(worker):
    r = worker.send("captest.fail", 400)
    with pytest.raises(ValueError):
        r.get(timeout=30)
    _, meta = worker.files(r.id)
    assert meta["state"] == "FAILURE"
    assert meta["exception"]["type"] == "ValueError"
    assert meta["exception"]["message"].startswith("boom boom")
    assert len(meta["exception"]["message"]) <= 1001  # 2 000 characters truncated


def test_retry_keeps_every_attempt(worker):
    r = worker.send("captest.retry_once")
    assert r.get(timeout=30) == 1
    _, final = worker.files(f"{r.id}.retry1")
    _, first = worker.files(r.id)
    assert (first["state"], first["retries"]) == ("RETRY", 0)
    assert first["exception"] == {"type": "KeyError", "message": "'try again'"}
    assert (final["state"], final["retries"], final["task_id"]) == ("SUCCESS", 1, r.id)
    assert "exception" not in final


def test_sqlite_statements_with_calling_line(worker):
    r = worker.send("captest.sqlite", 4)
    assert r.get(timeout=30) == 1 + 2 + 3
    _, meta = worker.files(r.id)
    sql = {s["sql"]: s for s in meta["sql"]["statements"]}
    per_row = sql["SELECT count(*) FROM item WHERE id <= ?"]
    assert per_row["count"] == 4
    assert per_row["callers"] == [f"{TASKS_FILE}:{_line('per-row query')}(sqlite_task)"]
    assert sql["INSERT INTO item (name) VALUES (?)"]["count"] == 1  # executemany: one call
    assert meta["sql"]["count"] == 4 + 1 + 1
    assert meta["sql"]["time_s"] >= per_row["time_s"] > 0


def test_postgres_statements_psycopg(worker):
    r = worker.send("captest.pg", 5)
    assert r.get(timeout=30) == sum(i + 1 for i in range(5))
    _, meta = worker.files(r.id)
    sql = {s["sql"]: s for s in meta["sql"]["statements"]}
    assert sql["SELECT ?::int + ?"]["count"] == 5
    assert sql["SELECT ?::int + ?"]["callers"] == [f"{TASKS_FILE}:{_line('the N+1 query')}(pg_task)"]
    assert sql["SELECT count(*) FROM pg_class WHERE relname = ?"]["count"] == 1
    assert meta["sql"]["count"] == 6


def test_postgres_through_sqlalchemy_counted_once(worker):
    r = worker.send("captest.sa_pg", 3)
    assert r.get(timeout=30) == 300 + 3
    _, meta = worker.files(r.id)
    mine = [s for s in meta["sql"]["statements"] if s["sql"].endswith("+ ?")]
    assert len(mine) == 1, meta["sql"]  # SQLAlchemy's event and psycopg's cursor hook do not double count
    assert mine[0]["count"] == 3
    assert mine[0]["callers"][0].startswith(f"{TASKS_FILE}:")


def test_allocation_site(worker):
    r = worker.send("captest.alloc", 3_000_000)
    assert r.get(timeout=30) >= 1
    _, meta = worker.files(r.id)
    top = meta["memory"]["top"][0]
    assert (top["file"], top["line"]) == (TASKS_FILE, _line("ALLOCATION SITE"))
    assert top["size"] >= 3_000_000
    assert meta["memory"]["peak_traced"] >= 3_000_000


def test_args_recorded_redacted_when_opted_in(worker):
    r = worker.send("captest.secret", "alice", password="hunter2", options={"api_token": "t0k", "page": 3})
    assert r.get(timeout=30) == "alice"
    _, meta = worker.files(r.id)
    assert meta["args"]["args"] == ["'alice'"]
    assert meta["args"]["kwargs"]["password"] == "<redacted>"
    assert "t0k" not in str(meta["args"]) and "'page': 3" in meta["args"]["kwargs"]["options"]


def test_hard_time_limit_leaves_no_partial_file_and_worker_goes_on(worker):
    r = worker.client.send_task("captest.sleep", args=(30,), queue=worker.queue, time_limit=1)
    with pytest.raises(Exception) as info:
        r.get(timeout=60)
    assert "TimeLimitExceeded" in type(info.value).__name__ or "Time limit" in str(info.value)
    after = worker.send("captest.ok", 3)
    assert after.get(timeout=30) == 3
    worker.files(after.id)
    # billiard sends SIGTERM, then SIGKILL 0.1 s later: capture may or may not finish writing the interrupted
    # task's profile, but whatever is visible is complete, and a .prof never appears without its sidecar.
    visible = {p.suffix: p for p in worker.dir.iterdir() if r.id in p.name and not p.name.startswith(".")}
    if ".prof" in visible:
        assert ".json" in visible
        assert any(k[2] == "sleep" for k in _stats(visible[".prof"]))
    if ".json" in visible:
        meta = json.loads(visible[".json"].read_text(encoding="utf-8"))
        assert meta["state"] == "INTERRUPTED" and meta["wall_s"] >= 0.9


def test_killed_mid_write_leaves_only_a_hidden_tmp(worker):
    r = worker.send("captest.midwrite")
    assert r.get(timeout=30) == "written?"  # the result was stored before capture started writing
    wait_for(lambda: re.search(rf"{r.id}\] succeeded before the worker was lost", worker.log()), 30,
             "the pool process to die by SIGKILL")  # fmt: skip
    names = [p.name for p in worker.dir.iterdir() if r.id in p.name]
    visible = [n for n in names if not n.startswith(".")]
    hidden = [n for n in names if n.startswith(".")]
    assert visible == [f"captest.midwrite.{r.id}.json"]  # the complete sidecar; no .prof ever became visible
    assert json.loads((worker.dir / visible[0]).read_text(encoding="utf-8"))["state"] == "SUCCESS"
    assert len(hidden) == 1 and re.fullmatch(rf"\.captest\.midwrite\.{r.id}\.prof\.\d+-[0-9a-f]+\.tmp", hidden[0])
    # the replacement pool process still profiles
    after = worker.send("captest.ok", 4)
    assert after.get(timeout=30) == 6
    worker.files(after.id)
    # the loader reports the leftover as a temporary file and loads the rest
    import celerylab as cl

    with pytest.warns(UserWarning, match="temporary file"):
        ps = cl.load(str(worker.dir), cache=False)
    assert any("temporary file" in reason for reason in ps.errors["reason"])
    assert r.id not in set(ps.profiles["task_id"])
    # stale temporary files of dead writers are removed at the next start
    from celerylab.capture import _writer

    assert _writer.remove_stale_tmp(str(worker.dir), dead_min_age=0) >= 2  # the .tmp and the orphan sidecar
    assert not [p for p in worker.dir.iterdir() if r.id in p.name]
    assert (worker.dir / f"captest.ok.{after.id}.prof").exists()  # live files stay


def test_loader_reads_what_the_worker_wrote(worker):
    r = worker.send("captest.sqlite", 2)
    r.get(timeout=30)
    worker.files(r.id)
    import celerylab as cl

    ps = cl.load(str(worker.dir), cache=False)
    row = ps.profiles.set_index("task_id").loc[r.id]
    assert row["state"] == "SUCCESS" and row["run"] == "release-42" and row["sql_count"] == 4
    sql = ps.sql[ps.sql["profile_id"] == row["profile_id"]]
    assert "SELECT count(*) FROM item WHERE id <= ?" in set(sql["sql"])
    assert PG_DSN  # (keeps the import used)
    assert os.path.isdir(worker.dir)
