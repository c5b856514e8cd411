"""top / callers / callees / call_tree against pstats and per-file truth (fake-timer profiles)."""

from __future__ import annotations

import pstats

import numpy as np
import pandas as pd
import pytest

import celerylab as cl
from celerylab import AmbiguousFunction
from celerylab.analysis import APPROXIMATION_NOTE, call_tree, callees, callers, top
from celerylab.testing import FakeClock, fib, profile_fake_clock, write_profile


@pytest.fixture(scope="module")
def ps(runs):
    folder, _ = runs
    return cl.load(str(folder), cache=False)


def _per_file(paths, name):
    """(tottime, cumtime, ncalls) of the function called ``name`` in each file (0 where absent)."""
    out = []
    for p in paths:
        st = pstats.Stats(p).stats
        hit = [v for k, v in st.items() if k[2] == name]
        out.append((hit[0][2], hit[0][3], hit[0][1]) if hit else (0.0, 0.0, 0))
    return np.array(out, dtype=float)


def test_top_per_invocation_numbers_are_the_per_file_distribution(ps, runs):
    _, paths = runs
    report = [p for p in paths["a"] + paths["b"] if "app.report" in p]
    t = top(ps, None, group_by="task_name")
    row = t.loc[(t.task_name == "app.report") & (t.name == "sometimes")].iloc[0]
    truth = _per_file(sorted(report), "sometimes")
    # the denominator is every invocation of the task, zeros included
    assert row["n_profiles"] == int((truth[:, 0] > 0).sum()) < len(report)
    assert row["tottime_mean"] == pytest.approx(truth[:, 0].mean(), rel=1e-12)
    assert row["tottime_p50"] == np.quantile(truth[:, 0], 0.5)
    assert row["tottime_p95"] == np.quantile(truth[:, 0], 0.95)
    assert row["cumtime_p95"] == np.quantile(truth[:, 1], 0.95)
    assert row["calls_mean"] == pytest.approx(truth[:, 2].mean())
    # totals stay exactly pstats' over the group's files, in the group's file order
    grp = ps.where(task_name="app.report")
    ref = pstats.Stats(*grp.profiles["path"]).stats
    key = next(k for k in ref if k[2] == "sometimes")
    assert row["tottime"] == ref[key][2] and row["cumtime"] == ref[key][3] and row["ncalls"] == ref[key][1]
    # groups never mix: app.mail never calls leaf
    assert "leaf" not in set(t.loc[t.task_name == "app.mail", "name"])


def test_top_ranks_by_percentile_and_worker_alias(ps):
    t = top(ps, 3, by="tottime_p95")
    assert t["tottime_p95"].is_monotonic_decreasing
    assert t["name"].iloc[0] == "leaf"  # 100-303 ms in every report invocation: the biggest p95
    w = top(ps, 1, group_by="worker")
    assert sorted(w["worker"]) == ["worker1@host:100", "worker1@host:101"]
    with pytest.raises(KeyError, match="no such column"):
        top(ps, group_by="nope")


def test_callers_split_by_run_equal_pstats_of_each_run(ps, runs):
    _, paths = runs
    for run in ("a", "b"):
        ref = pstats.Stats(*ps.where(run=run).profiles["path"])
        key = next(k for k in ref.stats if k[2] == "render")
        split = callers(ps, "render", split_by="run")
        got = {r.label: (r.ncalls, r.pcalls, r.tottime, r.cumtime) for r in split.loc[split.run == run].itertuples()}
        assert got == {pstats.func_std_string(c): v for c, v in ref.stats[key][4].items()}
    # callees of fetch: only leaf, and its share of fetch's callee time is 1
    c = callees(ps, "fetch")
    assert c["name"].tolist() == ["leaf"] and c["share"].iloc[0] == 1.0
    assert c["n_profiles"].iloc[0] == len(paths["a"]) // 2 + len(paths["b"]) // 2


def test_ambiguous_reference_lists_candidates(ps):
    with pytest.raises(AmbiguousFunction) as info:
        callers(ps, "only_in_")
    assert {c.rsplit("(", 1)[1] for c in info.value.candidates} == {"only_in_a)", "only_in_b)"}


# ------------------------------------------------------------------------------------------------- call tree
def shared(clock: FakeClock, ticks: int) -> None:
    clock.now += ticks


def left(clock: FakeClock) -> None:
    shared(clock, 30)


def right(clock: FakeClock) -> None:
    shared(clock, 10)
    shared(clock, 10)
    fib(6)


def root(clock: FakeClock) -> None:
    left(clock)
    right(clock)


@pytest.fixture(scope="module")
def tree_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tree")
    paths = []
    for i in range(3):
        clock = FakeClock()
        paths.append(write_profile(str(folder), profile_fake_clock(root, clock, clock=clock), task_id=f"t{i}"))
    return cl.load(str(folder), cache=False), paths


def test_call_tree_measured_levels_equal_pstats_and_recursion_is_cut(tree_set):
    ps, paths = tree_set
    ref = pstats.Stats(*paths).stats
    key = {k[2]: k for k in ref}
    t = call_tree(ps, min_share=0)
    r = t.loc[t.name == "root"].iloc[0]
    assert r["parent"] == "" and r["depth"] == 0 and not r["approximate"]
    assert r["value"] == ref[key["root"]][3]
    lft = t.loc[(t.name == "left") & (t.parent == r["id"])].iloc[0]
    assert lft["value"] == pytest.approx(ref[key["left"]][4][key["root"]][3], rel=1e-12)  # edge root->left
    # shared is split over its two callers by the edge times: left gets 30-tick calls, right two 10-tick calls
    sh = t.loc[t.name == "shared"].set_index("parent")["value"]
    assert sh[lft["id"]] == pytest.approx(ref[key["shared"]][4][key["left"]][3], rel=1e-9)
    right_id = t.loc[t.name == "right", "id"].iloc[0]
    assert sh[right_id] == pytest.approx(ref[key["shared"]][4][key["right"]][3], rel=1e-9)
    # fib recursion: one node, flagged, not expanded into itself
    f = t.loc[t.name == "fib"]
    assert len(f) == 1 and bool(f["recursive"].iloc[0]) and f["approximate"].iloc[0]
    # children never sum past their parent; self_value is the rest
    kids = t.loc[t.parent != ""].groupby("parent")["value"].sum()
    v = t.set_index("id")["value"]
    assert (kids <= v.loc[kids.index] * (1 + 1e-12)).all()
    assert (t["self_value"] >= 0).all()
    assert t["value_mean"].iloc[0] == pytest.approx(r["value"] / 3)
    assert "approximation" in APPROXIMATION_NOTE


def test_call_tree_root_depth_and_pruning(tree_set):
    ps, _ = tree_set
    t = call_tree(ps, root="right", max_depth=1, min_share=0)
    assert t["name"].iloc[0] == "right" and t["depth"].max() == 1
    assert set(t.loc[t.depth == 1, "name"]) == {"shared", "fib"}
    small = call_tree(ps, min_share=0.5)  # only nodes with half the total or more
    assert (small["share"] >= 0.5).all()
    root_row = small.iloc[0]
    shown = small.loc[small.parent == root_row["id"], "value"].sum()
    assert root_row["self_value"] == pytest.approx(root_row["value"] - shown)


def test_call_tree_empty_set(tree_set):
    ps, _ = tree_set
    empty = ps.where(task_name="nothing")
    out = call_tree(empty)
    assert len(out) == 0 and list(out.columns)[:2] == ["id", "parent"]
    assert isinstance(out, pd.DataFrame)


def test_callers_and_callees_keep_each_count_on_its_own_row_when_some_are_unknown(tmp_path):
    """A cProfile file and a pyinstrument-like file (counts -1) of the same code: each drilldown row carries its own
    edge's counts (pstats' sum, or NA when a file does not know them), also when the rows sorted by cumtime are not
    in func_id order (the case that made ``test_drilldowns_keep_unknown_counts_unknown_and_times_exact`` flaky)."""
    from celerylab.testing import sidecar

    root, leaf = ("app.py", 1, "root"), ("app.py", 50, "leaf")
    known, sampled, only_sampled = ("app.py", 10, "known"), ("app.py", 20, "sampled"), ("app.py", 30, "only_sampled")
    cprof = {  # counted: small times
        root: (1, 1, 0.001, 0.010, {}),
        known: (5, 5, 0.001, 0.002, {root: (5, 5, 0.001, 0.002)}),
        sampled: (2, 2, 0.003, 0.004, {root: (2, 2, 0.003, 0.004)}),
        leaf: (9, 9, 0.003, 0.003, {known: (7, 7, 0.001, 0.001), sampled: (2, 2, 0.002, 0.002)}),
    }
    pyinst = {  # sampled: no counts, large times
        root: (-1, -1, 0.0, 0.900, {}),
        sampled: (-1, -1, 0.400, 0.500, {root: (-1, -1, 0.400, 0.500)}),
        only_sampled: (-1, -1, 0.300, 0.300, {root: (-1, -1, 0.300, 0.300)}),
        leaf: (-1, -1, 0.100, 0.100, {sampled: (-1, -1, 0.100, 0.100)}),
    }
    paths = [
        write_profile(str(tmp_path), stats, task_id=tid, meta=sidecar("app.task", tid, run=run))
        for stats, tid, run in ((cprof, "t1", "a"), (pyinst, "t2", "a"), (cprof, "t3", "b"))
    ]
    ps = cl.load(str(tmp_path), cache=False, jobs=1)
    keys = list(zip(ps.functions["file"], ps.functions["line"], ps.functions["name"]))
    unknown = {(root, sampled), (root, only_sampled), (sampled, leaf)}  # (caller, callee) some file does not count
    for run, files in ((None, sorted(paths)), ("a", sorted(paths[:2])), ("b", paths[2:])):
        ref = pstats.Stats(*files).stats
        for func, side in ((root, "callees"), (leaf, "callers")):
            table = (callees if side == "callees" else callers)(ps, keys.index(func), split_by=run and "run")
            if run is not None:
                table = table.loc[table["run"] == run]
            rows = list(table.itertuples())
            others = ref[leaf][4] if side == "callers" else [k for k, v in ref.items() if root in v[4]]
            assert len(rows) == len(others) > 1
            if run != "b":  # the case of the bug: the cumtime order is not the func_id order
                assert [r.func_id for r in rows] != sorted(r.func_id for r in rows)
            for r in rows:
                caller, callee = (keys[r.func_id], func) if side == "callers" else (func, keys[r.func_id])
                want = ref[callee][4][caller]
                assert (r.tottime, r.cumtime) == want[2:], (run, caller, callee)
                if (caller, callee) in unknown and run != "b":
                    assert pd.isna(r.ncalls) and pd.isna(r.pcalls), (run, caller, callee)
                else:
                    assert (r.ncalls, r.pcalls) == want[:2], (run, caller, callee)
