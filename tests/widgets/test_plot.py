"""The light figure widget: plotly.js once per page, small widget state, clicks back to the Python handler."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import plotly.graph_objects as go

from celerylab.widgets._plot import PlotWidget, plotly_js


def _state_bytes(widget) -> int:
    return len(json.dumps(widget.get_state(), default=str))


def test_an_empty_plot_widget_carries_no_plotly_js():
    pw = PlotWidget(height=300)
    assert _state_bytes(pw) < 10_000  # the ~4 kB module, not the 5 MB bundle


def test_every_figure_of_the_explorer_is_light(app):
    figs = [v for tab in app.tab_list for v in vars(tab).values() if isinstance(v, PlotWidget)]
    assert len(figs) >= 10
    assert not any(isinstance(v, go.FigureWidget) for tab in app.tab_list for v in vars(tab).values())
    # the opening tab (Findings) is drawn; the other tabs' figures are empty until their tab is opened
    assert app.findings.fig.figure["data"]
    assert not app.overview.durations_fig.figure.get("data")
    assert not app.hotspots.sql_fig.figure.get("data")
    total = sum(_state_bytes(f) for f in figs)
    assert total < 1_000_000, total


def test_plotly_js_is_sent_on_request_gzip_or_plain():
    pw = PlotWidget()
    sent = []
    pw.send = lambda content, buffers=None: sent.append((content, buffers))  # type: ignore[method-assign]
    pw._on_custom_msg(pw, {"type": "need-plotly", "gzip": True}, [])
    pw._on_custom_msg(pw, {"type": "need-plotly", "gzip": False}, [])
    packed = plotly_js()
    raw = gzip.decompress(packed)
    (c1, b1), (c2, b2) = sent
    assert c1 == {"type": "plotly-js", "gzip": True} and gzip.decompress(b1[0]) == raw
    assert c2 == {"type": "plotly-js", "gzip": False} and b2[0] == raw
    assert b"module.exports = CelerylabPlotly" in raw and len(packed) < len(raw) / 2
    assert pw.sent_js == [len(packed), len(raw)]


def test_a_browser_click_calls_the_handler_with_plotly_points():
    pw = PlotWidget()
    got = []
    fig = go.Figure([go.Bar(x=[1, 2, 3], y=["a", "b", "c"], name="first"), go.Bar(x=[4], y=["d"], name="second")])
    pw.show(fig, on_click=lambda trace, points, state: got.append((trace.name, points.point_inds, points.xs)))
    pw._on_custom_msg(pw, {"type": "click", "points": [{"curve": 0, "index": 2, "x": 3, "y": "c"}]}, [])
    pw._on_custom_msg(pw, {"type": "click", "points": [{"curve": 1, "index": 0}]}, [])
    pw._on_custom_msg(pw, {"type": "click", "points": [{"curve": 7, "index": 0}]}, [])  # no such trace: ignored
    assert got == [("first", [2], [3]), ("second", [0], [4])]
    assert pw.figure["data"][0]["x"] == [1, 2, 3]


def test_batch_update_sends_the_changed_figure_once():
    pw = PlotWidget()
    pw.show(go.Figure([go.Bar(x=[1], y=["a"])]))
    seen = []
    pw.observe(lambda ch: seen.append(ch["new"]), names="figure")
    with pw.batch_update():
        pw.data[0].update(x=[5])
        pw.shown.layout.title.text = "new title"
    assert len(seen) == 1
    assert seen[0]["data"][0]["x"] == [5] and seen[0]["layout"]["title"]["text"] == "new title"


def test_explorer_builds_in_a_fresh_kernel_without_nbformat_in_under_a_second(widget_set):
    code = (
        "import sys, time, IPython, celerylab as cl\n"  # a kernel has IPython loaded already
        "from celerylab.widgets._findings import FindingsTab\n"
        "FindingsTab.background = True\n"  # as in a kernel: the findings are computed after the explorer shows
        f"ps = cl.load({str(widget_set)!r}, cache=False)\n"
        "t = time.perf_counter()\n"
        "app = ps.explore()\n"
        "took = time.perf_counter() - t\n"
        "print(took, *(m in sys.modules for m in ('nbformat', 'jsonschema', 'plotly.basewidget', 'scipy')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    print(f"explore() in a fresh interpreter (import of the widgets included): {float(out[0]):.2f} s")
    assert out[1:4] == ["False"] * 3  # scipy (statistics) is imported by the findings thread
    assert float(out[0]) < 1.0


def test_the_bundled_plotly_js_is_the_version_plotly_python_writes_for():
    import re
    from pathlib import Path

    import plotly

    full = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text(encoding="utf-8")[:300]
    bundled = gzip.decompress(plotly_js()).decode("utf-8")[:300]
    version = re.search(r"plotly\.js v(\S+)", full)
    assert version is not None
    assert f"plotly.js v{version.group(1)} partial bundle" in bundled


def test_every_explorer_chart_uses_only_bundled_trace_types(app):
    from celerylab.widgets._plot import BUNDLED_TRACES

    seen = set()
    for tab in app.tab_list:
        app.show(tab.title)
        for v in vars(tab).values():
            if isinstance(v, PlotWidget):
                seen |= {tr.get("type", "scatter") for tr in v.figure.get("data", [])}
    app.show("Call tree")
    app.calltree.kind.value = "sunburst"
    seen |= {tr.get("type") for tr in app.calltree.fig.figure["data"]}
    assert {"bar", "box", "sunburst", "icicle"} <= seen
    assert seen <= BUNDLED_TRACES, seen - BUNDLED_TRACES
    assert not app.errors.errors


def test_tabs_not_opened_yet_have_no_view(app):
    assert app.tabs.children[0] is app.findings.widget
    assert all(child is not tab.widget for child, tab in zip(app.tabs.children[1:], app.tab_list[1:], strict=True))
    app.show("Hotspots")
    assert app.tabs.children[app.tab_list.index(app.hotspots)] is app.hotspots.widget
    assert app.hotspots.sql_fig.figure["data"]
