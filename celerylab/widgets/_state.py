"""The explorer's shared state: traitlets that every tab reads and observes, so tabs never reach into each other."""

from __future__ import annotations

import itertools

import traitlets as t

from ..core.data import FuncRef, ProfileData


class ExplorerState(t.HasTraits):
    """What the explorer shows, as observable traits.

    * ``data`` — every loaded profile (fixed);
    * ``selection`` — the profiles that pass the filters (the filter bar sets it; tabs redraw from it);
    * ``focus`` — the func_id in drilldown focus, or ``None`` (the drilldown sets it; call tree and call graph
      root there when asked);
    * ``drill_target`` — a request to open a function in the drilldown: ``(sequence, func_id | label)``; set it
      with :meth:`drill` (the sequence makes a repeated request still fire).
    """

    data = t.Instance(ProfileData)
    selection = t.Instance(ProfileData)
    focus = t.Int(None, allow_none=True)
    drill_target = t.Any(None, allow_none=True)

    def __init__(self, data: ProfileData) -> None:
        super().__init__(data=data, selection=data)
        self._seq = itertools.count(1)

    def drill(self, func: FuncRef) -> None:
        """Ask for ``func`` (func_id, label or unique name fragment) to be opened in the drilldown."""
        self.drill_target = (next(self._seq), func)

    def __repr__(self) -> str:
        return f"<ExplorerState: {len(self.selection):,} of {len(self.data):,} profiles, focus {self.focus}>"


__all__ = ["ExplorerState"]
