"""Icicle / sunburst of a call tree reconstructed from caller→callee edges.

cProfile keeps caller→callee edges, not stacks: a tree rebuilt from them splits each function's time over its
callers in proportion to the edge times, which is exact only when a function's cost does not depend on who called
it.  Every figure here says so in its title.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ..core.rules import short_label
from ..errors import ColumnNotFound, UsageError
from ._style import margin, plotly_text

APPROXIMATION_NOTE = "reconstructed from caller edges: an approximation, not recorded stacks"
KINDS = ("icicle", "sunburst")
LABEL_WIDTH = 40  # characters of a node's text before the ellipsis


def calltree(
    tree: pd.DataFrame,
    *,
    kind: str = "icicle",
    id: str = "id",
    parent: str = "parent",
    label: str = "label",
    value: str = "value",
    title: str | None = None,
    max_depth: int | None = None,
) -> go.Figure:
    """An icicle (default) or sunburst of ``tree``: one row per node with ``id``, ``parent`` (``""`` for roots),
    ``label`` and ``value`` (time in the node including its children; children never sum past their parent, as
    ``branchvalues="total"`` requires).  An ``func_id`` column, when present, is carried in ``customdata[i][0]``."""
    if kind not in KINDS:
        raise UsageError(f"calltree(kind={kind!r}): kind must be one of {', '.join(KINDS)}")
    for c in (id, parent, label, value):
        if c not in tree.columns:
            raise ColumnNotFound(f"calltree: no column {c!r}; columns are {list(tree.columns)}")
    d = tree.reset_index(drop=True)
    custom = (
        [[f, plotly_text(t)] for f, t in zip(d["func_id"].tolist(), d[label].astype(str))]
        if "func_id" in d.columns
        else [[None, plotly_text(t)] for t in d[label].astype(str)]
    )
    trace_cls = go.Icicle if kind == "icicle" else go.Sunburst
    kw: dict[str, object] = {"maxdepth": max_depth} if max_depth else {}
    if kind == "sunburst":
        kw["insidetextorientation"] = "radial"
    # what a box shows: the short name cut to fit a box (plotly hides a text that still does not fit, rather than
    # shrink it below 10 px); the full label is in the hover
    fig = go.Figure(
        trace_cls(
            ids=d[id].astype(str).tolist(),
            parents=d[parent].fillna("").astype(str).tolist(),
            labels=[plotly_text(t) for t in d[label].astype(str)],
            text=[plotly_text(short_label(t, LABEL_WIDTH)) for t in d[label].astype(str)],
            texttemplate="%{text}",
            textfont={"size": 12},
            values=d[value].to_numpy(dtype=float),
            branchvalues="total",
            customdata=custom,
            hovertemplate="%{customdata[1]}<br>%{value:.4~g} s (%{percentRoot:.1%} of the root)<extra></extra>",
            **kw,
        )
    )
    head = plotly_text(title) + "<br>" if title else ""
    fig.update_layout(
        title={"text": f"{head}<sup>{APPROXIMATION_NOTE}</sup>", "font": {"size": 13}},
        height=460 if kind == "icicle" else 520,
        uniformtext={"minsize": 10, "mode": "hide"},
        margin=margin(t=60, b=10),
    )
    return fig
