"""The report of the shipped samples in Chromium at 1280 px: no horizontal overflow; the call graph fits its box on
open, its buttons and the wheel zoom, a drag pans, and the hot path button zooms onto the highlighted path.
Skips without Chromium or Playwright."""

from __future__ import annotations

import os

import pytest

import celerylab as cl
from celerylab.report import write_report

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = os.environ.get("CELERYLAB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = os.path.join(os.path.dirname(__file__), "..", "..", "test-artifacts", "report")

BOXES = """() => {
  const root = document.querySelector('#callgraph .celerylab-graph');
  const stage = root.querySelector('.celerylab-graph-stage');
  const svg = stage.querySelector('svg');
  const r = (e) => { const b = e.getBoundingClientRect(); return {x: b.x, y: b.y, w: b.width, h: b.height}; };
  return {stage: r(stage), svg: r(svg), scale: Number(root.dataset.scale), viewBox: svg.getAttribute('viewBox'),
          hot: svg.querySelectorAll('g.celerylab-hot').length, graph: svg.querySelector('g.graph').getBBox ?
          r(svg.querySelector('g.graph')) : null};
}"""


def test_report_call_graph_fits_zooms_and_pans_at_1280_px(tmp_path):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    ps = cl.load(cl.sample_profiles())
    path = tmp_path / "report.html"
    write_report(ps, path)
    os.makedirs(ARTIFACTS, exist_ok=True)
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(path.as_uri())
            page.wait_for_selector("#callgraph .celerylab-graph[data-scale]")
            width = page.evaluate("document.documentElement.scrollWidth")
            opened = page.evaluate(BOXES)
            page.locator("#callgraph").scroll_into_view_if_needed()
            page.locator("#callgraph").screenshot(path=os.path.join(ARTIFACTS, "report-callgraph-fit.png"))
            page.locator('#callgraph [data-zoom="in"]').click()
            zoomed = page.evaluate(BOXES)
            page.locator('#callgraph [data-zoom="fit"]').click()
            refit = page.evaluate(BOXES)
            stage = page.locator("#callgraph .celerylab-graph-stage")
            box = stage.bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.wheel(0, -300)
            wheeled = page.evaluate(BOXES)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] / 2 - 120, box["y"] + box["height"] / 2 - 40, steps=4)
            page.mouse.up()
            panned = page.evaluate(BOXES)
            page.locator('#callgraph [data-zoom="hot"]').click()
            hot = page.evaluate(BOXES)
            page.locator("#callgraph").screenshot(path=os.path.join(ARTIFACTS, "report-callgraph-hot.png"))
        finally:
            browser.close()
    print(f"\nreport at 1280 px: scrollWidth {width}; call graph on open {opened}; hot path view {hot}")
    assert not errors, errors
    assert width <= 1280, f"horizontal overflow: {width} px"
    # on open the whole graph is inside its box, which is inside the page
    s, g = opened["stage"], opened["graph"]
    assert s["x"] >= 0 and s["x"] + s["w"] <= 1280 and opened["svg"]["w"] <= s["w"] + 0.5
    assert g["w"] <= s["w"] + 1 and g["h"] <= s["h"] + 1 and g["x"] >= s["x"] - 1 and g["y"] >= s["y"] - 1
    assert opened["scale"] == 1 and opened["hot"] >= 3
    # + zooms in; fit comes back; the wheel zooms; a drag moves the view, not the scale; hot path zooms in
    assert zoomed["scale"] == pytest.approx(1.25) and refit["scale"] == 1 and refit["viewBox"] == opened["viewBox"]
    assert wheeled["scale"] > 1
    assert panned["scale"] == wheeled["scale"] and panned["viewBox"] != wheeled["viewBox"]
    assert hot["scale"] > 1
