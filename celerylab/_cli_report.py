"""``celerylab report | diff | top | callgraph | export-pstats``: thin click commands over the Python API.

Each command loads, calls one library function and prints; errors are raised as exceptions and turned into exit
codes in one place, :func:`celerylab.cli.main`.  Exit codes: 0 success, 1 error (bad or empty input, unreadable
files, missing Graphviz/Chromium), 2 bad command-line usage (click), 3 ``diff --fail-on-regression``: a significant
regression exceeded the threshold.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from .errors import CelerylabError

if TYPE_CHECKING:
    import pandas as pd

    from .profileset import ProfileSet

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REGRESSION = 3


# ------------------------------------------------------------------------------------------------------ helpers
def _load(
    sources: Sequence[str], *, jobs: int | None, cache: bool, task: str | None = None, run: str | None = None
) -> ProfileSet:
    """Load ``sources``; fail (exit 1) with the reasons when nothing loads; list unreadable files on stderr."""
    import celerylab as cl

    src: Any = sources[0] if len(sources) == 1 else list(sources)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the CLI reports load problems itself, below
        ps = cl.load(src, jobs=jobs, cache=cache, progress=None)
    shown = ", ".join(sources)
    if len(ps.errors):
        head = ps.errors.head(5)
        lines = [f"  {p}: {r}" for p, r in zip(head["path"], head["reason"])]
        more = f"\n  … and {len(ps.errors) - 5} more" if len(ps.errors) > 5 else ""
        if len(ps):
            click.echo(
                f"celerylab: warning: {len(ps.errors)} file(s) could not be loaded:\n" + "\n".join(lines) + more,
                err=True,
            )
        else:
            raise CelerylabError(f"{shown}: no profile could be loaded:\n" + "\n".join(lines) + more)
    if not len(ps):
        raise CelerylabError(f"{shown}: no profile files found")
    conditions = {k: v for k, v in (("task_name", task), ("run", run)) if v is not None}
    if conditions:
        sub = ps.where(**conditions)
        if not len(sub):
            have = {k: sorted(str(x) for x in ps.profiles[k].dropna().unique())[:20] for k in conditions}
            raise CelerylabError(
                f"{shown}: no profile matches "
                + ", ".join(f"{k}={v!r}" for k, v in conditions.items())
                + "; available: "
                + "; ".join(f"{k}: {', '.join(v)}" for k, v in have.items())
            )
        ps = sub
    return ps


def _check_output(path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{path}: output folder {folder} does not exist")
    return path


def _jsonable(v: Any) -> Any:
    import numpy as np
    import pandas as pd

    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        f = float(v)
        return None if math.isnan(f) else (("inf" if f > 0 else "-inf") if math.isinf(f) else f)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, list | tuple | np.ndarray):
        return [_jsonable(x) for x in v]
    return v


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    cols = list(df.columns)
    return [{c: _jsonable(v) for c, v in zip(cols, row)} for row in df.itertuples(index=False, name=None)]


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False))


def _table(df: pd.DataFrame, formats: dict[str, str] | None = None, *, max_label: int = 90) -> str:
    """A plain-text table; numbers are formatted here, at the edge, and labels clipped from the left."""
    from .report import _fmt

    fm = formats or {}
    cols = list(df.columns)
    rows = []
    for r in df.itertuples(index=False, name=None):
        cells = []
        for c, v in zip(cols, r):
            f = fm.get(c) or ("number" if isinstance(v, float) else "int" if isinstance(v, int) else "text")
            s = _fmt(v, f)
            if f == "text" and len(s) > max_label:
                s = "…" + s[-(max_label - 1) :]
            cells.append(s)
        rows.append(cells)
    widths = [max([len(str(c))] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    numeric = [fm.get(c, "text") != "text" for c in cols]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(s.rjust(w) if n else s.ljust(w) for s, w, n in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line([str(c) for c in cols])] + [line(r) for r in rows])


_common = [
    click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Parser processes (default: CPUs)."),
    click.option("--no-cache", is_flag=True, help="Neither read nor write the Parquet cache."),
]


def _with_common(f: Any) -> Any:
    for opt in reversed(_common):
        f = opt(f)
    return f


def _with_selection(f: Any) -> Any:
    """``--task`` and ``--run``: which profiles of SRC a command looks at."""
    f = click.option("--run", default=None, help="Only profiles of this run label.")(f)
    return click.option("--task", default=None, help="Only profiles of this task name (glob allowed: 'orders.*').")(f)


def _output_option(help: str) -> Any:
    return click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False), help=help)


# ------------------------------------------------------------------------------------------------------- report
@click.command()
@click.argument("src", nargs=-1, required=True)
@_output_option("HTML file to write (one self-contained file, plotly.js inlined).")
@_with_selection
@click.option("--title", default=None, help="Report title.")
@click.option("-n", "top_n", type=click.IntRange(min=1), default=20, show_default=True, help="Functions per top table.")
@click.option(
    "--max-tasks",
    type=click.IntRange(min=1),
    default=12,
    show_default=True,
    help="Tasks that get their own top table (by summed wall time).",
)
@click.option("--no-callgraph", is_flag=True, help="Skip the call graph (needs Graphviz 'dot').")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@_with_common
def report(
    src: tuple[str, ...],
    output: str,
    task: str | None,
    run: str | None,
    title: str | None,
    top_n: int,
    max_tasks: int,
    no_callgraph: bool,
    as_json: bool,
    jobs: int | None,
    no_cache: bool,
) -> None:
    """Write one self-contained HTML report of SRC (directories, globs or files).

    Sections: summary, top functions overall and per task, time distributions, DB hotspots, memory hotspots, the
    call graph and any files that could not be loaded.  Opens offline; names are escaped, no script but plotly's.
    """
    from .report import build_report, render_html

    _check_output(output)
    ps = _load(src, jobs=jobs, cache=not no_cache, task=task, run=run)
    rep = build_report(
        ps, title=title, source=", ".join(src), top_n=top_n, max_tasks=max_tasks, callgraph=not no_callgraph
    )
    from .report import _write

    _write(output, render_html(rep))
    for w in rep.warnings:
        click.echo(f"celerylab: warning: {w}", err=True)
    size = os.path.getsize(output)
    if as_json:
        _echo_json(
            {
                "output": os.path.abspath(output),
                "bytes": size,
                "profiles": len(ps),
                "sections": [s.id for s in rep.sections],
                "warnings": rep.warnings,
            }
        )
    else:
        click.echo(
            f"wrote {output} ({size / 2**20:.1f} MiB, {len(ps):,} profiles, sections: "
            f"{', '.join(s.id for s in rep.sections)})"
        )


# ---------------------------------------------------------------------------------------------------------- top
_TOP_FORMATS = {
    "ncalls": "int",
    "pcalls": "int",
    "tottime": "seconds",
    "cumtime": "seconds",
    "tottime_mean": "seconds",
    "cumtime_mean": "seconds",
    "share": "percent",
    "n_profiles": "int",
}


@click.command()
@click.argument("src", nargs=-1, required=True)
@click.option(
    "--by",
    type=click.Choice(["tottime", "cumtime", "ncalls", "pcalls"]),
    default="tottime",
    show_default=True,
    help="Rank by own time, cumulative time or calls.",
)
@_with_selection
@click.option("-n", "top_n", type=click.IntRange(min=1), default=20, show_default=True, help="How many functions.")
@click.option("--json", "as_json", is_flag=True, help="JSON records instead of a table (numbers unformatted).")
@_with_common
def top(
    src: tuple[str, ...],
    by: str,
    task: str | None,
    run: str | None,
    top_n: int,
    as_json: bool,
    jobs: int | None,
    no_cache: bool,
) -> None:
    """Print the top functions of SRC, summed over every profile exactly as pstats merges them."""
    ps = _load(src, jobs=jobs, cache=not no_cache, task=task, run=run)
    t = ps.top(top_n, by=by)
    cols = ["label", "ncalls", "pcalls", "tottime", "cumtime", "tottime_mean", "share", "n_profiles", "kind"]
    if as_json:
        _echo_json({"profiles": len(ps), "by": by, "functions": _records(t[cols])})
        return
    click.echo(
        f"Top {len(t)} functions by {by} over {len(ps):,} profiles"
        + (f" of task {task}" if task else "")
        + (f" in run {run}" if run else "")
    )
    click.echo(_table(t[["ncalls", "tottime", "cumtime", "tottime_mean", "share", "kind", "label"]], _TOP_FORMATS))


# ---------------------------------------------------------------------------------------------------- callgraph
@click.command()
@click.argument("src", nargs=-1, required=True)
@_output_option("File to write: .svg, .png, .pdf or .dot.")
@_with_selection
@click.option(
    "--node-thres",
    type=click.FloatRange(min=0, max=100),
    default=0.5,
    show_default=True,
    help="Drop functions below this % of the total time.",
)
@click.option(
    "--edge-thres",
    type=click.FloatRange(min=0, max=100),
    default=0.1,
    show_default=True,
    help="Drop calls below this % of the total time.",
)
@click.option(
    "--max-nodes",
    type=click.IntRange(min=1),
    default=250,
    show_default=True,
    help="Raise the thresholds until at most this many functions remain.",
)
@click.option("--root", default=None, help="Only what this function calls (gprof2dot 'module:line:name' glob).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Seconds to let Graphviz 'dot' run.",
)
@_with_common
def callgraph(
    src: tuple[str, ...],
    output: str,
    task: str | None,
    run: str | None,
    node_thres: float,
    edge_thres: float,
    max_nodes: int,
    root: str | None,
    timeout: float,
    jobs: int | None,
    no_cache: bool,
) -> None:
    """Draw the merged call graph of SRC (gprof2dot + Graphviz 'dot') to OUTPUT."""
    from .callgraph import CallgraphOptions, dot_binary, write_callgraph

    _check_output(output)
    if not output.lower().endswith((".dot", ".gv")):
        dot_binary()  # fail before loading when Graphviz is missing
    ps = _load(src, jobs=jobs, cache=not no_cache, task=task, run=run)
    opts = CallgraphOptions(node_thres=node_thres, edge_thres=edge_thres, max_nodes=max_nodes, root=root)
    write_callgraph(ps, output, opts, timeout=timeout)
    click.echo(f"wrote {output} ({os.path.getsize(output):,} bytes, {len(ps):,} profiles)")


# ------------------------------------------------------------------------------------------------ export-pstats
@click.command("export-pstats")
@click.argument("src", nargs=-1, required=True)
@_output_option("Merged .prof to write (stdlib pstats, snakeviz, gprof2dot read it).")
@_with_selection
@_with_common
def export_pstats(
    src: tuple[str, ...], output: str, task: str | None, run: str | None, jobs: int | None, no_cache: bool
) -> None:
    """Merge SRC into one pstats file, equal to pstats.Stats(*files)."""
    _check_output(output)
    ps = _load(src, jobs=jobs, cache=not no_cache, task=task, run=run)
    ps.to_pstats(output)
    click.echo(f"wrote {output} ({len(ps):,} profiles, {len(ps.function_totals):,} functions)")


# --------------------------------------------------------------------------------------------------------- diff
DIFF_HELP = f"""Compare A (before) with B (after) and print the ranked significant changes.

\b
A and B are directories, globs or files:     celerylab diff base/ cand/
or one SRC split by a profiles column:       celerylab diff SRC --by run [--a baseline --b candidate]
(with --by and no --a/--b, the column must hold exactly two values; A is the one that started first).

\b
Exit codes:
  {EXIT_OK}  no significant regression above --fail-on-regression (or the option not given)
  {EXIT_ERROR}  error: bad or empty input, unreadable files, unknown column or value
  {EXIT_USAGE}  bad command line
  {EXIT_REGRESSION}  --fail-on-regression PCT: a significant regression is more than PCT % slower per task invocation
"""


def _split(ps: ProfileSet, by: str, a_val: str | None, b_val: str | None, src: str) -> tuple[Any, Any, str, str]:
    p = ps.profiles
    if by not in p.columns:
        raise KeyError(f"diff --by {by!r}: no such column in the profiles of {src}; columns: {', '.join(p.columns)}")
    col = p[by].astype(object)
    values = [v for v in col.dropna().unique()]
    if a_val is None or b_val is None:
        if len(values) != 2:
            raise CelerylabError(
                f"diff --by {by}: {src} holds {len(values)} values of {by} "
                f"({', '.join(sorted(map(str, values))[:10])}); name two with --a and --b"
            )
        first = p.groupby(col, sort=False)["started_at"].min() if "started_at" in p else None
        ordered = sorted(values, key=lambda v: (first[v] if first is not None else 0, str(v)))
        a_val = a_val if a_val is not None else str(ordered[0] if str(ordered[0]) != b_val else ordered[1])
        b_val = b_val if b_val is not None else str(ordered[1] if str(ordered[1]) != a_val else ordered[0])
    text = col.map(lambda v: None if v is None else str(v))
    a = ps.where((text == a_val).to_numpy())
    b = ps.where((text == b_val).to_numpy())
    for name, part in ((a_val, a), (b_val, b)):
        if not len(part):
            raise CelerylabError(
                f"diff --by {by}: no profile of {src} has {by}={name!r}; values: "
                f"{', '.join(sorted(map(str, values))[:20])}"
            )
    return a, b, f"{by}={a_val}", f"{by}={b_val}"


def regressions(diff: pd.DataFrame, threshold_pct: float) -> pd.DataFrame:
    """Rows of a diff that count as regressions over ``threshold_pct``: status ``slower`` (significant) and the
    per-task-invocation ratio B/A above ``1 + threshold_pct / 100``."""
    if "status" not in diff.columns or "ratio" not in diff.columns:
        raise ValueError(f"diff result lacks status/ratio columns; columns are {list(diff.columns)}")
    slower = diff["status"].astype(str) == "slower"
    over = diff["ratio"].astype(float) > 1.0 + threshold_pct / 100.0
    return diff.loc[slower & over]


@click.command(help=DIFF_HELP)
@click.argument("a")
@click.argument("b", required=False)
@click.option("--by", default=None, help="Split one SRC (given as A) by this profiles column, e.g. run.")
@click.option("--a", "a_val", default=None, help="With --by: the value that is A (before).")
@click.option("--b", "b_val", default=None, help="With --by: the value that is B (after).")
@click.option("--task", default=None, help="Only profiles of this task name (glob allowed).")
@click.option(
    "--per",
    type=click.Choice(["function", "task"]),
    default="function",
    show_default=True,
    help="Compare each function's own time per task invocation, or each task's total time per invocation "
    "(a task-level gate: new code in a task counts too).",
)
@click.option(
    "-o",
    "--output",
    "output",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write a self-contained HTML comparison report.",
)
@click.option(
    "--fail-on-regression",
    "fail_pct",
    type=click.FloatRange(min=0),
    default=None,
    metavar="PCT",
    help=f"Exit {EXIT_REGRESSION} when a significant regression is more than PCT % slower per task invocation.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format."
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "-n", "top_n", type=click.IntRange(min=1), default=20, show_default=True, help="Significant changes to print."
)
@_with_common
@click.pass_context
def diff(
    ctx: click.Context,
    a: str,
    b: str | None,
    by: str | None,
    a_val: str | None,
    b_val: str | None,
    task: str | None,
    per: str,
    output: str | None,
    fail_pct: float | None,
    fmt: str,
    as_json: bool,
    top_n: int,
    jobs: int | None,
    no_cache: bool,
) -> None:
    import celerylab as cl

    from .report import build_diff_report, render_html

    if (b is None) == (by is None):
        raise click.UsageError("give two sources A B, or one SRC with --by COLUMN")
    if by is None and (a_val or b_val):
        raise click.UsageError("--a/--b name values of the --by column; they need --by")
    if output:
        _check_output(output)
    if by is not None:
        ps_a, ps_b, a_name, b_name = _split(_load([a], jobs=jobs, cache=not no_cache, task=task), by, a_val, b_val, a)
    else:
        assert b is not None
        ps_a = _load([a], jobs=jobs, cache=not no_cache, task=task)
        ps_b = _load([b], jobs=jobs, cache=not no_cache, task=task)
        a_name, b_name = a, b
    d = cl.diff(ps_a, ps_b, by="task_name" if per == "task" else "label")
    reg = regressions(d, fail_pct) if fail_pct is not None else d.iloc[0:0]
    if output:
        from .report import _write

        _write(output, render_html(build_diff_report(d, a_name=a_name, b_name=b_name)))
    code = EXIT_REGRESSION if fail_pct is not None and len(reg) else EXIT_OK
    sig = d.loc[d["status"].astype(str) != "same"]
    if as_json or fmt == "json":
        _echo_json(
            {
                "a": {"name": a_name, "profiles": len(ps_a)},
                "b": {"name": b_name, "profiles": len(ps_b)},
                "per": per,
                "threshold_pct": fail_pct,
                "exit_code": code,
                "report": os.path.abspath(output) if output else None,
                "counts": {
                    k: int((d["status"].astype(str) == k).sum()) for k in ("slower", "faster", "new", "gone", "same")
                },
                "regressions": _records(reg),
                "changes": _records(sig.head(top_n)),
            }
        )
    else:
        _print_diff(d, sig, reg, a_name, b_name, len(ps_a), len(ps_b), fail_pct, top_n, output)
    if code:
        ctx.exit(code)


def _print_diff(
    d: pd.DataFrame,
    sig: pd.DataFrame,
    reg: pd.DataFrame,
    a_name: str,
    b_name: str,
    na: int,
    nb: int,
    fail_pct: float | None,
    top_n: int,
    output: str | None,
) -> None:
    from .report import _diff_formats

    counts = d["status"].astype(str).value_counts()
    click.echo(f"A: {a_name} ({na:,} profiles)   B: {b_name} ({nb:,} profiles)")
    click.echo("  ".join(f"{k} {int(counts.get(k, 0))}" for k in ("slower", "faster", "new", "gone", "same")))
    if len(sig):
        preferred = ["status", "ratio", "p_value", "delta", "label"]
        extra = [c for c in d.columns if c.startswith(("mean_", "median_")) or c.endswith(("_mean_a", "_mean_b"))]
        cols = [c for c in preferred[:-1] + extra[:2] + preferred[-1:] if c in d.columns]
        click.echo(f"\nSignificant changes (top {min(top_n, len(sig))} of {len(sig)}, ranked by contribution):")
        click.echo(_table(sig.head(top_n)[cols], {**_diff_formats(d), "status": "text", "label": "text"}))
    else:
        click.echo("\nNo significant change.")
    if output:
        click.echo(f"\nwrote {output}")
    if fail_pct is not None:
        if len(reg):
            msg = f"\nFAIL: {len(reg)} significant regression(s) more than {fail_pct:g}% slower per task invocation:"
            click.echo(msg, err=True)
            for label, ratio in zip(reg["label"].head(10), reg["ratio"].head(10)):
                click.echo(f"  {float(ratio):.3g}×  {label}", err=True)
        else:
            click.echo(f"\nOK: no significant regression above {fail_pct:g}%")


__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_REGRESSION",
    "EXIT_USAGE",
    "callgraph",
    "diff",
    "export_pstats",
    "regressions",
    "report",
    "top",
]
