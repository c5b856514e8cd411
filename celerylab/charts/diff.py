"""Figures over a :func:`celerylab.diff` result: what got slower, what got faster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..errors import ColumnNotFound
from ._style import (
    BAR_AXIS,
    OTHER_COLOR,
    REFERENCE_LINE,
    STATUS_COLORS,
    colors,
    margin,
    plotly_text,
    titled,
    unique_labels,
)


def diff_changes(
    diff: pd.DataFrame,
    *,
    value: str = "delta",
    label: str = "label",
    status: str = "status",
    n: int | None = 25,
    significant_only: bool = False,
    title: str | None = "Change per function (B − A), largest contribution first",
) -> go.Figure:
    """Diverging bars of ``value`` (the change B − A) per function, in the frame's order (a diff is ranked by
    contribution to the total change), coloured by ``status``.  ``significant_only`` drops ``same`` rows."""
    for c in (value, label):
        if c not in diff.columns:
            raise ColumnNotFound(f"diff_changes: no column {c!r}; columns are {list(diff.columns)}")
    d = diff
    if significant_only and status in d.columns:
        d = d.loc[d[status].astype(str) != "same"]
    if n is not None:
        d = d.head(n)
    d = d.reset_index(drop=True)
    st = d[status].astype(str).tolist() if status in d.columns else ["same"] * len(d)
    ticks = [plotly_text(t) for t in unique_labels(d[label].astype(str).tolist())]
    fig = go.Figure(
        go.Bar(
            x=d[value].to_numpy(dtype=float),
            y=ticks,
            orientation="h",
            marker={"color": colors(st, STATUS_COLORS)},
            customdata=[[s] for s in st],
            hovertemplate="%{y}<br>" + value + ": %{x:.4~g}<br>%{customdata[0]}<extra></extra>",
        )
    )
    fig.add_vline(x=0, line=REFERENCE_LINE)
    fig.update_layout(
        xaxis_title=f"{value} (B − A, s per task)",
        yaxis=BAR_AXIS,
        height=max(240, 26 * len(d) + 110),
        margin=margin(r=20),
        showlegend=False,
    )
    return titled(fig, title)


def diff_volcano(
    diff: pd.DataFrame, *, ratio: str = "ratio", p_value: str = "p_value", label: str = "label", status: str = "status"
) -> go.Figure:
    """log2(ratio B/A) against −log10(p): significant large changes stand out top left / top right."""
    for c in (ratio, p_value, label):
        if c not in diff.columns:
            raise ColumnNotFound(f"diff_volcano: no column {c!r}; columns are {list(diff.columns)}")
    d = diff.loc[diff[ratio].notna() & diff[p_value].notna()]
    r = d[ratio].to_numpy(dtype=float)
    p = d[p_value].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log2(np.where(r > 0, r, np.nan))
        y = -np.log10(np.clip(p, 1e-300, 1.0))
    fig = go.Figure()
    st = d[status].astype(str) if status in d.columns else pd.Series(["same"] * len(d), index=d.index)
    for s in sorted(st.unique()):
        m = (st == s).to_numpy()
        fig.add_trace(
            go.Scatter(
                x=x[m],
                y=y[m],
                mode="markers",
                name=s,
                marker={"color": STATUS_COLORS.get(s, OTHER_COLOR), "size": 7},
                text=[plotly_text(t) for t in d.loc[m, label].astype(str)],
                hovertemplate="%{text}<br>log2 ratio %{x:.3~f}<br>−log10 p %{y:.3~f}<extra></extra>",
            )
        )
    fig.update_layout(xaxis_title="log2(B / A)", yaxis_title="−log10(p)", height=380, margin=margin())
    return fig
