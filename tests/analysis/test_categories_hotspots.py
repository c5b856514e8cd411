"""Categories, DB and memory hotspots on profiles and sidecars whose answers are fixed by construction."""

from __future__ import annotations

import pstats
import uuid
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

import celerylab as cl
from celerylab.analysis import (
    CATEGORIES,
    allocation_sites,
    categorize,
    category_of,
    category_shares,
    db_hotspots,
    db_time,
    leak_suspects,
    memory_by_task,
    memory_hotspots,
    n_plus_one,
    normalize_sql,
    rss_sequence,
)
from celerylab.testing import FakeClock, profile_fake_clock, sidecar, synthetic_stats, write_profile

from .conftest import T0, make_runs

MiB = 2**20


@pytest.mark.parametrize(
    ("module", "kind", "expected"),
    [
        ("sqlite3", "builtin", "db"),  # <method 'execute' of 'sqlite3.Connection' objects>
        ("sqlalchemy.orm.query", "third-party", "db"),
        ("django.db.models.query", "third-party", "db"),
        ("psycopg2.extensions", "builtin", "db"),
        ("kombu.serialization", "third-party", "serialization"),  # longest prefix beats kombu
        ("kombu.messaging", "third-party", "celery"),
        ("billiard.pool", "third-party", "celery"),
        ("_json", "builtin", "serialization"),
        ("json.encoder", "stdlib", "serialization"),
        ("jsonschema.validators", "third-party", "third-party"),  # a whole component, not a text prefix
        ("_socket", "builtin", "network"),
        ("urllib3.connectionpool", "third-party", "network"),
        ("builtins", "builtin", "stdlib"),
        ("numpy._core._multiarray_umath", "builtin", "third-party"),
        ("logging", "stdlib", "stdlib"),
        ("orders.tasks", "app", "app"),
        ("requests_toolbelt.x", "third-party", "third-party"),
    ],
)
def test_category_table(module, kind, expected):
    assert category_of(module, kind) == expected


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("<method 'execute' of 'sqlite3.Cursor' objects>", "sqlite3"),
        ("<built-in method _sqlite3.connect>", "sqlite3"),
        ("<built-in method time.sleep>", "time"),
        # capture's sqlite3 hook, called from sqlite3's C code: the wrapped library, whatever the address
        ("<function _hook_sqlite3.<locals>.TracedMixin.cursor at 0x7f9c459114e0>", "sqlite3"),
        ("<function helper at 0x7f9c459114e0>", "builtins"),
    ],
)
def test_module_of_builtin_labels(name, module):
    from celerylab.core.classify import classify

    modules, kinds = classify(pd.Series(["~"]), pd.Series([name]))
    assert (modules[0], kinds[0]) == (module, "builtin")


@pytest.fixture(scope="module")
def qps(tmp_path_factory):
    folder = tmp_path_factory.mktemp("query")
    make_runs(folder, n_per_task=4, tasks=("app.query", "app.report"))
    return cl.load(str(folder), cache=False)


def test_category_shares_add_up_and_equal_stats_sums(qps):
    sh = category_shares(qps)
    assert set(sh["category"].astype(str)) <= set(CATEGORIES)
    assert sh.groupby("task_name")["share"].sum().to_numpy() == pytest.approx(1.0)
    cats = categorize(qps).set_index("func_id")["category"]
    s = qps.stats.merge(qps.profiles[["profile_id", "task_name"]], on="profile_id")
    s["category"] = s["func_id"].map(cats).astype(str)
    truth = s.groupby(["task_name", "category"])["tottime"].sum()
    got = sh.set_index(["task_name", sh["category"].astype(str)])["tottime"]
    assert got.to_numpy() == pytest.approx(truth.loc[got.index].to_numpy(), rel=1e-12)
    # the sqlite3 methods are db; json's functions serialization
    q = categorize(qps)
    assert (q.loc[q.label.str.contains("sqlite3.Connection"), "category"] == "db").all()
    assert (q.loc[q.module.astype(str).str.startswith("json"), "category"] == "serialization").all()
    overall = category_shares(qps, by=None)
    assert "task_name" not in overall.columns and overall["share"].sum() == pytest.approx(1.0)


def test_db_time_is_the_exclusive_time_of_db_functions(qps):
    d = db_time(qps).set_index("task_name")
    assert d.index[0] == "app.query" and d.loc["app.report", "db_time"] == 0
    paths = qps.where(task_name="app.query").profiles["path"].tolist()
    ref = pstats.Stats(*paths).stats
    truth = sum(v[2] for k, v in ref.items() if "sqlite3" in k[2])
    assert d.loc["app.query", "db_time"] == pytest.approx(truth, rel=1e-12)
    per = [sum(v[2] for k, v in pstats.Stats(p).stats.items() if "sqlite3" in k[2]) for p in paths]
    assert d.loc["app.query", "db_time_p95"] == pytest.approx(np.quantile(per, 0.95))
    assert "sqlite3" in d.loc["app.query", "top_db_function"]
    assert np.isnan(d.loc["app.query", "sql_count_mean"])  # no SQL capture in these sidecars


# -------------------------------------------------------------------------------------- sidecar hotspots
LAZY = "SELECT * FROM lines WHERE order_id = ?"
JOIN = "SELECT o.id, l.id FROM orders o JOIN lines l ON l.order_id = o.id WHERE o.country = ?"
CALLER = "/srv/app/reports.py:57(load_report_rows)"


def _side(path_folder, k, task, pid, rss_before, rss_after, sql=None, top=None, peak=None):
    tid = str(uuid.UUID(int=10_000 + k))
    extra = {"memory": {"rss_before": rss_before, "rss_after": rss_after, "peak_traced": peak, "top": top or []}}
    if sql is not None:
        extra["sql"] = sql
    meta = sidecar(task, tid, started=T0 + timedelta(seconds=k), pid=pid, **extra)
    return write_profile(str(path_folder), synthetic_stats(20, 30, seed=k), task_name=task, task_id=tid, meta=meta)


@pytest.fixture(scope="module")
def hps(tmp_path_factory):
    """pid 1: every `thumb` keeps 1 MiB (a leak); pid 2: same tasks, no leak.  `report`: N+1 in half of them."""
    folder = tmp_path_factory.mktemp("hot")
    rss = {1: 50 * MiB, 2: 50 * MiB}
    k = 0
    for i in range(12):
        for pid in (1, 2):
            task = "thumb" if i % 2 == 0 else "report"
            grow = MiB if (pid == 1 and task == "thumb") else (4096 if i == 0 else 0)
            sql = None
            if task == "report":
                n = 25 if i % 4 == 1 else 1
                sql = {
                    "count": n + 1,
                    "time_s": 0.001 * (n + 1),
                    "statements": [
                        {"sql": LAZY, "count": n, "time_s": 0.001 * n, "callers": [CALLER]},
                        {"sql": JOIN, "count": 1, "time_s": 0.001, "callers": ["/srv/app/reports.py:40(build)"]},
                    ],
                }
            top = [{"file": "/srv/app/thumbs.py", "line": 12, "size": grow, "count": 1}] if task == "thumb" else []
            _side(folder, k, task, pid, rss[pid], rss[pid] + grow, sql=sql, top=top, peak=2 * MiB)
            rss[pid] += grow
            k += 1
    return cl.load(str(folder), cache=False)


def test_n_plus_one_finds_the_repeated_statement_and_its_caller(hps):
    s = n_plus_one(hps)
    assert len(s) == 1
    row = s.iloc[0]
    assert (row["task_name"], row["sql"], row["caller"]) == ("report", LAZY, CALLER)
    assert row["profiles"] == 6 and row["task_profiles"] == 12 and row["affected_share"] == 0.5
    assert row["max_per_invocation"] == 25 and row["mean_per_invocation"] == 25
    assert row["time_s"] == pytest.approx(6 * 0.025)
    h = db_hotspots(hps).set_index("sql")
    assert bool(h.loc[LAZY, "n_plus_one"]) and not bool(h.loc[JOIN, "n_plus_one"])
    assert h.loc[LAZY, "count"] == 6 * 25 + 6 * 1 and h.loc[LAZY, "n_profiles"] == 12
    assert h.loc[LAZY, "callers"] == CALLER and h.loc[LAZY, "task_names"] == "report"
    assert h.index[0] == LAZY  # most time first
    assert len(n_plus_one(hps, min_repeats=26)) == 0


def test_normalize_sql_is_idempotent_and_merges_literals():
    raw = "select *  from t where id in (1, 2, 3) and name = 'o''k' limit 10"
    n = normalize_sql(raw)
    assert n == "select * from t where id in (?...) and name = ? limit ?"
    assert normalize_sql(n) == n and normalize_sql(LAZY) == LAZY


def test_leaking_worker_and_task_are_found(hps):
    w = memory_hotspots(hps).set_index("pid")
    assert bool(w.loc[1, "leak_suspect"]) and not bool(w.loc[2, "leak_suspect"])
    assert w.loc[1, "growth"] == 6 * MiB and w.loc[1, "suspect_tasks"] == "thumb"
    assert w.loc[1, "trend"] > 0.9 and w.loc[1, "late_growth"] == 3 * MiB
    ls = leak_suspects(hps).set_index("task_name")
    assert bool(ls.loc["thumb", "suspect"]) and not bool(ls.loc["report", "suspect"])
    assert ls.loc["thumb", "rss_growth_total"] == 6 * MiB + 4096 and ls.loc["thumb", "growth_share"] == 1.0
    assert ls.loc["thumb", "suspect_workers"] == 1 and ls.loc["thumb", "workers"] == 2
    assert ls.loc["thumb", "rss_growth_mean"] == (6 * MiB + 4096) / 12 and ls.loc["thumb", "other_growth_mean"] == 0
    m = memory_by_task(hps).set_index("task_name")
    assert m.index[0] == "thumb" and m.loc["thumb", "rss_growth_total"] == 6 * MiB + 4096
    assert m.loc["thumb", "grew_share"] == pytest.approx(7 / 12) and m.loc["thumb", "peak_traced_max"] == 2 * MiB
    a = allocation_sites(hps)
    assert (a["file"].iloc[0], a["line"].iloc[0], a["size"].iloc[0]) == ("/srv/app/thumbs.py", 12, 6 * MiB + 4096)


def test_slow_spread_growth_is_steady_but_not_a_leak(tmp_path):
    """A process whose RSS creeps up a little in a few runs of every task (caches, fragmentation) has steady
    growth, but no task carries it: not a leak suspect."""
    rss = 80 * MiB
    for k in range(30):
        grow = 300 * 1024 if k % 4 == 0 else 0  # a step every fourth task, whichever task it is
        _side(tmp_path, k, ("a", "b", "c")[k % 3], 7, rss, rss + grow)
        rss += grow
    ps = cl.load(str(tmp_path), cache=False)
    w = memory_hotspots(ps).iloc[0]
    assert bool(w["steady_growth"]) and not bool(w["leak_suspect"]) and w["suspect_tasks"] == ""
    assert not leak_suspects(ps)["suspect"].any()


@pytest.fixture(scope="module")
def interleaved(tmp_path_factory):
    """One worker process (pid 5) alternating `leak` (keeps 1 MiB each run) and `flat` (RSS unchanged), 8 each,
    back to back; pid 6 runs `flat` only.  Every reading of `flat` in pid 5 climbs because of its neighbour."""
    folder = tmp_path_factory.mktemp("interleaved")
    rss = {5: 40 * MiB, 6: 60 * MiB}
    k = 0
    for i in range(16):
        task = "leak" if i % 2 == 0 else "flat"
        grow = MiB if task == "leak" else 0
        _side(folder, k, task, 5, rss[5], rss[5] + grow, top=[{"file": "/srv/app/leak.py", "line": 3, "size": grow,
                                                              "count": 1}] if grow else [])  # fmt: skip
        rss[5] += grow
        k += 1
    for _ in range(4):
        _side(folder, k, "flat", 6, rss[6], rss[6])
        k += 1
    return cl.load(str(folder), cache=False)


def test_memory_growth_comes_only_from_the_filtered_tasks(interleaved):
    everything = memory_hotspots(interleaved).set_index("pid")
    assert everything.loc[5, "growth"] == 8 * MiB and everything.loc[5, "late_growth"] == 4 * MiB
    assert bool(everything.loc[5, "leak_suspect"]) and everything.loc[5, "suspect_tasks"] == "leak"
    # only `flat`: its readings in pid 5 climb 40 -> 48 MiB, but none of that growth is its own
    flat = memory_hotspots(interleaved.where(task_name="flat")).set_index("pid")
    assert flat.loc[5, "tasks"] == 8 and flat.loc[5, "growth"] == 0 and flat.loc[5, "late_growth"] == 0
    assert flat.loc[5, "growth_per_task"] == 0 and not bool(flat.loc[5, "steady_growth"])
    assert (flat.loc[5, "rss_first"], flat.loc[5, "rss_last"]) == (41 * MiB, 48 * MiB)  # readings as recorded
    assert not bool(flat.loc[5, "leak_suspect"]) and flat.loc[5, "suspect_tasks"] == ""
    only_leak = memory_hotspots(interleaved.where(task_name="leak")).set_index("pid")
    assert only_leak.loc[5, "growth"] == 8 * MiB and only_leak.loc[5, "late_growth"] == 4 * MiB
    assert only_leak.loc[5, "trend"] == pytest.approx(1.0)
    # the per-task views, the sequence and the allocation sites agree under the filter
    assert memory_by_task(interleaved.where(task_name="flat"))["rss_growth_total"].tolist() == [0.0]
    assert rss_sequence(interleaved.where(task_name="flat"))["growth"].eq(0).all()
    assert len(allocation_sites(interleaved.where(task_name="flat"))) == 0
    assert allocation_sites(interleaved.where(task_name="leak"))["size"].tolist() == [8 * MiB]


def test_rss_sequence_numbers_each_process_and_marks_the_growing_tasks(interleaved):
    seq = rss_sequence(interleaved)
    assert list(seq.columns[:4]) == ["hostname", "pid", "worker", "seq"]
    p5 = seq.loc[seq["pid"] == 5]
    assert p5["seq"].tolist() == list(range(1, 17)) and set(p5["worker"]) == {"worker1@host:5"}
    assert p5["task_name"].tolist() == ["leak", "flat"] * 8
    assert p5["rss_after"].tolist() == [(40 + (i + 2) // 2) * MiB for i in range(16)]
    assert p5["growth"].tolist() == [MiB, 0] * 8
    assert p5["grew"].tolist() == [True, False] * 8
    p6 = seq.loc[seq["pid"] == 6]
    assert p6["seq"].tolist() == [1, 2, 3, 4] and not p6["grew"].any() and (p6["rss_after"] == 60 * MiB).all()
    assert p5["task_id"].iloc[0] == str(uuid.UUID(int=10_000))
    assert not rss_sequence(interleaved, min_growth=2 * MiB)["grew"].any()
    pd.testing.assert_frame_equal(interleaved.rss_sequence(min_growth=2 * MiB),
                                  rss_sequence(interleaved, min_growth=2 * MiB))  # fmt: skip
    # a filtered selection is numbered along its own profiles
    leak = rss_sequence(interleaved.where(task_name="leak"))
    assert leak["seq"].tolist() == list(range(1, 9)) and leak["grew"].all()


def test_hotspots_without_sidecar_data_are_empty_frames(tmp_path):
    clock = FakeClock()
    write_profile(str(tmp_path), profile_fake_clock(sum, [1, 2], clock=clock), task_id="x")
    ps = cl.load(str(tmp_path), cache=False)
    for fn in (db_hotspots, n_plus_one, memory_hotspots, leak_suspects, allocation_sites, memory_by_task, rss_sequence):
        out = fn(ps)
        assert len(out) == 0 and len(out.columns) > 2, fn.__name__
    assert db_time(ps)["db_time"].iloc[0] == 0
