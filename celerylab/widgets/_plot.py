"""A light plotly figure widget: plotly.js reaches the page once, however many figures the explorer has.

plotly's own ``FigureWidget`` is an anywidget whose ``_esm`` *is* the 5 MB plotly.js bundle, so every figure
carries its own copy in the widget state (11 figures: 56 MB over the kernel websocket), and its first use imports
nbformat and jsonschema (seconds).  :class:`PlotWidget` is an anywidget with a ~3 kB module instead:

* one :class:`PlotlyLib` model per kernel carries plotly.js — a partial bundle with exactly the trace types the
  charts use (``static/plotly-celerylab.min.js.gz``, 0.45 MB gzip, built by ``scripts/build_plotly_bundle.sh`` from
  the plotly.js version of the installed plotly package; offline) — as a binary trait.  ``explore()`` creates it
  first, so the page decompresses (``DecompressionStream``) and evaluates it (~0.2 s; the full 4.8 MB
  ``plotly.min.js`` takes ~3 s) while the kernel is still building the tabs; every figure on the page shares that
  one evaluation (``globalThis.__celerylabPlotly``).  A figure that finds no library (e.g. the model was closed)
  asks the kernel for it with a custom message;
* the figure itself is a synced ``figure`` trait (plotly JSON), drawn with ``Plotly.react``; an empty widget sends
  nothing but its (empty) state, so a tab not opened yet costs a few hundred bytes;
* clicks come back as a custom message and call the Python handler with plotly's own ``(trace, points, state)``
  arguments (:class:`plotly.callbacks.Points`), so tab handlers are unchanged.

On the Python side :attr:`PlotWidget.data` are the traces of the plain ``go.Figure`` last shown
(:attr:`PlotWidget.shown`; ``layout`` stays the ipywidgets DOM layout).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t
from ipywidgets import widget_serialization

_LOADER_JS = r"""
const KEY = "__celerylabPlotly";

// plotly.js source (bytes, maybe gzip) -> the Plotly object; one evaluation per page, shared by every figure
function evaluate(bytes, gz) {
  globalThis[KEY] = (async () => {
    const t0 = performance.now();
    let text;
    if (gz) {
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
      text = await new Response(stream).text();
    } else {
      text = new TextDecoder().decode(bytes);
    }
    const t1 = performance.now();
    const module = { exports: {} };
    new Function("module", "exports", text)(module, module.exports);
    globalThis.__celerylabPlotlyTimes = { decoded: t1 - t0, evaluated: performance.now() - t1 };
    return module.exports.react ? module.exports : globalThis.Plotly;
  })();
  globalThis[KEY].catch(() => { globalThis[KEY] = undefined; });
  return globalThis[KEY];
}
"""

_LIB_ESM = (
    _LOADER_JS
    + r"""
function initialize({ model }) {
  // runs when the model is created, i.e. as soon as the kernel creates the widget, before any figure is shown
  const src = model.get("source");
  if (!globalThis[KEY] && src && src.byteLength) evaluate(src, model.get("gzip"));
}
export default { initialize };
"""
)

_ESM = (
    _LOADER_JS
    + r"""
async function fromLib(model) {  // the page's PlotlyLib model (its source arrived with it)
  const ref = model.get("lib");
  if (typeof ref !== "string" || !ref.startsWith("IPY_MODEL_") || !model.widget_manager) return undefined;
  const lib = await model.widget_manager.get_model(ref.slice("IPY_MODEL_".length));
  const src = lib && lib.get("source");
  return src && src.byteLength ? evaluate(src, lib.get("gzip")) : undefined;
}

function fromKernel(model) {  // fallback: ask the kernel for plotly.js (a custom message)
  return new Promise((resolve, reject) => {
    const onMsg = (msg, buffers) => {
      if (!msg || msg.type !== "plotly-js") return;
      model.off("msg:custom", onMsg);
      evaluate(buffers[0], msg.gzip).then(resolve, reject);
    };
    model.on("msg:custom", onMsg);
    model.send({ type: "need-plotly", gzip: typeof DecompressionStream !== "undefined" });
  });
}

async function loadPlotly(model) {
  if (globalThis[KEY]) return globalThis[KEY];
  if (globalThis.Plotly && globalThis.Plotly.react) return globalThis.Plotly;
  let plotly;
  try {
    plotly = await fromLib(model);
  } catch (e) {
    plotly = undefined;
  }
  return plotly || globalThis[KEY] || fromKernel(model);
}

async function render({ model, el }) {
  el.classList.add("celerylab-plot");
  const box = document.createElement("div");
  box.style.width = "100%";
  el.appendChild(box);
  const Plotly = await loadPlotly(model);
  let drawn = false;
  const draw = () => {
    const fig = model.get("figure") || {};
    const layout = Object.assign({}, fig.layout || {}, { autosize: true });
    Plotly.react(box, fig.data || [], layout, model.get("config") || {});
    if (!drawn) {
      drawn = true;
      box.on("plotly_click", (ev) => {
        const points = (ev.points || []).map((p) => ({
          curve: p.curveNumber,
          index: p.pointNumber ?? p.pointIndex ?? 0,
          x: typeof p.x === "object" ? null : p.x ?? null,
          y: typeof p.y === "object" ? null : p.y ?? null,
        }));
        model.send({ type: "click", points });
      });
    }
    el.dataset.drawn = String(Number(el.dataset.drawn || 0) + 1);
  };
  draw();
  model.on("change:figure", draw);
  model.on("change:config", draw);
  const ro = new ResizeObserver(() => {
    if (box.offsetWidth > 0 && box._fullLayout) Plotly.Plots.resize(box);
  });
  ro.observe(el);
  return () => {
    ro.disconnect();
    model.off("change:figure", draw);
    model.off("change:config", draw);
    Plotly.purge(box);
  };
}

export default { render };
"""
)


#: the trace types of the bundled plotly.js (``static/plotly-celerylab.min.js``, scripts/build_plotly_bundle.sh):
#: every chart of :mod:`celerylab.charts` must use only these (tests/widgets/test_plot.py checks)
BUNDLED_TRACES = frozenset({"scatter", "bar", "box", "sunburst", "icicle"})
BUNDLE = Path(__file__).parent / "static" / "plotly-celerylab.min.js.gz"


@cache
def plotly_js() -> bytes:
    """The page's plotly.js, gzip-compressed, read once per kernel.

    A partial bundle (:data:`BUNDLED_TRACES`, same plotly.js version as the installed plotly package, shipped
    gzip-compressed: 0.45 MB) evaluates in ~0.2 s in the browser where the full ``plotly.min.js`` takes ~3 s;
    without it, the full one is used."""
    if BUNDLE.exists():
        return BUNDLE.read_bytes()
    return gzip.compress(_full_plotly_js(), compresslevel=1)


def _full_plotly_js() -> bytes:
    import plotly

    return (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()


class PlotlyLib(anywidget.AnyWidget):
    """plotly.js for the page, once: its model carries ``plotly.min.js`` (gzip) and evaluates it as soon as the
    front end creates the model (anywidget ``initialize``), while the kernel is still building the explorer.
    Never displayed; one per kernel (:func:`plotly_lib`)."""

    _esm = _LIB_ESM
    source = t.Bytes().tag(sync=True)
    gzip = t.Bool(True).tag(sync=True)


_LIB: list[PlotlyLib] = []


def plotly_lib() -> PlotlyLib:
    """The kernel's :class:`PlotlyLib` (created, and so sent to the front end, on first call)."""
    if not _LIB or _LIB[0].comm is None:  # none yet, or closed (Widget.close_all)
        _LIB[:] = [PlotlyLib(source=plotly_js(), gzip=True)]
    return _LIB[0]


class PlotWidget(anywidget.AnyWidget):
    """One plotly figure in the notebook; plotly.js is shared by every PlotWidget on the page."""

    _esm = _ESM
    _css = ".celerylab-plot { width: 100%; min-height: 40px; }"
    figure = t.Dict().tag(sync=True)
    config = t.Dict().tag(sync=True)
    lib = t.Instance(PlotlyLib).tag(sync=True, **widget_serialization)

    def __init__(self, height: int = 360, config: dict[str, Any] | None = None) -> None:
        import plotly.graph_objects as go

        super().__init__(config=dict(config or {}), lib=plotly_lib())
        self._fig = go.Figure(layout={"height": height})
        self._on_click: Callable[..., Any] | None = None
        #: plotly.js payloads sent (bytes each), for tests and benchmarks
        self.sent_js: list[int] = []
        self.on_msg(self._on_custom_msg)

    # ---------------------------------------------------------------------------------------- python side
    @property
    def data(self) -> tuple[Any, ...]:
        """The traces of the figure shown (plotly ``BaseTraceType`` objects)."""
        return tuple(self._fig.data)

    @property
    def shown(self) -> Any:
        """The ``go.Figure`` shown."""
        return self._fig

    def show(self, fig: Any, on_click: Callable[..., Any] | None = None) -> None:
        """Draw ``fig`` (a ``go.Figure``) in place; ``on_click(trace, points, state)`` is called on a click."""
        self._fig = fig
        self._on_click = on_click
        self._push()

    @contextmanager
    def batch_update(self) -> Iterator[Any]:
        """Change :attr:`data` / :attr:`layout` in place inside the block; the figure is sent once at its end."""
        yield self._fig
        self._push()

    def _push(self) -> None:
        import plotly.io as pio

        self.figure = json.loads(pio.to_json(self._fig, validate=False, engine="json"))

    def click(self, curve: int, indices: list[int]) -> None:
        """What a click on points ``indices`` of trace ``curve`` does (the browser calls it; so can tests)."""
        from plotly.callbacks import Points

        if self._on_click is None or not 0 <= curve < len(self._fig.data):
            return
        trace = self._fig.data[curve]
        xs = [_at(trace, "x", i) for i in indices]
        ys = [_at(trace, "y", i) for i in indices]
        pts = Points(point_inds=list(indices), xs=xs, ys=ys, trace_name=trace.name, trace_index=curve)
        self._on_click(trace, pts, None)

    def _on_custom_msg(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "need-plotly":
            payload = plotly_js() if content.get("gzip") else gzip.decompress(plotly_js())
            self.sent_js.append(len(payload))
            self.send({"type": "plotly-js", "gzip": bool(content.get("gzip"))}, [payload])
        elif kind == "click":
            points = [p for p in content.get("points", []) if isinstance(p, dict)]
            if points:
                curve = int(points[0].get("curve") or 0)
                self.click(curve, [int(p.get("index") or 0) for p in points if p.get("curve") == curve])


def _at(trace: Any, axis: str, i: int) -> Any:
    values = getattr(trace, axis, None)
    try:
        return values[i] if values is not None else None
    except (IndexError, TypeError, KeyError):
        return None


__all__ = ["PlotWidget", "PlotlyLib", "plotly_js", "plotly_lib"]
