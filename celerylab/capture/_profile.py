"""One cProfile profiler per task, started and stopped without ever raising into the task.

Standard library only (no relative imports), so that tests can load this file alone under another Python.

Python 3.11 keeps one ``sys.setprofile`` hook per *thread*: each task thread can have its own profiler, but a
profiler that something else installed on this thread would be clobbered, so we step aside.  Python 3.12+
implements cProfile on ``sys.monitoring``, which allows one profiler per *process*: a second ``enable()`` raises
``ValueError("Another profiling tool is already active")``; with the threads pool concurrent tasks therefore
cannot all be profiled.  In both cases :func:`start` returns ``None`` and the caller counts a skipped task.

Green pools (gevent, eventlet): every task runs in its own greenlet and all of them share one thread, hence one
``sys.setprofile`` hook.  A task started in a greenlet other than its thread's main greenlet gets its own profiler
which is *hooked only while its greenlet runs*: a ``greenlet.settrace`` callback, called on every switch with
tracing suspended (so it records nothing itself), installs the target greenlet's profiler or removes the hook.  A
greenlet's profiler keeps its call stack across switches, so a task that yields 100 times is still one call of
its entry function, and none of the other greenlets' calls is in it.  Time a task spends switched out counts in
the call that switched (``greenlet.switch``, e.g. under ``gevent.sleep``), as a blocking call's would.  The same
callback adds up each greenlet's thread CPU time, so its CPU time is its own (:func:`cpu_time`).  Python 3.11
only (3.12+ allows one cProfile per process: concurrent greenlets are then skipped like concurrent threads).
"""

from __future__ import annotations

import cProfile
import marshal
import sys
import time
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


class _Slot:
    """A greenlet's profiler and its thread CPU time while it ran."""

    __slots__ = ("cpu", "greenlet", "prof", "since")

    def __init__(self, greenlet: Any, prof: Profile) -> None:
        self.greenlet = greenlet
        self.prof = prof
        self.cpu = 0.0
        self.since: float | None = None


class Profile(cProfile.Profile):
    """A ``cProfile.Profile`` that knows the greenlet it profiles (``None``: the whole thread)."""

    slot: _Slot | None = None


#: greenlet -> its task's profiler slot (only greenlets running a profiled task)
_slots: dict[Any, _Slot] = {}


class _Tracer:
    """The ``greenlet.settrace`` callback of one thread: hooks the target greenlet's profiler on every switch."""

    __slots__ = ("previous",)

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, event: str, args: Any) -> None:
        if event in ("switch", "throw"):
            try:  # noqa: SIM105 (hot path: cheaper than contextlib.suppress)
                _switch(*args)
            except Exception:  # never into the switch, that is into the app: the profile is then incomplete
                pass
        if self.previous is not None:
            self.previous(event, args)


def _switch(origin: Any, target: Any) -> None:
    now = None
    out = _slots.get(origin)
    if out is not None:
        if out.since is not None:
            now = time.thread_time()
            out.cpu += now - out.since
            out.since = None
        if sys.getprofile() is out.prof:
            sys.setprofile(None)
    into = _slots.get(target)
    if into is not None:
        into.prof.enable()
        into.since = time.thread_time() if now is None else now


def _green_current() -> Any:
    """The current greenlet when it is not its thread's main greenlet (a green pool's task), else ``None``."""
    gl = sys.modules.get("greenlet")
    if gl is None:
        return None
    g = gl.getcurrent()
    return g if g.parent is not None else None


def _ensure_tracer() -> None:
    import greenlet

    if not isinstance(greenlet.gettrace(), _Tracer):
        greenlet.settrace(_Tracer(greenlet.gettrace()))


def start() -> Profile | None:
    """A started profiler, or ``None`` when another profiler is active (never raises for that reason)."""
    if profiler_busy():
        return None
    prof = Profile()
    g = None if _HAS_MONITORING else _green_current()  # 3.12+: one profiler per process, no switching
    if g is not None:
        _ensure_tracer()
        slot = prof.slot = _slots[g] = _Slot(g, prof)
    try:
        prof.enable()
    except ValueError:  # 3.12+: "Another profiling tool is already active" (a race with another thread)
        stop(prof)
        return None
    if g is not None:
        slot.since = time.thread_time()
    return prof


def stop(prof: cProfile.Profile) -> None:
    """Disable ``prof``; safe to call twice."""
    prof.disable()
    slot: _Slot | None = getattr(prof, "slot", None)
    if slot is not None:
        if slot.since is not None:
            slot.cpu += time.thread_time() - slot.since
            slot.since = None
        g = slot.greenlet
        if _slots.get(g) is slot:
            del _slots[g]


def cpu_time(prof: Any) -> float | None:
    """The thread CPU seconds of a greenlet's task while it ran (after :func:`stop`); ``None`` for other tasks."""
    slot = getattr(prof, "slot", None)
    return None if slot is None else slot.cpu


def dump(prof: cProfile.Profile) -> bytes:
    """The bytes ``Profile.dump_stats`` would write (a marshal dump of the pstats dict)."""
    prof.create_stats()
    return marshal.dumps(prof.stats)
