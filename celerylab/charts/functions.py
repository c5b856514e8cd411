"""Function-level figures: top functions by own / cumulative time."""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd
import plotly.graph_objects as go

from ..errors import ColumnNotFound
from ._style import BAR_AXIS, KIND_COLORS, colors, margin, plotly_text

_LINE = re.compile(r":(\d+)\([^()]*\)$")

#: what each ranking column means, for axis titles
VALUE_TITLES = {
    "tottime": "own time (s), summed",
    "cumtime": "cumulative time (s), summed",
    "tottime_mean": "own time per profile (s)",
    "cumtime_mean": "cumulative time per profile (s)",
    "ncalls": "calls",
    "pcalls": "primitive calls",
}


def short_labels(df: pd.DataFrame) -> list[str]:
    """Compact, unique display labels for function rows.

    Uses ``name  module:line`` when the frame has ``name`` and ``module`` columns (the line from a ``line`` column or
    the pstats label; builtins: just the name), else the pstats ``label``.  Duplicates get their ``func_id`` (or
    row number) appended, so a categorical axis never merges two functions into one bar.
    """
    out: list[str] = []
    has_parts = {"name", "module"} <= set(df.columns)
    for i, row in enumerate(df.itertuples(index=False)):
        r = row._asdict()
        label = str(r.get("label", i))
        name, mod = r.get("name"), r.get("module")
        if not has_parts or name is None or name != name:
            out.append(label)
            continue
        line = r.get("line")
        if line is None:
            m = _LINE.search(label)
            line = int(m.group(1)) if m else None
        if r.get("kind") == "builtin" or mod is None or mod != mod or not line:
            out.append(str(name))
        else:
            out.append(f"{name}  {mod}:{line}")
    seen: dict[str, int] = {}
    for t in out:
        seen[t] = seen.get(t, 0) + 1
    ids = df["func_id"].tolist() if "func_id" in df.columns else list(range(len(df)))
    return [f"{t}  #{ids[i]}" if seen[t] > 1 else t for i, t in enumerate(out)]


def _hover(df: pd.DataFrame, cols: Iterable[str]) -> tuple[list[list[object]], str]:
    cols = [c for c in cols if c in df.columns]
    custom = [
        [plotly_text(df["label"].iloc[i]) if "label" in df else ""] + [df[c].iloc[i] for c in cols]
        for i in range(len(df))
    ]
    parts = ["%{customdata[0]}"] + [f"{c}: %{{customdata[{k + 1}]:.4~g}}" for k, c in enumerate(cols)]
    return custom, "<br>".join(parts) + "<extra></extra>"


def top_functions(top: pd.DataFrame, *, value: str = "tottime", title: str | None = None) -> go.Figure:
    """Horizontal bars of ``value`` per function, largest on top.

    ``top`` is a frame like :meth:`ProfileSet.top` returns (``label`` plus the value column; ``name``, ``module``,
    ``line``, ``kind`` give shorter tick labels).  Bars keep the frame's numbers; bar colour follows ``kind``.
    """
    if value not in top.columns:
        raise ColumnNotFound(f"top_functions(value={value!r}): no such column; columns are {list(top.columns)}")
    df = top.reset_index(drop=True)
    ticks = [plotly_text(t) for t in short_labels(df)]
    custom, hover = _hover(df, ["tottime", "cumtime", "ncalls", "share"])
    marker = {"color": colors(df["kind"], KIND_COLORS)} if "kind" in df.columns else {}
    fig = go.Figure(
        go.Bar(
            x=df[value].to_numpy(),
            y=ticks,
            orientation="h",
            customdata=custom,
            hovertemplate=hover,
            marker=marker,
            name=value,
        )
    )
    fig.update_layout(
        title=plotly_text(title) if title else None,
        xaxis_title=VALUE_TITLES.get(value, value),
        yaxis=BAR_AXIS,
        height=max(260, 28 * len(df) + 120),
        margin=margin(r=20, t=50 if title else 20),
        showlegend=False,
    )
    return fig
