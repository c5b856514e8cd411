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
