"""Call graphs: ProfileSet → gprof2dot → DOT → SVG/PNG/PDF through Graphviz ``dot``.

gprof2dot has no library API; this module drives its classes directly and guards against what its command line
does: no ``sys.exit`` escapes (the merged stats are handed over in memory, and any ``SystemExit`` raised inside
gprof2dot becomes a :class:`CallgraphError`), the shared colour theme is never mutated (a private copy is used),
and the graph is always pruned (``node_thres``/``edge_thres`` in percent of the total time, plus ``max_nodes``)
because ``dot`` can run for many minutes on an unpruned graph; ``dot`` itself runs with a timeout.

    >>> from celerylab.callgraph import write_callgraph
    >>> write_callgraph(ps.where(task_name="orders.process"), "graph.svg")          # doctest: +SKIP
"""

from __future__ import annotations

import copy
import io
import itertools
import os
import pstats
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._io import check_folder, write_atomic
from .errors import CallgraphError, UsageError

if TYPE_CHECKING:
    import pandas as pd

    from .core.data import ProfileData

FORMATS = ("svg", "png", "pdf", "dot")
GRAPHVIZ_MISSING = "Graphviz 'dot' not found: apt-get install graphviz (or set CELERYLAB_DOT to the dot binary)"


@dataclass(frozen=True)
class CallgraphOptions:
    """How to prune and label the graph (gprof2dot's ``-n``, ``-e``, ``--skew``, ``--color-nodes-by-selftime``)."""

    node_thres: float = 0.5
    """drop functions below this percentage of the total time"""
    edge_thres: float = 0.1
    """drop calls below this percentage of the total time"""
    max_nodes: int = 250
    """raise both thresholds until at most this many functions remain (dot slows down sharply beyond)"""
    theme: str = "color"
    color_nodes_by_selftime: bool = False
    wrap: bool = True
    root: str | None = None
    """only what this function (a gprof2dot ``module:line:name`` glob, or a name) calls"""


def _stats_of(ps: ProfileData) -> pstats.Stats:
    st = pstats.Stats()
    st.stats = ps.to_pstats_dict()  # type: ignore[attr-defined]
    st.total_tt = 0  # type: ignore[attr-defined]
    st.total_calls = st.prim_calls = 0  # type: ignore[attr-defined]
    st.get_top_level_stats()
    return st


def _profile(stats: pstats.Stats) -> Any:
    import gprof2dot

    parser = gprof2dot.PstatsParser.__new__(gprof2dot.PstatsParser)  # __init__ would read files and sys.exit
    parser.stats = stats
    parser.profile = gprof2dot.Profile()
    parser.function_ids = {}
    try:
        return parser.parse()
    except SystemExit as e:  # pragma: no cover - defensive: gprof2dot exits on some inconsistent inputs
        raise CallgraphError(f"gprof2dot could not parse the merged profile (exit {e.code})") from None


def _prune(ps: ProfileData, opts: CallgraphOptions) -> Any:
    # gprof2dot keys events by object identity: a deep copy of a profile loses them, so re-parse per attempt
    stats = _stats_of(ps)
    node, edge = opts.node_thres, opts.edge_thres
    while True:
        p = _profile(stats)
        for f in p.functions.values():  # Graphviz decodes &entities; in labels: keep names literal
            f.name = f.name.replace("&", "&amp;")
            if getattr(f, "filename", None):
                f.filename = f.filename.replace("&", "&amp;")
        try:
            p.prune(node / 100.0, edge / 100.0, None, opts.color_nodes_by_selftime)
            if opts.root:
                ids = p.getFunctionIds(opts.root) or p.getFunctionIds(f"*:{opts.root}")
                if not ids:
                    raise CallgraphError(
                        f"call graph: root {opts.root!r} matches no function left after pruning "
                        f"(node_thres={node:g}%, edge_thres={edge:g}%)"
                    )
                p.prune_root(ids, -1)
        except SystemExit as e:  # pragma: no cover - defensive
            raise CallgraphError(f"gprof2dot failed while pruning (exit {e.code})") from None
        if len(p.functions) <= opts.max_nodes or node >= 50:
            return p
        node, edge = max(node * 2, 0.1), max(edge * 2, 0.05)  # from 0 too: doubling 0 would never end


#: the hot path's edges and node outlines (a colour gprof2dot's blue-to-red heat scale never uses)
HOT_PATH_COLOR = "#7b1fa2"
#: the id prefix of the hot path's ``<g>`` nodes and edges in the SVG (the viewers find them by it; ids, as
#: Graphviz before 2.44 drops ``class``), and their class where Graphviz keeps it
HOT_CLASS = "celerylab-hot"
HOT_PATH_LEGEND = "hot path: from the entry function, the heaviest call by cumulative time at each step"


def _pruned(ps: ProfileData, opts: CallgraphOptions) -> Any:
    import gprof2dot

    if opts.theme not in gprof2dot.themes:
        raise UsageError(f"call graph: unknown theme {opts.theme!r}; one of {', '.join(gprof2dot.themes)}")
    if not len(ps.stats):
        raise CallgraphError("call graph: the ProfileSet holds no profiles")
    return _prune(ps, opts)


def _hot_chain(profile: Any) -> list[tuple[int, float]]:
    """The hot path of a pruned gprof2dot profile: ``(function id, seconds)`` from the entry function — the one
    nobody in the graph calls with the most cumulative time (under ``root``: the root) — then at each step the
    callee reached by the call with the most cumulative time, until a function calls nothing left in the graph
    (or only what the path already holds).  Seconds: the entry's own total, then each call's."""
    from gprof2dot import TOTAL_TIME

    funcs = profile.functions
    if not funcs:
        return []
    called = {c.callee_id for f in funcs.values() for c in f.calls.values() if c.callee_id != f.id}

    def total(f: Any) -> float:
        return float(f[TOTAL_TIME]) if TOTAL_TIME in f.events else 0.0

    entries = [f for f in funcs.values() if f.id not in called] or list(funcs.values())
    entry = max(entries, key=lambda f: (total(f), -f.id))
    chain = [(entry.id, total(entry))]
    seen = {entry.id}
    f = entry
    while True:
        calls = [c for c in f.calls.values() if c.callee_id in funcs and c.callee_id not in seen]
        if not calls:
            return chain
        best = max(calls, key=lambda c: (float(c[TOTAL_TIME]) if TOTAL_TIME in c.events else 0.0, -c.callee_id))
        chain.append((best.callee_id, float(best[TOTAL_TIME]) if TOTAL_TIME in best.events else 0.0))
        seen.add(best.callee_id)
        f = funcs[best.callee_id]


HOT_PATH_COLUMNS = ["step", "function", "time_s", "share"]


def hot_path(ps: ProfileData, options: CallgraphOptions | None = None, **kwargs: Any) -> pd.DataFrame:
    """The chain of heaviest calls the call graph highlights: one row per function, ``step`` (0 = the entry
    function), ``function`` (gprof2dot's ``file:line:name``), ``time_s`` (the entry's cumulative time, then the
    cumulative time of the call into each next function, seconds) and ``share`` (of the entry's).  Computed on the
    pruned graph that is drawn (same options as :func:`to_dot`)."""
    import pandas as pd

    profile = _pruned(ps, _options(options, kwargs))
    chain = _hot_chain(profile)
    top = chain[0][1] if chain else 0.0
    rows = [(i, str(profile.functions[fid].name).replace("&amp;", "&"), t, t / top if top else float("nan"))
            for i, (fid, t) in enumerate(chain)]  # fmt: skip
    return pd.DataFrame(rows, columns=HOT_PATH_COLUMNS)


def to_dot(ps: ProfileData, options: CallgraphOptions | None = None, **kwargs: Any) -> str:
    """The DOT source of the merged call graph of ``ps`` (keywords override :class:`CallgraphOptions` fields),
    the hot path (:func:`hot_path`) drawn with thick :data:`HOT_PATH_COLOR` edges and outlines, its SVG groups
    given ids that start with :data:`HOT_CLASS`."""
    import gprof2dot

    opts = _options(options, kwargs)
    profile = _pruned(ps, opts)
    chain = [fid for fid, _ in _hot_chain(profile)]
    hot_nodes = set(chain)
    hot_edges = set(itertools.pairwise(chain))

    class HotWriter(gprof2dot.DotWriter):
        def node(self, node: Any, **attrs: Any) -> None:
            if node in hot_nodes:
                attrs.update(fillcolor=attrs.get("color"), color=HOT_PATH_COLOR, penwidth="4", id=f"{HOT_CLASS}-{node}",
                             **{"class": HOT_CLASS})  # fmt: skip
            super().node(node, **attrs)

        def edge(self, src: Any, dst: Any, **attrs: Any) -> None:
            if (src, dst) in hot_edges:
                width = max(float(attrs.get("penwidth") or 1), 4.0)
                attrs.update(color=HOT_PATH_COLOR, fontcolor=HOT_PATH_COLOR, penwidth=f"{width:.2f}",
                             id=f"{HOT_CLASS}-{src}-{dst}", **{"class": HOT_CLASS})  # fmt: skip
            super().edge(src, dst, **attrs)

    buf = io.StringIO()
    writer = HotWriter(buf)
    writer.wrap = opts.wrap
    writer.show_function_events = [gprof2dot.labels[n] for n in gprof2dot.defaultLabelNames]
    writer.graph(profile, copy.deepcopy(gprof2dot.themes[opts.theme]))
    return buf.getvalue()


def _options(options: CallgraphOptions | None, kwargs: dict[str, Any]) -> CallgraphOptions:
    opts = options or CallgraphOptions()
    if kwargs:
        unknown = set(kwargs) - set(CallgraphOptions.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown call graph option(s): {', '.join(sorted(unknown))}")
        opts = CallgraphOptions(**{**opts.__dict__, **kwargs})
    return opts


def dot_binary() -> str:
    """Path of Graphviz ``dot`` (``$CELERYLAB_DOT`` first), or :class:`CallgraphError` with the install hint."""
    exe = os.environ.get("CELERYLAB_DOT") or shutil.which("dot")
    if not exe or not os.access(exe, os.X_OK):
        raise CallgraphError(GRAPHVIZ_MISSING)
    return exe


def render_dot(dot_source: str, fmt: str = "svg", *, timeout: float = 60.0) -> bytes:
    """Run ``dot -T<fmt>`` on ``dot_source`` with a timeout; returns the output bytes."""
    if fmt not in FORMATS:
        raise UsageError(f"call graph: unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if fmt == "dot":
        return dot_source.encode("utf-8")
    exe = dot_binary()
    try:
        done = subprocess.run(
            [exe, f"-T{fmt}"], input=dot_source.encode("utf-8"), capture_output=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise CallgraphError(GRAPHVIZ_MISSING) from None
    except subprocess.TimeoutExpired:
        n = dot_source.count("->")
        raise CallgraphError(
            f"Graphviz 'dot' did not finish within {timeout:g} s on a graph of {n} edges; "
            "raise node_thres / edge_thres or lower max_nodes"
        ) from None
    if done.returncode != 0 or not done.stdout:
        err = done.stderr.decode("utf-8", "replace").strip()
        raise CallgraphError(f"Graphviz 'dot' failed (exit {done.returncode}): {err[:500]}")
    return done.stdout


def callgraph_svg(
    ps: ProfileData, options: CallgraphOptions | None = None, *, timeout: float = 60.0, **kwargs: Any
) -> str:
    """The merged call graph of ``ps`` as SVG text."""
    return render_dot(to_dot(ps, options, **kwargs), "svg", timeout=timeout).decode("utf-8")


def write_callgraph(
    ps: ProfileData,
    path: str | os.PathLike[str],
    options: CallgraphOptions | None = None,
    *,
    format: str | None = None,
    timeout: float = 60.0,
    **kwargs: Any,
) -> str:
    """Write the call graph of ``ps`` to ``path`` (svg, png, pdf or dot, from ``format`` or the extension)."""
    path = os.fspath(path)
    fmt = (format or os.path.splitext(path)[1].lstrip(".") or "svg").lower()
    if fmt == "gv":
        fmt = "dot"
    if fmt not in FORMATS:
        raise UsageError(f"{path}: unknown call graph format {fmt!r}; use one of {', '.join(FORMATS)}")
    check_folder(path)
    return write_atomic(path, render_dot(to_dot(ps, options, **kwargs), fmt, timeout=timeout))


#: The call graph viewer, plain JavaScript shared by the explorer's Call graph tab and the HTML report (no network,
#: no library).  ``celerylabGraphView(root)`` takes an element holding ``.celerylab-graph-stage > svg`` and buttons
#: ``[data-zoom="in|out|fit|hot|actual"]``: on open the whole graph fits the stage (the output's width, at most
#: ``data-max-height`` px high, 640 by default); the wheel zooms around the pointer, a drag pans, the buttons zoom,
#: fit, show the hot path (the ``g.celerylab-hot`` groups) or Graphviz's actual size.  The view is the SVG's
#: ``viewBox``; ``root.dataset.scale`` is the zoom against the fitted view (1 = fit), for the page and for tests.
VIEWER_JS = r"""
function celerylabGraphView(root) {
  var stage = root.querySelector(".celerylab-graph-stage");
  var svg = stage && stage.querySelector("svg");
  if (!svg || svg.__celerylabView) return;
  svg.__celerylabView = true;
  var vb = svg.viewBox && svg.viewBox.baseVal;
  var full;
  if (vb && vb.width > 0 && vb.height > 0) {
    full = {x: vb.x, y: vb.y, w: vb.width, h: vb.height};
  } else {
    var bb = svg.getBBox();
    full = {x: bb.x, y: bb.y, w: Math.max(bb.width, 1), h: Math.max(bb.height, 1)};
  }
  var maxH = Number(root.getAttribute("data-max-height")) || 640;
  var view = {x: full.x, y: full.y, w: full.w, h: full.h};
  svg.removeAttribute("width");
  svg.removeAttribute("height");
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  svg.style.width = "100%";
  svg.style.height = "100%";
  svg.style.display = "block";
  stage.style.overflow = "hidden";
  stage.style.position = "relative";
  stage.style.cursor = "grab";
  stage.style.touchAction = "none";
  var label = root.querySelector(".celerylab-graph-zoom");

  function size() {
    var w = stage.clientWidth || root.clientWidth || 800;
    var h = Math.max(200, Math.min(maxH, w * full.h / full.w));
    stage.style.height = Math.round(h) + "px";
  }
  function apply() {
    svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].join(" "));
    var s = Math.max(full.w / view.w, full.h / view.h);
    root.dataset.scale = s.toFixed(4);
    if (label) label.textContent = Math.round(s * 100) + "%";
  }
  function pixelsPerUnit() {
    return Math.min(stage.clientWidth / view.w, stage.clientHeight / view.h) || 1;
  }
  function toUser(cx, cy) {
    var m = svg.getScreenCTM();
    if (!m) return {x: view.x + view.w / 2, y: view.y + view.h / 2};
    var p = svg.createSVGPoint();
    p.x = cx;
    p.y = cy;
    p = p.matrixTransform(m.inverse());
    return {x: p.x, y: p.y};
  }
  function zoom(f, at) {
    var s = full.w / (view.w / f);
    if (s < 0.25 || s > 60) return;
    var c = at || {x: view.x + view.w / 2, y: view.y + view.h / 2};
    view = {x: c.x - (c.x - view.x) / f, y: c.y - (c.y - view.y) / f, w: view.w / f, h: view.h / f};
    apply();
  }
  function fit() {
    view = {x: full.x, y: full.y, w: full.w, h: full.h};
    apply();
  }
  function actual() {  // Graphviz's own size: one SVG unit per CSS pixel, from the top left
    view = {x: full.x, y: full.y, w: stage.clientWidth || full.w, h: stage.clientHeight || full.h};
    apply();
  }
  function hot() {
    var parts = svg.querySelectorAll("g.celerylab-hot");
    if (!parts.length) return fit();
    var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (var i = 0; i < parts.length; i++) {
      var r = parts[i].getBoundingClientRect();
      var a = toUser(r.left, r.top), b = toUser(r.right, r.bottom);
      x0 = Math.min(x0, a.x); y0 = Math.min(y0, a.y); x1 = Math.max(x1, b.x); y1 = Math.max(y1, b.y);
    }
    var pad = 0.04 * Math.max(x1 - x0, y1 - y0) + 10;
    view = {x: x0 - pad, y: y0 - pad, w: x1 - x0 + 2 * pad, h: y1 - y0 + 2 * pad};
    apply();
  }
  var actions = {"in": function () { zoom(1.25); }, "out": function () { zoom(0.8); }, fit: fit, hot: hot,
                 actual: actual};
  var buttons = root.querySelectorAll("[data-zoom]");
  for (var i = 0; i < buttons.length; i++) {
    (function (b) {
      b.onclick = function (e) { e.preventDefault(); var f = actions[b.getAttribute("data-zoom")]; if (f) f(); };
    })(buttons[i]);
  }
  stage.addEventListener("wheel", function (e) {
    e.preventDefault();
    zoom(e.deltaY < 0 ? 1.15 : 1 / 1.15, toUser(e.clientX, e.clientY));
  }, {passive: false});
  var drag = null;
  stage.addEventListener("pointerdown", function (e) {
    if (e.button !== 0) return;
    drag = {x: e.clientX, y: e.clientY, vx: view.x, vy: view.y, k: pixelsPerUnit()};
    stage.style.cursor = "grabbing";
    if (stage.setPointerCapture) stage.setPointerCapture(e.pointerId);
  });
  stage.addEventListener("pointermove", function (e) {
    if (!drag) return;
    view.x = drag.vx - (e.clientX - drag.x) / drag.k;
    view.y = drag.vy - (e.clientY - drag.y) / drag.k;
    apply();
  });
  function stop() { drag = null; stage.style.cursor = "grab"; }
  stage.addEventListener("pointerup", stop);
  stage.addEventListener("pointercancel", stop);
  size();
  fit();
  if (typeof ResizeObserver !== "undefined") new ResizeObserver(size).observe(root);
}
"""

#: the viewer's toolbar (the report writes it around the SVG; the explorer's widget builds the same)
VIEWER_TOOLBAR = (
    '<div class="celerylab-graph-tools">'
    '<button type="button" data-zoom="in" title="zoom in">+</button>'
    '<button type="button" data-zoom="out" title="zoom out">\u2212</button>'
    '<button type="button" data-zoom="fit" title="the whole graph">fit</button>'
    '<button type="button" data-zoom="hot" title="zoom to the hot path">hot path</button>'
    '<button type="button" data-zoom="actual" title="Graphviz\'s own size">1:1</button>'
    '<span class="celerylab-graph-zoom"></span>'
    f'<span class="celerylab-graph-legend"><span style="display:inline-block;width:22px;height:0;'
    f'border-top:4px solid {HOT_PATH_COLOR};vertical-align:middle;margin:0 4px 0 10px"></span>{HOT_PATH_LEGEND}. '
    "Node colour: share of the total time (blue low, red high). Wheel: zoom; drag: pan.</span></div>"
)

#: the viewer's look (the explorer's widget and the report's stylesheet both use it)
GRAPH_CSS = (
    ".celerylab-graph{width:100%;max-width:100%}"
    ".celerylab-graph-tools{display:flex;flex-wrap:wrap;align-items:center;gap:4px;margin:2px 0 4px;font-size:12px}"
    ".celerylab-graph-tools button{min-width:30px;padding:1px 8px;border:1px solid #bbb;border-radius:3px;"
    "background:#f7f7f7;cursor:pointer;font-size:13px}"
    ".celerylab-graph-tools button:hover{background:#e8e8e8}"
    ".celerylab-graph-zoom{min-width:44px;color:#555;text-align:right}"
    ".celerylab-graph-legend{color:#444}"
    ".celerylab-graph-stage{width:100%;max-width:100%;border:1px solid #ddd;background:#fff;overflow:hidden;"
    "user-select:none}"
    # the hot path keeps a visible width in screen pixels at every zoom (fitted, a big graph is drawn small)
    ".celerylab-graph-stage g.edge.celerylab-hot path{stroke-width:4px;vector-effect:non-scaling-stroke}"
    ".celerylab-graph-stage g.node.celerylab-hot polygon,.celerylab-graph-stage g.node.celerylab-hot path"
    "{stroke-width:3px;vector-effect:non-scaling-stroke}"
)
