"""Capture: profile Celery tasks inside worker processes, and publishing in producers (stdlib + celery only).

* :func:`install` — ``install(app, directory, *, sample_rate=1.0, tasks=None, run=None, memory="rss", sql=True,
  max_files=None, max_bytes=None, record_args=False)`` returns a :class:`Capture` with ``uninstall()``;
* :func:`register` — ``--celerylab-*`` flags on ``celery worker`` + ``CELERYLAB_*`` environment variables;
* ``celerylab worker --dir DIR -- -A proj`` (:mod:`celerylab.cli.worker`) — capture for an app nobody may edit;
* :func:`install_producer` — profiled publishing (``apply_async``/``delay``/``send_task``/canvas) and the timing
  header, for every app in a producer process; ``celerylab run --dir DIR -- <command>``,
  ``CELERYLAB_PRODUCER=1`` with :mod:`celerylab.capture.autostart`, or the Django app
  ``celerylab.capture.django`` turn it on without an app change.

Per profiled task: ``<task_name>.<task_id>.prof`` and its ``.json`` sidecar (``celerylab.task/1``; the name is made
portable and bounded by :func:`celerylab._files.capture_stem`, a redelivered run adds ``.a2``...), both written to
a hidden temporary name and moved into place, the sidecar first.  See docs/capture.md.
"""

from __future__ import annotations

from ._base import Counts
from ._config import ENV, settings
from ._core import SCHEMA, Capture, active, install
from ._producer import ProducerCapture, ProducerCounts, active_producer, install_producer
from ._sql import normalize
from .worker import CaptureStep, register

__all__ = ["ENV", "SCHEMA", "Capture", "CaptureStep", "Counts", "ProducerCapture", "ProducerCounts", "active",
           "active_producer", "install", "install_producer", "normalize", "register", "settings"]  # fmt: skip
