"""findings(): what changed and why, on the shipped samples (planted regressions in sample_profiles/manifest.json)
and on fake-clock profiles with a planted cause."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pytest

import celerylab as cl
from celerylab.analysis import findings, findings_evidence
from celerylab.analysis.findings import FINDING_COLUMNS, cliffs_delta, short_site
from celerylab.testing import FakeClock, profile_fake_clock, sidecar, write_profile

from .conftest import T0

LINES_SQL = "SELECT * FROM order_lines WHERE order_id = ?"


# ------------------------------------------------------------------------------------------ shipped samples
@pytest.fixture(scope="module")
def samples():
    return cl.load(cl.sample_profiles())


@pytest.fixture(scope="module")
def found(samples):
    return findings(samples, split_by="run")


def test_samples_the_n_plus_one_in_reports_build_is_found_with_its_cause(found):
    # (the samples' biggest weight in the run can be the planted improvement: ranks follow |delta| x invocations)
    first = found.loc[found["task_name"] == "demo.reports.build"].iloc[0]
    assert first["rank"] <= 2
    assert (first["kind"], first["direction"]) == ("time", "slower")
    assert "load_report_rows" in first["cause"] and first["cause_label"].endswith("reports.py:56(load_report_rows)")
    assert first["sql_caller"] == "reports.py:67(load_report_rows)"
    assert first["sql"].startswith("SELECT order_lines.id") and first["n_plus_one"]
    assert first["p_adjusted"] < 1e-6 and first["effect_size"] > 0.9 and first["ratio"] > 3
    assert "demo.reports.build slower" in first["headline"] and "reports.py:67" in first["headline"]
    assert "N+1" in first["headline"]


def test_samples_every_planted_change_and_nothing_else(found, samples):
    got = {(r.task_name, r.kind, r.direction): r.cause for r in found.itertuples()}
    assert set(got) == {
        ("demo.reports.build", "time", "slower"),
        ("demo.campaigns.send_batch", "time", "slower"),
        ("demo.analytics.aggregate", "time", "faster"),
        ("demo.thumbnails.render", "memory", "grows"),
        # the producer side's plant: publishing orders opens a connection per publish (a task of its own)
        ("demo.orders.process (publish)", "time", "slower"),
    }
    assert "encode_payload" in got[("demo.campaigns.send_batch", "time", "slower")]
    assert "rolling_totals" in got[("demo.analytics.aggregate", "time", "faster")]
    assert "cache_thumbnail" in got[("demo.thumbnails.render", "memory", "grows")]
    assert list(found.columns) == FINDING_COLUMNS
    assert found["rank"].tolist() == list(range(1, len(found) + 1))
    # time findings ranked by their weight in the run (|delta| x invocations), memory after
    t = found.loc[found["kind"] == "time", "impact"].to_numpy()
    assert (np.diff(t) <= 0).all() and found["kind"].iloc[-1] == "memory"


def test_samples_evidence_rows(found):
    ev = findings_evidence(found)
    build = ev.loc[ev["task_name"] == "demo.reports.build"]
    sql = build.loc[build["kind"] == "sql"].iloc[0]
    assert sql["label"] == "reports.py:67(load_report_rows)" and sql["n_plus_one"]
    assert sql["mean_a"] == 0 and sql["mean_b"] > 25  # executions per invocation
    funcs = build.loc[build["kind"] == "function"]
    assert len(funcs) <= 3 and (funcs["delta"] > 0).all()
    leak = ev.loc[(ev["task_name"] == "demo.thumbnails.render") & (ev["kind"] == "allocation")].iloc[0]
    assert leak["label"] == "thumbnails.py:60" and leak["unit"] == "bytes" and leak["delta"] > 700 * 1024


def test_findings_respects_the_split_values(samples):
    swapped = findings(samples, split_by="run", values=("candidate", "baseline"))
    row = swapped.loc[swapped["task_name"] == "demo.reports.build"].iloc[0]
    assert row["direction"] == "faster" and row["effect_size"] < -0.9
    assert "load_report_rows" in row["cause"]


# ------------------------------------------------------------------------------------- a planted cause
def fetch_lines(clock: FakeClock, n: int) -> None:
    """The planted cause: each of ``n`` queries costs 4 ticks of own time."""
    for _ in range(n):
        clock.now += 4


def format_rows(clock: FakeClock, i: int) -> None:
    clock.now += 30 + i % 3


def build(clock: FakeClock, side: str, i: int) -> None:
    fetch_lines(clock, 1 if side == "a" else 20)
    format_rows(clock, i)


def plain(clock: FakeClock, side: str, i: int) -> None:
    format_rows(clock, i)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """app.build: fetch_lines issues 1 query per invocation in A, 20 in B (an N+1 from test_findings.py's
    fetch_lines line); app.plain unchanged; app.cache leaks 2 MiB of RSS per invocation in B."""
    folder = tmp_path_factory.mktemp("planted")
    k = 0
    for side in ("a", "b"):
        for task, body in (("app.build", build), ("app.plain", plain), ("app.cache", plain)):
            for i in range(12):
                clock = FakeClock()
                stats = profile_fake_clock(body, clock, side, i, clock=clock)
                wall = clock.now / 1000
                n_q = 20 if (side == "b" and task == "app.build") else 1
                caller = f"{__file__}:{fetch_lines.__code__.co_firstlineno + 3}(fetch_lines)"
                sql = {"count": n_q, "time_s": 0.001 * n_q, "statements": [
                    {"sql": LINES_SQL, "count": n_q, "time_s": 0.001 * n_q, "callers": [caller]}]}  # fmt: skip
                grow = 2 * 2**20 if (side == "b" and task == "app.cache") else (i % 3) * 1024
                memory = {"rss_before": 100 * 2**20, "rss_after": 100 * 2**20 + grow, "peak_traced": 2**20,
                          "top": [{"file": "/srv/app/cache.py", "line": 12, "size": grow, "count": 1}]}  # fmt: skip
                tid = str(uuid.UUID(int=k + 1))
                meta = sidecar(task, tid, run=side, started=T0 + timedelta(seconds=k), wall_s=wall, sql=sql,
                               memory=memory)  # fmt: skip
                write_profile(str(folder), stats, task_name=task, task_id=tid, meta=meta)
                k += 1
    return cl.load(folder, cache=False)


def test_planted_cause_is_found(planted):
    f = findings(planted)
    assert set(zip(f["task_name"], f["kind"], f["direction"], strict=True)) == {
        ("app.build", "time", "slower"),
        ("app.cache", "memory", "grows"),
    }
    build_row = f.loc[f["task_name"] == "app.build"].iloc[0]
    assert build_row["cause"].endswith(f"fetch_lines:{fetch_lines.__code__.co_firstlineno}")
    assert build_row["sql"] == LINES_SQL and build_row["n_plus_one"]
    assert build_row["sql_caller"] == f"test_findings.py:{fetch_lines.__code__.co_firstlineno + 3}(fetch_lines)"
    # exactly the planted amounts: 19 more queries of 4 ms each per invocation
    assert build_row["delta"] == pytest.approx(0.076, abs=0.002)
    ev = findings_evidence(f)
    cause = ev.loc[(ev["task_name"] == "app.build") & (ev["kind"] == "cause")].iloc[0]
    assert cause["delta"] == pytest.approx(0.076, abs=1e-9) and cause["share"] == pytest.approx(1.0, abs=0.03)
    sql = ev.loc[(ev["task_name"] == "app.build") & (ev["kind"] == "sql")].iloc[0]
    assert (sql["mean_a"], sql["mean_b"]) == (1.0, 20.0)
    cache = f.loc[f["task_name"] == "app.cache"].iloc[0]
    assert cache["mean_b"] == 2 * 2**20 and cache["ratio"] > 100
    site = ev.loc[(ev["task_name"] == "app.cache") & (ev["kind"] == "allocation")].iloc[0]
    assert site["label"] == "cache.py:12"


def test_no_change_no_findings(planted):
    same = planted.where(task_name="app.plain")
    assert findings(same).empty
    assert list(findings(same).columns) == FINDING_COLUMNS


def test_helpers():
    assert short_site("/srv/app/reports.py:67(load_report_rows)") == "reports.py:67(load_report_rows)"
    assert short_site("/srv/app/cache.py:12") == "cache.py:12"
    assert short_site("{built-in method time.sleep}") == "{built-in method time.sleep}"
    assert cliffs_delta(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 1.0
    assert cliffs_delta(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == -1.0
    assert cliffs_delta(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0


def test_celerylab_frames_from_another_machine_are_instrumentation():
    import pandas as pd

    from celerylab.analysis.categories import category_of
    from celerylab.core.classify import classify

    files = pd.Series(["/srv/other/celerylab/capture/_sql.py", "/srv/other/celerylab/demo/reports.py", "/x/app.py"])
    modules, kinds = classify(files, pd.Series(["wrapper", "load_report_rows", "f"]), ["/usr"])
    assert modules.tolist() == ["celerylab.capture._sql", "celerylab.demo.reports", "app"]
    assert category_of(modules[0], kinds[0]) == "celery"  # the capture: overhead, like celery/kombu/billiard
    assert category_of(modules[1], kinds[1]) == "app"


def test_the_cause_is_never_instrumentation(found, samples):
    from celerylab.analysis.categories import function_categories

    cats = function_categories(samples)
    by_label = samples.functions.set_index("label")["func_id"]
    for label in found["cause_label"].dropna():
        assert cats[by_label[label]] != "celery", label
