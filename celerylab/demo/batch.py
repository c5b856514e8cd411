"""A group fan-out: one task schedules a group of small scoring tasks (unchanged between runs)."""

from __future__ import annotations

import hashlib
import math
from typing import Any

from celery import group

from .app import app


@app.task(name="demo.batch.fan_out")
def fan_out_scoring(batch_id: int, items: int = 6) -> dict[str, Any]:
    """Schedule ``items`` :func:`score_item` tasks as one group; returns the ids (nobody waits inside a task)."""
    res = group(score_item.s(batch_id, i) for i in range(items)).apply_async()
    return {"group_id": res.id, "children": [r.id for r in res.results]}


@app.task(name="demo.batch.score_item")
def score_item(batch_id: int, item: int) -> float:
    """A small feature-hashing score for one item."""
    h = hashlib.blake2b(f"{batch_id}:{item}".encode(), digest_size=32).digest()
    features = [b / 255 for b in h]
    for _ in range(40):
        features = [math.tanh(f * 1.7 - 0.3) for f in features]
    return round(sum(features) / len(features), 6)
