"""What worker capture (:class:`~._core.Capture`) and producer capture (:class:`~._producer.ProducerCapture`)
share: settings checks, task-name globs, counters, the once-per-kind error log, the static sidecar fields, and
accounting for what was written under the retention caps."""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import platform
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import celery

from . import _writer

logger = logging.getLogger("celerylab.capture")


@dataclass
class Counts:
    """Per-process counters (each pool process has its own)."""

    profiled: int = 0
    written: int = 0
    sampled_out: int = 0
    skipped_busy: int = 0
    errors: int = 0
    deleted: int = 0
    by_error: dict[str, int] = field(default_factory=dict)


def text_of(value: Any, how: Any = str) -> str:
    """``str(value)`` (or ``how(value)``) that never raises: ``<unprintable Type>`` when it does."""
    try:
        text = how(value)
        if isinstance(text, str):
            return text
    except Exception:
        pass
    try:
        return f"<unprintable {type(value).__qualname__}>"
    except Exception:
        return "<unprintable>"


class Recorder:
    """The part of an installation that does not depend on which side it profiles.  ``affects`` names what an
    error of ours never touches, in the log line (``task`` or ``publish``)."""

    affects = "task"

    def __init__(self, directory: str | os.PathLike[str] | None, *, sample_rate: float,
                 tasks: str | list[str] | tuple[str, ...] | None, run: str | None, max_files: int | None,
                 max_bytes: int | None, counts: Counts) -> None:  # fmt: skip
        if not 0.0 <= float(sample_rate) <= 1.0:
            raise ValueError(f"sample_rate must be between 0 and 1, not {sample_rate!r}")
        for name, cap in (("max_files", max_files), ("max_bytes", max_bytes)):
            if cap is not None and int(cap) < 1:
                raise ValueError(f"{name} must be a positive integer, not {cap!r}")
        if isinstance(tasks, str):
            tasks = [t for t in (p.strip() for p in tasks.split(",")) if t]
        self.directory = os.path.abspath(os.fspath(directory)) if directory is not None else None
        self.sample_rate = float(sample_rate)
        self.tasks: tuple[str, ...] | None = tuple(tasks) if tasks else None
        self.run = run if run is not None else (os.environ.get("CELERYLAB_RUN") or None)
        self.counts = counts
        self.retention = _writer.Retention(self.directory or "", max_files, max_bytes)
        self._retention_lock = threading.Lock()
        self._match: dict[str, bool] = {}
        self._logged: set[str] = set()
        self._static = {
            "python": platform.python_version(),
            "celery": celery.__version__,
            "sys_prefixes": sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}),
        }

    def _prepare_directory(self) -> None:
        """Make the directory and clear what killed writers left there (an error is counted, never raised)."""
        if self.directory is None:
            return
        try:
            os.makedirs(self.directory, exist_ok=True)
            _writer.remove_stale_tmp(self.directory)
        except OSError as e:
            self._fail("directory", e)

    def _wanted(self, name: str) -> bool:
        """Whether the task name matches the ``tasks`` globs (all when there are none); cached per name."""
        ok = self._match.get(name)
        if ok is None:
            ok = self._match[name] = self.tasks is None or any(fnmatch.fnmatchcase(name, p) for p in self.tasks)
        return ok

    def _fail(self, what: str, exc: BaseException) -> None:
        """Count the error; log it once per kind (what + exception type) per process."""
        key = f"{what}:{type(exc).__name__}"
        self.counts.errors += 1
        self.counts.by_error[key] = self.counts.by_error.get(key, 0) + 1
        if key not in self._logged:
            self._logged.add(key)
            with contextlib.suppress(Exception):
                logger.warning("celerylab capture: %s failed (%s: %s); the %s is not affected, further %s errors "
                               "are counted silently", what, type(exc).__name__, text_of(exc), self.affects,
                               key)  # fmt: skip

    def _log_once(self, key: str, msg: str, *args: Any) -> None:
        if key not in self._logged:
            self._logged.add(key)
            logger.warning(msg, *args)

    def _written(self, nbytes: int) -> None:
        """Count one file pair of ``nbytes`` written, and enforce the retention caps (one scan at a time)."""
        self.counts.written += 1
        if self.retention.enabled:
            with self._retention_lock:
                before = self.retention.deleted
                self.retention.added(nbytes)
                self.counts.deleted += self.retention.deleted - before
