"""The base of every tab controller."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as w
import pandas as pd

from ._base import ErrorArea, guarded

if TYPE_CHECKING:
    from ..core.data import ProfileData
    from ._state import ExplorerState


class TabController:
    """One tab: a thin controller that owns its widgets, draws from the filtered :class:`ProfileSet`, and keeps
    what it shows in :attr:`current` (a DataFrame).

    Tabs talk only through the shared :class:`~._state.ExplorerState`: they read ``state.selection`` and observe it.
    Tabs are lazy: a filter change marks every tab stale, and a tab redraws when it is shown (the explorer draws the
    visible one at once).  Handlers are named methods (``on_…``) that tests call directly.
    """

    title = ""

    def __init__(self, state: ExplorerState, errors: ErrorArea) -> None:
        self.state = state
        self.errors = errors
        self.stale = True
        self.current: pd.DataFrame = pd.DataFrame()
        self.widget: w.Widget = w.VBox()
        state.observe(self.on_selection, names="selection")

    @property
    def ps(self) -> ProfileData:
        """The filtered selection this tab draws from."""
        return self.state.selection

    def on_selection(self, change: dict[str, Any]) -> None:
        """The filters changed: redraw on next show."""
        self.stale = True

    def ensure(self) -> None:
        """Redraw if stale.  (A tab shown again without a change draws nothing, so it does not count as a handler
        that succeeded: an error it showed stays until a redraw or a control of the tab succeeds.)"""
        if self.stale:
            self.stale = False
            self._redraw()

    @guarded
    def _redraw(self) -> None:
        self.refresh()

    def refresh(self) -> None:  # pragma: no cover - every tab overrides it
        raise NotImplementedError

    @property
    def selected(self) -> pd.DataFrame:
        """What the user picked in this tab (empty when nothing)."""
        return pd.DataFrame()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.title!r}: {len(self.ps):,} profiles, current {len(self.current)} rows>"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
