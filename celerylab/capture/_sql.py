"""SQL statement capture: hooks for DB-API drivers, SQLAlchemy engine events and Django's ``execute_wrapper``.

Hooks are installed lazily (:func:`ensure_hooks`, called when a profiled task starts) and only for libraries that
are already imported: capture never imports a database library itself.  A hook records only while the current
context (a thread, or a greenlet under gevent/eventlet) has a :class:`SqlRecorder` (a task is being profiled);
otherwise it costs one context-variable read.  Nested
hooks (SQLAlchemy over psycopg, Django over sqlite3) record the statement once, at the outermost layer.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import site
import sys
import sysconfig
import threading
from collections import Counter
from time import perf_counter
from typing import Any

from .._sqltext import statement_shape

MAX_SQL_CHARS = 2000


_REC: contextvars.ContextVar[SqlRecorder | None] = contextvars.ContextVar("celerylab_sql_rec", default=None)
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("celerylab_sql_depth", default=0)


class _State:
    """The current task's recorder and hook nesting depth, per context (``contextvars``: per thread and per
    greenlet, so concurrent tasks of a threads, gevent or eventlet pool never record into each other)."""

    __slots__ = ()

    @property
    def rec(self) -> SqlRecorder | None:
        return _REC.get()

    @rec.setter
    def rec(self, value: SqlRecorder | None) -> None:
        _REC.set(value)

    @property
    def depth(self) -> int:
        return _DEPTH.get()

    @depth.setter
    def depth(self, value: int) -> None:
        _DEPTH.set(value)


state = _State()


# ------------------------------------------------------------------------------------------------ normalising
_norm_cache: dict[str, str] = {}


def normalize(sql: Any) -> str:
    """One text per statement shape: literals and placeholders become ``?``, lists ``(?...)``, spaces collapse.

    >>> normalize("SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'x'  LIMIT 10")
    'SELECT * FROM t WHERE id IN (?...) AND name = ? LIMIT ?'
    """
    if not isinstance(sql, str):
        if isinstance(sql, bytes | bytearray | memoryview):
            sql = bytes(sql).decode("utf-8", "replace")
        else:
            as_string = getattr(sql, "as_string", None)  # psycopg.sql.Composed needs a context: fall back to str
            sql = str(sql) if as_string is None else _composed_text(sql)
    hit = _norm_cache.get(sql)
    if hit is not None:
        return hit
    s = statement_shape(sql)
    if len(s) > MAX_SQL_CHARS:
        s = s[:MAX_SQL_CHARS] + "…"
    if len(_norm_cache) > 4096:
        _norm_cache.clear()
    _norm_cache[sql] = s
    return s


def _composed_text(obj: Any) -> str:
    try:
        return str(obj.as_string(None))
    except Exception:
        return repr(obj)


# ----------------------------------------------------------------------------------------- application frames
def _library_prefixes() -> tuple[str, ...]:
    paths: set[str] = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            paths.add(p)
    with contextlib.suppress(AttributeError):
        paths.update(site.getsitepackages())
    if site.ENABLE_USER_SITE and site.USER_SITE:
        paths.add(site.USER_SITE)
    for mod in ("celery", "kombu", "billiard", "vine", "click"):
        m = sys.modules.get(mod)
        f = getattr(m, "__file__", None)
        if f:
            paths.add(os.path.dirname(f))
    paths.add(os.path.dirname(os.path.abspath(__file__)))  # celerylab.capture itself
    return tuple(
        sorted(os.path.join(os.path.realpath(p), "") for p in paths) + sorted(os.path.join(p, "") for p in paths)
    )


_prefixes: tuple[str, ...] | None = None
_is_library: dict[str, bool] = {}


def _library(filename: str) -> bool:
    global _prefixes
    hit = _is_library.get(filename)
    if hit is not None:
        return hit
    if _prefixes is None:
        _prefixes = _library_prefixes()
    lib = (
        filename.startswith("<")
        or filename.startswith(_prefixes)
        or "/site-packages/" in filename
        or "/dist-packages/" in filename
    )
    _is_library[filename] = lib
    return lib


def caller_label(depth: int = 2) -> str | None:
    """pstats-style ``path:line(function)`` of the innermost application frame on the stack (``None`` if all
    frames are stdlib, site-packages, celery/kombu/billiard or celerylab.capture)."""
    f: Any = sys._getframe(depth)
    while f is not None:
        code = f.f_code
        if not _library(code.co_filename):
            return f"{code.co_filename}:{f.f_lineno}({code.co_name})"
        f = f.f_back
    return None


# ------------------------------------------------------------------------------------------------- recording
class SqlRecorder:
    """Statements of one task: count, time and calling application lines per normalised statement."""

    __slots__ = ("count", "statements", "time_s")

    def __init__(self) -> None:
        self.count = 0
        self.time_s = 0.0
        self.statements: dict[str, list[Any]] = {}

    def add(self, sql: Any, seconds: float, caller: str | None) -> None:
        key = normalize(sql)
        st = self.statements.get(key)
        if st is None:
            st = self.statements[key] = [0, 0.0, Counter()]
        st[0] += 1
        st[1] += seconds
        if caller is not None:
            st[2][caller] += 1
        self.count += 1
        self.time_s += seconds

    def to_dict(self, top: int = 20, callers: int = 5) -> dict[str, Any]:
        """The sidecar's ``sql`` object: the ``top`` statements by total time."""
        ranked = sorted(self.statements.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))[:top]
        return {
            "count": self.count,
            "time_s": round(self.time_s, 9),
            "statements": [
                {"sql": sql, "count": n, "time_s": round(t, 9), "callers": [c for c, _ in cs.most_common(callers)]}
                for sql, (n, t, cs) in ranked
            ],
        }


def _timed(execute: Any) -> Any:
    """Wrap a DB-API ``execute(self, operation, ...)`` so that it records into the current task's recorder."""

    @functools.wraps(execute)
    def wrapper(self: Any, operation: Any, *args: Any, **kwargs: Any) -> Any:
        rec = state.rec
        if rec is None or state.depth:
            return execute(self, operation, *args, **kwargs)
        state.depth = 1
        t0 = perf_counter()
        try:
            return execute(self, operation, *args, **kwargs)
        finally:
            dt = perf_counter() - t0
            state.depth = 0
            try:  # noqa: SIM105 (hot path: cheaper than contextlib.suppress)
                rec.add(operation, dt, caller_label())
            except Exception:  # never into the task
                pass

    wrapper.__celerylab_wrapped__ = execute  # type: ignore[attr-defined]
    return wrapper


# ----------------------------------------------------------------------------------------------------- hooks
installed: set[str] = set()
_ALL = ("sqlite3", "psycopg", "psycopg2", "sqlalchemy", "django")
_lock = threading.Lock()


def ensure_hooks() -> None:
    """Install the hook of every supported library that is imported and not hooked yet (cheap when done)."""
    if len(installed) == len(_ALL):
        return
    modules = sys.modules
    for name, probe in (("sqlite3", "sqlite3"), ("psycopg", "psycopg"), ("psycopg2", "psycopg2"),
                        ("sqlalchemy", "sqlalchemy.engine"), ("django", "django.db")):  # fmt: skip
        if name not in installed and probe in modules:
            with _lock:
                if name in installed:
                    continue
                installed.add(name)  # even if hooking fails: try once
                _HOOKS[name]()


def _hook_sqlite3() -> None:
    import sqlite3
    import sqlite3.dbapi2

    class TracedCursor(sqlite3.Cursor):
        execute = _timed(sqlite3.Cursor.execute)
        executemany = _timed(sqlite3.Cursor.executemany)
        executescript = _timed(sqlite3.Cursor.executescript)

    class TracedMixin:
        def cursor(self, factory: Any = TracedCursor) -> Any:
            return super().cursor(factory)  # type: ignore[misc]

        def execute(self, sql: str, parameters: Any = (), /) -> Any:
            return self.cursor().execute(sql, parameters)

        def executemany(self, sql: str, parameters: Any, /) -> Any:
            return self.cursor().executemany(sql, parameters)

        def executescript(self, script: str, /) -> Any:
            return self.cursor().executescript(script)

    traced: dict[type, type] = {}
    original = sqlite3.connect

    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> Any:
        factory = kwargs.get("factory", sqlite3.Connection)
        if isinstance(factory, type) and issubclass(factory, sqlite3.Connection):
            sub = traced.get(factory)
            if sub is None:
                sub = traced[factory] = type(f"Traced{factory.__name__}", (TracedMixin, factory), {})
            kwargs["factory"] = sub
        return original(*args, **kwargs)

    connect.__celerylab_wrapped__ = original  # type: ignore[attr-defined]
    sqlite3.connect = connect
    sqlite3.dbapi2.connect = connect


def _hook_psycopg() -> None:
    import psycopg

    for cls in {psycopg.Cursor, getattr(psycopg, "ServerCursor", psycopg.Cursor)}:
        for meth in ("execute", "executemany"):
            fn = cls.__dict__.get(meth)
            if fn is not None and not hasattr(fn, "__celerylab_wrapped__"):
                setattr(cls, meth, _timed(fn))


def _hook_psycopg2() -> None:
    import psycopg2
    import psycopg2.extensions

    base = psycopg2.extensions.cursor

    class TracedCursor(base):  # type: ignore[misc, valid-type]
        execute = _timed(base.execute)
        executemany = _timed(base.executemany)

    original = psycopg2.connect

    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("cursor_factory") is None:  # an app's own cursor_factory is left alone (not traced)
            kwargs["cursor_factory"] = TracedCursor
        return original(*args, **kwargs)

    connect.__celerylab_wrapped__ = original  # type: ignore[attr-defined]
    psycopg2.connect = connect


def _hook_sqlalchemy() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def before(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, executemany: bool) -> None:
        if state.rec is None or state.depth or context is None:
            return
        state.depth = 1
        context._celerylab_sql = (perf_counter(), caller_label(), state.rec)

    def after(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, executemany: bool) -> None:
        mark = getattr(context, "_celerylab_sql", None)
        if mark is None:
            return
        context._celerylab_sql = None
        state.depth = 0
        t0, caller, rec = mark
        with contextlib.suppress(Exception):
            rec.add(statement, perf_counter() - t0, caller)

    def on_error(exception_context: Any) -> None:
        context = exception_context.execution_context
        if context is not None and getattr(context, "_celerylab_sql", None) is not None:
            after(None, None, exception_context.statement, None, context, False)

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    event.listen(Engine, "handle_error", on_error)


def _hook_django() -> None:
    from django.db import connections
    from django.db.backends.signals import connection_created

    def wrapper(execute: Any, sql: Any, params: Any, many: bool, context: Any) -> Any:
        rec = state.rec
        if rec is None or state.depth:
            return execute(sql, params, many, context)
        state.depth = 1
        t0 = perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            state.depth = 0
            with contextlib.suppress(Exception):
                rec.add(sql, perf_counter() - t0, caller_label())

    def add(connection: Any) -> None:
        wrappers = connection.execute_wrappers
        if wrapper not in wrappers:
            wrappers.insert(0, wrapper)

    def on_created(sender: Any, connection: Any, **kwargs: Any) -> None:
        add(connection)

    connection_created.connect(on_created, weak=False, dispatch_uid="celerylab.capture.sql.django")
    try:
        for conn in connections.all(initialized_only=True):
            add(conn)
    except Exception:  # older Django: connections are wrapped when they are created
        pass


_HOOKS = {
    "sqlite3": _hook_sqlite3,
    "psycopg": _hook_psycopg,
    "psycopg2": _hook_psycopg2,
    "sqlalchemy": _hook_sqlalchemy,
    "django": _hook_django,
}
