"""``celerylab report``: one self-contained HTML report of a set of profiles."""

from __future__ import annotations

import os

import click

from ._common import check_output, echo_json, load_selection, output_option, range_option, with_common, with_selection


@click.command()
@click.argument("src", nargs=-1, required=True)
@output_option("HTML file to write (one self-contained file, plotly.js inlined).")
@with_selection
@click.option("--title", default=None, help="Report title.")
@range_option("-n", "top_n", low=1, default=20, help="Functions per top table.")
@range_option("--max-tasks", low=1, default=12, help="Tasks that get their own top table (by summed wall time).")
@click.option("--no-callgraph", is_flag=True, help="Skip the call graph (needs Graphviz 'dot').")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@with_common
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
    from ..report import build_report, render_html, write_atomic

    check_output(output)
    ps = load_selection(src, jobs=jobs, cache=not no_cache, task=task, run=run)
    rep = build_report(
        ps, title=title, source=", ".join(src), top_n=top_n, max_tasks=max_tasks, callgraph=not no_callgraph
    )
    write_atomic(output, render_html(rep))
    for w in rep.warnings:
        click.echo(f"celerylab: warning: {w}", err=True)
    size = os.path.getsize(output)
    if as_json:
        echo_json(
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
