"""Profile folders for report and CLI tests: real (fake-clock) profiles with SQL and memory sidecars, and a set
whose function, file, task and SQL names try to inject HTML/JS."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import numpy as np

from celerylab.testing import FakeClock, profile_fake_clock, sidecar, workload, write_profile

TASKS = ("orders.process", "reports.build", "email.send")
N_PLUS_ONE_SQL = "SELECT * FROM order_line WHERE order_id = ?"
BULK_SQL = "UPDATE orders SET state = ? WHERE id IN (?)"
LEAK_SITE = ("/srv/app/reports/cache.py", 42)

EVIL_NAME = '<script>alert("x")</script>\'"&amp;'
EVIL_FILE = "/srv/app/<img src=x onerror=alert(2)>.py"
EVIL_TASK = "evil<script>alert(3)</script>"
# a quoted identifier: SQL normalisation replaces string literals and numbers, identifiers reach the page as they are
EVIL_SQL = 'SELECT "</script><script>alert(document.cookie)</script>" FROM t WHERE id = ?'


def make_corpus(folder: str, n: int = 18) -> list[str]:
    """``n`` profiles of real code (deterministic fake clock), tasks round-robin over :data:`TASKS`, runs
    baseline / candidate; orders.process records an N+1 statement, reports.build grows RSS by 5 MiB per task."""
    paths = []
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(n):
        clock = FakeClock()
        stats = profile_fake_clock(workload, i % 6, clock, clock=clock)
        tid = str(uuid.UUID(int=i + 1))
        task = TASKS[i % 3]
        extra: dict[str, Any] = {}
        if task == "orders.process":
            extra["sql"] = {
                "count": 26,
                "time_s": 0.03,
                "statements": [
                    {"sql": N_PLUS_ONE_SQL, "count": 25, "time_s": 0.025, "callers": ["orders/models.py:10(lines)"]},
                    {"sql": BULK_SQL, "count": 1, "time_s": 0.005, "callers": ["orders/tasks.py:5(process)"]},
                ],
            }
        if task == "reports.build":
            extra["memory"] = {
                "rss_before": 100 * 2**20,
                "rss_after": 105 * 2**20,
                "peak_traced": 8 * 2**20,
                "top": [{"file": LEAK_SITE[0], "line": LEAK_SITE[1], "size": 3 * 2**20, "count": 1000}],
            }
        meta = sidecar(task, tid, run=("baseline", "candidate")[i % 2], started=t0 + timedelta(seconds=i),
                       wall_s=0.01 * (1 + i % 5), pid=100 + i % 2, **extra)  # fmt: skip
        paths.append(write_profile(folder, stats, task_name=task, task_id=tid, meta=meta))
    return sorted(paths)


def evil_stats() -> dict[tuple[str, int, str], tuple[Any, ...]]:
    """A pstats dict whose hottest function has a name and file that are HTML/JS injections."""
    root = ("/srv/app/tasks.py", 10, "run_evil")
    evil = (EVIL_FILE, 20, EVIL_NAME)
    leaf = ("~", 0, "<built-in method time.sleep>")
    return {
        root: (1, 1, 0.01, 1.0, {}),
        evil: (3, 3, 0.79, 0.99, {root: (3, 3, 0.79, 0.99)}),
        leaf: (3, 3, 0.2, 0.2, {evil: (3, 3, 0.2, 0.2)}),
    }


def make_evil(folder: str, n: int = 4) -> list[str]:
    """``n`` profiles of :func:`evil_stats` with a hostile task name and SQL statement."""
    paths = []
    for i in range(n):
        tid = str(uuid.UUID(int=1000 + i))
        meta = sidecar(EVIL_TASK, tid, run="evil", wall_s=1.0,
                       sql={"count": 1, "time_s": 0.1, "statements": [{"sql": EVIL_SQL, "count": 1, "time_s": 0.1,
                                                                       "callers": [EVIL_NAME]}]})  # fmt: skip
        paths.append(write_profile(folder, evil_stats(), task_name="evil", task_id=tid, meta=meta))
    return paths


# ------------------------------------------------------------------------------------------ reading HTML back
class Page(HTMLParser):
    """A flat read of an HTML page: scripts, tables (rows of (text, data-value)), section ids, all attributes and
    the visible text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.headers: dict[str, list[str]] = {}
        self.sections: list[str] = []
        self.attributes: list[tuple[str, str, str | None]] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.svg_text: list[str] = []
        self.meta: dict[str, str] = {}
        self._script: dict[str, str | None] | None = None
        self._script_buf: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._cell_value: str | None = None
        self._row: list[tuple[str, str | None]] | None = None
        self._in_th = False
        self._svg_depth = 0
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        for k, v in attrs:
            self.attributes.append((tag, k, v))
        if tag == "script":
            self._script, self._script_buf = a, []
        elif tag == "section" and a.get("id"):
            self.sections.append(str(a["id"]))
        elif tag == "table":
            self._table = a.get("id")
            if self._table:
                self.tables[self._table] = []
                self.headers[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._table:
            self._cell, self._cell_value, self._in_th = [], a.get("data-value"), tag == "th"
        elif tag == "svg":
            self._svg_depth += 1
        elif tag == "meta" and a.get("http-equiv"):
            self.meta[str(a["http-equiv"]).lower()] = str(a.get("content"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._script_buf)))
            self._script = None
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table:
            text = "".join(self._cell)
            if self._in_th:
                self.headers[self._table].append(text)
            elif self._row is not None:
                self._row.append((text, self._cell_value))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            if self._row:
                self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "svg":
            self._svg_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script_buf.append(data)
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._svg_depth:
            self.svg_text.append(data)

    def column(self, table: str, name: str, *, raw: bool = True) -> list[Any]:
        """One column of a table: raw numbers (from data-value) or texts."""
        i = self.headers[table].index(name)
        return [float(r[i][1]) if raw and r[i][1] is not None else r[i][0] for r in self.tables[table]]

    def figures(self) -> list[dict[str, Any]]:
        import json

        return [json.loads(body) for a, body in self.scripts if a.get("type") == "application/json"]


def plotly_array(value: Any) -> np.ndarray:
    """A plotly JSON array back as numpy (plotly encodes numeric arrays as base64 typed arrays)."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value)
