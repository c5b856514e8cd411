"""Latency tab: the whole life of a task (publish, queue wait, run) per task, queue wait over time, and the
episodes when work waited."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as w

from ..analysis.latency import latency, latency_over_time, queue_wait_episodes
from ..charts.latency import latency_breakdown, queue_wait_timeline
from ._base import esc, guarded, html_table, message_figure, new_figure_widget, show_figure
from ._tab import TabController

if TYPE_CHECKING:
    from ._base import ErrorArea
    from ._state import ExplorerState

#: what the percentile control offers (the value drawn per stage)
PERCENTILES = ("p50", "p95", "p99")
#: the time bins the queue-wait line and the episodes are computed over
BINS = ("10s", "1min", "10min")
BIN_LABELS = {"10s": "10 s", "1min": "1 min", "10min": "10 min"}
TABLE_COLUMNS = ["task_name", "run", "stage", "n", "mean", "p50", "p95", "p99", "max"]
EPISODE_THRESHOLD_S = 1.0
#: the table's time columns, shown in the unit that suits each value (s, ms, µs)
SECONDS = {c: "seconds" for c in ("mean", "p50", "p95", "p99", "max")}


class LatencyTab(TabController):
    """Publish (producer profiles), queue wait and run (worker profiles) per task as stacked bars of the chosen
    percentile, queue wait over time in the chosen bins, the table behind both, and the queue-wait episodes.
    :attr:`current` is :func:`celerylab.analysis.latency` of the selection."""

    title = "Latency"

    def __init__(self, state: ExplorerState, errors: ErrorArea) -> None:
        super().__init__(state, errors)
        self.percentile = w.ToggleButtons(options=PERCENTILES, value="p50", description="stacked",
                                          tooltips=["median", "95th percentile", "99th percentile"],
                                          style={"button_width": "48px", "description_width": "56px"})  # fmt: skip
        self.bin = w.ToggleButtons(options=[(BIN_LABELS[b], b) for b in BINS], value="1min", description="bins",
                                   style={"button_width": "72px", "description_width": "40px"})  # fmt: skip
        self.percentile.observe(self.on_control, names="value")
        self.bin.observe(self.on_control, names="value")
        self.summary = w.HTML()
        self.breakdown_fig = new_figure_widget(320)
        self.timeline_fig = new_figure_widget(340)
        self.episodes = w.HTML()
        self.table = w.HTML()
        self.widget = w.VBox([
            w.HBox([self.percentile, self.bin]), self.summary, self.breakdown_fig, self.timeline_fig,
            self.episodes, self.table,
        ])  # fmt: skip
        self.widget.add_class("celerylab-latency")
        self.over_time = self.current

    @guarded
    def on_control(self, change: dict[str, Any]) -> None:
        """The percentile or the bin size changed: redraw from the current selection."""
        self.refresh()

    def refresh(self) -> None:
        ps = self.ps
        runs = ps.profiles["run"].nunique() if "run" in ps.profiles.columns else 0
        by = ["task_name", "run"] if runs > 1 else "task_name"
        lat = latency(ps, by=by)
        self.current = lat
        stages = set(lat["stage"]) if len(lat) else set()
        if not stages - {"run"}:
            self.summary.value = (
                "<div class='celerylab-summary'>No publish or queue-wait readings in the selection: profile "
                "producers (<code>celerylab.capture.install_producer</code>) and enable message timing to see "
                "where a task's life goes (docs/producer.md).</div>"
            )
            show_figure(self.breakdown_fig, message_figure("no publish or queue-wait readings"))
            show_figure(self.timeline_fig, message_figure(""))
            self.episodes.value = ""
            self.table.value = html_table(lat, [c for c in TABLE_COLUMNS if c in lat.columns], max_rows=40,
                                          formats=SECONDS)  # fmt: skip
            self.over_time = lat.iloc[0:0]
            return
        n = lat.groupby("stage")["n"].sum()
        names = (("publish", "publishes"), ("queue_wait", "queue-wait readings"), ("run", "runs"))
        parts = [f"<b>{int(n[s]):,}</b> {label}" for s, label in names if s in n]
        q = self.percentile.value
        self.summary.value = (
            f"<div class='celerylab-summary'>{' · '.join(parts)} · bars show the <b>{esc(q)}</b> of each stage"
            + (f" per task and run ({runs} runs)" if runs > 1 else "")
            + f", queue wait in <b>{esc(BIN_LABELS[self.bin.value])}</b> bins. Queue wait = start of run − "
            "max(publish, eta): two hosts' clocks (docs/producer.md).</div>"
        )
        show_figure(self.breakdown_fig, latency_breakdown(lat, value=q))
        over = latency_over_time(ps, freq=self.bin.value, by=by)
        self.over_time = over
        if len(over) and (over["stage"] == "queue_wait").any():
            title = f"Queue wait over time ({q} per {BIN_LABELS[self.bin.value]})"
            show_figure(self.timeline_fig, queue_wait_timeline(over, value=q, title=title))
        else:
            show_figure(self.timeline_fig, message_figure("no queue-wait readings in the selection"))
        episodes = queue_wait_episodes(ps, threshold=EPISODE_THRESHOLD_S, freq=self.bin.value)
        if len(episodes):
            shown = episodes.assign(tasks=episodes["tasks"].map(", ".join))
            self.episodes.value = (
                f"<b>Queue-wait episodes</b> (p95 over {EPISODE_THRESHOLD_S:g} s per {BIN_LABELS[self.bin.value]} bin: "
                "workers saturated or prefetch held the work)"
                + html_table(shown, max_rows=20, formats={"p95_max": "seconds", "n": "int"})
            )
        else:
            self.episodes.value = (f"<i>No queue-wait episode (no {BIN_LABELS[self.bin.value]} bin with p95 over "
                                   f"{EPISODE_THRESHOLD_S:g} s).</i>")  # fmt: skip
        per = "task, run and stage" if "run" in lat.columns else "task and stage"
        self.table.value = (f"<b>Per {per}, seconds</b>"
                            + html_table(lat, [c for c in TABLE_COLUMNS if c in lat.columns], max_rows=60,
                                         formats=SECONDS))  # fmt: skip
