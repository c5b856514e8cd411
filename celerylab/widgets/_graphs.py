"""Call graph tab (gprof2dot → DOT → SVG with Graphviz ``dot``) and Call tree tab (icicle / sunburst)."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets as w
import traitlets as t

from ..callgraph import GRAPH_CSS, VIEWER_JS, VIEWER_TOOLBAR
from ..charts.calltree import APPROXIMATION_NOTE, calltree
from ._base import esc, guarded, message_figure, new_figure_widget, show_figure
from ._data import calltree_frame
from ._tab import TabController

if TYPE_CHECKING:
    from ._base import ErrorArea
    from ._state import ExplorerState


class GraphView(anywidget.AnyWidget):
    """An SVG call graph with the shared viewer (:data:`celerylab.callgraph.VIEWER_JS`): fitted into the output on
    open, wheel/buttons to zoom, drag to pan, a button to the hot path.  :attr:`svg` is the ``<svg>`` markup."""

    _esm = (
        VIEWER_JS
        + "\nconst TOOLBAR = "
        + json.dumps(VIEWER_TOOLBAR)
        + r""";
function render({ model, el }) {
  el.classList.add("celerylab-graph");
  const draw = () => {
    el.setAttribute("data-max-height", String(model.get("max_height")));
    const svg = model.get("svg");
    el.innerHTML = svg ? TOOLBAR + '<div class="celerylab-graph-stage">' + svg + "</div>" : "";
    if (svg) celerylabGraphView(el);
  };
  draw();
  model.on("change:svg", draw);
  return () => model.off("change:svg", draw);
}
export default { render };
"""
    )
    _css = GRAPH_CSS
    svg = t.Unicode("").tag(sync=True)
    max_height = t.Int(640).tag(sync=True)


class CallgraphTab(TabController):
    """The merged call graph of the filtered selection, pruned by ``node_thres`` / ``edge_thres`` (percent of the
    total time), optionally rooted at the drilldown function, with its hot path highlighted.  On open the whole
    graph fits the output; zoom (wheel, +/−), pan (drag), fit, hot path and 1:1 buttons are in the page
    (:class:`GraphView`).  :attr:`svg` is the SVG drawn (``""`` when none); where ``dot`` is missing the tab says
    how to install it."""

    title = "Call graph"

    def __init__(self, state: ExplorerState, errors: ErrorArea) -> None:
        super().__init__(state, errors)
        self.svg = ""
        self.node_thres = _percent_box("node %", 0.5, 0.5)
        self.edge_thres = _percent_box("edge %", 0.1, 0.1)
        self.rooted = w.Checkbox(
            value=False, description="only below the drilldown function", indent=False, layout=w.Layout(width="260px")
        )
        self.render_button = w.Button(description="render", button_style="primary", layout=w.Layout(width="90px"))
        self.render_button.on_click(self.on_render)
        for c in (self.node_thres, self.edge_thres, self.rooted):
            c.observe(self.on_control, names="value")
        self.status = w.HTML()
        self.graph = GraphView(layout=w.Layout(width="100%"))
        self.widget = w.VBox(
            [w.HBox([self.node_thres, self.edge_thres, self.rooted, self.render_button]), self.status, self.graph]
        )

    def refresh(self) -> None:
        from ..callgraph import CallgraphError, CallgraphOptions, callgraph_svg

        if not len(self.ps):
            self.svg = ""
            self.graph.svg = ""
            self.status.value = "<i>no profiles match the filters</i>"
            return
        root = None
        if self.rooted.value and self.state.focus is not None:
            root = str(self.ps.functions["name"].iloc[self.state.focus])
        opts = CallgraphOptions(
            node_thres=float(self.node_thres.value), edge_thres=float(self.edge_thres.value), root=root
        )
        t0 = time.perf_counter()
        try:
            svg = callgraph_svg(self.ps, opts)
        except CallgraphError as e:
            self.svg = ""
            self.graph.svg = ""
            self.status.value = f"<div class='celerylab-callgraph-error' style='color:#a40000'>{esc(e)}</div>"
            return
        self.svg = svg
        start = svg.find("<svg")
        self.graph.svg = svg[start:] if start >= 0 else svg
        n = svg.count('class="node')
        hot = len(re.findall(r'class="node celerylab(?:-|&#45;)hot"', svg))
        self.status.value = (
            f"<span class='celerylab-callgraph-status'>{n} functions ({hot} on the hot path), {len(self.ps):,} "
            f"profiles, node ≥ {opts.node_thres:g}%, edge ≥ {opts.edge_thres:g}%"
            + (f", below {esc(root)}" if root else "")
            + f" · {time.perf_counter() - t0:.2f} s</span>"
        )

    @guarded
    def on_render(self, _button: Any = None) -> None:
        """Render the graph now."""
        self.stale = False
        self.refresh()

    @guarded
    def on_control(self, change: dict[str, Any]) -> None:
        """Thresholds or rooting changed: render again."""
        self.stale = False
        self.refresh()


class CalltreeTab(TabController):
    """Icicle or sunburst of the call tree of the filtered selection (from the functions nobody calls, or rooted at
    the drilldown function when that box is ticked), rebuilt from caller edges: an approximation, and the figure
    says so.  :attr:`current` is the node frame ``id, parent, func_id, label, value``."""

    title = "Call tree"

    def __init__(self, state: ExplorerState, errors: ErrorArea) -> None:
        super().__init__(state, errors)
        state.observe(self.on_focus, names="focus")
        self.kind = w.ToggleButtons(options=["icicle", "sunburst"], value="icicle", style={"button_width": "80px"})
        # off by default: the drilldown starts on the function with the most own time, usually a leaf, whose tree
        # is a single box; the whole tree from the functions nobody calls is the useful first view
        self.rooted = w.Checkbox(
            value=False, description="rooted at the drilldown function", indent=False, layout=w.Layout(width="260px")
        )
        self.depth = w.BoundedIntText(
            value=6,
            min=1,
            max=30,
            description="depth",
            layout=w.Layout(width="120px"),
            style={"description_width": "40px"},
        )
        for c in (self.kind, self.rooted, self.depth):
            c.observe(self.on_control, names="value")
        self.note = w.HTML(f"<i>{esc(APPROXIMATION_NOTE)}</i>")
        self.fig = new_figure_widget(480)
        self.widget = w.VBox([w.HBox([self.kind, self.rooted, self.depth]), self.note, self.fig])

    def refresh(self) -> None:
        root = self.state.focus if self.rooted.value else None
        tree = calltree_frame(self.ps, root=root, max_depth=int(self.depth.value))
        self.current = tree
        if not len(tree):
            show_figure(self.fig, message_figure("no call tree for this selection"))
            return
        title = None if root is None else f"below {self.ps.functions['label'].iloc[root]}"
        show_figure(self.fig, calltree(tree, kind=self.kind.value, title=title))

    def on_focus(self, change: dict[str, Any]) -> None:
        """The drilldown focus moved: a rooted tree follows it on next show."""
        self.stale = True

    @guarded
    def on_control(self, change: dict[str, Any]) -> None:
        """Kind, rooting or depth changed: redraw."""
        self.stale = False
        self.refresh()


def _percent_box(description: str, value: float, step: float) -> w.BoundedFloatText:
    """A threshold in % of the total time (0-100), as the call graph's pruning options take it."""
    return w.BoundedFloatText(value=value, min=0.0, max=100.0, step=step, description=description,
                              layout=w.Layout(width="150px"), style={"description_width": "50px"})  # fmt: skip
