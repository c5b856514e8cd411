"""Hotspots tab: DB statements and N+1 suspects, memory growth per worker process, allocation sites."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ipywidgets as w
import pandas as pd

from ..charts.hotspots import allocation_sites, memory_growth, sql_statements
from ._base import html_table, message_figure, new_figure_widget, show_figure
from ._data import allocations_frame, memory_frame, sql_frame
from ._tab import TabController

if TYPE_CHECKING:
    from ._base import ErrorArea
    from ._state import ExplorerState


class HotspotsTab(TabController):
    """Three sections over the filtered selection.  :attr:`sql`, :attr:`memory` and :attr:`allocations` hold the
    frames shown; :attr:`current` is the SQL frame; :attr:`selected` the N+1 suspects and leak suspects."""

    title = "Hotspots"

    def __init__(self, state: ExplorerState, errors: ErrorArea) -> None:
        super().__init__(state, errors)
        self.sql = pd.DataFrame()
        self.memory = pd.DataFrame()
        self.allocations = pd.DataFrame()
        self.sql_table = w.HTML()
        self.sql_fig = new_figure_widget(300)
        self.memory_table = w.HTML()
        self.memory_fig = new_figure_widget(320)
        self.alloc_fig = new_figure_widget(300)
        h = w.HTML
        self.widget = w.VBox(
            [
                h("<h4>Database statements <small>(N+1 suspects highlighted)</small></h4>"),
                self.sql_table,
                self.sql_fig,
                h("<h4>Memory growth per worker process <small>(leak suspects highlighted)</small></h4>"),
                self.memory_table,
                self.memory_fig,
                h("<h4>Allocation sites</h4>"),
                self.alloc_fig,
            ]
        )

    def refresh(self) -> None:
        ps = self.ps
        self.sql = sql_frame(ps)
        self.current = self.sql
        if len(self.sql):
            flags = self.sql["n_plus_one"].astype(bool).tolist() if "n_plus_one" in self.sql else None
            cols = ["sql", "count", "time_s", "mean_time_s", "n_profiles", "per_task", "max_per_task", "n_plus_one",
                    "task_names", "callers"]  # fmt: skip
            self.sql_table.value = html_table(self.sql, cols, max_rows=20, highlight=flags)
            show_figure(self.sql_fig, sql_statements(self.sql.head(20)))
        else:
            self.sql_table.value = "<i>no SQL captured in these profiles (capture with sql=True)</i>"
            show_figure(self.sql_fig, message_figure("no SQL data"))
        self.memory = memory_frame(ps)
        if len(self.memory):
            flags = self.memory["leak_suspect"].astype(bool).tolist() if "leak_suspect" in self.memory else None
            cols = ["hostname", "pid", "tasks", "rss_first_mib", "rss_last_mib", "growth_mib", "growth_per_task_mib",
                    "late_growth_mib", "trend", "leak_suspect", "suspect_tasks"]  # fmt: skip
            self.memory_table.value = html_table(self.memory, cols, max_rows=30, highlight=flags)
            p = ps.profiles
            workers = p["hostname"].astype(object).astype(str) + ":" + p["pid"].astype(str)
            show_figure(self.memory_fig, memory_growth(p.assign(worker=workers), by="worker"))
        else:
            self.memory_table.value = "<i>no memory data captured in these profiles (capture with memory=True)</i>"
            show_figure(self.memory_fig, message_figure("no memory data"))
        self.allocations = allocations_frame(ps)
        if len(self.allocations):
            show_figure(self.alloc_fig, allocation_sites(self.allocations.head(20)))
        else:
            show_figure(self.alloc_fig, message_figure("no allocation sites captured"))

    @property
    def selected(self) -> pd.DataFrame:
        parts = []
        if len(self.sql) and "n_plus_one" in self.sql:
            parts.append(self.sql.loc[self.sql["n_plus_one"].astype(bool)].assign(kind="n_plus_one"))
        if len(self.memory) and "leak_suspect" in self.memory:
            parts.append(self.memory.loc[self.memory["leak_suspect"].astype(bool)].assign(kind="leak_suspect"))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
