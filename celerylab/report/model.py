"""The report model: plain data, computed before anything is rendered.

Tables hold DataFrames whose numbers stay numbers (with a display format per column), figures are plotly figures,
SVG is kept as markup to be sanitised by the renderer.  Nothing in a :class:`Report` is formatted or escaped yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..fmt import FORMATS as _ALL_FORMATS

if TYPE_CHECKING:
    import plotly.graph_objects as go

# ------------------------------------------------------------------------------------------------- the data model
#: column format names understood by the renderer
FORMATS = tuple(f for f in _ALL_FORMATS if f != "auto")


@dataclass
class Table:
    """A DataFrame to show; ``formats`` maps column -> one of :data:`FORMATS` (default: by dtype).  ``titles``
    maps a shown column to a column of the frame holding each cell's full text (not shown as a column: the cell is
    cut with an ellipsis and the full text is its hover title).  ``collapsed``: shown folded (``<details>``) under
    this summary line."""

    frame: pd.DataFrame
    formats: dict[str, str] = field(default_factory=dict)
    caption: str = ""
    id: str = ""
    titles: dict[str, str] = field(default_factory=dict)
    collapsed: str = ""

    @property
    def shown_columns(self) -> list[str]:
        hidden = set(self.titles.values()) - set(self.titles)
        return [c for c in self.frame.columns if c not in hidden]

    def format_of(self, col: str) -> str:
        if col in self.formats:
            return self.formats[col]
        dtype = self.frame[col].dtype
        if pd.api.types.is_bool_dtype(dtype):
            return "text"
        if pd.api.types.is_integer_dtype(dtype):
            return "int"
        if pd.api.types.is_float_dtype(dtype):
            return "number"
        if pd.api.types.is_datetime64_any_dtype(dtype):
            return "datetime"
        return "text"


@dataclass
class Figure:
    """A plotly figure with a caption."""

    figure: go.Figure
    caption: str = ""


@dataclass
class Section:
    """One part of a report: text, tables, figures and optional inline SVG, in that order."""

    id: str
    title: str
    intro: str = ""
    items: list[Table | Figure | Svg | Note] = field(default_factory=list)


@dataclass
class Svg:
    """SVG markup (e.g. from Graphviz) to embed; sanitised by the renderer, never trusted."""

    markup: str
    caption: str = ""
    viewer: bool = False
    """shown in the call graph viewer (fitted on open, zoom, pan, hot path button)"""


@dataclass
class Note:
    """A line of text; ``level`` is ``info`` or ``warning``."""

    text: str
    level: str = "info"


@dataclass
class Report:
    """Everything a report shows, computed, not yet rendered."""

    title: str
    meta: list[tuple[str, Any]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def section(self, id: str) -> Section:
        for s in self.sections:
            if s.id == id:
                return s
        raise KeyError(f"report has no section {id!r}; sections: {[s.id for s in self.sections]}")
