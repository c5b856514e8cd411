"""Threads and solo pools, worker flags, and ``celerylab worker`` on an app that knows nothing of celerylab."""

from __future__ import annotations

import marshal
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from .conftest import CELERY, CELERYLAB

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _functions(prof: Path) -> set[str]:
    with open(prof, "rb") as f:
        return {k[2] for k in marshal.load(f)}


@pytest.fixture(scope="module")
def threads(start_worker):
    """Threads pool, capture switched on by the --celerylab-* flags that capapp registered."""
    return start_worker("threads", [*CELERY, "-A", "tests.capture.capapp", "worker", "-P", "threads", "-c", "2",
                                    "--celerylab-dir", "{dir}", "--celerylab-tasks", "captest.o*,captest.pair_*",
                                    "--celerylab-run", "flags-run", "--celerylab-sql", "0"])  # fmt: skip


def test_flags_switch_capture_on_with_task_filter(threads):
    ok, fail = threads.send("captest.ok", 7), threads.send("captest.fail")
    assert ok.get(timeout=30) == 21
    with pytest.raises(ValueError):
        fail.get(timeout=30)
    _, meta = threads.files(ok.id)
    assert (meta["pool"], meta["run"], meta["pid"]) == ("threads", "flags-run", threads.proc.pid)
    assert "sql" not in meta  # --celerylab-sql 0
    # a task the glob does not match is never profiled (the next profiled task proves its turn has passed)
    later = threads.send("captest.ok", 2)
    later.get(timeout=30)
    threads.files(later.id)
    assert not [p for p in threads.dir.iterdir() if fail.id in p.name]


def test_threads_concurrent_tasks_each_get_their_own_profile(threads):
    # Python 3.11: one profiler per thread, so two tasks running at the same time are both profiled, each
    # profile holding only its own task's functions.  (3.12+: see test_failures for the one-per-process rule.)
    key = f"captest-barrier-{uuid.uuid4().hex}"
    a, b = threads.send("captest.pair_a", key), threads.send("captest.pair_b", key)
    assert a.get(timeout=30) >= 1 and b.get(timeout=30) >= 2
    prof_a, meta_a = threads.files(a.id)
    prof_b, meta_b = threads.files(b.id)
    fa, fb = _functions(prof_a), _functions(prof_b)
    assert "helper_a" in fa and "helper_b" not in fa
    assert "helper_b" in fb and "helper_a" not in fb
    # they really overlapped
    assert meta_a["started_at"] < meta_b["finished_at"] and meta_b["started_at"] < meta_a["finished_at"]


def test_foreign_profiler_in_pool_threads_is_skipped_and_counted(start_worker):
    w = start_worker("busy", [*CELERY, "-A", "tests.capture.capapp", "worker", "-P", "threads", "-c", "1"],
                     {"CELERYLAB_DIR": "{dir}", "CAPTEST_FOREIGN_PROFILER": "1"})  # fmt: skip
    results = [w.send("captest.ok", n) for n in (3, 4, 5)]
    assert [r.get(timeout=30) for r in results] == [3, 6, 10]  # the tasks are not hurt
    log = w.log()
    assert log.count("another profiler is active") == 1  # logged once, then counted
    assert not list(w.dir.glob("*.prof"))


@pytest.fixture(scope="module")
def cli_prefork(start_worker):
    """``celerylab worker`` around an unmodified app; no ``worker`` word (celerylab inserts it)."""
    return start_worker("cliprefork", [*CELERYLAB, "worker", "--dir", "{dir}", "--run", "cli-run", "--tasks",
                                       "captest.*", "--", "-A", "tests.capture.plainapp", "-P", "prefork",
                                       "-c", "2"])  # fmt: skip


def test_celerylab_worker_prefork_profiles_in_pool_processes(cli_prefork):
    rs = [cli_prefork.send("captest.sqlite", 3) for _ in range(4)]
    assert [r.get(timeout=30) for r in rs] == [0 + 1 + 2] * 4
    metas = [cli_prefork.files(r.id)[1] for r in rs]
    assert {m["pool"] for m in metas} == {"prefork"} and {m["run"] for m in metas} == {"cli-run"}
    assert cli_prefork.proc.pid not in {m["pid"] for m in metas}  # forked pool processes wrote them
    for m in metas:  # the SQL hooks work in the children too
        stmts = {s["sql"]: s["count"] for s in m["sql"]["statements"]}
        assert stmts["SELECT count(*) FROM item WHERE id <= ?"] == 3


def test_celerylab_worker_solo_with_sampling(start_worker):
    w = start_worker("clisolo", [*CELERYLAB, "worker", "--dir", "{dir}", "--sample", "0.5", "--",
                                 "-A", "tests.capture.plainapp", "worker", "-P", "solo"])  # fmt: skip
    rs = [w.send("captest.ok", i) for i in range(40)]
    assert [r.get(timeout=60) for r in rs] == [sum(range(i)) for i in range(40)]
    w.send("captest.ok", 1).get(timeout=30)  # solo: the 40 postruns (and their writes) happened before this ran
    written = {p.name.split(".")[2] for p in w.dir.glob("captest.ok.*.prof")}
    ids = {r.id for r in rs}
    profiled = written & ids
    assert 0 < len(profiled) < 40  # P(all or none of 40 at 0.5) = 2e-12
    meta = w.files(next(iter(profiled)))[1]
    assert (meta["pool"], meta["pid"], meta["sample_rate"]) == ("solo", w.proc.pid, 0.5)


VENVS = Path("/tmp/celerylab-test-venvs")


def _python_with_celery(version: str) -> str | None:
    """A Python ``version`` interpreter with celery + redis: a cached scratch venv made from a pyenv build (one pip
    install from the package index the first time); ``None`` when there is no such interpreter or no index."""
    exe = VENVS / f"py{version}" / "bin" / "python"
    check = [str(exe), "-c", "import celery, redis, click, kombu.transport.redis"]
    if exe.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return str(exe)
    bases = sorted(Path("/root/.pyenv/versions").glob(f"{version}.*/bin/python{version}"))
    base = str(bases[-1]) if bases else shutil.which(f"python{version}")
    if not base:
        return None
    try:
        subprocess.run([base, "-m", "venv", str(exe.parent.parent)], check=True, capture_output=True, timeout=120)
        pip = [str(exe), "-m", "pip", "install", "-q", "celery>=5.4", "redis", "click", "packaging"]
        subprocess.run(pip, check=True, capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError):
        return None
    return str(exe) if subprocess.run(check, capture_output=True).returncode == 0 else None


@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_threads_pool_on_312_plus_profiles_one_task_at_a_time(start_worker, version):
    # GIVEN Python 3.12+: cProfile sits on sys.monitoring, one active profiler per process
    python = _python_with_celery(version)
    if python is None:
        pytest.skip(f"no Python {version} with celery here (needs a pyenv {version} build and the package index)")
    w = start_worker(f"py{version.replace('.', '')}", [python, "-m", "celery", "-A", "tests.capture.capapp",
                     "worker", "-P", "threads", "-c", "2"], {"CELERYLAB_DIR": "{dir}"})  # fmt: skip
    # WHEN two tasks run at the same time in two pool threads (a Redis barrier makes them overlap)
    key = f"captest-barrier-{uuid.uuid4().hex}"
    a, b = w.send("captest.pair_a", key), w.send("captest.pair_b", key)
    assert a.get(timeout=60) >= 1 and b.get(timeout=60) >= 2  # THEN neither task is hurt
    later = w.send("captest.ok", 3)  # alone: profiled again
    assert later.get(timeout=30) == 3
    _, meta = w.files(later.id)
    assert meta["python"].startswith(version) and meta["pool"] == "threads"
    # AND exactly one of the overlapping pair was profiled; the other was skipped, counted and logged once
    pair = [p for p in w.dir.glob("captest.pair_*.prof")]
    assert len(pair) == 1, [p.name for p in pair]
    assert w.log().count("another profiler is active in this process") == 1
