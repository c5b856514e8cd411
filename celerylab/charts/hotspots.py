"""DB and memory hotspot figures."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ..errors import ColumnNotFound
from ._style import (
    BAR_AXIS,
    BOX_POINTS,
    CATEGORY_AXIS,
    MEMORY_COLOR,
    SQL_COLOR,
    ZERO_LINE,
    group_labels,
    margin,
    plotly_text,
    titled,
    unique_labels,
)


def _clip(text: object, width: int) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= width else s[: width - 1] + "…"


def sql_statements(df: pd.DataFrame, *, text: str = "sql", value: str = "time_s", width: int = 70,
                   title: str | None = "SQL statements by query time") -> go.Figure:  # fmt: skip
    """Horizontal bars of ``value`` (default summed query time) per normalized SQL statement, largest on top.

    Tick labels are the statements clipped to ``width`` characters; the hover shows the full statement."""
    for c in (text, value):
        if c not in df.columns:
            raise ColumnNotFound(f"sql_statements: no column {c!r}; columns are {list(df.columns)}")
    d = df.reset_index(drop=True)
    ticks = unique_labels([plotly_text(_clip(s, width)) for s in d[text]])
    extra = [c for c in ("count", "n_profiles", "per_task") if c in d.columns]
    custom = [[plotly_text(" ".join(str(s).split()))] + [d[c].iloc[i] for c in extra] for i, s in enumerate(d[text])]
    hover = "<br>".join(
        ["%{customdata[0]}", f"{value}: %{{x:.4~g}}"]
        + [f"{c}: %{{customdata[{k + 1}]:.4~g}}" for k, c in enumerate(extra)]
    )
    fig = go.Figure(
        go.Bar(
            x=d[value].to_numpy(),
            y=ticks,
            orientation="h",
            customdata=custom,
            hovertemplate=hover + "<extra></extra>",
            marker={"color": SQL_COLOR},
        )
    )
    fig.update_layout(
        xaxis_title="query time (s), summed" if value == "time_s" else value,
        yaxis=BAR_AXIS,
        height=max(240, 28 * len(d) + 110),
        margin=margin(r=20),
    )
    return titled(fig, title)


def memory_growth(
    profiles: pd.DataFrame,
    *,
    by: str = "task_name",
    before: str = "memory_rss_before",
    after: str = "memory_rss_after",
    title: str | None = "RSS growth per task run",
) -> go.Figure:
    """RSS growth per task run (``after - before``, in MiB): one box per ``by`` value, every profile a point.

    A task whose box sits above zero on every run keeps memory: a leak suspect."""
    for c in (by, before, after):
        if c not in profiles.columns:
            raise ColumnNotFound(f"memory_growth: no column {c!r} in profiles (no memory data captured?)")
    p = profiles.loc[profiles[before].notna() & profiles[after].notna()]
    growth = (p[after].astype(float) - p[before].astype(float)) / 2**20
    key = group_labels(p[by])
    fig = go.Figure()
    for name, g in growth.groupby(key, sort=True):
        fig.add_trace(
            go.Box(
                y=g.to_numpy(),
                name=plotly_text(name),
                **BOX_POINTS,
                hovertemplate="%{y:.3~f} MiB<extra></extra>",
            )
        )
    fig.add_hline(y=0, line=ZERO_LINE)
    fig.update_layout(
        yaxis_title="RSS growth per task (MiB)",
        showlegend=False,
        height=360,
        xaxis=CATEGORY_AXIS,
        margin=margin(),
    )
    return titled(fig, title)


def allocation_sites(df: pd.DataFrame, *, value: str = "size", site: str | None = None,
                     title: str | None = "Allocation sites still holding memory at task end") -> go.Figure:  # fmt: skip
    """Horizontal bars of allocated bytes (``value``) per source line; ``site`` names a text column, else
    ``file:line`` is built from ``file`` and ``line``."""
    if value not in df.columns:
        raise ColumnNotFound(f"allocation_sites: no column {value!r}; columns are {list(df.columns)}")
    d = df.reset_index(drop=True)
    if site is not None:
        names = d[site].astype(str).tolist()
    else:
        names = [f"{f}:{ln}" for f, ln in zip(d["file"].astype(str), d["line"])]
    ticks = unique_labels([plotly_text(_clip(n, 80)) for n in names])
    fig = go.Figure(
        go.Bar(
            x=d[value].to_numpy() / 2**20,
            y=ticks,
            orientation="h",
            marker={"color": MEMORY_COLOR},
            hovertemplate="%{y}<br>%{x:.3~f} MiB<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis_title="allocated (MiB), summed over profiles",
        yaxis=BAR_AXIS,
        height=max(220, 28 * len(d) + 110),
        margin=margin(r=20),
    )
    return titled(fig, title)


#: the marked tasks (grew RSS beyond the threshold): one colour per task name, distinct from the process lines
GREW_COLORS = ("#d62728", "#111111", "#e377c2", "#8c564b", "#bcbd22", "#17becf", "#ff7f0e", "#7f7f7f", "#2ca02c",
               "#1f77b4")  # fmt: skip


def rss_over_tasks(seq: pd.DataFrame, *, min_growth: float | None = None,
                   title: str | None = "RSS after each task, per worker process") -> go.Figure:  # fmt: skip
    """One line per worker process: x = the task's position in the process's sequence, y = RSS after it (MiB).

    ``seq`` is :func:`celerylab.analysis.rss_sequence`; the tasks with ``grew`` set get a triangle marker, one
    legend entry (and colour) per task name, so the task that keeps growing the process stands out.  Hover: task
    name, id and its own growth.  ``min_growth`` (bytes) only names the threshold in the legend."""
    need = ("worker", "seq", "rss_after", "growth", "task_name", "grew")
    for c in need:
        if c not in seq.columns:
            raise ColumnNotFound(f"rss_over_tasks: no column {c!r}; pass analysis.rss_sequence(ps)")
    d = seq.reset_index(drop=True)
    mib = 2**20
    ids = d["task_id"].astype(object).where(d["task_id"].notna(), "") if "task_id" in d else pd.Series("", d.index)
    custom = list(zip([plotly_text(n) for n in d["task_name"]], [plotly_text(i) for i in ids],
                      (d["growth"].astype(float) / mib).tolist(), strict=True))  # fmt: skip
    hover = ("#%{x} %{customdata[0]}<br>task id %{customdata[1]}<br>RSS after %{y:.1f} MiB"
             "<br>own growth %{customdata[2]:+.2f} MiB<extra>%{fullData.name}</extra>")  # fmt: skip
    fig = go.Figure()
    for worker, g in d.groupby("worker", sort=True):
        idx = g.index.to_numpy()
        fig.add_trace(go.Scatter(
            x=g["seq"].to_numpy(), y=g["rss_after"].to_numpy(dtype=float) / mib, mode="lines",
            name=plotly_text(worker), line={"width": 1.5}, customdata=[custom[i] for i in idx],
            hovertemplate=hover, legendgroup="workers", legendgrouptitle={"text": "worker process"},
        ))  # fmt: skip
    grew = d.loc[d["grew"].astype(bool)]
    limit = "" if min_growth is None else f" ≥ {min_growth / mib:.2g} MiB"
    groups = dict(list(grew.groupby(group_labels(grew["task_name"]), sort=True)))
    # the task marked most often first: it gets the first colour and heads the legend group
    for k, task in enumerate(sorted(groups, key=lambda name: (-len(groups[name]), name))):
        g = groups[task]
        idx = g.index.to_numpy()
        fig.add_trace(go.Scatter(
            x=g["seq"].to_numpy(), y=g["rss_after"].to_numpy(dtype=float) / mib, mode="markers",
            name=plotly_text(task), customdata=[custom[i] for i in idx], hovertemplate=hover,
            marker={"symbol": "triangle-up", "size": 9, "color": GREW_COLORS[k % len(GREW_COLORS)],
                    "line": {"width": 1, "color": "#fff"}},
            legendgroup="grew", legendgrouptitle={"text": plotly_text(f"task grew RSS{limit}")},
        ))  # fmt: skip
    fig.update_layout(
        xaxis_title="task sequence number in the worker process",
        yaxis_title="RSS after the task (MiB)",
        height=380,
        showlegend=True,
        legend={"groupclick": "toggleitem"},
        margin=margin(),
    )
    return titled(fig, title)
