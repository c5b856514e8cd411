"""Drilldown figures: who calls a function, what it calls, and how its time spreads over profiles.

Plain functions ``DataFrame -> go.Figure``: the notebook explorer, the report and tests use the same ones.  Every
bar carries its ``func_id`` in ``customdata[0]`` so that a click can move the drilldown.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import ColumnNotFound
from ._style import (
    CALLEE_COLOR,
    CALLER_COLOR,
    CATEGORY_AXIS,
    OTHER_COLOR,
    colored_box,
    group_labels,
    margin,
    plotly_text,
    run_colors,
)


def _ticks(df: pd.DataFrame) -> list[str]:
    """Short unique tick texts: ``name  module:line`` (builtins: the name), ``#func_id`` added on clashes."""
    out: list[str] = []
    for r in df.itertuples(index=False):
        d = r._asdict()
        name, mod, line = d.get("name"), d.get("module"), d.get("line")
        if name is None or name != name:
            t = str(d.get("label", ""))
        elif d.get("kind") == "builtin" or mod is None or mod != mod or not line:
            t = str(name)
        else:
            t = f"{name}  {mod}:{line}"
        out.append(t)
    ids = df["func_id"].tolist() if "func_id" in df.columns else list(range(len(df)))
    counts = pd.Series(out).value_counts() if out else pd.Series(dtype=int)
    return [plotly_text(f"{t}  #{ids[i]}" if counts[t] > 1 else t) for i, t in enumerate(out)]


def bar_data(df: pd.DataFrame, value: str = "cumtime", n: int | None = 15) -> dict[str, Any]:
    """The data of one side's bars (``x``, ``y``, ``customdata``), largest ``n`` rows first.

    :func:`neighbours` draws with it; a FigureWidget that already shows a :func:`neighbours` figure can take new
    data with ``trace.update(**bar_data(df))``, which is much cheaper than building a new figure."""
    d = df.sort_values(value, ascending=False, kind="stable") if value in df.columns else df
    if n is not None:
        d = d.head(n)
    d = d.reset_index(drop=True)
    labels = d["label"].astype(str).tolist() if "label" in d.columns else [""] * len(d)
    ids = d["func_id"].tolist() if "func_id" in d.columns else [None] * len(d)
    calls = d["ncalls"].tolist() if "ncalls" in d.columns else [None] * len(d)
    return {
        "x": d[value].to_numpy(dtype=float),
        "y": _ticks(d),
        "customdata": [[i, plotly_text(lab), c] for i, lab, c in zip(ids, labels, calls)],
    }


def side_title(side: str, count: int) -> str:
    """The subplot title of one side of :func:`neighbours`."""
    return f"← callers ({count})" if side == "callers" else f"callees ({count}) →"


def _bars(df: pd.DataFrame, value: str, name: str, color: str, n: int | None) -> go.Bar:
    return go.Bar(
        **bar_data(df, value, n),
        orientation="h",
        name=name,
        marker={"color": color},
        hovertemplate=f"%{{customdata[1]}}<br>{value}: %{{x:.4~g}} s<br>calls: %{{customdata[2]}}<extra>{name}</extra>",
    )


def neighbours(
    callers: pd.DataFrame,
    callees: pd.DataFrame,
    *,
    focus: str,
    value: str = "cumtime",
    n: int | None = 15,
) -> go.Figure:
    """``callers ← focus → callees`` as two bar charts side by side.

    ``callers``/``callees`` are frames like :meth:`ProfileSet.callers` / :meth:`ProfileSet.callees` return (one row
    per neighbour with ``func_id``, ``label`` and the edge's ``value``).  Left: the callers, bars growing towards the
    middle; right: the callees.  Trace 0 is ``callers``, trace 1 ``callees``; ``customdata[i][0]`` is the
    neighbour's func_id.  ``n`` keeps the largest rows of each side.
    """
    for side, df in (("callers", callers), ("callees", callees)):
        if value not in df.columns:
            raise ColumnNotFound(f"neighbours: no column {value!r} in {side}; columns are {list(df.columns)}")
    titles = (side_title("callers", len(callers)), side_title("callees", len(callees)))
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.22, subplot_titles=titles)
    fig.add_trace(_bars(callers, value, "callers", CALLER_COLOR, n), row=1, col=1)
    fig.add_trace(_bars(callees, value, "callees", CALLEE_COLOR, n), row=1, col=2)
    na = len(callers) if n is None else min(n, len(callers))
    nb = len(callees) if n is None else min(n, len(callees))
    rows = max(na, nb, 1)
    fig.update_layout(
        title={"text": plotly_text(focus), "x": 0.5, "font": {"size": 13}},
        showlegend=False,
        height=neighbours_height(rows),
        margin=margin(t=70),
        clickmode="event",
    )
    fig.update_xaxes(title_text=f"{value} on the edge (s)", row=1, col=1, autorange="reversed")
    fig.update_xaxes(title_text=f"{value} on the edge (s)", row=1, col=2)
    fig.update_yaxes(autorange="reversed", automargin=True, type="category", row=1, col=1)
    fig.update_yaxes(autorange="reversed", automargin=True, type="category", side="right", row=1, col=2)
    if not na:
        fig.add_annotation(text="no callers (a root)", showarrow=False, xref="x domain", yref="y domain", x=0.5, y=0.5)
    if not nb:
        fig.add_annotation(text="no callees (a leaf)", showarrow=False, xref="x2 domain", yref="y2 domain", x=0.5,
                           y=0.5)  # fmt: skip
    return fig


def neighbours_height(rows: int) -> int:
    """Figure height for ``rows`` bars per side."""
    return max(240, 24 * rows + 120)


def per_profile(stats: pd.DataFrame, *, value: str = "cumtime", by: str = "run", title: str | None = None,
                colors: dict[str, str] | None = None) -> go.Figure:  # fmt: skip
    """One box per ``by`` value (e.g. run) of a function's ``value`` in each profile that called it: is the
    function slower everywhere, or only in some runs or tasks?  ``stats`` has one row per profile.  Boxes are
    coloured by ``colors`` (value text -> colour; default the run colours in the order of
    :func:`~celerylab.analysis.diff.ordered_values`), with a legend."""
    from ..analysis.diff import ordered_values

    for c in (value, by):
        if c not in stats.columns:
            raise ColumnNotFound(f"per_profile: no column {c!r}; columns are {list(stats.columns)}")
    key = group_labels(stats[by])
    palette = colors if colors is not None else run_colors(ordered_values(stats, by))
    groups = dict(list(stats.groupby(key, sort=True)))
    order = [v for v in palette if v in groups] + [k for k in groups if k not in palette]
    fig = go.Figure()
    for name in order:
        g = groups[name]
        style = colored_box(palette.get(str(name), OTHER_COLOR))
        fig.add_trace(go.Box(y=g[value].to_numpy(dtype=float), name=plotly_text(name), **style,
                             hovertemplate="%{y:.4~g} s<extra></extra>"))  # fmt: skip
    fig.update_layout(
        title={"text": plotly_text(title), "font": {"size": 12}} if title else None,
        yaxis_title=f"{value} per profile (s)",
        xaxis={**CATEGORY_AXIS, "title": {"text": by}},
        showlegend=True,
        legend_title_text=plotly_text(by),
        height=300,
        margin=margin(t=40 if title else 20),
    )
    return fig
