"""The filter bar: task name, run, worker, state and time window, applied to every tab."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as w
import pandas as pd

from ._base import ErrorArea, esc, guarded

if TYPE_CHECKING:
    from ..core.data import ProfileData

ALL = "(all)"
#: dropdown name -> profiles column
FILTER_COLUMNS = {"task": "task_name", "run": "run", "worker": "hostname", "state": "state"}


def _choices(ps: ProfileData, column: str) -> list[str]:
    if column not in ps.profiles.columns:
        return []
    vals = ps.profiles[column].dropna().astype(str).unique().tolist()
    return sorted(vals)


def _parse_time(text: str, what: str) -> pd.Timestamp | None:
    text = text.strip()
    if not text:
        return None
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"time window {what}: {text!r} is not a date/time (use ISO-8601, e.g. 2026-01-01T10:00)"
        ) from e
    if ts is pd.NaT:
        raise ValueError(f"time window {what}: {text!r} is not a date/time")
    return ts.tz_localize("UTC") if ts.tz is None else ts


class FilterBar:
    """Dropdowns for task / run / worker / state plus a ``from``–``to`` time window.

    :attr:`conditions` is the ``ProfileSet.where(**conditions)`` the bar stands for; :meth:`apply` computes the
    filtered set and calls ``on_change(filtered)``.  :meth:`set` accepts anything ``where`` accepts (lists and
    globs too), and every dropdown shows the condition that applies: a one-value list as that value, any other
    condition as an extra option that names it (``orders.* (pattern)``, ``a | b``), gone when another value is
    picked.  :meth:`shown` is what the dropdowns and the time window say, as ``where`` keywords.
    """

    def __init__(self, ps: ProfileData, errors: ErrorArea, on_change: Callable[[ProfileData], None]) -> None:
        self.ps = ps
        self.errors = errors
        self.on_change = on_change
        self.conditions: dict[str, Any] = {}
        self.filtered: ProfileData = ps
        self._mute = False
        self._custom: dict[str, tuple[str, Any]] = {}  # dropdown -> (extra option, the condition it stands for)
        self.dropdowns: dict[str, w.Dropdown] = {}
        for key, col in FILTER_COLUMNS.items():
            dd = w.Dropdown(options=[ALL, *_choices(ps, col)], value=ALL, description=key,
                            layout=w.Layout(width="230px"), style={"description_width": "48px"})  # fmt: skip
            dd.observe(self.on_dropdown, names="value")
            self.dropdowns[key] = dd
        p = ps.profiles
        has_time = "started_at" in p.columns and p["started_at"].notna().any()
        lo = str(p["started_at"].min()) if has_time else ""
        hi = str(p["started_at"].max()) if has_time else ""
        self.time_from = w.Text(value="", placeholder=lo[:19], description="from", continuous_update=False,
                                layout=w.Layout(width="230px"), style={"description_width": "36px"})  # fmt: skip
        self.time_to = w.Text(value="", placeholder=hi[:19], description="to", continuous_update=False,
                              layout=w.Layout(width="230px"), style={"description_width": "36px"})  # fmt: skip
        self.time_from.observe(self.on_time, names="value")
        self.time_to.observe(self.on_time, names="value")
        self.reset_button = w.Button(description="reset filters", layout=w.Layout(width="110px"))
        self.reset_button.on_click(self.on_reset)
        self.count = w.HTML()
        self._update_count()
        self.widget = w.VBox(
            [
                w.HBox(list(self.dropdowns.values())),
                w.HBox([self.time_from, self.time_to, self.reset_button, self.count]),
            ]
        )

    # ---------------------------------------------------------------------------------------------- state
    def _from_widgets(self) -> dict[str, Any]:
        cond: dict[str, Any] = {
            k: v for k, v in self.conditions.items() if k not in FILTER_COLUMNS.values() and k != "started_at"
        }
        for key, dd in self.dropdowns.items():
            col = FILTER_COLUMNS[key]
            custom = self._custom.get(key)
            if custom is not None and dd.value == custom[0]:
                cond[col] = custom[1]
            elif dd.value != ALL:
                cond[col] = dd.value
        lo = _parse_time(self.time_from.value, "from")
        hi = _parse_time(self.time_to.value, "to")
        if lo is not None and hi is not None and lo >= hi:
            raise ValueError(f"time window: 'from' ({lo}) must be before 'to' ({hi})")
        if lo is not None or hi is not None:
            cond["started_at"] = slice(lo, hi)
        return cond

    def _shown(self, key: str, value: Any) -> bool:
        return isinstance(value, str) and value in self._plain(key)

    def _plain(self, key: str) -> list[str]:
        """The dropdown's options without the extra one that names a condition."""
        custom = self._custom.get(key)
        return [o for o in self.dropdowns[key].options if custom is None or o != custom[0]]

    def _show_condition(self, key: str, value: Any) -> None:
        """Make dropdown ``key`` show ``value`` (a condition on its column): the option itself, or an extra option
        naming the condition (muted: the caller applies)."""
        dd = self.dropdowns[key]
        plain = self._plain(key)
        if isinstance(value, list | tuple | set) and len(value) == 1 and self._shown(key, str(next(iter(value)))):
            value_text: str | None = str(next(iter(value)))
        else:
            value_text = value if self._shown(key, value) else None
        is_all = isinstance(value, str) and value == ALL
        if is_all or value_text is not None:
            self._custom.pop(key, None)
            if list(dd.options) != [ALL, *plain]:
                dd.options = [ALL, *plain]
            dd.value = ALL if is_all else value_text
            return
        text = _condition_text(value)
        self._custom[key] = (text, value)
        dd.options = [ALL, text, *plain]
        dd.value = text

    def shown(self) -> dict[str, Any]:
        """What the controls show, as ``where`` keywords (equal to :attr:`conditions` after every change)."""
        return self._from_widgets()

    def _update_count(self) -> None:
        n, total = len(self.filtered), len(self.ps)
        text = f"{n:,} of {total:,} profiles"
        if self.conditions:
            text += " · " + ", ".join(f"{esc(k)}={esc(_show(v))}" for k, v in self.conditions.items())
        self.count.value = f"<span class='celerylab-count' style='color:#444'>{text}</span>"

    # ------------------------------------------------------------------------------------------- handlers
    @guarded
    def on_dropdown(self, change: dict[str, Any]) -> None:
        """A dropdown changed: filter again."""
        if self._mute:
            return
        key = next((k for k, dd in self.dropdowns.items() if dd is change.get("owner")), None)
        custom = self._custom.get(key) if key else None
        if key and custom is not None and change["new"] != custom[0]:
            # another value was picked: the option that named the condition goes
            self._mute = True
            try:
                self._show_condition(key, change["new"])
            finally:
                self._mute = False
        self.apply(self._from_widgets())

    @guarded
    def on_time(self, change: dict[str, Any]) -> None:
        """The time window changed: filter again (a text that is no date shows an error, filters stay)."""
        if not self._mute:
            self.apply(self._from_widgets())

    @guarded
    def on_reset(self, _button: Any = None) -> None:
        """Clear every filter."""
        self.set()

    def set(self, **conditions: Any) -> ProfileData:
        """Replace the filters with ``conditions`` (any ``ProfileSet.where`` keywords) and apply them."""
        self._mute = True
        try:
            for key in self.dropdowns:
                self._show_condition(key, conditions.get(FILTER_COLUMNS[key], ALL))
            win = conditions.get("started_at")
            if isinstance(win, slice):
                self.time_from.value = "" if win.start is None else str(win.start)
                self.time_to.value = "" if win.stop is None else str(win.stop)
            else:
                self.time_from.value = self.time_to.value = ""
        finally:
            self._mute = False
        return self.apply(dict(conditions))

    def apply(self, conditions: dict[str, Any]) -> ProfileData:
        """Filter the full set by ``conditions`` and hand the result to ``on_change``."""
        filtered = self.ps.where(**conditions) if conditions else self.ps
        self.conditions = conditions
        self.filtered = filtered
        self.on_change(filtered)
        self._update_count()  # last: when the count shows, the visible tab has been redrawn
        return filtered


def _condition_text(v: Any) -> str:
    """The dropdown text of a condition no single option shows."""
    if isinstance(v, list | tuple | set):
        return " | ".join(map(str, v)) if v else "(none)"
    if isinstance(v, str) and any(ch in v for ch in "*?["):
        return f"{v} (pattern)"
    return str(v)


def _show(v: Any) -> str:
    if isinstance(v, slice):
        return f"[{'' if v.start is None else v.start} … {'' if v.stop is None else v.stop})"
    return str(v)
