"""``celerylab generate-samples``: regenerate the shipped sample profiles with real workers (the demo app)."""

from __future__ import annotations

import click


@click.command("generate-samples")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--per-run", type=click.IntRange(min=1), default=340, show_default=True,
              help="Profiled task executions per run (retries and group children included).")  # fmt: skip
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the task mix and the database rows.")
@click.option("--database", metavar="URL", default=None,
              help="SQLAlchemy URL; each run uses <name>_<run>.  [default: PostgreSQL celerylab_demo on "
                   "127.0.0.1:5432 when reachable, else SQLite]")  # fmt: skip
@click.option(
    "--broker", metavar="URL", default="redis://127.0.0.1:6379/0", show_default=True, help="Redis broker and backend."
)
@click.option("--timeout", type=float, default=180.0, show_default=True, help="Seconds allowed for each wait.")
def generate_samples(out: str, per_run: int, seed: int, database: str | None, broker: str, timeout: float) -> None:
    """Regenerate the sample profiles into OUT (baseline/, candidate/, manifest.json) with real workers.

    Needs Redis (and PostgreSQL, else SQLite is used).  Example: celerylab generate-samples sample_profiles
    """
    from ..demo.generate import generate

    generate(out, per_run=per_run, seed=seed, database=database, broker=broker, timeout=timeout,
             log=lambda m: click.echo(m, err=True))  # fmt: skip
