"""Shared pieces of the widget controllers: the visible error area, guarded handlers, HTML escaping and
in-place figure updates."""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import ipywidgets as w
import pandas as pd
import plotly.graph_objects as go

from .. import fmt
from ..charts._style import margin
from ..fmt import esc
from ._plot import PlotWidget

F = TypeVar("F", bound=Callable[..., Any])


class ErrorArea:
    """A visible place for exceptions raised inside widget callbacks.

    ipywidgets sends a callback's exception to the browser console, where nobody sees it.  Every handler of the
    explorer is wrapped by :func:`guarded`, which reports the exception here instead: a red banner with the message
    and the traceback in an ``Output`` below the tabs, so it shows in the notebook.
    """

    def __init__(self) -> None:
        self.banner = w.HTML(value="", layout=w.Layout(display="none"))
        self.output = w.Output(layout=w.Layout(max_height="240px", overflow="auto"))
        self.clear_button = w.Button(description="dismiss", layout=w.Layout(width="90px", display="none"))
        self.clear_button.on_click(lambda _b: self.clear())
        self.errors: list[BaseException] = []
        self.source: object = None  # the controller whose handler raised the error shown
        self.widget = w.VBox([w.HBox([self.banner, self.clear_button]), self.output])

    def report(self, exc: BaseException, where: str = "", source: object = None) -> None:
        """Show ``exc`` (message + traceback) in the notebook and remember it in :attr:`errors`; ``source`` is the
        controller whose handler raised it (see :meth:`resolved`)."""
        self.errors.append(exc)
        self.source = source
        msg = f"{type(exc).__name__}: {exc}"
        place = f" in {esc(where)}" if where else ""
        self.banner.value = (
            f"<div class='celerylab-error' style='color:#a40000;background:#fde8e8;padding:4px 8px;"
            f"border-left:4px solid #a40000;white-space:pre-wrap'><b>error{place}</b>: {esc(msg)}</div>"
        )
        self.banner.layout.display = ""
        self.clear_button.layout.display = ""
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.output.outputs = ()
        self.output.append_stderr(tb)

    def resolved(self, source: object) -> None:
        """A handler of ``source`` ran without an error: the error it showed before is stale (the user fixed the
        input), so it goes; an error of another controller stays."""
        if source is not None and self.source is source and self.banner.layout.display != "none":
            self.clear()

    def clear(self) -> None:
        """Hide the banner and the traceback (the :attr:`errors` list is kept)."""
        self.source = None
        self.banner.value = ""
        self.banner.layout.display = "none"
        self.clear_button.layout.display = "none"
        self.output.outputs = ()

    @property
    def message(self) -> str:
        """The message of the last reported error, or ``""``."""
        return f"{type(self.errors[-1]).__name__}: {self.errors[-1]}" if self.errors else ""


def guarded(method: F) -> F:
    """Decorate a controller method so that an exception is shown in ``self.errors`` (an :class:`ErrorArea`)
    instead of vanishing into the browser log.  The method then returns ``None``.  When it succeeds, an error the
    same controller showed before goes (:meth:`ErrorArea.resolved`)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        area: ErrorArea | None = getattr(self, "errors", None)
        try:
            out = method(self, *args, **kwargs)
        except Exception as e:
            if area is None:
                raise
            area.report(e, f"{type(self).__name__}.{method.__name__}", source=self)
            return None
        if area is not None:
            area.resolved(self)
        return out

    return wrapper  # type: ignore[return-value]


#: plotly.js config of every explorer figure: no logo, no "share / edit in Chart Studio" (a network service)
FIGURE_CONFIG = {"displaylogo": False, "showLink": False, "showSendToCloud": False, "showEditInChartStudio": False,
                 "modeBarButtonsToRemove": ["sendDataToCloud", "editInChartStudio"]}  # fmt: skip


def new_figure_widget(height: int = 360) -> PlotWidget:
    """An empty :class:`~._plot.PlotWidget` (plotly.js comes once per page from the installed plotly package:
    works offline; nothing is drawn or sent until a figure is shown)."""
    return PlotWidget(height=height, config=FIGURE_CONFIG)


def show_figure(target: PlotWidget, fig: go.Figure, on_click: Callable[..., Any] | None = None) -> None:
    """Show ``fig`` in ``target`` (one widget, updated in place, so the notebook output keeps its place); a click
    on any of its points calls ``on_click(trace, points, state)``."""
    target.show(fig, on_click)


def message_figure(text: str, height: int = 200) -> go.Figure:
    """An empty figure that says ``text`` (no data for this selection, a missing column…)."""
    fig = go.Figure()
    fig.add_annotation(text=text.replace("<", "&lt;").replace(">", "&gt;"), showarrow=False, x=0.5, y=0.5,
                       xref="paper", yref="paper", font={"size": 14, "color": "#666"})  # fmt: skip
    fig.update_layout(height=height, xaxis={"visible": False}, yaxis={"visible": False},
                      margin=margin(t=10, b=10))  # fmt: skip
    return fig


def html_table(df: pd.DataFrame, columns: Sequence[str] | None = None, *, max_rows: int = 50,
               css_class: str = "celerylab-table", highlight: Iterable[bool] | None = None,
               formats: Mapping[str, str] | None = None) -> str:  # fmt: skip
    """``df`` as an escaped HTML table for notebook output (:func:`celerylab.fmt.html_table`, styled inline), in a
    box that scrolls sideways when the table is wider than the output: no column is ever cut off."""
    table = fmt.html_table(df, columns, formats, max_rows=max_rows, css_class=css_class, highlight=highlight,
                           inline_style=True, missing="")  # fmt: skip
    return f"<div class='celerylab-table-box' style='overflow-x:auto;max-width:100%'>{table}</div>"
