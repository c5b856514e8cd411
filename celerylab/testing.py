"""Deterministic profiles for tests, benchmarks and examples.

* :func:`profile_fake_clock` runs *real* Python code under ``cProfile.Profile(timer=...)`` with a clock that
  advances one tick per profiler event (plus whatever the workload adds with :func:`FakeClock.advance`), so the
  same workload gives byte-identical stats on every run.
* :func:`synthetic_stats` builds a realistic pstats dict (≈500 functions, ≈1 000 caller edges, app/stdlib/
  site-packages/builtin files, recursion) directly, for corpora of thousands of files in benchmarks.
"""

from __future__ import annotations

import cProfile
import json
import marshal
import os
import random
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ._files import SCHEMA


class FakeClock:
    """A profiler timer: every read advances by ``step`` ticks; workloads can add more with :meth:`advance`."""

    def __init__(self, step: int = 1) -> None:
        self.now = 0
        self.step = step

    def __call__(self) -> int:
        self.now += self.step
        return self.now

    def advance(self, ticks: int) -> None:
        self.now += ticks


def profile_fake_clock(
    fn: Callable[..., Any], *args: Any, clock: FakeClock | None = None, timeunit: float = 0.001, **kwargs: Any
) -> dict[Any, Any]:
    """Profile ``fn(*args, **kwargs)`` with a fake clock; returns the pstats dict (``Profile.stats``)."""
    clock = clock or FakeClock()
    prof = cProfile.Profile(timer=clock, timeunit=timeunit)
    prof.enable()
    try:
        fn(*args, **kwargs)
    finally:
        prof.disable()
    prof.create_stats()
    return prof.stats


# ------------------------------------------------------------------------------------------ sample workloads
def fib(n: int) -> int:
    """Plain recursion: pcalls != ncalls."""
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def is_even(n: int) -> bool:
    return True if n == 0 else is_odd(n - 1)


def is_odd(n: int) -> bool:
    """Mutual recursion with is_even."""
    return False if n == 0 else is_even(n - 1)


def serialize(rows: int) -> str:
    return json.dumps([{"id": i, "name": f"row{i}", "tags": ["a", "b"]} for i in range(rows)])


def parse(text: str) -> int:
    return len(json.loads(text))


def crunch(n: int) -> int:
    return sum(sorted((i * 7919) % 1009 for i in range(n)))


def slow_leaf(clock: FakeClock, ticks: int) -> None:
    """Own time that a test can set exactly."""
    clock.advance(ticks)


def workload(variant: int, clock: FakeClock | None = None) -> None:
    """A varied task body: recursion, mutual recursion, builtins, stdlib json, and functions that appear only in
    some variants (so that merged sets hold functions missing from some files)."""
    fib(8 + variant % 4)
    is_even(10 + variant % 3)
    parse(serialize(5 + 3 * variant))
    crunch(50 + 10 * variant)
    if variant % 2:
        sorted(range(variant * 10), key=lambda x: -x)
    if variant % 3 == 0 and clock is not None:
        slow_leaf(clock, 25 * (variant + 1))


# --------------------------------------------------------------------------------------------- synthetic data
_STDLIB = ["json/encoder.py", "json/decoder.py", "logging/__init__.py", "socket.py", "ssl.py", "selectors.py",
           "threading.py", "re/_compiler.py", "datetime.py", "uuid.py", "copy.py", "functools.py"]  # fmt: skip
_SITE = ["celery/app/task.py", "celery/app/trace.py", "kombu/serialization.py", "kombu/messaging.py",
         "sqlalchemy/engine/base.py", "sqlalchemy/orm/query.py", "sqlalchemy/orm/session.py",
         "psycopg/cursor.py", "redis/client.py", "billiard/pool.py", "requests/sessions.py",
         "urllib3/connectionpool.py"]  # fmt: skip
_BUILTINS = ["<built-in method builtins.len>", "<built-in method builtins.isinstance>",
             "<method 'append' of 'list' objects>", "<built-in method time.sleep>",
             "<method 'execute' of 'psycopg.Cursor' objects>", "<built-in method _json.encode_basestring_ascii>",
             "<method 'recv_into' of '_socket.socket' objects>", "<method 'join' of 'str' objects>",
             "<built-in method builtins.sorted>", "<method 'get' of 'dict' objects>"]  # fmt: skip


def synthetic_stats(
    n_functions: int = 500, n_edges: int = 1000, *, seed: int = 0, prefix: str = "/usr/lib/python3.11"
) -> dict[tuple[str, int, str], tuple[Any, ...]]:
    """A realistic pstats dict: a call tree over ``n_functions`` functions with about ``n_edges`` caller edges.

    Numbers are self-consistent in the way pstats needs (``pcalls <= ncalls``, callers' counts sum to the
    callee's); exact values are random but reproducible from ``seed``.  The first few hundred function names
    are shared across seeds, as in a real corpus where tasks run the same code.
    """
    rng = random.Random(seed)
    funcs: list[tuple[str, int, str]] = []
    for i in range(n_functions):
        r = i % 10
        if r < 1:
            funcs.append(
                ("~", 0, _BUILTINS[i % len(_BUILTINS)] if i < 10 * len(_BUILTINS) else f"<built-in method mod{i}.f>")
            )
        elif r < 4:
            funcs.append((f"{prefix}/{_STDLIB[i % len(_STDLIB)]}", 10 + i, f"std_{i}"))
        elif r < 7:
            funcs.append((f"{prefix}/site-packages/{_SITE[i % len(_SITE)]}", 20 + i, f"lib_{i}"))
        else:
            funcs.append((f"/srv/app/orders/module_{i % 17}.py", 30 + i, f"handler_{i}"))
    # the root and a random tree, then extra edges among them
    parents: dict[int, set[int]] = {0: set()}
    for i in range(1, n_functions):
        parents[i] = {rng.randrange(0, i)}
    extra = max(0, n_edges - (n_functions - 1))
    for _ in range(extra):
        child = rng.randrange(1, n_functions)
        parents[child].add(rng.randrange(0, n_functions))  # may create recursion / cycles: pstats allows it
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = {}
    for i, key in enumerate(funcs):
        callers: dict[tuple[str, int, str], tuple[int, int, float, float]] = {}
        nc_total = pc_total = 0
        tt_total = ct_total = 0.0
        for p in sorted(parents[i]):
            nc = rng.randint(1, 200)
            pc = nc if p != i else 0
            tt = rng.random() * 1e-3 * nc
            ct = tt + rng.random() * 2e-3
            callers[funcs[p]] = (nc, pc, tt, ct)
            nc_total += nc
            pc_total += pc
            tt_total += tt
            ct_total += ct
        if i == 0:
            nc_total = pc_total = 1
            tt_total = rng.random() * 1e-3
            ct_total = 1.0 + rng.random()
        stats[key] = (pc_total, nc_total, tt_total, ct_total, callers)
    return stats


def sidecar(task_name: str, task_id: str, *, run: str | None = None, started: datetime | None = None,
            wall_s: float = 0.1, state: str = "SUCCESS", hostname: str = "worker1@host", pid: int = 1000,
            **extra: Any) -> dict[str, Any]:  # fmt: skip
    """A sidecar dict in the current sidecar schema (:data:`celerylab._files.SCHEMA`)."""
    started = started or datetime(2026, 1, 1, tzinfo=UTC)
    d: dict[str, Any] = {
        "schema": SCHEMA,
        "task_id": task_id,
        "task_name": task_name,
        "state": state,
        "started_at": started.isoformat(),
        "finished_at": (started + timedelta(seconds=wall_s)).isoformat(),
        "wall_s": wall_s,
        "cpu_s": wall_s * 0.8,
        "hostname": hostname,
        "pid": pid,
        "pool": "prefork",
        "queue": "celery",
        "retries": 0,
        "run": run,
        "python": "3.11.7",
        "celery": "5.5.0",
        "sys_prefixes": sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}),
    }
    d.update(extra)
    return d


def write_profile(folder: str, stats: dict[Any, Any], *, task_name: str = "app.task", task_id: str | None = None,
                  meta: dict[str, Any] | None = None, compress: bool = False) -> str:  # fmt: skip
    """Write ``<task_name>.<task_id>.prof`` (+ ``.json`` sidecar when ``meta`` is given); returns the path."""
    import gzip

    task_id = task_id or str(uuid.UUID(int=random.getrandbits(128)))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{task_name}.{task_id}.prof" + (".gz" if compress else ""))
    data = marshal.dumps(stats)
    with open(path, "wb") as f:
        f.write(gzip.compress(data, mtime=0) if compress else data)
    if meta is not None:
        with open(os.path.join(folder, f"{task_name}.{task_id}.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f)
    return path


def write_not_utf8(folder: str, sidecar_of: str, **texts: str) -> tuple[list[str], str]:
    """Text that is not UTF-8, as pstats reads it, added to ``folder``: a profile whose file name holds bytes that
    are not UTF-8 (``os.fsdecode`` keeps each as a lone surrogate), one whose function is named with a lone
    surrogate, and a broken file with such a name; the sidecar of ``sidecar_of`` (a profile already there) gets
    ``texts`` (written by ``json`` as ``\\udcff`` escapes).  Returns the two profiles' paths and the broken one's."""
    base = os.fsencode(folder)
    odd_file = os.fsdecode(base + b"/orders.\xff\xfe.prof")
    with open(odd_file, "wb") as f:
        f.write(marshal.dumps({("a.py", 1, "f"): (2, 2, 0.5, 0.75, {})}))
    odd_name = os.path.join(folder, "odd_name.prof")
    with open(odd_name, "wb") as f:
        f.write(marshal.dumps({("b.py", 3, "bad\udc80name"): (1, 1, 0.25, 0.25, {("a.py", 1, "f"): (1, 1, 0.1, 0.1)}),
                               ("a.py", 1, "f"): (1, 1, 0.125, 0.125, {})}))  # fmt: skip
    side_path = sidecar_of[: -len(".prof")] + ".json"
    with open(side_path, encoding="utf-8") as f:
        side = json.load(f)
    side.update(texts)
    with open(side_path, "w", encoding="utf-8") as f:
        json.dump(side, f)
    broken = os.fsdecode(base + b"/broken.\xff.prof")
    with open(broken, "wb") as f:
        f.write(b"not a profile at all")
    return [odd_file, odd_name], broken


def write_corpus(folder: str, n: int, *, n_functions: int = 500, n_edges: int = 1000, seed: int = 0,
                 runs: tuple[str, ...] = ("baseline",), with_sidecars: bool = True) -> list[str]:  # fmt: skip
    """``n`` synthetic profiles (+ sidecars) under ``folder``; returns the profile paths."""
    paths = []
    tasks = ["orders.process", "reports.build", "email.campaign", "images.thumbnail", "stats.aggregate"]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(n):
        task = tasks[i % len(tasks)]
        tid = str(uuid.UUID(int=(seed << 64) + i))
        meta = (
            sidecar(task, tid, run=runs[i % len(runs)], started=t0 + timedelta(seconds=i), wall_s=0.05 + (i % 7) / 100,
                    pid=1000 + i % 2)
            if with_sidecars
            else None
        )  # fmt: skip
        paths.append(write_profile(folder, synthetic_stats(n_functions, n_edges, seed=seed * 100003 + i),
                                   task_name=task, task_id=tid, meta=meta))  # fmt: skip
    return paths
