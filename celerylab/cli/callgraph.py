"""``celerylab callgraph``: the merged call graph drawn by gprof2dot and Graphviz."""

from __future__ import annotations

import os

import click

from ._common import check_output, load_selection, output_option, range_option, with_common, with_selection


@click.command()
@click.argument("src", nargs=-1, required=True)
@output_option("File to write: .svg, .png, .pdf, .dot, or .html (a page that fits, zooms and pans the graph).")
@with_selection
@range_option("--node-thres", low=0, high=100, default=0.5, help="Drop functions below this % of the total time.")
@range_option("--edge-thres", low=0, high=100, default=0.1, help="Drop calls below this % of the total time.")
@range_option("--max-nodes", low=1, default=250, help="Raise the thresholds until at most this many functions remain.")
@click.option("--root", default=None, help="Only what this function calls (gprof2dot 'module:line:name' glob).")
@range_option("--timeout", low=0.1, default=60.0, help="Seconds to let Graphviz 'dot' run.")
@with_common
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
    from ..callgraph import CallgraphOptions, dot_binary, write_callgraph

    check_output(output)
    if not output.lower().endswith((".dot", ".gv")):
        dot_binary()  # fail before loading when Graphviz is missing
    ps = load_selection(src, jobs=jobs, cache=not no_cache, task=task, run=run)
    opts = CallgraphOptions(node_thres=node_thres, edge_thres=edge_thres, max_nodes=max_nodes, root=root)
    if output.lower().endswith((".html", ".htm")):
        from ..report.build import write_callgraph_page

        write_callgraph_page(ps, output, opts, timeout=timeout)
    else:
        write_callgraph(ps, output, opts, timeout=timeout)
    click.echo(f"wrote {output} ({os.path.getsize(output):,} bytes, {len(ps):,} profiles)")
