"""The per-task diff (the default ``cl.diff``) against a reference computed independently, straight from the profile
files: ``pstats`` for the totals (and for every per-invocation value), numpy for the per-invocation statistics,
scipy for the Mann–Whitney test and the Benjamini–Hochberg correction — on a realistic corpus, and on one where
functions are new or gone and tasks run on one side only."""

from __future__ import annotations

import pstats
import re
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import celerylab as cl
from celerylab.analysis.diff import DIFF_COLUMNS
from celerylab.testing import sidecar, synthetic_stats, write_corpus, write_profile

ALL_TESTED = {"min_change": 0.0, "min_share": 0.0}


def _label(func: tuple[str, int, str]) -> str:
    return re.sub(r" at 0x[0-9a-fA-F]+", "", pstats.func_std_string(func))


def _invocation(path: str) -> dict[str, tuple[int, float, float]]:
    """label -> (calls, tottime, cumtime) of one profile file."""
    return {_label(f): (nc, tt, ct) for f, (_cc, nc, tt, ct, _callers) in pstats.Stats(path).stats.items()}


def _seq(values: list[float]) -> float:
    """Summed one after the other (pstats adds per-file values this way)."""
    return float(np.add.accumulate([0.0, *values])[-1])


def reference(profiles: pd.DataFrame, split: str, a, b, *, alpha=0.05, min_change=0.10, min_share=0.005):
    """Per task (in the order met in A then B) and function label: the diff's numbers, computed task by task."""
    sides = [profiles.loc[profiles[split].astype(object) == v] for v in (a, b)]
    tasks = list(dict.fromkeys([*sides[0]["task_name"].astype(object), *sides[1]["task_name"].astype(object)]))
    n_all = len(sides[0]) + len(sides[1])
    rows = []
    for task in tasks:
        per_side, files = [], []
        for side in sides:
            paths = side.loc[side["task_name"].astype(object) == task, "path"].tolist()
            files.append(paths)
            per_side.append([_invocation(p) for p in paths])
        labels = list(dict.fromkeys(lab for inv in per_side[0] + per_side[1] for lab in inv))
        totals = [{_label(f): v[2] for f, v in pstats.Stats(*p).stats.items()} if p else {} for p in files]
        task_time = max(
            (float(np.sum([tt for inv in invs for (_nc, tt, _ct) in inv.values()])) / len(invs) for invs in per_side
             if invs), default=0.0,
        )  # fmt: skip
        for lab in labels:
            row = {"task_name": task, "label": lab}
            vec = []
            for sfx, invs, tot in zip("ab", per_side, totals):
                n = len(invs)
                v = np.array([inv[lab][1] if lab in inv else 0.0 for inv in invs])
                vec.append(v)
                row[f"n_{sfx}"] = n
                row[f"present_{sfx}"] = sum(lab in inv for inv in invs)
                row[f"total_{sfx}"] = tot.get(lab, 0.0)
                row[f"mean_{sfx}"] = row[f"total_{sfx}"] / n if n else np.nan
                row[f"cum_mean_{sfx}"] = _seq([inv[lab][2] for inv in invs if lab in inv]) / n if n else np.nan
                row[f"calls_{sfx}"] = sum(inv[lab][0] for inv in invs if lab in inv) / n if n else np.nan
                row[f"median_{sfx}"] = np.quantile(v, 0.5) if n else np.nan
                row[f"p95_{sfx}"] = np.quantile(v, 0.95) if n else np.nan
            ma, mb = np.nan_to_num(row["mean_a"]), np.nan_to_num(row["mean_b"])
            row["delta"] = mb - ma
            row["ratio"] = mb / ma if ma != 0 else (np.inf if mb != 0 else np.nan)
            row["cum_delta"] = np.nan_to_num(row["cum_mean_b"]) - np.nan_to_num(row["cum_mean_a"])
            row["contribution"] = row["delta"] * ((row["n_a"] + row["n_b"]) / n_all)  # delta x the task's share
            both = row["present_a"] > 0 and row["present_b"] > 0
            relevant = both and abs(row["ratio"] - 1) >= min_change and abs(row["delta"]) >= min_share * task_time
            test = stats.mannwhitneyu(vec[0], vec[1], method="asymptotic") if relevant else None
            row["p_value"] = (test.pvalue if np.isfinite(test.pvalue) else 1.0) if test else np.nan
            # scipy's U is the one of A: B tends to be larger when it is below n_a n_b / 2
            row["_direction"] = np.sign(len(vec[0]) * len(vec[1]) / 2 - test.statistic) if test else 0.0
            row["_compared"] = both
            rows.append(row)
    ref = pd.DataFrame(rows)
    tested = ref["p_value"].notna()
    m = int(ref["_compared"].sum())
    padded = np.concatenate([ref.loc[tested, "p_value"].to_numpy(), np.ones(m - int(tested.sum()))])
    ref["p_adjusted"] = np.nan
    ref.loc[tested, "p_adjusted"] = stats.false_discovery_control(padded)[: int(tested.sum())]
    sig = tested & (ref["p_adjusted"] <= alpha)
    ref["status"] = np.select(
        [(ref.present_a == 0) & (ref.present_b > 0), (ref.present_b == 0) & (ref.present_a > 0),
         sig & (ref.delta > 0) & (ref._direction > 0), sig & (ref.delta < 0) & (ref._direction < 0)],
        ["new", "gone", "slower", "faster"], "same",
    )  # fmt: skip
    return ref.drop(columns=["_direction", "_compared"])


EXACT = ["n_a", "n_b", "present_a", "present_b", "total_a", "total_b", "mean_a", "mean_b", "delta", "ratio",
         "contribution", "cum_mean_a", "cum_mean_b", "cum_delta", "calls_a", "calls_b", "median_a", "median_b",
         "p95_a", "p95_b"]  # fmt: skip


def check(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert list(got.columns) == ["task_name", *DIFF_COLUMNS]
    assert (np.diff(np.abs(got["contribution"].to_numpy())) <= 0).all()  # ranked by |contribution|
    key = ["task_name", "label"]
    g = got.assign(task_name=got["task_name"].astype(str)).set_index(key).sort_index()
    r = ref.assign(task_name=ref["task_name"].astype(str)).set_index(key).sort_index()
    assert g.index.equals(r.index)  # the same rows
    for c in EXACT:  # bit for bit
        assert np.array_equal(g[c].to_numpy(dtype=float), r[c].to_numpy(dtype=float), equal_nan=True), c
    assert (g["status"].astype(str) == r["status"]).all()
    for c in ("p_value", "p_adjusted"):
        assert np.array_equal(g[c].isna(), r[c].isna()), c
        np.testing.assert_allclose(g[c].dropna(), r[c].dropna(), rtol=1e-9, atol=0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """400 profiles of five tasks over two runs (``write_corpus``, ~110 functions each)."""
    folder = tmp_path_factory.mktemp("reference_corpus")
    write_corpus(str(folder), 400, n_functions=120, n_edges=240, seed=11, runs=("baseline", "candidate"))
    return cl.load(str(folder), cache=False)


@pytest.fixture(scope="module")
def changes(tmp_path_factory):
    """Functions new and gone (more/fewer functions on one side), a task run on A only and one on B only, and a
    planted change: in ``orders.process`` one function's own time is 3x on B."""
    folder = tmp_path_factory.mktemp("reference_changes")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    plan = {"a": {"orders.process": 80, "reports.build": 60, "legacy.sync": 30},
            "b": {"orders.process": 70, "reports.build": 60, "images.resize": 40}}  # fmt: skip
    size = {("a", "reports.build"): 90, ("b", "reports.build"): 110}  # 20 new functions on B
    k = 0
    for side, tasks in plan.items():
        for task, count in tasks.items():
            for i in range(count):
                st = synthetic_stats(size.get((side, task), 100), 200, seed=1000 * k + 7)
                if task == "orders.process" and side == "b":
                    f = next(f for f in st if f[2] == "lib_5")
                    cc, nc, tt, ct, callers = st[f]
                    st[f] = (cc, nc, tt * 3, ct + 2 * tt, callers)
                if task == "orders.process" and side == "a" and i % 4 == 0:
                    st = {f: v for f, v in st.items() if f[2] != "handler_17"}  # absent from some invocations
                tid = str(uuid.UUID(int=k + 1))
                meta = sidecar(task, tid, run=side, started=t0 + timedelta(seconds=k))
                write_profile(str(folder), st, task_name=task, task_id=tid, meta=meta)
                k += 1
    return cl.load(str(folder), cache=False)


@pytest.mark.parametrize("thresholds", [{}, ALL_TESTED], ids=["default", "every-function-tested"])
def test_per_task_diff_equals_reference(corpus, thresholds):
    ab = ("baseline", "candidate")
    ref = reference(corpus.profiles, "run", *ab, **thresholds)
    check(cl.diff(corpus, split_by="run", values=ab, **thresholds), ref)
    # two separately selected sets: the same numbers
    check(cl.diff(corpus.where(run="baseline"), corpus.where(run="candidate"), **thresholds), ref)
    if thresholds:
        assert ref["p_value"].notna().all() and len(ref) > 500  # every function of every task tested


@pytest.mark.parametrize("thresholds", [{}, ALL_TESTED], ids=["default", "every-function-tested"])
def test_new_gone_and_one_sided_tasks_equal_reference(changes, thresholds):
    ref = reference(changes.profiles, "run", "a", "b", **thresholds)
    got = cl.diff(changes, split_by="run", values=("a", "b"), **thresholds)
    check(got, ref)
    check(cl.diff(changes.where(run="a"), changes.where(run="b"), **thresholds), ref)
    status = got.groupby("task_name", observed=True)["status"].agg(lambda s: set(s.astype(str)))
    assert status["legacy.sync"] == {"gone"} and status["images.resize"] == {"new"}
    assert "new" in status["reports.build"]
    planted = got.loc[(got.task_name == "orders.process") & got.label.str.endswith("(lib_5)")].iloc[0]
    assert planted["status"] == "slower" and planted["ratio"] > 2.5


@pytest.mark.parametrize("reread", [1e9, 0.0], ids=["walks-per-group", "walks-over-every-row"])
def test_the_same_whatever_the_chunk_and_window_sizes(changes, monkeypatch, reread):
    """Walks over the rows in chunks of a few hundred, dense matrices split over many walks and key ranges (walks
    that read their groups' rows only, or every row), tests in blocks of a few keys: bit for bit the same frames
    (every cell still adds its rows in the same order) — per task, per module (several rows per cell), pooled and
    stratified."""
    from celerylab.analysis import _cells, _dist

    cases = [{}, ALL_TESTED, {"by": "module", **ALL_TESTED}, {"group_by": None, **ALL_TESTED}]
    ab = {"split_by": "run", "values": ("a", "b")}
    whole = [cl.diff(changes, **ab, **kw) for kw in cases]
    for name, value in {"CHUNK": 777, "GROUP_CELLS": 3000, "DENSE_CELLS": 5000, "BRIDGE": 50, "REREAD": reread}.items():
        monkeypatch.setattr(_cells, name, value)
    monkeypatch.setattr(_dist, "MAX_BLOCK", 3000)
    for kw, want in zip(cases, whole):
        assert cl.diff(changes, **ab, **kw).equals(want), kw
