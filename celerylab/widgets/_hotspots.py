"""Hotspots tab: DB statements and N+1 suspects, memory growth per worker process, allocation sites."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as w
import pandas as pd

from ..analysis.findings import short_site
from ..analysis.hotspots import RSS_GROWTH_MARK, rss_sequence
from ..charts.hotspots import allocation_sites, memory_growth, rss_over_tasks, sql_statements
from ._base import esc, guarded, html_table, message_figure, new_figure_widget, show_figure
from ._data import allocations_frame, memory_frame, sql_frame
from ._tab import TabController

if TYPE_CHECKING:
    from ._base import ErrorArea
    from ._state import ExplorerState


class HotspotsTab(TabController):
    """Three sections over the filtered selection.  :attr:`sql`, :attr:`memory`, :attr:`rss` (RSS after each task
    along each worker process, :func:`celerylab.analysis.rss_sequence`) and :attr:`allocations` hold the frames
    shown; :attr:`current` is the SQL frame; :attr:`selected` the N+1 suspects and leak suspects.  Every number
    comes from the filtered profiles only."""

    title = "Hotspots"
    #: SQL rows shown at first, and added by each "show more"
    page = 10

    def __init__(self, state: ExplorerState, errors: ErrorArea) -> None:
        super().__init__(state, errors)
        self.sql = pd.DataFrame()
        self.memory = pd.DataFrame()
        self.rss = pd.DataFrame()
        self.allocations = pd.DataFrame()
        self.sql_table = w.HTML()
        self.sql_shown = self.page
        self.sql_more = w.Button(description="show more", layout=w.Layout(width="auto", display="none"))
        self.sql_more.on_click(self.on_sql_more)
        self.sql_pick = w.Dropdown(options=[], value=None, description="full SQL of", layout=w.Layout(width="70%"),
                                   style={"description_width": "80px"})  # fmt: skip
        self.sql_pick.observe(self.on_sql_pick, names="value")
        self.sql_full = w.HTML()
        self.sql_fig = new_figure_widget(300)
        self.memory_table = w.HTML()
        self.memory_fig = new_figure_widget(320)
        self.rss_fig = new_figure_widget(380)
        self.alloc_fig = new_figure_widget(300)
        h = w.HTML
        self.widget = w.VBox(
            [
                h("<h4>Database statements <small>(N+1 suspects highlighted)</small></h4>"),
                self.sql_table,
                self.sql_more,
                self.sql_pick,
                self.sql_full,
                self.sql_fig,
                h("<h4>Memory growth per worker process <small>(leak suspects highlighted)</small></h4>"),
                self.memory_table,
                self.memory_fig,
                self.rss_fig,
                h("<h4>Allocation sites</h4>"),
                self.alloc_fig,
            ]
        )

    def refresh(self) -> None:
        ps = self.ps
        self.sql = sql_frame(ps)
        self.current = self.sql
        self.sql_shown = self.page
        self.sql_full.value = ""
        if len(self.sql):
            self._draw_sql_table()
            self.sql_pick.options = [(f"{i + 1}. {_one_line(q, 90)}", i) for i, q in enumerate(self.sql["sql"])]
            self.sql_pick.value = None
            self.sql_pick.layout.display = ""
            show_figure(self.sql_fig, sql_statements(self.sql.head(20)))
        else:
            self.sql_table.value = "<i>no SQL captured in these profiles (capture with sql=True)</i>"
            self.sql_more.layout.display = "none"
            self.sql_pick.options = []
            self.sql_pick.layout.display = "none"
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
        self.rss = rss_sequence(ps, min_growth=RSS_GROWTH_MARK)
        if len(self.rss):
            show_figure(self.rss_fig, rss_over_tasks(self.rss, min_growth=RSS_GROWTH_MARK))
        else:
            show_figure(self.rss_fig, message_figure("no RSS readings in these profiles"))
        self.allocations = allocations_frame(ps)
        if len(self.allocations):
            show_figure(self.alloc_fig, allocation_sites(self.allocations.head(20)))
        else:
            show_figure(self.alloc_fig, message_figure("no allocation sites captured"))

    def _draw_sql_table(self) -> None:
        """The first :attr:`sql_shown` statements, each on one line (cut with an ellipsis; the full text through
        :attr:`sql_pick`), callers as ``file.py:line(function)``; a "show more" button while rows are left."""
        shown = self.sql.head(self.sql_shown).assign(
            sql=[_nowrap(_one_line(q, SQL_WIDTH)) for q in self.sql["sql"].head(self.sql_shown)],
            callers=[_nowrap(_one_line(", ".join(short_site(c) for c in v.split(", ")), 60)) if isinstance(v, str)
                     else v for v in self.sql["callers"].head(self.sql_shown)],
            task_names=[_one_line(v, 40) for v in self.sql["task_names"].head(self.sql_shown)],
        )  # fmt: skip
        flags = shown["n_plus_one"].astype(bool).tolist() if "n_plus_one" in shown else None
        cols = ["sql", "count", "time_s", "mean_time_s", "n_profiles", "per_task", "max_per_task", "n_plus_one",
                "task_names", "callers"]  # fmt: skip
        self.sql_table.value = html_table(shown, cols, max_rows=self.sql_shown, highlight=flags)
        left = len(self.sql) - min(self.sql_shown, len(self.sql))
        self.sql_more.description = f"show {min(left, self.page)} more ({min(self.sql_shown, len(self.sql))} of " \
            f"{len(self.sql)} statements shown)"  # fmt: skip
        self.sql_more.layout.display = "" if left > 0 else "none"

    @guarded
    def on_sql_more(self, _button: Any = None) -> None:
        """Show :attr:`page` more statements."""
        self.sql_shown += self.page
        self._draw_sql_table()

    @guarded
    def on_sql_pick(self, change: dict[str, Any]) -> None:
        """A statement was picked: show its full text and every line that issued it."""
        i = change["new"]
        if i is None or not len(self.sql):
            self.sql_full.value = ""
            return
        row = self.sql.iloc[int(i)]
        self.sql_full.value = (
            f"<pre class='celerylab-sql' style='white-space:pre-wrap;margin:2px 0'>{esc(row['sql'])}</pre>"
            f"<div style='font-size:12px'>issued by: {esc(row.get('callers') or '—')}</div>"
        )

    @property
    def selected(self) -> pd.DataFrame:
        parts = []
        if len(self.sql) and "n_plus_one" in self.sql:
            parts.append(self.sql.loc[self.sql["n_plus_one"].astype(bool)].assign(kind="n_plus_one"))
        if len(self.memory) and "leak_suspect" in self.memory:
            parts.append(self.memory.loc[self.memory["leak_suspect"].astype(bool)].assign(kind="leak_suspect"))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


#: characters of a statement in the SQL table (one line; the full text is one pick away)
SQL_WIDTH = 80


def _one_line(text: Any, width: int) -> Any:
    """``text`` on one line (whitespace collapsed), cut to ``width`` characters with an ellipsis."""
    if not isinstance(text, str):
        return text
    t = " ".join(text.split())
    return t if len(t) <= width else t[: width - 1] + "…"


def _nowrap(text: str) -> str:
    """Spaces as no-break spaces: the browser keeps the text on one line (the table box scrolls sideways)."""
    return text.replace(" ", "\u00a0")
