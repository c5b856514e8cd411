"""DB and memory hotspots.

DB, two sources:

* the **profile**: exclusive time of the functions in the ``db`` category (drivers and ORMs, see
  :mod:`celerylab.analysis.categories`) per task — :func:`db_time`;
* the **sidecars'** SQL capture (normalised statements with count, time and the application lines that issued
  them): :func:`db_hotspots` (per statement) and :func:`n_plus_one` (the same statement many times in one
  invocation, with the calling line).

Memory, from the sidecars: RSS before/after each task, tracemalloc peak and the top live allocation sites at the
end of the task.  :func:`memory_by_task` (peak and RSS growth per task), :func:`memory_hotspots` (per worker
process: does RSS keep growing across its task sequence?), :func:`leak_suspects` (which task names the growth
comes with), :func:`rss_sequence` (RSS after each task along each process's sequence) and
:func:`allocation_sites`.

Sizes are bytes, times seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._sqltext import statement_shape
from ..core.rules import UNKNOWN, group_key
from ..errors import ColumnNotFound
from .categories import function_categories

if TYPE_CHECKING:
    from ..core.data import ProfileData

# ------------------------------------------------------------------------------------------------------ SQL text


def normalize_sql(sql: str) -> str:
    """One text per statement shape (the capture's normalisation; idempotent, so already normalised sidecar text
    is unchanged): literals and placeholders become ``?``, value lists ``(?...)``, whitespace collapses."""
    return statement_shape(str(sql))


def _norm_column(sql: pd.Series) -> pd.Series:
    text = sql.astype(object).fillna("")
    uniq = pd.unique(text)
    mapping = {u: normalize_sql(u) for u in uniq}
    return text.map(mapping)


def _task_names(ps: ProfileData) -> pd.Series:
    p = ps.profiles
    names = p["task_name"] if "task_name" in p.columns else pd.Series(None, index=p.index, dtype=object)
    return pd.Series(group_key(names).to_numpy(), index=p["profile_id"].to_numpy())


def _first_caller(callers: object) -> object:
    if isinstance(callers, list | tuple | np.ndarray) and len(callers):
        return str(callers[0])
    return None


def _sql_rows(ps: ProfileData) -> pd.DataFrame:
    s = ps.sql
    if not len(s):
        return pd.DataFrame(columns=["profile_id", "sql", "count", "time_s", "callers", "task_name", "caller"])
    out = s.assign(
        sql=_norm_column(s["sql"]),
        count=s["count"].astype("float64").fillna(0).astype(np.int64),
        time_s=s["time_s"].astype("float64").fillna(0.0),
        task_name=s["profile_id"].map(_task_names(ps)).to_numpy(),
        caller=[_first_caller(c) for c in s["callers"].tolist()],
    )
    # the same shape can appear twice in one sidecar only if capture normalised differently: merge per profile
    return out


DB_TIME_COLUMNS = ["profiles", "db_time", "db_time_mean", "db_time_p50", "db_time_p95", "task_time_mean",
                   "db_share", "sql_count_mean", "sql_count_max", "sql_time_mean", "top_db_function"]  # fmt: skip


def db_time(ps: ProfileData, by: str | list[str] | None = "task_name") -> pd.DataFrame:
    """Time inside DB drivers / ORMs per group, from the profiles.

    ``<by…>, profiles, db_time`` (exclusive seconds of ``db``-category functions, summed), ``db_time_mean`` /
    ``db_time_p50`` / ``db_time_p95`` (per invocation), ``task_time_mean`` (profiled time per invocation),
    ``db_share`` (db_time of the group's total), from the sidecars ``sql_count_mean``, ``sql_count_max``,
    ``sql_time_mean`` (NaN without SQL capture), and ``top_db_function`` (label of the db function with the most
    exclusive time in the group).  Sorted by db_time.
    """
    p = ps.profiles
    cols = [] if by is None else ([by] if isinstance(by, str) else list(by))
    for c in cols:
        if c not in p.columns:
            raise ColumnNotFound(f"db_time(by={c!r}): no such column in profiles")
    if not len(p):
        return pd.DataFrame(columns=cols + DB_TIME_COLUMNS)
    cats = function_categories(ps)
    is_db = np.zeros(int(ps.functions["func_id"].max()) + 1, dtype=bool)
    is_db[cats.index.to_numpy()[(cats == "db").to_numpy()]] = True
    s = ps.stats
    fid = s["func_id"].to_numpy()
    m = is_db[fid]
    size = int(max(p["profile_id"].max(), s["profile_id"].max() if len(s) else 0)) + 1
    per_prof = np.bincount(s["profile_id"].to_numpy()[m], weights=s["tottime"].to_numpy()[m], minlength=size)
    d = pd.DataFrame({"_db": per_prof[p["profile_id"].to_numpy()], "_tt": p["total_tt"].to_numpy(dtype=float)})
    for c in ("sql_count", "sql_time_s"):
        d["_" + c] = p[c].to_numpy(dtype=float) if c in p.columns else np.nan
    for c in cols:
        d[c] = p[c].astype(object).where(p[c].notna(), None).to_numpy()
    d["_all"] = 0
    d["_pid"] = p["profile_id"].to_numpy()
    g = d.groupby(cols or ["_all"], dropna=False, sort=True)
    out = pd.DataFrame({
        "profiles": g.size(),
        "db_time": g["_db"].sum(),
        "db_time_mean": g["_db"].mean(),
        "db_time_p50": g["_db"].median(),
        "db_time_p95": g["_db"].quantile(0.95),
        "task_time_mean": g["_tt"].mean(),
    })  # fmt: skip
    tt_sum = g["_tt"].sum()
    out["db_share"] = np.where(tt_sum > 0, out["db_time"] / tt_sum.where(tt_sum > 0, 1), np.nan)
    out["sql_count_mean"] = g["_sql_count"].mean()
    out["sql_count_max"] = g["_sql_count"].max()
    out["sql_time_mean"] = g["_sql_time_s"].mean()
    # the db function with the most exclusive time per group
    pid_group = np.full(size, -1, dtype=np.int64)
    gcodes = g.ngroup().to_numpy()
    pid_group[d["_pid"].to_numpy()] = gcodes
    rows_g = pid_group[s["profile_id"].to_numpy()[m]]
    top: list[object] = [None] * len(out)
    if m.any():
        nf = len(is_db)
        key = rows_g * nf + fid[m]
        codes, uniq = pd.factorize(key)
        tot = np.bincount(codes, weights=s["tottime"].to_numpy()[m])
        best = pd.DataFrame({"g": uniq // nf, "f": uniq % nf, "t": tot})
        best = best.sort_values(["g", "t"], ascending=[True, False]).drop_duplicates("g")
        labels = ps.labels
        for gi, f in zip(best["g"].tolist(), best["f"].tolist()):
            if gi >= 0:
                top[gi] = labels.get(f)
    out["top_db_function"] = top
    out = out.reset_index()[cols + DB_TIME_COLUMNS]
    return out.sort_values("db_time", ascending=False, kind="stable").reset_index(drop=True)


DB_HOTSPOT_COLUMNS = ["sql", "count", "time_s", "mean_time_s", "n_profiles", "per_task", "max_per_task",
                      "n_plus_one", "task_names", "callers"]  # fmt: skip


def db_hotspots(ps: ProfileData, *, min_repeats: int = 10) -> pd.DataFrame:
    """SQL statements from the sidecars, one row per normalised statement.

    ``sql``; ``count`` (executions) and ``time_s`` (seconds) summed over the selection; ``mean_time_s`` (per
    execution); ``n_profiles`` (invocations that ran it); ``per_task`` (executions per invocation that ran it);
    ``max_per_task``; ``n_plus_one`` (``max_per_task >= min_repeats``: see :func:`n_plus_one`); ``task_names``
    and ``callers`` (the application lines that issued it, most frequent first), as ``", "``-joined text.
    Sorted by time_s.  Empty (with these columns) when no sidecar has SQL.
    """
    r = _sql_rows(ps)
    if not len(r):
        return pd.DataFrame(columns=DB_HOTSPOT_COLUMNS)
    per = r.groupby(["sql", "profile_id"], sort=False).agg(count=("count", "sum"), time_s=("time_s", "sum"))
    g = per.groupby(level="sql", sort=False)
    out = pd.DataFrame({"count": g["count"].sum(), "time_s": g["time_s"].sum(), "n_profiles": g.size(),
                        "max_per_task": g["count"].max()})  # fmt: skip
    out["mean_time_s"] = np.where(out["count"] > 0, out["time_s"] / out["count"].where(out["count"] > 0, 1), np.nan)
    out["per_task"] = out["count"] / out["n_profiles"]
    out["n_plus_one"] = out["max_per_task"] >= min_repeats
    tasks = r.groupby("sql", sort=False)["task_name"].agg(lambda s: ", ".join(s.value_counts().index.astype(str)))
    callers = r.explode("callers").dropna(subset=["callers"])
    if len(callers):
        cw = callers.groupby("sql", sort=False)["callers"].agg(lambda s: ", ".join(s.value_counts().index.astype(str)))
    else:
        cw = pd.Series(dtype=object)
    out["task_names"] = tasks
    out["callers"] = cw.reindex(out.index)
    out = out.reset_index().sort_values(["time_s", "count"], ascending=False, kind="stable").reset_index(drop=True)
    return out[DB_HOTSPOT_COLUMNS]


N_PLUS_ONE_COLUMNS = ["task_name", "sql", "caller", "profiles", "task_profiles", "affected_share",
                      "max_per_invocation", "mean_per_invocation", "time_s", "time_per_invocation"]  # fmt: skip


def n_plus_one(ps: ProfileData, *, min_repeats: int = 10) -> pd.DataFrame:
    """N+1 suspects: a normalised statement executed at least ``min_repeats`` times within one invocation.

    One row per (``task_name, sql, caller``) — ``caller`` is the application line that issued the statement most
    often (``path:line(function)`` from the capture); ``profiles`` (invocations with the repeat),
    ``task_profiles`` (invocations of the task), ``affected_share``; ``max_per_invocation`` and
    ``mean_per_invocation`` (executions, over the affected invocations); ``time_s`` (summed over them) and
    ``time_per_invocation``.  Sorted by time_s.
    """
    r = _sql_rows(ps)
    if not len(r):
        return pd.DataFrame(columns=N_PLUS_ONE_COLUMNS)
    per = r.groupby(["task_name", "sql", "profile_id"], sort=False, dropna=False).agg(
        count=("count", "sum"), time_s=("time_s", "sum"), caller=("caller", "first")
    )
    hit = per.loc[per["count"] >= min_repeats].reset_index()
    if not len(hit):
        return pd.DataFrame(columns=N_PLUS_ONE_COLUMNS)
    hit["caller"] = hit["caller"].astype(object).where(hit["caller"].notna(), "(no application frame)")
    g = hit.groupby(["task_name", "sql", "caller"], sort=False)
    out = pd.DataFrame({
        "profiles": g.size(),
        "max_per_invocation": g["count"].max(),
        "mean_per_invocation": g["count"].mean(),
        "time_s": g["time_s"].sum(),
    }).reset_index()  # fmt: skip
    counts = _task_names(ps).value_counts()
    out["task_profiles"] = out["task_name"].map(counts).fillna(0).astype(np.int64)
    out["affected_share"] = out["profiles"] / out["task_profiles"].where(out["task_profiles"] > 0, np.nan)
    out["time_per_invocation"] = out["time_s"] / out["profiles"]
    out = out.sort_values(["time_s", "profiles"], ascending=False, kind="stable").reset_index(drop=True)
    return out[N_PLUS_ONE_COLUMNS]


# ----------------------------------------------------------------------------------------------------- memory
def _memory_frame(ps: ProfileData) -> pd.DataFrame:
    p = ps.profiles
    cols = ["profile_id", "task_name", "hostname", "pid", "started_at", "rss_before", "rss_after", "peak_traced"]
    if "memory_rss_before" not in p.columns or "memory_rss_after" not in p.columns:
        return pd.DataFrame(columns=[*cols, "growth"])
    d = pd.DataFrame({
        "profile_id": p["profile_id"].to_numpy(),
        "task_name": group_key(p["task_name"]).to_numpy() if "task_name" in p.columns else UNKNOWN,
        "hostname": p["hostname"].astype(object).to_numpy() if "hostname" in p.columns else None,
        "pid": p["pid"].to_numpy() if "pid" in p.columns else None,
        "started_at": p["started_at"].to_numpy() if "started_at" in p.columns else None,
        "rss_before": p["memory_rss_before"].to_numpy(dtype=float),
        "rss_after": p["memory_rss_after"].to_numpy(dtype=float),
        "peak_traced": p["memory_peak_traced"].to_numpy(dtype=float) if "memory_peak_traced" in p.columns else np.nan,
    })  # fmt: skip
    d = d.loc[d["rss_before"].notna() & d["rss_after"].notna()].copy()
    d["growth"] = d["rss_after"] - d["rss_before"]
    return d


MEMORY_BY_TASK_COLUMNS = ["profiles", "rss_growth_mean", "rss_growth_p50", "rss_growth_p95", "rss_growth_total",
                          "grew_share", "peak_traced_mean", "peak_traced_p95", "peak_traced_max",
                          "rss_after_max"]  # fmt: skip


def memory_by_task(ps: ProfileData, by: str = "task_name") -> pd.DataFrame:
    """Peak and RSS growth per task (or another profiles column): ``<by>, profiles`` (with memory data),
    ``rss_growth_mean/p50/p95/total`` (``rss_after - rss_before`` of each invocation, bytes), ``grew_share``
    (invocations whose RSS grew), ``peak_traced_mean/p95/max`` (tracemalloc peak; NaN without tracemalloc),
    ``rss_after_max``.  Sorted by rss_growth_total."""
    d = _memory_frame(ps)
    if by not in ("task_name", "hostname", "pid"):
        if by not in ps.profiles.columns:
            raise ColumnNotFound(f"memory_by_task(by={by!r}): no such column in profiles")
        d[by] = d["profile_id"].map(ps.profiles.set_index("profile_id")[by].astype(object))
    if not len(d):
        return pd.DataFrame(columns=[by, *MEMORY_BY_TASK_COLUMNS])
    g = d.groupby(by, sort=True, dropna=False)
    out = pd.DataFrame({
        "profiles": g.size(),
        "rss_growth_mean": g["growth"].mean(),
        "rss_growth_p50": g["growth"].median(),
        "rss_growth_p95": g["growth"].quantile(0.95),
        "rss_growth_total": g["growth"].sum(),
        "grew_share": g["growth"].agg(lambda s: float((s > 0).mean())),
        "peak_traced_mean": g["peak_traced"].mean(),
        "peak_traced_p95": g["peak_traced"].quantile(0.95),
        "peak_traced_max": g["peak_traced"].max(),
        "rss_after_max": g["rss_after"].max(),
    })  # fmt: skip
    out = out.reset_index().sort_values("rss_growth_total", ascending=False, kind="stable").reset_index(drop=True)
    return out[[by, *MEMORY_BY_TASK_COLUMNS]]


MEMORY_HOTSPOT_COLUMNS = ["hostname", "pid", "tasks", "rss_first", "rss_last", "growth", "growth_per_task",
                          "late_growth", "trend", "steady_growth", "leak_suspect", "suspect_tasks"]  # fmt: skip
LEAK_COLUMNS = ["task_name", "workers", "profiles", "rss_growth_total", "rss_growth_mean", "grew_share",
                "other_growth_mean", "growth_share", "suspect_workers", "suspect"]  # fmt: skip


def _spearman(y: np.ndarray) -> float:
    """Rank correlation of ``y`` with its position (1 = always growing)."""
    n = len(y)
    if n < 3:
        return np.nan
    r = pd.Series(y).rank().to_numpy()
    if np.std(r) == 0:
        return 0.0
    return float(np.corrcoef(np.arange(n, dtype=float), r)[0, 1])


def _task_growth(d: pd.DataFrame, *, min_growth: float, min_share: float, min_factor: float,
                 min_runs: int) -> pd.DataFrame:  # fmt: skip
    """Per (worker process, task name): own RSS growth of its invocations against the other tasks of the same
    process, and whether the task is the suspect: it ran ``>= min_runs`` times, its invocations grew RSS by
    ``>= min_growth`` in total, in ``>= min_share`` of them, and by ``>= min_factor`` x the others' mean."""
    g = d.groupby(["hostname", "pid", "task_name"], sort=False, dropna=False)["growth"]
    t = pd.DataFrame({"n": g.size(), "total": g.sum(), "grew": g.agg(lambda x: float((x > 0).mean()))}).reset_index()
    w = d.groupby(["hostname", "pid"], sort=False, dropna=False)["growth"].agg(["size", "sum"])
    t = t.join(w, on=["hostname", "pid"])
    other_n = t["size"] - t["n"]
    t["mean"] = t["total"] / t["n"]
    t["other_mean"] = (t["sum"] - t["total"]) / other_n.where(other_n > 0, np.nan)
    t["suspect"] = (
        (t["n"] >= min_runs)
        & (t["total"] >= min_growth)
        & (t["grew"] >= min_share)
        & (t["mean"] >= min_factor * t["other_mean"].clip(lower=0).fillna(0))
    )
    return t


def memory_hotspots(ps: ProfileData, *, min_growth: float = 2**20, min_tasks: int = 6, min_trend: float = 0.6,
                    min_share: float = 0.5, min_factor: float = 3.0) -> pd.DataFrame:  # fmt: skip
    """Per worker process (``hostname, pid``): does RSS keep growing across its task sequence (by
    ``started_at``), and with which task?

    Growth is attributed to the tasks of ``ps`` only: every growth column sums the tasks' own
    ``rss_after - rss_before``, so on a filtered selection (one task name, one run…) the growth that other tasks of
    the same process caused between the selected ones never counts; on an unfiltered, back-to-back sequence this
    equals the difference of the readings.

    ``tasks``; ``rss_first`` (RSS before its first task), ``rss_last`` (after its last; both readings as recorded),
    ``growth`` (summed over its tasks), ``growth_per_task``; ``late_growth`` (over the second half of the
    sequence — a warm-up plateau does not count); ``trend`` (rank correlation of the RSS its tasks built up —
    ``rss_first`` plus the running sum of their growth — with the position in the sequence, 1 = always up);
    ``steady_growth`` (``tasks >= min_tasks``, ``late_growth >= min_growth`` bytes, ``trend >= min_trend``);
    ``leak_suspect`` (steady growth **and** a task name that carries it: its own invocations grew RSS by at least
    ``min_growth`` in total, in ``>= min_share`` of its runs, and ``>= min_factor`` x as much per run as the other
    tasks of the process — Python processes also grow slowly from caches and fragmentation, which is not a leak);
    ``suspect_tasks`` (those task names, most growth first, ``", "``-joined).  Sorted by growth.
    """
    d = _memory_frame(ps)
    if not len(d):
        return pd.DataFrame(columns=MEMORY_HOTSPOT_COLUMNS)
    d = d.sort_values(["hostname", "pid", "started_at", "profile_id"], kind="stable")
    t = _task_growth(d, min_growth=min_growth, min_share=min_share, min_factor=min_factor, min_runs=3)
    rows = []
    for (host, pid), g in d.groupby(["hostname", "pid"], sort=True, dropna=False):
        # only the selected tasks' own growth counts (a task filtered out may have run in between)
        own = g["growth"].to_numpy(dtype=float)
        first = float(g["rss_before"].iloc[0])
        n = len(g)
        half = n // 2
        late = float(own[half:].sum()) if half >= 1 else 0.0
        trend = _spearman(first + np.cumsum(own))
        steady = bool(n >= min_tasks and late >= min_growth and trend == trend and trend >= min_trend)
        mine = t.loc[(t["hostname"] == host) & (t["pid"] == pid) & t["suspect"]].sort_values("total", ascending=False)
        tasks = [str(x) for x in mine["task_name"]]
        growth = float(own.sum())
        rows.append((host, pid, n, first, float(g["rss_after"].iloc[-1]), growth, growth / n, late, trend,
                     steady, steady and bool(tasks), ", ".join(tasks)))  # fmt: skip
    out = pd.DataFrame(rows, columns=MEMORY_HOTSPOT_COLUMNS)
    return out.sort_values("growth", ascending=False, kind="stable").reset_index(drop=True)


RSS_SEQUENCE_COLUMNS = ["hostname", "pid", "worker", "seq", "profile_id", "task_name", "task_id", "started_at",
                        "rss_before", "rss_after", "growth", "grew"]  # fmt: skip


#: a task whose own run grew RSS by at least this many bytes is marked on the RSS-over-tasks line (512 KiB)
RSS_GROWTH_MARK = 2**19


def rss_sequence(ps: ProfileData, *, min_growth: float = RSS_GROWTH_MARK) -> pd.DataFrame:
    """RSS after each task, along each worker process's task sequence: the data of a "RSS over tasks" line.

    One row per profile with RSS readings: ``hostname, pid``; ``worker`` (``hostname:pid``, the line's name);
    ``seq`` (1, 2, … the task's position in that process's sequence of the profiles in ``ps``, by ``started_at``);
    ``profile_id, task_name, task_id, started_at``; ``rss_before`` / ``rss_after`` (bytes, as recorded);
    ``growth`` (this task's own ``rss_after - rss_before``); ``grew`` (``growth >= min_growth`` bytes: the tasks
    to mark).  Ordered by worker, then ``seq``."""
    d = _memory_frame(ps)
    if not len(d):
        return pd.DataFrame(columns=RSS_SEQUENCE_COLUMNS)
    p = ps.profiles
    if "task_id" in p.columns:
        ids = pd.Series(p["task_id"].astype(object).to_numpy(), index=p["profile_id"].to_numpy())
        d["task_id"] = d["profile_id"].map(ids).to_numpy()
    else:
        d["task_id"] = None
    d["hostname"] = group_key(d["hostname"]).astype(str).to_numpy()
    d = d.sort_values(["hostname", "pid", "started_at", "profile_id"], kind="stable").reset_index(drop=True)
    pid_text = [str(int(x)) if isinstance(x, int | float | np.integer | np.floating) and x == x else UNKNOWN
                for x in d["pid"]]  # fmt: skip
    d["worker"] = d["hostname"] + ":" + pd.Series(pid_text, index=d.index)
    d["seq"] = d.groupby("worker", sort=False).cumcount().astype(np.int64) + 1
    d["grew"] = d["growth"] >= min_growth
    return d[RSS_SEQUENCE_COLUMNS]


def leak_suspects(ps: ProfileData, *, min_growth: float = 2**20, min_share: float = 0.5,
                  min_factor: float = 3.0) -> pd.DataFrame:  # fmt: skip
    """Which task names RSS growth comes with, over every worker process.

    One row per task name: ``workers`` (processes that ran it), ``profiles``, ``rss_growth_total`` /
    ``rss_growth_mean`` (its invocations' own ``rss_after - rss_before``), ``grew_share`` (invocations that grew
    RSS), ``other_growth_mean`` (mean growth of the other tasks' invocations in the same processes),
    ``growth_share`` (of all positive growth), ``suspect_workers`` (processes in which it is the suspect, as in
    :func:`memory_hotspots`) and ``suspect`` (the same test over all its invocations).  Sorted by
    rss_growth_total.
    """
    d = _memory_frame(ps)
    if not len(d):
        return pd.DataFrame(columns=LEAK_COLUMNS)
    t = _task_growth(d, min_growth=min_growth, min_share=min_share, min_factor=min_factor, min_runs=3)
    g = d.groupby("task_name", sort=False)
    out = pd.DataFrame({
        "workers": t.groupby("task_name", sort=False).size(),
        "profiles": g.size(),
        "rss_growth_total": g["growth"].sum(),
        "rss_growth_mean": g["growth"].mean(),
        "grew_share": g["growth"].agg(lambda s: float((s > 0).mean())),
        "suspect_workers": t.groupby("task_name", sort=False)["suspect"].sum().astype(np.int64),
    })  # fmt: skip
    # the other tasks of the same processes: sum of (process total - own) over processes / their count
    t["other_n"] = t["size"] - t["n"]
    t["other_sum"] = t["sum"] - t["total"]
    o = t.groupby("task_name", sort=False)[["other_n", "other_sum"]].sum()
    out["other_growth_mean"] = o["other_sum"] / o["other_n"].where(o["other_n"] > 0, np.nan)
    positive = float(d["growth"].clip(lower=0).sum())
    out["growth_share"] = out["rss_growth_total"].clip(lower=0) / positive if positive else np.nan
    out["suspect"] = (
        (out["profiles"] >= 3)
        & (out["rss_growth_total"] >= min_growth)
        & (out["grew_share"] >= min_share)
        & (out["rss_growth_mean"] >= min_factor * out["other_growth_mean"].clip(lower=0).fillna(0))
    )
    out = out.reset_index().sort_values("rss_growth_total", ascending=False, kind="stable").reset_index(drop=True)
    return out[LEAK_COLUMNS]


ALLOCATION_COLUMNS = ["file", "line", "size", "count", "n_profiles", "size_mean", "task_names"]


def allocation_sites(ps: ProfileData, by: str | None = None) -> pd.DataFrame:
    """tracemalloc's top sites (memory still allocated at the end of a task), summed over the selection.

    ``[by,] file, line, size`` (bytes, summed), ``count`` (blocks), ``n_profiles`` (invocations listing the site),
    ``size_mean`` (per invocation listing it), ``task_names`` (``", "``-joined).  Sorted by size."""
    a = ps.allocations
    cols = ([by] if by else []) + ALLOCATION_COLUMNS
    if not len(a):
        return pd.DataFrame(columns=cols)
    a = a.assign(task_name=a["profile_id"].map(_task_names(ps)).to_numpy(),
                 size=a["size"].astype("float64"), count=a["count"].astype("float64"))  # fmt: skip
    keys = ["file", "line"]
    if by:
        if by not in ps.profiles.columns:
            raise ColumnNotFound(f"allocation_sites(by={by!r}): no such column in profiles")
        a[by] = a["profile_id"].map(ps.profiles.set_index("profile_id")[by].astype(object)).to_numpy()
        keys = [by, *keys]
    g = a.groupby(keys, sort=False, dropna=False)
    out = pd.DataFrame({
        "size": g["size"].sum(),
        "count": g["count"].sum(),
        "n_profiles": g["profile_id"].nunique(),
        "task_names": g["task_name"].agg(lambda s: ", ".join(s.value_counts().index.astype(str))),
    })  # fmt: skip
    out["size_mean"] = out["size"] / out["n_profiles"]
    out = out.reset_index().sort_values("size", ascending=False, kind="stable").reset_index(drop=True)
    return out[cols]
