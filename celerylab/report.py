"""Self-contained HTML reports: compute the sections first, then render them.

* :func:`build_report` (a ProfileSet) and :func:`build_diff_report` (a :func:`celerylab.diff` result) compute a
  :class:`Report`: plain data — tables as DataFrames whose numbers stay numbers, plotly figures, the call-graph
  SVG.  Nothing in them is formatted or escaped yet.
* :func:`render_html` turns a Report into one HTML page: plotly.js inlined once, each figure's JSON in an inert
  ``<script type="application/json">`` block, a single bootstrap script that draws them, the call graph as
  sanitised inline SVG.  Every name that reaches the page is HTML-escaped (and escaped for plotly's own markup in
  chart labels), and a Content-Security-Policy admits only the two scripts of the page (by hash): a function named
  ``<script>alert(1)</script>`` is shown literally and runs nothing.
* :func:`write_report` / :func:`diff_report` do both and write the file; ``ProfileSet.report(path)`` calls
  :func:`write_report`.

Every number cell carries its raw value in ``data-value`` so that scripts (and tests) can read the numbers back.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import CelerylabError

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from .profileset import ProfileSet

# ------------------------------------------------------------------------------------------------- the data model
#: column format names understood by the renderer
FORMATS = ("text", "int", "seconds", "number", "percent", "ratio", "pvalue", "bytes", "datetime")


@dataclass
class Table:
    """A DataFrame to show; ``formats`` maps column -> one of :data:`FORMATS` (default: by dtype)."""

    frame: pd.DataFrame
    formats: dict[str, str] = field(default_factory=dict)
    caption: str = ""
    id: str = ""

    def format_of(self, col: str) -> str:
        if col in self.formats:
            return self.formats[col]
        dtype = self.frame[col].dtype
        if pd.api.types.is_bool_dtype(dtype):
            return "text"
        if pd.api.types.is_integer_dtype(dtype):
            return "int"
        if pd.api.types.is_float_dtype(dtype):
            return "number"
        if pd.api.types.is_datetime64_any_dtype(dtype):
            return "datetime"
        return "text"


@dataclass
class Figure:
    """A plotly figure with a caption."""

    figure: go.Figure
    caption: str = ""


@dataclass
class Section:
    """One part of a report: text, tables, figures and optional inline SVG, in that order."""

    id: str
    title: str
    intro: str = ""
    items: list[Table | Figure | Svg | Note] = field(default_factory=list)


@dataclass
class Svg:
    """SVG markup (e.g. from Graphviz) to embed; sanitised by the renderer, never trusted."""

    markup: str
    caption: str = ""


@dataclass
class Note:
    """A line of text; ``level`` is ``info`` or ``warning``."""

    text: str
    level: str = "info"


@dataclass
class Report:
    """Everything a report shows, computed, not yet rendered."""

    title: str
    meta: list[tuple[str, Any]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def section(self, id: str) -> Section:
        for s in self.sections:
            if s.id == id:
                return s
        raise KeyError(f"report has no section {id!r}; sections: {[s.id for s in self.sections]}")


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
    ps: ProfileSet,
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
    rep.sections.append(_summary_section(ps))
    rep.sections.append(_top_section(ps, top_n, max_tasks))
    rep.sections.append(_distribution_section(ps))
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


def _summary_section(ps: ProfileSet) -> Section:
    from .charts.overview import task_totals

    tasks = ps.task_summary()
    fmts = {c: "seconds" for c in tasks.columns if c.endswith("_s")}
    items: list[Any] = [Table(tasks, fmts, caption="Tasks, by summed wall time", id="task-summary")]
    if len(tasks) and "total_s" in tasks:
        items.append(Figure(task_totals(tasks), "Wall time summed per task"))
    return Section(
        "summary", "Summary", "One row per task name; wall time from the sidecars (else profiled time).", items
    )


def _task_order(ps: ProfileSet, max_tasks: int) -> list[Any]:
    t = ps.task_summary()
    if not len(t) or "task_name" not in ps.profiles:
        return []
    return t["task_name"].head(max_tasks).tolist()


def _top_section(ps: ProfileSet, top_n: int, max_tasks: int) -> Section:
    from .charts.functions import top_functions

    items: list[Any] = []
    overall = ps.top(top_n, by="tottime")
    items.append(Table(overall[TOP_COLUMNS], TOP_FORMATS, caption=f"All tasks: top {top_n} by own time", id="top-all"))
    items.append(Figure(top_functions(overall, value="tottime"), "All tasks: own time per function"))
    names = _task_order(ps, max_tasks)
    if len(names) > 1 or (names and names[0] != "(unknown)"):
        tn = ps.profiles["task_name"].astype(object)
        for name in names:
            mask = tn.isna() if name == "(unknown)" else (tn == name)
            sub = ps.where(mask.to_numpy())
            t = sub.top(top_n, by="tottime")
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


def _distribution_section(ps: ProfileSet) -> Section:
    from .charts.overview import task_durations, task_timeline

    p = ps.profiles
    runs = p["run"].dropna().nunique() if "run" in p else 0
    items: list[Any] = [
        Figure(
            task_durations(p, color="run" if runs > 1 else None),
            "Duration of every profiled task, per task name" + (" and run" if runs > 1 else ""),
        )
    ]
    col = "wall_s" if "wall_s" in p and p["wall_s"].notna().any() else "total_tt"
    key = p["task_name"].astype(object).fillna("(unknown)") if "task_name" in p else pd.Series("(all)", index=p.index)
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


def _db_section(ps: ProfileSet, top_n: int) -> Section:
    from .analysis import db_hotspots, db_time, n_plus_one
    from .charts.hotspots import sql_statements

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


def _memory_section(ps: ProfileSet, top_n: int) -> Section:
    from .analysis import allocation_sites as sites_of
    from .analysis import memory_by_task, memory_hotspots
    from .charts.hotspots import allocation_sites, memory_growth

    sec = Section(
        "memory",
        "Memory hotspots",
        "RSS growth per task run, worker processes whose RSS keeps growing (leak suspects) and the top allocation "
        "sites (tracemalloc).",
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
        sec.items.append(Table(workers[cols].head(top_n), fm, caption=caption, id="memory-workers"))
    sites = sites_of(ps)
    if len(sites):
        sites = sites.head(top_n)
        fm = {"size": "bytes", "size_mean": "bytes", "count": "int", "n_profiles": "int", "line": "int"}
        sec.items.append(Table(sites, fm, caption="Top allocation sites", id="memory-sites"))
        sec.items.append(Figure(allocation_sites(sites), "Allocated bytes per source line"))
    if not sec.items:
        sec.items.append(Note("No memory data was captured for these profiles."))
    return sec


def _callgraph_section(ps: ProfileSet, options: Any, warnings: list[str]) -> Section:
    from .callgraph import CallgraphError, callgraph_svg

    sec = Section(
        "callgraph",
        "Call graph",
        "Merged over every profile (gprof2dot + Graphviz); nodes: total % "
        "(own %) and calls. Small functions and calls are pruned.",
    )
    try:
        sec.items.append(Svg(callgraph_svg(ps, options)))
    except CallgraphError as e:
        warnings.append(str(e))
        sec.items.append(Note(f"Call graph not drawn: {e}", "warning"))
    return sec


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
        raise ValueError(f"diff report: the diff frame lacks {', '.join(missing)}; columns are {list(diff.columns)}")
    return {k: v for k, v in roles.items() if v is not None}


def build_diff_report(
    diff: pd.DataFrame, *, title: str | None = None, a_name: str = "A", b_name: str = "B", top_n: int = 40
) -> Report:
    """Compute a comparison report from a :func:`celerylab.diff` frame (ranked by contribution to the change)."""
    from .charts.diff import diff_changes, diff_volcano

    if not isinstance(diff, pd.DataFrame):
        raise TypeError(f"diff report: expected the DataFrame celerylab.diff() returns, not {type(diff).__name__}")
    roles = _diff_columns(diff)
    st = diff[roles["status"]].astype(str)
    counts = st.value_counts()
    meta: list[tuple[str, Any]] = [("A", a_name), ("B", b_name), ("functions compared", len(diff))]
    meta += [(k, int(counts.get(k, 0))) for k in ("slower", "faster", "new", "gone", "same")]
    rep = Report(title=title or f"celerylab comparison: {a_name} → {b_name}", meta=meta)
    sig = diff.loc[st != "same"].reset_index(drop=True)
    fm = _diff_formats(diff)
    changes = Section(
        "changes",
        "Significant changes",
        "Ranked by contribution to the total change (B − A); status from the per-invocation statistics.",
    )
    if len(sig):
        changes.items.append(
            Table(
                sig.head(top_n),
                fm,
                caption=f"{min(len(sig), top_n)} of {len(sig)} significant changes",
                id="diff-significant",
            )
        )
        changes.items.append(
            Figure(
                diff_changes(sig, value=roles["delta"], label=roles["label"], status=roles["status"], n=top_n),
                "Change per function",
            )
        )
    else:
        changes.items.append(Note("No significant change between A and B."))
    rep.sections.append(changes)
    if "ratio" in roles and "p_value" in roles:
        rep.sections.append(
            Section(
                "volcano",
                "Size against significance",
                items=[
                    Figure(
                        diff_volcano(
                            diff,
                            ratio=roles["ratio"],
                            p_value=roles["p_value"],
                            label=roles["label"],
                            status=roles["status"],
                        ),
                        "log2 ratio against −log10 p",
                    )
                ],
            )
        )
    rep.sections.append(
        Section(
            "all",
            "All functions",
            items=[
                Table(
                    diff.head(500).reset_index(drop=True),
                    fm,
                    caption=f"First {min(len(diff), 500)} of {len(diff)} rows",
                    id="diff-all",
                )
            ],
        )
    )
    return rep


def _diff_formats(diff: pd.DataFrame) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in diff.columns:
        lc = c.lower()
        if lc in ("p_value", "pvalue", "p", "q_value"):
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


# ---------------------------------------------------------------------------------------------------- rendering
_FIG_BOOT = (
    "(function(){var nodes=document.querySelectorAll('script.celerylab-figure');"
    "for(var i=0;i<nodes.length;i++){var s=nodes[i];var f=JSON.parse(s.textContent);"
    "Plotly.newPlot(document.getElementById(s.getAttribute('data-target')),f.data,f.layout,"
    "{responsive:true,displaylogo:false});}})();"
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#fafbfc}
header{background:#1d2330;color:#fff;padding:16px 28px}header h1{margin:0 0 6px;font-size:22px}
nav{padding:8px 28px;background:#eef1f5;position:sticky;top:0;z-index:5}nav a{margin-right:16px;color:#1d4ed8}
main{padding:8px 28px 40px}section{margin:26px 0;background:#fff;border:1px solid #e3e6ea;border-radius:6px;
padding:10px 18px 18px}h2{font-size:18px}.intro{color:#555}.caption{font-weight:600;margin:14px 0 4px}
table{border-collapse:collapse;font-size:13px;margin:4px 0 10px}th,td{padding:3px 8px;border-bottom:1px solid #eee;
text-align:left;vertical-align:top}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.text{max-width:720px;word-break:break-all}.meta th{color:#cdd3dd;font-weight:400;padding-right:12px;border:0}
.meta td{border:0}.note{color:#555}.warning{color:#a15c00}.figure{width:100%}.svg{overflow:auto;max-height:900px;
border:1px solid #eee}footer{color:#777;font-size:12px;padding:0 28px 20px}
"""

_SVG_ELEMENTS = {
    "svg",
    "g",
    "title",
    "polygon",
    "polyline",
    "path",
    "ellipse",
    "text",
    "tspan",
    "defs",
    "rect",
    "circle",
    "line",
    "linearGradient",
    "radialGradient",
    "stop",
}
_SVG_ATTRS = {
    "id",
    "class",
    "width",
    "height",
    "viewBox",
    "transform",
    "fill",
    "stroke",
    "stroke-width",
    "stroke-dasharray",
    "points",
    "d",
    "cx",
    "cy",
    "rx",
    "ry",
    "r",
    "x",
    "y",
    "x1",
    "y1",
    "x2",
    "y2",
    "text-anchor",
    "font-family",
    "font-size",
    "font-weight",
    "font-style",
    "opacity",
    "fill-opacity",
    "stroke-opacity",
    "offset",
    "stop-color",
    "stop-opacity",
    "preserveAspectRatio",
    "gradientUnits",
}
_SVG_NS = "http://www.w3.org/2000/svg"


def sanitize_svg(markup: str) -> str:
    """Re-serialise SVG keeping only drawing elements and attributes (whitelists): no scripts, event handlers,
    links, ``foreignObject``, styles or external references survive, and every text is XML-escaped again."""
    text = re.sub(r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<!--.*?-->", "", markup, flags=re.S)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise CelerylabError(f"call graph SVG could not be parsed: {e}") from None

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""

    def clean(el: ET.Element) -> ET.Element | None:
        name = local(el.tag)
        if name not in _SVG_ELEMENTS:
            return None
        out = ET.Element(name)
        for k, v in el.attrib.items():
            if local(k) in _SVG_ATTRS and "url(" not in v.lower() and "javascript" not in v.lower():
                out.set(local(k), v)
        out.text = el.text
        for child in el:
            kept = clean(child)
            if kept is not None:
                out.append(kept)
                kept.tail = child.tail
            elif local(child.tag) == "a":  # graphviz wraps nodes in <a> for tooltips: keep the drawing, drop the link
                for grand in child:
                    g = clean(grand)
                    if g is not None:
                        out.append(g)
        return out

    cleaned = clean(root)
    if cleaned is None:
        raise CelerylabError("call graph SVG has no <svg> root")
    cleaned.set("xmlns", _SVG_NS)
    return ET.tostring(cleaned, encoding="unicode", short_empty_elements=True)


def _fmt(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return "—"
    try:
        if fmt == "int":
            return f"{int(value):,}"
        if fmt == "seconds":
            v = float(value)
            if v == 0:
                return "0"
            a = abs(v)
            return f"{v:.4g} s" if a >= 1 else f"{v * 1e3:.3g} ms" if a >= 1e-3 else f"{v * 1e6:.3g} µs"
        if fmt == "number":
            return f"{float(value):.4g}"
        if fmt == "percent":
            return f"{float(value) * 100:.1f}%"
        if fmt == "ratio":
            v = float(value)
            return "∞" if math.isinf(v) else f"{v:.3g}×"
        if fmt == "pvalue":
            v = float(value)
            return f"{v:.2g}" if v >= 1e-4 else "<0.0001"
        if fmt == "bytes":
            v = float(value)
            for unit in ("B", "KiB", "MiB", "GiB"):
                if abs(v) < 1024 or unit == "GiB":
                    return f"{v:.4g} {unit}" if unit != "B" else f"{int(v):,} B"
                v /= 1024
        if fmt == "datetime":
            return pd.Timestamp(value).isoformat(sep=" ")
    except (TypeError, ValueError, OverflowError):
        pass
    if isinstance(value, list | tuple | np.ndarray):
        return ", ".join(map(str, value))
    return str(value)


def _raw(value: Any) -> str | None:
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return repr(float(value)) if not math.isnan(value) else "nan"
    return None


def _render_table(t: Table) -> str:
    esc = html.escape
    cols = list(t.frame.columns)
    fmts = [t.format_of(c) for c in cols]
    head = "".join(f"<th>{esc(str(c))}</th>" for c in cols)
    rows = []
    for r in t.frame.itertuples(index=False, name=None):
        cells = []
        for v, f in zip(r, fmts):
            raw = _raw(v) if f != "text" else None
            if raw is not None:
                cells.append(f'<td class="num" data-value="{esc(raw)}">{esc(_fmt(v, f))}</td>')
            else:
                cells.append(f'<td class="text">{esc(_fmt(v, f))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cap = f'<div class="caption">{esc(t.caption)}</div>' if t.caption else ""
    tid = f' id="{esc(t.id)}"' if t.id else ""
    return f"{cap}<table{tid}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figure_json(fig: go.Figure) -> str:
    # plotly escapes "<", ">" and "/" already; do it again so nothing can close the <script> element
    text = fig.to_json()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _script_hash(code: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii") + "'"


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (see the module docstring for what makes it safe)."""
    from plotly.offline import get_plotlyjs

    esc = html.escape
    figures: list[tuple[str, str]] = []
    body: list[str] = []
    for sec in report.sections:
        parts = [f'<section id="{esc(sec.id)}"><h2>{esc(sec.title)}</h2>']
        if sec.intro:
            parts.append(f'<p class="intro">{esc(sec.intro)}</p>')
        for item in sec.items:
            if isinstance(item, Table):
                parts.append(_render_table(item))
            elif isinstance(item, Figure):
                fid = f"celerylab-fig-{len(figures)}"
                figures.append((fid, _figure_json(item.figure)))
                if item.caption:
                    parts.append(f'<div class="caption">{esc(item.caption)}</div>')
                parts.append(f'<div class="figure" id="{fid}"></div>')
            elif isinstance(item, Svg):
                if item.caption:
                    parts.append(f'<div class="caption">{esc(item.caption)}</div>')
                parts.append(f'<div class="svg">{sanitize_svg(item.markup)}</div>')
            elif isinstance(item, Note):
                parts.append(f'<p class="{"warning" if item.level == "warning" else "note"}">{esc(item.text)}</p>')
        parts.append("</section>")
        body.append("".join(parts))
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in report.sections)
    meta = "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(_fmt_meta(v))}</td></tr>" for k, v in report.meta)
    scripts = ""
    hashes: list[str] = []
    if figures:
        plotly_js = get_plotlyjs()
        hashes = [_script_hash(plotly_js), _script_hash(_FIG_BOOT)]
        data = "".join(
            f'<script type="application/json" class="celerylab-figure" data-target="{fid}">{js}</script>'
            for fid, js in figures
        )
        scripts = f"<script>{plotly_js}</script>{data}<script>{_FIG_BOOT}</script>"
    csp = (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
        f"script-src {' '.join(hashes) if hashes else chr(39) + 'none' + chr(39)}"
    )
    generated = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    from . import __version__

    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="celerylab {esc(__version__)}">'
        f"<title>{esc(report.title)}</title><style>{_CSS}</style></head><body>"
        f'<header><h1>{esc(report.title)}</h1><table class="meta">{meta}</table></header>'
        f"<nav>{nav}</nav><main>{''.join(body)}</main>"
        f"<footer>Generated {esc(generated)} by celerylab {esc(__version__)}.</footer>{scripts}</body></html>\n"
    )


def _fmt_meta(v: Any) -> str:
    if isinstance(v, int | np.integer) and not isinstance(v, bool):
        return f"{int(v):,}"
    if isinstance(v, pd.Timestamp):
        return v.isoformat(sep=" ")
    return str(v)


# ------------------------------------------------------------------------------------------------------ writing
def _write(path: str | os.PathLike[str], text: str) -> str:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{path}: folder {folder} does not exist")
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def write_report(ps: ProfileSet, path: str | os.PathLike[str], **options: Any) -> str:
    """Build and write the HTML report of ``ps`` to ``path``; returns the path (options: :func:`build_report`)."""
    return _write(path, render_html(build_report(ps, **options)))


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
            import celerylab as cl

            from .profileset import ProfileSet

            a, b = (x if isinstance(x, ProfileSet) else cl.load(x) for x in diff)  # sources are loaded first
            diff = cl.diff(a, b, **(diff_options or {}))
        else:
            raise TypeError("diff_report: pass a celerylab.diff() DataFrame or a pair (a, b)")
    return _write(path, render_html(build_diff_report(diff, **options)))


__all__ = [
    "Figure",
    "Note",
    "Report",
    "Section",
    "Svg",
    "Table",
    "build_diff_report",
    "build_report",
    "diff_report",
    "render_html",
    "sanitize_svg",
    "write_report",
]
