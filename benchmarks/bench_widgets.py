"""Widget responsiveness: the first render of the explorer in a browser, and the Python time of a drilldown click
on a 10 000-profile synthetic set.

    .venv/bin/python benchmarks/bench_widgets.py                  # 10 000 profiles (corpus cached in --dir)
    .venv/bin/python benchmarks/bench_widgets.py --n 1000 --clicks 20
    .venv/bin/python benchmarks/bench_widgets.py --first-render   # + JupyterLab/Notebook 7 + Chromium (~2 min)

First render (``--first-render``): ``explore()`` of ``sample_profiles/`` in a fresh Python (a kernel has IPython
loaded; findings in the background as in a kernel), then the browser test (tests/widgets/test_browser.py) in
JupyterLab and Notebook 7: seconds from executing the explore cell to its first plot drawn and to the findings
with their evidence, and the bytes the kernel websocket delivered (targets: ≤ 3 s, ≤ 10 MB).

A "click" is ``DrilldownTab.on_figure_click`` on a caller/callee bar (exactly what plotly calls in the kernel):
resolve the function, callers + callees, the info line, both lists, the neighbours figure, the per-profile box
plot and the breadcrumb.  The baseline is ``ps.callers(f)`` alone (the analysis call every click needs), timed
on the same functions; the target is ≤ 200 ms per click.  Also printed: building the explorer, the
first drilldown after a filter change (which computes the filtered set's edge totals once), and a filter change.
Timings are the median and max over ``--clicks`` clicks on the largest callers/callees, after one warm-up click.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import celerylab as cl
from celerylab.testing import write_corpus


def corpus(folder: Path, n: int) -> Path:
    """The synthetic corpus of ``n`` profiles in ``folder`` (written once, reused by later runs)."""
    done = folder / f".complete-{n}"
    if not done.exists():
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        write_corpus(str(folder), n, runs=("baseline", "candidate"))
        done.write_text("ok")
        print(f"wrote {n} profiles to {folder} in {time.perf_counter() - t0:.1f} s")
    return folder


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def first_render() -> None:
    """Print explore()'s construction time in a fresh interpreter and the browser test's first-render figures."""
    import json
    import subprocess

    root = Path(__file__).resolve().parent.parent
    code = ("import time, IPython, celerylab as cl\n"
            "from celerylab.widgets._findings import FindingsTab\n"
            "FindingsTab.background = True\n"
            "ps = cl.load(cl.sample_profiles())\n"
            "t = time.perf_counter(); app = ps.explore(); print(time.perf_counter() - t)\n")  # fmt: skip
    took = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                cwd=root).stdout.split()[-1])  # fmt: skip
    print(f"explore(samples) in a fresh interpreter:  {ms(took)}   (target <= 1 s)")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-s",
                        "tests/widgets/test_browser.py"], capture_output=True, text=True, cwd=root)  # fmt: skip
    for name in ("jupyterlab", "notebook7"):
        f = root / "test-artifacts" / "widgets" / f"{name}-first-render.json"
        if not f.exists():
            print(f"{name}: no figures (browser test output below)")
            continue
        d = json.loads(f.read_text(encoding="utf-8"))
        print(f"{name:<11} explore cell -> first plot {d['first_plot_s']:.2f} s, {d['first_plot_bytes'] / 1e6:.2f} MB; "
              f"-> findings with evidence {d['findings_s']:.2f} s, {d['findings_bytes'] / 1e6:.2f} MB")  # fmt: skip
    if r.returncode:
        print(r.stdout[-3000:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="profiles in the synthetic corpus")
    ap.add_argument("--clicks", type=int, default=30, help="drilldown clicks to time")
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "celerylab-bench-widgets"),
                    help="where the corpus is written and cached")  # fmt: skip
    ap.add_argument("--first-render", action="store_true", help="also time the explorer's first render in a browser")
    args = ap.parse_args(argv)
    if args.first_render:
        first_render()
    import plotly.callbacks as pc

    from celerylab.widgets import explore

    folder = corpus(Path(args.dir) / str(args.n), args.n)
    t0 = time.perf_counter()
    ps = cl.load(folder)
    print(f"loaded {len(ps):,} profiles, {len(ps.stats):,} stat rows, {len(ps.edges):,} edge rows in "
          f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
    t0 = time.perf_counter()
    _ = ps.function_totals, ps.edge_totals
    print(f"exact totals (once per selection):      {ms(time.perf_counter() - t0)}")
    t0 = time.perf_counter()
    app = explore(ps)
    print(f"explore(ps) incl. Overview:            {ms(time.perf_counter() - t0)}")
    dd = app.drilldown
    start = int(ps.top(n=1, by="cumtime")["func_id"].iloc[0])
    t0 = time.perf_counter()
    app.drill(start)
    print(f"first drilldown:                        {ms(time.perf_counter() - t0)}")

    click_times: list[float] = []
    base_times: list[float] = []
    for i in range(args.clicks + 1):
        trace = dd.fig.data[i % 2] if len(dd.fig.data[i % 2].customdata or ()) else dd.fig.data[(i + 1) % 2]
        if not len(trace.customdata or ()):
            dd.on_back()
            continue
        pts = pc.Points(point_inds=[0], xs=[trace.x[0]], ys=[trace.y[0]], trace_name=trace.name, trace_index=0)
        target = int(trace.customdata[0][0])
        t0 = time.perf_counter()
        ps.callers(target)
        base = time.perf_counter() - t0
        t0 = time.perf_counter()
        dd.on_figure_click(trace, pts, None)
        took = time.perf_counter() - t0
        if app.errors.errors:
            raise SystemExit(f"click failed: {app.errors.message}")
        if dd.focus != target:
            raise SystemExit(f"click did not move the focus to {target} (focus {dd.focus})")
        if i:  # the first click warms caches
            click_times.append(took)
            base_times.append(base)
    med, worst, base = statistics.median(click_times), max(click_times), statistics.median(base_times)
    print(f"drilldown click (Python time), median:  {ms(med)}   max {ms(worst)}   over {len(click_times)} clicks")
    print(f"baseline ps.callers(f) alone, median:   {ms(base)}")
    print(f"ratio click / callers():                {med / base:8.1f} x")
    print(f"target <= 200 ms per click:             {'met' if worst <= 0.2 else 'MISSED'}")

    t0 = time.perf_counter()
    app.set_filters(task_name="orders.process")
    filt = time.perf_counter() - t0
    t0 = time.perf_counter()
    app.drill(start)
    first_after = time.perf_counter() - t0
    print(f"filter change (task_name), Drilldown visible: {ms(filt)}")
    print(f"first drilldown after the filter change:      {ms(first_after)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
