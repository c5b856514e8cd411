"""Latency breakdown (publish, queue wait, run) from producer and worker sidecars with known numbers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

import celerylab as cl
from celerylab import analysis as an
from celerylab.testing import sidecar, write_profile

STATS = {("app.py", 1, "f"): (1, 1, 0.001, 0.001, {})}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def ps(tmp_path_factory):
    """20 worker runs of two tasks and 20 publishes: `reports.build` waits 0.1 s in the queue for its first ten
    runs and 5 s for the next ten (a backlog that starts at +10 min); `orders.sync` never waits."""
    d = tmp_path_factory.mktemp("latency")
    for i in range(20):
        tid = str(uuid.UUID(int=i + 1))
        wait = 0.1 if i < 10 else 5.0
        started = T0 + timedelta(minutes=i)
        write_profile(str(d), STATS, task_name="reports.build", task_id=tid,
                      meta=sidecar("reports.build", tid, started=started, wall_s=0.5 + i / 100, role="worker",
                                   queue_wait_s=wait, broker_wait_s=wait - 0.05, prefetch_wait_s=0.05))  # fmt: skip
        write_profile(str(d), STATS, task_name="reports.build", task_id=tid + ".publish",
                      meta=sidecar("reports.build", tid, started=started - timedelta(seconds=wait), wall_s=0.002,
                                   role="producer", publish_s=0.002 + i / 10000))  # fmt: skip
        oid = str(uuid.UUID(int=1000 + i))
        write_profile(str(d), STATS, task_name="orders.sync", task_id=oid,
                      meta=sidecar("orders.sync", oid, started=started, wall_s=0.05, queue_wait_s=0.01))  # fmt: skip
    return cl.load(d, cache=False)


def test_roles_are_read_and_old_sidecars_count_as_worker(ps):
    roles = ps.profiles.groupby("task_name", observed=True)["role"].agg(lambda s: sorted(set(s.astype(str))))
    assert roles["reports.build"] == ["producer", "worker"]
    assert roles["orders.sync"] == ["worker"]  # no role in the sidecar: written by a worker


def test_latency_per_task_and_stage_equals_the_numbers_written(ps):
    lat = an.latency(ps).set_index(["task_name", "stage"])
    rb = lat.loc["reports.build"]
    assert list(rb.index) == ["publish", "queue_wait", "broker_wait", "prefetch_wait", "run"]  # life order
    waits = np.array([0.1] * 10 + [5.0] * 10)
    assert rb.loc["queue_wait", "n"] == 20
    assert rb.loc["queue_wait", "mean"] == pytest.approx(waits.mean())
    assert rb.loc["queue_wait", "p50"] == pytest.approx(np.median(waits))
    assert rb.loc["queue_wait", "p95"] == pytest.approx(np.quantile(waits, 0.95))
    assert rb.loc["run", "p99"] == pytest.approx(np.quantile(0.5 + np.arange(20) / 100, 0.99))
    assert rb.loc["publish", "n"] == 20 and rb.loc["publish", "max"] == pytest.approx(0.002 + 19 / 10000)
    # a producer profile never counts as a run, a worker profile never as a publish
    assert rb.loc["run", "n"] == 20
    assert set(lat.loc["orders.sync"].index) == {"queue_wait", "run"}
    assert ps.latency().equals(an.latency(ps))


def test_latency_over_time_and_the_backlog_episode(ps):
    t = an.latency_over_time(ps, freq="5min")
    q = t.loc[(t["task_name"] == "reports.build") & (t["stage"] == "queue_wait")]
    assert q["p50"].tolist() == pytest.approx([0.1, 0.1, 5.0, 5.0])
    eps = an.queue_wait_episodes(ps, threshold=1.0, freq="1min")
    assert len(eps) == 1
    e = eps.iloc[0]
    assert (e["start"], e["end"]) == (
        pd.Timestamp(T0 + timedelta(minutes=10)),
        pd.Timestamp(T0 + timedelta(minutes=20)),
    )
    # each minute holds one reports.build (5 s) and one orders.sync (0.01 s); only the former waited past 1 s
    assert e["tasks"] == ["reports.build"] and e["p95_max"] == pytest.approx(np.quantile([0.01, 5.0], 0.95))


def test_latency_of_profiles_without_timing_is_just_the_run(tmp_path):
    write_profile(str(tmp_path), STATS, task_name="x.y", task_id=str(uuid.UUID(int=7)),
                  meta=sidecar("x.y", str(uuid.UUID(int=7)), wall_s=0.25))  # fmt: skip
    lat = an.latency(cl.load(tmp_path, cache=False))
    assert lat[["task_name", "stage", "n", "p50"]].values.tolist() == [["x.y", "run", 1, 0.25]]
    with pytest.raises(KeyError, match="no such column"):
        an.latency(cl.load(tmp_path, cache=False), by="nope")


def test_latency_charts_and_the_report_section(ps, tmp_path):
    from celerylab.charts.latency import latency_breakdown, queue_wait_timeline
    from celerylab.report import build_report

    fig = latency_breakdown(an.latency(ps))
    assert [t.name for t in fig.data] == ["publish (producer)", "queue wait", "run (worker)"]  # the legend
    assert fig.layout.title.text and fig.layout.xaxis.title.text == "seconds (p50)"
    bars = {t.name: dict(zip(t.y, t.x)) for t in fig.data}
    assert bars["queue wait"]["reports.build"] == pytest.approx(np.median([0.1] * 10 + [5.0] * 10))
    assert fig.data[0].y[0] == "reports.build"  # the task that waits most comes first
    tl = queue_wait_timeline(an.latency_over_time(ps, freq="5min"))
    assert {t.name for t in tl.data} == {"reports.build", "orders.sync"} and tl.layout.yaxis.title.text
    rep = build_report(ps, callgraph=False)
    sec = rep.section("latency")
    tables = [i for i in sec.items if hasattr(i, "frame")]
    assert {t.id for t in tables} == {"latency", "queue-wait-episodes"}


def test_no_latency_section_without_timing(tmp_path):
    from celerylab.report import build_report

    write_profile(str(tmp_path), STATS, task_name="x.y", task_id=str(uuid.UUID(int=7)),
                  meta=sidecar("x.y", str(uuid.UUID(int=7)), wall_s=0.25))  # fmt: skip
    rep = build_report(cl.load(tmp_path, cache=False), callgraph=False)
    assert "latency" not in [s.id for s in rep.sections]


def test_publishing_and_running_a_task_are_never_pooled(ps):
    # the task summary and the per-task diff keep a task's publishes apart from its runs
    ts = ps.task_summary().set_index("task_name")
    assert ts.loc["reports.build", "profiles"] == 20 and ts.loc["reports.build (publish)", "profiles"] == 20
    assert ts.loc["reports.build (publish)", "wall_p50_s"] == pytest.approx(0.002)
    half = ps.profiles["started_at"] < pd.Timestamp(T0 + timedelta(minutes=10))
    d = cl.diff(ps.where(half.to_numpy()), ps.where((~half).to_numpy()), by="task_name")
    assert {"reports.build", "reports.build (publish)", "orders.sync"} <= set(d["label"])


def test_the_explorer_latency_tab_draws_the_stages_and_follows_its_controls_and_the_filters(ps):
    from celerylab.widgets import explore

    app = explore(ps)
    tab = app.show("Latency")
    assert tab is app.latency and not app.errors.errors
    # THEN its frame is cl.latency of the selection, and the bars are the p50 per stage (the control's value)
    pd.testing.assert_frame_equal(tab.current, an.latency(ps))
    bars = {t.name: dict(zip(t.y, t.x)) for t in tab.breakdown_fig.data}
    assert bars["queue wait"]["reports.build"] == pytest.approx(np.median([0.1] * 10 + [5.0] * 10))
    assert tab.percentile.value == "p50" and "<b>p50</b>" in tab.summary.value
    assert "<b>20</b> publishes" in tab.summary.value and "<b>40</b> queue-wait readings" in tab.summary.value
    # the backlog shows as one episode naming the task that waited
    assert "Queue-wait episodes" in tab.episodes.value and "reports.build" in tab.episodes.value
    # WHEN the percentile control is set to p95: the bars, the timeline and the summary say p95
    tab.percentile.value = "p95"
    bars = {t.name: dict(zip(t.y, t.x)) for t in tab.breakdown_fig.data}
    assert bars["queue wait"]["reports.build"] == pytest.approx(np.quantile([0.1] * 10 + [5.0] * 10, 0.95))
    assert tab.breakdown_fig.shown.layout.xaxis.title.text == "seconds (p95)"
    assert "p95 per 1 min" in tab.timeline_fig.shown.layout.title.text and "<b>p95</b>" in tab.summary.value
    # WHEN the bins change to 10 min: the line has one point per 10 minutes (0.1 s, then the 5 s backlog)
    tab.bin.value = "10min"
    line = next(t for t in tab.timeline_fig.data if t.name == "reports.build")
    assert list(line.y) == pytest.approx([0.1, 5.0])
    # WHEN the filters keep only orders.sync (never waits, no publishes): the tab follows
    app.set_filters(task_name="orders.sync")
    assert set(tab.current["task_name"]) == {"orders.sync"}
    assert "publishes" not in tab.summary.value and "No queue-wait episode" in tab.episodes.value
    assert not app.errors.errors


def test_the_latency_tab_says_how_to_get_readings_when_there_are_none(tmp_path):
    from celerylab.widgets import explore

    write_profile(str(tmp_path), STATS, task_name="x.y", task_id=str(uuid.UUID(int=7)),
                  meta=sidecar("x.y", str(uuid.UUID(int=7)), wall_s=0.25))  # fmt: skip
    tab = explore(cl.load(tmp_path, cache=False)).show("Latency")
    assert "install_producer" in tab.summary.value and tab.over_time.empty
    assert tab.current[["task_name", "stage"]].values.tolist() == [["x.y", "run"]]


def test_the_latency_tab_keeps_runs_apart_and_shows_the_planted_publish_regression():
    from celerylab.widgets import explore

    samples = cl.load(cl.sample_profiles())
    tab = explore(samples, task_name="demo.orders.process").show("Latency")
    # THEN with two runs in the selection, every bar, line and table row is per task and run
    assert set(tab.current["run"]) == {"baseline", "candidate"}
    bars = {t.name: dict(zip(t.y, t.x)) for t in tab.breakdown_fig.data}
    publish = bars["publish (producer)"]
    assert set(publish) == {"demo.orders.process · baseline", "demo.orders.process · candidate"}
    # the candidate opens a broker connection per publish (the planted producer regression): its p50 is higher
    assert publish["demo.orders.process · candidate"] > 1.2 * publish["demo.orders.process · baseline"]
    expected = an.latency(samples.where(task_name="demo.orders.process"), by=["task_name", "run"])
    pd.testing.assert_frame_equal(tab.current, expected)
    assert {t.name for t in tab.timeline_fig.data} <= {"demo.orders.process · baseline",
                                                       "demo.orders.process · candidate"}  # fmt: skip
    assert "per task and run (2 runs)" in tab.summary.value
