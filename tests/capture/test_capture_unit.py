"""install() in-process (celery's real tracer via ``Task.apply()``): sidecar, atomic order, sampling, filters,
retention, arguments, SQL hooks, configuration, and the import layering."""

from __future__ import annotations

import cProfile
import json
import marshal
import os
import pstats
import subprocess
import sys
from pathlib import Path

import pytest
from celery import signals

import celerylab.capture as capture
from celerylab.capture import _config, _profile, _sql, _writer
from celerylab.cli.worker import celery_argv
from celerylab.testing import FakeClock, workload

from . import inproc

INPROC_FILE = str(Path(inproc.__file__).resolve())


def _line(fragment: str) -> int:
    return next(i for i, t in enumerate(Path(INPROC_FILE).read_text().splitlines(), 1) if fragment in t)


# ------------------------------------------------------------------------------------------------- profiles
def test_dump_is_exactly_what_dump_stats_writes(tmp_path):
    # a fake-timer profile: the bytes capture writes equal cProfile's own dump_stats output
    prof = cProfile.Profile(timer=FakeClock(), timeunit=0.001)
    prof.enable()
    workload(3)
    prof.disable()
    prof.dump_stats(tmp_path / "ref.prof")
    data = _profile.dump(prof)
    assert data == (tmp_path / "ref.prof").read_bytes()
    stats = marshal.loads(data)
    ref = pstats.Stats(str(tmp_path / "ref.prof")).stats
    fib = next(k for k in stats if k[2] == "fib")
    assert stats[fib][:4] == ref[fib][:4] and stats[fib][0] == 1 and stats[fib][1] > 1  # primitive vs all calls


def test_sidecar_contents_and_names(install, tmp_path):
    h = install(run="v1.2")
    r = inproc.run(inproc.work, 100)
    assert r.get() == 4950
    out = tmp_path / "profiles"
    assert sorted(p.name for p in out.iterdir()) == [f"inproc.work.{r.id}.json", f"inproc.work.{r.id}.prof"]
    meta = json.loads((out / f"inproc.work.{r.id}.json").read_text(encoding="utf-8"))
    required = {"schema", "task_id", "task_name", "state", "started_at", "finished_at", "wall_s", "cpu_s",
                "hostname", "pid", "pool", "queue", "retries", "run", "python", "celery", "sys_prefixes"}  # fmt: skip
    assert required <= set(meta)
    assert (meta["schema"], meta["task_id"], meta["state"], meta["run"]) == ("celerylab.task/1", r.id, "SUCCESS",
                                                                             "v1.2")  # fmt: skip
    assert meta["pid"] == os.getpid() and sys.prefix in meta["sys_prefixes"]
    assert "args" not in meta and "exception" not in meta
    assert meta["sql"] == {"count": 0, "time_s": 0.0, "statements": []}
    assert set(meta["memory"]) == {"rss_before", "rss_after", "peak_traced", "top"} and meta["memory"]["top"] == []
    stats = pstats.Stats(str(out / f"inproc.work.{r.id}.prof")).stats
    assert any(k[0] == INPROC_FILE and k[2] == "work" for k in stats)
    assert not any(k[0].startswith(str(Path(capture.__file__).parent)) and k[2] == "_begin" for k in stats)
    assert h.counts.written == 1


def test_failure_message_truncated(install, tmp_path):
    install()
    r = inproc.run(inproc.boom)
    assert r.failed()
    meta = json.loads(next((tmp_path / "profiles").glob("*.json")).read_text())
    assert meta["state"] == "FAILURE" and meta["exception"]["type"] == "RuntimeError"
    assert meta["exception"]["message"] == "x" * 1000 + "…"


def test_sidecar_is_in_place_before_the_profile(install, tmp_path, monkeypatch):
    out = tmp_path / "profiles"
    seen = []

    def hook(stage, final):
        seen.append((stage, os.path.basename(final), sorted(p.name for p in out.iterdir())))

    monkeypatch.setattr(_writer, "fault_hook", hook)
    install()
    r = inproc.run(inproc.work, 3)
    side, prof = f"inproc.work.{r.id}.json", f"inproc.work.{r.id}.prof"
    assert [(s, n) for s, n, _ in seen] == [("sidecar", side), ("profile", prof)]
    # while the profile is being written, its sidecar is already visible and the .prof only as a hidden .tmp
    visible_then = [n for n in seen[1][2] if not n.startswith(".")]
    hidden_then = [n for n in seen[1][2] if n.startswith(".")]
    assert visible_then == [side] and len(hidden_then) == 1 and hidden_then[0].startswith(f".{prof}.")
    assert hidden_then[0].endswith(".tmp")


def test_failed_profile_write_removes_its_sidecar(install, tmp_path, monkeypatch):
    def hook(stage, final):
        if stage == "profile":
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(_writer, "fault_hook", hook)
    h = install()
    assert inproc.run(inproc.work, 3).get() == 3
    assert list((tmp_path / "profiles").iterdir()) == []  # no orphan sidecar, no tmp
    assert h.counts.errors == 1


# ------------------------------------------------------------------------------------------ what is profiled
def test_task_globs_and_sampling(install, tmp_path):
    h = install(tasks="inproc.w*")
    inproc.run(inproc.work, 1)
    inproc.run(inproc.secret, "x")
    assert [p.name.split(".")[1] for p in (tmp_path / "profiles").glob("*.prof")] == ["work"]
    h.uninstall()
    h2 = install(tmp_path / "zero", sample_rate=0.0)
    for _ in range(5):
        inproc.run(inproc.work, 1)
    assert not list((tmp_path / "zero").glob("*.prof")) and h2.counts.sampled_out == 5


def test_uninstall_disconnects_every_receiver(install, tmp_path):
    h = install()
    uid = h._uid
    assert any(uid in str(k) for k, _ in signals.task_prerun.receivers)
    h.uninstall()
    assert not any(uid in str(k) for sig in (signals.task_prerun, signals.task_postrun, signals.task_failure)
                   for k, _ in sig.receivers)  # fmt: skip
    inproc.run(inproc.work, 1)
    assert not list((tmp_path / "profiles").glob("*.prof"))


def test_install_again_replaces(install, tmp_path):
    a = install(tmp_path / "a")
    b = install(tmp_path / "b")
    assert not a.installed and b.installed and capture.active() == [b]
    inproc.run(inproc.work, 1)
    assert not list((tmp_path / "a").glob("*.prof")) and len(list((tmp_path / "b").glob("*.prof"))) == 1


def test_other_apps_tasks_are_ignored(install, tmp_path):
    from celery import Celery

    other = Celery("other-app", set_as_current=False)

    @other.task(name="other.t")
    def t() -> int:
        return 1

    install()
    assert t.apply().get() == 1
    assert not list((tmp_path / "profiles").glob("*.prof"))


@pytest.mark.parametrize(("kw", "match"), [({"sample_rate": 1.5}, "sample_rate"), ({"memory": "lots"}, "memory"),
                                           ({"max_files": 0}, "max_files")])  # fmt: skip
def test_bad_arguments_raise(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        capture.install(inproc.app, tmp_path, **kw)
    assert capture.active() == []


# ----------------------------------------------------------------------------------------------- arguments
def test_args_redacted_and_truncated_when_opted_in(install, tmp_path):
    install(record_args=True)
    r = inproc.run(inproc.secret, "bob" * 200, password="pw", headers={"Authorization": "Bearer abc", "x": 1})
    meta = json.loads(next((tmp_path / "profiles").glob("*.json")).read_text())
    args = meta["args"]
    assert len(args["args"][0]) <= 201 and args["args"][0].startswith("'bobbob")
    assert args["kwargs"]["password"] == "<redacted>"
    assert "abc" not in args["kwargs"]["headers"] and "'x': 1" in args["kwargs"]["headers"]
    assert r.get().startswith("bob")


# -------------------------------------------------------------------------------------------------- retention
def test_retention_max_files_keeps_the_newest(install, tmp_path):
    h = install(max_files=5)
    ids = []
    for i in range(12):
        ids.append(inproc.run(inproc.work, i).id)
        profs = list((tmp_path / "profiles").glob("*.prof"))
        assert len(profs) <= 5
        assert len(list((tmp_path / "profiles").glob("*.json"))) == len(profs)  # pairs go together
    left = {p.name.split(".")[2] for p in (tmp_path / "profiles").glob("*.prof")}
    assert ids[-1] in left and ids[0] not in left
    assert h.counts.deleted == 12 - len(left)


def test_retention_max_bytes(install, tmp_path):
    install(max_bytes=60_000)
    for i in range(10):
        inproc.run(inproc.work, i)
    total = sum(p.stat().st_size for p in (tmp_path / "profiles").iterdir())
    assert 0 < total <= 60_000


def test_retention_sees_other_processes_files(tmp_path):
    from celerylab.testing import synthetic_stats, write_profile

    d = tmp_path / "shared"
    for i in range(30):  # written by "another pool process"
        write_profile(str(d), synthetic_stats(50, 80, seed=i), task_name="x", meta={"schema": "celerylab.task/1"})
        os.utime(d / os.listdir(d)[0], (1000 + i, 1000 + i))
    ret = _writer.Retention(str(d), max_files=10, max_bytes=None)
    ret.added(1)  # our first write triggers a scan
    assert len(list(d.glob("*.prof"))) == 9 and len(list(d.glob("*.json"))) == 9


# -------------------------------------------------------------------------------------------------------- SQL
@pytest.mark.parametrize(("raw", "norm"), [
    ("SELECT * FROM t WHERE id = 42 AND name = 'it''s'", "SELECT * FROM t WHERE id = ? AND name = ?"),
    ("select a\n  from t where x in (1, 2, 3)", "select a from t where x in (?...)"),
    ("SELECT %s::int, %(name)s, $1, :p, ?", "SELECT ?::int, ?, ?, ?, ?"),
    ("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')", "INSERT INTO t (a, b) VALUES (?...), ..."),
    ("SELECT t1.col2 FROM t1 LIMIT 10", "SELECT t1.col2 FROM t1 LIMIT ?"),
    (b"SELECT 1", "SELECT ?"),
])  # fmt: skip
def test_normalize(raw, norm):
    assert capture.normalize(raw) == norm


def test_sqlite_hook_records_statement_and_application_line(install, tmp_path):
    install()
    assert inproc.run(inproc.sqlite_task, 4).get() == 1 + 2 + 3 + 4
    meta = json.loads(next((tmp_path / "profiles").glob("*.json")).read_text())
    (st,) = meta["sql"]["statements"]
    assert (st["sql"], st["count"]) == ("SELECT ? + ?", 4)
    assert st["callers"] == [f"{INPROC_FILE}:{_line('IN-PROCESS QUERY')}(sqlite_task)"]
    assert meta["sql"]["count"] == 4 and meta["sql"]["time_s"] == pytest.approx(st["time_s"])


def test_sql_hooks_record_nothing_outside_profiled_tasks():
    import sqlite3

    _sql.ensure_hooks()
    assert "sqlite3" in _sql.installed
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a)")
    rec = _sql.SqlRecorder()
    _sql.state.rec = rec
    try:
        conn.execute("SELECT 2")
        conn.cursor().execute("SELECT 3")
        conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
        line = _this_line() - 1
    finally:
        _sql.state.rec = None
    conn.execute("SELECT 4")
    assert rec.count == 3 and set(rec.statements) == {"SELECT ?", "INSERT INTO t VALUES (?)"}
    stmts = {s["sql"]: s for s in rec.to_dict()["statements"]}
    assert stmts["SELECT ?"]["count"] == 2
    name = "test_sql_hooks_record_nothing_outside_profiled_tasks"
    assert stmts["INSERT INTO t VALUES (?)"]["callers"] == [f"{__file__}:{line}({name})"]


def _this_line() -> int:
    return sys._getframe(1).f_lineno


def test_sqlalchemy_over_sqlite_counted_once(install, tmp_path):
    from sqlalchemy import create_engine, text

    _sql.ensure_hooks()
    engine = create_engine("sqlite://")

    @inproc.app.task(name="inproc.sa")
    def sa_task() -> int:
        with engine.connect() as c:
            return sum(c.execute(text("SELECT :x * 2"), {"x": i}).scalar_one() for i in range(3))  # SA LINE

    install()
    assert sa_task.apply().get() == 6
    engine.dispose()
    meta = json.loads(next((tmp_path / "profiles").glob("inproc.sa.*.json")).read_text())
    stmts = {s["sql"]: s for s in meta["sql"]["statements"]}
    assert stmts["SELECT ? * ?"]["count"] == 3, stmts
    assert stmts["SELECT ? * ?"]["callers"][0].startswith(f"{__file__}:")
    line = next(i for i, t in enumerate(Path(__file__).read_text().splitlines(), 1) if t.endswith("# SA LINE"))
    assert stmts["SELECT ? * ?"]["callers"] == [f"{__file__}:{line}(<genexpr>)"]


def test_django_over_sqlite_counted_once_by_its_execute_wrapper(install, tmp_path):
    # GIVEN a Django project on sqlite (Django's wrapper is the outer layer, the sqlite3 hook the inner one)
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
                           INSTALLED_APPS=[], USE_TZ=True)  # fmt: skip
        django.setup()
    from django.db import connection

    _sql.ensure_hooks()
    assert {"django", "sqlite3"} <= set(_sql.installed)

    wrappers: list[object] = []

    @inproc.app.task(name="inproc.django")
    def django_task() -> int:
        total = 0
        with connection.cursor() as cur:
            wrappers.extend(connection.execute_wrappers)
            for i in range(3):
                cur.execute("SELECT %s + 1", [i])  # DJANGO LINE
                total += cur.fetchone()[0]
        return total

    install()
    # WHEN the task runs through celery's tracer
    assert django_task.apply().get() == 1 + 2 + 3
    connection.close()
    # THEN capture's wrapper sits in the connection's execute_wrappers, and each statement is recorded once, with
    # the application line that issued it
    assert [getattr(w, "__module__", None) for w in wrappers] == ["celerylab.capture._sql"]
    meta = json.loads(next((tmp_path / "profiles").glob("inproc.django.*.json")).read_text())
    stmts = {s["sql"]: s for s in meta["sql"]["statements"]}
    assert stmts["SELECT ? + ?"]["count"] == 3, stmts
    assert meta["sql"]["count"] == sum(s["count"] for s in stmts.values())
    line = next(i for i, t in enumerate(Path(__file__).read_text().splitlines(), 1) if t.endswith("# DJANGO LINE"))
    assert stmts["SELECT ? + ?"]["callers"] == [f"{__file__}:{line}(django_task)"]


@pytest.mark.services
def test_psycopg2_statements_against_postgres(install, tmp_path):
    # GIVEN the psycopg2 hook and the real PostgreSQL at 127.0.0.1:5432
    from .conftest import PG_DSN, require_services

    require_services(5432)
    import psycopg2

    _sql.ensure_hooks()
    assert "psycopg2" in _sql.installed

    @inproc.app.task(name="inproc.pg2")
    def pg2_task() -> int:
        conn = psycopg2.connect(PG_DSN)
        try:
            with conn.cursor() as cur:
                total = 0
                for i in range(4):
                    cur.execute("SELECT %s::int * 2", (i,))  # PG2 LINE
                    total += cur.fetchone()[0]
                cur.executemany("SELECT %s::int", [(1,), (2,)])
                return total
        finally:
            conn.close()

    install()
    assert pg2_task.apply().get() == 2 * (0 + 1 + 2 + 3)
    meta = json.loads(next((tmp_path / "profiles").glob("inproc.pg2.*.json")).read_text())
    stmts = {s["sql"]: s for s in meta["sql"]["statements"]}
    assert stmts["SELECT ?::int * ?"]["count"] == 4, stmts
    assert stmts["SELECT ?::int"]["count"] == 1  # one executemany call is one statement execution
    line = next(i for i, t in enumerate(Path(__file__).read_text().splitlines(), 1) if t.endswith("# PG2 LINE"))
    assert stmts["SELECT ?::int * ?"]["callers"] == [f"{__file__}:{line}(pg2_task)"]
    assert meta["sql"]["time_s"] > 0


# -------------------------------------------------------------------------------------------- configuration
def test_settings_flags_over_environment():
    env = {"CELERYLAB_DIR": "/env/dir", "CELERYLAB_SAMPLE": "0.25", "CELERYLAB_TASKS": "a.*, b.c",
           "CELERYLAB_MAX_BYTES": "2M", "CELERYLAB_SQL": "0", "CELERYLAB_MEMORY": "tracemalloc",
           "CELERYLAB_ARGS": "yes", "CELERYLAB_RUN": "sha1"}  # fmt: skip
    s = _config.settings({"sample_rate": "0.5", "run": None, "tasks": ("x.*",)}, env)
    assert s == {"directory": "/env/dir", "sample_rate": 0.5, "tasks": ["x.*"], "max_bytes": 2 * 1024 * 1024,
                 "sql": False, "memory": "tracemalloc", "record_args": True, "run": "sha1"}  # fmt: skip
    assert _config.settings({}, {"CELERYLAB_SAMPLE": "0.1"}) == {}  # no directory: capture off
    with pytest.raises(ValueError):
        _config.settings({}, {"CELERYLAB_DIR": "/d", "CELERYLAB_SQL": "maybe"})
    assert _config.parse_size("1.5k") == 1536 and _config.parse_size("100") == 100


def test_celery_argv_inserts_worker():
    assert celery_argv(["-A", "proj", "-P", "solo"]) == ["-A", "proj", "worker", "-P", "solo"]
    assert celery_argv(["--app=proj", "-b", "redis://", "-c", "2"]) == ["--app=proj", "-b", "redis://", "worker",
                                                                        "-c", "2"]  # fmt: skip
    assert celery_argv(["-A", "proj", "worker", "-c", "2"]) == ["-A", "proj", "worker", "-c", "2"]


def test_register_adds_worker_flags_and_step():
    from celery import Celery

    app = Celery("reg", set_as_current=False)
    capture.register(app)
    capture.register(app)  # twice is harmless
    flags = sorted(n for o in app.user_options["worker"] for n in o.opts)
    assert flags == sorted(capture.worker.FLAGS) and len(flags) == len(app.user_options["worker"])
    assert capture.CaptureStep in app.steps["worker"]


def test_worker_command_needs_a_directory():
    from click.testing import CliRunner

    from celerylab.cli.worker import worker

    r = CliRunner().invoke(worker, ["--", "-A", "proj"], env={"CELERYLAB_DIR": ""})
    assert r.exit_code == 2 and "--dir" in r.output


def test_capture_never_imports_pandas():
    code = ("import sys, celerylab.capture, celerylab.cli.worker, celerylab.capture.worker; "
            "bad = [m for m in ('pandas', 'numpy', 'celerylab.core.load', 'celerylab.profileset') "
            "if m in sys.modules]; "
            "print(bad)")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_a_sampled_out_task_does_nothing_beyond_the_sampling_decision(install, monkeypatch, tmp_path):
    """No RSS read, no SQL recorder, no profiler, no task record, no file: only the decision and its counter."""
    from celerylab.capture import _core, _memory, _profile, _sql

    from . import inproc

    cap = install(sample_rate=0.0, memory="tracemalloc")
    touched: list[str] = []

    def forbidden(name):
        def f(*a, **k):
            touched.append(name)
            raise AssertionError(f"{name} called for a sampled-out task")

        return f

    for mod, attr in ((_memory, "rss"), (_memory, "trace_start"), (_sql, "ensure_hooks"), (_profile, "start"),
                      (_profile, "profiler_busy"), (_core, "_Task")):  # fmt: skip
        monkeypatch.setattr(mod, attr, forbidden(f"{mod.__name__}.{attr}"))
    for n in range(20):
        assert inproc.run(inproc.work, n).get() == sum(range(n))
        assert inproc.run(inproc.sqlite_task, 3).get() == 6
    assert touched == [] and cap.counts.sampled_out == 40 and cap.counts.errors == 0
    assert not list((tmp_path / "profiles").glob("*.prof"))


# ------------------------------------------------------------------------------------------ where a profile ends
def _after_the_body() -> None:
    """Called from a task_success receiver: after the task's body, before task_postrun (where Celery stores results)."""


def _after_the_nested_task() -> int:
    return 1


def test_a_profile_ends_with_the_task_body_and_a_nested_task_does_not_end_it(tmp_path):
    from celery import Celery
    from celery.app.trace import build_tracer

    app = Celery("captest-body", set_as_current=False)
    app.conf.update(broker_url="memory://", result_backend="cache+memory://")

    @app.task(name="body.inner")
    def inner() -> int:
        return 2

    @app.task(name="body.outer")
    def outer() -> int:
        return inner() + _after_the_nested_task()  # a task called directly, inside the body

    def on_success(sender=None, **_):
        _after_the_body()

    app.finalize()
    early_tracer = build_tracer("body.outer", outer, app=app, eager=True, propagate=True)  # built before install
    signals.task_success.connect(on_success, weak=False, dispatch_uid="test-body-success")
    h = capture.install(app, tmp_path / "p")
    try:
        r = outer.apply()
        assert r.get() == 3
        late = early_tracer("early-id", (), {}, {"delivery_info": {}})
    finally:
        h.uninstall()
        signals.task_success.disconnect(dispatch_uid="test-body-success")
    assert late.retval == 3

    def names(task_id: str) -> set[str]:
        return {k[2] for k in pstats.Stats(str(tmp_path / "p" / f"body.outer.{task_id}.prof")).stats}

    # THEN the profile holds the body, the nested task and what the body did after it...
    body = names(r.id)
    assert {"outer", "inner", "_after_the_nested_task"} <= body
    # ...and nothing Celery did after the body (the task_success receiver runs after it)
    assert "_after_the_body" not in body and "on_success" not in body
    # a tracer built before capture was installed calls the unwrapped run: its profile ends at task_postrun
    assert {"outer", "_after_the_body"} <= names("early-id")
    assert getattr(outer.run, "__celerylab_body__", False) and outer.run.__wrapped__ is not None
