"""``celerylab ingest`` and ``celerylab ship``: the scale-out side (docs/scale.md).  Dask, fsspec and s3fs are
imported only when a command runs."""

from __future__ import annotations

import json

import click

from ..errors import UsageError
from ._common import EXIT_ERROR, EXIT_OK


def _options(text: str | None) -> dict | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as e:
        raise UsageError(f"--storage-options must be a JSON object: {e}") from None
    if not isinstance(value, dict):
        raise UsageError("--storage-options must be a JSON object")
    return value


def _need_scale() -> None:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
        import fsspec  # noqa: F401
    except ImportError as e:
        raise UsageError(f"this command needs the scale extra (pip install 'celerylab[scale]'): {e}") from None


@click.command()
@click.argument("src", nargs=-1, required=True)
@click.option("--to", "dataset", required=True, help="The dataset folder or URL (s3://bucket/prefix, file://…).")
@click.option("--scheduler", default=None, help="A Dask scheduler address (tcp://host:8786); default: a LocalCluster "
              "with one worker process per core.")  # fmt: skip
@click.option("--chunk-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Files per Dask task.")  # fmt: skip
@click.option("--storage-options", default=None, help="JSON object of fsspec options for SRC and DATASET "
              '(e.g. {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}).')  # fmt: skip
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when on a terminal).")
def ingest(src: tuple[str, ...], dataset: str, scheduler: str | None, chunk_size: int, storage_options: str | None,
           progress: bool | None) -> int:  # fmt: skip
    """Parse the profiles of SRC (folders or URLs) that DATASET does not hold yet into the partitioned Parquet
    dataset DATASET, on a Dask cluster.  Re-running ingests only new or changed files.  Files that cannot be
    loaded are listed with the reason cl.load gives; exit 1 when nothing could be ingested and some failed."""
    _need_scale()
    from ..scale.ingest import ingest as run

    opts = _options(storage_options)
    rep = run(list(src), dataset, scheduler=scheduler, chunk_size=chunk_size, progress=progress,
              storage_options=opts, source_options=opts)  # fmt: skip
    for path, reason in rep.errors:
        click.echo(f"celerylab: warning: {path}: {reason}", err=True)
    click.echo(f"{rep} — {rep.profiles_per_second:,.0f} profiles/s" if rep.profiles else str(rep))
    return EXIT_ERROR if rep.errors and not rep.profiles and rep.new_files else EXIT_OK


@click.command()
@click.option("--dir", "folder", required=True, type=click.Path(file_okay=False), help="The capture folder.")
@click.option("--to", "url", required=True, help="Where to: any fsspec URL (s3://bucket/prefix, file:///…).")
@click.option("--storage-options", default=None, help="JSON object of fsspec options for the destination.")
@click.option("--keep", is_flag=True, help="Upload only; never delete the local files.")
@click.option("--every", type=click.FloatRange(min=0.1), default=None,
              help="Ship every N seconds until interrupted; failed uploads are retried each time.")  # fmt: skip
def ship(folder: str, url: str, storage_options: str | None, keep: bool, every: float | None) -> int:
    """Upload finished profile pairs (sidecar + profile, never temporary files) from --dir to --to, deleting the
    local copies only after the upload is confirmed.  Exit 1 when some pair could not be shipped (kept on disk)."""
    _need_scale()
    from ..scale.ship import ship as run
    from ..scale.ship import ship_forever

    opts = _options(storage_options)
    if every is not None:
        ship_forever(folder, url, interval=every, storage_options=opts, echo=click.echo)
        return EXIT_OK
    rep = run(folder, url, storage_options=opts, keep=keep)
    for path, reason in rep.failed:
        click.echo(f"celerylab: warning: {path}: not shipped, kept: {reason}", err=True)
    click.echo(str(rep))
    return EXIT_ERROR if rep.failed else EXIT_OK
