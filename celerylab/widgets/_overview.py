"""Overview tab: tasks, counts, and time distributions per task and run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ipywidgets as w

from ..charts.overview import task_durations, task_totals
from ._base import esc, html_table, message_figure, new_figure_widget, show_figure
from ._data import value_colors
from ._tab import TabController

if TYPE_CHECKING:
    from ._base import ErrorArea
    from ._state import ExplorerState

SUMMARY_COLUMNS = ["task_name", "profiles", "failed", "wall_mean_s", "wall_p50_s", "wall_p95_s", "total_s"]


class OverviewTab(TabController):
    """Summary counts, a task table, summed time per task and the duration distribution per task and run.
    :attr:`current` is :meth:`ProfileSet.task_summary` of the selection."""

    title = "Overview"

    def __init__(self, state: ExplorerState, errors: ErrorArea) -> None:
        super().__init__(state, errors)
        self.summary = w.HTML()
        self.table = w.HTML()
        self.totals_fig = new_figure_widget(260)
        self.durations_fig = new_figure_widget(380)
        self.widget = w.VBox([self.summary, self.table, self.durations_fig, self.totals_fig])

    def refresh(self) -> None:
        ps = self.ps
        s = ps.summary()
        runs = ", ".join(s["runs"]) or "—"
        self.summary.value = (
            f"<div class='celerylab-summary'><b>{s['profiles']:,}</b> profiles · <b>{s['tasks']}</b> tasks · "
            f"<b>{s['workers']}</b> worker processes · <b>{s['functions']:,}</b> functions · runs: {esc(runs)}"
            + (f" · <span style='color:#a40000'>{s['errors']} load errors</span>" if s["errors"] else "")
            + "</div>"
        )
        ts = ps.task_summary()
        self.current = ts
        self.table.value = html_table(ts, SUMMARY_COLUMNS, max_rows=30)
        if not len(ps):
            show_figure(self.durations_fig, message_figure("no profiles match the filters"))
            show_figure(self.totals_fig, message_figure(""))
            return
        every = self.state.data.profiles
        # split by run when the set has runs, also when a filter leaves one: its colour says which it is
        color = "run" if "run" in every.columns and every["run"].nunique() > 1 else None
        colors = value_colors(self.state.data, "run") if color else None  # a run's colour stays under the filters
        show_figure(self.durations_fig, task_durations(ps.profiles, by="task_name", color=color, colors=colors))
        show_figure(self.totals_fig, task_totals(ts))
