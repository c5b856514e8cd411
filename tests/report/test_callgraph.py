"""Call graphs through gprof2dot and the real Graphviz ``dot``."""

from __future__ import annotations

import os
import re
import stat
import xml.etree.ElementTree as ET

import gprof2dot
import pytest

import celerylab as cl
from celerylab import callgraph as cg
from celerylab.testing import write_corpus

from .corpus import EVIL_NAME


def _svg_texts(svg: str) -> list[str]:
    root = ET.fromstring(re.sub(r"<!DOCTYPE[^>]*>", "", svg))
    return ["".join(el.itertext()) for el in root.iter("{http://www.w3.org/2000/svg}text")]


def test_svg_names_the_hottest_function(corpus, tmp_path):
    # WHEN the call graph is written with the real dot
    out = corpus.callgraph(tmp_path / "graph.svg")
    with open(out, encoding="utf-8") as f:
        svg = f.read()
    # THEN it is SVG whose node texts include the function with the most own time, with its total share
    hottest = corpus.top(1).iloc[0]
    texts = _svg_texts(svg)
    assert any(t.endswith(f":{hottest['name']}") for t in texts), texts[:20]
    share = f"{hottest['cumtime'] / corpus.function_totals['tottime'].sum() * 100:.2f}%"
    assert share in texts


def test_png_and_dot_formats(corpus, tmp_path):
    png = cg.write_callgraph(corpus, tmp_path / "g.png")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    dot = cg.write_callgraph(corpus, tmp_path / "g.dot")
    with open(dot, encoding="utf-8") as f:
        assert f.read().startswith("digraph {")


def test_hostile_names_are_escaped_in_the_svg(evil):
    svg = cg.callgraph_svg(evil)
    assert "<script" not in svg
    assert any(EVIL_NAME in t for t in _svg_texts(svg))


def test_large_graphs_are_pruned_to_max_nodes(tmp_path):
    # GIVEN a corpus of 500-function profiles and every threshold at zero (an unpruned graph stalls dot)
    write_corpus(str(tmp_path), 3, n_functions=500, n_edges=1000)
    ps = cl.load(str(tmp_path), cache=False, jobs=1)
    dot = cg.to_dot(ps, node_thres=0.0, edge_thres=0.0, max_nodes=60)
    nodes = re.findall(r"^\t(\d+) \[", dot, flags=re.M)
    assert 0 < len(nodes) <= 60


def test_the_shared_gprof2dot_theme_is_not_mutated(corpus):
    before = dict(gprof2dot.themes["color"].__dict__)
    cg.to_dot(corpus, theme="color", color_nodes_by_selftime=True)
    assert gprof2dot.themes["color"].__dict__ == before


def test_missing_dot_says_how_to_install(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("CELERYLAB_DOT", str(tmp_path / "absent"))
    with pytest.raises(cg.CallgraphError, match=r"Graphviz 'dot' not found: apt-get install graphviz"):
        cg.write_callgraph(corpus, tmp_path / "g.svg")
    assert not os.path.exists(tmp_path / "g.svg")


def _fake_dot(tmp_path, body: str) -> str:
    exe = tmp_path / "dot"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return str(exe)


def test_a_dot_that_hangs_is_stopped(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("CELERYLAB_DOT", _fake_dot(tmp_path, "exec sleep 30"))
    with pytest.raises(cg.CallgraphError, match=r"did not finish within 0\.5 s"):
        cg.callgraph_svg(corpus, timeout=0.5)


def test_a_failing_dot_reports_its_stderr(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("CELERYLAB_DOT", _fake_dot(tmp_path, "echo 'syntax error in line 3' >&2; exit 1"))
    with pytest.raises(cg.CallgraphError, match=r"exit 1.*syntax error in line 3"):
        cg.callgraph_svg(corpus)


def test_root_limits_the_graph_to_what_a_function_calls(corpus):
    dot = cg.to_dot(corpus, root="crunch")
    labels = re.findall(r'label="([^"]*)"', dot)
    names = {lab.split("\\n")[0].rsplit(":", 1)[-1] for lab in labels if "\\n" in lab}
    assert "crunch" in names and "fib" not in names


def test_unknown_root_is_a_clear_error(corpus):
    with pytest.raises(cg.CallgraphError, match="root 'nope' matches no function"):
        cg.to_dot(corpus, root="nope")


def test_empty_set_is_a_clear_error(corpus):
    with pytest.raises(cg.CallgraphError, match="no profiles"):
        cg.to_dot(corpus.where(task_name="none"))


# ------------------------------------------------------------------------------------------------- the hot path
APP = "/srv/app/work.py"
ROOT, A, B, A1, A2, A1X = ((APP, i, n) for i, n in enumerate(("entry", "a", "b", "a1", "a2", "a1x"), start=1))


def _chain_stats(k: int) -> dict:
    """entry (1.0 s) -> a (0.6) -> a1 (0.45) -> a1x (0.3); a -> a2 (0.14); entry -> b (0.39, all own time: the
    function with the most own time, off the hot path).  ``k`` scales the times (profiles differ)."""
    s = 0.001 * (k + 1)

    def row(tt, ct, caller):
        return (1, 1, tt * s, ct * s, {caller: (1, 1, tt * s, ct * s)} if caller else {})

    return {
        ROOT: row(10, 1000, None), A: row(10, 600, ROOT), B: row(390, 390, ROOT), A1: row(150, 450, A),
        A2: row(140, 140, A), A1X: row(300, 300, A1),
    }  # fmt: skip


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    from celerylab.testing import write_profile

    folder = tmp_path_factory.mktemp("chain")
    for k in range(3):
        write_profile(str(folder), _chain_stats(k), task_name="app.work", task_id=f"t{k}")
    return cl.load(str(folder), cache=False)


def test_hot_path_follows_the_heaviest_call_from_the_entry(chain):
    hp = cg.hot_path(chain)
    assert hp["function"].tolist() == ["work:1:entry", "work:2:a", "work:4:a1", "work:6:a1x"]
    scale = 1 + 2 + 3  # three profiles, entry 1 s, 2 s, 3 s
    assert hp["time_s"].tolist() == pytest.approx([1.0 * scale, 0.6 * scale, 0.45 * scale, 0.3 * scale])
    assert hp["share"].tolist() == pytest.approx([1.0, 0.6, 0.45, 0.3]) and hp["step"].tolist() == [0, 1, 2, 3]
    assert "work:3:b" not in hp["function"].tolist()  # most own time, but not the heaviest call from the entry
    # rooted elsewhere: the path starts there
    assert cg.hot_path(chain, root="b")["function"].tolist() == ["work:3:b"]
    assert cg.hot_path(chain, root="a")["function"].tolist() == ["work:2:a", "work:4:a1", "work:6:a1x"]


def test_the_svg_draws_the_hot_path_thick_and_classed(chain):
    svg = cg.callgraph_svg(chain)
    root = ET.fromstring(re.sub(r"<!DOCTYPE[^>]*>", "", svg))
    ns = "{http://www.w3.org/2000/svg}"
    hot = [g for g in root.iter(f"{ns}g") if cg.HOT_CLASS in (g.get("class") or "").split()]
    nodes = [g for g in hot if "node" in g.get("class", "").split()]
    edges = [g for g in hot if "edge" in g.get("class", "").split()]
    names = sorted(_svg_name(g, ns) for g in nodes)
    assert names == ["work:1:entry", "work:2:a", "work:4:a1", "work:6:a1x"]
    assert len(edges) == 3 and all(p.get("stroke") == cg.HOT_PATH_COLOR for g in edges for p in g.iter(f"{ns}path"))
    assert all(float(p.get("stroke-width")) >= 4 for g in edges for p in g.iter(f"{ns}path"))
    assert all(p.get("stroke") == cg.HOT_PATH_COLOR for g in nodes for p in g.iter(f"{ns}polygon"))
    others = [_svg_name(g, ns) for g in root.iter(f"{ns}g") if g.get("class") == "node"]
    assert sorted(others) == ["work:3:b", "work:5:a2"]  # drawn, not highlighted


def _svg_name(g, ns: str) -> str:
    """The function name a Graphviz node draws (its first text line)."""
    return next(t.text for t in g.iter(f"{ns}text"))
