"""Task-level figures over ``ProfileSet.profiles`` / ``ProfileSet.task_summary()``."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ..core.rules import duration_column, task_key
from ..errors import ColumnNotFound
from ._style import (
    BAR_AXIS,
    BOX_POINTS,
    CATEGORY_AXIS,
    OTHER_COLOR,
    colored_box,
    group_labels,
    margin,
    plotly_text,
    run_colors,
    titled,
)


def _duration_column(profiles: pd.DataFrame, value: str | None) -> str:
    if value is not None:
        if value not in profiles.columns:
            raise ColumnNotFound(f"no column {value!r} in profiles; columns are {list(profiles.columns)}")
        return value
    return duration_column(profiles)


def _keys(profiles: pd.DataFrame, by: str) -> pd.Series:
    """The group text of each profile: for ``task_name`` the task key (a task's publishes are a group of their
    own, ``<task> (publish)``, as in the task summary)."""
    if by not in profiles.columns:
        raise ColumnNotFound(f"no column {by!r} in profiles; columns are {list(profiles.columns)}")
    return task_key(profiles).astype(str) if by == "task_name" else group_labels(profiles[by])


def _groups(profiles: pd.DataFrame, by: str) -> list[tuple[str, pd.DataFrame]]:
    key = _keys(profiles, by)
    return [(str(k), g) for k, g in profiles.groupby(key, sort=True)]


def task_durations(
    profiles: pd.DataFrame,
    *,
    by: str = "task_name",
    value: str | None = None,
    color: str | None = None,
    colors: dict[str, str] | None = None,
    legend_title: str | None = None,
    title: str | None = "Duration per task invocation",
) -> go.Figure:
    """Time distribution: one box per ``by`` value (default task name) of ``value`` (default ``wall_s``, else the
    profile's ``total_tt``), every profile shown as a point.  ``color`` (e.g. ``"run"``) splits each box, one
    legend entry per value, coloured by ``colors`` (value text -> colour; default: the run colours in the order
    of :func:`~celerylab.analysis.diff.ordered_values`, so a run has the same colour in every chart)."""
    col = _duration_column(profiles, value)
    fig = go.Figure()
    if color is None:
        for name, g in _groups(profiles, by):
            fig.add_trace(
                go.Box(
                    y=g[col].to_numpy(),
                    name=plotly_text(name),
                    **BOX_POINTS,
                    hovertemplate="%{y:.4~g} s<extra></extra>",
                )
            )
    else:
        from ..analysis.diff import ordered_values

        palette = colors if colors is not None else run_colors(ordered_values(profiles, color))
        groups = dict(_groups(profiles, color))
        order = [str(v) for v in palette if str(v) in groups] + [k for k in groups if k not in palette]
        for cname in order:
            cg = groups[cname]
            x = _keys(cg, by).map(plotly_text)
            fig.add_trace(
                go.Box(
                    x=x.to_numpy(),
                    y=cg[col].to_numpy(),
                    name=plotly_text(cname),
                    **colored_box(palette.get(cname, OTHER_COLOR)),
                    hovertemplate="%{x}<br>%{y:.4~g} s<extra>" + plotly_text(cname) + "</extra>",
                )
            )
        fig.update_layout(boxmode="group")
    fig.update_layout(
        yaxis_title=f"{col} per invocation (s)",
        xaxis={**CATEGORY_AXIS, "title": {"text": by}},
        showlegend=color is not None,
        margin=margin(t=30),
        height=380,
    )
    if color is not None:
        fig.update_layout(legend_title_text=plotly_text(legend_title or color))
    return titled(fig, title)


def task_totals(
    task_summary: pd.DataFrame, *, value: str = "total_s", title: str | None = "Wall time summed per task"
) -> go.Figure:
    """Bars of ``value`` (default summed wall time) per task, from :meth:`ProfileSet.task_summary`."""
    if value not in task_summary.columns:
        raise ColumnNotFound(f"task_totals(value={value!r}): no such column; columns are {list(task_summary.columns)}")
    df = task_summary.sort_values(value, ascending=False, kind="stable")
    custom = df[[c for c in ("profiles", "wall_p50_s", "wall_p95_s") if c in df.columns]].to_numpy()
    fig = go.Figure(
        go.Bar(
            x=df[value].to_numpy(),
            y=[plotly_text(t) for t in df["task_name"].astype(str)],
            orientation="h",
            customdata=custom,
            hovertemplate="%{y}: %{x:.4~g} s<br>profiles %{customdata[0]}<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis_title="wall time (s), summed" if value == "total_s" else value,
        yaxis=BAR_AXIS,
        height=max(220, 30 * len(df) + 100),
        margin=margin(r=20),
    )
    return titled(fig, title)


def task_timeline(profiles: pd.DataFrame, *, by: str = "task_name", value: str | None = None) -> go.Figure:
    """Scatter of each profile's duration against its start time, one trace per ``by`` value."""
    col = _duration_column(profiles, value)
    if "started_at" not in profiles.columns:
        raise ColumnNotFound("task_timeline needs a 'started_at' column in profiles")
    fig = go.Figure()
    for name, g in _groups(profiles, by):
        g = g.sort_values("started_at")
        fig.add_trace(go.Scatter(x=g["started_at"], y=g[col].to_numpy(), mode="markers", name=plotly_text(name)))
    fig.update_layout(
        yaxis_title=f"{col} (s)",
        xaxis_title="started at (UTC)",
        height=360,
        margin=margin(),
    )
    return fig
