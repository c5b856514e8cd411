"""The look of every chart, in one place: margins, colours, axes, the text helpers, and group keys.

Plotly.js reads a small HTML-like markup in every text it draws (``<b>``, ``<br>``, ``<a href>``…), so a raw
function name such as ``<genexpr>`` or ``<script>`` would be swallowed or interpreted.  :func:`plotly_text` turns
``& < >`` into entities, which plotly.js draws literally; every chart passes names through it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..core.rules import group_key

#: runs (or any groups compared) in their order — A / the first run (baseline) blue, B / the second (candidate)
#: orange, then further runs; every chart that splits by run colours it with :func:`run_colors`
RUN_COLORS = ("#1f77b4", "#ff7f0e", "#17becf", "#bcbd22", "#e377c2", "#7f7f7f")
#: status of a diff row -> colour: slower red, faster green, same grey, and new (B only) purple / gone (A only)
#: brown — never a run's colour, so a candidate-only function does not look like the baseline
STATUS_COLORS = {"slower": "#d62728", "faster": "#2ca02c", "new": "#9467bd", "gone": "#8c564b", "same": "#9e9e9e"}
#: what each status means, for legends
STATUS_NAMES = {"slower": "slower (B > A)", "faster": "faster (B < A)", "new": "new (only in B)",
                "gone": "gone (only in A)", "same": "no significant change"}  # fmt: skip
#: kind of a function -> colour
KIND_COLORS = {"app": "#1f77b4", "third-party": "#ff7f0e", "stdlib": "#2ca02c", "builtin": "#7f7f7f"}
#: drilldown sides
CALLER_COLOR = "#1f77b4"
CALLEE_COLOR = "#ff7f0e"
#: the stages of a task's life (publish, waiting, running)
STAGE_COLORS = {"publish": "#8c564b", "queue_wait": "#ff7f0e", "broker_wait": "#ffbb78", "prefetch_wait": "#ffd8a8",
                "run": "#1f77b4"}  # fmt: skip
#: DB (SQL) bars and memory (allocation) bars
SQL_COLOR = "#d62728"
MEMORY_COLOR = "#9467bd"
#: anything a map above does not know
OTHER_COLOR = "#525252"
#: reference lines (zero lines, thresholds)
REFERENCE_LINE = {"color": "#444", "width": 1}
ZERO_LINE = {"color": "#888", "dash": "dot"}
#: a horizontal bar chart's category axis: first bar on top, labels never clipped
BAR_AXIS = {"autorange": "reversed", "automargin": True, "type": "category"}
#: a category x axis
CATEGORY_AXIS = {"type": "category", "automargin": True}
#: box plots show every point, jittered over the box
BOX_POINTS = {"boxpoints": "all", "jitter": 0.4, "pointpos": 0, "marker": {"size": 4}}


def margin(l: int = 10, r: int = 10, t: int = 20, b: int = 40) -> dict[str, int]:
    """A figure margin in pixels; the defaults fit a chart with an x-axis title and no figure title."""
    return {"l": l, "r": r, "t": t, "b": b}


def titled(fig: Any, title: str | None) -> Any:
    """Give ``fig`` its title (left, above the plot; the top margin grows to fit), or leave it without when
    ``title`` is None.  Every chart has one by default, so an exported image says what it shows."""
    if title:
        top = max(int(fig.layout.margin.t or 0), 44)
        fig.update_layout(title={"text": plotly_text(title), "x": 0, "xanchor": "left", "font": {"size": 14}},
                          margin={"t": top})  # fmt: skip
    return fig


def colors(keys: Any, palette: dict[str, str]) -> list[str]:
    """One colour per key, :data:`OTHER_COLOR` for keys the palette does not know."""
    return [palette.get(str(k), OTHER_COLOR) for k in keys]


def colored_box(color: str) -> dict[str, Any]:
    """:data:`BOX_POINTS` with the points, the outline and the fill of the box in ``color``."""
    return {**BOX_POINTS, "marker": {"size": 4, "color": color}, "line": {"color": color}}


def run_colors(values: Any) -> dict[str, str]:
    """Colour per run (as text), by position in ``values`` (ordered as A, B, …: see
    :func:`celerylab.analysis.diff.ordered_values`), cycling through :data:`RUN_COLORS`."""
    return {str(v): RUN_COLORS[i % len(RUN_COLORS)] for i, v in enumerate(values)}


def group_labels(values: pd.Series) -> pd.Series:
    """Group keys as text, a missing value shown as the one placeholder (:data:`celerylab.core.rules.UNKNOWN`)."""
    return group_key(values).astype(str)


def plotly_text(value: object) -> str:
    """``value`` as text that plotly.js draws literally (``& < >`` as entities; no markup survives)."""
    s = "" if value is None else str(value)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unique_labels(labels: list[str]) -> list[str]:
    """Axis categories must differ: the second and later repeats of a text get `` (2)``, `` (3)``, …"""
    seen: dict[str, int] = {}
    out = []
    for t in labels:
        seen[t] = seen.get(t, 0) + 1
        out.append(t if seen[t] == 1 else f"{t} ({seen[t]})")
    return out
