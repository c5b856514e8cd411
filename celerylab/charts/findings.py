"""The opening view's figure over :func:`celerylab.analysis.findings`: which tasks changed, by how much."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ..errors import ColumnNotFound
from ._style import BAR_AXIS, REFERENCE_LINE, STATUS_COLORS, margin, plotly_text


def findings_chart(found: pd.DataFrame, *, title: str = "What changed per task (B − A)") -> go.Figure:
    """Diverging bars: the change of the mean task time (ms, B − A) of every *time* finding, in rank order, one
    trace per direction (slower red, faster green: the legend says which); hover shows the cause.  ``customdata``
    holds each bar's rank (the finding row), for click handlers."""
    for c in ("task_name", "kind", "direction", "delta", "rank"):
        if c not in found.columns:
            raise ColumnNotFound(f"findings_chart: no column {c!r}; columns are {list(found.columns)}")
    d = found.loc[found["kind"] == "time"].reset_index(drop=True)
    fig = go.Figure()
    order = [plotly_text(t) for t in d["task_name"].astype(str)]
    for direction in ("slower", "faster"):
        m = d["direction"] == direction
        if not m.any():
            continue
        part = d.loc[m]
        causes = part["cause"].fillna("—").astype(str) if "cause" in part else pd.Series("—", index=part.index)
        fig.add_trace(
            go.Bar(
                x=(part["delta"].to_numpy(dtype=float) * 1000.0),
                y=[plotly_text(t) for t in part["task_name"].astype(str)],
                orientation="h",
                name=direction,
                marker={"color": STATUS_COLORS[direction]},
                customdata=[[int(r), plotly_text(c)] for r, c in zip(part["rank"], causes, strict=True)],
                hovertemplate="%{y}<br>%{x:+.4~g} ms per task<br>cause: %{customdata[1]}<extra>"
                + direction
                + "</extra>",
            )
        )
    fig.add_vline(x=0, line=REFERENCE_LINE)
    fig.update_layout(
        title={"text": plotly_text(title), "x": 0, "xanchor": "left"},
        xaxis_title="change of the mean time per task (ms)",
        yaxis={**BAR_AXIS, "categoryorder": "array", "categoryarray": order},
        height=max(200, 34 * len(d) + 120),
        margin=margin(t=40, r=20),
        legend={"title": {"text": "direction"}, "orientation": "h", "y": -0.35},
        showlegend=True,
    )
    return fig
