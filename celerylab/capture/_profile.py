"""One cProfile profiler per task, started and stopped without ever raising into the task.

Standard library only (no relative imports), so that tests can load this file alone under another Python.

Python 3.11 keeps one ``sys.setprofile`` hook per *thread*: each task thread can have its own profiler, but a
profiler that something else installed on this thread would be clobbered, so we step aside.  Python 3.12+
implements cProfile on ``sys.monitoring``, which allows one profiler per *process*: a second ``enable()`` raises
``ValueError("Another profiling tool is already active")``; with the threads pool concurrent tasks therefore
cannot all be profiled.  In both cases :func:`start` returns ``None`` and the caller counts a skipped task.
"""

from __future__ import annotations

import cProfile
import marshal
import sys
from typing import Any

_HAS_MONITORING = sys.version_info >= (3, 12)


def profiler_busy() -> bool:
    """Whether another profiler is active, so that starting ours would fail or clobber it."""
    if sys.getprofile() is not None:
        return True
    if _HAS_MONITORING:
        mon: Any = getattr(sys, "monitoring", None)
        if mon is not None and mon.get_tool(mon.PROFILER_ID) is not None:
            return True
    return False


def start() -> cProfile.Profile | None:
    """A started profiler, or ``None`` when another profiler is active (never raises for that reason)."""
    if profiler_busy():
        return None
    prof = cProfile.Profile()
    try:
        prof.enable()
    except ValueError:  # 3.12+: "Another profiling tool is already active" (a race with another thread)
        return None
    return prof


def stop(prof: cProfile.Profile) -> None:
    """Disable ``prof``; safe to call twice."""
    prof.disable()


def dump(prof: cProfile.Profile) -> bytes:
    """The bytes ``Profile.dump_stats`` would write (a marshal dump of the pstats dict)."""
    prof.create_stats()
    return marshal.dumps(prof.stats)
