"""``celerylab demo`` and ``celerylab summary``: load profiles and print what a user wants to see first.

``demo`` is the README's main job: on the shipped samples it prints the summary, the tasks, the top functions,
then compares the runs (significant per-invocation changes), N+1 query suspects and leaking worker processes,
and with ``-o`` writes the self-contained HTML report.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import click

_WIDTH = 72
#: display format per column of the tables printed here (numbers are formatted only by celerylab.fmt)
_FORMATS = {
    "tottime": "seconds", "cumtime": "seconds", "mean_a": "seconds", "mean_b": "seconds", "wall_mean_s": "seconds",
    "wall_p50_s": "seconds", "wall_p95_s": "seconds", "total_s": "seconds", "ncalls": "int", "profiles": "int",
    "failed": "int", "n_a": "int", "n_b": "int", "workers": "int", "share": "percent", "affected_share": "percent",
    "grew_share": "percent", "ratio": "ratio", "p_adjusted": "pvalue", "rss_growth_mean": "bytes",
    "mean_per_invocation": "number", "p50": "seconds", "p95": "seconds", "p99": "seconds", "max": "seconds",
    "n": "int",
}  # fmt: skip


def _table(df: Any, cols: list[str], n: int) -> str:
    from ..fmt import text_table

    cols = [c for c in cols if c in df.columns]
    return text_table(df[cols].head(n), {c: f for c, f in _FORMATS.items() if c in cols}, max_label=_WIDTH)


def _load(src: str, jobs: int | None, cache: bool) -> tuple[Any, float]:
    import celerylab as cl

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # bad files: one summary line on stderr, never an exception
        ps = cl.load(src, jobs=jobs, cache=cache, progress=None)
    return ps, time.perf_counter() - t0


def _print_summary(ps: Any, src: str, seconds: float, n: int) -> None:
    import pandas as pd

    click.echo(repr(ps))
    click.echo(f"  loaded in {seconds:.2f} s from {src}")
    with pd.option_context("display.width", 200):
        tasks = ps.task_summary()
        if len(tasks):
            click.echo("\nTasks")
            click.echo(_table(tasks, list(tasks.columns), 15))
        top = ps.top(n)
        if len(top):
            click.echo(f"\nTop {n} functions by own time (tottime), summed over {len(ps):,} profiles (pstats-exact)")
            click.echo(_table(top, ["label", "ncalls", "tottime", "cumtime", "share", "kind"], n))
        if len(ps.errors):
            click.echo(f"\n{len(ps.errors)} file(s) could not be loaded:")
            click.echo(ps.errors.head(20).to_string(index=False))


def _print_comparison(ps: Any, n: int) -> None:
    import celerylab as cl
    from celerylab import analysis

    runs = [r for r in ps.profiles["run"].dropna().astype(str).unique()]
    if len(runs) != 2:
        return
    a, b = ("baseline", "candidate") if set(runs) == {"baseline", "candidate"} else tuple(sorted(runs))
    per_task = cl.diff(ps, split_by="run", values=(a, b), by="task_name")
    click.echo(f"\nTasks, {a} -> {b}: time per invocation (Mann-Whitney U, Benjamini-Hochberg adjusted)")
    click.echo(_table(per_task, ["label", "status", "mean_a", "mean_b", "ratio", "p_adjusted", "n_a", "n_b"], 20))
    d = cl.diff(ps, split_by="run", values=(a, b), group_by="task_name")
    changed = d[d["status"].isin(["slower", "faster", "new", "gone"])]
    click.echo(f"\nFunctions that changed significantly ({len(changed)}), by contribution to the change of task time")
    if len(changed):
        click.echo(_table(changed, ["task_name", "label", "status", "mean_a", "mean_b", "ratio", "p_adjusted"], n))
    else:
        click.echo("  none")
    side_b = ps.where(run=b)
    n1 = analysis.n_plus_one(side_b)
    if len(n1):
        click.echo(f"\nN+1 query suspects in {b}")
        click.echo(_table(n1, ["task_name", "sql", "caller", "mean_per_invocation", "affected_share"], 5))
    _print_producer_side(ps, a, b, n)
    leaks = analysis.leak_suspects(side_b)
    leaks = leaks[leaks["suspect"].astype(bool)] if "suspect" in leaks.columns else leaks
    if len(leaks):
        click.echo(f"\nLeak suspects in {b}: tasks that come with the RSS growth of worker processes")
        click.echo(_table(leaks, ["task_name", "workers", "profiles", "rss_growth_mean", "grew_share", "suspect"], 5))


def _print_producer_side(ps: Any, a: str, b: str, n: int) -> None:
    """Publishing (producer profiles) compared per task, with the functions behind the change; then the life of
    a task: publish, queue wait and run, and the episodes when work waited in the queue."""
    import celerylab as cl
    from celerylab import analysis

    if "role" in ps.profiles and (ps.profiles["role"].astype(object) == "producer").any():
        pub = ps.where(role="producer")
        if set(pub.profiles["run"].dropna().astype(str)) >= {a, b}:
            per_task = cl.diff(pub, split_by="run", values=(a, b), by="task_name")
            click.echo(f"\nPublishing (producer side), {a} -> {b}: time per publish")
            click.echo(_table(per_task, ["label", "status", "mean_a", "mean_b", "ratio", "p_adjusted", "n_a", "n_b"],
                              10))  # fmt: skip
            funcs = cl.diff(pub, split_by="run", values=(a, b))
            slower = funcs[funcs["status"].isin(["slower", "new"])]
            if len(slower):
                click.echo("  what publishing does more of, by contribution:")
                click.echo(_table(slower, ["task_name", "label", "status", "mean_a", "mean_b", "ratio"], min(n, 6)))
    lat = analysis.latency(ps)
    waits = lat.loc[lat["stage"] == "queue_wait"]
    if len(waits):
        click.echo("\nLatency: queue wait per task (start of run - publish), seconds")
        click.echo(_table(waits, ["task_name", "n", "p50", "p95", "p99", "max"], n))
        for run in sorted(ps.profiles["run"].dropna().astype(str).unique()):
            eps = analysis.queue_wait_episodes(ps.where(run=run), threshold=0.5)
            for e in eps.itertuples(index=False):
                click.echo(f"  {run}: queue-wait episode {e.start:%H:%M:%S}-{e.end:%H:%M:%S} UTC, p95 up to "
                           f"{e.p95_max:.2f} s, tasks that waited: {', '.join(e.tasks)}")  # fmt: skip


@click.command()
@click.argument("src", required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Also write the HTML report here.")
@click.option("-j", "--jobs", type=int, default=None, help="Parser threads (default: CPU count).")
@click.option("--no-cache", is_flag=True, help="Do not read or write the load cache.")
@click.option("-n", "top_n", type=int, default=12, show_default=True, help="Rows per ranking.")
def demo(src: str | None, output: str | None, jobs: int | None, no_cache: bool, top_n: int) -> None:
    """Analyse the shipped sample profiles (or SRC): summary, top functions, run comparison, DB and memory
    suspects; with -o, the HTML report too."""
    import celerylab as cl

    src = src or str(cl.sample_profiles())
    ps, seconds = _load(src, jobs, not no_cache)
    _print_summary(ps, src, seconds, top_n)
    if len(ps):
        _print_comparison(ps, top_n)
    if output:
        path = ps.report(output)
        click.echo(f"\nreport written: {path}")
    else:
        click.echo("\nTip: `celerylab demo -o report.html` writes all of this as one self-contained HTML report.")


@click.command()
@click.argument("src")
@click.option("-j", "--jobs", type=int, default=None, help="Parser threads (default: CPU count).")
@click.option("--no-cache", is_flag=True, help="Do not read or write the load cache.")
@click.option("-n", "top_n", type=int, default=15, show_default=True)
def summary(src: str, jobs: int | None, no_cache: bool, top_n: int) -> None:
    """Load SRC (directory, glob or file) and print a summary: tasks and top functions."""
    ps, seconds = _load(src, jobs, not no_cache)
    _print_summary(ps, src, seconds, top_n)
