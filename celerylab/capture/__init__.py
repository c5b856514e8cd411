"""Capture: profile Celery tasks inside worker processes (stdlib + celery only; never pandas).

* :func:`install` — ``install(app, directory, *, sample_rate=1.0, tasks=None, run=None, memory="rss", sql=True,
  max_files=None, max_bytes=None, record_args=False)`` returns a :class:`Capture` with ``uninstall()``;
* :func:`register` — ``--celerylab-*`` flags on ``celery worker`` + ``CELERYLAB_*`` environment variables;
* ``celerylab worker --dir DIR -- -A proj`` (:mod:`celerylab.capture.cli`) — capture for an app nobody may edit.

Per profiled task: ``<task_name>.<task_id>.prof`` and its ``.json`` sidecar (``celerylab.task/1``; the name is made
portable and bounded by :func:`celerylab._files.capture_stem`, a redelivered run adds ``.a2``...), both written to
a hidden temporary name and moved into place, the sidecar first.  See docs/capture.md.
"""

from __future__ import annotations

from ._config import ENV, settings
from ._core import SCHEMA, Capture, Counts, active, install
from ._sql import normalize
from .worker import CaptureStep, register

__all__ = ["ENV", "SCHEMA", "Capture", "CaptureStep", "Counts", "active", "install", "normalize", "register",
           "settings"]  # fmt: skip
