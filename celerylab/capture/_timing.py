"""The whole life of a task: when it was published, received by a worker, and started.

* The producer side stamps every message it publishes (sampled or not) with two small headers:
  :data:`PUBLISHED_AT` (its wall clock, seconds since the epoch) and :data:`PRODUCER` (``host:pid``).  Celery copies
  message headers into ``task.request``, so the worker reads them there.
* The worker's consumer (the process that takes messages off the broker; the parent of a prefork pool) stamps
  :data:`RECEIVED_AT` into the request it hands to the pool when the message arrives.
* When the task runs, :func:`worker_timing` turns those clocks and the task's own start into the sidecar fields:

  ``queue_wait_s``     start of run − max(publish, eta): how long the task waited beyond what was asked;
  ``broker_wait_s``    received − publish: in the broker (two hosts' clocks: skew shows here);
  ``prefetch_wait_s``  start of run − max(received, eta): held by the worker (one host's clock);
  ``eta_delay_s``      eta − publish: the delay the producer asked for (eta/countdown), never counted as waiting.

The raw readings stay in the sidecar (``published_at``, ``received_at``, ``eta``, ``producer``), so that a reader
can judge clock skew (``clock_skew_suspect`` is set when a difference across hosts is negative).
"""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime
from typing import Any

PUBLISHED_AT = "celerylab_published_at"
PRODUCER = "celerylab_producer"
RECEIVED_AT = "celerylab_received_at"

_IDENTITY: str | None = None


def identity() -> str:
    """``host:pid`` of this process (computed again after a fork)."""
    global _IDENTITY
    pid = os.getpid()
    if _IDENTITY is None or not _IDENTITY.endswith(f":{pid}"):
        _IDENTITY = f"{socket.gethostname()}:{pid}"
    return _IDENTITY


def stamp_published(headers: Any) -> None:
    """Add the publish time and producer to a message's headers (the ``before_task_publish`` receiver)."""
    if isinstance(headers, dict):
        headers[PUBLISHED_AT] = time.time()
        headers[PRODUCER] = identity()


def stamp_received(request: Any) -> None:
    """Record when the worker received the message, in the request dict the pool process gets."""
    rd = getattr(request, "_request_dict", None)
    if isinstance(rd, dict):
        rd[RECEIVED_AT] = time.time()


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
        return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return None


def worker_timing(request: Any, started: float) -> dict[str, Any]:
    """The sidecar's timing fields for a task that started running at ``started`` (epoch seconds); empty when the
    message carries no publish time and the worker stamped no receive time."""
    published = _epoch(getattr(request, PUBLISHED_AT, None))
    received = _epoch(getattr(request, RECEIVED_AT, None))
    eta = _epoch(getattr(request, "eta", None))
    if published is None and received is None:
        return {}
    out: dict[str, Any] = {
        "published_at": published,
        "received_at": received,
        "eta": eta,
        "producer": getattr(request, PRODUCER, None),
    }
    ready = max(x for x in (published, eta) if x is not None) if (published or eta) else None
    if ready is not None:
        out["queue_wait_s"] = round(started - ready, 6)
    if published is not None and received is not None:
        out["broker_wait_s"] = round(received - published, 6)
    if received is not None:
        out["prefetch_wait_s"] = round(started - max(received, eta or received), 6)
    if published is not None and eta is not None:
        out["eta_delay_s"] = round(max(eta - published, 0.0), 6)
    out["clock_skew_suspect"] = bool(
        (published is not None and received is not None and received < published)
        or (published is not None and started < published)
    )
    return out
