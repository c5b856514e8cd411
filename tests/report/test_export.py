"""Static chart export through kaleido and the system Chromium (offline), and self-contained HTML."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import pytest
from PIL import Image, ImageStat

from celerylab.charts.export import ExportError, write_html, write_image, write_images
from celerylab.charts.functions import top_functions


@pytest.fixture(scope="module")
def fig(corpus):
    return top_functions(corpus.top(8), title="Top functions")


def test_png_svg_and_pdf_are_real_non_blank_images(fig, tmp_path):
    # WHEN three formats are written with one shared browser
    png, svg, pdf = write_images([fig, fig, fig], [tmp_path / "t.png", tmp_path / "t.svg", tmp_path / "t.pdf"])
    # THEN the PNG has the figure's size and is not one flat colour
    with open(png, "rb") as f:
        img = Image.open(io.BytesIO(f.read())).convert("L")
    assert img.size == (900, fig.layout.height or 500)
    assert ImageStat.Stat(img).stddev[0] > 5
    assert len(img.getcolors(maxcolors=1 << 16) or []) > 10
    # the SVG draws the bars (non-empty paths) and names the hottest function
    with open(svg, encoding="utf-8") as f:
        root = ET.fromstring(f.read())
    ns = "{http://www.w3.org/2000/svg}"
    paths = [p.get("d", "") for p in root.iter(f"{ns}path") if p.get("d") and p.get("d") != "M0,0"]
    assert len(paths) >= 8
    texts = " ".join("".join(t.itertext()) for t in root.iter(f"{ns}text"))
    assert "Top functions" in texts
    with open(pdf, "rb") as f:
        assert f.read(5) == b"%PDF-"


def test_html_export_is_self_contained(fig, tmp_path):
    out = write_html(fig, tmp_path / "t.html")
    with open(out, encoding="utf-8") as f:
        html = f.read()
    assert not re.search(r"<script[^>]+src=", html)  # plotly.js is inlined, nothing is fetched
    assert "Plotly.newPlot" in html and len(html) > 1_000_000
    assert write_image(fig, tmp_path / "t2.html").endswith("t2.html")


def test_unknown_format_is_a_clear_error(fig, tmp_path):
    with pytest.raises((ExportError, ValueError), match="bmp"):
        write_image(fig, tmp_path / "t.bmp")
    assert not (tmp_path / "t.bmp").exists()


def test_missing_chromium_says_so(fig, tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chromium"))
    with pytest.raises(ExportError, match=r"(?i)chromium"):
        write_image(fig, tmp_path / "t.png")
    assert not (tmp_path / "t.png").exists()


def test_an_exported_svg_carries_the_title_the_legend_and_the_axis_units(tmp_path):
    import celerylab as cl
    from celerylab.charts.diff import diff_changes

    ps = cl.load(cl.sample_profiles())
    fig = diff_changes(cl.diff(ps, split_by="run", values=("baseline", "candidate")))
    (svg,) = write_images([fig], [tmp_path / "diff.svg"])
    with open(svg, encoding="utf-8") as f:
        root = ET.fromstring(f.read())
    texts = " ".join("".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert fig.layout.title.text in texts  # "Change per task and function (B − A), …"
    assert "delta: B − A (ms per task invocation)" in texts
    assert "slower (B > A)" in texts and "status" in texts
    assert "demo.reports.build · " in texts
