"""An in-process Celery app whose tasks run through celery's real tracer with ``Task.apply()`` (signals fire)."""

from __future__ import annotations

import sqlite3
from typing import Any

from celery import Celery

app = Celery("captest-inproc", set_as_current=False)
app.conf.update(broker_url="memory://", result_backend="cache+memory://")


@app.task(name="inproc.work")
def work(n: int = 10) -> int:
    return sum(range(n))


@app.task(name="inproc.boom")
def boom() -> None:
    raise RuntimeError("x" * 5000)


@app.task(name="inproc.secret")
def secret(user: str, password: str = "", headers: dict[str, Any] | None = None) -> str:
    return user


@app.task(name="inproc.sqlite")
def sqlite_task(n: int) -> int:
    conn = sqlite3.connect(":memory:")
    total = 0
    for i in range(n):
        total += conn.execute("SELECT ? + 1", (i,)).fetchone()[0]  # IN-PROCESS QUERY
    conn.close()
    return total


def run(task: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``task`` through celery's tracer in this process; returns the EagerResult."""
    return task.apply(args=args, kwargs=kwargs)
