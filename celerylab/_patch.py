"""``celerylab worker`` with a gevent or eventlet pool: monkey-patch first, as celery's own entry point does.

``celery``'s ``__main__`` calls :func:`celery.maybe_patch_concurrency` before it imports anything else, because
sockets, locks and threads created before ``gevent.monkey.patch_all()`` / ``eventlet.monkey_patch()`` stay
blocking and the worker hangs.  ``celerylab worker`` must do the same before it imports the app (and before
capture, whose locks and thread-locals must be the patched ones).  Standard library only until it patches.

The pool is found where celery looks for it, in this order: ``-P NAME`` / ``-PNAME`` / ``--pool NAME`` /
``--pool=NAME`` among the celery arguments, then ``$CELERY_WORKER_POOL`` (celery's command line reads its options
from ``CELERY_<COMMAND>_<OPTION>``).  A pool set only in the app's configuration (``worker_pool = "gevent"``) is
known only once the app is imported; :func:`reexec_for_configured_pool` then starts the command again with
``-P NAME`` so that the new process patches before it imports the app.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

#: Pools that need the standard library monkey-patched before anything else is imported.
GREEN_POOLS = ("gevent", "eventlet")
#: Set in the environment of a re-executed command (so that it never re-executes twice).
REEXEC_ENV = "_CELERYLAB_WORKER_REEXEC"


def pool_from_args(args: Sequence[str]) -> str | None:
    """The value of celery's ``-P``/``--pool`` option in ``args`` (the last one wins, as in click).

    >>> pool_from_args(["-A", "proj", "-Pgevent"]), pool_from_args(["--pool=eventlet"]), pool_from_args(["-c", "2"])
    ('gevent', 'eventlet', None)
    """
    pool: str | None = None
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-P", "--pool"):
            if i + 1 < len(args):
                pool = args[i + 1]
            i += 2
            continue
        if a.startswith("--pool="):
            pool = a.split("=", 1)[1]
        elif a.startswith("-P") and not a.startswith("--"):
            pool = a[2:].lstrip("=")
        i += 1
    return pool or None


def requested_pool(args: Sequence[str], environ: dict[str, str] | None = None) -> str | None:
    """The pool the celery arguments ``args`` (or ``$CELERY_WORKER_POOL``) ask for, if any."""
    env = os.environ if environ is None else environ
    return pool_from_args(args) or (env.get("CELERY_WORKER_POOL") or "").strip() or None


#: The pool this process patched for (it patches at most once).
patched: str | None = None


def patch_for(pool: str | None) -> bool:
    """Monkey-patch for ``pool`` exactly as ``celery``'s entry point does; whether it patched."""
    global patched
    if pool not in GREEN_POOLS:
        return False
    if patched is None:
        from celery import maybe_patch_concurrency

        maybe_patch_concurrency(["celery", "-P", pool])
        patched = pool
    return True


def worker_args(argv: Sequence[str]) -> list[str] | None:
    """The arguments after ``worker`` when ``argv`` (``celerylab``'s, without the program) runs ``worker``."""
    for i, a in enumerate(argv):
        if a == "worker":
            return list(argv[i + 1 :])
        if not a.startswith("-"):
            return None  # another command
    return None


def maybe_patch(argv: Sequence[str]) -> str | None:
    """Called first thing by ``celerylab``'s ``main()``: patch when ``argv`` runs ``worker`` with a green pool."""
    ORIGINAL_ARGV[:] = argv
    args = worker_args(argv)
    if args is None:
        return None
    pool = requested_pool(args)
    return pool if patch_for(pool) else None


def invoked_as_celerylab(argv0: str | None = None) -> bool:
    """Whether this process is the ``celerylab`` command (console script or ``python -m celerylab.cli``)."""
    a0 = sys.argv[0] if argv0 is None else argv0
    return os.path.basename(a0) in ("celerylab", "-m") or a0.replace(os.sep, "/").endswith("celerylab/cli/__main__.py")


def early_patch() -> str | None:
    """Run by ``celerylab.cli`` when it is imported, before it imports click (which imports threading), as celery's
    ``__main__`` patches before it imports anything: only when this process is ``celerylab worker``."""
    if not invoked_as_celerylab():
        return None
    return maybe_patch(sys.argv[1:])


def reexec_for_configured_pool(app_name: str | None, celery_args: Sequence[str]) -> None:
    """When no pool was given but the app's configuration asks for gevent/eventlet, start again with ``-P``.

    Imports the app (to read ``worker_pool``), which is harmless when the pool is not a green one: celery imports
    it next anyway.  Does nothing when the command already re-executed once or the app cannot be imported here
    (celery reports that itself).
    """
    if not app_name or requested_pool(celery_args) or os.environ.get(REEXEC_ENV):
        return
    try:
        from celery.app.utils import find_app

        app = find_app(app_name)
        pool = app.conf.worker_pool
    except Exception:
        return
    if not isinstance(pool, str) or pool not in GREEN_POOLS:
        return
    os.environ[REEXEC_ENV] = "1"
    argv = [sys.executable, "-m", "celerylab.cli", *_own_argv(), "-P", pool]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


def app_from_args(args: Sequence[str], environ: dict[str, str] | None = None) -> str | None:
    """The value of celery's ``-A``/``--app`` option (or ``$CELERY_APP``).

    >>> app_from_args(["-A", "proj", "worker"]), app_from_args(["--app=proj.celery"]), app_from_args(["-Aproj"])
    ('proj', 'proj.celery', 'proj')
    """
    env = os.environ if environ is None else environ
    app: str | None = None
    for i, a in enumerate(args):
        if a in ("-A", "--app") and i + 1 < len(args):
            app = args[i + 1]
        elif a.startswith("--app="):
            app = a.split("=", 1)[1]
        elif a.startswith("-A") and len(a) > 2 and not a.startswith("--"):
            app = a[2:].lstrip("=")
    return app or env.get("CELERY_APP") or None


def _own_argv() -> list[str]:
    return list(ORIGINAL_ARGV) if ORIGINAL_ARGV else list(sys.argv[1:])


#: ``celerylab``'s arguments as main() received them (sys.argv is rewritten for celery's main()).
ORIGINAL_ARGV: list[str] = []
