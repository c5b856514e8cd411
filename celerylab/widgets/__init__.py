"""Notebook widgets: ``celerylab.widgets.explore(ps)`` (or ``ps.explore()``) opens a tabbed explorer.

Built with ipywidgets 8 and a light anywidget per figure (:mod:`._plot`: plotly.js reaches the page once, from the
plotly package, so it works offline).  The controllers are thin: figures come from :mod:`celerylab.charts`, numbers from
:mod:`celerylab.analysis`.  This package is the only one that imports ipywidgets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._base import ErrorArea, esc, guarded
    from ._diff import DiffTab
    from ._drilldown import DrilldownTab
    from ._explorer import Explorer, explore
    from ._filters import FilterBar
    from ._findings import FindingsTab
    from ._functions import FunctionsTab
    from ._graphs import CallgraphTab, CalltreeTab
    from ._hotspots import HotspotsTab
    from ._overview import OverviewTab
    from ._tab import TabController

#: name -> module; imported on first use, so that ``explore()`` can send plotly.js to the page (``_plot``) before
#: it imports the rest (plotly.graph_objects, the tabs): the browser evaluates plotly.js while the kernel works
_WHERE = {"ErrorArea": "_base", "esc": "_base", "guarded": "_base", "DiffTab": "_diff", "DrilldownTab": "_drilldown",
          "Explorer": "_explorer", "explore": "_explorer", "FilterBar": "_filters",
          "FindingsTab": "_findings", "FunctionsTab": "_functions",
          "CallgraphTab": "_graphs", "CalltreeTab": "_graphs", "HotspotsTab": "_hotspots",
          "OverviewTab": "_overview", "TabController": "_tab"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


__all__ = [
    "CallgraphTab",
    "CalltreeTab",
    "DiffTab",
    "DrilldownTab",
    "ErrorArea",
    "Explorer",
    "FilterBar",
    "FindingsTab",
    "FunctionsTab",
    "HotspotsTab",
    "OverviewTab",
    "TabController",
    "esc",
    "explore",
    "guarded",
]
