"""``findings``: what changed between two runs, per task, and why — ranked, each with its evidence.

For every task (``task_name``) the two sides are compared per invocation:

* **time** — the task's duration (``wall_s`` where capture recorded it, else the profiled total) with
  :func:`~celerylab.analysis.diff` (``by="task_name"``: Mann–Whitney U, Benjamini–Hochberg over the tasks, the
  same practical thresholds).  A task whose status is slower/faster is a finding; its evidence is

  - ``cause``: the *application* function that explains the change most specifically — of the app functions whose
    inclusive time per invocation changed by at least half the task's change (same sign), the one with the least
    inclusive time (the deepest), else the app function with the largest change;
  - the functions whose exclusive time changed most (where the time went: drivers, encoders…);
  - the SQL statements whose executions per invocation changed most (from the capture's sidecars), with the
    application line that issued them and whether they repeat ≥ ``min_repeats`` times in one invocation (N+1);
  - the allocation sites (tracemalloc) whose size per invocation changed most;

* **memory** — the RSS growth per invocation (``memory_rss_after − memory_rss_before``), Mann–Whitney U + BH
  over the tasks; a task whose growth changed by at least ``min_growth`` bytes per invocation is a finding (grows /
  shrinks) with the allocation sites as evidence.

Ranked by impact: |change per invocation| × invocations on side B (seconds of the run for time, bytes for memory);
time findings first.  :func:`findings_evidence` flattens the evidence to one row per item.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import fmt
from ..core.rules import duration_column, group_key, task_key
from ..errors import ColumnNotFound
from ._dist import bh_adjust, mannwhitney_sorted
from .categories import function_categories
from .diff import _split, diff
from .hotspots import normalize_sql

if TYPE_CHECKING:
    from ..core.data import ProfileData

FINDING_COLUMNS = [
    "rank", "task_name", "kind", "direction", "measure", "unit", "mean_a", "mean_b", "delta", "ratio",
    "effect_size", "p_adjusted", "n_a", "n_b", "impact", "cause", "cause_label", "sql", "sql_caller", "n_plus_one",
    "headline", "evidence",
]  # fmt: skip
EVIDENCE_COLUMNS = ["kind", "label", "detail", "unit", "mean_a", "mean_b", "delta", "share", "n_plus_one"]
_SITE = re.compile(r"^(?P<path>.*?):(?P<line>\d+)(?:\((?P<name>.*)\))?$")


def short_site(text: Any) -> str:
    """``/srv/app/reports.py:67(load_report_rows)`` -> ``reports.py:67(load_report_rows)`` (a file's basename keeps
    its line and function); anything else unchanged."""
    s = "" if text is None else str(text)
    m = _SITE.match(s)
    if not m or not m.group("path"):
        return s
    base = os.path.basename(m.group("path")) or m.group("path")
    return f"{base}:{m.group('line')}" + (f"({m.group('name')})" if m.group("name") is not None else "")


def cliffs_delta(a: np.ndarray, b: np.ndarray) -> float:
    """Cliff's δ of B over A: P(b > a) − P(b < a), in [−1, 1] (ranks; ties count half)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(a) or not len(b):
        return float("nan")
    ranks = pd.Series(np.concatenate([a, b])).rank().to_numpy()
    u_b = ranks[len(a) :].sum() - len(b) * (len(b) + 1) / 2
    return float(2.0 * u_b / (len(a) * len(b)) - 1.0)


def _pvalues(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Two-sided Mann–Whitney p per pair (NaN when a side is empty or every value is equal)."""
    out = np.full(len(pairs), np.nan)
    for i, (a, b) in enumerate(pairs):
        if len(a) and len(b) and np.ptp(np.concatenate([a, b])) > 0:
            _, p = mannwhitney_sorted(np.sort(a)[None, :], np.sort(b)[None, :])
            out[i] = float(np.asarray(p).ravel()[0])
    return out


def findings(
    ps: ProfileData,
    *,
    split_by: str = "run",
    values: tuple[Any, Any] | None = None,
    alpha: float = 0.05,
    min_change: float = 0.10,
    min_growth: float = 256 * 1024,
    min_repeats: int = 10,
    n_evidence: int = 3,
    evidence: bool = True,
) -> pd.DataFrame:
    """What changed between the two values of ``split_by`` (A = before, B = after; see :func:`diff`), per task,
    ranked, with the functions, SQL statements and allocation sites that account for it (module docstring).

    Columns (``FINDING_COLUMNS``): ``rank``, ``task_name``, ``kind`` (time / memory), ``direction`` (slower /
    faster / grows / shrinks), ``measure`` (the profiles column compared) and ``unit`` (s or bytes), per invocation
    ``mean_a, mean_b, delta, ratio``, ``effect_size`` (Cliff's δ of B over A), ``p_adjusted`` (BH over the tasks),
    ``n_a, n_b`` (invocations), ``impact`` (|delta| × n_b), ``cause`` (short label of the application function
    that explains the change, or None) and ``cause_label`` (its full label), ``sql`` / ``sql_caller`` /
    ``n_plus_one`` (the statement whose executions changed most, the line that issued it, whether it repeats ≥
    ``min_repeats`` times in one invocation), ``headline`` (one sentence) and ``evidence`` (a list of dicts with
    ``EVIDENCE_COLUMNS``; :func:`findings_evidence` makes it a frame).  ``evidence=False`` skips the evidence (the
    same findings, ranks and numbers; no cause, SQL or evidence): a quick first answer.
    """
    p = ps.profiles
    if split_by not in p.columns:
        raise ColumnNotFound(f"findings(split_by={split_by!r}): no such column in profiles")
    side_a, side_b, va, vb = _split(ps, split_by, values)
    if "task_name" not in p.columns or not len(side_a.profiles) or not len(side_b.profiles):
        return pd.DataFrame(columns=FINDING_COLUMNS)
    measure = duration_column(p)
    alloc = _allocation_rows(ps) if evidence else pd.DataFrame()
    rows: list[dict[str, Any]] = []
    # ------------------------------------------------------------------------------------------------ time
    tasks = diff(ps, split_by=split_by, values=(va, vb), by="task_name",
                 metric="wall_s" if measure == "wall_s" else "tottime", alpha=alpha, min_change=min_change)  # fmt: skip
    ta, tb = side_a.profiles, side_b.profiles
    key_a, key_b = group_key(ta["task_name"]).astype(str), group_key(tb["task_name"]).astype(str)
    for t in tasks.itertuples(index=False):
        if t.status not in ("slower", "faster"):
            continue
        task = str(t.label)
        a_vals = ta.loc[(key_a == task).to_numpy(), measure].to_numpy(dtype=float)
        b_vals = tb.loc[(key_b == task).to_numpy(), measure].to_numpy(dtype=float)
        items: list[dict[str, Any]] = []
        if evidence:
            sub = ps.where((task_key(p) == task).to_numpy())  # the task's runs, or its publishes
            items = _function_evidence(sub, split_by, (va, vb), float(t.delta), n_evidence)
            items += _sql_evidence(sub, split_by, (va, vb), float(t.delta), n_evidence, min_repeats)
            items += _allocation_evidence(alloc, _sides(sub, split_by, (va, vb)), 0.0, 2, min_size=64 * 1024)
        rows.append(_row(task, "time", str(t.status), measure, "s", float(t.mean_a), float(t.mean_b),
                         float(t.p_adjusted), a_vals, b_vals, items))  # fmt: skip
    # ---------------------------------------------------------------------------------------------- memory
    if {"memory_rss_before", "memory_rss_after"} <= set(p.columns):
        grow_a = (ta["memory_rss_after"] - ta["memory_rss_before"]).astype("float64")
        grow_b = (tb["memory_rss_after"] - tb["memory_rss_before"]).astype("float64")
        names, pairs = [], []
        for task in sorted(set(key_a) & set(key_b)):
            a = grow_a[(key_a == task).to_numpy()].dropna().to_numpy()
            b = grow_b[(key_b == task).to_numpy()].dropna().to_numpy()
            if len(a) and len(b):  # tasks with readings on both sides (never a publish: it has no RSS reading)
                names.append(task)
                pairs.append((a, b))
        praw = _pvalues(pairs)
        padj = bh_adjust(praw) if len(praw) else praw
        for task, (a, b), pa in zip(names, pairs, padj, strict=True):
            if not len(a) or not len(b) or np.isnan(pa) or pa > alpha:
                continue
            mean_a, mean_b = float(a.mean()), float(b.mean())
            if abs(mean_b - mean_a) < min_growth:
                continue
            items = []
            if evidence:
                ids = _sides(ps.where((task_key(p) == task).to_numpy()), split_by, (va, vb))
                items = _allocation_evidence(alloc, ids, mean_b - mean_a, n_evidence,
                                             min_size=0.01 * abs(mean_b - mean_a))  # fmt: skip
                items = _site_cause(ps, items) + items
            rows.append(_row(task, "memory", "grows" if mean_b > mean_a else "shrinks", "rss_growth", "bytes",
                             mean_a, mean_b, float(pa), a, b, items))  # fmt: skip
    if not rows:
        return pd.DataFrame(columns=FINDING_COLUMNS)
    out = pd.DataFrame(rows)
    out["_k"] = (out["kind"] != "time").astype(int)
    out = out.sort_values(["_k", "impact"], ascending=[True, False], kind="stable").reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    return out[FINDING_COLUMNS]


def _row(task: str, kind: str, direction: str, measure: str, unit: str, mean_a: float, mean_b: float,
         p_adj: float, a: np.ndarray, b: np.ndarray, evidence: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    delta = mean_b - mean_a
    cause = next((e for e in evidence if e["kind"] == "cause"), None)
    sql = next((e for e in evidence if e["kind"] == "sql"), None)
    row = {
        "task_name": task, "kind": kind, "direction": direction, "measure": measure, "unit": unit,
        "mean_a": mean_a, "mean_b": mean_b, "delta": delta, "ratio": mean_b / mean_a if mean_a > 0 else np.nan,
        "effect_size": cliffs_delta(a, b), "p_adjusted": p_adj, "n_a": len(a), "n_b": len(b),
        "impact": abs(delta) * len(b),
        "cause": cause["label"] if cause else None, "cause_label": cause["detail"] if cause else None,
        "sql": sql["detail"] if sql else None, "sql_caller": sql["label"] if sql else None,
        "n_plus_one": bool(sql["n_plus_one"]) if sql else False, "evidence": evidence,
    }  # fmt: skip
    row["headline"] = headline(row)
    return row


def headline(row: dict[str, Any] | pd.Series) -> str:
    """One sentence for a finding: what changed, by how much, how sure, and its first causes."""
    val = fmt.seconds if row["unit"] == "s" else fmt.nbytes
    p = fmt.value(row["p_adjusted"], "pvalue")
    p = f"p{p}" if p.startswith("<") else f"p={p}"
    if row["kind"] == "time":
        text = (f"{row['task_name']} {row['direction']}: {val(row['mean_a'])} → {val(row['mean_b'])} per task "
                f"({fmt.value(row['ratio'], 'ratio')}, {p}, δ={row['effect_size']:+.2f})")  # fmt: skip
    else:
        text = (f"{row['task_name']} {row['direction']} the worker's memory: {val(row['mean_a'])} → "
                f"{val(row['mean_b'])} RSS per task ({p}, δ={row['effect_size']:+.2f})")  # fmt: skip
    parts = []
    for e in row["evidence"]:
        if e["kind"] == "cause":
            parts.append(f"in {e['label']} ({_signed(e['delta'], e['unit'])})")
        elif e["kind"] == "sql" and not any(x.startswith("SQL") for x in parts):
            parts.append(f"SQL from {e['label']} {_signed(e['delta'], 'count')} per task"
                         + (" (N+1)" if e["n_plus_one"] else ""))  # fmt: skip
        elif e["kind"] == "allocation" and row["kind"] == "memory" and len(parts) < 2:
            parts.append(f"allocated at {e['label']} ({_signed(e['delta'], 'bytes')})")
    return text + (": " + "; ".join(parts) if parts else "")


def _signed(v: float, unit: str) -> str:
    sign = "+" if v > 0 else ""
    if unit == "s":
        return sign + fmt.seconds(v)
    if unit == "bytes":
        return sign + fmt.nbytes(v)
    return sign + fmt.value(v, "number")


# ------------------------------------------------------------------------------------------------- evidence
def _function_evidence(sub: ProfileData, split_by: str, values: tuple[Any, Any], delta: float,
                       n: int) -> list[dict[str, Any]]:  # fmt: skip
    d = diff(sub, split_by=split_by, values=values, stratify=None, metric="tottime")
    if not len(d):
        return []
    funcs = sub.functions.set_index("label")
    kind = d["label"].map(funcs["kind"]) if "kind" in funcs else pd.Series("", index=d.index)
    # the task framework and celerylab's capture (category "celery") are instrumentation, never the cause
    cats = function_categories(sub).astype(str)
    category = d["label"].map(funcs["func_id"]).map(cats).astype(object)
    is_app = (kind.astype(str) == "app").to_numpy() & (category != "celery").to_numpy()
    out: list[dict[str, Any]] = []
    sign = np.sign(delta)
    # the cause: the deepest application function that explains at least half of the task's change
    app = d.loc[is_app & (np.sign(d["cum_delta"]) == sign).to_numpy()]
    if len(app):
        big = app.loc[app["cum_delta"].abs() >= 0.5 * abs(delta)]
        pick = big.sort_values("cum_mean_b" if sign > 0 else "cum_mean_a").iloc[0] if len(big) else \
            app.reindex(app["cum_delta"].abs().sort_values(ascending=False).index).iloc[0]  # fmt: skip
        out.append(_item("cause", _short_function(funcs, str(pick["label"])), str(pick["label"]), "s",
                         pick["cum_mean_a"], pick["cum_mean_b"], pick["cum_delta"], delta))  # fmt: skip
    moved = d.loc[(d["status"].isin(["slower", "faster", "new", "gone"])) & (np.sign(d["delta"]) == sign)]
    for r in moved.head(n).itertuples(index=False):
        out.append(_item("function", _short_function(funcs, str(r.label)), str(r.label), "s", r.mean_a, r.mean_b,
                         r.delta, delta))  # fmt: skip
    return out


def _short_function(funcs: pd.DataFrame, label: str) -> str:
    """``module.name:line`` (``name`` alone for built-ins)."""
    if label not in funcs.index:
        return short_site(label)
    f = funcs.loc[label]
    if isinstance(f, pd.DataFrame):
        f = f.iloc[0]
    line = int(f["line"]) if pd.notna(f["line"]) else 0
    return f"{f['module']}.{f['name']}:{line}" if line and f["module"] else str(f["name"])


def _per_invocation(rows: pd.DataFrame, side_ids: tuple[np.ndarray, np.ndarray], key: list[str],
                    cols: list[str]) -> pd.DataFrame:  # fmt: skip
    """Sum ``cols`` per key and side, divided by the side's invocations: ``<key>, <col>_a, <col>_b``."""
    frames = []
    for tag, ids in zip("ab", side_ids, strict=True):
        part = rows.loc[rows["profile_id"].isin(ids)]
        g = part.groupby(key, sort=False, dropna=False)[cols].sum() / max(len(ids), 1)
        frames.append(g.add_suffix(f"_{tag}"))
    return pd.concat(frames, axis=1).fillna(0.0).reset_index()


def _sides(sub: ProfileData, split_by: str, values: tuple[Any, Any]) -> tuple[np.ndarray, np.ndarray]:
    p = sub.profiles
    col = p[split_by].astype(object)
    return (p.loc[(col == values[0]).to_numpy(), "profile_id"].to_numpy(),
            p.loc[(col == values[1]).to_numpy(), "profile_id"].to_numpy())  # fmt: skip


def _sql_evidence(sub: ProfileData, split_by: str, values: tuple[Any, Any], delta: float, n: int,
                  min_repeats: int) -> list[dict[str, Any]]:  # fmt: skip
    s = sub.sql
    if not len(s):
        return []
    ids = _sides(sub, split_by, values)
    rows = pd.DataFrame({
        "profile_id": s["profile_id"].to_numpy(),
        "sql": [normalize_sql(x) for x in s["sql"].astype(object).fillna("")],
        "caller": [str(c[0]) if isinstance(c, list | tuple | np.ndarray) and len(c) else "" for c in s["callers"]],
        "count": s["count"].astype("float64").fillna(0.0).to_numpy(),
        "time_s": s["time_s"].astype("float64").fillna(0.0).to_numpy(),
    })  # fmt: skip
    per = _per_invocation(rows, ids, ["sql", "caller"], ["count", "time_s"])
    per["d_count"] = per["count_b"] - per["count_a"]
    per["d_time"] = per["time_s_b"] - per["time_s_a"]
    # the N+1 flag: executions of the statement within one invocation of side B (A when it got faster)
    one = rows.loc[rows["profile_id"].isin(ids[1] if delta > 0 else ids[0])]
    most = one.groupby(["sql", "caller"], sort=False)["count"].max()
    per["max_one"] = [most.get((q, c), 0.0) for q, c in zip(per["sql"], per["caller"], strict=True)]
    sign = np.sign(delta) or 1.0
    per = per.loc[np.sign(per["d_count"]) == sign]
    per = per.reindex(per["d_count"].abs().sort_values(ascending=False, kind="stable").index).head(n)
    return [
        _item("sql", short_site(r.caller) or "(no application frame)", str(r.sql), "count", r.count_a, r.count_b,
              r.d_count, None, n_plus_one=bool(r.max_one >= min_repeats), time=(r.time_s_a, r.time_s_b))
        for r in per.itertuples(index=False)
    ]  # fmt: skip


def _site_cause(ps: ProfileData, evidence: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The function around the first allocation site (same file, the last ``def`` line at or above the site's
    line), as the memory finding's cause."""
    site = next((e for e in evidence if e["kind"] == "allocation"), None)
    if site is None:
        return []
    m = _SITE.match(site["detail"])
    if not m:
        return []
    f = ps.functions
    cand = f.loc[(f["file"].astype(str) == m.group("path")).to_numpy() & (f["line"] <= int(m.group("line"))).to_numpy()]
    if not len(cand):
        return []
    best = cand.sort_values("line").iloc[-1]
    return [{**site, "kind": "cause", "label": _short_function(f.set_index("label"), str(best["label"])),
             "detail": str(best["label"])}]  # fmt: skip


def _allocation_rows(ps: ProfileData) -> pd.DataFrame:
    a = ps.allocations
    return pd.DataFrame({"profile_id": a["profile_id"].to_numpy(),
                         "site": a["file"].astype(str) + ":" + a["line"].astype("Int64").astype(str),
                         "size": a["size"].astype("float64").to_numpy()})  # fmt: skip


def _allocation_evidence(rows: pd.DataFrame, ids: tuple[np.ndarray, np.ndarray], delta: float, n: int, *,
                         min_size: float) -> list[dict[str, Any]]:  # fmt: skip
    rows = rows.loc[rows["profile_id"].isin(np.concatenate(ids))]
    if not len(rows):
        return []
    per = _per_invocation(rows, ids, ["site"], ["size"])
    per["d"] = per["size_b"] - per["size_a"]
    if delta:
        per = per.loc[np.sign(per["d"]) == np.sign(delta)]
    per = per.loc[per["d"].abs() >= min_size]
    per = per.reindex(per["d"].abs().sort_values(ascending=False, kind="stable").index).head(n)
    return [_item("allocation", short_site(r.site), str(r.site), "bytes", r.size_a, r.size_b, r.d, delta or None)
            for r in per.itertuples(index=False)]  # fmt: skip


def _item(kind: str, label: str, detail: str, unit: str, mean_a: Any, mean_b: Any, d: Any, total: float | None,
          *, n_plus_one: bool = False, time: tuple[float, float] | None = None) -> dict[str, Any]:  # fmt: skip
    share = float(d) / total if total else np.nan
    item = {"kind": kind, "label": label, "detail": detail, "unit": unit, "mean_a": float(mean_a),
            "mean_b": float(mean_b), "delta": float(d), "share": share, "n_plus_one": n_plus_one}  # fmt: skip
    if time is not None:
        item["time_a"], item["time_b"] = float(time[0]), float(time[1])
    return item


def findings_evidence(found: pd.DataFrame) -> pd.DataFrame:
    """One row per evidence item of every finding: ``rank, task_name`` then ``EVIDENCE_COLUMNS``."""
    rows = [{"rank": r["rank"], "task_name": r["task_name"], **{k: e.get(k) for k in EVIDENCE_COLUMNS}}
            for _, r in found.iterrows() for e in r["evidence"]]  # fmt: skip
    return pd.DataFrame(rows, columns=["rank", "task_name", *EVIDENCE_COLUMNS])


__all__ = ["EVIDENCE_COLUMNS", "FINDING_COLUMNS", "cliffs_delta", "findings", "findings_evidence", "short_site"]
