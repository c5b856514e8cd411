"""Worker integration: ``--celerylab-*`` flags on ``celery worker`` and the bootstep that installs capture.

Call :func:`register` once on the app (``celerylab.capture.register(app)``); then ops switch capture on per
worker with flags or ``CELERYLAB_*`` environment variables, without another code change.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

from . import _config
from ._core import Capture, _pool_name, install

logger = logging.getLogger("celerylab.capture")

#: flag -> (install() keyword, help)
FLAGS: dict[str, tuple[str, str]] = {
    "--celerylab-dir": ("directory", "Write one .prof + .json per profiled task here (switches capture on)."),
    "--celerylab-sample": ("sample_rate", "Fraction of matching tasks to profile, 0..1 (default 1)."),
    "--celerylab-tasks": ("tasks", "Glob pattern(s) on task names, comma-separated (default: all tasks)."),
    "--celerylab-run": ("run", "Run label recorded in every sidecar (default $CELERYLAB_RUN)."),
    "--celerylab-memory": ("memory", "off, rss (default) or tracemalloc."),
    "--celerylab-sql": ("sql", "Record SQL statements: 1 (default) or 0."),
    "--celerylab-max-files": ("max_files", "Keep at most this many profiles (oldest deleted first)."),
    "--celerylab-max-bytes": ("max_bytes", "Keep at most this many bytes of profiles, e.g. 500M."),
}


def _opt_name(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


class CaptureStep(bootsteps.Step):
    """Installs capture in the worker's main process (pool processes fork from it and inherit the receivers)."""

    name = "celerylab.capture"

    def __init__(self, parent: Any, **options: Any) -> None:
        super().__init__(parent, **options)
        self.capture: Capture | None = None
        try:
            flags = {FLAGS[f][0]: options.get(_opt_name(f)) for f in FLAGS}
            conf = _config.settings(flags)
        except ValueError as e:
            logger.error("celerylab capture: not installed, bad setting: %s", e)
            return
        if conf:
            self.capture = install(parent.app, pool=_pool_name(getattr(parent, "pool_cls", None)), **conf)
            logger.info("celerylab capture: profiling into %s (sample rate %s, tasks %s, run %s)",
                        self.capture.directory, self.capture.sample_rate, self.capture.tasks or "all",
                        self.capture.run)  # fmt: skip

    def shutdown(self, parent: Any) -> None:
        if self.capture is not None:
            self.capture.uninstall()


def register(app: Any) -> None:
    """Add the ``--celerylab-*`` options to ``celery worker`` for ``app`` and the bootstep that reads them.

    Capture starts only when ``--celerylab-dir`` or ``$CELERYLAB_DIR`` is given.  Safe to call twice.
    """
    from click import Option

    opts = app.user_options["worker"]
    have = {n for o in opts for n in getattr(o, "opts", ())}
    for flag, (_key, help_text) in FLAGS.items():
        if flag not in have:
            opts.add(Option([flag], default=None, help=help_text))
    app.steps["worker"].add(CaptureStep)
