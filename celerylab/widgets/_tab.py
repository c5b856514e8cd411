"""The base of every tab controller."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as w
import pandas as pd

from ._base import ErrorArea, guarded

if TYPE_CHECKING:
    from ..core.data import ProfileData
    from ._explorer import Explorer


class TabController:
    """One tab: a thin controller that owns its widgets, draws from the filtered :class:`ProfileSet`, and keeps
    what it shows in :attr:`current` (a DataFrame).

    Tabs are lazy: a filter change marks every tab stale, and a tab redraws when it is shown (or at once if it is
    the visible one).  Handlers are named methods (``on_…``) that tests call directly.
    """

    title = ""

    def __init__(self, app: Explorer) -> None:
        self.app = app
        self.errors: ErrorArea = app.errors
        self.ps: ProfileData = app.selection
        self.stale = True
        self.current: pd.DataFrame = pd.DataFrame()
        self.widget: w.Widget = w.VBox()

    def set_data(self, ps: ProfileData) -> None:
        """The filters changed: remember the new selection, redraw on next show."""
        self.ps = ps
        self.stale = True

    @guarded
    def ensure(self) -> None:
        """Redraw if stale."""
        if self.stale:
            self.stale = False
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
