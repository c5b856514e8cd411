"""``celerylab run``: run any command with producer capture on in every Python process it starts."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import click


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    epilog="Example: celerylab run --dir /var/tmp/profiles --sample 0.05 -- gunicorn proj.wsgi",
)
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None,
              help="Write one .prof + .json per profiled publish here (default $CELERYLAB_DIR; without it only "
                   "the timing header is added).")  # fmt: skip
@click.option("--sample", "sample_rate", default=None, help="Fraction of publishes to profile, 0..1 (default 1).")
@click.option("--tasks", default=None, help="Glob pattern(s) on task names, comma-separated (default: all).")
@click.option("--run", "run_label", default=None, help="Run label recorded in every sidecar.")
@click.option("--max-files", default=None, help="Keep at most this many profiles in the folder.")
@click.option("--max-bytes", default=None, help="Keep at most this many bytes of profiles, e.g. 500M.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(command: tuple[str, ...], **options: Any) -> None:
    """Run COMMAND (after `--`) with celerylab's producer capture in its Python processes: every
    delay/apply_async/send_task is sampled and profiled, and every message carries its publish time so that
    workers can tell queue wait.  The application needs no change."""
    from ..capture import _config

    env = dict(os.environ, CELERYLAB_PRODUCER="1")
    var_of = {key: var for var, key in _config.ENV.items()}  # install() keyword -> CELERYLAB_* variable
    for name, value in options.items():
        if value is not None:
            env[var_of["run" if name == "run_label" else name]] = str(value)
    try:
        _config.producer_settings(environ=env)  # a bad value fails here, not silently in the child
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    boot = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "capture", "_boot")
    env["PYTHONPATH"] = os.pathsep.join([boot, *[p for p in [env.get("PYTHONPATH", "")] if p]])
    exe = shutil.which(command[0], path=env.get("PATH"))
    if exe is None:
        raise click.UsageError(f"command not found: {command[0]}")
    sys.stdout.flush()
    os.execve(exe, list(command), env)
