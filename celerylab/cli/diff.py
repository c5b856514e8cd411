"""``celerylab diff``: compare two sets of profiles per invocation, with statistics; a CI gate."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from ..errors import UsageError
from ._common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_REGRESSION,
    EXIT_USAGE,
    check_output,
    echo_json,
    load_selection,
    records,
    with_common,
)

if TYPE_CHECKING:
    import pandas as pd

    from ..profileset import ProfileSet

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
    from ..analysis.diff import split_values

    p = ps.profiles
    if by not in p.columns:
        raise UsageError(f"diff --by {by!r}: no such column in the profiles of {src}; columns: {', '.join(p.columns)}")
    va, vb = split_values(p, by, a_val, b_val)
    col = p[by].astype(object)
    values = list(col.dropna().unique())
    a = ps.where((col == va).to_numpy())
    b = ps.where((col == vb).to_numpy())
    for name, part in ((va, a), (vb, b)):
        if not len(part):
            raise UsageError(
                f"diff --by {by}: no profile of {src} has {by}={name!r}; values: "
                f"{', '.join(sorted(map(str, values))[:20])}"
            )
    return a, b, f"{by}={va}", f"{by}={vb}"


def _findings(whole: ProfileSet, by: str, values: tuple[Any, Any]) -> pd.DataFrame:
    """The findings of A → B; none when a side has no profiles of its own (e.g. a run against itself)."""
    import pandas as pd

    from ..analysis.findings import FINDING_COLUMNS, findings

    col = whole.profiles[by].astype(object)
    if not all((col == v).any() for v in values):
        return pd.DataFrame(columns=FINDING_COLUMNS)
    return findings(whole, split_by=by, values=values)


def _two_sources(ps_a: ProfileSet, a: str, b: str, jobs: int | None, cache: bool, task: str | None) -> ProfileSet:
    """A and B loaded as one set with a ``side`` column (``A``/``B``, by file path), for the findings."""
    both = load_selection([a, b], jobs=jobs, cache=cache, task=task)
    in_a = both.profiles["path"].isin(set(ps_a.profiles["path"]))
    return type(both)(profiles=both.profiles.assign(side=in_a.map({True: "A", False: "B"})),
                      functions=both.functions, stats=both.stats, edges=both.edges, sql=both.sql,
                      allocations=both.allocations, errors=both.errors,
                      metadata_report=both.metadata_report)  # fmt: skip


def regressions(diff: pd.DataFrame, threshold_pct: float) -> pd.DataFrame:
    """Rows of a diff that count as regressions over ``threshold_pct``: status ``slower`` (significant) and the
    per-task-invocation ratio B/A above ``1 + threshold_pct / 100``."""
    if "status" not in diff.columns or "ratio" not in diff.columns:
        raise UsageError(f"diff result lacks status/ratio columns; columns are {list(diff.columns)}")
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
    "--group-by",
    "group_by",
    default=None,
    metavar="COLUMN|none",
    help="Compare within each value of this profiles column: each function within each task (task_name) by "
    "default; 'none' pools every task's invocations.",
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
    "--report-rows",
    "report_rows",
    type=click.IntRange(min=1),
    default=15,
    show_default=True,
    help="With -o: significant changes shown per task in the report (the rest folded).",
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
@with_common
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
    group_by: str | None,
    output: str | None,
    report_rows: int,
    fail_pct: float | None,
    fmt: str,
    as_json: bool,
    top_n: int,
    jobs: int | None,
    no_cache: bool,
) -> None:
    from ..analysis.diff import DEFAULT_GROUP_BY, group_columns
    from ..analysis.diff import diff as compare
    from ..analysis.findings import findings_evidence
    from ..report import build_diff_report, render_html, write_atomic

    if (b is None) == (by is None):
        raise click.UsageError("give two sources A B, or one SRC with --by COLUMN")
    if by is None and (a_val or b_val):
        raise click.UsageError("--a/--b name values of the --by column; they need --by")
    if output:
        check_output(output)
    if by is not None:
        whole = load_selection([a], jobs=jobs, cache=not no_cache, task=task)
        ps_a, ps_b, a_name, b_name = _split(whole, by, a_val, b_val, a)
        found = _findings(whole, by, (a_name.split("=", 1)[1], b_name.split("=", 1)[1]))
    else:
        assert b is not None
        ps_a = load_selection([a], jobs=jobs, cache=not no_cache, task=task)
        ps_b = load_selection([b], jobs=jobs, cache=not no_cache, task=task)
        a_name, b_name = a, b
        found = _findings(_two_sources(ps_a, a, b, jobs, not no_cache, task), "side", ("A", "B"))
    asked = DEFAULT_GROUP_BY if group_by is None else (None if group_by.lower() == "none" else group_by)
    groups = group_columns(asked, split_by=by)  # A and B are values of --by: that column groups nothing
    d = compare(ps_a, ps_b, by="task_name" if per == "task" else "label", group_by=groups or None)
    reg = regressions(d, fail_pct) if fail_pct is not None else d.iloc[0:0]
    if output:
        rep = build_diff_report(d, a_name=a_name, b_name=b_name, findings=found, per_task=report_rows)
        write_atomic(output, render_html(rep))
    code = EXIT_REGRESSION if fail_pct is not None and len(reg) else EXIT_OK
    sig = d.loc[d["status"].astype(str) != "same"]
    if as_json or fmt == "json":
        echo_json(
            {
                "a": {"name": a_name, "profiles": len(ps_a)},
                "b": {"name": b_name, "profiles": len(ps_b)},
                "per": per,
                "group_by": groups or None,
                "threshold_pct": fail_pct,
                "exit_code": code,
                "report": os.path.abspath(output) if output else None,
                "counts": {
                    k: int((d["status"].astype(str) == k).sum()) for k in ("slower", "faster", "new", "gone", "same")
                },
                "findings": records(found.drop(columns=["evidence"])),
                "evidence": records(findings_evidence(found)),
                "regressions": records(reg),
                "changes": records(sig.head(top_n)),
            }
        )
    else:
        _print_findings(found)
        _print_diff(d, sig, reg, a_name, b_name, len(ps_a), len(ps_b), fail_pct, top_n, output)
    if code:
        ctx.exit(code)


def _print_findings(found: pd.DataFrame) -> None:
    """What changed per task and why, first: one headline per finding, then its evidence, indented."""
    from ..analysis.findings import findings_evidence
    from ..fmt import value

    if not len(found):
        click.echo("Findings: no task changed significantly (time or memory).\n")
        return
    click.echo(f"Findings ({len(found)}, largest first):")
    ev = findings_evidence(found)
    unit_fmt = {"s": "seconds", "bytes": "bytes", "count": "number"}
    for r in found.itertuples(index=False):
        click.echo(f"{r.rank}. {r.headline}")
        for e in ev.loc[ev["rank"] == r.rank].itertuples(index=False):
            f = unit_fmt.get(str(e.unit), "number")
            amount = f"{value(e.mean_a, f)} -> {value(e.mean_b, f)}" + (" executions" if e.unit == "count" else "")
            where = str(e.label)
            if e.kind == "sql":
                sql = str(e.detail)
                where += (" [N+1]" if e.n_plus_one else "") + "  " + (sql if len(sql) <= 80 else sql[:79] + "…")
            click.echo(f"     {e.kind!s:<10} {amount:<32} {where}")
    click.echo("")


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
    from ..analysis.diff import diff_group_columns
    from ..fmt import text_table
    from ..report import diff_formats

    counts = d["status"].astype(str).value_counts()
    click.echo(f"A: {a_name} ({na:,} profiles)   B: {b_name} ({nb:,} profiles)")
    click.echo("  ".join(f"{k} {int(counts.get(k, 0))}" for k in ("slower", "faster", "new", "gone", "same")))
    if len(sig):
        preferred = ["status", "ratio", "p_value", "delta", "label"]
        extra = [c for c in d.columns if c.startswith(("mean_", "median_")) or c.endswith(("_mean_a", "_mean_b"))]
        groups = diff_group_columns(d)
        cols = groups + [c for c in preferred[:-1] + extra[:2] + preferred[-1:] if c in d.columns]
        click.echo(f"\nSignificant changes (top {min(top_n, len(sig))} of {len(sig)}, ranked by contribution):")
        texts = {c: "text" for c in (*groups, "status", "label")}
        click.echo(text_table(sig.head(top_n)[cols], {**diff_formats(d), **texts}))
    else:
        click.echo("\nNo significant change.")
    if output:
        click.echo(f"\nwrote {output}")
    if fail_pct is not None:
        if len(reg):
            msg = f"\nFAIL: {len(reg)} significant regression(s) more than {fail_pct:g}% slower per task invocation:"
            click.echo(msg, err=True)
            for name, ratio in zip(_row_names(reg.head(10)), reg["ratio"].head(10), strict=True):
                click.echo(f"  {float(ratio):.3g}×  {name}", err=True)
        else:
            click.echo(f"\nOK: no significant regression above {fail_pct:g}%")


def _row_names(d: pd.DataFrame) -> list[str]:
    """``task · label`` per diff row (the group values first, as the tables show them)."""
    from ..analysis.diff import diff_group_columns

    groups = diff_group_columns(d)
    return [" · ".join(str(v) for v in row) for row in d[[*groups, "label"]].itertuples(index=False)]
