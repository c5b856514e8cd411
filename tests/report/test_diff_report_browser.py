"""The comparison report of the shipped samples in Chromium at 1280 px: no horizontal overflow, a bounded page, the
findings first, readable labels.  Skips without Chromium or Playwright."""

from __future__ import annotations

import os

import pytest

import celerylab as cl
from celerylab.report import diff_report

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = os.environ.get("CELERYLAB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = os.path.join(os.path.dirname(__file__), "..", "..", "test-artifacts", "report")


def test_diff_report_fits_1280_px_and_stays_short(tmp_path):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    ps = cl.load(cl.sample_profiles())
    a, b = ps.where(run="baseline"), ps.where(run="candidate")
    path = tmp_path / "diff.html"
    # the default diff: each function within each task; 15 rows per task shown, the rest folded
    diff_report(cl.diff(a, b), path, a_name="baseline", b_name="candidate", findings=cl.findings(ps))
    os.makedirs(ARTIFACTS, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(path.as_uri())
            page.wait_for_selector("#findings .js-plotly-plot .main-svg")
            page.wait_for_selector("#changes .js-plotly-plot .main-svg")
            width = page.evaluate("document.documentElement.scrollWidth")
            height = page.evaluate("document.documentElement.scrollHeight")
            page.screenshot(path=os.path.join(ARTIFACTS, "diff-report-1280.png"), full_page=True)
            first = page.locator("section").first.inner_text()
            # the reports.build table: its load_report_rows row, its label cell wide enough to read, the full
            # label as the hover title
            cell = page.locator("#diff-task-demo-reports-build td.label", has_text="reports.load_report_rows:56")
            cell_width = cell.evaluate("e => e.getBoundingClientRect().width")
            title = cell.get_attribute("title")
            status = cell.evaluate("e => e.parentElement.children[1].textContent")
            shown_rows = page.locator("#diff-task-demo-reports-build tbody tr").count()
            folded = page.locator("details.more").count()
            folded_open = page.locator("details.more[open]").count()
            changes_title = page.locator("#changes .js-plotly-plot .gtitle").first.text_content()
            legend = page.locator("#changes .js-plotly-plot .legendtext").all_text_contents()
        finally:
            browser.close()
    print(f"\ndiff report at 1280 px: {width} x {height} px; label cell {cell_width:.0f} px")
    assert width <= 1280, f"horizontal overflow: {width} px"
    assert height <= 12_000, f"page {height} px high"
    assert "demo.reports.build slower" in first and "reports.py:67(load_report_rows)" in first
    assert status == "slower" and title.endswith("reports.py:56(load_report_rows)")
    assert cell_width >= 150, f"label column {cell_width} px wide"
    assert shown_rows == 15 and folded >= 1 and folded_open == 0
    assert changes_title.startswith("Change per task and function")
    assert "slower (B > A)" in legend and "new (only in B)" in legend
