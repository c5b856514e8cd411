"""Figures over a :func:`celerylab.diff` result: what got slower, what got faster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..analysis.diff import diff_group_columns
from ..errors import ColumnNotFound
from ._style import (
    BAR_AXIS,
    OTHER_COLOR,
    REFERENCE_LINE,
    STATUS_COLORS,
    STATUS_NAMES,
    margin,
    plotly_text,
    titled,
    unique_labels,
)


def bar_labels(
    diff: pd.DataFrame, *, label: str = "label", groups: list[str] | None = None, width: int | None = 60
) -> list[str]:
    """One short label per diff row: ``task · module.name:line`` (the group values first, then the function's
    :func:`~celerylab.core.rules.short_label`), cut to ``width`` characters."""
    from ..core.rules import short_label

    gcols = diff_group_columns(diff, label) if groups is None else groups
    out = []
    for row in diff[[*gcols, label]].itertuples(index=False, name=None):
        name = short_label(row[-1])
        prefix = " · ".join(str(v) for v in row[:-1] if str(v) != str(row[-1]))
        text = f"{prefix} · {name}" if prefix else name
        out.append(text if width is None or len(text) <= width else text[: width - 1] + "…")
    return out


def diff_changes(
    diff: pd.DataFrame,
    *,
    value: str = "delta",
    label: str = "label",
    status: str = "status",
    n: int | None = 25,
    significant_only: bool = False,
    title: str | None = "Change per task and function (B − A), largest contribution first",
) -> go.Figure:
    """Diverging bars of ``value`` (the change B − A in seconds per task invocation, drawn in ms) per row, in the
    frame's order (a diff is ranked by contribution to the total change), labelled ``task · function`` (short;
    the full label on hover), one trace per ``status`` (the legend says what each colour means).
    ``significant_only`` drops ``same`` rows.  Each bar's ``customdata`` is ``[status, row, full label]`` (row:
    its position in the drawn rows)."""
    for c in (value, label):
        if c not in diff.columns:
            raise ColumnNotFound(f"diff_changes: no column {c!r}; columns are {list(diff.columns)}")
    d = diff
    if significant_only and status in d.columns:
        d = d.loc[d[status].astype(str) != "same"]
    if n is not None:
        d = d.head(n)
    d = d.reset_index(drop=True)
    st = d[status].astype(str) if status in d.columns else pd.Series(["same"] * len(d))
    ticks = [plotly_text(t) for t in unique_labels(bar_labels(d, label=label))]
    full = [plotly_text(t) for t in d[label].astype(str)]
    x = d[value].to_numpy(dtype=float) * 1000.0  # ms, as the report's tables and the findings chart
    fig = go.Figure()
    for s in [*(k for k in STATUS_COLORS if k in set(st)), *sorted(set(st) - set(STATUS_COLORS))]:
        rows = np.flatnonzero((st == s).to_numpy())
        fig.add_trace(
            go.Bar(
                x=x[rows],
                y=[ticks[i] for i in rows],
                orientation="h",
                name=STATUS_NAMES.get(s, s),
                marker={"color": STATUS_COLORS.get(s, OTHER_COLOR)},
                customdata=[[s, int(i), full[i]] for i in rows],
                hovertemplate="%{customdata[2]}<br>" + value + ": %{x:+.4~g} ms per task invocation"
                "<extra>%{customdata[0]}</extra>",
            )
        )
    fig.add_vline(x=0, line=REFERENCE_LINE)
    fig.update_layout(
        xaxis_title=f"{value}: B − A (ms per task invocation)",
        yaxis={**BAR_AXIS, "categoryorder": "array", "categoryarray": ticks},
        height=max(260, 26 * len(d) + 170),
        margin=margin(t=84, r=20),  # the title on top, the legend between it and the bars
        barmode="overlay",
        showlegend=True,
        legend={"title": {"text": "status"}, "orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
    )
    return titled(fig, title)


def diff_volcano(
    diff: pd.DataFrame,
    *,
    ratio: str = "ratio",
    p_value: str = "p_value",
    label: str = "label",
    status: str = "status",
    title: str | None = "Size of each change against its significance",
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
    for s in [*(k for k in STATUS_COLORS if k in set(st)), *sorted(set(st) - set(STATUS_COLORS))]:
        m = (st == s).to_numpy()
        fig.add_trace(
            go.Scatter(
                x=x[m],
                y=y[m],
                mode="markers",
                name=STATUS_NAMES.get(s, s),
                marker={"color": STATUS_COLORS.get(s, OTHER_COLOR), "size": 7},
                text=[plotly_text(t) for t in bar_labels(d.loc[m], label=label, width=None)],
                hovertemplate="%{text}<br>log2 ratio %{x:.3~f}<br>−log10 p %{y:.3~f}<extra></extra>",
            )
        )
    fig.update_layout(xaxis_title="log2(B / A) of the time per task invocation", yaxis_title="−log10(p)",
                      height=380, margin=margin(), legend_title_text="status")  # fmt: skip
    return titled(fig, title)
