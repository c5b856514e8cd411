"""Write notebooks/*.ipynb from the cell lists below (outputs stripped).

    .venv/bin/python scripts/build_notebooks.py

The notebooks are generated so that their source stays reviewable as plain Python; edit here, re-run, commit.
Each notebook asserts the facts it shows, and tests/notebooks executes them all.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(__file__).resolve().parent.parent / "notebooks"

SETUP = """\
import os, tempfile
from pathlib import Path

import pandas as pd
import celerylab as cl

pd.set_option("display.max_colwidth", 80)
# where this notebook writes its exports (CI points it at a scratch folder)
OUT = Path(os.environ.get("CELERYLAB_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="celerylab-nb-"))
OUT.mkdir(parents=True, exist_ok=True)"""

QUICKSTART = [
    (
        "md",
        """\
# celerylab quickstart

`sample_profiles/` holds two runs of a realistic Celery app — `baseline` and `candidate` — captured by celerylab in
real prefork workers over Redis: one cProfile file plus a JSON sidecar (state, timings, memory, SQL) per task.
This notebook loads them, looks at the summary and the hottest functions, opens the explorer widget and exports a
chart for a report. Every number here can be checked against the standard library's `pstats`.""",
    ),
    ("code", SETUP),
    (
        "md",
        """\
## Load

`cl.load` takes a folder, a glob, a file or a list of those. It parses files in parallel, merges the sidecars and
caches the result as Parquet, so opening the same folder again is near-instant.""",
    ),
    (
        "code",
        """\
ps = cl.load(cl.sample_profiles())
ps""",
    ),
    (
        "code",
        """\
runs = ps.profiles["run"].value_counts()
assert set(runs.index) == {"baseline", "candidate"} and runs.min() >= 300, runs
assert len(ps.errors) == 0
runs""",
    ),
    (
        "md",
        """\
`ps.profiles` has one row per profiled task invocation (its sidecar's fields become columns); `ps.functions`
one row per distinct function; `ps.stats` and `ps.edges` are the numbers, keyed by small integer ids.""",
    ),
    (
        "code",
        """\
ps.profiles[["task_name", "run", "state", "hostname", "pid", "wall_s", "cpu_s", "sql_count", "total_tt"]].head()""",
    ),
    (
        "code",
        """\
tasks = ps.task_summary()
assert {"demo.reports.build", "demo.orders.process"} <= set(tasks["task_name"])
tasks""",
    ),
    (
        "md",
        """\
## The hottest functions

`top` sums each function over the selection exactly as `pstats.Stats(*files)` would, and adds per-invocation
means and percentiles — a task called 10 000 times and one called once are not comparable by sums alone.""",
    ),
    (
        "code",
        """\
top = ps.where(run="baseline").top(10)
top""",
    ),
    (
        "md",
        """\
The sums are exact: a merged file written by `to_pstats` is what `pstats` itself computes from the raw files, and
any tool that reads pstats files (snakeviz, gprof2dot) can open it.""",
    ),
    (
        "code",
        """\
import pstats

reports = ps.where(task_name="demo.reports.build", run="baseline")
merged = reports.to_pstats(OUT / "reports-baseline.prof")
st = pstats.Stats(merged)
assert st.stats == reports.to_pstats_dict()
st.sort_stats("cumulative").print_stats(6);""",
    ),
    (
        "md",
        """\
## Drill down: who calls what

`callers` / `callees` take a function id, a pstats label or a unique fragment of a name.""",
    ),
    (
        "code",
        """\
fid = reports.resolve("load_report_rows")
callees = reports.callees(fid)
assert len(callees) > 0
callees.head(8)""",
    ),
    (
        "md",
        """\
## The explorer

`ps.explore()` is an ipywidgets app: filters (task, run, worker, state, time window) over tabs — Overview,
Functions, Drilldown, Call tree, Diff, Hotspots, Call graph. Its state can be read back from Python.""",
    ),
    (
        "code",
        """\
ex = ps.explore()
ex""",
    ),
    (
        "code",
        """\
ex.set_filters(task_name="demo.reports.build")
assert set(ex.profiles["task_name"]) == {"demo.reports.build"}
ex.drill("load_report_rows")
assert ex.selected["label"].str.contains("load_report_rows").all()
ex.selected""",
    ),
    (
        "md",
        """\
## Export a chart for a report

Charts are plain functions `DataFrame -> plotly Figure`. They export to self-contained HTML, and to PNG/SVG/PDF
through kaleido with the system Chromium (offline).""",
    ),
    (
        "code",
        """\
from celerylab.charts.overview import task_durations
from celerylab.charts.export import write_html, export

fig = task_durations(ps.profiles)
html = write_html(fig, OUT / "task-durations.html")
png = export(fig, OUT / "task-durations.png")
assert Path(html).stat().st_size > 100_000 and Path(png).read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
fig""",
    ),
]

COMPARE = [
    (
        "md",
        """\
# Compare two runs: what got slower, and is it real?

A release candidate (`candidate`) against the current release (`baseline`), from the shipped samples. The
candidate carries three planted problems and one improvement, listed in the samples' manifest — we use the
manifest only to *check* what the analysis finds.""",
    ),
    ("code", SETUP),
    (
        "code",
        """\
from celerylab.demo.manifest import read_manifest

ps = cl.load(cl.sample_profiles())
manifest = read_manifest()
planted = pd.DataFrame(manifest["planted"])[["id", "kind", "task", "function", "category"]]
planted""",
    ),
    (
        "md",
        """\
## The diff

`cl.diff` compares **per task invocation**, not summed totals: each function's own time (`tottime`) per call of
its task, in each run. For every function it gives mean, median and p95 per invocation in both runs, the delta
and ratio, and a Mann–Whitney U test over the per-invocation values with a Benjamini–Hochberg correction for the
thousands of functions tested. `status` says `slower`/`faster` only when the adjusted p-value is below `alpha`
**and** the change is large enough to matter; otherwise `same`. Rows are sorted by their contribution to the
change of the mean task time. It compares each function **within each task** by default (`group_by="task_name"`,
written out below): a changed task mix cannot look like a regression, and a function that only one task calls is
measured over that task's invocations. `group_by=None` pools every task.""",
    ),
    (
        "code",
        """\
d = cl.diff(ps, split_by="run", values=("baseline", "candidate"), group_by="task_name")
d.head(12)[["task_name", "label", "status", "mean_a", "mean_b", "ratio", "contribution", "p_adjusted"]]""",
    ),
    (
        "md",
        """\
Exclusive time (`tottime`) is what ranks: a slow leaf does not make all its ancestors look guilty. The inclusive
time per invocation (`cum_mean_a`, `cum_mean_b`) is alongside for context.""",
    ),
    (
        "code",
        """\
# every planted change is found in its task, in the right direction
for p in manifest["planted"]:
    if p["kind"] == "leak":
        continue
    rows = d[(d["task_name"] == p["task"]) & (d["status"] != "same")]
    want = "faster" if p["kind"] == "improvement" else "slower"
    assert (rows["status"] == want).any(), (p["id"], rows.head())
# and the tasks whose code did not change show no significant change in their total time
per_task = cl.diff(ps, split_by="run", values=("baseline", "candidate"), by="task_name")
same = per_task.set_index("label").loc[manifest["unchanged_tasks"], "status"]
assert (same == "same").all(), same
per_task[["label", "status", "mean_a", "mean_b", "ratio", "p_adjusted"]]""",
    ),
    (
        "md",
        """\
## Distributions, not just means

One slow invocation can move a mean; the per-invocation distributions show whether the whole task moved.""",
    ),
    (
        "code",
        """\
from celerylab.charts.drilldown import per_profile

reports = ps.where(task_name="demo.reports.build")
fid = reports.resolve("load_report_rows")
stats = reports.stats
per_fn = stats[stats["func_id"] == fid].merge(reports.profiles[["profile_id", "run"]], on="profile_id")
med = per_fn.groupby("run")["cumtime"].median()
assert med["candidate"] > 1.5 * med["baseline"], med
per_profile(per_fn, value="cumtime", by="run", title="load_report_rows: inclusive time per task invocation")""",
    ),
    (
        "md",
        """\
## The call graph of the regressed task

gprof2dot turns the merged profile into a call graph; Graphviz renders it. Hot paths are red.""",
    ),
    (
        "code",
        """\
from IPython.display import SVG

svg = reports.where(run="candidate").callgraph(OUT / "reports-candidate.svg")
text = Path(svg).read_text()
assert "load_report_rows" in text
SVG(filename=svg)""",
    ),
    (
        "md",
        """\
## For CI

The same comparison gates a pipeline: `celerylab diff sample_profiles --by run --fail-on-regression 20` exits
with status 3 when a function's own time per invocation regressed significantly by more than 20 %;
`--per task` gates on each task's whole time per invocation instead (on these samples it names exactly the two
planted regressions).""",
    ),
]

HOTSPOTS = [
    (
        "md",
        """\
# DB and memory hotspots

Sidecars carry what a profile cannot: the SQL statements a task ran (normalised, with counts, time and the
application line that issued them) and its memory (RSS before/after, tracemalloc's top allocation sites).
This notebook finds the N+1 query and the leaking worker process planted in the samples' candidate run.""",
    ),
    ("code", SETUP),
    (
        "code",
        """\
from celerylab.demo.manifest import read_manifest

ps = cl.load(cl.sample_profiles())
manifest = read_manifest()
cand, base = ps.where(run="candidate"), ps.where(run="baseline")""",
    ),
    (
        "md",
        """\
## Time inside the database, per task

From the profiles themselves: the share of each task's time spent in DB drivers and ORMs (sqlite3, psycopg,
SQLAlchemy engine, Django's db layer…).""",
    ),
    (
        "code",
        """\
db = cl.analysis.db_time(ps, by=["task_name", "run"])
db""",
    ),
    (
        "md",
        """\
## N+1 suspects

The same normalised statement run many times within one invocation, with the calling application line.""",
    ),
    (
        "code",
        """\
suspects = cl.analysis.n_plus_one(cand)
assert len(suspects) and suspects.iloc[0]["task_name"] == "demo.reports.build", suspects.head()
assert not len(cl.analysis.n_plus_one(base).query("task_name == 'demo.reports.build'"))
suspects.head()""",
    ),
    (
        "code",
        """\
cl.analysis.db_hotspots(cand).head(10)""",
    ),
    (
        "md",
        """\
## Memory: which worker process leaks, and which task makes it grow

RSS per worker process across its sequence of tasks; a process whose RSS keeps growing is a leak suspect, and
the task names whose invocations coincide with the growth are ranked.""",
    ),
    (
        "code",
        """\
workers = cl.analysis.memory_hotspots(cand)
assert workers["leak_suspect"].all() and len(workers) == 2, workers  # both pool processes grow
assert not cl.analysis.memory_hotspots(base)["leak_suspect"].any()  # the baseline's do not
workers""",
    ),
    (
        "code",
        """\
leaks = cl.analysis.leak_suspects(cand)
assert leaks.loc[leaks["suspect"], "task_name"].tolist() == ["demo.thumbnails.render"], leaks
assert not cl.analysis.leak_suspects(base)["suspect"].any()
leaks.head()""",
    ),
    (
        "code",
        """\
from celerylab.charts.hotspots import memory_growth

memory_growth(cand.profiles)""",
    ),
    (
        "md",
        """\
tracemalloc's sidecar data points at the line that allocates:""",
    ),
    (
        "code",
        """\
sites = cl.analysis.allocation_sites(cand.where(task_name="demo.thumbnails.render"))
assert sites.iloc[0]["file"].endswith("thumbnails.py"), sites.head()
sites.head()""",
    ),
]

CAPTURE = [
    (
        "md",
        """\
# Capture in your own Celery app

Capture runs inside worker processes, imports only the standard library and celery, and never fails or slows a
task noticeably: any error inside capture is logged once and swallowed. Three ways to turn it on:

1. **In code** — `celerylab.capture.install(app, "profiles/", sample_rate=0.05, tasks=["billing.*"])`;
2. **Worker flags** — call `celerylab.capture.register(app)` once in your app module, then
   `celery -A proj worker --celerylab-dir profiles/ --celerylab-sample 0.05 --celerylab-tasks 'billing.*'`,
   or set `CELERYLAB_DIR=profiles/` (and `CELERYLAB_SAMPLE`, `CELERYLAB_TASKS`, `CELERYLAB_RUN`) for ops;
3. **Without touching the app** — `celerylab worker --dir profiles/ --sample 0.05 --run "$GIT_SHA" -- -A proj`
   starts a normal `celery worker` with capture in every pool process.

Per profiled task it writes `<task_name>.<task_id>.prof` and a JSON sidecar, atomically. Below, a small app runs
its tasks eagerly (in this process, no broker needed) with capture on, and we load the result.""",
    ),
    ("code", SETUP),
    (
        "code",
        """\
import sqlite3
from celery import Celery
import celerylab.capture

app = Celery("shop", broker="memory://", backend="cache+memory://")
app.conf.task_always_eager = True

@app.task(name="shop.report")
def report(n):
    con = sqlite3.connect(":memory:")
    con.execute("create table orders (id integer, total real)")
    con.executemany("insert into orders values (?, ?)", [(i, i * 1.5) for i in range(n)])
    # one query per row: the N+1 pattern capture's SQL hooks make visible
    return sum(con.execute("select total from orders where id = ?", (i,)).fetchone()[0] for i in range(n))

@app.task(name="shop.resize")
def resize(k):
    return len([bytearray(4096) for _ in range(k)])

@app.task(name="billing.charge")
def charge(amount):
    if amount < 0:
        raise ValueError("negative amount")
    return amount""",
    ),
    (
        "md",
        """\
`tasks` filters by glob, `sample_rate` keeps a fraction of the matching tasks, `run` labels the capture for
later comparisons, and `memory="tracemalloc"` adds the traced peak and the top allocation sites.""",
    ),
    (
        "code",
        """\
folder = OUT / "captured"
handle = celerylab.capture.install(app, folder, tasks=["shop.*", "billing.*"], run="notebook",
                                   memory="tracemalloc", sql=True)
for n in (20, 40, 60):
    report.delay(n)
resize.delay(2000)
charge.delay(-1)   # fails: the sidecar records the exception
handle.uninstall()
sorted(p.name for p in folder.iterdir())[:4]""",
    ),
    (
        "code",
        """\
captured = cl.load(folder, cache=False)
p = captured.profiles.set_index("task_name")
assert len(captured) == 5 and set(captured.profiles["run"]) == {"notebook"}
assert p.loc["billing.charge", "state"] == "FAILURE" and p.loc["billing.charge", "exception_type"] == "ValueError"
assert p.loc["shop.resize", "memory_peak_traced"] > 2000 * 4096
captured.profiles[["task_name", "state", "wall_s", "sql_count", "memory_peak_traced", "exception_type"]]""",
    ),
    (
        "code",
        """\
sql = captured.sql.merge(captured.profiles[["profile_id", "task_name"]], on="profile_id")
per_row = sql[sql["sql"].str.startswith("select total")]
assert sorted(per_row["count"]) == [20, 40, 60]
per_row""",
    ),
    (
        "md",
        """\
From here everything in the other notebooks applies: `captured.top()`, `cl.diff(...)`, `captured.explore()`.
See `docs/capture.md` for every option, the environment variables, the retention caps (`max_files`,
`max_bytes`) and the measured overhead.""",
    ),
]


PRODUCER = [
    (
        "md",
        """\
# The producer side and the whole life of a task

A task can be slow before it runs: publishing it can be slow, and it can wait in the queue. The sample runs were
published by a producer under celerylab's producer capture (`celerylab run`, or `install_producer`), which
profiles every `delay`/`apply_async`/`send_task` and stamps each message with its publish time; the workers record
when each message arrived and when it started. In the `candidate` run, the producer hands every publish a broker
connection of its own — the planted producer-side regression. In both runs, a bulk upload sends a burst of import
jobs at once: more than the two pool processes can take.""",
    ),
    ("code", SETUP),
    (
        "code",
        """\
from celerylab import analysis as an
from celerylab.demo.manifest import read_manifest

ps = cl.load(cl.sample_profiles())
manifest = read_manifest()
ps.profiles.groupby(["run", "role"], observed=True).size()""",
    ),
    (
        "md",
        """\
## Publishing got slower

Producer profiles are ordinary profiles with `role == "producer"`. Compared per task, publishing is its own row
(`<task> (publish)`), never pooled with the task's runs.""",
    ),
    (
        "code",
        """\
pub = ps.where(role="producer")
per_task = cl.diff(pub, split_by="run", by="task_name")
row = per_task.set_index("label").loc["demo.orders.process (publish)"]
assert row["status"] == "slower" and row["ratio"] > 1.2, row
per_task[["label", "status", "mean_a", "mean_b", "ratio", "p_adjusted", "n_a", "n_b"]]""",
    ),
    (
        "md",
        """\
What does publishing do more of? The functions that account for the change: connecting to the broker (a socket
`connect`, kombu's `establish_connection`) appears only in the candidate.""",
    ),
    (
        "code",
        """\
funcs = cl.diff(pub, split_by="run")
changed = funcs[funcs["status"].isin(["slower", "new"])]
planted = manifest["planted_producer"][0]
fid = pub.resolve(planted["function"])
assert pub.functions["label"].iloc[fid] in set(changed["label"]), planted["function"]
changed[["task_name", "label", "status", "mean_a", "mean_b", "ratio"]].head(8)""",
    ),
    (
        "md",
        """\
## Where a task's time goes: publish, queue wait, run

`ps.latency()` puts the three stages side by side, per task, with percentiles. Queue wait is the start of the run
minus the publish time (minus any requested `countdown`/`eta`); it splits into time in the broker and time held by
the worker.""",
    ),
    (
        "code",
        """\
lat = ps.where(run="candidate").latency()
burst_task = manifest["queue_wait"]["task"]
stages = lat.set_index(["task_name", "stage"]).loc[burst_task]
assert stages.loc["queue_wait", "max"] > manifest["queue_wait"]["threshold_s"]
lat[lat["task_name"].isin([burst_task, "demo.orders.process"])]""",
    ),
    (
        "code",
        """\
from celerylab.charts.latency import latency_breakdown, queue_wait_timeline

latency_breakdown(lat)""",
    ),
    (
        "md",
        """\
## When work waited

A burst of import jobs was sent at once, in both runs. The queue-wait timeline climbs while run times stay flat;
the episodes name when and which tasks waited.""",
    ),
    (
        "code",
        """\
for run in ("baseline", "candidate"):
    eps = an.queue_wait_episodes(ps.where(run=run), threshold=manifest["queue_wait"]["threshold_s"])
    assert len(eps) and manifest["queue_wait"]["task"] in eps["tasks"].iloc[0], (run, eps)
eps""",
    ),
    (
        "code",
        """\
queue_wait_timeline(an.latency_over_time(ps.where(run="candidate"), freq="10s"))""",
    ),
]


def build(name: str, cells: list[tuple[str, str]]) -> Path:
    # cell ids from the notebook and the position, not random: rebuilding changes only what the text changed
    stem = name.split("_", 1)[0]
    nb = new_notebook(
        cells=[
            (new_markdown_cell if kind == "md" else new_code_cell)(src, id=f"nb{stem}-{i:02d}")
            for i, (kind, src) in enumerate(cells)
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                  "language_info": {"name": "python"}},
    )  # fmt: skip
    path = OUT / name
    nbformat.write(nb, path)
    return path


def main() -> None:
    OUT.mkdir(exist_ok=True)
    notebooks = {
        "01_quickstart.ipynb": QUICKSTART,
        "02_compare_runs.ipynb": COMPARE,
        "03_db_and_memory_hotspots.ipynb": HOTSPOTS,
        "04_capture_in_your_app.ipynb": CAPTURE,
        "05_producer_and_queue_wait.ipynb": PRODUCER,
    }
    for name, cells in notebooks.items():
        print(build(name, cells))


if __name__ == "__main__":
    main()
