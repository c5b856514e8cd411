"""``celerylab top``: the hottest functions, summed exactly as pstats merges them."""

from __future__ import annotations

import click

from ._common import echo_json, load_selection, range_option, records, with_common, with_selection

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
@with_selection
@range_option("-n", "top_n", low=1, default=20, help="How many functions.")
@click.option("--json", "as_json", is_flag=True, help="JSON records instead of a table (numbers unformatted).")
@with_common
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
    from ..fmt import text_table

    ps = load_selection(src, jobs=jobs, cache=not no_cache, task=task, run=run)
    t = ps.top(top_n, by=by)
    cols = ["label", "ncalls", "pcalls", "tottime", "cumtime", "tottime_mean", "share", "n_profiles", "kind"]
    if as_json:
        echo_json({"profiles": len(ps), "by": by, "functions": records(t[cols])})
        return
    click.echo(
        f"Top {len(t)} functions by {by} over {len(ps):,} profiles"
        + (f" of task {task}" if task else "")
        + (f" in run {run}" if run else "")
    )
    click.echo(text_table(t[["ncalls", "tottime", "cumtime", "tottime_mean", "share", "kind", "label"]], _TOP_FORMATS))
