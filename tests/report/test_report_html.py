"""The HTML report: written to a real file, parsed back, and checked for sections, numbers and safety."""

from __future__ import annotations

import base64
import hashlib
import re

import numpy as np
import pandas as pd
import pytest

from celerylab import report as rp
from celerylab.callgraph import VIEWER_JS
from celerylab.core.rules import short_label
from celerylab.errors import CelerylabError
from celerylab.report.model import Note, Table
from celerylab.report.render import static_file

from .corpus import BULK_SQL, EVIL_FILE, EVIL_NAME, EVIL_SQL, EVIL_TASK, LEAK_SITE, N_PLUS_ONE_SQL, Page, plotly_array


@pytest.fixture(scope="module")
def page(corpus, tmp_path_factory):
    path = tmp_path_factory.mktemp("rep") / "report.html"
    # WHEN the report of the corpus is written
    out = corpus.report(path)
    assert out == str(path)
    text = path.read_text(encoding="utf-8")
    return text, Page(text)


@pytest.fixture(scope="module")
def evil_page(evil, tmp_path_factory):
    path = tmp_path_factory.mktemp("evil-rep") / "evil.html"
    rp.write_report(evil, path)
    text = path.read_text(encoding="utf-8")
    return text, Page(text)


def test_report_has_every_section(page):
    _, p = page
    # the corpus holds two runs: the findings come first
    assert p.sections == ["findings", "summary", "top", "distribution", "db", "memory", "callgraph"]


def test_report_on_the_samples_opens_with_what_changed_and_why(tmp_path):
    import celerylab as cl

    ps = cl.load(cl.sample_profiles())
    rep = rp.build_report(ps, callgraph=False)
    first = rep.sections[0]
    assert first.id == "findings" and "run baseline" in first.intro and "run candidate" in first.intro
    notes = [i.text for i in first.items if isinstance(i, Note)]
    rank, note = next((k, n) for k, n in enumerate(notes[:2], 1) if n.startswith("demo.reports.build slower"))
    assert "reports.py:67(load_report_rows)" in note and "load_report_rows" in note and "N+1" in note
    html = rp.render_html(rep)
    assert html.index('id="findings"') < html.index('id="summary"')
    evidence = next(i for i in first.items if isinstance(i, Table) and i.id == f"finding-{rank}").frame
    assert (
        evidence["label"].str.contains("reports.py:67").any()
        and evidence["label"].str.contains("[N+1]", regex=False).any()
    )


def test_top_table_numbers_are_the_exact_pstats_sums(page, corpus):
    _, p = page
    top = corpus.top(20)
    # data-value holds repr(float): the exact numbers, not the rounded display
    assert p.column("top-all", "tottime") == top["tottime"].tolist()
    assert p.column("top-all", "ncalls") == [float(x) for x in top["ncalls"]]
    assert p.column("top-all", "label", raw=False) == top["label"].tolist()
    # the shown text is formatted by the renderer (share as a percentage)
    shown = p.column("top-all", "share", raw=False)
    assert shown[0] == f"{top['share'].iloc[0] * 100:.1f}%"


def test_per_task_top_tables_cover_each_task(page, corpus):
    _, p = page
    for task in ("orders.process", "reports.build", "email.send"):
        table = f"top-task-{task.replace('.', '-')}"
        sub = corpus.where(task_name=task)
        assert p.column(table, "tottime") == sub.top(20)["tottime"].tolist()


def test_summary_lists_tasks_with_their_wall_time(page, corpus):
    _, p = page
    ts = corpus.task_summary()
    assert p.column("task-summary", "task_name", raw=False) == ts["task_name"].tolist()
    assert p.column("task-summary", "total_s") == pytest.approx(ts["total_s"].tolist(), rel=0, abs=0)


def test_distribution_percentiles(page, corpus):
    _, p = page
    prof = corpus.profiles
    rows = dict(zip(zip(p.column("distribution", "task_name", raw=False), p.column("distribution", "run", raw=False)),
                    p.column("distribution", "p50")))  # fmt: skip
    for (task, run), g in prof.groupby(["task_name", "run"], observed=True):
        assert rows[(task, run)] == float(g["wall_s"].median())


def test_db_section_shows_statements_and_the_n_plus_one_suspect(page, corpus):
    _, p = page
    sqls = p.column("sql-top", "sql", raw=False)
    assert sqls[0] == N_PLUS_ONE_SQL and BULK_SQL in sqls
    n_orders = int((corpus.profiles["task_name"] == "orders.process").sum())
    assert p.column("sql-top", "count")[0] == 25 * n_orders
    assert p.column("sql-top", "time_s")[0] == pytest.approx(0.025 * n_orders)
    assert p.column("sql-n-plus-one", "sql", raw=False) == [N_PLUS_ONE_SQL]
    assert p.column("sql-n-plus-one", "task_name", raw=False) == ["orders.process"]


def test_memory_section_shows_growth_and_the_allocation_site(page):
    _, p = page
    col = p.column("memory-growth", "rss_growth_mean")
    growth = dict(zip(p.column("memory-growth", "task_name", raw=False), col))
    assert growth == {"reports.build": 5 * 2**20}
    # every worker process is listed with its growth; 3 tasks each is too short a sequence to call a leak
    assert sorted(p.column("memory-workers", "pid")) == [100, 101]
    # growth sums the tasks' own runs (3 x 5 MiB each), though each started again at 100 MiB
    assert p.column("memory-workers", "growth") == [15 * 2**20, 15 * 2**20]
    assert p.column("memory-workers", "rss_last") == [105 * 2**20, 105 * 2**20]
    assert p.column("memory-workers", "leak_suspect", raw=False) == ["False", "False"]
    assert p.column("memory-sites", "file", raw=False) == [LEAK_SITE[0]]
    assert p.column("memory-sites", "line") == [LEAK_SITE[1]]


def test_figures_carry_the_same_numbers(page, corpus):
    _, p = page
    figs = p.figures()
    bar_x = [plotly_array(f["data"][0]["x"]) for f in figs if f["data"] and f["data"][0].get("type") == "bar"]
    top = corpus.top(20)["tottime"].to_numpy()
    assert any(np.array_equal(x, top) for x in bar_x), "the overall top-functions chart is missing"
    # one plotting div per figure JSON block
    assert len(re.findall(r'<div class="figure" id="celerylab-fig-\d+">', page[0])) == len(figs)


def test_callgraph_is_inline_svg_naming_the_hottest_function(page, corpus):
    _, p = page
    hottest = corpus.top(1)["name"].iloc[0]
    assert "svg" in p.tags
    assert any(hottest in t for t in p.svg_text)


def test_report_is_self_contained(page):
    text, p = page
    # plotly.js is inlined once; nothing is fetched from anywhere
    assert sum("plotly.js v" in body[:200] for _, body in p.scripts) == 1
    assert not [a for a in p.attributes if a[1] in ("src", "href") and a[2] and not a[2].startswith("#")]
    assert "<link" not in text
    assert "cdn." not in " ".join(str(v) for _, _, v in p.attributes)


def _executable_scripts(p: Page) -> list[str]:
    return [body for a, body in p.scripts if a.get("type") in (None, "", "text/javascript")]


def test_only_plotly_the_bootstrap_and_the_graph_viewer_run(evil_page):
    _, p = evil_page
    bodies = _executable_scripts(p)
    assert len(bodies) == 3
    assert bodies[0].lstrip().startswith("/**\n* plotly.js v")
    assert bodies[1] == static_file("report.js")  # the bootstrap shipped as package data
    assert bodies[2].startswith(VIEWER_JS)  # the call graph viewer, nothing of the data
    # and the Content-Security-Policy admits exactly those three, by hash
    csp = p.meta["content-security-policy"]
    allowed = set(re.findall(r"'sha256-([^']+)'", csp))
    assert allowed == {base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() for b in bodies}
    assert "unsafe-inline" not in csp.split("script-src", 1)[1]


def test_hostile_names_are_shown_literally_and_never_become_markup(evil_page):
    text, p = evil_page
    # GIVEN names that try to open script/img elements
    # THEN the page has no element or handler they could have created
    assert "img" not in p.tags
    assert not [a for a in p.attributes if a[1].lower().startswith("on")]
    for needle in ("<script>alert", "<img src=x", "</script><script>alert"):
        assert needle not in text
    # AND the names are visible as text: in the top table, the task summary, the SQL table and the call graph
    assert EVIL_NAME in " ".join(p.column("top-all", "label", raw=False))
    assert EVIL_FILE in " ".join(p.column("top-all", "label", raw=False))
    assert p.column("task-summary", "task_name", raw=False) == [EVIL_TASK]
    assert p.column("sql-top", "sql", raw=False) == [EVIL_SQL]
    assert any(EVIL_NAME in t or '<script>alert("x")' in t for t in p.svg_text)


def test_hostile_names_reach_plotly_as_entities(evil_page):
    _, p = evil_page
    # plotly.js reads <b>, <a href>… in its texts: labels go in with & < > as entities, so they are drawn literally
    ticks = [t for f in p.figures() for tr in f["data"] if isinstance(tr.get("y"), list) for t in tr["y"]]
    evil_ticks = [t for t in ticks if "alert(&quot;x&quot;)" in t or 'alert("x")' in t]
    assert evil_ticks and all("<" not in t for t in evil_ticks)
    assert all("&lt;script&gt;" in t for t in evil_ticks)


def test_sanitize_svg_drops_scripts_handlers_and_links():
    hostile = (
        '<?xml version="1.0"?><!DOCTYPE svg><svg xmlns="http://www.w3.org/2000/svg" '
        'xmlns:xlink="http://www.w3.org/1999/xlink" width="10" onload="alert(1)"><script>alert(2)</script>'
        '<g id="n"><a xlink:href="javascript:alert(3)"><text x="1" onclick="alert(4)">f&lt;script&gt;</text></a>'
        '<foreignObject><div>x</div></foreignObject><path d="M0 0" style="x" fill="url(http://e/x)"/></g></svg>'
    )
    out = rp.sanitize_svg(hostile)
    assert "alert(" not in out
    assert "<script" not in out and "foreignObject" not in out and "href" not in out and "url(" not in out
    assert "f&lt;script&gt;" in out  # the text survives, escaped
    assert '<path d="M0 0"' in out


def test_report_of_nothing_is_a_clear_error(corpus):
    empty = corpus.where(task_name="no-such-task")
    with pytest.raises(CelerylabError, match="no profiles"):
        rp.build_report(empty)


def test_missing_output_folder_is_named(corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        corpus.report(tmp_path / "nope" / "r.html")


def test_callgraph_failure_becomes_a_note_not_a_crash(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("CELERYLAB_DOT", str(tmp_path / "no-dot"))
    rep = rp.build_report(corpus)
    assert any("apt-get install graphviz" in w for w in rep.warnings)
    html = rp.render_html(rep)
    assert "Call graph not drawn" in html


def test_numbers_stay_numbers_until_rendered(corpus):
    rep = rp.build_report(corpus, callgraph=False)
    top = next(i for i in rep.section("top").items if isinstance(i, rp.Table))
    assert pd.api.types.is_float_dtype(top.frame["tottime"]) and pd.api.types.is_float_dtype(top.frame["share"])


def test_diff_report_from_a_frame(tmp_path):
    # GIVEN a frame shaped like celerylab.diff() output, with a hostile label
    d = pd.DataFrame({
        "label": ["app.py:1(slow)", EVIL_NAME, "app.py:3(same)"],
        "mean_a": [0.1, 0.0, 0.2], "mean_b": [0.3, 0.05, 0.2], "delta": [0.2, 0.05, 0.0],
        "ratio": [3.0, np.inf, 1.0], "p_value": [1e-6, 0.001, 0.9], "status": ["slower", "new", "same"],
    })  # fmt: skip
    path = rp.diff_report(d, tmp_path / "diff.html", a_name="base", b_name="cand")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    p = Page(text)
    assert p.sections[0] == "changes"
    # no group column: one table of every significant row; short names shown, the full label as the hover title
    assert p.column("diff-significant", "function", raw=False) == ["app.slow:1", short_label(EVIL_NAME)]
    titles = [v for tag, k, v in p.attributes if tag == "td" and k == "title"]
    assert titles == ["app.py:1(slow)", EVIL_NAME]
    assert p.column("diff-significant", "B / A") == [3.0, float("inf")]
    # one unit per column: milliseconds, numbers without a unit in the cells, exact seconds in data-value
    assert p.column("diff-significant", "B − A (ms)", raw=False) == ["200", "50.0"]
    assert p.column("diff-significant", "B − A (ms)") == [0.2, 0.05]
    assert "<script>alert" not in text
    assert len(_executable_scripts(p)) == 2


def test_diff_report_from_two_sources_finds_the_planted_regressions(tmp_path):
    # GIVEN the two shipped runs as folders (not ProfileSets)
    import celerylab as cl

    root = cl.sample_profiles()
    # WHEN the comparison report is written from the two paths
    path = rp.diff_report((str(root / "baseline"), str(root / "candidate")), tmp_path / "d.html",
                          diff_options={"by": "task_name"}, a_name="baseline", b_name="candidate")  # fmt: skip
    with open(path, encoding="utf-8") as f:
        p = Page(f.read())
    # THEN the tasks the manifest says regressed are listed slower, ranked first
    labels = p.column("diff-significant", "function", raw=False)
    statuses = p.column("diff-significant", "status", raw=False)
    slower = [lbl for lbl, st in zip(labels, statuses) if st == "slower"]
    assert set(slower[:2]) == {"demo.reports.build", "demo.campaigns.send_batch"}
