"""Functions tab: a sortable, filterable table of functions; a pick or a bar click opens the drilldown."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as w
import pandas as pd

from .. import analysis as an
from ..charts.functions import top_functions
from ._base import guarded, html_table, message_figure, new_figure_widget, show_figure
from ._tab import TabController

if TYPE_CHECKING:
    from ._base import ErrorArea
    from ._state import ExplorerState

SORT_COLUMNS = ["tottime", "cumtime", "ncalls", "pcalls", "tottime_mean", "cumtime_mean", "n_profiles", "label"]
TABLE_COLUMNS = ["name", "module", "line", "kind", "ncalls", "tottime", "cumtime", "tottime_mean", "share",
                 "n_profiles"]  # fmt: skip
KINDS = ["(all)", "app", "third-party", "stdlib", "builtin"]


def option_text(row: Any) -> str:
    """One line of the function picker (plain text: ipywidgets puts option labels in as text, not HTML)."""
    mod = f"  {row.module}:{row.line}" if getattr(row, "module", None) and row.kind != "builtin" else ""
    return f"{row.tottime:9.4f}s own  {row.cumtime:9.4f}s cum  {row.name}{mod}"


class FunctionsTab(TabController):
    """Top functions of the selection: sort by any column (either direction), filter by a text in the label and by
    kind, show ``n`` rows.  :attr:`current` is the table shown; :attr:`selected` the picked function's row."""

    title = "Functions"

    def __init__(self, state: ExplorerState, errors: ErrorArea) -> None:
        super().__init__(state, errors)
        self.sort_by = w.Dropdown(options=SORT_COLUMNS, value="tottime", description="sort by",
                                  layout=w.Layout(width="210px"), style={"description_width": "56px"})  # fmt: skip
        self.descending = w.ToggleButton(value=True, description="descending", layout=w.Layout(width="110px"))
        self.search = w.Text(value="", placeholder="text in file:line(name)", description="filter",
                             continuous_update=False, layout=w.Layout(width="280px"),
                             style={"description_width": "40px"})  # fmt: skip
        self.kind = w.Dropdown(options=KINDS, value="(all)", description="kind", layout=w.Layout(width="180px"),
                               style={"description_width": "36px"})  # fmt: skip
        self.n = w.BoundedIntText(value=25, min=1, max=1000, description="rows", layout=w.Layout(width="130px"),
                                  style={"description_width": "36px"})  # fmt: skip
        for c in (self.sort_by, self.descending, self.search, self.kind, self.n):
            c.observe(self.on_control, names="value")
        self.picker = w.Select(options=[], rows=10, layout=w.Layout(width="100%"))
        self.picker.observe(self.on_pick, names="value")
        self.drill_button = w.Button(description="drill down →", button_style="primary",
                                     layout=w.Layout(width="130px"))  # fmt: skip
        self.drill_button.on_click(self.on_drill)
        self.table = w.HTML()
        self.fig = new_figure_widget(420)
        self._all: pd.DataFrame | None = None
        self.widget = w.VBox(
            [
                w.HBox([self.sort_by, self.descending, self.search, self.kind, self.n]),
                w.HBox([self.picker], layout=w.Layout(width="100%")),
                self.drill_button,
                self.fig,
                self.table,
            ]
        )

    def on_selection(self, change: dict[str, Any]) -> None:
        super().on_selection(change)
        self._all = None

    def table_frame(self) -> pd.DataFrame:
        """All functions of the selection with the controls applied (the data behind the table)."""
        if self._all is None:
            t = an.top(self.ps, n=None)
            lines = self.ps.functions["line"].to_numpy()
            self._all = t.assign(line=lines[t["func_id"].to_numpy()]) if "line" not in t.columns else t
        df = self._all
        if self.search.value.strip():
            df = df.loc[df["label"].astype(str).str.contains(self.search.value.strip(), regex=False, case=False)]
        if self.kind.value != "(all)":
            df = df.loc[df["kind"].astype(str) == self.kind.value]
        by = self.sort_by.value
        df = df.sort_values([by, "func_id"], ascending=[not self.descending.value, True], kind="stable")
        return df.head(int(self.n.value)).reset_index(drop=True)

    def refresh(self) -> None:
        df = self.table_frame()
        self.current = df
        self.descending.description = "descending" if self.descending.value else "ascending"
        self.picker.options = [(option_text(r), int(r.func_id)) for r in df.itertuples(index=False)]
        self.table.value = html_table(df, TABLE_COLUMNS, max_rows=int(self.n.value))
        if not len(df):
            show_figure(self.fig, message_figure("no function matches"))
            return
        numeric = ("tottime", "cumtime", "ncalls", "pcalls", "tottime_mean", "cumtime_mean")
        value = self.sort_by.value if self.sort_by.value in numeric else "tottime"
        show_figure(self.fig, top_functions(df, value=value), on_click=self.on_bar_click)

    # ------------------------------------------------------------------------------------------ handlers
    @guarded
    def on_control(self, change: dict[str, Any]) -> None:
        """Sort / filter / row count changed: redraw the table."""
        self.refresh()

    @guarded
    def on_pick(self, change: dict[str, Any]) -> None:
        """A row of the picker was selected (nothing moves until 'drill down' or a bar click)."""

    @guarded
    def on_drill(self, _button: Any = None) -> None:
        """Open the picked function in the Drilldown tab."""
        if self.picker.value is None:
            raise ValueError("pick a function in the list first")
        self.state.drill(int(self.picker.value))

    @guarded
    def on_bar_click(self, trace: Any, points: Any, state: Any = None) -> None:
        """A bar was clicked: open that function in the Drilldown tab."""
        if not points.point_inds:
            return
        row = self.current.iloc[points.point_inds[0]]
        self.state.drill(int(row["func_id"]))

    @property
    def selected(self) -> pd.DataFrame:
        if self.picker.value is None or not len(self.current):
            return self.current.head(0)
        return self.current.loc[self.current["func_id"] == self.picker.value].reset_index(drop=True)
