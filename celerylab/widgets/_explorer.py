"""The explorer: a filter bar over tabs (Findings, Overview, Functions, Drilldown, Call tree, Diff, Hotspots,
Latency, Call graph)."""

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
from ._latency import LatencyTab
from ._overview import OverviewTab
from ._plot import plotly_lib
from ._state import ExplorerState
from ._tab import TabController

if TYPE_CHECKING:
    from ..core.data import FuncRef, ProfileData


#: the tabs, in order: (attribute, controller class)
TABS: list[tuple[str, type[TabController]]] = [
    ("findings", FindingsTab), ("overview", OverviewTab), ("functions", FunctionsTab), ("drilldown", DrilldownTab),
    ("calltree", CalltreeTab), ("diff", DiffTab), ("hotspots", HotspotsTab), ("latency", LatencyTab),
    ("callgraph", CallgraphTab),
]  # fmt: skip
#: attribute -> tab index
TAB_INDEX = {name: i for i, (name, _) in enumerate(TABS)}


def _tab_property(name: str, doc: str) -> property:
    return property(lambda self: self.controller(TAB_INDEX[name]), doc=doc)


class Explorer:
    """Interactive explorer of a :class:`~celerylab.ProfileSet`; build it with :func:`explore`.

    The filters apply to every tab.  State can be read back from Python, and observed (:attr:`state`, traitlets):

    * :attr:`state` — :class:`~._state.ExplorerState`: ``data``, ``selection``, ``focus``; tabs talk only through it;
    * :attr:`selection` — the filtered ProfileSet; :attr:`profiles` its profile rows;
    * :attr:`current` — the frame the visible tab shows (task summary, function table, callers+callees, diff…);
    * :attr:`selected` — the function in drilldown focus (one row with its totals), or empty;
    * each tab controller (:attr:`findings`, :attr:`overview`, :attr:`functions`, :attr:`drilldown`,
      :attr:`calltree`, :attr:`diff`, :attr:`hotspots`, :attr:`latency`, :attr:`callgraph`) has its own ``current``
      and ``selected``.

    Exceptions raised in any callback are shown in a red banner with the traceback (:attr:`errors`).
    """

    def __init__(self, ps: ProfileData, **filters: Any) -> None:
        plotly_lib()  # first: the page evaluates plotly.js while the tabs are built
        self.ps = ps
        self.state = ExplorerState(ps)
        self.errors = ErrorArea()
        self.filters = FilterBar(ps, self.errors, self._on_filtered)
        # tab controllers are made when first needed (shown, or asked for: ``app.hotspots``), so a tab not opened
        # yet sends no widget to the page; its place holds an empty box until then (:attr:`active` swaps it in)
        self._made: dict[int, TabController] = {}
        self._observing = False
        self.tabs = w.Tab(children=[self.controller(0).widget] + [w.VBox() for _ in TABS[1:]],
                          titles=[cls.title for _, cls in TABS])  # fmt: skip
        self.opened = {0}
        self.tabs.observe(self.on_tab, names="selected_index")
        self.state.observe(self.on_selection, names="selection")
        self._observing = True
        self.state.observe(self.on_drill_request, names="drill_target")
        self.widget = w.VBox([self.filters.widget, self.errors.widget, self.tabs],
                             layout=w.Layout(width="100%"))  # fmt: skip
        self.widget.add_class("celerylab-explorer")
        if filters:
            self.filters.set(**filters)
        else:
            self.active.ensure()

    # ---------------------------------------------------------------------------------------------- tabs
    def controller(self, i: int) -> TabController:
        """The controller of tab ``i``, made on first use."""
        if i not in self._made:
            self._made[i] = TABS[i][1](self.state, self.errors)
            if self._observing:  # stay the last observer of the selection: tabs mark themselves stale first
                self.state.unobserve(self.on_selection, names="selection")
                self.state.observe(self.on_selection, names="selection")
        return self._made[i]

    @property
    def tab_list(self) -> list[TabController]:
        """Every tab's controller, in tab order (makes those not made yet)."""
        return [self.controller(i) for i in range(len(TABS))]

    findings = _tab_property("findings", "The Findings tab (opening view).")
    overview = _tab_property("overview", "The Overview tab.")
    functions = _tab_property("functions", "The Functions tab.")
    drilldown = _tab_property("drilldown", "The Drilldown tab.")
    calltree = _tab_property("calltree", "The Call tree tab.")
    diff = _tab_property("diff", "The Diff tab.")
    hotspots = _tab_property("hotspots", "The Hotspots tab.")
    latency = _tab_property("latency", "The Latency tab (publish, queue wait, run).")
    callgraph = _tab_property("callgraph", "The Call graph tab.")

    # --------------------------------------------------------------------------------------------- state
    @property
    def active(self) -> TabController:
        """The visible tab's controller (its widgets are put in the tab the first time it is asked for)."""
        i = self.tabs.selected_index or 0
        if i not in self.opened:
            self.opened.add(i)
            children = list(self.tabs.children)
            children[i] = self.controller(i).widget
            self.tabs.children = children
        return self.controller(i)

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
        for i, (_, cls) in enumerate(TABS):
            if cls.title.lower() == tab.lower():
                self.tabs.selected_index = i
                t = self.active
                t.ensure()
                return t
        raise KeyError(f"no tab {tab!r}; tabs are {[cls.title for _, cls in TABS]}")

    def drill(self, func: FuncRef) -> int:
        """Open ``func`` (func_id, label or unique name fragment) in the Drilldown tab; returns its func_id."""
        fid = self.drilldown.move_to(func)
        self.tabs.selected_index = TAB_INDEX["drilldown"]
        return fid

    # ------------------------------------------------------------------------------------------ handlers
    def _on_filtered(self, ps: ProfileData) -> None:
        """The filters applied without an error: an error shown before (a bad filter, a failed tab) is stale now,
        so it goes (a redraw that fails again shows its own)."""
        self.errors.clear()
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
