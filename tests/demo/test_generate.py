"""The generator end to end on a small size: real ``celery worker`` subprocesses (prefork, -c 2) under capture,
real Redis, real PostgreSQL; then ``cl.load`` reads what it wrote."""

from __future__ import annotations

import inspect
import os
import socket
from collections import Counter

import pytest

import celerylab as cl
from celerylab.cli import main
from celerylab.demo import manifest as mf
from celerylab.demo import thumbnails
from celerylab.demo.plan import build_plan

pytestmark = [pytest.mark.services, pytest.mark.slow]

PER_RUN = 20
SEED = 5


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """One small generation through the CLI (``celerylab generate-samples``), shared by the tests below."""
    for port, name in ((6379, "Redis"), (5432, "PostgreSQL")):
        if not _port_open(port):
            pytest.fail(f"{name} is not listening on 127.0.0.1:{port}; run the tests with scripts/dev test")
    out = tmp_path_factory.mktemp("samples")
    db_name = f"celerylab_demo_test_{os.getpid()}"
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db_name}"
    code = main(["generate-samples", str(out), "--per-run", str(PER_RUN), "--seed", str(SEED), "--database", url,
                 "--timeout", "120"])  # fmt: skip
    assert code == 0
    return out, db_name


@pytest.fixture(scope="module")
def loaded(generated):
    out, _ = generated
    return cl.load(str(out), cache=False, progress=False)


def test_layout_and_manifest(generated):
    out, _ = generated
    assert sorted(p.name for p in out.iterdir()) == ["baseline", "candidate", "manifest.json"]  # no staging left
    m = mf.read_manifest(out)
    published = sum(1 for c in build_plan(PER_RUN, SEED) if c.task == m["producer"]["tasks"])
    for run in mf.RUNS:
        files = sorted(p.name for p in (out / run).iterdir())
        profs = [f for f in files if f.endswith(".prof.gz")]
        sides = [f for f in files if f.endswith(".json")]
        pubs = [f for f in profs if f.endswith(".publish.prof.gz")]
        assert len(profs) == len(sides) == PER_RUN + published
        assert len(profs) - len(pubs) == PER_RUN == m["runs"][run]["profiles"]
        assert len(pubs) == published == m["runs"][run]["publishes"] > 0  # the producer side, one per publish
        assert len(files) == 2 * (PER_RUN + published)  # nothing uncompressed, nothing else
        assert {f.removesuffix(".prof.gz") for f in profs} == {f.removesuffix(".json") for f in sides}
        assert m["runs"][run]["bytes"] == sum(p.stat().st_size for p in (out / run).iterdir())
    assert [p["id"] for p in m["planted"]] == [p["id"] for p in mf.PLANTED]
    assert m["unchanged_tasks"] == list(mf.UNCHANGED_TASKS)
    assert m["per_run"] == PER_RUN and m["seed"] == SEED and m["database"] == "postgresql"


def test_both_runs_ran_the_same_plan_on_two_processes_each(generated, loaded):
    out, _ = generated
    m = mf.read_manifest(out)
    p = loaded.profiles
    assert len(loaded.errors) == 0
    assert set(p["run"]) == {"baseline", "candidate"}
    expected = Counter()
    for call in build_plan(PER_RUN, SEED):
        expected[call.task] += 1 + call.retries
        if call.task == "demo.batch.fan_out":
            expected["demo.batch.score_item"] += call.kwargs["items"]
    for run in mf.RUNS:
        mine = p[(p["run"] == run) & (p["role"] == "worker")]
        assert Counter(mine["task_name"].astype(str)) == expected
        assert m["runs"][run]["tasks"] == dict(sorted(expected.items()))
        assert mine["pid"].nunique() == 2, f"{run}: tasks ran on {mine['pid'].unique()}"
        assert sorted(mine["pid"].unique().tolist()) == m["runs"][run]["pids"]
        assert (mine["pool"].astype(str) == "prefork").all()
        assert mine["hostname"].astype(str).str.startswith(f"{run}-").all()
    w = p[p["role"] == "worker"]
    assert set(w.loc[w["run"] == "baseline", "pid"]).isdisjoint(w.loc[w["run"] == "candidate", "pid"])
    # both runs were published by the same producer process (the generator)
    producers = p.loc[p["role"] == "producer"].groupby("run", observed=True)["pid"].unique()
    assert [list(v) for v in producers] == [[os.getpid()], [os.getpid()]]


def test_failures_and_retries_were_profiled(generated, loaded):
    out, _ = generated
    m = mf.read_manifest(out)
    p = loaded.profiles
    for run in mf.RUNS:
        mine = p[(p["run"] == run) & (p["role"] == "worker")]
        failed = mine[mine["state"] == "FAILURE"]
        retried = mine[mine["state"] == "RETRY"]
        assert set(failed["task_name"].astype(str)) >= {"demo.partners.fetch_rates", "demo.orders.process"}
        assert set(failed["exception_type"].astype(str)) >= {"celerylab.demo.partners.PartnerAPIError",
                                                             "celerylab.demo.orders.OrderRejected"}  # fmt: skip
        assert (retried["exception_type"].astype(str) == "celerylab.demo.partners.PartnerTimeout").all()
        assert len(retried) >= 1 and (retried["task_name"] == "demo.partners.fetch_rates").all()
        assert len(failed) == m["runs"][run]["failures"] and len(retried) == m["runs"][run]["retries"]
        # the attempt after a retry is a separate profile of the same task id, with its retry count
        assert mine.loc[mine["task_id"].isin(retried["task_id"]), "retries"].max() >= 1


def test_sql_statements_recorded_for_db_tasks(loaded):
    p = loaded.profiles
    sql = loaded.sql.merge(p[["profile_id", "run", "task_name"]], on="profile_id")
    for run in mf.RUNS:
        for task in ("demo.orders.process", "demo.reports.build"):
            mine = sql[(sql["run"] == run) & (sql["task_name"] == task)]
            assert len(mine), f"no SQL recorded for {task} in {run}"
        orders = sql[(sql["run"] == run) & (sql["task_name"] == "demo.orders.process")]
        assert orders["sql"].str.contains("UPDATE products", case=False).any()
    # the planted N+1: the candidate's report runs many more statements per task than the baseline's
    reports = p[(p["task_name"] == "demo.reports.build") & (p["state"] == "SUCCESS")]
    per_run = reports.groupby("run", observed=True)["sql_count"].median()
    assert per_run["candidate"] >= 3 * per_run["baseline"]


def test_memory_data_points_at_the_planted_leak(generated, loaded):
    out, _ = generated
    p = loaded.profiles
    p = p[p["role"] == "worker"]  # a producer profile has no memory readings
    assert p["memory_rss_before"].notna().all() and p["memory_rss_after"].notna().all()
    allocs = loaded.allocations.merge(p[["profile_id", "run", "task_name"]], on="profile_id")
    thumbs = allocs[(allocs["run"] == "candidate") & (allocs["task_name"] == "demo.thumbnails.render")]
    leak_line = _line_of(thumbnails.cache_thumbnail, "bytearray(source)")
    in_file = thumbs["file"].astype(str).str.endswith("celerylab/demo/thumbnails.py")
    at_leak = thumbs[in_file & (thumbs["line"] == leak_line)]
    assert len(at_leak), f"no tracemalloc site at thumbnails.py:{leak_line}; sites: {thumbs[['file', 'line']].head()}"
    assert (at_leak["size"] >= 700 * 1024).all()  # the copied 1024×768 source image
    # what each thumbnail task still holds when it returns (its tracemalloc sites): every candidate task the copy,
    # no baseline task more than its small LRU entry
    renders = p.loc[(p["task_name"] == "demo.thumbnails.render") & (p["state"] == "SUCCESS"), ["profile_id", "run"]]
    held = renders["profile_id"].map(allocs.groupby("profile_id")["size"].sum()).fillna(0)
    by_run = held.groupby(renders["run"].astype(str))
    assert set(by_run.groups) == {"baseline", "candidate"}
    assert by_run.min()["candidate"] >= 700 * 1024 and by_run.max()["baseline"] <= 64 * 1024, by_run.agg(list)
    # the manifest's figures, which the generator checked
    obs = {o["id"]: o for o in mf.read_manifest(out)["observed"]}["thumbnail_cache_leak"]
    assert obs["candidate"]["median_traced_retained"] >= 700 * 1024
    assert obs["baseline"]["median_traced_retained"] <= 64 * 1024


def test_planted_functions_resolve_and_move_the_right_way(generated, loaded):
    out, _ = generated
    m = mf.read_manifest(out)
    for item, obs in zip(m["planted"], m["observed"]):
        fid = loaded.resolve(item["function"])
        assert obs["function_label"] == loaded.functions["label"].iloc[fid]
        assert obs["function_label"].endswith(f"({item['function']})")
    ratios = {o["id"]: o.get("function_cumtime_ratio") for o in m["observed"]}
    assert ratios["n_plus_one"] > 1.5 and ratios["slow_serializer"] > 1.5 and ratios["rolling_totals_speedup"] < 0.67


def test_databases_are_dropped_afterwards(generated):
    from sqlalchemy import create_engine, text

    _, db_name = generated
    eng = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    try:
        with eng.connect() as c:
            left = c.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": db_name + "%"}).all()
    finally:
        eng.dispose()
    assert left == []


def _line_of(func, fragment: str) -> int:
    """The line number of the statement in ``func`` whose source contains ``fragment``."""
    src, start = inspect.getsourcelines(func)
    for i, line in enumerate(src):
        if fragment in line:
            return start + i
    raise AssertionError(f"{fragment!r} not in {func.__name__}")
