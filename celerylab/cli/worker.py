"""``celerylab worker``: run an unmodified app's ``celery worker`` with capture installed in every pool process.

``celerylab worker --dir DIR [--sample R] [--tasks GLOB] [--run LABEL] -- -A proj [celery worker arguments]``

The command connects capture's signal receivers for *every* app in this process (celery's signals are global),
then hands over to celery's own ``main()`` in the same process: prefork pool processes fork from it and inherit
the receivers, threads and solo pools run in it.  The app needs no change.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..capture import _config

#: celery's global options that take a value (they come before the sub-command)
_GLOBAL_WITH_VALUE = {"-A", "--app", "-b", "--broker", "--result-backend", "--loader", "--config", "--workdir"}
_GLOBAL_FLAGS = {"-C", "--no-color", "-q", "--quiet", "--skip-checks"}


def celery_argv(args: list[str] | tuple[str, ...]) -> list[str]:
    """``celery`` arguments with the ``worker`` sub-command inserted after the global options if missing.

    >>> celery_argv(["-A", "proj", "-l", "INFO"])
    ['-A', 'proj', 'worker', '-l', 'INFO']
    """
    args = list(args)
    if "worker" in args:
        return args
    i = 0
    while i < len(args):
        a = args[i]
        if a in _GLOBAL_WITH_VALUE:
            i += 2
        elif (
            a in _GLOBAL_FLAGS
            or any(a.startswith(g + "=") for g in _GLOBAL_WITH_VALUE if g.startswith("--"))
            or (a.startswith("-A") and len(a) > 2)
        ):
            i += 1
        else:
            break
    return [*args[:i], "worker", *args[i:]]


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    epilog="Example: celerylab worker --dir /var/tmp/profiles --sample 0.05 --tasks 'billing.*' "
    "-- -A proj -P prefork -c 4",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    help="Capture directory (default $CELERYLAB_DIR).",
)
@click.option(
    "--sample",
    "sample_rate",
    type=click.FloatRange(0, 1),
    default=None,
    help="Fraction of matching tasks to profile (default $CELERYLAB_SAMPLE or 1).",
)
@click.option("--tasks", multiple=True, help="Glob on task names; repeat or comma-separate (default: all).")
@click.option("--run", default=None, help="Run label, e.g. a release or git SHA (default $CELERYLAB_RUN).")
@click.option(
    "--memory",
    type=click.Choice(["off", "rss", "tracemalloc"]),
    default=None,
    help="Memory metadata (default $CELERYLAB_MEMORY or rss).",
)
@click.option("--sql/--no-sql", default=None, help="Record SQL statements (default on, $CELERYLAB_SQL).")
@click.option("--max-files", type=click.IntRange(1), default=None, help="Retention: keep at most N profiles.")
@click.option("--max-bytes", default=None, help="Retention: keep at most this many bytes, e.g. 500M.")
@click.option("--record-args", is_flag=True, default=None, help="Record redacted, truncated task arguments.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...], **flags: Any) -> None:
    """Start `celery worker` for an app with capture installed (no change to the app).

    Everything after `--` goes to celery: `-A proj [worker options]`.
    """
    try:
        conf = _config.settings(flags)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    if not conf:
        raise click.UsageError("give --dir DIR (or set CELERYLAB_DIR)")
    if not celery_args:
        raise click.UsageError("give the celery arguments after --, e.g. celerylab worker --dir D -- -A proj")
    from .. import _patch

    # a gevent/eventlet pool named on the command line or in $CELERY_WORKER_POOL was patched for in main();
    # one named only in the app's configuration is seen here, and the command starts again with -P
    _patch.reexec_for_configured_pool(_patch.app_from_args(celery_args), celery_args)
    from ..capture._core import install

    install(None, **conf)
    from celery.bin.celery import main as celery_main

    sys.argv = ["celery", *celery_argv(celery_args)]
    sys.exit(celery_main())
