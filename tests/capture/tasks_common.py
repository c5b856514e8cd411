"""Task bodies shared by the test apps (``capapp`` registers celerylab; ``plainapp`` knows nothing of it)."""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

try:  # imported at module level, as apps do (capture hooks libraries that are imported); optional so that the
    # app also runs under an interpreter that has only celery and redis (the Python 3.12+ test)
    import psycopg
    from sqlalchemy import create_engine, text
except ImportError:  # pragma: no cover
    psycopg = None  # type: ignore[assignment]

PG_DSN = os.environ.get("CAPTEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
_KEEP: list[Any] = []


def add_tasks(app: Any) -> None:
    """Define the test tasks on ``app`` (names ``captest.*``)."""

    @app.task(name="captest.ok")
    def ok(n: int = 10) -> int:
        return sum(range(n))

    @app.task(name="captest.fail")
    def fail(width: int = 10) -> None:
        raise ValueError("boom " * width)

    @app.task(name="captest.retry_once", bind=True, max_retries=3)
    def retry_once(self: Any) -> int:
        if self.request.retries < 1:
            raise self.retry(exc=KeyError("try again"), countdown=0)
        return self.request.retries

    @app.task(name="captest.sqlite")
    def sqlite_task(rows: int = 5) -> int:
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO item (name) VALUES (?)", [(f"n{i}",) for i in range(rows)])
        total = 0
        for i in range(rows):
            total += conn.execute("SELECT count(*) FROM item WHERE id <= ?", (i,)).fetchone()[0]  # per-row query
        conn.close()
        return total

    @app.task(name="captest.pg")
    def pg_task(times: int = 3) -> int:
        with psycopg.connect(PG_DSN) as conn, conn.cursor() as cur:
            total = 0
            for i in range(times):
                cur.execute("SELECT %s::int + 1", (i,))  # the N+1 query
                total += cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM pg_class WHERE relname = 'celerylab_nothing'")
        return total

    @app.task(name="captest.sa_pg")
    def sa_pg_task(times: int = 2) -> int:
        engine = create_engine(PG_DSN.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            total = sum(conn.execute(text("SELECT :x + 100"), {"x": i}).scalar_one() for i in range(times))
        engine.dispose()
        return total

    @app.task(name="captest.alloc")
    def alloc(size: int = 4_000_000) -> int:
        _KEEP.append(bytearray(size))  # ALLOCATION SITE
        return len(_KEEP)

    @app.task(name="captest.sleep")
    def sleep(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @app.task(name="captest.secret")
    def secret(user: str, password: str = "", options: dict[str, Any] | None = None) -> str:
        return user

    @app.task(name="captest.pair_a")
    def pair_a(key: str) -> int:
        return _meet(key, helper_a)

    @app.task(name="captest.pair_b")
    def pair_b(key: str) -> int:
        return _meet(key, helper_b)

    @app.task(name="captest.midwrite")
    def midwrite() -> str:
        return "written?"

    @app.task(name="captest.yield_a")
    def yield_a(times: int = 100, pause: float = 0.002) -> int:
        return _interleave(step_a, times, pause)

    @app.task(name="captest.yield_b")
    def yield_b(times: int = 100, pause: float = 0.002) -> int:
        return _interleave(step_b, times, pause)

    @app.task(name="captest.sql_interleave")
    def sql_interleave(table: str, times: int = 20, pause: float = 0.002) -> int:
        """``times`` queries on ``table`` with a cooperative sleep after each: concurrent tasks interleave."""
        conn = sqlite3.connect(":memory:")
        conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY)")
        total = 0
        for i in range(times):
            total += conn.execute(f"SELECT count(*) FROM {table} WHERE id <= ?", (i,)).fetchone()[0] + 1
            time.sleep(pause)
        conn.close()
        return total

    @app.task(name="captest.echo")
    def echo(*args: Any, **kwargs: Any) -> int:
        return len(args) + len(kwargs)

    @app.task(name="captest.unprintable_error")
    def unprintable_error() -> None:
        raise _Unprintable("never shown")

    @app.task(name="captest.unrepresentable_result")
    def unrepresentable_result() -> Any:
        return _BadRepr()

    @app.task(name="captest.redelivered", acks_late=True, reject_on_worker_lost=True)
    def redelivered(marker: str) -> str:
        """First delivery: the worker process SIGKILLs itself mid-run (the message stays unacknowledged and is
        delivered again); second delivery: runs to the end."""
        if not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write(str(os.getpid()))
            step_a()
            os.kill(os.getpid(), 9)
        step_b()
        return "second delivery"

    @app.task(name="captest.after_write", acks_late=True, reject_on_worker_lost=True)
    def after_write(marker: str) -> str:
        """With CAPTEST_KILL_AFTER_POSTRUN (plainapp), the first delivery's pool process is SIGKILLed after
        capture wrote its files and before the message is acknowledged: the message is delivered again."""
        step_a()
        return marker


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ raises")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ raises")


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("__repr__ raises")

    __str__ = __repr__


def step_a() -> int:
    return 1


def step_b() -> int:
    return 2


def _interleave(step: Any, times: int, pause: float) -> int:
    """Call ``step`` ``times`` times with a cooperative sleep after each call: under gevent/eventlet (time.sleep is
    patched) or threads, other tasks run in between."""
    total = 0
    for _ in range(times):
        total += step()
        time.sleep(pause)
    return total


def helper_a() -> int:
    return 1


def helper_b() -> int:
    return 2


def _meet(key: str, helper: Any, timeout: float = 20.0) -> int:
    """Run ``helper`` in a loop until both tasks of a pair are running at the same time (a Redis barrier)."""
    import redis

    r = redis.Redis.from_url(os.environ.get("CAPTEST_BROKER", "redis://127.0.0.1:6379/0"))
    r.incr(key)
    r.expire(key, 60)
    deadline = time.monotonic() + timeout
    calls = 0
    while int(r.get(key) or 0) < 2:
        calls += helper()
        if time.monotonic() > deadline:
            raise TimeoutError("the other task of the pair never started")
        time.sleep(0.005)
    return calls + helper()
