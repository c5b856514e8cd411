"""The ``celerylab`` command line: exit codes, JSON output and exact numbers, run as a real process where the exit
status is what is under test, in-process (``main(argv)``) elsewhere."""

from __future__ import annotations

import glob
import html
import json
import os
import pstats
import re
import subprocess
import sys

import pytest

import celerylab as cl
from celerylab.cli import main

SAMPLES = str(cl.sample_profiles())


def _cli(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a new process (the exit status is the process's own)."""
    return subprocess.run([sys.executable, "-m", "celerylab.cli", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env={**os.environ, "COLUMNS": "200"})  # fmt: skip


# ---------------------------------------------------------------------------------------- the regression gate
def test_diff_gate_fails_on_the_planted_regression_of_the_samples():
    # GIVEN the shipped baseline/candidate runs (the candidate plants slower code)
    # WHEN the gate runs as CI would
    r = _cli("diff", SAMPLES, "--by", "run", "--fail-on-regression", "20")
    # THEN the process exits 3 and names the regressions on stderr
    assert r.returncode == 3, r.stderr
    assert "FAIL:" in r.stderr and "significant regression" in r.stderr
    assert "A: run=baseline" in r.stdout and "B: run=candidate" in r.stdout


def test_diff_gate_passes_a_run_against_itself():
    base = os.path.join(SAMPLES, "baseline")
    r = _cli("diff", base, base, "--fail-on-regression", "20")
    assert r.returncode == 0, r.stderr
    assert "FAIL" not in r.stderr and "OK" in r.stdout


def test_diff_json_carries_the_exit_code_and_every_regression_clears_the_threshold(capsys):
    code = main(["diff", SAMPLES, "--by", "run", "--fail-on-regression", "20", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 3 == out["exit_code"]
    assert out["a"]["name"] == "run=baseline" and out["b"]["name"] == "run=candidate"
    with open(os.path.join(SAMPLES, "manifest.json"), encoding="utf-8") as f:
        runs = json.load(f)["runs"]
    # every profile of the run: its task executions and the producer's profiled publishes
    assert out["a"]["profiles"] == runs["baseline"]["profiles"] + runs["baseline"]["publishes"]
    assert out["b"]["profiles"] == runs["candidate"]["profiles"] + runs["candidate"]["publishes"]
    assert out["regressions"], out
    for row in out["regressions"]:
        assert row["status"] == "slower" and row["ratio"] > 1.2 and row["p_adjusted"] < 0.05
    assert len(out["regressions"]) <= out["counts"]["slower"]


def test_a_higher_threshold_lets_the_same_diff_pass(capsys):
    # (json's encoder is thousands of times slower in the candidate: the threshold must clear that too)
    code = main(["diff", SAMPLES, "--by", "run", "--fail-on-regression", "100000000", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 == out["exit_code"] and out["regressions"] == []


def test_task_level_gate_names_exactly_the_planted_regressions(capsys):
    # GIVEN the manifest of what the candidate run plants
    with open(os.path.join(SAMPLES, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    planted = manifest["planted"]
    want = {p["task"] for p in planted if p["kind"] == "regression"}
    # the producer-side regression: publishing its task got slower (a row of its own: "<task> (publish)")
    want |= {f"{p['task']} (publish)" for p in manifest["planted_producer"] if p["kind"] == "regression"}
    improved = {p["task"] for p in planted if p["kind"] == "improvement"}
    # WHEN the gate compares whole tasks per invocation
    code = main(["diff", SAMPLES, "--by", "run", "--per", "task", "--fail-on-regression", "20", "--json"])
    out = json.loads(capsys.readouterr().out)
    # THEN it fails on exactly the planted regressions, and the planted improvement shows as faster
    assert code == 3 and out["per"] == "task"
    assert {r["label"] for r in out["regressions"]} == want
    assert {r["label"] for r in out["changes"] if r["status"] == "faster"} == improved


def test_diff_compares_each_function_within_each_task_unless_told_to_pool(capsys, tmp_path):
    # WHEN the samples are compared with the defaults, and with --group-by none
    assert main(["diff", SAMPLES, "--by", "run", "--json", "-n", "5000"]) == 0
    per_task = json.loads(capsys.readouterr().out)
    assert main(["diff", SAMPLES, "--by", "run", "--group-by", "none", "--json", "-n", "5000"]) == 0
    pooled = json.loads(capsys.readouterr().out)
    # THEN the default rows are per (task, function), the pooled ones per function
    assert per_task["group_by"] == ["task_name"] and pooled["group_by"] is None
    assert all("task_name" in r for r in per_task["changes"]) and not any("task_name" in r for r in pooled["changes"])
    row = [r for r in per_task["changes"] if r["task_name"] == "demo.reports.build"
           and r["label"].endswith("(load_report_rows)")]  # fmt: skip
    assert len(row) == 1 and row[0]["status"] == "slower" and row[0]["n_a"] == row[0]["n_b"] == 30
    # pooled over every task's invocations it does not count as a change
    assert not [r for r in pooled["changes"] if r["label"].endswith("(load_report_rows)")]
    # AND the text output leads with the task, the FAIL lines name "task · function"; the report shows
    # --report-rows rows per task
    report = tmp_path / "d.html"
    code = main(["diff", SAMPLES, "--by", "run", "-n", "3", "--fail-on-regression", "20", "-o", str(report),
                 "--report-rows", "4"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 3
    assert re.search(r"^task_name +status +ratio", out.out, re.M)
    assert re.search(r"^  [0-9.]+×  demo\.\S+ · ", out.err, re.M)
    from .corpus import Page

    page = Page(report.read_text(encoding="utf-8"))
    assert len(page.tables["diff-task-demo-reports-build"]) == 4


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["top", "/nonexistent/profiles"], 1, "/nonexistent/profiles: no profile could be loaded"),
        (["diff", SAMPLES, "--by", "nosuch"], 1, "diff --by 'nosuch': no such column"),
        (["top", SAMPLES, "--task", "no.such.task"], 1, "no profile matches task_name='no.such.task'"),
        (["top", SAMPLES, "--bogus"], 2, "No such option"),
        (["top", SAMPLES, "-n", "0"], 2, "Invalid value"),
        (["diff", SAMPLES], 2, ""),
        (["report", SAMPLES, "-o", "/nonexistent/folder/r.html"], 1, "output folder /nonexistent/folder"),
    ],
    ids=["missing-src", "unknown-column", "unknown-task", "unknown-option", "bad-n", "diff-needs-b", "no-folder"],
)
def test_bad_arguments_get_a_clear_message_and_exit_code(args, code, message):
    r = _cli(*args)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    if code == 1:
        assert r.stderr.startswith("celerylab: error: ") and not r.stderr.startswith('celerylab: error: "')


def test_a_file_that_is_no_profile_is_named_and_the_rest_still_loads(tmp_path, corpus_dir, capsys):
    for p in glob.glob(os.path.join(corpus_dir, "*")):
        os.symlink(p, tmp_path / os.path.basename(p))
    (tmp_path / "broken.prof").write_bytes(b"\x00garbage")
    code = main(["top", str(tmp_path), "--json", "--no-cache", "-j", "1"])
    captured = capsys.readouterr()
    assert code == 0
    assert "1 file(s) could not be loaded" in captured.err and "broken.prof" in captured.err
    assert json.loads(captured.out)["profiles"] == len(glob.glob(os.path.join(corpus_dir, "*.prof")))


# ------------------------------------------------------------------------------------------ exact numbers
def test_top_json_equals_pstats(corpus_dir, capsys):
    files = sorted(glob.glob(os.path.join(corpus_dir, "*.prof")))
    code = main(["top", str(corpus_dir), "--json", "-n", "1000", "--no-cache", "-j", "1"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["profiles"] == len(files)
    want = {pstats.func_std_string(k): v for k, v in pstats.Stats(*files).stats.items()}  # type: ignore[attr-defined]
    assert len(out["functions"]) == len(want)
    for row in out["functions"]:
        cc, nc, tt, ct, _ = want[row["label"]]
        assert (row["ncalls"], row["pcalls"]) == (nc, cc)
        assert row["tottime"] == pytest.approx(tt, abs=1e-12) and row["cumtime"] == pytest.approx(ct, abs=1e-12)
    tts = [r["tottime"] for r in out["functions"]]
    assert tts == sorted(tts, reverse=True)


def test_export_pstats_writes_the_merged_stats(corpus_dir, tmp_path):
    files = sorted(glob.glob(os.path.join(corpus_dir, "*.prof")))
    out = tmp_path / "merged.prof"
    assert main(["export-pstats", str(corpus_dir), "-o", str(out), "--no-cache", "-j", "1"]) == 0
    assert pstats.Stats(str(out)).stats == pstats.Stats(*files).stats  # type: ignore[attr-defined]


def test_report_and_callgraph_write_their_files(corpus, corpus_dir, tmp_path):
    html, svg = tmp_path / "r.html", tmp_path / "g.svg"
    assert main(["report", str(corpus_dir), "-o", str(html), "--no-cache", "-j", "1"]) == 0
    assert main(["callgraph", str(corpus_dir), "-o", str(svg), "--no-cache", "-j", "1"]) == 0
    text = html.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html") and "<script src=" not in text
    hottest = str(corpus.top(1).iloc[0]["name"])
    assert hottest in svg.read_text(encoding="utf-8")


def test_callgraph_html_is_a_page_with_the_viewer_and_the_hot_path(corpus, corpus_dir, tmp_path):
    from celerylab.callgraph import HOT_CLASS, VIEWER_JS, hot_path

    page = tmp_path / "g.html"
    assert main(["callgraph", str(corpus_dir), "-o", str(page), "--no-cache", "-j", "1"]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html") and "<script src=" not in text
    assert '<div class="celerylab-graph"' in text and 'data-zoom="hot"' in text and VIEWER_JS in text
    assert text.count(f'class="node {HOT_CLASS}"') == len(hot_path(corpus))
    assert "script-src 'sha256-" in html.unescape(text)  # the viewer runs under the report's Content-Security-Policy


def test_help_documents_every_command():
    r = _cli("--help")
    assert r.returncode == 0
    from celerylab.cli import COMMANDS

    for name in COMMANDS:
        assert name in r.stdout


def test_docs_show_the_real_help_of_every_command():
    # the help blocks of docs/cli.md are regenerated by scripts/update_cli_docs.py; stale text fails here
    import runpy

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    mod = runpy.run_path(os.path.join(root, "scripts", "update_cli_docs.py"))
    text = mod["DOC"].read_text(encoding="utf-8")
    documented = {m["args"].strip() for m in mod["BLOCK"].finditer(text)}
    from celerylab.cli import COMMANDS

    assert documented == {"", *COMMANDS}  # the group's help and every command's
    stale = mod["stale_blocks"](text)
    assert not stale, [cmd for cmd, _, _ in stale]


# ------------------------------------------------------------------------------------------------- findings
def test_diff_text_opens_with_the_findings(capsys):
    # WHEN the samples' two runs are compared on the command line
    main(["diff", SAMPLES, "--by", "run", "-n", "5"])
    out = capsys.readouterr().out
    # THEN the output starts with what changed and why: reports.build slower, its cause, its N+1 statement
    assert re.match(r"Findings \(\d+, largest first\):", out)
    # (ranked by weight in the run: the planted improvement of analytics may come before it)
    headlines = [line for line in out.splitlines() if line[:1].isdigit()][:2]
    first = next(line for line in headlines if ". demo.reports.build slower" in line)
    assert "load_report_rows" in first
    assert "reports.py:67(load_report_rows) [N+1]  SELECT order_lines.id" in out
    assert out.index("Findings") < out.index("A: run=baseline")


def test_diff_of_two_directories_has_the_same_findings(capsys):
    main(["diff", os.path.join(SAMPLES, "baseline"), os.path.join(SAMPLES, "candidate"), "--json"])
    two = json.loads(capsys.readouterr().out)
    main(["diff", SAMPLES, "--by", "run", "--json"])
    one = json.loads(capsys.readouterr().out)
    key = [(f["task_name"], f["kind"], f["direction"], f["cause"]) for f in two["findings"]]
    assert key == [(f["task_name"], f["kind"], f["direction"], f["cause"]) for f in one["findings"]]
    rank = 1 + [k[:3] for k in key].index(("demo.reports.build", "time", "slower"))
    assert rank <= 2
    sql = next(e for e in two["evidence"] if e["kind"] == "sql" and e["rank"] == rank)
    assert sql["label"] == "reports.py:67(load_report_rows)" and sql["n_plus_one"]


def test_diff_of_a_run_against_itself_has_no_findings(capsys):
    base = os.path.join(SAMPLES, "baseline")
    main(["diff", base, base])
    assert capsys.readouterr().out.startswith("Findings: no task changed significantly")
