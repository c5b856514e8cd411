"""The explorer: a filter bar over tabs (Findings, Overview, Functions, Drilldown, Call tree, Diff, Hotspots,
Call graph)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as w
import pandas as pd

from ._base import ErrorArea, guarded
from ._diff import DiffTab
from ._drilldown import DrilldownTab
from ._filters import FilterBar
from ._findings import FindingsTab
from ._functions import FunctionsTab
from ._graphs import CallgraphTab, CalltreeTab
from ._hotspots import HotspotsTab
from ._overview import OverviewTab
from ._plot import plotly_lib
from ._state import ExplorerState
from ._tab import TabController

if TYPE_CHECKING:
    from ..core.data import FuncRef, ProfileData


class Explorer:
    """Interactive explorer of a :class:`~celerylab.ProfileSet`; build it with :func:`explore`.

    The filters apply to every tab.  State can be read back from Python, and observed (:attr:`state`, traitlets):

    * :attr:`state` — :class:`~._state.ExplorerState`: ``data``, ``selection``, ``focus``; tabs talk only through it;
    * :attr:`selection` — the filtered ProfileSet; :attr:`profiles` its profile rows;
    * :attr:`current` — the frame the visible tab shows (task summary, function table, callers+callees, diff…);
    * :attr:`selected` — the function in drilldown focus (one row with its totals), or empty;
    * each tab controller (:attr:`overview`, :attr:`functions`, :attr:`drilldown`, :attr:`calltree`, :attr:`diff`,
      :attr:`hotspots`, :attr:`callgraph`) has its own ``current`` and ``selected``.

    Exceptions raised in any callback are shown in a red banner with the traceback (:attr:`errors`).
    """

    def __init__(self, ps: ProfileData, **filters: Any) -> None:
        plotly_lib()  # first: the page evaluates plotly.js while the tabs are built
        self.ps = ps
        self.state = ExplorerState(ps)
        self.errors = ErrorArea()
        self.filters = FilterBar(ps, self.errors, self._on_filtered)
        self.findings = FindingsTab(self.state, self.errors)
        self.overview = OverviewTab(self.state, self.errors)
        self.functions = FunctionsTab(self.state, self.errors)
        self.drilldown = DrilldownTab(self.state, self.errors)
        self.calltree = CalltreeTab(self.state, self.errors)
        self.diff = DiffTab(self.state, self.errors)
        self.hotspots = HotspotsTab(self.state, self.errors)
        self.callgraph = CallgraphTab(self.state, self.errors)
        self.tab_list: list[TabController] = [self.findings, self.overview, self.functions, self.drilldown,
                                              self.calltree, self.diff, self.hotspots, self.callgraph]  # fmt: skip
        # tabs not opened yet hold an empty box: their widgets get no view (and the page renders nothing for them)
        # until first shown (:meth:`on_tab` swaps the real one in)
        self.tabs = w.Tab(children=[self.tab_list[0].widget] + [w.VBox() for _ in self.tab_list[1:]],
                          titles=[t.title for t in self.tab_list])  # fmt: skip
        self.opened = {0}
        self.tabs.observe(self.on_tab, names="selected_index")
        self.state.observe(self.on_selection, names="selection")
        self.state.observe(self.on_drill_request, names="drill_target")
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
        """The visible tab's controller (its widgets are put in the tab the first time it is asked for)."""
        i = self.tabs.selected_index or 0
        if i not in self.opened:
            self.opened.add(i)
            children = list(self.tabs.children)
            children[i] = self.tab_list[i].widget
            self.tabs.children = children
        return self.tab_list[i]

    @property
    def selection(self) -> ProfileData:
        """The profiles that pass the filters (``state.selection``)."""
        return self.state.selection

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
        self.tabs.selected_index = self.tab_list.index(self.drilldown)
        return fid

    # ------------------------------------------------------------------------------------------ handlers
    def _on_filtered(self, ps: ProfileData) -> None:
        self.state.selection = ps

    def on_selection(self, change: dict[str, Any]) -> None:
        """The filters changed (every tab is stale now): draw the visible one."""
        self.active.ensure()

    @guarded
    def on_drill_request(self, change: dict[str, Any]) -> None:
        """A tab asked for a function in the drilldown (``state.drill``)."""
        if change["new"] is not None:
            self.drill(change["new"][1])

    @guarded
    def on_tab(self, change: dict[str, Any]) -> None:
        """A tab was shown: draw it if the filters or the focus it follows changed since it was last drawn."""
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
