"""Notebook widgets: ``celerylab.widgets.explore(ps)`` (or ``ps.explore()``) opens a tabbed explorer.

Built with ipywidgets 8 and plotly ``FigureWidget`` (which needs ``anywidget``); plotly.js ships inside the plotly
package, so it works offline.  The controllers are thin: figures come from :mod:`celerylab.charts`, numbers from
:mod:`celerylab.analysis`.  This package is the only one that imports ipywidgets.
"""

from __future__ import annotations

from ._base import ErrorArea, esc, guarded
from ._diff import DiffTab
from ._drilldown import DrilldownTab
from ._explorer import Explorer, explore
from ._filters import FilterBar
from ._functions import FunctionsTab
from ._graphs import CallgraphTab, CalltreeTab
from ._hotspots import HotspotsTab
from ._overview import OverviewTab
from ._tab import TabController

__all__ = [
    "CallgraphTab",
    "CalltreeTab",
    "DiffTab",
    "DrilldownTab",
    "ErrorArea",
    "Explorer",
    "FilterBar",
    "FunctionsTab",
    "HotspotsTab",
    "OverviewTab",
    "TabController",
    "esc",
    "explore",
    "guarded",
]
