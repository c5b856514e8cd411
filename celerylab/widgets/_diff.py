"""Diff tab: two runs (or any two groups) compared; ranked deltas with significance, distributions side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as w
import pandas as pd

from ..charts.diff import diff_changes
from ..charts.overview import task_durations
from ._base import esc, guarded, html_table, message_figure, new_figure_widget, show_figure
from ._data import diff_frame
from ._tab import TabController

if TYPE_CHECKING:
    from ..core.data import ProfileData
    from ._base import ErrorArea
    from ._state import ExplorerState

GROUP_COLUMNS = ["run", "task_name", "hostname", "state", "queue", "pool"]
TABLE_COLUMNS = ["label", "status", "mean_a", "mean_b", "delta", "ratio", "contribution", "p_value", "p_adjusted",
                 "calls_a", "calls_b", "n_a", "n_b"]  # fmt: skip


class DiffTab(TabController):
    """Pick a grouping column (``run`` by default) and two of its values A and B; shows ``cl.diff(A, B)`` of the
    filtered selection: the ranked changes (bars coloured by status), a table with p-values, and the duration
    distributions of both groups side by side.  :attr:`current` is the diff frame; :attr:`selected` its rows
    whose status is not ``same``."""

    title = "Diff"

    def __init__(self, state: ExplorerState, errors: ErrorArea) -> None:
        super().__init__(state, errors)
        cols = [c for c in GROUP_COLUMNS if c in state.data.profiles.columns]
        self.group_by = w.Dropdown(options=cols, value=cols[0] if cols else None, description="compare by",
                                   layout=w.Layout(width="220px"), style={"description_width": "72px"})  # fmt: skip
        self.a = w.Dropdown(options=[], description="A", layout=w.Layout(width="220px"),
                            style={"description_width": "16px"})  # fmt: skip
        self.b = w.Dropdown(options=[], description="B", layout=w.Layout(width="220px"),
                            style={"description_width": "16px"})  # fmt: skip
        self.significant_only = w.Checkbox(value=False, description="changed only", indent=False,
                                           layout=w.Layout(width="130px"))  # fmt: skip
        self.group_by.observe(self.on_group_by, names="value")
        for c in (self.a, self.b, self.significant_only):
            c.observe(self.on_control, names="value")
        self.summary = w.HTML()
        self.fig = new_figure_widget(420)
        self.dist_fig = new_figure_widget(360)
        self.table = w.HTML()
        self._mute = False
        self.widget = w.VBox([w.HBox([self.group_by, self.a, self.b, self.significant_only]), self.summary,
                              self.fig, self.table, self.dist_fig])  # fmt: skip
        self._fill_groups()

    def _values(self) -> list[str]:
        col = self.group_by.value
        if col is None or col not in self.state.data.profiles.columns:
            return []
        return sorted(self.state.data.profiles[col].dropna().astype(str).unique().tolist())

    def _fill_groups(self) -> None:
        vals = self._values()
        self._mute = True
        try:
            self.a.options = vals
            self.b.options = vals
            prefer = [v for v in ("baseline", "candidate") if v in vals]
            if len(prefer) == 2:
                self.a.value, self.b.value = prefer
            elif len(vals) >= 2:
                self.a.value, self.b.value = vals[0], vals[1]
            elif vals:
                self.a.value = self.b.value = vals[0]
        finally:
            self._mute = False

    def sides(self) -> tuple[ProfileData, ProfileData]:
        """The filtered profiles of group A and of group B."""
        col = self.group_by.value
        if col is None or self.a.value is None or self.b.value is None:
            raise ValueError("Diff: pick a column and two values to compare")
        text = self.ps.profiles[col].astype(object).map(lambda v: None if v is None or v != v else str(v))
        a = self.ps.where((text == self.a.value).to_numpy())
        b = self.ps.where((text == self.b.value).to_numpy())
        return a, b

    def compare(self, a: str, b: str, *, by: str | None = None) -> pd.DataFrame:
        """Set the comparison from Python (``by`` column, values ``a`` and ``b``) and return the diff frame."""
        if by is not None:
            self.group_by.value = by
        self._mute = True
        try:
            self.a.value, self.b.value = a, b
        finally:
            self._mute = False
        self.refresh()
        return self.current

    def refresh(self) -> None:
        col = self.group_by.value
        if self.a.value is None or self.b.value is None:
            self.summary.value = "<i>nothing to compare: the set has fewer than two groups</i>"
            self.current = pd.DataFrame()
            show_figure(self.fig, message_figure("nothing to compare"))
            return
        a, b = self.sides()
        self.summary.value = (
            f"<div class='celerylab-diff-summary'>A = {esc(col)} <b>{esc(self.a.value)}</b>: {len(a):,} profiles · "
            f"B = {esc(col)} <b>{esc(self.b.value)}</b>: {len(b):,} profiles (after the filters)</div>"
        )
        if self.a.value == self.b.value:
            raise ValueError(f"Diff: A and B are both {self.a.value!r}; pick two different values")
        if not len(a) or not len(b):
            self.current = pd.DataFrame()
            show_figure(self.fig, message_figure("one side has no profiles under the current filters"))
            show_figure(self.dist_fig, message_figure(""))
            self.table.value = ""
            return
        d = diff_frame(a, b)
        self.current = d
        shown = d.loc[d["status"].astype(str) != "same"] if self.significant_only.value else d
        show_figure(self.fig, diff_changes(shown, n=25), on_click=self.on_bar_click)
        self.table.value = html_table(shown, TABLE_COLUMNS, max_rows=40,
                                      highlight=(shown["status"].astype(str) == "slower").tolist())  # fmt: skip
        both = pd.concat([a.profiles.assign(_group="A: " + str(self.a.value)),
                          b.profiles.assign(_group="B: " + str(self.b.value))], ignore_index=True)  # fmt: skip
        show_figure(self.dist_fig, task_durations(both, by="task_name", color="_group"))

    # ------------------------------------------------------------------------------------------ handlers
    @guarded
    def on_group_by(self, change: dict[str, Any]) -> None:
        """The grouping column changed: offer its values, compare the first two."""
        self._fill_groups()
        self.refresh()

    @guarded
    def on_control(self, change: dict[str, Any]) -> None:
        """A, B or 'changed only' changed: compare again."""
        if not self._mute:
            self.refresh()

    @guarded
    def on_bar_click(self, trace: Any, points: Any, state: Any = None) -> None:
        """A bar was clicked: open that function (by label) in the Drilldown tab."""
        if not points.point_inds:
            return
        shown = self.current.loc[self.current["status"].astype(str) != "same"] if self.significant_only.value \
            else self.current  # fmt: skip
        label = str(shown["label"].iloc[points.point_inds[0]])
        self.state.drill(label)

    @property
    def selected(self) -> pd.DataFrame:
        if not len(self.current):
            return self.current
        return self.current.loc[self.current["status"].astype(str) != "same"].reset_index(drop=True)
