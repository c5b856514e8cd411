"""Drilldown tab: callers ← function → callees; click to move, breadcrumb back."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import ipywidgets as w
import pandas as pd

from .. import analysis as an
from ..charts._style import group_labels, plotly_text
from ..charts.drilldown import bar_data, neighbours, neighbours_height, per_profile, side_title
from ._base import esc, guarded, message_figure, new_figure_widget, show_figure
from ._tab import TabController

if TYPE_CHECKING:
    from ._base import ErrorArea
    from ._state import ExplorerState

MAX_PICKER_OPTIONS = 3000
BREADCRUMB_SHOWN = 8
NEIGHBOURS_SHOWN = 15


def _option(row: Any) -> tuple[str, int]:
    mod = f"  {row.module}" if row.kind != "builtin" and isinstance(row.module, str) else ""
    return (f"{row.cumtime:9.4f}s  {row.ncalls:>7} calls  {row.name}{mod}", int(row.func_id))


class DrilldownTab(TabController):
    """One function in focus: its totals, who calls it and what it calls (bars you can click, and two lists you
    can pick from), its time per profile by run, and a breadcrumb of where you came from.

    :attr:`focus` is the func_id in focus; :attr:`history` the breadcrumb; :attr:`current` the callers and callees
    shown (a ``side`` column says which); :attr:`selected` the focus function's totals row.
    """

    title = "Drilldown"

    def __init__(self, state: ExplorerState, errors: ErrorArea) -> None:
        super().__init__(state, errors)
        self.history: list[int] = []
        self.last_update_ms: float = float("nan")
        self.callers_df = pd.DataFrame()
        self.callees_df = pd.DataFrame()
        self.picker = w.Combobox(placeholder="function name, label fragment or func_id", ensure_option=False,
                                 continuous_update=False, description="function", layout=w.Layout(width="520px"),
                                 style={"description_width": "60px"})  # fmt: skip
        self.picker.observe(self.on_pick, names="value")
        self.back_button = w.Button(description="◀ back", layout=w.Layout(width="80px"), disabled=True)
        self.back_button.on_click(self.on_back)
        self._crumb_buttons = [w.Button(layout=w.Layout(width="auto", display="none")) for _ in range(BREADCRUMB_SHOWN)]
        self._crumb_seps = [w.HTML("&nbsp;›&nbsp;", layout=w.Layout(display="none")) for _ in range(BREADCRUMB_SHOWN)]
        self._crumb_positions: list[int] = []
        for i, b in enumerate(self._crumb_buttons):
            b.on_click(lambda _b, i=i: self.on_breadcrumb(self._crumb_positions[i]))
        self._crumb_more = w.HTML("")
        self._crumb_here = w.HTML("")
        items: list[w.Widget] = [self._crumb_more]
        for b, sep in zip(self._crumb_buttons, self._crumb_seps):
            items += [b, sep]
        self.breadcrumb = w.HBox([*items, self._crumb_here], layout=w.Layout(flex_flow="row wrap"))
        self.info = w.HTML()
        self.callers_list = w.Select(options=[], rows=8, description="← callers", layout=w.Layout(width="50%"),
                                     style={"description_width": "64px"})  # fmt: skip
        self.callees_list = w.Select(options=[], rows=8, description="callees →", layout=w.Layout(width="50%"),
                                     style={"description_width": "64px"})  # fmt: skip
        self.callers_list.observe(self.on_list_pick, names="value")
        self.callees_list.observe(self.on_list_pick, names="value")
        self.fig = new_figure_widget(360)
        self.runs_fig = new_figure_widget(280)
        self._mute = False
        self._fig_kind = ""
        self._runs_groups: list[str] | None = None
        self.widget = w.VBox(
            [
                w.HBox([self.picker, self.back_button]),
                self.breadcrumb,
                self.info,
                w.HBox([self.callers_list, self.callees_list], layout=w.Layout(width="100%")),
                self.fig,
                self.runs_fig,
            ]
        )

    @property
    def focus(self) -> int | None:
        """The func_id in focus (``state.focus``)."""
        return self.state.focus

    @focus.setter
    def focus(self, fid: int | None) -> None:
        self.state.focus = fid

    # ---------------------------------------------------------------------------------------------- drawing
    def on_selection(self, change: dict[str, Any]) -> None:
        super().on_selection(change)
        self._options_for = None

    _options_for: object | None = None

    def _fill_picker(self) -> None:
        if self._options_for is self.ps:
            return
        self._options_for = self.ps
        top = an.top(self.ps, n=MAX_PICKER_OPTIONS, by="cumtime")
        self.picker.options = top["label"].astype(str).tolist()

    def refresh(self) -> None:
        self._fill_picker()
        if self.focus is None:
            top = an.top(self.ps, n=1, by="tottime")
            if not len(top):
                self._show_empty("no profiles match the filters")
                return
            self.focus = int(top["func_id"].iloc[0])
        self._draw()

    def _show_empty(self, text: str, css_class: str = "celerylab-focus-empty") -> None:
        self.info.value = (
            f"<div class='{css_class}' style='color:#8a4b00;background:#fff8e1;padding:4px 8px;"
            f"border-left:4px solid #f0ad4e'>{esc(text)}</div>"
        )
        self.current = pd.DataFrame()
        self._mute = True
        try:
            self.callers_list.options = []
            self.callees_list.options = []
        finally:
            self._mute = False
        show_figure(self.fig, message_figure(text))
        show_figure(self.runs_fig, message_figure(""))
        self._fig_kind = "message"
        self._runs_groups = None

    def _draw(self) -> None:
        t0 = time.perf_counter()
        fid = self.focus
        assert fid is not None
        ps = self.ps
        ft = ps.function_totals
        row = ft.loc[ft["func_id"] == fid]
        f = ps.functions.iloc[fid]
        if not len(row):
            self._show_empty(
                f"hidden by the filters: {f['label']} is not called in the filtered profiles ({len(ps):,}). "
                "The drilldown stays on it and shows it again when the filters include it.",
                css_class="celerylab-focus-hidden",
            )
            self._draw_breadcrumb()
            self._sync_picker()
            return
        r = row.iloc[0]
        self.callers_df = an.callers(ps, fid)
        self.callees_df = an.callees(ps, fid)
        self.current = pd.concat(
            [self.callers_df.assign(side="caller"), self.callees_df.assign(side="callee")], ignore_index=True
        )
        self.info.value = (
            f"<div class='celerylab-focus'><b>{esc(f['name'])}</b> <code>{esc(f['label'])}</code><br>"
            f"kind {esc(f['kind'])} · {int(r['ncalls']):,} calls ({int(r['pcalls']):,} primitive) · own "
            f"{r['tottime']:.4g} s · cumulative {r['cumtime']:.4g} s · in {int(r['n_profiles']):,} of "
            f"{len(ps):,} profiles</div>"
        )
        self._mute = True
        try:
            self.callers_list.options = [_option(x) for x in self.callers_df.head(200).itertuples(index=False)]
            self.callees_list.options = [_option(x) for x in self.callees_df.head(200).itertuples(index=False)]
            self.callers_list.value = None
            self.callees_list.value = None
        finally:
            self._mute = False
        self._draw_neighbours(str(f["label"]))
        self._draw_per_profile(fid)
        self._draw_breadcrumb()
        self._sync_picker()
        self.last_update_ms = (time.perf_counter() - t0) * 1000

    def _sync_picker(self) -> None:
        """The function box shows the focus's label (whatever moved it: a click, a pick, ``state.drill``, a filter
        change), without that counting as a new pick."""
        text = "" if self.focus is None else str(self.ps.functions["label"].iloc[self.focus])
        if self.picker.value == text:
            return
        self._mute = True
        try:
            self.picker.value = text
        finally:
            self._mute = False

    def _draw_neighbours(self, focus_label: str) -> None:
        """The callers/callees figure; in place (new bar data only) when it already shows one with both sides."""
        a, b, n = self.callers_df, self.callees_df, NEIGHBOURS_SHOWN
        if self._fig_kind == "neighbours" and len(a) and len(b):
            fw = self.fig
            with fw.batch_update():
                fw.data[0].update(**bar_data(a, "cumtime", n))
                fw.data[1].update(**bar_data(b, "cumtime", n))
                fw.shown.layout.title.text = plotly_text(focus_label)
                fw.shown.layout.annotations[0].text = side_title("callers", len(a))
                fw.shown.layout.annotations[1].text = side_title("callees", len(b))
                fw.shown.layout.height = neighbours_height(max(min(n, len(a)), min(n, len(b)), 1))
            return
        show_figure(self.fig, neighbours(a, b, focus=focus_label, n=n), on_click=self.on_figure_click)
        self._fig_kind = "neighbours" if len(a) and len(b) else "partial"

    def per_profile_frame(self, fid: int) -> pd.DataFrame:
        """One row per profile that ran ``fid``: ``profile_id, tottime, cumtime`` and its run (or task name)."""
        s = self.ps.stats
        rows = s.loc[s["func_id"].to_numpy() == fid, ["profile_id", "tottime", "cumtime"]]
        by = self._per_profile_by()
        lookup = self.ps.profiles.set_index("profile_id")[by]
        return rows.assign(**{by: lookup.reindex(rows["profile_id"].to_numpy()).to_numpy()})

    def _per_profile_by(self) -> str:
        p = self.ps.profiles
        return "run" if "run" in p.columns and p["run"].notna().any() else "task_name"

    def _draw_per_profile(self, fid: int) -> None:
        rows = self.per_profile_frame(fid)
        by = self._per_profile_by()
        if not len(rows):
            show_figure(self.runs_fig, message_figure(""))
            self._runs_groups = None
            return
        key = group_labels(rows[by])
        groups = sorted(key.unique().tolist())
        if groups == self._runs_groups:
            with self.runs_fig.batch_update():
                for trace, g in zip(self.runs_fig.data, groups):
                    trace.y = rows.loc[(key == g).to_numpy(), "cumtime"].to_numpy(dtype=float)
            return
        show_figure(self.runs_fig, per_profile(rows, value="cumtime", by=by,
                                               title=f"cumulative time per profile, by {by}"))  # fmt: skip
        self._runs_groups = groups

    def _draw_breadcrumb(self) -> None:
        """Update the breadcrumb in place (a fixed pool of buttons: no widgets are created per click)."""
        names = self.ps.functions["name"]
        labels = self.ps.functions["label"]
        shown = self.history[-BREADCRUMB_SHOWN:]
        first = len(self.history) - len(shown)
        self._crumb_positions = list(range(first, len(self.history)))
        for i, (b, sep) in enumerate(zip(self._crumb_buttons, self._crumb_seps)):
            if i < len(shown):
                fid = shown[i]
                b.description = str(names.iloc[fid])[:40]
                b.tooltip = str(labels.iloc[fid])
                b.layout.display = sep.layout.display = ""
            else:
                b.layout.display = sep.layout.display = "none"
        self._crumb_more.value = f"… {first} earlier&nbsp;›&nbsp;" if first else ""
        self._crumb_here.value = f"<b>{esc(names.iloc[self.focus]) if self.focus is not None else ''}</b>"
        self.back_button.disabled = not self.history

    @property
    def breadcrumb_names(self) -> list[str]:
        """The names shown in the breadcrumb, the focus last (what the user sees)."""
        names = [b.description for b in self._crumb_buttons if b.layout.display != "none"]
        return [*names, str(self.ps.functions["name"].iloc[self.focus])] if self.focus is not None else names

    # ---------------------------------------------------------------------------------------------- moving
    def move_to(self, func: int | str, *, remember: bool = True) -> int:
        """Put ``func`` (func_id, label or unique name fragment) in focus; the old focus joins the breadcrumb."""
        fid = self.ps.resolve(func)
        if remember and self.focus is not None and self.focus != fid:
            self.history.append(self.focus)
        self.focus = fid
        self.stale = False
        self._fill_picker()
        self._draw()
        return fid

    @guarded
    def on_pick(self, change: dict[str, Any]) -> None:
        """A function was typed or picked in the combobox (an unknown name shows an error)."""
        text = str(change["new"]).strip()
        if self._mute or not text:
            return
        self.move_to(int(text) if text.isdigit() else text)

    @guarded
    def on_list_pick(self, change: dict[str, Any]) -> None:
        """A caller or callee was picked in one of the lists: move there."""
        if self._mute or change["new"] is None:
            return
        self.move_to(int(change["new"]))

    @guarded
    def on_figure_click(self, trace: Any, points: Any, state: Any = None) -> None:
        """A caller or callee bar was clicked: move there (``customdata[0]`` is the func_id)."""
        if not points.point_inds:
            return
        fid = trace.customdata[points.point_inds[0]][0]
        self.move_to(int(fid))

    @guarded
    def on_back(self, _button: Any = None) -> None:
        """Back to the previous function in the breadcrumb."""
        if not self.history:
            return
        fid = self.history.pop()
        self.move_to(fid, remember=False)

    @guarded
    def on_breadcrumb(self, position: int) -> None:
        """Back to breadcrumb entry ``position`` (later entries are dropped)."""
        fid = self.history[position]
        del self.history[position:]
        self.move_to(fid, remember=False)

    @property
    def selected(self) -> pd.DataFrame:
        if self.focus is None:
            return pd.DataFrame()
        ft = self.ps.function_totals
        row = ft.loc[ft["func_id"] == self.focus]
        f = self.ps.functions.loc[self.ps.functions["func_id"] == self.focus, ["func_id", "label", "name", "module",
                                                                                "kind"]]  # fmt: skip
        out = f.merge(row, on="func_id", how="left")
        return out.reset_index(drop=True)
