"""``sample_profiles/manifest.json``: what the demo generator planted, and the per-run numbers it produced.

The schema (``"schema": "celerylab.samples/1"``) is documented in ``docs/demo.md``.  Tests of the analysis
(``cl.diff``, DB and memory suspects) read :data:`PLANTED` and :data:`UNCHANGED_TASKS` through the manifest, so a
change here is a change of the public sample set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import UsageError

SCHEMA = "celerylab.samples/1"
RUNS = ("baseline", "candidate")
KINDS = ("regression", "improvement", "leak")
CATEGORIES = ("db", "serialization", "memory", "cpu", "publish")

#: Every task of the demo app.
TASKS = (
    "demo.orders.process",
    "demo.reports.build",
    "demo.thumbnails.render",
    "demo.campaigns.send_batch",
    "demo.analytics.aggregate",
    "demo.partners.fetch_rates",
    "demo.batch.fan_out",
    "demo.batch.score_item",
    "demo.imports.import_contacts",
)

#: What the candidate run changes.  ``function`` is a fragment that ``ProfileSet.resolve`` finds uniquely;
#: ``expect`` says which way the change must show in the candidate, and on which measure.
PLANTED: tuple[dict[str, Any], ...] = (
    {
        "id": "n_plus_one",
        "kind": "regression",
        "task": "demo.reports.build",
        "function": "load_report_rows",
        "module": "celerylab/demo/reports.py",
        "category": "db",
        "description": "The report walks the lazy-loaded order.lines relationship: one SELECT per order for its "
        "lines (25-35 per report) instead of one joined SELECT.",
        "expect": {"direction": "slower", "measure": "cumtime", "sql_per_task": "more"},
    },
    {
        "id": "slow_serializer",
        "kind": "regression",
        "task": "demo.campaigns.send_batch",
        "function": "encode_payload",
        "module": "celerylab/demo/campaigns.py",
        "category": "serialization",
        "description": "Payloads are rendered with json.dumps(indent=2, sort_keys=True, default=...), which takes "
        "json's pure-Python encoder (json/encoder.py _iterencode*) instead of the C encoder.",
        "expect": {"direction": "slower", "measure": "cumtime"},
    },
    {
        "id": "thumbnail_cache_leak",
        "kind": "leak",
        "task": "demo.thumbnails.render",
        "function": "cache_thumbnail",
        "module": "celerylab/demo/thumbnails.py",
        "category": "memory",
        "description": "A module-level dict keeps a copy of every source image (~768 KiB) under a per-call key and "
        "never evicts it: each worker process's RSS grows with every thumbnail task.",
        "expect": {
            "direction": "grows",
            "measure": "bytes a task still holds when it returns (tracemalloc), per task; RSS per worker process",
        },
    },
    {
        "id": "rolling_totals_speedup",
        "kind": "improvement",
        "task": "demo.analytics.aggregate",
        "function": "rolling_totals",
        "module": "celerylab/demo/analytics.py",
        "category": "cpu",
        "description": "Rolling window sums keep a running total (O(n)) instead of re-adding the window for every "
        "point (O(n*w)).",
        "expect": {"direction": "faster", "measure": "cumtime"},
    },
)

#: What the candidate changes on the producer side (the generator's publishing, profiled with ``role: producer``).
PLANTED_PRODUCER: tuple[dict[str, Any], ...] = (
    {
        "id": "connection_per_publish",
        "kind": "regression",
        "role": "producer",
        "task": "demo.orders.process",
        "function": "establish_connection",
        "category": "publish",
        "description": "The producer hands every send_task a broker connection of its own (connection=...), so "
        "each publish connects to the broker and builds a new producer instead of reusing the pooled one.",
        "expect": {"direction": "slower", "measure": "publish_s"},
    },
)

#: The queue-wait episode: a burst of messages sent at once, more than the two pool processes can take, in both
#: runs alike (so it is not a change between them, but it shows in each run's latency).
QUEUE_WAIT: dict[str, Any] = {
    "task": "demo.imports.import_contacts",
    "threshold_s": 0.5,
    "description": "Halfway through each run a burst of demo.imports.import_contacts messages (a bulk upload) is "
    "sent at once: they queue behind the worker's two pool processes (prefetched, then waiting for a free process).",
}

#: Tasks whose code path is identical in both runs: a correct diff reports them ``same``.
UNCHANGED_TASKS = (
    "demo.orders.process",
    "demo.partners.fetch_rates",
    "demo.batch.fan_out",
    "demo.batch.score_item",
    "demo.imports.import_contacts",
)

MANIFEST_NAME = "manifest.json"


def default_path() -> Path:
    """``manifest.json`` in :func:`celerylab.sample_profiles`."""
    from ..core.samples import sample_profiles

    return sample_profiles() / MANIFEST_NAME


def read_manifest(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read and validate a manifest (default: the shipped one); raises ``ValueError`` naming every problem."""
    p = Path(path) if path is not None else default_path()
    if p.is_dir():
        p = p / MANIFEST_NAME
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UsageError(f"{p}: cannot read the manifest: {e}") from e
    problems = validate_manifest(obj)
    if problems:
        raise UsageError(f"{p}: invalid manifest:\n  " + "\n  ".join(problems))
    return obj


def validate_manifest(obj: Any) -> list[str]:
    """Every way ``obj`` departs from the ``celerylab.samples/1`` schema (empty when it is valid)."""
    if not isinstance(obj, dict):
        return [f"manifest must be a JSON object, not {type(obj).__name__}"]
    problems = []
    if obj.get("schema") != SCHEMA:
        problems.append(f"schema must be {SCHEMA!r}, not {obj.get('schema')!r}")
    runs = obj.get("runs")
    if not isinstance(runs, dict) or set(runs) != set(RUNS):
        problems.append(f"runs must be an object with exactly the keys {list(RUNS)}")
        runs = {}
    for name, run in runs.items():
        if not isinstance(run, dict):
            problems.append(f"runs.{name} must be an object")
            continue
        for key, typ in (("directory", str), ("profiles", int), ("tasks", dict), ("states", dict),
                         ("failures", int), ("retries", int), ("pids", list), ("bytes", int)):  # fmt: skip
            if not isinstance(run.get(key), typ):
                problems.append(f"runs.{name}.{key} must be a {typ.__name__}")
        tasks, profiles = run.get("tasks"), run.get("profiles")
        if isinstance(tasks, dict) and isinstance(profiles, int) and sum(tasks.values()) != profiles:
            problems.append(f"runs.{name}: tasks counts do not add up to profiles")
    planted = obj.get("planted")
    if not isinstance(planted, list) or not planted:
        problems.append("planted must be a non-empty list")
        planted = []
    seen = set()
    for i, item in enumerate(planted):
        if not isinstance(item, dict):
            problems.append(f"planted[{i}] must be an object")
            continue
        for key in ("id", "kind", "task", "function", "category", "description"):
            if not isinstance(item.get(key), str) or not item.get(key):
                problems.append(f"planted[{i}].{key} must be a non-empty string")
        if item.get("kind") not in KINDS:
            problems.append(f"planted[{i}].kind must be one of {list(KINDS)}")
        if item.get("category") not in CATEGORIES:
            problems.append(f"planted[{i}].category must be one of {list(CATEGORIES)}")
        if item.get("id") in seen:
            problems.append(f"planted[{i}].id {item.get('id')!r} is not unique")
        seen.add(item.get("id"))
    producer = obj.get("planted_producer", [])
    if not isinstance(producer, list):
        problems.append("planted_producer must be a list")
        producer = []
    for i, item in enumerate(producer):
        keys = ("id", "kind", "role", "task", "function", "description")
        if not isinstance(item, dict) or any(not isinstance(item.get(k), str) or not item.get(k) for k in keys):
            problems.append(f"planted_producer[{i}] must be an object with {', '.join(keys)}")
    queue = obj.get("queue_wait")
    if queue is not None and (not isinstance(queue, dict) or not isinstance(queue.get("task"), str)):
        problems.append("queue_wait must be an object naming its task")
    unchanged = obj.get("unchanged_tasks")
    if not isinstance(unchanged, list) or not all(isinstance(t, str) for t in unchanged):
        problems.append("unchanged_tasks must be a list of task names")
    else:
        overlap = set(unchanged) & {p.get("task") for p in planted if isinstance(p, dict)}
        if overlap:
            problems.append(f"unchanged_tasks must not name planted tasks: {sorted(overlap)}")
    return problems
