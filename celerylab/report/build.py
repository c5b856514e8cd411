"""Compute a :class:`~.model.Report` — the sections of a profile report or a comparison report — from the data.

:func:`build_report` (a set of profiles) and :func:`build_diff_report` (a :func:`celerylab.diff` result) compute
plain data: tables as DataFrames whose numbers stay numbers, plotly figures, the call-graph SVG.  Rendering is
:mod:`.render`'s job; :func:`write_report` / :func:`diff_report` do both and write the file
(``ProfileSet.report(path)`` calls :func:`write_report`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from .._io import write_atomic
from ..analysis.drilldown import top
from ..core.data import ProfileData
from ..core.rules import UNKNOWN, duration_column, group_key
from ..errors import CelerylabError, UsageError
from .model import Figure, Note, Report, Section, Svg, Table
from .render import render_html

# --------------------------------------------------------------------------------------------------- computing
TOP_COLUMNS = ["label", "ncalls", "tottime", "cumtime", "tottime_mean", "share", "kind"]
TOP_FORMATS = {
    "ncalls": "int",
    "tottime": "seconds",
    "cumtime": "seconds",
    "tottime_mean": "seconds",
    "share": "percent",
}


def build_report(
    ps: ProfileData,
    *,
    title: str | None = None,
    source: str | None = None,
    top_n: int = 20,
    max_tasks: int = 12,
    callgraph: bool = True,
    callgraph_options: Any = None,
) -> Report:
    """Compute every section of the report of ``ps`` (summary, top functions overall and per task, time
    distributions, DB hotspots, memory hotspots, call graph, load errors)."""
    if not len(ps.profiles):
        detail = f"; {len(ps.errors)} file(s) could not be loaded" if len(ps.errors) else ""
        raise CelerylabError(f"report: no profiles to report on{detail}")
    s = ps.summary()
    meta: list[tuple[str, Any]] = []
    if source:
        meta.append(("source", source))
    meta += [
        ("profiles", s["profiles"]),
        ("tasks", s["tasks"]),
        ("runs", ", ".join(s["runs"]) or "—"),
        ("worker processes", s["workers"]),
        ("functions", s["functions"]),
        ("load errors", s["errors"]),
    ]
    if "first_started" in s:
        meta.append(("first task started", s["first_started"]))
        meta.append(("last task started", s["last_started"]))
    rep = Report(title=title or "celerylab profile report", meta=meta)
    found = _findings_of(ps)
    if found is not None:
        from ..analysis.diff import split_values

        va, vb = split_values(ps.profiles, FINDINGS_SPLIT)
        rep.sections.append(findings_section(found, a_name=f"{FINDINGS_SPLIT} {va}", b_name=f"{FINDINGS_SPLIT} {vb}"))
    rep.sections.append(_summary_section(ps))
    rep.sections.append(_top_section(ps, top_n, max_tasks))
    rep.sections.append(_distribution_section(ps))
    latency = _latency_section(ps)
    if latency is not None:
        rep.sections.append(latency)
    rep.sections.append(_db_section(ps, top_n))
    rep.sections.append(_memory_section(ps, top_n))
    if callgraph:
        rep.sections.append(_callgraph_section(ps, callgraph_options, rep.warnings))
    if len(ps.errors):
        rep.sections.append(
            Section(
                "errors",
                "Files that could not be loaded",
                items=[Table(ps.errors[["path", "reason"]].reset_index(drop=True), id="load-errors")],
            )
        )
    return rep


FINDINGS_SPLIT = "run"
FINDING_SHOWN = ["rank", "task_name", "direction", "mean_a", "mean_b", "ratio", "p_adjusted", "cause", "sql_caller"]
EVIDENCE_SHOWN = ["kind", "label", "mean_a", "mean_b", "delta", "unit"]
SQL_SHOWN = 100  # characters of a statement in the evidence tables


def _findings_of(ps: ProfileData) -> pd.DataFrame | None:
    """The findings of ``ps`` split by run, or None when it does not hold exactly two runs."""
    from ..analysis.findings import findings

    p = ps.profiles
    if FINDINGS_SPLIT not in p.columns or p[FINDINGS_SPLIT].dropna().nunique() != 2:
        return None
    return findings(ps, split_by=FINDINGS_SPLIT)


def findings_section(found: pd.DataFrame, *, a_name: str = "A", b_name: str = "B") -> Section:
    """The report's first section: what changed per task and why (:func:`celerylab.analysis.findings`): the
    headlines, a chart of the time changes, and per finding its evidence."""
    from ..analysis.findings import findings_evidence
    from ..charts.findings import findings_chart

    sec = Section(
        "findings",
        "Findings: what changed, and why",
        f"A = {a_name}, B = {b_name}. Per task: slower/faster (Mann–Whitney U, Benjamini–Hochberg; δ = Cliff's "
        "delta), memory growth per task; each with the application function, SQL statements and allocation sites "
        "that account for the change.",
    )
    if not len(found):
        sec.items.append(Note("No task changed significantly (time or memory)."))
        return sec
    for h in found["headline"]:
        sec.items.append(Note(str(h), level="finding"))
    if (found["kind"] == "time").any():
        sec.items.append(Figure(findings_chart(found), "Red: slower, green: faster; hover a bar for its cause"))
    time_rows = found.loc[found["kind"] == "time", FINDING_SHOWN]
    if len(time_rows):
        time_rows = time_rows.rename(columns={"mean_a": "A (ms)", "mean_b": "B (ms)"})  # one unit per column
        sec.items.append(Table(time_rows.reset_index(drop=True),
                               {"A (ms)": "ms", "B (ms)": "ms", "ratio": "ratio", "p_adjusted": "pvalue"},
                               caption="Time per task (mean per invocation, ms)", id="findings-time"))  # fmt: skip
    mem_rows = found.loc[found["kind"] == "memory", FINDING_SHOWN]
    if len(mem_rows):
        sec.items.append(Table(mem_rows.reset_index(drop=True),
                               {"mean_a": "bytes", "mean_b": "bytes", "ratio": "ratio", "p_adjusted": "pvalue"},
                               caption="RSS growth per task (mean per invocation)", id="findings-memory"))  # fmt: skip
    ev = findings_evidence(found)
    for r in found.itertuples(index=False):
        part = ev.loc[ev["rank"] == r.rank].reset_index(drop=True)
        rows = part[EVIDENCE_SHOWN].copy()
        is_sql = (part["kind"] == "sql").to_numpy()
        rows.loc[is_sql, "label"] = [
            f"{lab}: " + (sql if len(sql) <= SQL_SHOWN else sql[: SQL_SHOWN - 1] + "…") + (" [N+1]" if n1 else "")
            for lab, sql, n1 in zip(part.loc[is_sql, "label"], part.loc[is_sql, "detail"].astype(str),
                                    part.loc[is_sql, "n_plus_one"], strict=True)
        ]  # fmt: skip
        for unit, f in (("s", "seconds"), ("bytes", "bytes"), ("count", "number")):
            m = rows["unit"] == unit
            for c in ("mean_a", "mean_b", "delta"):  # one unit per column: amounts as text in that unit
                rows[c] = rows[c].astype(object)
                rows.loc[m, c] = [_amount_text(v, f) for v in rows.loc[m, c]]
        rows["unit"] = rows["unit"].map(
            {"s": "time per task", "bytes": "bytes per task", "count": "executions per task"}
        )
        sec.items.append(Table(rows, {}, caption=f"{r.rank}. {r.task_name} {r.direction}: evidence",
                               id=f"finding-{r.rank}"))  # fmt: skip
    return sec


def _amount_text(v: Any, f: str) -> str:
    from ..fmt import value

    return value(float(v), f)


def _summary_section(ps: ProfileData) -> Section:
    from ..charts.overview import task_totals

    tasks = ps.task_summary()
    fmts = {c: "seconds" for c in tasks.columns if c.endswith("_s")}
    items: list[Any] = [Table(tasks, fmts, caption="Tasks, by summed wall time", id="task-summary")]
    if len(tasks) and "total_s" in tasks:
        items.append(Figure(task_totals(tasks), "Wall time summed per task"))
    return Section(
        "summary", "Summary", "One row per task name; wall time from the sidecars (else profiled time).", items
    )


def _task_order(ps: ProfileData, max_tasks: int) -> list[Any]:
    t = ps.task_summary()
    if not len(t) or "task_name" not in ps.profiles:
        return []
    return t["task_name"].head(max_tasks).tolist()


def _top_section(ps: ProfileData, top_n: int, max_tasks: int) -> Section:
    from ..charts.functions import top_functions

    items: list[Any] = []
    overall = top(ps, top_n, by="tottime")
    items.append(Table(overall[TOP_COLUMNS], TOP_FORMATS, caption=f"All tasks: top {top_n} by own time", id="top-all"))
    items.append(Figure(top_functions(overall, value="tottime"), "All tasks: own time per function"))
    names = _task_order(ps, max_tasks)
    if len(names) > 1 or (names and names[0] != UNKNOWN):
        tn = ps.profiles["task_name"].astype(object)
        for name in names:
            mask = tn.isna() if name == UNKNOWN else (tn == name)
            sub = ps.where(mask.to_numpy())
            t = top(sub, top_n, by="tottime")
            items.append(
                Table(
                    t[TOP_COLUMNS],
                    TOP_FORMATS,
                    caption=f"Task {name}: top {top_n} by own time ({len(sub)} profiles)",
                    id=f"top-task-{_slug(name)}",
                )
            )
            items.append(Figure(top_functions(t, value="tottime"), f"Task {name}: own time per function"))
    hidden = ps.profiles["task_name"].nunique() - len(names) if "task_name" in ps.profiles else 0
    if hidden > 0:
        items.append(Note(f"{hidden} more task(s) not shown; use ps.where(task_name=...) for those."))
    return Section(
        "top",
        "Top functions",
        "Own time (tottime) summed over the profiles, exactly as pstats merges them; share is of the total own time.",
        items,
    )


def _distribution_section(ps: ProfileData) -> Section:
    from ..charts.overview import task_durations, task_timeline

    p = ps.profiles
    runs = p["run"].dropna().nunique() if "run" in p else 0
    items: list[Any] = [
        Figure(
            task_durations(p, color="run" if runs > 1 else None),
            "Duration of every profiled task, per task name" + (" and run" if runs > 1 else ""),
        )
    ]
    col = duration_column(p)
    key = group_key(p["task_name"]) if "task_name" in p else pd.Series("(all)", index=p.index)
    groups = [key] + ([p["run"].astype(object).fillna("(none)")] if runs > 1 else [])
    q = p.groupby(groups, sort=True)[col]
    dist = pd.DataFrame(
        {
            "profiles": q.size(),
            "min": q.min(),
            "p50": q.median(),
            "p90": q.quantile(0.9),
            "p99": q.quantile(0.99),
            "max": q.max(),
        }
    ).reset_index()
    dist = dist.rename(columns={dist.columns[0]: "task_name"})
    fm = {c: "seconds" for c in ("min", "p50", "p90", "p99", "max")}
    items.append(Table(dist, fm, caption=f"{col} percentiles", id="distribution"))
    if "started_at" in p and p["started_at"].notna().any():
        items.append(Figure(task_timeline(p), "Duration against start time"))
    return Section("distribution", "Time distributions", f"Per-task {col} (seconds).", items)


def _latency_section(ps: ProfileData) -> Section | None:
    """Publish, queue wait and run per task — only when the set holds producer profiles or queue-wait readings."""
    from ..analysis.latency import latency, latency_over_time, queue_wait_episodes
    from ..charts.latency import latency_breakdown, queue_wait_timeline

    lat = latency(ps)
    if not len(lat) or set(lat["stage"]) <= {"run"}:
        return None
    fmts = {c: "seconds" for c in ("mean", "p50", "p95", "p99", "max")}
    items: list[Any] = [Figure(latency_breakdown(lat), "Publish, queue wait and run per task (p50)"),
                        Table(lat, fmts, caption="Per task and stage, in seconds", id="latency")]  # fmt: skip
    over = latency_over_time(ps)
    if len(over) and (over["stage"] == "queue_wait").any():
        items.append(Figure(queue_wait_timeline(over), "Queue wait over time (p95 per minute)"))
    episodes = queue_wait_episodes(ps)
    if len(episodes):
        items.append(Table(episodes, {"p95_max": "seconds", "n": "int"}, caption="Queue-wait episodes (p95 > 1 s)",
                           id="queue-wait-episodes"))  # fmt: skip
    return Section(
        "latency",
        "Latency: publish, queue wait, run",
        "Publish time from producer profiles; queue wait = start of run − max(publish, eta), split into time in the "
        "broker (two hosts' clocks) and time held by the worker (one host's clock); run time from worker profiles.",
        items,
    )


def _db_section(ps: ProfileData, top_n: int) -> Section:
    from ..analysis import db_hotspots, db_time, n_plus_one
    from ..charts.hotspots import sql_statements

    sec = Section(
        "db",
        "DB hotspots",
        "Time inside DB drivers and ORMs per task (from the profiles), and the normalised SQL statements recorded "
        "by the capture side, summed over the set.",
    )
    dbt = db_time(ps)
    dbt = dbt.loc[dbt["db_time"] > 0].reset_index(drop=True)
    if len(dbt):
        cols = ["task_name", "profiles", "db_time", "db_time_mean", "db_time_p95", "db_share", "sql_count_mean",
                "top_db_function"]  # fmt: skip
        fm = {"db_time": "seconds", "db_time_mean": "seconds", "db_time_p95": "seconds", "db_share": "percent",
              "profiles": "int", "sql_count_mean": "number"}  # fmt: skip
        sec.items.append(Table(dbt[cols].head(top_n), fm, caption="Time in DB drivers per task", id="db-time"))
    stm = db_hotspots(ps)
    if not len(stm):
        sec.items.append(Note("No SQL statements were captured for these profiles."))
        return sec
    fm = {"time_s": "seconds", "mean_time_s": "seconds", "count": "int", "n_profiles": "int", "per_task": "number",
          "max_per_task": "int"}  # fmt: skip
    cols = ["sql", "count", "time_s", "mean_time_s", "n_profiles", "per_task", "max_per_task", "task_names", "callers"]
    sec.items.append(Table(stm[cols].head(top_n), fm, caption=f"Top {top_n} statements by total time", id="sql-top"))
    sec.items.append(Figure(sql_statements(stm.head(top_n)), "Query time per statement"))
    n1 = n_plus_one(ps)
    if len(n1):
        cols = ["task_name", "sql", "caller", "profiles", "affected_share", "mean_per_invocation",
                "max_per_invocation", "time_per_invocation"]  # fmt: skip
        fm = {"profiles": "int", "affected_share": "percent", "mean_per_invocation": "number",
              "max_per_invocation": "int", "time_per_invocation": "seconds"}  # fmt: skip
        sec.items.append(
            Table(
                n1[cols].head(top_n),
                fm,
                caption="N+1 suspects: the same statement run 10 or more times in one invocation, with the "
                "application line that issues it",
                id="sql-n-plus-one",
            )
        )
    return sec


def _memory_section(ps: ProfileData, top_n: int) -> Section:
    from ..analysis import allocation_sites as sites_of
    from ..analysis import memory_by_task, memory_hotspots, rss_sequence
    from ..analysis.hotspots import RSS_GROWTH_MARK
    from ..charts.hotspots import allocation_sites, memory_growth, rss_over_tasks

    sec = Section(
        "memory",
        "Memory hotspots",
        "RSS growth per task run, worker processes whose RSS keeps growing (leak suspects), RSS along each "
        "process's task sequence and the top allocation sites (tracemalloc).",
    )
    by_task = memory_by_task(ps)
    if len(by_task):
        sec.items.append(Figure(memory_growth(ps.profiles), "RSS growth per task run"))
        cols = ["task_name", "profiles", "rss_growth_mean", "rss_growth_p95", "rss_growth_total", "grew_share",
                "peak_traced_max"]  # fmt: skip
        fm = {"profiles": "int", "rss_growth_mean": "bytes", "rss_growth_p95": "bytes", "rss_growth_total": "bytes",
              "grew_share": "percent", "peak_traced_max": "bytes"}  # fmt: skip
        sec.items.append(Table(by_task[cols], fm, caption="RSS growth per task name", id="memory-growth"))
        workers = memory_hotspots(ps)
        cols = ["hostname", "pid", "tasks", "rss_first", "rss_last", "growth", "trend", "leak_suspect",
                "suspect_tasks"]  # fmt: skip
        fm = {"pid": "int", "tasks": "int", "rss_first": "bytes", "rss_last": "bytes", "growth": "bytes",
              "trend": "number"}  # fmt: skip
        suspects = int(workers["leak_suspect"].sum())
        caption = (f"Worker processes: {suspects} leak suspect(s) (RSS grows steadily, carried by the named tasks)"
                   if suspects else "Worker processes: no leak suspect")  # fmt: skip
        caption += "; growth sums the tasks' own runs (RSS after − before), first/last are the readings"
        sec.items.append(Table(workers[cols].head(top_n), fm, caption=caption, id="memory-workers"))
        seq = rss_sequence(ps, min_growth=RSS_GROWTH_MARK)
        caption = "RSS after each task along each worker process (marked: the task grew it)"
        sec.items.append(Figure(rss_over_tasks(seq, min_growth=RSS_GROWTH_MARK), caption))
    sites = sites_of(ps)
    if len(sites):
        sites = sites.head(top_n)
        fm = {"size": "bytes", "size_mean": "bytes", "count": "int", "n_profiles": "int", "line": "int"}
        sec.items.append(Table(sites, fm, caption="Top allocation sites", id="memory-sites"))
        sec.items.append(Figure(allocation_sites(sites), "Allocated bytes per source line"))
    if not sec.items:
        sec.items.append(Note("No memory data was captured for these profiles."))
    return sec


CALLGRAPH_INTRO = (
    "Merged over every profile (gprof2dot + Graphviz); nodes: total % (own %) and calls. Small functions and calls "
    "are pruned. The hot path (the heaviest call at each step from the entry function) is drawn thick in purple; "
    "the whole graph fits the page on open, the wheel zooms and a drag pans."
)


def _callgraph_section(ps: ProfileData, options: Any, warnings: list[str]) -> Section:
    from ..callgraph import CallgraphError, callgraph_svg

    sec = Section("callgraph", "Call graph", CALLGRAPH_INTRO)
    try:
        sec.items.append(Svg(callgraph_svg(ps, options), viewer=True))
    except CallgraphError as e:
        warnings.append(str(e))
        sec.items.append(Note(f"Call graph not drawn: {e}", "warning"))
    return sec


def write_callgraph_page(ps: ProfileData, path: str | os.PathLike[str], options: Any = None, *,
                         title: str = "Call graph", timeout: float = 60.0) -> str:  # fmt: skip
    """The call graph of ``ps`` alone as a self-contained HTML page with the viewer (fitted on open, zoom, pan,
    hot path), sanitised and under the report's Content-Security-Policy; returns the path.  A graph that cannot
    be drawn raises :class:`~celerylab.errors.CallgraphError` (nothing is written)."""
    from ..callgraph import callgraph_svg

    svg = callgraph_svg(ps, options, timeout=timeout)
    rep = Report(title=title, meta=[("profiles", len(ps))])
    rep.sections.append(Section("callgraph", "Call graph", CALLGRAPH_INTRO, [Svg(svg, viewer=True)]))
    return write_atomic(path, render_html(rep))


def _slug(text: Any) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]+", "-", str(text)).strip("-").lower() or "x"


# ------------------------------------------------------------------------------------------------- diff reports
def _diff_columns(diff: pd.DataFrame) -> dict[str, str]:
    """Map the roles the renderer needs to columns of a diff frame."""
    cols = set(diff.columns)

    def first(*names: str) -> str | None:
        return next((n for n in names if n in cols), None)

    roles = {
        "label": first("label", "name", "function"),
        "status": first("status"),
        "delta": first("contribution", "delta_total", "delta", "delta_mean"),
        "ratio": first("ratio"),
        "p_value": first("p_value", "pvalue", "p"),
    }
    missing = [r for r in ("label", "status", "delta") if roles[r] is None]
    if missing:
        raise UsageError(f"diff report: the diff frame lacks {', '.join(missing)}; columns are {list(diff.columns)}")
    return {k: v for k, v in roles.items() if v is not None}


#: significant rows shown per task in the comparison report (the rest of the task's rows are folded)
PER_TASK_ROWS = 15
#: rows a task's folded part holds at most (the whole frame is in Python and ``celerylab diff --json``)
FOLDED_ROWS = 200


def build_diff_report(
    diff: pd.DataFrame,
    *,
    title: str | None = None,
    a_name: str = "A",
    b_name: str = "B",
    top_n: int = 25,
    per_task: int = PER_TASK_ROWS,
    findings: pd.DataFrame | None = None,
) -> Report:
    """Compute a comparison report from a :func:`celerylab.diff` frame (ranked by contribution to the change);
    with ``findings`` (:func:`celerylab.analysis.findings` of the same comparison) they are its first section.

    A chart of the ``top_n`` largest changes (``task · function``), then per task (the diff's group column,
    ``task_name`` by default; one block when the diff pools the tasks) a table of its ``per_task`` largest
    significant changes, the rest folded (``<details>``), and the volcano plot.  Times are in milliseconds per
    task invocation, one unit per column; the function column is the short name, the full label its hover."""
    from ..analysis.diff import diff_group_columns
    from ..charts.diff import diff_changes, diff_volcano

    if not isinstance(diff, pd.DataFrame):
        raise TypeError(f"diff report: expected the DataFrame celerylab.diff() returns, not {type(diff).__name__}")
    if per_task < 1:
        raise UsageError(f"diff report: per_task={per_task!r} must be at least 1 (rows shown per task)")
    roles = _diff_columns(diff)
    st = diff[roles["status"]].astype(str)
    counts = st.value_counts()
    groups = diff_group_columns(diff, roles["label"])
    meta: list[tuple[str, Any]] = [("A", a_name), ("B", b_name)]
    meta.append(("compared", "each function within each " + " and ".join(groups) if groups else "all tasks pooled"))
    meta.append(("rows compared", len(diff)))
    meta += [(k, int(counts.get(k, 0))) for k in ("slower", "faster", "new", "gone", "same")]
    rep = Report(title=title or f"celerylab comparison: {a_name} → {b_name}", meta=meta)
    if findings is not None:
        rep.sections.append(findings_section(findings, a_name=a_name, b_name=b_name))
    sig = diff.loc[st != "same"].reset_index(drop=True)
    changes = Section(
        "changes",
        "Significant changes",
        "Ranked by contribution to the change of the mean task time (B − A); times in milliseconds per task "
        "invocation" + (", each function compared within its task" if groups else "") + "; status from the "
        "per-invocation statistics (Mann–Whitney U, Benjamini–Hochberg).  Hover a function for its full name.",
    )
    if len(sig):
        value = "delta" if "delta" in sig.columns else roles["delta"]
        changes.items.append(Figure(diff_changes(sig, value=value, label=roles["label"],
                                                 status=roles["status"], n=top_n),
                                    f"The {min(top_n, len(sig))} largest changes"))  # fmt: skip
        changes.items += _per_group_tables(sig, groups, roles, per_task)
    else:
        changes.items.append(Note("No significant change between A and B."))
    quiet = _groups_without_change(diff, sig, groups)
    if quiet:
        changes.items.append(Note(f"No significant change in: {', '.join(quiet)}."))
    rep.sections.append(changes)
    if "ratio" in roles and "p_value" in roles:
        volcano = diff_volcano(diff, ratio=roles["ratio"], p_value=roles["p_value"], label=roles["label"],
                               status=roles["status"])  # fmt: skip
        rep.sections.append(Section("volcano", "Size against significance",
                                    items=[Figure(volcano, "log2 ratio against −log10 p")]))  # fmt: skip
    rep.sections.append(Section("all", "Every row", items=[Note(
        f"{len(diff):,} rows were compared; every one is in cl.diff(...) in Python and in `celerylab diff --json`."
    )]))  # fmt: skip
    return rep


def _group_names(d: pd.DataFrame, groups: list[str]) -> pd.Series:
    if not groups:
        return pd.Series("all tasks", index=d.index)
    return pd.Series([" · ".join(str(v) for v in r) for r in d[groups].itertuples(index=False)], index=d.index)


def _per_group_tables(sig: pd.DataFrame, groups: list[str], roles: dict[str, str], per_task: int) -> list[Any]:
    """Per group (task), largest total contribution first: its ``per_task`` largest significant rows, the rest
    folded."""
    names = _group_names(sig, groups)
    weight = sig[roles["delta"]].abs().groupby(names, sort=False).sum().sort_values(ascending=False, kind="stable")
    items: list[Any] = []
    used: set[str] = set()
    for name in weight.index:
        part = sig.loc[names == name]
        head, rest = part.head(per_task), part.iloc[per_task : per_task + FOLDED_ROWS]
        slug = f"task-{_slug(name)}" if groups else "significant"
        while slug in used:  # two names of one slug (punctuation only differs)
            slug += "-x"
        used.add(slug)
        fm = _DISPLAY_FORMATS
        items.append(Table(_diff_display(head, roles), fm, caption=f"{name}: {len(head)} of {len(part)} "
                           "significant changes", id=f"diff-{slug}", titles={"function": "label"}))  # fmt: skip
        if len(rest):
            left = len(part) - per_task - len(rest)
            summary = f"{len(part) - per_task} more in {name}" + (
                f" (the next {len(rest)} shown; {left} more in Python)" if left else "")  # fmt: skip
            items.append(Table(_diff_display(rest, roles), fm, id=f"diff-{slug}-more", titles={"function": "label"},
                               collapsed=summary))  # fmt: skip
    return items


def _groups_without_change(diff: pd.DataFrame, sig: pd.DataFrame, groups: list[str]) -> list[str]:
    if not groups:
        return []
    every = _group_names(diff, groups).unique().tolist()
    changed = set(_group_names(sig, groups))
    return sorted(str(g) for g in every if g not in changed)


#: the columns of a diff table in the comparison report, as ``(diff column, shown name)``: each in one unit
#: (milliseconds per task invocation, a ratio, a p-value, invocations); the function's short name with its full
#: label as hover (the hidden ``label`` column)
DIFF_SHOWN = [("function", "function"), ("status", "status"), ("mean_a", "A (ms)"), ("mean_b", "B (ms)"),
              ("delta", "B − A (ms)"), ("ratio", "B / A"), ("contribution", "weighted (ms)"),
              ("p_adjusted", "p adj."), ("n_a", "n A"), ("n_b", "n B"), ("label", "label")]  # fmt: skip
_DISPLAY_FORMATS = {"A (ms)": "ms", "B (ms)": "ms", "B − A (ms)": "ms", "weighted (ms)": "ms", "B / A": "ratio",
                    "p adj.": "pvalue", "n A": "int", "n B": "int", "status": "text"}  # fmt: skip


def _diff_display(d: pd.DataFrame, roles: dict[str, str]) -> pd.DataFrame:
    """Diff rows as the report shows them: the short ``function`` name (``module.name:line``) first, the numbers
    (still numbers, in seconds: the ``ms`` format renders them), the full label for the hover."""
    from ..core.rules import short_label

    out = d.rename(columns={roles["label"]: "label", roles["status"]: "status"}).copy()
    out["label"] = out["label"].astype(str)
    out["function"] = [short_label(x) for x in out["label"]]
    cols = [(c, n) for c, n in DIFF_SHOWN if c in out.columns]
    return pd.DataFrame({n: out[c].to_numpy() for c, n in cols})


def diff_formats(diff: pd.DataFrame) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in diff.columns:
        lc = c.lower()
        if lc in ("p_value", "pvalue", "p", "q_value", "p_adjusted"):
            out[c] = "pvalue"
        elif "ratio" in lc:
            out[c] = "ratio"
        elif lc.endswith("_pct") or lc.startswith("pct") or "percent" in lc:
            out[c] = "number"
        elif pd.api.types.is_float_dtype(diff[c].dtype) and any(
            k in lc for k in ("time", "mean", "median", "delta", "contribution", "_s")
        ):
            out[c] = "seconds"
    return out


# ------------------------------------------------------------------------------------------------------ writing
def write_report(ps: ProfileData, path: str | os.PathLike[str], **options: Any) -> str:
    """Build and write the HTML report of ``ps`` to ``path``; returns the path (options: :func:`build_report`)."""
    return write_atomic(path, render_html(build_report(ps, **options)))


def diff_report(
    diff: pd.DataFrame | Sequence[Any],
    path: str | os.PathLike[str],
    *,
    diff_options: dict[str, Any] | None = None,
    **options: Any,
) -> str:
    """Write a comparison report to ``path``.

    ``diff`` is a :func:`celerylab.diff` result, or a pair ``(a, b)`` of ProfileSets / sources that is passed to
    ``celerylab.diff(a, b, **diff_options)`` first.  Options: :func:`build_diff_report`.
    """
    if not isinstance(diff, pd.DataFrame):
        if isinstance(diff, Sequence) and not isinstance(diff, str) and len(diff) == 2:
            from ..analysis.diff import diff as compare
            from ..core.load import load

            a, b = (x if isinstance(x, ProfileData) else load(x) for x in diff)  # sources are loaded first
            diff = compare(a, b, **(diff_options or {}))
        else:
            raise TypeError("diff_report: pass a celerylab.diff() DataFrame or a pair (a, b)")
    return write_atomic(path, render_html(build_diff_report(diff, **options)))
