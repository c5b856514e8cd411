"""Diff tab: two runs (or any two groups) compared; ranked deltas with significance, distributions side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as w
import pandas as pd

from ..charts._style import OTHER_COLOR
from ..charts.diff import diff_changes
from ..charts.overview import task_durations
from ._base import esc, guarded, html_table, message_figure, new_figure_widget, show_figure
from ._data import diff_frame, value_colors
from ._tab import TabController

if TYPE_CHECKING:
    from ..core.data import ProfileData
    from ._base import ErrorArea
    from ._state import ExplorerState

GROUP_COLUMNS = ["run", "task_name", "hostname", "state", "queue", "pool"]
#: the diff table: the task first, the short function name, the numbers (seconds per task invocation, a ratio, a
#: p-value, invocations), the full label last
TABLE_COLUMNS = ["task_name", "function", "status", "mean_a", "mean_b", "delta", "ratio", "contribution",
                 "p_adjusted", "calls_a", "calls_b", "n_a", "n_b", "label"]  # fmt: skip


class DiffTab(TabController):
    """Pick a grouping column (``run`` by default) and two of its values A and B; shows ``cl.diff`` of the
    filtered selection split by that column, with the API's defaults (each function compared within each task):
    the ranked changes (``task · function`` bars coloured by status), a table with p-values, and the duration
    distributions of both groups side by side (coloured as the runs are in every tab).  The dropdowns always
    show what is compared: A and B offer the column's values in the selection and fall back to its first two
    (A, B order of :func:`celerylab.analysis.diff.ordered_values`) when a filter hides a chosen one; :attr:`used`
    is the ``(column, A, B)`` of the last comparison.  :attr:`current` is the diff frame; :attr:`selected` its
    rows whose status is not ``same``."""

    title = "Diff"

    def __init__(self, state: ExplorerState, errors: ErrorArea) -> None:
        super().__init__(state, errors)
        cols = [c for c in GROUP_COLUMNS if c in state.data.profiles.columns]
        self.group_by = w.Dropdown(options=cols, value=cols[0] if cols else None, description="compare by",
                                   layout=w.Layout(width="240px"), style={"description_width": "84px"})  # fmt: skip
        self.a = w.Dropdown(options=[], description="A", layout=w.Layout(width="220px"),
                            style={"description_width": "16px"})  # fmt: skip
        self.b = w.Dropdown(options=[], description="B", layout=w.Layout(width="220px"),
                            style={"description_width": "16px"})  # fmt: skip
        self.significant_only = w.Checkbox(value=False, description="changed only", indent=False,
                                           layout=w.Layout(width="130px"))  # fmt: skip
        self.pooled = w.Checkbox(value=False, description="pool tasks", indent=False,
                                 tooltip="compare every task's invocations together (cl.diff(..., group_by=None))",
                                 layout=w.Layout(width="110px"))  # fmt: skip
        self.reset_button = w.Button(description="reset", layout=w.Layout(width="70px"),
                                     tooltip="compare by run, its first two values, every row")  # fmt: skip
        self.reset_button.on_click(self.on_reset)
        self.group_by.observe(self.on_group_by, names="value")
        for c in (self.a, self.b, self.significant_only, self.pooled):
            c.observe(self.on_control, names="value")
        self.summary = w.HTML()
        self.fig = new_figure_widget(420)
        self.dist_fig = new_figure_widget(360)
        self.table = w.HTML()
        self._mute = False
        self.used: tuple[Any, Any, Any] | None = None
        self.widget = w.VBox([w.HBox([self.group_by, self.a, self.b, self.significant_only, self.pooled,
                                      self.reset_button]),
                              self.summary,
                              self.fig, self.table, self.dist_fig])  # fmt: skip
        self._fill_values(keep=False)

    def _values(self) -> list[str]:
        """The values of the compare-by column in the selection, in A, B, … order (as text)."""
        from ..analysis.diff import ordered_values

        col = self.group_by.value
        if col is None or col not in self.ps.profiles.columns:
            return []
        return [str(v) for v in ordered_values(self.ps.profiles, col)]

    def _fill_values(self, *, keep: bool = True) -> None:
        """Offer the column's values in the selection; keep A and B when still there (``keep``), else the first
        two — so the dropdowns always show what the comparison uses."""
        vals = self._values()
        old = [v if keep and v in vals else None for v in (self.a.value, self.b.value)]
        if old[0] is None and old[1] is not None:
            old = [old[1], None]  # A first: one value left is A
        spare = iter(v for v in vals if v not in old)
        a, b = (v if v is not None else next(spare, None) for v in old)
        self._mute = True
        try:
            if list(self.a.options) != vals:
                self.a.options = vals
                self.b.options = vals
            self.a.value, self.b.value = a, b
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
        self._mute = True
        try:
            if by is not None:
                self.group_by.value = by
            self.a.options = self.b.options = self._values()
            self.a.value, self.b.value = a, b
        finally:
            self._mute = False
        self.refresh(keep=True)
        return self.current

    def reset(self) -> None:
        """Back to the defaults: compare by the first column (``run``), its first two values, all rows."""
        self._mute = True
        try:
            self.significant_only.value = False
            self.pooled.value = False
            if self.group_by.options:
                self.group_by.value = self.group_by.options[0]
        finally:
            self._mute = False
        self._fill_values(keep=False)
        self.refresh()

    def refresh(self, keep: bool = True) -> None:
        self._fill_values(keep=keep)  # a filter may have hidden A or B: the dropdowns show what is compared
        col = self.group_by.value
        self.used = (col, self.a.value, self.b.value)
        if self.a.value is None or self.b.value is None:
            self.summary.value = (f"<i>nothing to compare: the selection has fewer than two values of "
                                  f"{esc(col)}</i>")  # fmt: skip
            self.current = pd.DataFrame()
            self.table.value = ""
            show_figure(self.fig, message_figure("nothing to compare"))
            show_figure(self.dist_fig, message_figure(""))
            return
        a, b = self.sides()
        self.summary.value = (
            f"<div class='celerylab-diff-summary'>A = {esc(col)} <b>{esc(self.a.value)}</b>: {len(a):,} profiles · "
            f"B = {esc(col)} <b>{esc(self.b.value)}</b>: {len(b):,} profiles (after the filters) · "
            + ("every task's invocations pooled, per invocation" if self.pooled.value
               else "each function compared within each task, per task invocation")
            + "</div>"
        )  # fmt: skip
        if self.a.value == self.b.value:
            raise ValueError(f"Diff: A and B are both {self.a.value!r}; pick two different values")
        d = diff_frame(self.ps, col, self.a.value, self.b.value, pooled=self.pooled.value)
        self.current = d
        shown = self._shown()
        show_figure(self.fig, diff_changes(shown, n=25), on_click=self.on_bar_click)
        self.table.value = html_table(_table(shown), [c for c in TABLE_COLUMNS if c in d.columns or c == "function"],
                                      max_rows=40,
                                      highlight=(shown["status"].astype(str) == "slower").tolist())  # fmt: skip
        names = {f"A: {self.a.value}": self.a.value, f"B: {self.b.value}": self.b.value}
        palette = value_colors(self.state.data, col)
        both = pd.concat([a.profiles.assign(_group=f"A: {self.a.value}"),
                          b.profiles.assign(_group=f"B: {self.b.value}")], ignore_index=True)  # fmt: skip
        colors = {k: palette.get(str(v), OTHER_COLOR) for k, v in names.items()}
        show_figure(self.dist_fig, task_durations(both, by="task_name", color="_group", colors=colors,
                                                  legend_title=str(col),
                                                  title="Duration per task invocation, A and B"))  # fmt: skip

    def _shown(self) -> pd.DataFrame:
        d = self.current
        return d.loc[d["status"].astype(str) != "same"] if self.significant_only.value else d

    # ------------------------------------------------------------------------------------------ handlers
    @guarded
    def on_group_by(self, change: dict[str, Any]) -> None:
        """The grouping column changed: offer its values, compare the first two."""
        if not self._mute:
            self.refresh(keep=False)

    @guarded
    def on_control(self, change: dict[str, Any]) -> None:
        """A, B, 'changed only' or 'pool tasks' changed: compare again."""
        if not self._mute:
            self.refresh()

    @guarded
    def on_reset(self, _button: Any = None) -> None:
        """The reset button: back to the defaults (an error this tab showed goes)."""
        self.reset()

    @guarded
    def on_bar_click(self, trace: Any, points: Any, state: Any = None) -> None:
        """A bar was clicked: open that function (by label) in the Drilldown tab."""
        if not points.point_inds:
            return
        row = int(trace.customdata[points.point_inds[0]][1])
        label = str(self._shown()["label"].iloc[row])
        self.state.drill(label)

    @property
    def selected(self) -> pd.DataFrame:
        if not len(self.current):
            return self.current
        return self.current.loc[self.current["status"].astype(str) != "same"].reset_index(drop=True)


def _table(d: pd.DataFrame) -> pd.DataFrame:
    """The diff rows as the table shows them: a short ``function`` name next to the full label."""
    from ..core.rules import short_label

    return d.assign(function=[short_label(x) for x in d["label"].astype(str)])
