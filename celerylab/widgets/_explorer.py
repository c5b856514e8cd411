"""The explorer: a filter bar over tabs (Overview, Functions, Drilldown, Call tree, Diff, Hotspots, Call graph)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as w
import pandas as pd

from ._base import ErrorArea, guarded
from ._diff import DiffTab
from ._drilldown import DrilldownTab
from ._filters import FilterBar
from ._functions import FunctionsTab
from ._graphs import CallgraphTab, CalltreeTab
from ._hotspots import HotspotsTab
from ._overview import OverviewTab
from ._tab import TabController

if TYPE_CHECKING:
    from ..core.data import FuncRef, ProfileData


class Explorer:
    """Interactive explorer of a :class:`~celerylab.ProfileSet`; build it with :func:`explore`.

    The filters apply to every tab.  State can be read back from Python:

    * :attr:`selection` — the filtered ProfileSet; :attr:`profiles` its profile rows;
    * :attr:`current` — the frame the visible tab shows (task summary, function table, callers+callees, diff…);
    * :attr:`selected` — the function in drilldown focus (one row with its totals), or empty;
    * each tab controller (:attr:`overview`, :attr:`functions`, :attr:`drilldown`, :attr:`calltree`, :attr:`diff`,
      :attr:`hotspots`, :attr:`callgraph`) has its own ``current`` and ``selected``.

    Exceptions raised in any callback are shown in a red banner with the traceback (:attr:`errors`).
    """

    def __init__(self, ps: ProfileData, **filters: Any) -> None:
        self.ps = ps
        self.selection: ProfileData = ps
        self.errors = ErrorArea()
        self.filters = FilterBar(ps, self.errors, self._on_filtered)
        self.overview = OverviewTab(self)
        self.functions = FunctionsTab(self)
        self.drilldown = DrilldownTab(self)
        self.calltree = CalltreeTab(self)
        self.diff = DiffTab(self)
        self.hotspots = HotspotsTab(self)
        self.callgraph = CallgraphTab(self)
        self.tab_list: list[TabController] = [self.overview, self.functions, self.drilldown, self.calltree,
                                              self.diff, self.hotspots, self.callgraph]  # fmt: skip
        self.tabs = w.Tab(children=[t.widget for t in self.tab_list], titles=[t.title for t in self.tab_list])
        self.tabs.observe(self.on_tab, names="selected_index")
        self.widget = w.VBox([self.filters.widget, self.errors.widget, self.tabs],
                             layout=w.Layout(width="100%"))  # fmt: skip
        self.widget.add_class("celerylab-explorer")
        if filters:
            self.filters.set(**filters)
        else:
            self.active.ensure()

    # --------------------------------------------------------------------------------------------- state
    @property
    def active(self) -> TabController:
        """The visible tab's controller."""
        return self.tab_list[self.tabs.selected_index or 0]

    @property
    def profiles(self) -> pd.DataFrame:
        """The filtered profile rows."""
        return self.selection.profiles

    @property
    def current(self) -> pd.DataFrame:
        """The frame the visible tab shows."""
        return self.active.current

    @property
    def selected(self) -> pd.DataFrame:
        """The drilldown function (func_id, label, name, module, kind and its totals), or an empty frame."""
        return self.drilldown.selected

    # ------------------------------------------------------------------------------------------- actions
    def set_filters(self, **conditions: Any) -> ProfileData:
        """Replace the filters (any :meth:`ProfileSet.where` keywords) and redraw; returns the selection."""
        return self.filters.set(**conditions)

    def show(self, tab: str) -> TabController:
        """Switch to the tab titled ``tab`` (case-insensitive)."""
        for i, t in enumerate(self.tab_list):
            if t.title.lower() == tab.lower():
                self.tabs.selected_index = i
                t.ensure()
                return t
        raise KeyError(f"no tab {tab!r}; tabs are {[t.title for t in self.tab_list]}")

    def drill(self, func: FuncRef) -> int:
        """Open ``func`` (func_id, label or unique name fragment) in the Drilldown tab; returns its func_id."""
        fid = self.drilldown.move_to(func)
        self.calltree.stale = True
        self.tabs.selected_index = self.tab_list.index(self.drilldown)
        return fid

    # ------------------------------------------------------------------------------------------ handlers
    def _on_filtered(self, ps: ProfileData) -> None:
        self.selection = ps
        for t in self.tab_list:
            t.set_data(ps)
        self.active.ensure()

    @guarded
    def on_tab(self, change: dict[str, Any]) -> None:
        """A tab was shown: draw it if the filters changed since it was last drawn."""
        if self.active is self.calltree:
            self.calltree.stale = True  # follows the drilldown focus
        self.active.ensure()

    # --------------------------------------------------------------------------------------------- display
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return (f"<celerylab Explorer: {len(self.selection):,} of {len(self.ps):,} profiles, tab "
                f"{self.active.title!r}, filters {self.filters.conditions}>")  # fmt: skip


def explore(ps: ProfileData, **filters: Any) -> Explorer:
    """An interactive explorer of ``ps`` for Jupyter (JupyterLab, Notebook 7, VS Code): display the result.

    ``filters`` are initial :meth:`ProfileSet.where` conditions (e.g. ``task_name="orders.*"``)."""
    return Explorer(ps, **filters)
