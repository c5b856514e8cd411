"""Memory metadata: resident set size before/after a task and, opt-in, tracemalloc's peak and top sites."""

from __future__ import annotations

import os
import threading
import tracemalloc
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM = "/proc/self/statm"
_HAVE_STATM = os.path.exists(_STATM)


def rss() -> int | None:
    """Current resident set size in bytes (Linux ``/proc``); ``None`` where the platform does not say."""
    if not _HAVE_STATM:
        return None
    try:
        with open(_STATM, "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


_owner_lock = threading.Lock()
_owner: object | None = None
_EXCLUDE = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, os.path.join(os.path.dirname(os.path.abspath(__file__)), "*")),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
)


def trace_start(token: object, frames: int = 1) -> bool:
    """Start tracemalloc for the task ``token``; ``False`` when tracing is already on (another task in this
    process, or the application's own tracing, which we leave alone)."""
    global _owner
    with _owner_lock:
        if _owner is not None or tracemalloc.is_tracing():
            return False
        _owner = token
    tracemalloc.start(frames)
    return True


def trace_stop(token: object, top: int = 10) -> dict[str, Any]:
    """Stop the tracing ``token`` started; ``peak_traced`` and the ``top`` sites by live size at the end."""
    global _owner
    try:
        _, peak = tracemalloc.get_traced_memory()
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        with _owner_lock:
            if _owner is token:
                _owner = None
    stats = snapshot.filter_traces(_EXCLUDE).statistics("lineno")[:top]
    return {
        "peak_traced": peak,
        "top": [
            {"file": s.traceback[0].filename, "line": s.traceback[0].lineno, "size": s.size, "count": s.count}
            for s in stats
        ],
    }


def trace_abort(token: object) -> None:
    """Stop tracing without a snapshot (the task was discarded)."""
    global _owner
    with _owner_lock:
        if _owner is not token:
            return
        _owner = None
    tracemalloc.stop()
