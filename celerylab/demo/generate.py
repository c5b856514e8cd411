"""``celerylab generate-samples OUT``: produce the ``baseline`` and ``candidate`` sample runs with real workers.

What it does, in order:

1. seeds one database per run (PostgreSQL at 127.0.0.1:5432 when it answers, else SQLite) with the same rows;
2. starts one real ``celery worker`` per run (prefork, ``-c 2``, Redis broker) under celerylab capture, each with
   its own queue, run label and ``CELERYLAB_DEMO_VARIANT``;
3. sends the same seeded task mix (:mod:`celerylab.demo.plan`) to both runs, one message at a time, alternating
   between the runs, so both see the same machine load and differ only where a plant is switched on;
4. waits for every profile file (capture writes it after the result is stored, so results alone are not enough),
   stops the workers, gzips the ``.prof`` files, and writes ``manifest.json`` with the per-run numbers and what was
   planted — after checking that the planted functions resolve and that the planted N+1 and leak show up.

The new set is built in a staging folder inside ``OUT`` and swapped in at the end: a failed run leaves the old set.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery.states import READY_STATES

from ..errors import GenerationError
from . import manifest as mf
from .plan import Call, build_plan

RUNS = mf.RUNS
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
Log = Callable[[str], None]


@dataclass
class Worker:
    """One running ``celery worker`` subprocess for one run label."""

    run: str
    hostname: str
    queue: str
    directory: Path
    database: str
    log_path: Path
    proc: subprocess.Popen[bytes]
    pids: tuple[int, ...] = ()

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise GenerationError(
                f"the {self.run} worker exited with code {self.proc.returncode}; last log lines "
                f"({self.log_path}):\n{self.log_tail()}"
            )


# ---------------------------------------------------------------------------------------------------- databases
def run_database_url(base: str, run: str) -> str:
    """The database of one run: ``<name>_<run>`` on PostgreSQL, ``<stem>_<run>.sqlite`` for SQLite."""
    from sqlalchemy import make_url

    u = make_url(base)
    if u.get_backend_name() == "sqlite":
        db = Path(u.database or "celerylab_demo.sqlite")
        return str(u.set(database=str(db.with_name(f"{db.stem}_{run}{db.suffix or '.sqlite'}"))))
    return u.set(database=f"{u.database or 'celerylab_demo'}_{run}").render_as_string(hide_password=False)


# ------------------------------------------------------------------------------------------------------ workers
def worker_command(directory: Path, run: str, hostname: str, queue: str, concurrency: int) -> list[str]:
    """A prefork ``celery worker`` of the demo app with capture switched on by the flags the app registers
    (``celerylab.capture.register``): every task profiled, SQL statements and tracemalloc recorded."""
    return [
        sys.executable, "-m", "celery", "-A", "celerylab.demo.app", "worker", "-P", "prefork", "-c", str(concurrency),
        "-n", hostname, "-Q", queue, "-l", "INFO", "--without-mingle", "--without-gossip",
        "--celerylab-dir", str(directory), "--celerylab-run", run, "--celerylab-sample", "1",
        "--celerylab-memory", "tracemalloc", "--celerylab-sql", "1",
    ]  # fmt: skip


def _start_worker(run: str, root: Path, database: str, broker: str, concurrency: int, token: str) -> Worker:
    directory = root / f"raw-{run}"
    directory.mkdir(parents=True)
    hostname = f"{run}-{token}@{socket.gethostname()}"
    queue = f"celerylab-demo-{run}-{token}"
    # Capture settings come from the flags only: CELERYLAB_* variables of the caller must not change the set.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERYLAB_")}
    env.update(
        CELERYLAB_DEMO_VARIANT=run,
        CELERYLAB_DEMO_DATABASE=database,
        CELERYLAB_DEMO_BROKER=broker,
        CELERYLAB_DEMO_BACKEND=broker,
        CELERYLAB_DEMO_QUEUE=queue,
        PYTHONUNBUFFERED="1",
    )
    log_path = root / f"worker-{run}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            worker_command(directory, run, hostname, queue, concurrency),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    return Worker(run, hostname, queue, directory, database, log_path, proc)


def _wait_ready(client: Any, workers: list[Worker], concurrency: int, timeout: float) -> None:
    """Poll the workers over the broker until each answers with all its pool processes up."""
    deadline = time.monotonic() + timeout
    pending = {w.hostname: w for w in workers}
    while pending:
        for w in pending.values():
            w.check_alive()
        stats = client.control.inspect(destination=list(pending), timeout=0.5).stats() or {}
        for host, st in stats.items():
            procs = tuple(sorted((st.get("pool") or {}).get("processes") or ()))
            if host in pending and len(procs) >= concurrency:
                pending.pop(host).pids = procs
        if pending and time.monotonic() > deadline:
            w = next(iter(pending.values()))
            raise GenerationError(f"worker {w.hostname} not ready after {timeout:.0f} s; log:\n{w.log_tail()}")


def _stop_worker(w: Worker, timeout: float = 60.0) -> None:
    """Warm shutdown (SIGTERM), then SIGKILL of the process group if it does not exit in time."""
    if w.proc.poll() is not None:
        return
    w.proc.send_signal(signal.SIGTERM)
    try:
        w.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(w.proc.pid, signal.SIGKILL)
        w.proc.wait(10)


def _forget_queues(broker: str, queues: list[str]) -> None:
    """Remove the per-generation queues and their kombu bindings from Redis (each generation uses new names)."""
    if not queues or not broker.startswith(("redis://", "rediss://")):
        return
    import redis

    r = redis.Redis.from_url(broker)
    try:
        r.delete(*queues, *(f"_kombu.binding.{q}" for q in queues))
    finally:
        r.close()


# ------------------------------------------------------------------------------------------------------ sending
#: publishes of this task are profiled on the producer side (the "web process" of the demo publishes orders)
PRODUCER_TASKS = "demo.orders.process"


def producer_client(run: str, broker: str) -> Any:
    """The app that publishes to one run."""
    from celery import Celery

    app = Celery(f"celerylab-demo-producer-{run}", broker=broker, backend=broker, set_as_current=False)
    app.conf.update(broker_connection_retry_on_startup=True, result_expires=3600)
    return app


def publish(client: Any, run: str, call: Call, queue: str) -> str:
    """Publish one message the way each run's producer does; returns the task id.  The baseline uses Celery's
    pooled producer; the candidate's order publishing (:data:`PRODUCER_TASKS`, the profiled publishes) hands every
    publish a connection of its own (``connection=``), which Celery connects and wraps in a new producer inside
    ``send_task`` — the planted producer-side regression."""
    if run == "candidate" and call.task == PRODUCER_TASKS:
        with client.connection_for_write() as conn:
            return str(client.send_task(call.task, args=call.args, kwargs=call.kwargs, queue=queue, connection=conn).id)
    return str(client.send_task(call.task, args=call.args, kwargs=call.kwargs, queue=queue).id)


def _chunks(plan: list[Call], chunk: int) -> list[list[Call]]:
    """``chunk`` calls at a time, except that a burst (consecutive ``burst`` calls) goes as one piece."""
    out: list[list[Call]] = []
    i = 0
    while i < len(plan):
        if plan[i].burst:
            j = i
            while j < len(plan) and plan[j].burst:
                j += 1
        else:
            j = i + 1
            while j < len(plan) and j - i < chunk and not plan[j].burst:
                j += 1
        out.append(plan[i:j])
        i = j
    return out


def _send_all(clients: dict[str, Any], plan: list[Call], workers: list[Worker], chunk: int, timeout: float,
              producer_dir: Path, log: Log) -> None:  # fmt: skip
    """Send the plan to every worker, ``chunk`` calls at a time and one run at a time, alternating which run goes
    first.  Only one run is busy at any moment (no run slows the other down), slow drifts of the machine's load
    fall on both runs alike, and with ``chunk=1`` no task shares the machine with a planted task of its own run
    either, so tasks whose code is unchanged come out the same.  (Group children and retries still overlap; the
    burst is sent at once, to both runs alike.)  Publishing runs under producer capture, with the run's label, into
    ``producer_dir/<run>``: the demo's producer side."""
    from ..capture import install_producer

    pieces = _chunks(plan, chunk)
    sent = 0
    for k, piece in enumerate(pieces):
        for w in workers if k % 2 == 0 else workers[::-1]:
            client = clients[w.run]
            cap = install_producer(producer_dir / w.run, run=w.run, tasks=PRODUCER_TASKS)
            try:
                names = {publish(client, w.run, c, w.queue): c.task for c in piece}
            finally:
                cap.uninstall()
            if cap.counts.errors:
                raise GenerationError(f"producer capture failed: {cap.counts.by_error}")
            _wait_done(client, names, [w], timeout)
        sent += len(piece)
        if piece[0].burst:
            log(f"  sent a burst of {len(piece)} messages to each run")
        log(f"  sent {sent}/{len(plan)} messages to each run")


def _wait_done(client: Any, names: dict[str, str], workers: list[Worker], timeout: float) -> None:
    """Poll the result backend until every task in ``names`` (task id -> task name) and every group child they
    report is finished.

    Only ids are kept: polling the backend directly leaves no AsyncResult to be finalised after the client."""
    backend = client.backend
    deadline = time.monotonic() + timeout
    pending = set(names)
    next_look = 0.0
    while pending:
        look = time.monotonic() >= next_look  # at most 4 times a second: the sidecars of tasks stuck on RETRY
        if look:
            next_look = time.monotonic() + 0.25
        for tid in list(pending):
            meta = backend.get_task_meta(tid)
            if meta["status"] in READY_STATES or (
                look and meta["status"] == "RETRY" and _finished_on_disk(tid, workers)
            ):
                pending.discard(tid)
                result = meta.get("result")
                if isinstance(result, dict) and isinstance(result.get("children"), list):  # demo.batch.fan_out
                    pending.update(str(c) for c in result["children"])
        if not pending:
            return
        for w in workers:
            w.check_alive()
        if time.monotonic() > deadline:
            states = {tid: backend.get_task_meta(tid)["status"] for tid in sorted(pending)[:5]}
            raise GenerationError(
                f"{len(pending)} task(s) not finished after {timeout:.0f} s: "
                + ", ".join(f"{tid} ({names.get(tid, 'a child')}, {st})" for tid, st in states.items())
                + f" (runs: {', '.join(w.run for w in workers)})"
            )
        time.sleep(0.02)


def _finished_on_disk(tid: str, workers: list[Worker]) -> bool:
    """Whether an execution of task ``tid`` ended (SUCCESS or FAILURE), by its sidecars (every execution is
    profiled).  The result backend can say RETRY for good: ``retry(countdown=0)`` queues the next attempt at once,
    and when another pool process runs it to the end before the first attempt has stored RETRY, RETRY is stored
    last (seen in 6 of 86 generations)."""
    for w in workers:
        for side in w.directory.rglob(f"*.{tid}*.json"):
            try:
                state = json.loads(side.read_text()).get("state")
            except (OSError, ValueError, AttributeError):
                continue
            if state in READY_STATES:
                return True
    return False


def _profile_pairs(directory: Path) -> list[Path]:
    """Finished profiles (``.prof`` with their sidecar) anywhere under ``directory``."""
    return [p for p in directory.rglob("*.prof") if p.with_suffix(".json").exists()]


def _wait_files(w: Worker, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (n := len(_profile_pairs(w.directory))) < expected:
        w.check_alive()
        if time.monotonic() > deadline:
            raise GenerationError(f"{w.run}: {n} of {expected} profiles written after {timeout:.0f} s")
        time.sleep(0.1)


# ------------------------------------------------------------------------------------------------ post-processing
def _collect(raw: Path, dest: Path, exist_ok: bool = False) -> None:
    """Move profiles and sidecars into ``dest`` (flat), gzipping each ``.prof`` reproducibly (mtime 0)."""
    dest.mkdir(parents=True, exist_ok=exist_ok)
    for prof in sorted(_profile_pairs(raw)):
        side = prof.with_suffix(".json")
        with (
            open(prof, "rb") as src,
            open(dest / (prof.name + ".gz"), "wb") as out,
            gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=out, mtime=0) as gz,
        ):
            shutil.copyfileobj(src, gz)
        shutil.move(side, dest / side.name)
        prof.unlink()


def _sidecars(directory: Path, role: str = "worker") -> list[dict[str, Any]]:
    """The sidecars of one role (``worker`` or ``producer``) in ``directory``."""
    scs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))]
    return [sc for sc in scs if sc.get("role", "worker") == role]


def _after_first(sidecars: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sidecars without each worker process's first run of the task (its first-use allocations grow RSS in any
    run, and dominate the median of a small run); all of them when that leaves none."""
    seen: set[tuple[Any, Any]] = set()
    out = []
    for sc in sorted(sidecars, key=lambda sc: str(sc.get("started_at"))):
        key = (sc.get("hostname"), sc.get("pid"))
        if key in seen:
            out.append(sc)
        seen.add(key)
    return out or sidecars


def _rss_delta(sc: dict[str, Any]) -> int | None:
    mem = sc.get("memory") or {}
    if isinstance(mem.get("rss_before"), int) and isinstance(mem.get("rss_after"), int):
        return int(mem["rss_after"] - mem["rss_before"])
    return None


def _traced_retained(sc: dict[str, Any]) -> int | None:
    """The bytes a task allocated and still held when it returned, as tracemalloc saw them: the sum of the sidecar's
    ``memory.top`` sites (the largest ones alive at the end of the task, capture's own left out); ``None`` without
    tracemalloc data.  Tracing starts with the task, so nothing allocated before it counts, and the allocator's
    reuse of freed memory (which makes ``rss_after - rss_before`` swing either way) does not enter."""
    mem = sc.get("memory") or {}
    top = mem.get("top")
    if mem.get("peak_traced") is None or not isinstance(top, list):
        return None
    return sum(int(t.get("size") or 0) for t in top if isinstance(t, dict))


def summarize_run(directory: Path, run: str) -> dict[str, Any]:
    """The manifest's ``runs.<run>`` entry, from the sidecars in ``directory``."""
    scs = _sidecars(directory)
    states = Counter(str(sc.get("state")) for sc in scs)
    by_pid: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for sc in sorted(scs, key=lambda s: str(s.get("started_at"))):
        by_pid[int(sc["pid"])].append(sc)
    rss_growth = {}
    for pid, items in by_pid.items():
        rss = [(s.get("memory") or {}) for s in items]
        first, last = rss[0].get("rss_before"), rss[-1].get("rss_after")
        if isinstance(first, int) and isinstance(last, int):
            rss_growth[str(pid)] = last - first
    return {
        "directory": run,
        "variant": run,
        "hostname": sorted({str(sc.get("hostname")) for sc in scs}),
        "profiles": len(scs),
        "tasks": dict(sorted(Counter(str(sc.get("task_name")) for sc in scs).items())),
        "states": dict(sorted(states.items())),
        "failures": states.get("FAILURE", 0),
        "retries": states.get("RETRY", 0),
        "pids": sorted(by_pid),
        "profiles_per_pid": {str(pid): len(v) for pid, v in sorted(by_pid.items())},
        "rss_growth_per_pid": rss_growth,
        "with_sql": sum(1 for sc in scs if (sc.get("sql") or {}).get("count")),
        "with_memory": sum(1 for sc in scs if sc.get("memory")),
        "bytes": sum(p.stat().st_size for p in directory.iterdir() if p.is_file()),
        "publishes": len(pubs := _sidecars(directory, "producer")),
        "median_publish_s": _median([float(sc["publish_s"]) for sc in pubs]),
        "started_at": min((str(sc.get("started_at")) for sc in scs), default=None),
        "finished_at": max((str(sc.get("finished_at")) for sc in scs), default=None),
    }


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def observe(root: Path) -> list[dict[str, Any]]:
    """What each planted change looks like in the data at ``root`` (``root/baseline``, ``root/candidate``).

    Task-level numbers come from the sidecars; function-level numbers from ``cl.load`` and ``ps.resolve`` (so a
    planted ``function`` that does not resolve uniquely is an error here, not a surprise in a test)."""
    import celerylab as cl

    ps = cl.load(str(root), cache=False, progress=False)
    if len(ps.errors):
        raise GenerationError(f"{len(ps.errors)} generated file(s) do not load:\n{ps.errors.head().to_string()}")
    scs = {run: _sidecars(root / run) for run in RUNS}
    observed = []
    for item in mf.PLANTED:
        fid = ps.resolve(item["function"])
        entry: dict[str, Any] = {"id": item["id"], "function_label": str(ps.functions["label"].iloc[fid])}
        for run in RUNS:
            mine = [s for s in scs[run] if s.get("task_name") == item["task"] and s.get("state") == "SUCCESS"]
            sub = ps.where(run=run, task_name=item["task"], state="SUCCESS", role="worker")
            st = sub.stats
            cum = st.loc[st["func_id"] == fid].groupby("profile_id")["cumtime"].sum()
            entry[run] = {
                "profiles": len(mine),
                "median_wall_s": _median([float(s["wall_s"]) for s in mine]),
                "median_sql_count": _median([float((s.get("sql") or {}).get("count") or 0) for s in mine]),
                "median_rss_delta": _median([d for s in _after_first(mine) if (d := _rss_delta(s)) is not None]),
                "median_traced_retained": _median(
                    [r for s in _after_first(mine) if (r := _traced_retained(s)) is not None]
                ),
                "function_mean_cumtime_s": float(cum.sum() / len(sub)) if len(sub) else None,
            }
        b, c = entry["baseline"], entry["candidate"]
        if b["median_wall_s"] and c["median_wall_s"]:
            entry["wall_ratio"] = round(c["median_wall_s"] / b["median_wall_s"], 3)
        if b["function_mean_cumtime_s"] and c["function_mean_cumtime_s"]:
            entry["function_cumtime_ratio"] = round(c["function_mean_cumtime_s"] / b["function_mean_cumtime_s"], 3)
        observed.append(entry)
    return observed


def observe_producer(root: Path) -> list[dict[str, Any]]:
    """What each planted producer-side change looks like: median publish time per run, the planted function's
    mean cumulative time per publish, and their ratios."""
    import celerylab as cl

    ps = cl.load(str(root), cache=False, progress=False).where(role="producer")
    observed = []
    for item in mf.PLANTED_PRODUCER:
        fid = ps.resolve(item["function"])
        entry: dict[str, Any] = {"id": item["id"], "function_label": str(ps.functions["label"].iloc[fid])}
        for run in RUNS:
            sub = ps.where(run=run, task_name=item["task"])
            st = sub.stats
            cum = st.loc[st["func_id"] == fid, "cumtime"].sum()
            entry[run] = {
                "publishes": len(sub),
                "median_publish_s": _median(sub.profiles["publish_s"].astype(float).tolist()),
                "function_mean_cumtime_s": float(cum / len(sub)) if len(sub) else None,
            }
        b, c = entry["baseline"], entry["candidate"]
        if b["median_publish_s"] and c["median_publish_s"]:
            entry["publish_ratio"] = round(c["median_publish_s"] / b["median_publish_s"], 3)
        observed.append(entry)
    return observed


def observe_queue_wait(root: Path) -> dict[str, Any]:
    """The burst's queue-wait episode in each run (:func:`celerylab.analysis.queue_wait_episodes`)."""
    import celerylab as cl
    from celerylab.analysis import latency, queue_wait_episodes

    ps = cl.load(str(root), cache=False, progress=False)
    out: dict[str, Any] = {}
    for run in RUNS:
        sub = ps.where(run=run)
        eps = queue_wait_episodes(sub, threshold=mf.QUEUE_WAIT["threshold_s"])
        lat = latency(sub).set_index(["task_name", "stage"])
        key = (mf.QUEUE_WAIT["task"], "queue_wait")
        out[run] = {
            "episodes": len(eps),
            "episode_p95_max_s": round(float(eps["p95_max"].max()), 3) if len(eps) else None,
            "episode_tasks": sorted({t for ts in eps["tasks"] for t in ts}) if len(eps) else [],
            "queue_wait_p95_s": round(float(lat.loc[key, "p95"]), 3) if key in lat.index else None,
        }
    return out


def observe_unchanged(root: Path) -> dict[str, dict[str, Any]]:
    """Median wall time per unchanged task in each run (SUCCESS only) and their ratio: what "same" looks like."""
    scs = {run: _sidecars(root / run) for run in RUNS}
    out: dict[str, dict[str, Any]] = {}
    for task in mf.UNCHANGED_TASKS:
        med = {
            run: _median(
                [float(s["wall_s"]) for s in scs[run] if s.get("task_name") == task and s.get("state") == "SUCCESS"]
            )
            for run in RUNS
        }
        b, c = med["baseline"], med["candidate"]
        out[task] = {"baseline_median_wall_s": b, "candidate_median_wall_s": c,
                     "ratio": round(c / b, 3) if b and c else None}  # fmt: skip
    return out


def check_producer_and_queue(observed: list[dict[str, Any]], queue: dict[str, Any]) -> list[str]:
    """The producer-side plant and the queue-wait burst that did not show in the data (empty when both did)."""
    problems = []
    for item, obs in zip(mf.PLANTED_PRODUCER, observed):
        ratio = obs.get("publish_ratio")
        if not (ratio and ratio > 1.2):
            problems.append(f"{item['id']}: publishing {item['task']} is not clearly slower (ratio {ratio})")
    for run in RUNS:
        if not queue[run]["episodes"] or mf.QUEUE_WAIT["task"] not in queue[run]["episode_tasks"]:
            problems.append(f"queue wait: no episode of {mf.QUEUE_WAIT['task']} in {run}: {queue[run]}")
    return problems


#: The leak check (:func:`check_planted`).  The candidate's ``cache_thumbnail`` keeps a 768 KiB copy per call, the
#: baseline's a thumbnail of at most 4.7 KiB in a bounded LRU.  Measured per thumbnail task (``_traced_retained``)
#: in 74 generations of 20 executions per run (139 tasks per side) and two of 340: baseline 6.6-15.0 KiB,
#: candidate 771.6-778.4 KiB.
LEAK_MIN_RETAINED = 512 * 1024
LEAK_MAX_BASELINE_RETAINED = 64 * 1024


def check_planted(observed: list[dict[str, Any]]) -> list[str]:
    """The planted effects that did not show in the data (empty when all did).

    Checked: direction of the planted function's mean cumulative time; for the N+1 more SQL statements per task;
    for the leak the memory each candidate task still holds when it returns (tracemalloc, median over the tasks, each
    process's first run of the task left out): most of the copied source image, and next to none in the baseline.

    The leak is not checked on RSS (``median_rss_delta`` is recorded, not checked): a non-leaking task's own
    ``rss_after - rss_before`` is the allocator's doing as much as the task's.  The first time a process's heap
    has to grow for the (freed) 768 KiB source image, glibc keeps the pages, so the first one or two thumbnails of a
    baseline process grow RSS about as much as a leaking one (measured in sets of 20 executions per run: baseline
    tasks up to 776 KiB, candidate tasks from 532 KiB), and only many thumbnails per process tell them apart, while
    a small set has one or two per run."""
    problems = []
    for item, obs in zip(mf.PLANTED, observed):
        ratio = obs.get("function_cumtime_ratio")
        direction = item["expect"]["direction"]
        if direction == "slower" and not (ratio and ratio > 1.5):
            problems.append(f"{item['id']}: {item['function']} is not clearly slower in the candidate (ratio {ratio})")
        if direction == "faster" and not (ratio and ratio < 1 / 1.5):
            problems.append(f"{item['id']}: {item['function']} is not clearly faster in the candidate (ratio {ratio})")
        if item["category"] == "db":
            b, c = obs["baseline"]["median_sql_count"], obs["candidate"]["median_sql_count"]
            if not (b and c and c >= 3 * b):
                problems.append(f"{item['id']}: SQL statements per task baseline {b}, candidate {c}: no N+1 shows")
        if item["kind"] == "leak":
            b, c = obs["baseline"].get("median_traced_retained"), obs["candidate"].get("median_traced_retained")
            if not (c is not None and c >= LEAK_MIN_RETAINED and b is not None and b <= LEAK_MAX_BASELINE_RETAINED):
                problems.append(f"{item['id']}: bytes a task still holds when it returns (tracemalloc, median) "
                                f"baseline {b}, candidate {c}: no leak shows")  # fmt: skip
    return problems


# ---------------------------------------------------------------------------------------------------- the driver
def _versions() -> dict[str, str]:
    import celery
    import sqlalchemy

    import celerylab

    return {"celerylab": celerylab.__version__, "celery": celery.__version__, "sqlalchemy": sqlalchemy.__version__,
            "python": platform.python_version()}  # fmt: skip


def generate(
    out: str | os.PathLike[str],
    *,
    per_run: int = 340,
    seed: int = 7,
    database: str | None = None,
    broker: str = DEFAULT_BROKER,
    concurrency: int = 2,
    chunk: int = 1,
    timeout: float = 180.0,
    log: Log = print,
) -> dict[str, Any]:
    """Produce ``OUT/baseline``, ``OUT/candidate`` and ``OUT/manifest.json``; returns the manifest.

    ``per_run`` is the exact number of profiled task executions per run (retries and group children included);
    ``chunk`` messages are in flight per run at a time; ``timeout`` bounds each wait (worker start, one chunk,
    the last files)."""
    from celery import Celery

    from . import db, settings

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = build_plan(per_run, seed)
    base_db = database or settings.default_database_url()
    token = uuid.uuid4().hex[:8]
    staging = Path(tempfile.mkdtemp(prefix=".generating-", dir=out))
    workers: list[Worker] = []
    client = Celery("celerylab-demo-generator", broker=broker, backend=broker)
    client.conf.update(broker_connection_retry_on_startup=True, result_expires=3600)
    clients = {run: producer_client(run, broker) for run in RUNS}
    producer_dir = staging / "raw-producer"
    urls = {run: run_database_url(base_db, run) for run in RUNS}
    t0 = time.monotonic()
    try:
        for run in RUNS:
            rows = db.seed(urls[run], seed=seed)
            log(f"seeded {urls[run].split('@')[-1]}: {rows}")
        for run in RUNS:
            workers.append(_start_worker(run, staging, urls[run], broker, concurrency, token))
        _wait_ready(client, workers, concurrency, timeout)
        for w in workers:
            log(f"worker {w.hostname} ready, pool processes {list(w.pids)}")
        log(f"sending {len(plan)} messages ({per_run} profiled executions) to each run")
        _send_all(clients, plan, workers, chunk, timeout, producer_dir, log)
        for w in workers:
            _wait_files(w, per_run, timeout)
    finally:
        for w in workers:
            _stop_worker(w)
        client.close()
        for c in clients.values():
            c.close()
        _forget_queues(broker, [w.queue for w in workers])
        for url in urls.values():
            try:
                db.drop_database(url)
            except Exception as e:  # the set is what matters; a leftover database is only reported
                log(f"could not drop {url}: {e}")
    try:
        for w in workers:
            _collect(w.directory, staging / w.run)
            if (n := len(list((staging / w.run).glob("*.json")))) != per_run:
                raise GenerationError(f"{w.run}: expected {per_run} profiles, found {n}")
            published = sum(1 for c in plan if c.task == PRODUCER_TASKS)
            _collect(producer_dir / w.run, staging / w.run, exist_ok=True)
            if (n := len(list((staging / w.run).glob("*.publish.json")))) != published:
                raise GenerationError(f"{w.run}: expected {published} producer profiles, found {n}")
        observed = observe(staging)
        observed_producer = observe_producer(staging)
        observed_queue = observe_queue_wait(staging) if any(c.burst for c in plan) else None
        problems = check_planted(observed)
        if observed_queue is not None:
            problems += check_producer_and_queue(observed_producer, observed_queue)
        if problems:
            raise GenerationError("planted changes do not show in the generated data:\n  " + "\n  ".join(problems))
        from sqlalchemy import make_url

        manifest = {
            "schema": mf.SCHEMA,
            "generated_by": "celerylab generate-samples",
            "command": f"celerylab generate-samples {out} --per-run {per_run} --seed {seed}",
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": _versions(),
            "seed": seed,
            "per_run": per_run,
            "messages_per_run": len(plan),
            "database": make_url(base_db).get_backend_name(),
            "broker": broker.split("://")[0],
            "worker": {
                "pool": "prefork",
                "concurrency": concurrency,
                "capture": {"sample_rate": 1.0, "memory": "tracemalloc", "sql": True},
            },
            "files": {
                "profile": "<task_name>.<task_id>*.prof.gz",
                "sidecar": "<same stem>.json",
                "publish": "<task_name>.<task_id>.publish.prof.gz (producer side)",
            },
            "producer": {
                "tasks": PRODUCER_TASKS,
                "sample_rate": 1.0,
                "candidate": "broker_pool_limit = 0 (a new broker connection per publish)",
            },
            "runs": {run: summarize_run(staging / run, run) for run in RUNS},
            "planted": [dict(p) for p in mf.PLANTED],
            "unchanged_tasks": list(mf.UNCHANGED_TASKS),
            "tasks": list(mf.TASKS),
            "observed": observed,
            "observed_unchanged": observe_unchanged(staging),
            "planted_producer": [dict(p) for p in mf.PLANTED_PRODUCER],
            "observed_producer": observed_producer,
            "queue_wait": dict(mf.QUEUE_WAIT, burst_messages=sum(c.burst for c in plan), observed=observed_queue),
        }
        problems = mf.validate_manifest(manifest)
        if problems:
            raise GenerationError("generated manifest is invalid: " + "; ".join(problems))
        (staging / mf.MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        for name in (*RUNS, mf.MANIFEST_NAME):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            (staging / name).rename(target)
        log(f"wrote {out} in {time.monotonic() - t0:.0f} s")
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)
