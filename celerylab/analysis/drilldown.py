"""Top functions (totals and per-invocation statistics) and caller/callee drilldown.

Totals equal stdlib ``pstats`` exactly: sums are taken in the order ``pstats.Stats(*paths)`` adds files.
Per-invocation numbers divide by the number of invocations (profiles) in the selection or group; a function
absent from a profile counts as 0 there (see ``docs/analysis.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..core.rules import count_array, count_sums, pstats_row_order
from ..errors import ColumnNotFound, UsageError
from ._dist import dense_blocks, quantiles_sorted, sort_rows

if TYPE_CHECKING:
    from ..core.data import FuncRef, ProfileData

_SORTABLE = ("tottime", "cumtime", "ncalls", "pcalls")
_PER_INVOCATION = ("tottime_p50", "tottime_p95", "cumtime_p50", "cumtime_p95")

TOP_COLUMNS = [
    "func_id", "label", "ncalls", "pcalls", "tottime", "cumtime", "n_profiles", "tottime_mean", "cumtime_mean",
    "tottime_p50", "tottime_p95", "cumtime_p50", "cumtime_p95", "calls_mean", "share", "name", "module", "kind",
]  # fmt: skip


def _with_labels(ps: ProfileData, df: pd.DataFrame, id_col: str = "func_id") -> pd.DataFrame:
    f = ps.functions.set_index("func_id")[["label", "name", "module", "kind"]]
    out = df.join(f, on=id_col)
    front = [id_col, "label"]
    return out[front + [c for c in out.columns if c not in front]]


def _group_columns(ps: ProfileData, group_by: str | list[str] | None, what: str) -> tuple[pd.DataFrame, list[str]]:
    """``profiles`` with the group columns present (``worker`` = ``hostname:pid`` is made on demand)."""
    p = ps.profiles
    if group_by is None:
        return p, []
    cols = [group_by] if isinstance(group_by, str) else list(group_by)
    if "worker" in cols and "worker" not in p.columns:
        p = p.assign(worker=p["hostname"].astype(object).astype(str) + ":" + p["pid"].astype(str))
    for c in cols:
        if c not in p.columns:
            raise ColumnNotFound(f"{what}={c!r}: no such column in profiles; columns are {list(p.columns)}")
    return p, cols


def _stats_only(ps: ProfileData, ids: np.ndarray) -> ProfileData:
    """A ProfileSet of the profiles ``ids`` with their stats rows but no edges (cheap: no 10 M-row edge copy)."""
    from ..core.data import ProfileData

    p = ps.profiles
    lookup = ps.id_lookup(ids)
    return ProfileData(
        profiles=p.loc[lookup[p["profile_id"].to_numpy()]].reset_index(drop=True),
        functions=ps.functions,
        stats=ps.stats.loc[lookup[ps.stats["profile_id"].to_numpy()]].reset_index(drop=True),
        edges=ps.edges.iloc[:0],
    )


def per_invocation(ps: ProfileData, func_ids: np.ndarray | None = None) -> pd.DataFrame:
    """Per function, the distribution of its time over the invocations of ``ps`` (absent = 0):
    ``func_id, tottime_p50, tottime_p95, cumtime_p50, cumtime_p95, calls_mean`` for ``func_ids`` (default: all
    functions present)."""
    s = ps.stats
    n = len(ps.profiles)
    if func_ids is None:
        func_ids = np.unique(s["func_id"].to_numpy())
    keys = np.unique(np.asarray(func_ids, dtype=np.int64))
    cols = ["func_id", "tottime_p50", "tottime_p95", "cumtime_p50", "cumtime_p95", "calls_mean"]
    if not len(keys) or not n:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols}).astype({"func_id": np.int64})
    slot_of = np.full(int(max(ps.profiles["profile_id"].max(), s["profile_id"].max())) + 1, 0, dtype=np.int64)
    slot_of[ps.profiles["profile_id"].to_numpy()] = np.arange(n)
    slot = slot_of[s["profile_id"].to_numpy()]
    fid = s["func_id"].to_numpy().astype(np.int64)
    wanted = np.zeros(max(int(fid.max()) if len(fid) else 0, int(keys.max())) + 1, dtype=bool)
    wanted[keys] = True
    m = wanted[fid]
    slot, fid = slot[m], fid[m]
    parts: dict[str, list[np.ndarray]] = {c: [] for c in cols}
    for col, names in (("tottime", ("tottime_p50", "tottime_p95")), ("cumtime", ("cumtime_p50", "cumtime_p95"))):
        vals = s[col].to_numpy()[m]
        for bk, mat in dense_blocks(slot, fid, vals, n, keys):
            sort_rows(mat)
            q50, q95 = quantiles_sorted(mat, (0.5, 0.95))
            parts[names[0]].append(q50)
            parts[names[1]].append(q95)
            if col == "tottime":
                parts["func_id"].append(bk)
    # unknown counts (pyinstrument) make the mean unknown: NaN
    calls = np.bincount(fid, weights=s["ncalls"].to_numpy(dtype=np.float64, na_value=np.nan)[m], minlength=len(wanted))
    out = pd.DataFrame({c: np.concatenate(v) for c, v in parts.items() if c != "calls_mean"})
    out["calls_mean"] = calls[out["func_id"].to_numpy()] / n
    return out[cols]


def top(
    ps: ProfileData,
    n: int | None = 20,
    by: str = "tottime",
    group_by: str | list[str] | None = None,
    *,
    percentiles: bool = True,
) -> pd.DataFrame:
    """Functions ranked by ``by``, one ranking per group of ``group_by`` (profile columns, e.g. ``task_name``,
    ``run``, ``hostname``, ``worker`` = hostname:pid, or any sidecar/metadata column).

    Columns (``TOP_COLUMNS``, after the group columns): ``func_id, label``; the exact pstats totals over the group
    ``ncalls, pcalls, tottime, cumtime``; ``n_profiles`` (invocations in which the function ran); per invocation of
    the group (absent = 0, denominator = invocations in the group): ``tottime_mean, cumtime_mean, tottime_p50,
    tottime_p95, cumtime_p50, cumtime_p95, calls_mean``; ``share`` of the group's total exclusive time;
    ``name, module, kind``.  ``by`` is one of tottime, cumtime, ncalls, pcalls (same order as their per-invocation
    means within a group) or tottime_p50/p95, cumtime_p50/p95.  ``percentiles=False`` skips the percentiles
    (NaN) — they are computed only for the rows returned.
    """
    if by not in _SORTABLE + _PER_INVOCATION:
        raise UsageError(f"top(by={by!r}): by must be one of {', '.join(_SORTABLE + _PER_INVOCATION)}")
    if group_by is not None:
        p, cols = _group_columns(ps, group_by, "top(group_by")
        parts = []
        for key, g in p.groupby(cols, observed=True, sort=True, dropna=False):
            t = top(_stats_only(ps, g["profile_id"].to_numpy()), n=n, by=by, percentiles=percentiles)
            keys = key if isinstance(key, tuple) else (key,)
            for c, v in reversed(list(zip(cols, keys))):
                t.insert(0, c, v)
            parts.append(t)
        if not parts:
            return top(ps, n=0, by=by).assign(**{c: [] for c in cols})[cols + TOP_COLUMNS]
        return pd.concat(parts, ignore_index=True)
    ft = ps.function_totals
    n_prof = max(len(ps.profiles), 1)
    total_tt = float(ft["tottime"].sum()) if len(ft) else 0.0
    out = ft.copy()
    out["tottime_mean"] = out["tottime"] / n_prof
    out["cumtime_mean"] = out["cumtime"] / n_prof
    out["calls_mean"] = out["ncalls"] / n_prof
    out["share"] = out["tottime"] / total_tt if total_tt else np.nan
    if by in _PER_INVOCATION:
        out = out.merge(per_invocation(ps, out["func_id"].to_numpy()).drop(columns="calls_mean"), on="func_id")
        out = out.sort_values([by, "func_id"], ascending=[False, True], kind="stable")
        if n is not None:
            out = out.head(n)
    else:
        out = out.sort_values([by, "func_id"], ascending=[False, True], kind="stable")
        if n is not None:
            out = out.head(n)
        if percentiles and len(out):
            q = per_invocation(ps, out["func_id"].to_numpy()).drop(columns="calls_mean")
            out = out.merge(q, on="func_id", how="left")
        else:
            for c in _PER_INVOCATION:
                out[c] = np.nan
    out = _with_labels(ps, out.reset_index(drop=True))
    return out[TOP_COLUMNS]


# -------------------------------------------------------------------------------------------- callers/callees
NEIGHBOUR_COLUMNS = ["func_id", "label", "ncalls", "pcalls", "tottime", "cumtime", "n_profiles", "cumtime_mean",
                     "share", "name", "module", "kind"]  # fmt: skip


_EDGE_VALUES = ("ncalls", "pcalls", "tottime", "cumtime")


def _edge_sums(rows: dict[str, np.ndarray], other: str, first_pid: Any, group: np.ndarray | None = None) -> dict:
    """Sum edge rows per ``other`` id (and group) in pstats order (rows are sorted by profile_id): per group, the
    group's first profile's rows, then its other rows reversed."""
    pid = rows["profile_id"]
    if group is None:
        order = pstats_row_order(pid, first_pid)
        gk = np.zeros(len(pid), dtype=np.int64)
    else:
        gk = group
        fp = np.asarray(first_pid, dtype=np.int64)  # first profile id of each group
        is_first = pid == fp[gk]
        idx = np.arange(len(pid))
        order = np.lexsort((np.where(is_first, idx, -idx), ~is_first, gk))
    oth = rows[other].astype(np.int64)[order]
    gk = gk[order]
    width = int(oth.max()) + 1 if len(oth) else 1
    codes, uniq = pd.factorize(gk * width + oth, sort=True)
    k = len(uniq)
    out: dict[str, np.ndarray] = {"_g": (uniq // width).astype(np.int64), "func_id": (uniq % width).astype(np.int32)}
    for c in ("ncalls", "pcalls"):  # NA where a term is unknown (rules.count_sums)
        out[c] = count_sums(codes, rows[c][order], k)
    for c in ("tottime", "cumtime"):
        out[c] = np.bincount(codes, weights=rows[c][order], minlength=k)
    out["n_profiles"] = np.bincount(codes, minlength=k)
    return out


def _labelled(ps: ProfileData, cols: dict[str, Any], order: np.ndarray) -> pd.DataFrame:
    """A frame of ``cols`` rows ``order`` with the function columns taken positionally (func_id == row).  Every
    column is reordered, the nullable count columns (NA where a count is unknown, rules.count_sums) too."""
    df = pd.DataFrame({c: v[order] for c, v in cols.items()})
    f = ps.functions.iloc[df["func_id"].to_numpy()][["label", "name", "module", "kind"]].reset_index(drop=True)
    return pd.concat([df, f], axis=1)


def _neighbours(ps: ProfileData, func: FuncRef, split_by: str | list[str] | None, side: str) -> pd.DataFrame:
    fid = ps.resolve(func)
    this, other = ("callee_id", "caller_id") if side == "callers" else ("caller_id", "callee_id")
    e = ps.edges
    # vectorised filter first, then gather only this function's edges (never a full-table DataFrame mask)
    idx = np.flatnonzero(e[this].to_numpy() == fid)
    rows = {c: (count_array(e[c]) if c in ("ncalls", "pcalls") else e[c].to_numpy())[idx]
            for c in ("profile_id", other, *_EDGE_VALUES)}  # fmt: skip
    p = ps.profiles
    if split_by is None:
        first = int(p["profile_id"].iloc[0]) if len(p) else None
        out = _edge_sums(rows, other, first)
        own = float(out["cumtime"].sum())
        out["cumtime_mean"] = out["cumtime"] / max(len(p), 1)
        out["share"] = out["cumtime"] / own if own else np.full(len(out["cumtime"]), np.nan)
        order = np.lexsort((out["func_id"], -out["cumtime"]))
        del out["_g"]
        return _labelled(ps, out, order)[NEIGHBOUR_COLUMNS]
    p, cols = _group_columns(ps, split_by, f"{side}(split_by")
    gcode, guniq = pd.factorize(pd.MultiIndex.from_frame(p[cols].astype(object)), sort=True)
    size = int(max(p["profile_id"].max(), rows["profile_id"].max() if len(idx) else 0)) + 1
    pid_group = np.full(size, -1, dtype=np.int64)
    pid_group[p["profile_id"].to_numpy()] = gcode
    firsts = pd.Series(p["profile_id"].to_numpy()).groupby(gcode, sort=True).first().to_numpy()
    out = _edge_sums(rows, other, firsts, pid_group[rows["profile_id"]])
    g = out["_g"]
    out["cumtime_mean"] = out["cumtime"] / np.maximum(np.bincount(gcode, minlength=len(guniq))[g], 1)
    own = np.bincount(g, weights=out["cumtime"], minlength=len(guniq))[g]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["share"] = np.where(own != 0, out["cumtime"] / np.where(own != 0, own, 1), np.nan)
    order = np.lexsort((out["func_id"], -out["cumtime"], g))
    gvals = [guniq[i] for i in g[order].tolist()]
    front = {c: [v[j] for v in gvals] for j, c in enumerate(cols)}
    del out["_g"]
    res = _labelled(ps, out, order)
    for c in reversed(cols):
        res.insert(0, c, front[c])
    return res[cols + NEIGHBOUR_COLUMNS]


def callers(ps: ProfileData, func: FuncRef, *, split_by: str | list[str] | None = None) -> pd.DataFrame:
    """The functions that call ``func`` (a func_id, a pstats label, an exact name or a unique label fragment).

    One row per caller: ``func_id, label`` of the caller; ``ncalls, pcalls, tottime, cumtime`` of the edge — the
    numbers of pstats ``print_callers``, summed over the selection exactly as pstats does; ``n_profiles`` (profiles
    with this edge); ``cumtime_mean`` (per invocation of the selection or group); ``share`` of the edge in the
    function's time summed over its callers; ``name, module, kind``.  ``split_by`` (profile columns, e.g.
    ``task_name`` or ``run``) gives one block per value, the split columns first.  Sorted by cumtime.
    Only the edges of ``func`` are touched (a vectorised filter, then a sum over that subset)."""
    return _neighbours(ps, func, split_by, "callers")


def callees(ps: ProfileData, func: FuncRef, *, split_by: str | list[str] | None = None) -> pd.DataFrame:
    """The functions ``func`` calls: one row per callee (pstats ``print_callees`` numbers); columns as
    :func:`callers`."""
    return _neighbours(ps, func, split_by, "callees")
