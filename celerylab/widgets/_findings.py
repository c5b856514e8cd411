"""The Findings tab (the explorer's opening view): what changed between the two runs, per task, and why."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import ipywidgets as w
import pandas as pd

from .. import fmt
from ..analysis.findings import findings_evidence
from ..charts._style import STATUS_COLORS
from ..charts.findings import findings_chart
from ._base import esc, guarded, message_figure, new_figure_widget, show_figure
from ._data import findings_frame
from ._tab import TabController

if TYPE_CHECKING:
    from ._base import ErrorArea
    from ._state import ExplorerState

#: the profiles column the findings compare (A = its first value met, B = the other)
SPLIT_BY = "run"


class FindingsTab(TabController):
    """Ranked findings (:func:`celerylab.analysis.findings` over the filtered selection, split by run): a chart of
    the tasks whose time changed, and per finding its headline, its evidence (functions, SQL statements with the
    line that issued them, allocation sites) and a button that opens its cause in the Drilldown.  A click on a bar
    does the same.  :attr:`current` is the findings frame."""

    title = "Findings"
    #: compute the findings in a background thread (the explorer shows at once, the findings ~1 s later): ``None``
    #: = when running in a Jupyter kernel; tests set ``False`` for synchronous results
    background: bool | None = None

    def __init__(self, state: ExplorerState, errors: ErrorArea) -> None:
        super().__init__(state, errors)
        self._generation = 0
        self.thread: threading.Thread | None = None
        self.summary = w.HTML()
        self.fig = new_figure_widget(260)
        self.items = w.VBox()
        self.buttons: list[w.Button] = []
        self.widget = w.VBox([self.summary, self.fig, self.items])
        self.widget.add_class("celerylab-findings")

    def refresh(self) -> None:
        ps = self.ps
        p = ps.profiles
        runs = p[SPLIT_BY].dropna().astype(str).unique().tolist() if SPLIT_BY in p.columns else []
        if len(runs) != 2:
            self.current = pd.DataFrame()
            why = f"the selection has {len(runs)} value(s) of {SPLIT_BY!r}" if runs or SPLIT_BY in p.columns \
                else f"the profiles have no {SPLIT_BY!r} column"  # fmt: skip
            self.summary.value = (f"<div class='celerylab-findings-summary'>Findings compare two runs; {esc(why)}. "
                                  "Pick a wider filter, or see Overview and Diff.</div>")  # fmt: skip
            show_figure(self.fig, message_figure("no two runs to compare"))
            self.items.children = ()
            return
        counts = p[SPLIT_BY].astype(str).value_counts()
        a, b = runs[0], runs[1]
        head = (f"<b>A</b> = run {esc(a)} ({fmt.meta(int(counts[a]))} profiles) · <b>B</b> = run {esc(b)} "
                f"({fmt.meta(int(counts[b]))} profiles) · ")  # fmt: skip
        self._generation += 1
        if self._in_background():
            self.summary.value = f"<div class='celerylab-findings-summary'>{head}comparing the runs…</div>"
            self.items.children = ()
            self.fig.layout.display = "none"  # no empty chart while the findings are computed
            self.thread = threading.Thread(target=self._compute, args=(ps, head, self._generation), daemon=True)
            self.thread.start()
        else:
            self._compute(ps, head, self._generation)

    def _in_background(self) -> bool:
        if self.background is not None:
            return self.background
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - ipywidgets depends on IPython
            return False
        return getattr(get_ipython(), "kernel", None) is not None

    def _compute(self, ps: Any, head: str, generation: int) -> None:
        """Compute and show the findings of ``ps`` unless the selection changed meanwhile (a newer generation)."""
        try:
            if self._in_background():  # the ranked changes first (chart), then their evidence
                quick = findings_frame(ps, SPLIT_BY, evidence=False)
                if generation != self._generation:
                    return
                self._show(quick, head, note="collecting the evidence…")
            found = findings_frame(ps, SPLIT_BY)
            if generation == self._generation:
                self._show(found, head)
        except Exception as e:
            self.errors.report(e, "FindingsTab.refresh", source=self)

    def _show(self, found: pd.DataFrame, head: str, note: str = "") -> None:
        self.current = found
        self.fig.layout.display = ""
        if not len(found):
            self.summary.value = (f"<div class='celerylab-findings-summary'>{head}no task changed significantly "
                                  "(time or memory).</div>")  # fmt: skip
            show_figure(self.fig, message_figure("no significant change"))
            self.items.children = ()
            return
        self.summary.value = (f"<div class='celerylab-findings-summary'>{head}<b>{len(found)}</b> findings, "
                              f"largest first; each opens its cause in the Drilldown. {esc(note)}</div>")  # fmt: skip
        if (found["kind"] == "time").any():
            show_figure(self.fig, findings_chart(found), on_click=self.on_bar_click)
        else:
            show_figure(self.fig, message_figure("no task's time changed significantly (memory findings below)"))
        if note:
            self.items.children = ()
            return
        evidence = findings_evidence(found)
        boxes, self.buttons = [], []
        for _, row in found.iterrows():
            ev = evidence.loc[evidence["rank"] == row["rank"]]
            boxes.append(self._item(row, ev))
        self.items.children = tuple(boxes)

    def _item(self, row: pd.Series, ev: pd.DataFrame) -> w.Widget:
        worse, better = STATUS_COLORS["slower"], STATUS_COLORS["faster"]  # the one palette of every chart
        color = {"slower": worse, "grows": worse, "faster": better, "shrinks": better}
        head = w.HTML(
            f"<div class='celerylab-finding' style='border-left:4px solid {color.get(row['direction'], '#999')};"
            f"padding:2px 8px;margin-top:6px'><b>{int(row['rank'])}.</b> {esc(row['headline'])}</div>"
        )
        table = w.HTML(evidence_table(ev))
        cause = row.get("cause_label")
        button = w.Button(description=f"drill into {row['cause']}" if isinstance(cause, str) else "no cause found",
                          disabled=not isinstance(cause, str), tooltip=str(cause or ""),
                          layout=w.Layout(width="auto"))  # fmt: skip
        button.on_click(lambda _b, label=cause: self.on_drill(label))
        self.buttons.append(button)
        return w.VBox([head, w.HBox([button]), table])

    @guarded
    def on_drill(self, label: str | None) -> None:
        """Open a finding's cause (a function label) in the Drilldown."""
        if label:
            self.state.drill(label)

    @guarded
    def on_bar_click(self, trace: Any, points: Any, state: Any = None) -> None:
        """A task's bar was clicked: open that finding's cause in the Drilldown."""
        if not points.point_inds or not len(self.current):
            return
        rank = int(trace.customdata[points.point_inds[0]][0])
        row = self.current.loc[self.current["rank"] == rank].iloc[0]
        if isinstance(row["cause_label"], str):
            self.state.drill(row["cause_label"])


_KIND_NAMES = {"cause": "cause", "function": "exclusive time", "sql": "SQL", "allocation": "allocated"}
SQL_SHOWN = 200  # characters of a statement sent; the cell cuts it with an ellipsis, the full text is on hover


def evidence_table(ev: pd.DataFrame) -> str:
    """A finding's evidence as an HTML table: one line per item (a long SQL statement is cut with an ellipsis, its
    full text and the full function label / path on hover), amounts with their unit, never wrapped."""
    cell = "padding:1px 8px;white-space:nowrap"
    rows = []
    for e in ev.itertuples(index=False):
        label = str(e.label)
        full = str(e.detail)
        if e.kind == "sql":
            sql = full if len(full) <= SQL_SHOWN else full[: SQL_SHOWN - 1] + "…"
            text = f"{esc(label)} " + ("<b style='color:#d62728'>N+1</b> " if e.n_plus_one else "") \
                + f"<code>{esc(sql)}</code>"  # fmt: skip
        else:
            text = esc(label)
        rows.append(
            f"<tr><td style='{cell}'>{esc(_KIND_NAMES.get(str(e.kind), e.kind))}</td>"
            f"<td style='{cell}' title='{esc(full)}'><span style='display:inline-block;max-width:560px;"
            f"overflow:hidden;text-overflow:ellipsis;vertical-align:bottom'>{text}</span></td>"
            + "".join(
                f"<td style='{cell};text-align:right'>{esc(_amount(v, str(e.unit), signed=i == 2))}</td>"
                for i, v in enumerate((e.mean_a, e.mean_b, e.delta))
            )
            + "</tr>"
        )
    head = "".join(f"<th style='{cell};text-align:{al}'>{h}</th>" for h, al in
                   (("evidence", "left"), ("where", "left"), ("A per task", "right"), ("B per task", "right"),
                    ("change", "right")))  # fmt: skip
    return (f"<table class='celerylab-table celerylab-evidence' style='border-collapse:collapse;font-size:12px'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")  # fmt: skip


def _amount(v: Any, unit: str, *, signed: bool = False) -> str:
    if unit == "s":
        text = fmt.seconds(float(v))
    elif unit == "bytes":
        text = fmt.nbytes(float(v))
    else:
        text = fmt.value(float(v), "number") + " executions"
    return ("+" + text) if signed and float(v) > 0 else text
