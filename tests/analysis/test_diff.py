"""cl.diff against known truth: a planted slow leaf, unchanged functions, new/gone functions, and scipy."""

from __future__ import annotations

import os
import pstats

import numpy as np
import pytest
from scipy import stats

import celerylab as cl
from celerylab.analysis import diff
from celerylab.analysis.diff import DEFAULT_GROUP_BY, DIFF_COLUMNS


@pytest.fixture(scope="module")
def ps(runs):
    folder, _ = runs
    return cl.load(str(folder), cache=False)


def _vector(paths, name, col=2):
    out = []
    for p in paths:
        hit = [v for k, v in pstats.Stats(p).stats.items() if k[2] == name]
        out.append(hit[0][col] if hit else 0.0)
    return np.array(out)


def _report_paths(ps, run):
    return ps.where(run=run, task_name="app.report").profiles["path"].tolist()


def test_public_entry_point_and_columns(ps):
    # the default compares each function within each task: the task column first
    d = cl.diff(ps.where(run="a"), ps.where(run="b"))
    assert DEFAULT_GROUP_BY == "task_name"
    assert list(d.columns) == ["task_name", *DIFF_COLUMNS]
    assert set(d["status"].astype(str)) <= {"slower", "faster", "new", "gone", "same"}
    # ranked by contribution to the change of the mean task time
    assert (np.diff(np.abs(d["contribution"].to_numpy())) <= 0).all()
    assert d["contribution"].sum() == pytest.approx(
        ps.where(run="b").profiles["total_tt"].mean() - ps.where(run="a").profiles["total_tt"].mean()
    )


def test_planted_leaf_is_slower_and_only_it(ps):
    d = diff(ps, split_by="run", values=("a", "b"), group_by="task_name")
    rep = d.loc[d.task_name == "app.report"].set_index(
        d.loc[d.task_name == "app.report", "label"].str.rsplit("(").str[-1]
    )
    assert d["label"].iloc[0].endswith("(leaf)") and d["status"].iloc[0] == "slower"
    assert rep.loc["leaf)", "delta"] == pytest.approx(0.200, rel=1e-9)  # +200 ticks of 1 ms per invocation
    # exclusive time: the caller of the slow leaf is not guilty, though its inclusive time grew by the same amount
    assert rep.loc["fetch)", "status"] == "same"
    assert rep.loc["fetch)", "cum_delta"] == pytest.approx(0.200, rel=1e-6)
    assert rep.loc["render)", "status"] == "same"
    assert rep.loc["only_in_a)", "status"] == "gone" and rep.loc["only_in_b)", "status"] == "new"
    assert rep.loc["only_in_b)", "mean_a"] == 0 and np.isinf(rep.loc["only_in_b)", "ratio"])
    # the unchanged task: nothing but same
    assert set(d.loc[d.task_name == "app.mail", "status"].astype(str)) == {"same"}


def test_numbers_equal_per_file_truth_and_scipy(ps):
    d = diff(ps, split_by="run", values=("a", "b"), group_by="task_name")
    row = d.loc[(d.task_name == "app.report") & d.label.str.endswith("(sometimes)")].iloc[0]
    va, vb = _vector(_report_paths(ps, "a"), "sometimes"), _vector(_report_paths(ps, "b"), "sometimes")
    assert (row["n_a"], row["n_b"]) == (len(va), len(vb))
    assert (row["present_a"], row["present_b"]) == ((va > 0).sum(), (vb > 0).sum())
    assert row["mean_a"] == pytest.approx(va.mean(), rel=1e-12) and row["mean_b"] == pytest.approx(vb.mean(), rel=1e-12)
    assert row["median_a"] == np.quantile(va, 0.5) and row["p95_b"] == np.quantile(vb, 0.95)
    assert (
        row["total_a"]
        == pstats.Stats(*_report_paths(ps, "a")).stats[
            next(k for k in pstats.Stats(*_report_paths(ps, "a")).stats if k[2] == "sometimes")
        ][2]
    )
    # p-value: scipy's asymptotic Mann-Whitney U over the zero-filled per-invocation vectors
    leaf = d.loc[(d.task_name == "app.report") & d.label.str.endswith("(leaf)")].iloc[0]
    la, lb = _vector(_report_paths(ps, "a"), "leaf"), _vector(_report_paths(ps, "b"), "leaf")
    ref = stats.mannwhitneyu(la, lb, method="asymptotic")
    assert leaf["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
    tested = d.loc[d.p_value.notna()]
    compared = int(((d.present_a > 0) & (d.present_b > 0)).sum())
    assert len(tested) < compared  # untested keys still count in the correction
    padded = np.concatenate([tested["p_value"].to_numpy(), np.ones(compared - len(tested))])
    assert tested["p_adjusted"].to_numpy() == pytest.approx(stats.false_discovery_control(padded)[: len(tested)])


def test_status_needs_evidence_not_just_a_ratio(tmp_path):
    """Two invocations per side: a 3x change that no test with n=2 can support stays `same`."""
    from .conftest import make_runs

    make_runs(tmp_path, n_per_task=2, tasks=("app.report",))
    ps = cl.load(str(tmp_path), cache=False)
    d = diff(ps, split_by="run", values=("a", "b"))
    leaf = d.loc[d.label.str.endswith("(leaf)")].iloc[0]
    assert leaf["ratio"] > 2.5 and leaf["p_adjusted"] > 0.05 and leaf["status"] == "same"
    # thresholds are parameters: a huge min_change makes even the 12-invocation leaf `same`
    d2 = diff(ps, split_by="run", values=("a", "b"), min_change=5.0)
    assert set(d2["status"].astype(str)) <= {"same", "new", "gone"}


def test_diff_by_task_and_category_and_two_separate_sets(ps, runs):
    _, paths = runs
    a = cl.load(paths["a"], cache=False)
    b = cl.load(paths["b"], cache=False)
    two = cl.diff(a, b, group_by="task_name")
    one = diff(ps, split_by="run", values=("a", "b"), group_by="task_name")
    key = ["task_name", "label"]
    m = two.merge(one, on=key, suffixes=("", "_one"))
    assert len(m) == len(two) == len(one)  # func_ids differ between the sets: matched by label
    assert (m["status"].astype(str) == m["status_one"].astype(str)).all()
    assert np.allclose(m["mean_b"], m["mean_b_one"], rtol=1e-12)
    t = cl.diff(a, b, by="task_name")
    assert set(t["label"]) == {"app.report", "app.mail"}
    tr = t.set_index("label")
    assert tr.loc["app.report", "status"] == "slower" and tr.loc["app.mail", "status"] == "same"
    assert tr.loc["app.report", "mean_a"] == pytest.approx(
        a.where(task_name="app.report").profiles["total_tt"].mean(), rel=1e-12
    )
    change = b.profiles["total_tt"].mean() - a.profiles["total_tt"].mean()
    c = cl.diff(a, b, by="category", group_by=None)
    assert c["label"].is_unique and c["delta"].sum() == pytest.approx(change)
    # per task (the default): the contributions (delta x the task's share of invocations) sum to the same change
    assert cl.diff(a, b, by="category")["contribution"].sum() == pytest.approx(change)
    via_method = ps.diff(split_by="run", values=("a", "b"), group_by="task_name")
    assert via_method.equals(one)
    # the default is the per-task grouping, on every entry point
    assert ps.diff(split_by="run", values=("a", "b")).equals(one)
    assert diff(ps, split_by="run", values=("a", "b")).equals(one)


def test_pooling_every_task_is_group_by_none(ps):
    """``group_by=None``: one row per function over all tasks' invocations (no task column), and the split
    column is never a group (comparing two tasks pools them even with the default)."""
    pooled = diff(ps, split_by="run", values=("a", "b"), group_by=None)
    assert list(pooled.columns) == DIFF_COLUMNS and pooled["label"].is_unique
    assert (pooled["n_a"] == len(ps.where(run="a"))).all()
    per_task = diff(ps, split_by="run", values=("a", "b"))
    leaf = per_task.loc[per_task.label.str.endswith("(leaf)")]
    assert set(leaf["task_name"]) <= {"app.report", "app.mail"} and len(leaf) >= 1
    assert (leaf["n_a"] == [len(ps.where(run="a", task_name=t)) for t in leaf["task_name"]]).all()
    tasks = diff(ps, split_by="task_name", values=("app.report", "app.mail"))
    assert list(tasks.columns) == DIFF_COLUMNS and (tasks["n_a"] == len(ps.where(task_name="app.report"))).all()


def test_bad_arguments(ps):
    with pytest.raises(TypeError, match="split_by"):
        diff(ps)
    with pytest.raises(ValueError, match="exactly two values"):
        diff(ps, split_by="state")  # every profile is SUCCESS: one value
    with pytest.raises(KeyError, match="no such column"):
        diff(ps, split_by="nope")
    with pytest.raises(ValueError, match="no profile has"):
        diff(ps, split_by="run", values=("a", "zzz"))
    with pytest.raises(ValueError, match="metric"):
        diff(ps, split_by="run", metric="ncalls")


def shared_step(clock, ticks: int) -> None:
    clock.now += ticks


def task_x(clock, side: str, i: int) -> None:
    shared_step(clock, 10 + i % 5 + (3 if side == "b" and i % 2 else 0))


def task_y(clock, side: str, i: int) -> None:
    shared_step(clock, 40 + i % 7 - (2 if side == "b" and i % 3 == 0 else 0))


def _mix_set(folder, counts_a, counts_b, workloads=None, same_code=True):
    """Runs a/b with the given invocations per task; with ``same_code`` both sides run the side-'a' workloads."""
    import uuid

    from celerylab.testing import FakeClock, profile_fake_clock, sidecar, write_profile

    from .conftest import WORKLOADS

    workloads = workloads or WORKLOADS
    k = 0
    for side, counts in (("a", counts_a), ("b", counts_b)):
        for task, n in counts.items():
            for i in range(n):
                clock = FakeClock()
                stats = profile_fake_clock(workloads[task], clock, "a" if same_code else side, i, clock=clock)
                tid = str(uuid.UUID(int=50_000 + k))
                write_profile(str(folder), stats, task_name=task, task_id=tid, meta=sidecar(task, tid, run=side))
                k += 1
    return cl.load(str(folder), cache=False)


def test_a_changed_task_mix_is_not_a_change(tmp_path):
    """Same code on both sides, but B runs mostly the cheap task: pooled per-invocation means drop for the
    expensive task's functions (a false 'faster'); pooling (group_by=None), stratified by task, says `same` and its
    standardised means equal on both sides."""
    ps = _mix_set(tmp_path, {"app.report": 20, "app.mail": 20}, {"app.report": 6, "app.mail": 34})
    pooled = diff(ps, split_by="run", values=("a", "b"), group_by=None, stratify=None)
    assert "faster" in set(pooled["status"].astype(str))
    strat = diff(ps, split_by="run", values=("a", "b"), group_by=None)
    same_code = strat.loc[~strat.label.str.contains("only_in_|sometimes")]
    assert set(same_code["status"].astype(str)) == {"same"}
    leaf = strat.loc[strat.label.str.endswith("(leaf)")].iloc[0]
    # standardised: per-task means weighted by the task's share of all 80 invocations (26/80 for app.report)
    va = _vector(ps.where(run="a", task_name="app.report").profiles["path"], "leaf")
    vb = _vector(ps.where(run="b", task_name="app.report").profiles["path"], "leaf")
    assert leaf["mean_a"] == pytest.approx(va.mean() * 26 / 80, rel=1e-12)
    assert leaf["mean_b"] == pytest.approx(vb.mean() * 26 / 80, rel=1e-12)
    assert (leaf["n_a"], leaf["n_b"], leaf["present_a"], leaf["present_b"]) == (40, 40, 20, 6)


def test_stratified_test_is_van_elteren(tmp_path):
    """The p-value of the pooled diff (group_by=None) equals a direct van Elteren computation from scipy's per-task
    U (a function that changes differently in two tasks)."""
    from scipy import special

    ps = _mix_set(tmp_path, {"x": 10, "y": 12}, {"x": 14, "y": 9}, {"x": task_x, "y": task_y}, same_code=False)
    d = diff(ps, split_by="run", values=("a", "b"), group_by=None, min_change=0, min_share=0)  # every function
    row = d.loc[d.label.str.endswith("(shared_step)")].iloc[0]
    t = v = 0.0
    for task in ("x", "y"):
        xa = _vector(ps.where(run="a", task_name=task).profiles["path"], "shared_step")
        xb = _vector(ps.where(run="b", task_name=task).profiles["path"], "shared_step")
        u_b = stats.mannwhitneyu(xb, xa, method="asymptotic").statistic
        n = len(xa) + len(xb)
        _, counts = np.unique(np.concatenate([xa, xb]), return_counts=True)
        var = len(xa) * len(xb) / 12 * ((n + 1) - (counts**3 - counts).sum() / (n * (n - 1)))
        t += (u_b - len(xa) * len(xb) / 2) / (n + 1)
        v += var / (n + 1) ** 2
    assert t != 0 and row["p_value"] == pytest.approx(min(1.0, 2 * special.ndtr(-abs(t) / np.sqrt(v))), rel=1e-9)


@pytest.mark.parametrize("impl", ["compiled", "row-by-row", "whole-block"])
@pytest.mark.parametrize("seed", range(4))
def test_vectorised_mann_whitney_equals_scipy_on_random_data(seed, impl, monkeypatch):
    """Every row of the all-at-once test equals scipy's asymptotic Mann-Whitney U of that row: zeros (a function
    absent from an invocation), heavy ties (rounded times), rows with one distinct value, one-element sides — merged
    by the compiled helper, or without it row by row (long rows) or a whole block at once (short rows)."""
    from celerylab.analysis import _dist
    from celerylab.analysis._dist import mannwhitney_parts, mannwhitney_sorted

    if impl == "compiled":
        assert hasattr(_dist._cdecode, "rank_counts")  # built by the install step and in every wheel
    else:
        monkeypatch.setattr(_dist, "_cdecode", None)
        monkeypatch.setattr(_dist, "SHORT_ROW", 0 if impl == "row-by-row" else 10**9)
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 60))
    na, nb = (int(x) for x in rng.integers(1, 300, size=2))
    a = np.round(rng.lognormal(size=(k, na)), int(rng.integers(0, 3)))
    b = np.round(rng.lognormal(0.2, size=(k, nb)), int(rng.integers(0, 3)))
    a[rng.random((k, na)) < 0.3] = 0.0
    b[rng.random((k, nb)) < 0.2] = 0.0
    a[0] = 0.0  # a row with one value on both sides: no evidence, p = 1
    b[0] = 0.0
    if k > 1:
        b[1] = a[1, 0]  # b's values all tied with one of a's
    u_b, p = mannwhitney_sorted(np.sort(a, axis=1), np.sort(b, axis=1))
    ref = stats.mannwhitneyu(a, b, axis=1, method="asymptotic")
    assert np.array_equal(u_b, na * nb - ref.statistic)
    expected = np.where(np.isfinite(ref.pvalue), ref.pvalue, 1.0)
    np.testing.assert_allclose(p, expected, rtol=1e-12, atol=0)
    assert p[0] == 1.0
    # the tie-corrected variance, against its definition on the pooled sample
    _, var = mannwhitney_parts(np.sort(a, axis=1), np.sort(b, axis=1))
    n = na + nb
    for i in range(k):
        _, t = np.unique(np.concatenate([a[i], b[i]]), return_counts=True)
        tie = float((t.astype(float) ** 3 - t).sum())
        want = na * nb / 12.0 * ((n + 1) - tie / (n * (n - 1))) if n > 1 else 0.0
        assert var[i] == pytest.approx(want, rel=1e-12, abs=1e-9)


def test_compiled_rank_counts_equal_the_searchsorted_merge_with_nans_and_signed_zeros():
    """The compiled merge counts what ``searchsorted`` counts, row by row, where the two could part: NaNs (a NaN of
    b above every number and equal to each NaN of a), -0.0 against 0.0, empty rows of one side, runs at both
    ends; and it refuses what is not a pair of float64 matrices with int64 outputs."""
    from celerylab.analysis._dist import _cdecode, _merge_counts

    rng = np.random.default_rng(11)
    pool = np.array([-0.0, 0.0, 1.0, 2.0, 2.5, np.nan, -1.0])
    for na, nb in ((1, 1), (7, 3), (40, 55), (0, 5), (5, 0)):
        k = 200
        a = np.sort(rng.choice(pool, size=(k, na)), axis=1)
        b = np.sort(rng.choice(pool, size=(k, nb)), axis=1)
        out = [np.full(k, -7, dtype=np.int64) for _ in range(3)]
        _cdecode.rank_counts(a, b, *out)
        for i in range(k):
            want = _merge_counts(a[i], b[i]) if na and nb else (0, 0, 0)
            assert (out[0][i], out[1][i], out[2][i]) == want, (na, nb, a[i], b[i])
    good = np.zeros((2, 3))
    ints = [np.zeros(2, dtype=np.int64) for _ in range(3)]
    with pytest.raises(ValueError, match="float64 matrices"):
        _cdecode.rank_counts(good.astype(np.float32), good, *ints)
    with pytest.raises(ValueError, match="float64 matrices"):
        _cdecode.rank_counts(good, np.zeros((3, 3)), *ints)
    with pytest.raises(ValueError, match="int64 vectors"):
        _cdecode.rank_counts(good, good, np.zeros(3, dtype=np.int64), *ints[1:])
    with pytest.raises(ValueError, match="int64 vectors"):
        _cdecode.rank_counts(good, good, np.zeros(2), *ints[1:])


@pytest.mark.parametrize("n", [1, 3, 2048, 5000])
def test_sort_rows_equals_numpy_sort(n, monkeypatch):
    """The compiled radix sort (rows of >= RADIX_ROW values; forced here for short rows too) leaves every row as
    numpy's sort does, bit for bit: negatives, infinities, subnormals, ties, NaNs last (numpy may write them back
    as its own NaN: their payloads are not compared); -0.0 and 0.0 are equal, in either order.  Split over threads
    (a big matrix) it sorts every row once."""
    from celerylab.analysis import _dist

    rng = np.random.default_rng(n)
    k = 600
    pool = np.array([0.0, -0.0, 1.5, -2.25, np.inf, -np.inf, 5e-324, -5e-324, 1e308, 3.0])
    mat = np.where(rng.random((k, n)) < 0.5, rng.normal(scale=1e3, size=(k, n)), rng.choice(pool, size=(k, n)))
    payload = np.array([0x7FF8000000000001, 0xFFF8000000000002], dtype=np.uint64).view(np.float64)
    mat[rng.random((k, n)) < 0.05] = payload[0]
    mat[rng.random((k, n)) < 0.05] = payload[1]
    want = np.sort(mat, axis=1)
    monkeypatch.setattr(_dist, "RADIX_ROW", 1)
    monkeypatch.setattr(_dist, "_radix_wins", lambda: True)  # whichever sort is faster on this machine
    monkeypatch.setattr(_dist, "PARALLEL_CELLS", 1000)  # several threads whatever the size
    got = mat.copy()
    _dist.sort_rows(got)
    assert np.array_equal(got, want, equal_nan=True)
    exact = (want != 0) & ~np.isnan(want)
    assert np.array_equal(got.view(np.int64)[exact], want.view(np.int64)[exact])
    with pytest.raises(ValueError, match="float64 matrix"):
        _dist._cdecode.sort_rows(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="float64 matrix"):
        _dist._cdecode.sort_rows(np.zeros(3))


def test_rows_in_threads_raise_what_a_range_raised():
    """A failure in a range run by another thread is raised in the caller's, after every range is done."""
    from celerylab.analysis._dist import by_rows

    done = []

    def fn(lo: int, hi: int) -> None:
        done.append((lo, hi))
        if lo > 0:
            raise RuntimeError(f"range {lo}")

    with pytest.raises(RuntimeError, match="range"):
        by_rows(fn, 10, 1 << 30)
    assert sorted(done)[0][0] == 0 and sorted(done)[-1][1] == 10 and len(done) == min(os.cpu_count() or 1, 10)


def test_dense_blocks_are_the_same_whatever_the_block_size():
    """Blocks of a few keys (as with 100 000 invocations) hold exactly the cells of one big block, every cell
    summed in the same order (several rows per cell: functions summed per module)."""
    from celerylab.analysis._dist import dense_blocks

    rng = np.random.default_rng(5)
    n_rows, n_slots = 5000, 37
    key = rng.integers(0, 300, n_rows)
    slot = rng.integers(0, n_slots, n_rows)
    values = rng.lognormal(size=n_rows)
    keys = np.unique(rng.choice(np.arange(2, 300), 120, replace=False))
    ((k_all, whole),) = dense_blocks(slot, key, values, n_slots, keys, per=len(keys))
    parts = list(dense_blocks(slot, key, values, n_slots, keys, per=7))
    assert len(parts) == -(-len(keys) // 7)
    assert np.array_equal(np.concatenate([k for k, _ in parts]), k_all)
    assert np.array_equal(np.vstack([m for _, m in parts]), whole)  # bit for bit
    # and the cells are the sums of their rows
    want = np.zeros((len(keys), n_slots))
    pos = {k: i for i, k in enumerate(keys)}
    for k, s, v in zip(key, slot, values):
        if k in pos:
            want[pos[k], s] += v
    np.testing.assert_allclose(whole, want, rtol=1e-12)
