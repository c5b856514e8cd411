"""``celerylab export-pstats``: one merged pstats file equal to ``pstats.Stats(*files)``."""

from __future__ import annotations

import click

from ._common import check_output, load_selection, output_option, with_common, with_selection


@click.command("export-pstats")
@click.argument("src", nargs=-1, required=True)
@output_option("Merged .prof to write (stdlib pstats, snakeviz, gprof2dot read it).")
@with_selection
@with_common
def export_pstats(
    src: tuple[str, ...], output: str, task: str | None, run: str | None, jobs: int | None, no_cache: bool
) -> None:
    """Merge SRC into one pstats file, equal to pstats.Stats(*files)."""
    check_output(output)
    ps = load_selection(src, jobs=jobs, cache=not no_cache, task=task, run=run)
    ps.to_pstats(output)
    click.echo(f"wrote {output} ({len(ps):,} profiles, {len(ps.function_totals):,} functions)")
