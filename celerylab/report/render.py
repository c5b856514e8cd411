"""Render a :class:`~.model.Report` as one self-contained HTML page.

plotly.js is inlined once, each figure's JSON sits in an inert ``<script type="application/json">`` block, and a
single bootstrap script (``static/report.js``) draws them; the call graph is sanitised inline SVG.  Every name that
reaches the page is HTML-escaped (and escaped for plotly's own markup in chart labels), and a Content-Security-Policy
admits only the two scripts of the page (by hash): a function named ``<script>alert(1)</script>`` is shown literally
and runs nothing.  The page skeleton, stylesheet and script are package data files in ``static/``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import re
import xml.etree.ElementTree as ET
from functools import cache
from importlib import resources
from string import Template
from typing import TYPE_CHECKING

from .. import fmt as _fmt
from .._version import __version__
from ..callgraph import GRAPH_CSS, VIEWER_JS, VIEWER_TOOLBAR
from ..errors import CelerylabError
from .model import Figure, Note, Report, Svg, Table

if TYPE_CHECKING:
    import plotly.graph_objects as go


@cache
def static_file(name: str) -> str:
    """The text of a file in ``celerylab/report/static``."""
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


_SVG_ELEMENTS = {
    "svg",
    "g",
    "title",
    "polygon",
    "polyline",
    "path",
    "ellipse",
    "text",
    "tspan",
    "defs",
    "rect",
    "circle",
    "line",
    "linearGradient",
    "radialGradient",
    "stop",
}
_SVG_ATTRS = {
    "id",
    "class",
    "width",
    "height",
    "viewBox",
    "transform",
    "fill",
    "stroke",
    "stroke-width",
    "stroke-dasharray",
    "points",
    "d",
    "cx",
    "cy",
    "rx",
    "ry",
    "r",
    "x",
    "y",
    "x1",
    "y1",
    "x2",
    "y2",
    "text-anchor",
    "font-family",
    "font-size",
    "font-weight",
    "font-style",
    "opacity",
    "fill-opacity",
    "stroke-opacity",
    "offset",
    "stop-color",
    "stop-opacity",
    "preserveAspectRatio",
    "gradientUnits",
}
_SVG_NS = "http://www.w3.org/2000/svg"


def sanitize_svg(markup: str) -> str:
    """Re-serialise SVG keeping only drawing elements and attributes (whitelists): no scripts, event handlers,
    links, ``foreignObject``, styles or external references survive, and every text is XML-escaped again."""
    text = re.sub(r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<!--.*?-->", "", markup, flags=re.S)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise CelerylabError(f"call graph SVG could not be parsed: {e}") from None

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""

    def clean(el: ET.Element) -> ET.Element | None:
        name = local(el.tag)
        if name not in _SVG_ELEMENTS:
            return None
        out = ET.Element(name)
        for k, v in el.attrib.items():
            if local(k) in _SVG_ATTRS and "url(" not in v.lower() and "javascript" not in v.lower():
                out.set(local(k), v)
        out.text = el.text
        for child in el:
            kept = clean(child)
            if kept is not None:
                out.append(kept)
                kept.tail = child.tail
            elif local(child.tag) == "a":  # graphviz wraps nodes in <a> for tooltips: keep the drawing, drop the link
                for grand in child:
                    g = clean(grand)
                    if g is not None:
                        out.append(g)
        return out

    cleaned = clean(root)
    if cleaned is None:
        raise CelerylabError("call graph SVG has no <svg> root")
    cleaned.set("xmlns", _SVG_NS)
    return ET.tostring(cleaned, encoding="unicode", short_empty_elements=True)


def _render_table(t: Table) -> str:
    cols = t.shown_columns
    html = _fmt.html_table(t.frame, cols, {c: t.format_of(c) for c in cols}, caption=t.caption or None,
                           table_id=t.id or None, titles=t.titles)  # fmt: skip
    if t.collapsed:
        return f'<details class="more"><summary>{_fmt.esc(t.collapsed)}</summary>{html}</details>'
    return html


def _figure_json(fig: go.Figure) -> str:
    # plotly escapes "<", ">" and "/" already; do it again so nothing can close the <script> element
    text = fig.to_json()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


#: the call graph viewer of the page (one script, admitted by its hash like the figures' bootstrap)
_GRAPH_BOOT = (VIEWER_JS + "\nArray.prototype.forEach.call(document.querySelectorAll('.celerylab-graph'), "
               "celerylabGraphView);\n")  # fmt: skip


def _script_hash(code: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii") + "'"


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (see the module docstring for what makes it safe)."""
    from plotly.offline import get_plotlyjs

    esc = _fmt.esc
    figures: list[tuple[str, str]] = []
    viewers = 0
    body: list[str] = []
    for sec in report.sections:
        parts = [f'<section id="{esc(sec.id)}"><h2>{esc(sec.title)}</h2>']
        if sec.intro:
            parts.append(f'<p class="intro">{esc(sec.intro)}</p>')
        for item in sec.items:
            if isinstance(item, Table):
                parts.append(_render_table(item))
            elif isinstance(item, Figure):
                fid = f"celerylab-fig-{len(figures)}"
                figures.append((fid, _figure_json(item.figure)))
                if item.caption:
                    parts.append(f'<div class="caption">{esc(item.caption)}</div>')
                parts.append(f'<div class="figure" id="{fid}"></div>')
            elif isinstance(item, Svg):
                if item.caption:
                    parts.append(f'<div class="caption">{esc(item.caption)}</div>')
                if item.viewer:
                    viewers += 1
                    stage = f'<div class="celerylab-graph-stage">{sanitize_svg(item.markup)}</div>'
                    parts.append(f'<div class="celerylab-graph" data-max-height="720">{VIEWER_TOOLBAR}{stage}</div>')
                else:
                    parts.append(f'<div class="svg">{sanitize_svg(item.markup)}</div>')
            elif isinstance(item, Note):
                cls = {"warning": "warning", "finding": "finding"}.get(item.level, "note")
                parts.append(f'<p class="{cls}">{esc(item.text)}</p>')
        parts.append("</section>")
        body.append("".join(parts))
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in report.sections)
    meta = "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(_fmt.meta(v))}</td></tr>" for k, v in report.meta)
    scripts = ""
    hashes: list[str] = []
    if figures:
        plotly_js = get_plotlyjs()
        boot = static_file("report.js")
        hashes = [_script_hash(plotly_js), _script_hash(boot)]
        data = "".join(
            f'<script type="application/json" class="celerylab-figure" data-target="{fid}">{js}</script>'
            for fid, js in figures
        )
        scripts = f"<script>{plotly_js}</script>{data}<script>{boot}</script>"
    if viewers:
        hashes.append(_script_hash(_GRAPH_BOOT))
        scripts += f"<script>{_GRAPH_BOOT}</script>"
    csp = (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
        f"script-src {' '.join(hashes) if hashes else chr(39) + 'none' + chr(39)}"
    )
    generated = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Template(static_file("page.html")).substitute(
        csp=esc(csp), version=esc(__version__), title=esc(report.title), meta=meta,
        nav=nav, body="".join(body), generated=esc(generated), scripts=scripts,
        css=static_file("report.css") + GRAPH_CSS,
    )  # fmt: skip
