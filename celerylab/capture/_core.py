"""``install()``: signal receivers that profile sampled tasks and write ``.prof`` + sidecar pairs."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import os
import platform
import random
import reprlib
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from celery import signals

from .._files import SCHEMA, capture_stem
from . import _memory, _profile, _redact, _sql, _timing, _writer
from ._base import Counts, Recorder, text_of

logger = logging.getLogger("celerylab.capture")

MEMORY_MODES = ("off", "rss", "tracemalloc")
MAX_MESSAGE = 1000
MAX_REPR = 200
_SECRET = _redact.SECRET_NAME
#: How many further file sets of one task run (same name, id and retry number: a redelivery) capture writes.
MAX_ATTEMPTS = 100

_active: list[Capture] = []


@dataclass
class _Task:
    """What a profiled task carries between prerun and postrun."""

    task_id: str
    task_name: str
    task: Any
    wall0: float
    perf0: float
    cpu0: float
    rss0: int | None
    args: Any = None
    kwargs: Any = None
    profiler: Any = None
    sql: _sql.SqlRecorder | None = None
    traced: bool = False
    exception: dict[str, str] | None = None
    notes: list[str] = field(default_factory=list)
    in_body: bool = False  # the task's body (its ``run``) is running under the wrapper of :func:`_wrap_run`


class Capture(Recorder):
    """A live installation; :meth:`uninstall` disconnects every receiver.  Create it with :func:`install`."""

    def __init__(self, app: Any, directory: str | os.PathLike[str], *, sample_rate: float = 1.0,
                 tasks: str | list[str] | tuple[str, ...] | None = None, run: str | None = None,
                 memory: str | bool | None = "rss", sql: bool = True, max_files: int | None = None,
                 max_bytes: int | None = None, record_args: bool = False, top: int = 20,
                 pool: str | None = None, redact: str | list[str] | tuple[str, ...] | None = None) -> None:  # fmt: skip
        if memory is True:
            memory = "rss"
        if memory in (None, False, ""):
            memory = "off"
        if memory not in MEMORY_MODES:
            raise ValueError(f"memory must be one of {', '.join(MEMORY_MODES)}, not {memory!r}")
        super().__init__(directory, sample_rate=sample_rate, tasks=tasks, run=run, max_files=max_files,
                         max_bytes=max_bytes, counts=Counts())  # fmt: skip
        self.directory: str = self.directory or ""
        self.app = app
        self.memory = str(memory)
        self.sql = bool(sql)
        self.record_args = bool(record_args)
        self.top = int(top)
        self.pool = pool
        self.redactor = _redact.Redactor(_redact.patterns_from(redact))
        # the task being profiled, per context: a thread (threads pool) or a greenlet (gevent, eventlet)
        self._current: contextvars.ContextVar[_Task | None] = contextvars.ContextVar(
            f"celerylab_capture_{id(self):x}", default=None
        )
        self._uid = f"celerylab.capture.{id(self):x}"
        self._installed = False

    # ------------------------------------------------------------------------------------------- lifecycle
    def _install(self) -> None:
        self._prepare_directory()
        for sig, fn, name in self._receivers():
            sig.connect(fn, weak=False, dispatch_uid=f"{self._uid}.{name}")
        self._installed = True
        if self.app is not None and getattr(self.app, "finalized", False):
            wrap_tasks(self.app)  # tasks whose tracer is built from now on end their profile with their body

    def _receivers(self) -> list[tuple[Any, Any, str]]:
        return [
            (signals.task_prerun, self._on_prerun, "prerun"),
            (signals.task_postrun, self._on_postrun, "postrun"),
            (signals.task_failure, self._on_failure, "failure"),
            (signals.task_retry, self._on_retry, "retry"),
            (signals.task_revoked, self._on_revoked, "revoked"),
            (signals.task_received, self._on_received, "received"),
            (signals.worker_init, self._on_worker_init, "worker_init"),
            (signals.worker_process_shutdown, self._on_shutdown, "process_shutdown"),
            (signals.worker_shutdown, self._on_shutdown, "worker_shutdown"),
        ]

    def uninstall(self) -> None:
        """Disconnect all receivers; a task being profiled in this thread is discarded."""
        for sig, _fn, name in self._receivers():
            sig.disconnect(dispatch_uid=f"{self._uid}.{name}")
        self._discard()
        self._installed = False
        if self in _active:
            _active.remove(self)

    @property
    def installed(self) -> bool:
        """Whether the receivers are connected."""
        return self._installed

    def __repr__(self) -> str:
        return f"<celerylab Capture {self.directory!r} sample_rate={self.sample_rate} tasks={self.tasks}>"

    # ----------------------------------------------------------------------------------------------- errors
    # -------------------------------------------------------------------------------------------- receivers
    def _on_prerun(self, sender: Any = None, task_id: Any = None, task: Any = None, args: Any = None,
                   kwargs: Any = None, **_: Any) -> None:  # fmt: skip
        try:
            if task is None or (self.app is not None and getattr(task, "app", None) is not self.app):
                return
            if not self._wanted(task.name):
                return
            if self.sample_rate < 1.0 and random.random() >= self.sample_rate:
                self.counts.sampled_out += 1
                return
            self._begin(task, str(task_id), args, kwargs)
        except Exception as e:
            self._discard()
            self._fail("prerun", e)

    def _begin(self, task: Any, task_id: str, args: Any, kwargs: Any) -> None:
        if self._current.get() is not None:  # a postrun never came (should not happen)
            self._discard()
        if _profile.profiler_busy():
            self._skip_busy()
            return
        cpu = _cpu_clock(self._pool())
        t = _Task(task_id, task.name, task, time.time(), time.perf_counter(), cpu(),
                  _memory.rss() if self.memory != "off" else None)  # fmt: skip
        if self.record_args:
            t.args, t.kwargs = args, kwargs
        self._current.set(t)
        if self.sql:
            _sql.ensure_hooks()
            t.sql = _sql.state.rec = _sql.SqlRecorder()
        if self.memory == "tracemalloc":
            t.traced = _memory.trace_start(t)
        t.profiler = _profile.start()  # last: our own set-up is not in the profile
        if t.profiler is None:
            self._discard()
            self._skip_busy()

    def _skip_busy(self) -> None:
        self.counts.skipped_busy += 1
        self._log_once("busy", "celerylab capture: another profiler is active in this %s (Python %s allows %s); "
                       "tasks that meet it are skipped and counted",
                       "thread" if sys.version_info < (3, 12) else "process", platform.python_version(),
                       "one per thread" if sys.version_info < (3, 12) else "one per process")  # fmt: skip

    def _discard(self) -> None:
        """Drop the task being profiled in this thread, if any: profiler off, recorders detached."""
        t: _Task | None = self._current.get()
        self._current.set(None)
        if t is None:
            return
        if t.profiler is not None:
            _profile.stop(t.profiler)
        if t.sql is not None and _sql.state.rec is t.sql:
            _sql.state.rec = None
        if t.traced:
            _memory.trace_abort(t)

    def _on_failure(self, sender: Any = None, task_id: Any = None, exception: Any = None, **_: Any) -> None:
        try:
            t = self._current.get()
            if t is not None and t.task_id == str(task_id) and exception is not None:
                t.exception = _exception(exception, self.redactor, t.notes)
        except Exception as e:
            self._fail("task_failure", e)

    def _on_retry(self, sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
        try:
            t = self._current.get()
            if t is not None and request is not None and t.task_id == str(getattr(request, "id", None)):
                inner = getattr(reason, "exc", None)  # celery.exceptions.Retry wraps the reason for the retry
                t.exception = _exception(inner if isinstance(inner, BaseException) else reason, self.redactor,
                                         t.notes)  # fmt: skip
        except Exception as e:
            self._fail("task_retry", e)

    def _on_revoked(self, sender: Any = None, request: Any = None, **_: Any) -> None:
        try:
            t = self._current.get()
            if t is not None and request is not None and t.task_id == str(getattr(request, "id", None)):
                self._discard()
        except Exception as e:
            self._fail("task_revoked", e)

    def _on_received(self, sender: Any = None, request: Any = None, **_: Any) -> None:
        """In the consumer: when the message arrived (every task, sampled or not: the decision comes later)."""
        try:
            _timing.stamp_received(request)
        except Exception as e:
            self._fail("received", e)

    def _on_worker_init(self, sender: Any = None, **_: Any) -> None:
        try:
            if self.pool is None and sender is not None:
                self.pool = _pool_name(getattr(sender, "pool_cls", None))
            app = getattr(sender, "app", None)
            if app is not None and (self.app is None or app is self.app):
                wrap_tasks(app)  # before the pool and the consumer build the tasks' tracers
        except Exception as e:
            self._fail("worker_init", e)

    def _on_shutdown(self, **_: Any) -> None:
        c = self.counts
        if c.profiled or c.skipped_busy or c.errors:
            with contextlib.suppress(Exception):
                logger.info("celerylab capture: pid %s profiled %d tasks, wrote %d, sampled out %d, skipped %d "
                            "(profiler busy), %d errors %s, deleted %d old profiles", os.getpid(), c.profiled,
                            c.written, c.sampled_out, c.skipped_busy, c.errors, c.by_error or "",
                            c.deleted)  # fmt: skip

    def _on_postrun(self, sender: Any = None, task_id: Any = None, task: Any = None, retval: Any = None,
                    state: Any = None, **_: Any) -> None:  # fmt: skip
        t: _Task | None = self._current.get()
        if t is None:
            return
        prof = t.profiler
        try:
            if prof is not None:
                _profile.stop(prof)
            perf1 = time.perf_counter()
            cpu1 = _cpu_clock(self._pool())()
            wall1 = time.time()
            self._current.set(None)
            if t.sql is not None and _sql.state.rec is t.sql:
                _sql.state.rec = None
                _sql.ensure_hooks()  # a library first imported by this task is hooked from the next one on
            if t.task_id != str(task_id):
                if t.traced:
                    _memory.trace_abort(t)
                return
            memory: dict[str, Any] | None = None
            if self.memory != "off":
                memory = {"rss_before": t.rss0, "rss_after": _memory.rss(), "peak_traced": None, "top": []}
                if t.traced:
                    t.traced = False
                    memory.update(_memory.trace_stop(t, top=min(self.top, 10)))
            if not state:  # a BaseException is unwinding the task: SIGTERM of a hard time limit, a cold shutdown
                state = "INTERRUPTED"
                exc = sys.exc_info()[1]
                if exc is not None and t.exception is None:
                    t.exception = _exception(exc, self.redactor, t.notes)
            self.counts.profiled += 1
            green_cpu = _profile.cpu_time(prof)
            if green_cpu is not None:  # the greenlet's own thread CPU time (see _profile)
                cpu_s, cpu_scope = green_cpu, "task"
            else:
                cpu_s, cpu_scope = cpu1 - t.cpu0, _cpu_scope(self._pool())
            meta = self._sidecar(t, state, wall1, perf1 - t.perf0, cpu_s, memory)
            meta["cpu_scope"] = cpu_scope
            self._write(t, meta, prof)
        except Exception as e:
            self._fail("writing the profile", e)
        finally:
            with contextlib.suppress(Exception):
                if prof is not None:
                    _profile.stop(prof)
                if t.traced:
                    _memory.trace_abort(t)
                if self._current.get() is t:
                    self._current.set(None)

    # -------------------------------------------------------------------------------------------- writing
    def _pool(self) -> str | None:
        if self.pool is None:
            conf = getattr(self.app, "conf", None)
            self.pool = _pool_name(getattr(conf, "worker_pool", None)) if conf is not None else None
        return self.pool

    def _sidecar(self, t: _Task, state: Any, wall1: float, wall_s: float, cpu_s: float,
                 memory: dict[str, Any] | None) -> dict[str, Any]:  # fmt: skip
        req = getattr(t.task, "request", None)
        delivery = getattr(req, "delivery_info", None) or {}
        if not isinstance(delivery, dict):
            delivery = {}
        meta: dict[str, Any] = {
            "schema": SCHEMA,
            "role": "worker",
            "task_id": t.task_id,
            "task_name": t.task_name,
            "state": text_of(state, str) if state else "UNKNOWN",
            "started_at": datetime.fromtimestamp(t.wall0, UTC).isoformat(),
            "finished_at": datetime.fromtimestamp(wall1, UTC).isoformat(),
            "wall_s": round(wall_s, 9),
            "cpu_s": round(cpu_s, 9),
            "hostname": getattr(req, "hostname", None),
            "pid": os.getpid(),
            "pool": self._pool(),
            "queue": delivery.get("routing_key"),
            "retries": _int(getattr(req, "retries", 0)),
            "attempt": 1,
            "redelivered": bool(delivery.get("redelivered")) if "redelivered" in delivery else None,
            "concurrent": self._pool() in _CONCURRENT_POOLS,
            "run": self.run,
            "sample_rate": self.sample_rate,
            **self._static,
        }
        meta.update(_timing.worker_timing(req, t.wall0))
        if t.exception is not None:
            meta["exception"] = t.exception
        if memory is not None:
            meta["memory"] = memory
            meta["rss_scope"] = "process"  # RSS is the whole process's, shared by every task it runs at a time
        if t.sql is not None:
            meta["sql"] = t.sql.to_dict(top=self.top)
        if self.record_args:
            try:
                meta["args"] = {"args": [_safe_repr(a, self.redactor) for a in (t.args or ())],
                                "kwargs": {text_of(k, str): _redacted(k, v, self.redactor)
                                           for k, v in (t.kwargs or {}).items()}}  # fmt: skip
            except Exception as e:  # an args object that is not iterable, a kwargs that is not a mapping
                t.notes.append(f"args not recorded: {_describe(e)}")
        if t.notes:
            meta["notes"] = list(t.notes)
        return meta

    def _write(self, t: _Task, meta: dict[str, Any], prof: Any) -> None:
        data = _profile.dump(prof)
        n = 0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            meta["attempt"] = attempt
            stem = capture_stem(t.task_name, t.task_id, meta["retries"], attempt)
            side = _encode_sidecar(meta)
            try:  # never over another file set: a redelivered or re-run task keeps both
                n = _writer.write_pair(self.directory, stem, side, data, exclusive=True)
                break
            except FileExistsError:  # a file set of this run is there already (a redelivery): the next attempt
                continue
        else:
            raise FileExistsError(f"{MAX_ATTEMPTS} file sets of task {t.task_id} already")
        self._written(n)


# ------------------------------------------------------------------------------------------- task bodies
#: marks a ``run`` that :func:`_wrap_run` made
_BODY_MARK = "__celerylab_body__"


def wrap_tasks(app: Any) -> int:
    """Wrap the ``run`` of every task of ``app`` (:func:`_wrap_run`); returns how many were wrapped now."""
    n = 0
    for task in list(app.tasks.values()):
        with contextlib.suppress(Exception):  # a task we cannot wrap keeps the profile that ends at postrun
            n += _wrap_run(task)
    return n


def _wrap_run(task: Any) -> bool:
    """Make ``task.run`` stop the profiler of the task's own profiled invocation when the body returns or raises.

    The profile then holds the task's code and not what Celery does after it (calling callbacks, storing the
    result in the backend, acknowledging): for a short task with a result backend that is most of the calls cProfile
    would record, and most of what profiling it costs.  Celery resolves ``task.run`` when it builds a task's tracer
    (at worker start: the pool processes and the consumer build them after ``worker_init``), so a capture installed
    later in a running worker keeps profiles that end at ``task_postrun``.  A task the body calls directly (another
    task's ``run``, or itself) does not end the outer profile: only the wrapper entered first for the profiled
    invocation does."""
    run = getattr(task, "run", None)
    if run is None or getattr(run, _BODY_MARK, False):
        return False

    @functools.wraps(run)
    def body(*args: Any, **kwargs: Any) -> Any:
        mine = _body_enter(task)
        try:
            return run(*args, **kwargs)
        finally:
            if mine:
                _body_exit(mine)

    setattr(body, _BODY_MARK, True)
    task.run = body
    return True


def _body_enter(task: Any) -> list[tuple[Capture, _Task]]:
    """The profiled invocations (one per live capture) whose body starts here, marked as in their body."""
    mine = []
    for cap in _active:
        t = cap._current.get()
        if t is not None and t.task is task and not t.in_body:
            t.in_body = True
            mine.append((cap, t))
    return mine


def _body_exit(mine: list[tuple[Capture, _Task]]) -> None:
    with contextlib.suppress(Exception):  # never into the task
        for cap, t in mine:
            if cap._current.get() is t and t.profiler is not None:
                _profile.stop(t.profiler)


# ------------------------------------------------------------------------------------------------- helpers
def _pool_name(pool_cls: Any) -> str | None:
    """celery's alias (``prefork``, ``threads``, ``solo``, ...) of a pool class or ``module:Class`` string."""
    if pool_cls is None:
        return None
    target = pool_cls if isinstance(pool_cls, str) else f"{pool_cls.__module__}:{pool_cls.__qualname__}"
    try:
        from celery.concurrency import ALIASES
    except ImportError:  # pragma: no cover
        ALIASES = {}
    if target in ALIASES:
        return target
    for alias, path in ALIASES.items():
        if path == target:
            return alias
    return target.split(":")[0].rsplit(".", 1)[-1] or None


_CONCURRENT_POOLS = ("threads", "gevent", "eventlet")


def _cpu_clock(pool: str | None) -> Any:
    """The clock a task's ``cpu_s`` is read from: the thread's on the threads pool, else the process's."""
    return time.thread_time if pool == "threads" else time.process_time


def _cpu_scope(pool: str | None) -> str:
    """What ``cpu_s`` covers when it is not the task's own (``"task"``, measured per greenlet): its ``"thread"``
    (threads pool: one task per thread at a time) or the whole ``"process"`` (prefork and solo run one task at a
    time; gevent/eventlet tasks that were not profiled per greenlet share the process with other tasks)."""
    return "thread" if pool == "threads" else "process"


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except Exception:
        return 0


def _describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, whatever its ``__str__`` does."""
    return f"{type(exc).__name__}: {text_of(exc, str)}"


def _exception(exc: Any, redactor: _redact.Redactor | None = None, notes: list[str] | None = None) -> dict[str, str]:
    """``{"type", "message"}`` of a task's exception: never raises (a ``__str__`` that raises is noted), secrets
    in the message masked, the message truncated."""
    try:
        cls = type(exc)
        if isinstance(exc, BaseException):
            name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
        else:
            name = cls.__name__
    except Exception:
        name = "<unknown>"
    try:
        message = str(exc)
        if not isinstance(message, str):
            raise TypeError("__str__ returned a non-string")
    except Exception as e:
        message = text_of(exc, repr)
        if message.startswith("<unprintable") and notes is not None:
            notes.append(f"exception message not recorded: its __str__ and __repr__ raise ({type(e).__name__})")
    message = (redactor or _redact.DEFAULT).sub(message)
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + "…"
    return {"type": name, "message": message}


def _encode_sidecar(meta: dict[str, Any]) -> bytes:
    """The sidecar's bytes; a value that cannot be encoded is left out and noted, never the whole sidecar."""
    try:
        return json.dumps(meta, ensure_ascii=False, default=_json_default).encode("utf-8", "surrogatepass")
    except Exception:
        pass
    clean: dict[str, Any] = {}
    notes = list(meta.get("notes") or [])
    for key, value in meta.items():
        if key == "notes":
            continue
        try:
            json.dumps(value, ensure_ascii=False, default=_json_default).encode("utf-8", "surrogatepass")
            clean[key] = value
        except Exception as e:
            notes.append(f"{key} not recorded: {_describe(e)}")
    clean["notes"] = notes
    return json.dumps(clean, ensure_ascii=False, default=_json_default).encode("utf-8", "surrogatepass")


def _json_default(value: Any) -> str:
    return text_of(value, str)


_repr = reprlib.Repr()
_repr.maxstring = MAX_REPR
_repr.maxother = 100_000  # an object's repr is masked whole, then cut (a cut could split a secret apart)
_repr.maxlevel = 3


def _scrub(value: Any, redactor: _redact.Redactor | None = None, depth: int = 0) -> Any:
    """``value`` with the values of secret-looking dict keys replaced and secrets in strings masked, a few levels
    deep (strings are masked before ``reprlib`` shortens them)."""
    r = redactor or _redact.DEFAULT
    if isinstance(value, str):
        return r.sub(value)
    if depth > 3:
        return value
    if isinstance(value, dict):
        return {k: ("<redacted>" if isinstance(k, str) and r.secret_name(k) else _scrub(v, r, depth + 1))
                for k, v in value.items()}  # fmt: skip
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v, r, depth + 1) for v in value) if not hasattr(value, "_fields") else value
    return value


def _safe_repr(value: Any, redactor: _redact.Redactor | None = None) -> str:
    r = redactor or _redact.DEFAULT
    try:
        text = r.sub(_repr.repr(_scrub(value, r)))
    except Exception as e:
        text = f"<unrepresentable {text_of(type(value), lambda c: c.__name__)}: {type(e).__name__}>"
    return text if len(text) <= MAX_REPR else text[:MAX_REPR] + "…"


def _redacted(key: Any, value: Any, redactor: _redact.Redactor | None = None) -> str:
    r = redactor or _redact.DEFAULT
    return "<redacted>" if isinstance(key, str) and r.secret_name(key) else _safe_repr(value, r)


def install(app: Any, directory: str | os.PathLike[str], *, sample_rate: float = 1.0,
            tasks: str | list[str] | tuple[str, ...] | None = None, run: str | None = None,
            memory: str | bool | None = "rss", sql: bool = True, max_files: int | None = None,
            max_bytes: int | None = None, record_args: bool = False, top: int = 20,
            pool: str | None = None, redact: str | list[str] | tuple[str, ...] | None = None) -> Capture:  # fmt: skip
    """Profile tasks of ``app`` in this process (and in pool processes forked from it).

    ``app=None`` profiles tasks of every app (what ``celerylab worker`` does).  ``tasks``: glob patterns on task
    names (a list, or one comma-separated string); ``sample_rate``: the fraction of matching tasks profiled;
    ``run``: a label (default ``$CELERYLAB_RUN``); ``memory``: ``"off"``, ``"rss"`` (RSS before/after) or
    ``"tracemalloc"`` (+ traced peak and top allocation sites); ``sql``: record statements; ``max_files`` /
    ``max_bytes``: retention caps (oldest profiles go first); ``record_args``: record redacted, truncated reprs of
    the task arguments; ``redact``: extra regular expressions whose matches are masked in recorded arguments and
    exception messages (also ``$CELERYLAB_REDACT``), beside the built-in ones (URL passwords, ``Authorization``
    values, ``password=``-style pairs, AWS access keys).  Installing again for the same app replaces the earlier
    installation.  Returns the handle; call ``uninstall()`` on it to stop.
    """
    cap = Capture(app, directory, sample_rate=sample_rate, tasks=tasks, run=run, memory=memory, sql=sql,
                  max_files=max_files, max_bytes=max_bytes, record_args=record_args, top=top, pool=pool,
                  redact=redact)  # fmt: skip
    for old in list(_active):
        if old.app is app or old.app is None or app is None:
            logger.info("celerylab capture: replacing %r with %r", old, cap)
            old.uninstall()
    cap._install()
    _active.append(cap)
    return cap


def active() -> list[Capture]:
    """The installations live in this process."""
    return list(_active)
