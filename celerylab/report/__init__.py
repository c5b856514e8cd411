"""Self-contained HTML reports: compute a model first (:mod:`.build` → :mod:`.model`), then render it (:mod:`.render`).

* :func:`build_report` (a set of profiles) and :func:`build_diff_report` (a :func:`celerylab.diff` result) compute
  a :class:`Report` of plain data;
* :func:`render_html` turns it into one HTML page (plotly.js inlined once, names escaped, a strict CSP; the page,
  stylesheet and script are the package data files in ``report/static/``);
* :func:`write_report` / :func:`diff_report` do both and write the file; ``ProfileSet.report(path)`` calls
  :func:`write_report`.

Every number cell carries its raw value in ``data-value`` so that scripts (and tests) can read the numbers back.
"""

from __future__ import annotations

from .._io import write_atomic
from .build import build_diff_report, build_report, diff_formats, diff_report, write_report
from .model import FORMATS, Figure, Note, Report, Section, Svg, Table
from .render import render_html, sanitize_svg

__all__ = [
    "FORMATS",
    "Figure",
    "Note",
    "Report",
    "Section",
    "Svg",
    "Table",
    "build_diff_report",
    "build_report",
    "diff_formats",
    "diff_report",
    "render_html",
    "sanitize_svg",
    "write_atomic",
    "write_report",
]
