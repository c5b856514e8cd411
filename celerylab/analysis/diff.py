"""``cl.diff``: what changed between two sets of task invocations, per function and per invocation.

How it decides (details and the column list in ``docs/analysis.md``):

* Each side's numbers are **per invocation**: for every function (or other key) the distribution of its time over
  the side's invocations (profiles) — of the same group when ``group_by`` is given — with 0 for invocations in
  which it did not run.  ``mean_a``/``mean_b`` are therefore ``total / invocations``.
* The metric is exclusive time (``tottime``) by default, so a slow leaf does not make its callers look guilty;
  inclusive means (``cum_mean_a/b``) are alongside.
* ``status`` is ``new``/``gone`` when the key ran on one side only.  Otherwise ``slower``/``faster`` only when all
  hold: the change is practically relevant (``|ratio − 1| ≥ min_change`` and ``|delta| ≥ min_share`` of the
  group's mean task time and ``≥ min_delta`` seconds), the two-sided Mann–Whitney U test of the per-invocation
  values rejects "same distribution" after Benjamini–Hochberg correction over every key compared
  (``p_adjusted ≤ alpha``), and the test's direction agrees with the sign of ``delta``; else ``same``.
  Only practically relevant keys are tested (``p_value`` is NaN for the others): the correction still counts
  every compared key, which keeps it conservative.
* Rows are sorted by ``|contribution|``: the key's change of the mean time per invocation of the whole workload
  (``delta`` weighted by the group's share of invocations), so the rows sum to the change of the mean task time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..core.rules import id_lookup, task_key
from ..errors import ColumnNotFound, UsageError
from ._cells import Block, Cells, Rows, Side
from ._dist import (
    bh_adjust,
    block_size,
    mannwhitney_parts,
    mannwhitney_sorted,
    quantiles_sorted,
    sort_rows,
    van_elteren,
)

if TYPE_CHECKING:
    from ..core.data import ProfileData

FUNCTION_KEYS = ("label", "name", "module", "file", "kind", "category")
METRICS = ("tottime", "cumtime")
STATUSES = ("slower", "faster", "new", "gone", "same")
#: the default grouping of every diff (``cl.diff``, ``ProfileSet.diff``, the explorer's Diff tab, the comparison
#: report, ``celerylab diff``): each function is compared **within each task**, over that task's invocations;
#: ``group_by=None`` (``celerylab diff --group-by none``) pools every task's invocations instead
DEFAULT_GROUP_BY = "task_name"
_ADDRESS = r" at 0x[0-9a-fA-F]+"

DIFF_COLUMNS = [
    "label", "status", "mean_a", "mean_b", "delta", "ratio", "contribution", "p_value", "p_adjusted",
    "median_a", "median_b", "p95_a", "p95_b", "cum_mean_a", "cum_mean_b", "cum_delta", "calls_a", "calls_b",
    "n_a", "n_b", "present_a", "present_b", "total_a", "total_b",
]  # fmt: skip


@dataclass
class _Side:
    ps: ProfileData
    profiles: pd.DataFrame  # the side's profiles, in the ProfileSet's order


def _side(ps: ProfileData, ids: np.ndarray | None) -> _Side:
    prof = _per_task(ps.profiles)
    if ids is None:
        return _Side(ps, prof)
    pid = prof["profile_id"].to_numpy()
    return _Side(ps, prof.loc[id_lookup(ids, pid)[pid]])


def _per_task(profiles: pd.DataFrame) -> pd.DataFrame:
    """``profiles`` whose ``task_name`` is the :func:`~celerylab.core.rules.task_key` when the set holds producer
    profiles: publishing a task and running it are compared (and stratified) as different tasks."""
    if "role" not in profiles.columns or not (profiles["role"].astype(object) == "producer").any():
        return profiles
    return profiles.assign(task_name=task_key(profiles))


def split_values(profiles: pd.DataFrame, column: str, a: Any = None, b: Any = None) -> tuple[Any, Any]:
    """The two values of ``profiles[column]`` that are A (before) and B (after) — the one rule for a default split,
    used by :func:`diff` and ``celerylab diff --by``.

    Given values are matched exactly or by their text (command-line values are strings).  A missing one is the
    column's other value; with neither given, the column must hold exactly two values, and A is the one whose first
    invocation started first (the first one met when no start times are recorded).
    """
    if column not in profiles.columns:
        raise ColumnNotFound(f"diff(split_by={column!r}): no such column in profiles; columns are "
                             f"{list(profiles.columns)}")  # fmt: skip
    col = profiles[column].astype(object)
    present = list(pd.unique(col.dropna()))
    by_text = {str(v): v for v in present}

    def match(v: Any) -> Any:
        if v is None or v in present:
            return v
        return by_text.get(str(v), v)

    a, b = match(a), match(b)
    if a is not None and b is not None:
        return a, b
    others = [v for v in present if v not in (a, b)]
    if a is None and b is None:
        if len(present) != 2:
            raise UsageError(
                f"diff(split_by={column!r}) needs exactly two values of {column!r} or values=(a, b); "
                f"found {len(present)}: {present[:10]}"
            )
        present = ordered_values(profiles, column)
        return present[0], present[1]
    if len(others) != 1:
        raise UsageError(f"diff(split_by={column!r}): name both values; {column!r} holds {present[:10]}")
    return (others[0], b) if a is None else (a, others[0])


def ordered_values(profiles: pd.DataFrame, column: str) -> list[Any]:
    """The values of ``profiles[column]`` in the order A, B, …: by the start of each value's first invocation
    (the order met when start times are missing).  The default A/B of :func:`split_values`, and the order of the
    run colours in every chart."""
    if column not in profiles.columns:
        raise ColumnNotFound(f"no column {column!r} in profiles; columns are {list(profiles.columns)}")
    col = profiles[column].astype(object)
    present = list(pd.unique(col.dropna()))
    if "started_at" in profiles.columns and profiles["started_at"].notna().any():
        first = profiles.groupby(col, sort=False)["started_at"].min()
        if first.notna().all():
            present = sorted(present, key=lambda v: first[v])
    return present


def _split(ps: ProfileData, column: str, values: tuple[Any, Any] | None) -> tuple[_Side, _Side, Any, Any]:
    p = ps.profiles
    va, vb = split_values(p, column, *(values or (None, None)))
    col = p[column].astype(object)
    ids_a = p.loc[(col == va).to_numpy(), "profile_id"].to_numpy()
    ids_b = p.loc[(col == vb).to_numpy(), "profile_id"].to_numpy()
    for v, ids in ((va, ids_a), (vb, ids_b)):
        if not len(ids):
            raise UsageError(f"diff(split_by={column!r}): no profile has {column} == {v!r}")
    return _side(ps, ids_a), _side(ps, ids_b), va, vb


def group_columns(group_by: str | list[str] | None, split_by: str | None = None) -> list[str]:
    """The group columns of a diff: ``group_by`` as a list, without the column that splits A from B (a task
    compared with another task is not grouped by task)."""
    cols = [] if group_by is None else ([group_by] if isinstance(group_by, str) else list(group_by))
    return [c for c in dict.fromkeys(cols) if c != split_by]


def diff_group_columns(d: pd.DataFrame, label: str = "label") -> list[str]:
    """The group columns of a :func:`diff` frame (those before ``label``: ``task_name`` by default), without one
    that only repeats the label (``by="task_name"``: the row is the task)."""
    cols = list(d.columns)
    if label not in cols:
        return []
    text = d[label].astype(str)
    return [c for c in cols[: cols.index(label)] if not (d[c].astype(str) == text).all() or not len(d)]


def _func_keys(ps: ProfileData, by: str) -> pd.Series:
    """One key string per func_id (index func_id)."""
    f = ps.functions
    if by == "category":
        from .categories import function_categories

        vals = function_categories(ps).astype(str).to_numpy()
    else:
        text = f[by].astype(str)
        if by in ("label", "name"):
            # "<built-in method __new__ of type object at 0x7f…>": the address differs per process, the function not
            text = text.str.replace(_ADDRESS, "", regex=True)
        vals = text.to_numpy()
    return pd.Series(vals, index=f["func_id"].to_numpy())


def diff(
    a: ProfileData,
    b: ProfileData | None = None,
    *,
    by: str = "label",
    split_by: str | None = None,
    values: tuple[Any, Any] | None = None,
    group_by: str | list[str] | None = DEFAULT_GROUP_BY,
    stratify: str | None = "task_name",
    metric: str = "tottime",
    alpha: float = 0.05,
    min_change: float = 0.10,
    min_share: float = 0.005,
    min_delta: float = 0.0,
) -> pd.DataFrame:
    """Compare two sets of task invocations per function, per invocation, with statistics.

    ``cl.diff(a, b)`` compares two ProfileSets (A = before, B = after).  ``cl.diff(ps, split_by="run",
    values=("baseline", "candidate"))`` compares two values of a profiles column of one set (``values`` may be
    left out when the column has exactly two values; A is then the first one met).

    ``by``: what a row is — ``label`` (a function, default), ``name``, ``module``, ``file``, ``kind``,
    ``category`` (functions summed per key), or a **profiles column** such as ``task_name``: then one row per value
    compares the invocations' total profiled time (``metric="wall_s"`` compares wall time instead).
    ``group_by``: profile columns, by default :data:`DEFAULT_GROUP_BY` (``task_name``): rows per (group, key),
    with the group's invocations as the denominator — each function compared within each task, the right thing
    when the task mix differs between the sides.  The ``split_by`` column is never a group (comparing two tasks
    pools them).  ``group_by=None`` pools every task's invocations: one row per key, means standardised over the
    ``stratify`` column and the test stratified by it.

    Columns (group columns first; ``DIFF_COLUMNS``): ``label`` (the key), ``status`` (slower / faster / new / gone
    / same), per invocation ``mean_a, mean_b``, ``delta`` (= mean_b − mean_a), ``ratio`` (= mean_b / mean_a),
    ``contribution`` (delta × the group's share of all invocations; sums to the change of the mean time per
    invocation), ``p_value`` (Mann–Whitney U, two-sided; NaN when not tested), ``p_adjusted`` (Benjamini–Hochberg),
    ``median_a/b, p95_a/b`` (per invocation), ``cum_mean_a/b, cum_delta`` (inclusive time per invocation),
    ``calls_a/b`` (calls per invocation), ``n_a/b`` (invocations = the denominator), ``present_a/b``
    (invocations in which the key ran), ``total_a/b`` (summed seconds).  Sorted by ``|contribution|``.
    """
    if metric not in METRICS and not (metric == "wall_s" and by not in FUNCTION_KEYS):
        raise UsageError(f"diff(metric={metric!r}): metric must be one of {', '.join(METRICS)} (or wall_s with "
                         "by=<profiles column>)")  # fmt: skip
    if b is None:
        if split_by is None:
            raise TypeError("diff(a, b): give two ProfileSets, or one ProfileSet and split_by=<profiles column>")
        side_a, side_b, _, _ = _split(a, split_by, values)
    else:
        if split_by is not None:
            raise TypeError("diff(a, b, split_by=...): split_by splits one ProfileSet; give b=None")
        side_a, side_b = _side(a, None), _side(b, None)
    gcols = group_columns(group_by, split_by)
    profile_mode = by not in FUNCTION_KEYS
    if profile_mode:
        for s in (side_a, side_b):
            if by not in s.profiles.columns:
                raise UsageError(
                    f"diff(by={by!r}): by must be one of {', '.join(FUNCTION_KEYS)} or a profiles column; "
                    f"columns are {list(s.profiles.columns)}"
                )
        gcols = [c for c in gcols if c != by] + [by]
    for s in (side_a, side_b):
        for c in gcols:
            if c not in s.profiles.columns:
                raise ColumnNotFound(f"diff(group_by={c!r}): no such column in profiles")
    # strata: only for one-row-per-function diffs, when both sides have the column and it splits them at all
    strat = None
    usable = stratify is not None and not gcols and not profile_mode
    if usable and all(stratify in s.profiles.columns for s in (side_a, side_b)):
        vals = pd.concat([side_a.profiles[stratify], side_b.profiles[stratify]]).astype(object)
        if vals.nunique(dropna=False) > 1:
            strat = stratify
    th = _Thresholds(min_change, min_share, min_delta)
    return _diff(side_a, side_b, by=by, gcols=gcols, profile_mode=profile_mode, metric=metric, stratify=strat,
                 alpha=alpha, th=th)  # fmt: skip


def _rows(side: _Side, fkey: np.ndarray | None, metric: str, profile_mode: bool) -> Rows:
    """The rows a side reads, in place: the set's stats columns (or, in profile mode, one row per profile)."""
    if profile_mode:
        p = side.profiles
        tot = p["total_tt"].to_numpy(dtype=np.float64)
        val = p["wall_s"].to_numpy(dtype=np.float64) if metric == "wall_s" else tot
        pid = p["profile_id"].to_numpy().astype(np.int64)
        o = np.argsort(pid, kind="stable")
        return Rows(pid[o], np.zeros(len(p), dtype=np.intp), fkey, val[o], tot[o], np.ones(len(p)), tot[o])
    st = side.ps.stats
    value = st[metric].to_numpy()
    cum = value if metric == "cumtime" else st["cumtime"].to_numpy()
    tt = value if metric == "tottime" else st["tottime"].to_numpy()
    return Rows(st["profile_id"].to_numpy(), st["func_id"].to_numpy(), fkey, value, cum, st["ncalls"].to_numpy(), tt)


@dataclass
class _Prepared:
    key_names: np.ndarray
    group_vals: list[tuple[Any, ...]]
    cells: Cells  # per (side, group, key): counts, totals, … and the dense matrices
    unique_per_profile: bool

    @property
    def n_groups(self) -> int:
        return len(self.group_vals)

    @property
    def n_all(self) -> int:
        return int(self.cells.n.sum())


def _key_codes(ps_a: ProfileData, ps_b: ProfileData, by: str) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Key codes shared by both sides (func_ids differ between separately loaded sets: matched by key text), and
    per side the key code of every func_id."""
    ka = _func_keys(ps_a, by)
    kb = ka if ps_b is ps_a else _func_keys(ps_b, by)
    codes, uniq = pd.factorize(np.concatenate([ka.to_numpy(), kb.to_numpy()]), sort=False)
    fkeys: list[np.ndarray | None] = []
    for k, c in ((ka, codes[: len(ka)]), (kb, codes[len(ka) :])):
        fkey = np.zeros(int(k.index.max()) + 1 if len(k) else 1, dtype=np.intp)
        fkey[k.index.to_numpy()] = c
        fkeys.append(None if np.array_equal(fkey, np.arange(len(fkey))) else fkey)  # None: func_id is the key
    return np.asarray(uniq, dtype=object), fkeys


def _prepare(side_a: _Side, side_b: _Side, *, by: str, gcols: list[str], profile_mode: bool,
             metric: str) -> _Prepared:  # fmt: skip
    """Key codes shared by both sides, group codes over both sides, and the per-cell sums of both sides."""
    if profile_mode:
        key_names = np.array(["(total)"], dtype=object)
        fkeys: list[np.ndarray | None] = [None, None]
    else:
        key_names, fkeys = _key_codes(side_a.ps, side_b.ps, by)
    pa, pb = side_a.profiles, side_b.profiles
    group_vals: list[tuple[Any, ...]]
    if gcols:
        both = pd.concat([pa[gcols].astype(object), pb[gcols].astype(object)], ignore_index=True)
        both = both.where(both.notna(), None)
        if len(gcols) == 1:
            gcode, guniq = pd.factorize(both[gcols[0]], sort=False, use_na_sentinel=False)
            group_vals = [(v,) for v in guniq]
        else:
            gcode, guniq = pd.factorize(pd.MultiIndex.from_frame(both), sort=False)
            group_vals = [tuple(v) for v in guniq]
    else:
        gcode = np.zeros(len(pa) + len(pb), dtype=np.int64)
        group_vals = [()]
    pid_a = pa["profile_id"].to_numpy().astype(np.int64)
    pid_b = pb["profile_id"].to_numpy().astype(np.int64)
    rows_a = _rows(side_a, fkeys[0], metric, profile_mode)
    # one walk serves both sides when they split one set (their profiles are disjoint)
    shared = side_b.ps is side_a.ps and not profile_mode and not np.isin(pid_b, pid_a).any()
    rows_b = rows_a if shared else _rows(side_b, fkeys[1], metric, profile_mode)
    sides = [Side(rows_a, pid_a, gcode[: len(pa)]), Side(rows_b, pid_b, gcode[len(pa) :])]
    cells = Cells(sides, max(len(group_vals), 1), len(key_names))
    return _Prepared(key_names, group_vals, cells, by == "label" or profile_mode)


class _Thresholds:
    def __init__(self, min_change: float, min_share: float, min_delta: float) -> None:
        self.min_change, self.min_share, self.min_delta = min_change, min_share, min_delta

    def relevant(self, res: dict[str, np.ndarray], task_time: float) -> np.ndarray:
        """Practically relevant changes: only these are tested."""
        with np.errstate(invalid="ignore"):
            return (
                (res["present_a"] > 0)
                & (res["present_b"] > 0)
                & (np.abs(res["ratio"] - 1) >= self.min_change)
                & (np.abs(res["delta"]) >= max(self.min_share * task_time, self.min_delta))
            )


def _means(res: dict[str, np.ndarray]) -> None:
    ma = np.nan_to_num(res["mean_a"])
    mb = np.nan_to_num(res["mean_b"])
    res["delta"] = mb - ma
    with np.errstate(invalid="ignore", divide="ignore"):
        res["ratio"] = np.where(ma != 0, mb / np.where(ma != 0, ma, 1), np.where(mb != 0, np.inf, np.nan))
    res["cum_delta"] = np.nan_to_num(res["cum_mean_b"]) - np.nan_to_num(res["cum_mean_a"])


def _group_numbers(prep: _Prepared, gi: int, keys: np.ndarray, thresholds: _Thresholds | None
                   ) -> tuple[dict[str, np.ndarray], np.ndarray]:  # fmt: skip
    """Per-key numbers of one group (both sides), arrays aligned on ``keys`` (the group's keys, sorted codes), with
    NaN medians and p95 (:func:`_distributions` fills them); and which keys are practically relevant (none
    without ``thresholds``)."""
    c = prep.cells
    assert c.cum is not None and c.calls is not None
    res: dict[str, np.ndarray] = {"key": keys}
    task_time = 0.0
    for si in range(2):
        sfx = "ab"[si]
        n = int(c.n[si, gi])
        res[f"total_{sfx}"] = c.total[si, gi, keys]  # in the order pstats.Stats(*paths) adds the files
        res[f"n_{sfx}"] = np.full(len(keys), n)
        tt = float(c.tt[si, gi])
        res[f"tt_{sfx}"] = np.full(len(keys), tt / n if n else np.nan)
        if n:
            task_time = max(task_time, tt / n)
        nan = np.full(len(keys), np.nan)
        res[f"mean_{sfx}"] = res[f"total_{sfx}"] / n if n else nan
        res[f"cum_mean_{sfx}"] = c.cum[si, gi, keys] / n if n else nan.copy()
        res[f"calls_{sfx}"] = c.calls[si, gi, keys] / n if n else nan.copy()
        res[f"present_{sfx}"] = c.count[si, gi, keys]  # exact when one row per (profile, key); else see below
        res[f"median_{sfx}"] = nan.copy()
        res[f"p95_{sfx}"] = nan.copy()
    _means(res)
    res["p_value"] = np.full(len(keys), np.nan)
    res["direction"] = np.zeros(len(keys))
    relevant = thresholds.relevant(res, task_time) if thresholds is not None else np.zeros(len(keys), dtype=bool)
    return res, relevant


def _distributions(prep: _Prepared, res: dict[str, np.ndarray], relevant: np.ndarray, block: Block) -> None:
    """Medians, p95 (and presence when a key can have several rows per profile) of the block's keys from its dense
    matrices, sorted in place; the Mann–Whitney test of its relevant keys."""
    lo, hi = block.lo, block.hi
    for si, mat in enumerate(block.mats):
        if mat is None:
            continue
        sfx = "ab"[si]
        cnt = block.counts[si]
        if cnt is not None:
            res[f"present_{sfx}"][lo:hi] = (cnt > 0).sum(axis=1)
        sort_rows(mat)
        q50, q95 = quantiles_sorted(mat, (0.5, 0.95))
        res[f"median_{sfx}"][lo:hi] = q50
        res[f"p95_{sfx}"][lo:hi] = q95
    mat_a, mat_b = block.mats
    w = np.flatnonzero(relevant[lo:hi])
    if not len(w) or mat_a is None or mat_b is None:
        return
    n_a, n_b = mat_a.shape[1], mat_b.shape[1]
    per = block_size(max(n_a, n_b))
    for start in range(0, len(w), per):
        rows = w[start : start + per]
        if rows[-1] - rows[0] == len(rows) - 1:  # consecutive rows (every key tested): views, not copies
            u_b, p = mannwhitney_sorted(mat_a[rows[0] : rows[-1] + 1], mat_b[rows[0] : rows[-1] + 1])
        else:
            u_b, p = mannwhitney_sorted(mat_a[rows], mat_b[rows])
        res["p_value"][lo + rows] = p
        res["direction"][lo + rows] = np.sign(u_b - n_a * n_b / 2.0)


def _group_results(prep: _Prepared, thresholds: _Thresholds | None, *, distributions: bool = True
                   ) -> list[tuple[int, dict[str, np.ndarray]]]:  # fmt: skip
    """``(group, per-key numbers)`` of every group with keys, in group order; ``distributions``: medians, p95 and
    (with ``thresholds``) the test of the relevant keys; else means and counts only."""
    c = prep.cells
    either = (c.count[0] > 0) | (c.count[1] > 0)
    units = [(gi, keys) for gi in range(prep.n_groups) if len(keys := np.flatnonzero(either[gi]))]
    results: dict[int, tuple[dict[str, np.ndarray], np.ndarray]] = {}
    if distributions:
        keys_of = dict(units)
        for block in c.walk(units, counts=not prep.unique_per_profile):  # the first walk also sums cum, calls
            if block.group not in results:
                results[block.group] = _group_numbers(prep, block.group, keys_of[block.group], thresholds)
            _distributions(prep, *results[block.group], block)
    else:
        c.sum_inclusive()
        results = {gi: _group_numbers(prep, gi, keys, thresholds) for gi, keys in units}
    return [(gi, results[gi][0]) for gi, _keys in units]


def _stratum_tests(strat: _Prepared, keys: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """Per stratum with invocations on both sides: ``U_b - n_a n_b / 2`` and its variance for ``keys`` (sorted key
    codes), and the stratum's invocations."""
    c = strat.cells
    strata = [gi for gi in range(strat.n_groups) if c.n[0, gi] and c.n[1, gi]]
    dev = {gi: np.zeros(len(keys)) for gi in strata}
    var = {gi: np.zeros(len(keys)) for gi in strata}
    for block in c.walk([(gi, keys) for gi in strata], sums=False):
        mat_a, mat_b = block.mats
        assert mat_a is not None and mat_b is not None
        n_a, n_b = mat_a.shape[1], mat_b.shape[1]
        sort_rows(mat_a)
        sort_rows(mat_b)
        per = block_size(max(n_a, n_b))
        for start in range(0, block.hi - block.lo, per):
            rows = slice(start, start + per)
            u_b, v = mannwhitney_parts(mat_a[rows], mat_b[rows])
            at = slice(block.lo + start, block.lo + start + len(u_b))
            dev[block.group][at] = u_b - n_a * n_b / 2.0
            var[block.group][at] = v
    return [dev[gi] for gi in strata], [var[gi] for gi in strata], [int(c.n[:, gi].sum()) for gi in strata]


def _stratified(pooled: _Prepared, strat: _Prepared, th: _Thresholds) -> dict[str, np.ndarray] | None:
    """Pooled distributions (medians, p95, presence, totals) with means standardised over the strata (every
    stratum weighted by its share of all invocations on both sides, so a changed task mix does not read as a
    change) and the van Elteren test within strata."""
    parts = _group_results(pooled, None)
    if not parts:
        return None
    res = parts[0][1]
    n_keys = len(pooled.key_names)
    keys = res["key"]
    acc = {c: np.zeros(n_keys) for c in ("mean_a", "mean_b", "cum_mean_a", "cum_mean_b", "calls_a", "calls_b")}
    task_time = [0.0, 0.0]
    n_all = strat.n_all
    for _gi, g in _group_results(strat, None, distributions=False):
        w = (g["n_a"][0] + g["n_b"][0]) / n_all
        for c in acc:
            acc[c][g["key"]] += w * np.nan_to_num(g[c])
        task_time[0] += w * np.nan_to_num(g["tt_a"][0])
        task_time[1] += w * np.nan_to_num(g["tt_b"][0])
    for c, v in acc.items():
        res[c] = v[keys]
    _means(res)
    relevant = th.relevant(res, max(task_time))
    test_keys = keys[relevant]
    if len(test_keys):
        devs, variances, ns = _stratum_tests(strat, test_keys)
        if devs:
            t, p = van_elteren(np.array(devs), np.array(variances), np.array(ns, dtype=float))
            res["p_value"][relevant] = p
            res["direction"][relevant] = np.sign(t)
    return res


def _diff(side_a: _Side, side_b: _Side, *, by: str, gcols: list[str], profile_mode: bool, metric: str,
          stratify: str | None, alpha: float, th: _Thresholds) -> pd.DataFrame:  # fmt: skip
    cols = gcols + DIFF_COLUMNS
    parts: list[dict[str, np.ndarray]] = []
    if stratify is not None:
        pooled = _prepare(side_a, side_b, by=by, gcols=[], profile_mode=profile_mode, metric=metric)
        strat = _prepare(side_a, side_b, by=by, gcols=[stratify], profile_mode=profile_mode, metric=metric)
        res = _stratified(pooled, strat, th)
        if res is not None:
            res["_group"] = np.zeros(len(res["key"]), dtype=np.int64)
            res["contribution"] = res["delta"]
            parts.append(res)
        prep = pooled
    else:
        prep = _prepare(side_a, side_b, by=by, gcols=gcols, profile_mode=profile_mode, metric=metric)
        n_all = prep.n_all
        for gi, res in _group_results(prep, th):
            res["_group"] = np.full(len(res["key"]), gi)
            n_a, n_b = prep.cells.n[0, gi], prep.cells.n[1, gi]
            res["contribution"] = res["delta"] * ((n_a + n_b) / n_all if gcols else 1.0)
            parts.append(res)
    if not parts:
        return pd.DataFrame({c: [] for c in cols})
    r = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    # ---- multiple-comparison correction over every compared key, then status
    compared = (r["present_a"] > 0) & (r["present_b"] > 0)
    tested = np.isfinite(r["p_value"])
    p_adj = np.full(len(r["key"]), np.nan)
    p_adj[tested] = bh_adjust(r["p_value"][tested], m=int(compared.sum()))
    status = np.full(len(r["key"]), "same", dtype=object)
    sig = tested & (p_adj <= alpha)
    status[sig & (r["delta"] > 0) & (r["direction"] > 0)] = "slower"
    status[sig & (r["delta"] < 0) & (r["direction"] < 0)] = "faster"
    status[(r["present_a"] == 0) & (r["present_b"] > 0)] = "new"
    status[(r["present_b"] == 0) & (r["present_a"] > 0)] = "gone"

    out: dict[str, Any] = {}
    gidx = r["_group"]
    gv = prep.group_vals
    for j, c in enumerate(gcols):
        out[c] = np.array([gv[i][j] for i in range(len(gv))], dtype=object)[gidx]
    if profile_mode:
        out["label"] = np.array([str(gv[i][-1]) for i in range(len(gv))], dtype=object)[gidx]
    else:
        out["label"] = prep.key_names[r["key"]]
    out["status"] = pd.Categorical(status, categories=list(STATUSES))
    out["p_adjusted"] = p_adj
    for c in DIFF_COLUMNS:
        if c not in out:
            out[c] = r[c]
    df = pd.DataFrame(out, columns=cols)
    o = np.lexsort((np.arange(len(df)), -np.abs(df["contribution"].to_numpy())))
    return df.iloc[o].reset_index(drop=True)
