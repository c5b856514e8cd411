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
import os
import pstats
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._io import check_folder, write_atomic
from .errors import CallgraphError, UsageError

if TYPE_CHECKING:
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


def to_dot(ps: ProfileData, options: CallgraphOptions | None = None, **kwargs: Any) -> str:
    """The DOT source of the merged call graph of ``ps`` (keywords override :class:`CallgraphOptions` fields)."""
    import gprof2dot

    opts = _options(options, kwargs)
    if opts.theme not in gprof2dot.themes:
        raise UsageError(f"call graph: unknown theme {opts.theme!r}; one of {', '.join(gprof2dot.themes)}")
    if not len(ps.stats):
        raise CallgraphError("call graph: the ProfileSet holds no profiles")
    profile = _prune(ps, opts)
    buf = io.StringIO()
    writer = gprof2dot.DotWriter(buf)
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
