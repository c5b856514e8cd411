"""A task's life as figures: publish, queue wait and run per task, and queue wait over time."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ..errors import ColumnNotFound
from ._style import BAR_AXIS, STAGE_COLORS, margin, plotly_text

#: the stages drawn as one stacked bar per task (broker/prefetch wait are parts of queue wait: not stacked twice)
STACKED = ("publish", "queue_wait", "run")
STAGE_NAMES = {"publish": "publish (producer)", "queue_wait": "queue wait", "broker_wait": "in the broker",
               "prefetch_wait": "held by the worker", "run": "run (worker)"}  # fmt: skip


def latency_breakdown(latency: pd.DataFrame, *, value: str = "p50", title: str | None = None) -> go.Figure:
    """One stacked bar per task: the ``value`` (p50 by default) of publish, queue wait and run, in seconds, from
    :func:`celerylab.analysis.latency`; the hover adds p95 and the number of profiles behind each part.  With a
    ``run`` column (``latency(ps, by=["task_name", "run"])``) there is one bar per task and run, side by side."""
    for c in ("task_name", "stage", value, "p95", "n"):
        if c not in latency.columns:
            raise ColumnNotFound(f"latency_breakdown: no column {c!r}; columns are {list(latency.columns)}")
    d = latency.loc[latency["stage"].isin(STACKED)]
    by_run = "run" in d.columns and d["run"].nunique() > 1
    d = d.assign(_bar=d["task_name"].astype(str) + (" · " + d["run"].astype(str) if by_run else ""))
    weight = d.loc[d["stage"] != "publish"].groupby("task_name", sort=False)[value].sum()
    tasks = weight.sort_values(ascending=False).index.tolist()
    tasks += [t for t in d["task_name"].unique() if t not in tasks]
    order = [b for t in tasks for b in d.loc[d["task_name"] == t, "_bar"].unique()]
    fig = go.Figure()
    for stage in STACKED:
        s = d.loc[d["stage"] == stage].set_index("_bar").reindex(order)
        if s[value].notna().any():
            fig.add_trace(go.Bar(
                y=[plotly_text(t) for t in order], x=s[value].to_numpy(dtype=float), orientation="h",
                name=STAGE_NAMES[stage], marker={"color": STAGE_COLORS[stage]},
                customdata=s[["p95", "n"]].to_numpy(dtype=float),
                hovertemplate=f"%{{y}}: {STAGE_NAMES[stage]} {value} %{{x:.4~g}} s, p95 %{{customdata[0]:.4~g}} s "
                              "(%{customdata[1]:.0f} profiles)<extra></extra>",
            ))  # fmt: skip
    default_title = f"Where a task's time goes: {value} per stage" + (", per run" if by_run else "")
    fig.update_layout(
        title={"text": plotly_text(title or default_title)},
        barmode="stack",
        xaxis_title=f"seconds ({value})",
        yaxis=BAR_AXIS,
        legend={
            "title": {"text": "stage"},
            "orientation": "h",
            "traceorder": "normal",
            "x": 0,
            "xanchor": "left",
            "y": 1.0,
            "yanchor": "bottom",
        },
        height=max(260, 34 * len(order) + 160),
        margin=margin(r=20, t=80, b=50),
    )
    return fig


def queue_wait_timeline(over_time: pd.DataFrame, *, value: str = "p95", title: str | None = None) -> go.Figure:
    """Queue wait over time, one line per task (and run, with a ``run`` column), from
    :func:`celerylab.analysis.latency_over_time`: a line that
    climbs while the run time stays flat is a backlog."""
    for c in ("time", "stage", value):
        if c not in over_time.columns:
            raise ColumnNotFound(f"queue_wait_timeline: no column {c!r}; columns are {list(over_time.columns)}")
    d = over_time.loc[over_time["stage"] == "queue_wait"]
    fig = go.Figure()
    keys = [c for c in ("task_name", "run") if c in d.columns]
    groups = d.groupby(keys, sort=True) if keys else [(("all tasks",), d)]
    for name, g in groups:
        label = plotly_text(" · ".join(str(x) for x in (name if isinstance(name, tuple) else (name,))))
        fig.add_trace(go.Scatter(x=g["time"], y=g[value].to_numpy(dtype=float), mode="lines+markers", name=label,
                                 hovertemplate=f"%{{x}}: %{{y:.4~g}} s<extra>{label}</extra>"))  # fmt: skip
    fig.update_layout(
        title={"text": plotly_text(title or f"Queue wait over time ({value})")},
        yaxis_title=f"queue wait, {value} (s)",
        xaxis_title="task started (UTC)",
        legend={"title": {"text": "task · run" if "run" in keys else "task"}},
        height=340,
        margin=margin(t=50),
    )
    return fig
