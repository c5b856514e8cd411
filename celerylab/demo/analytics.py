"""Metrics aggregation (CPU-bound).  **Planted improvement (candidate):** :func:`rolling_totals` keeps a running
sum (O(n)) instead of re-adding the whole window for every point (O(n·w))."""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

from .app import app, candidate


@app.task(name="demo.analytics.aggregate")
def aggregate_metrics(series_id: int, points: int = 3000, window: int = 60) -> dict[str, Any]:
    """Rolling totals, per-hour buckets and percentiles of one metric series."""
    values = generate_series(series_id, points)
    totals = rolling_totals(values, window)
    buckets = bucket_stats(values, 60)
    return {
        "series_id": series_id,
        "peak_window": round(max(totals), 3),
        "buckets": len(buckets),
        "p95": round(statistics.quantiles(values, n=20)[-1], 3),
    }


def generate_series(series_id: int, points: int) -> list[float]:
    """A deterministic noisy daily-seasonal series."""
    rng = random.Random(series_id)
    return [50 + 20 * math.sin(i / 90) + rng.gauss(0, 5) for i in range(points)]


def rolling_totals(values: list[float], window: int) -> list[float]:
    """Sum of the last ``window`` values at every point."""
    if candidate():
        out = []
        acc = 0.0
        for i, v in enumerate(values):
            acc += v
            if i >= window:
                acc -= values[i - window]
            out.append(acc)
        return out
    totals = []
    for i in range(len(values)):
        s = 0.0
        for j in range(max(0, i - window + 1), i + 1):
            s += values[j]
        totals.append(s)
    return totals


def bucket_stats(values: list[float], size: int) -> list[dict[str, float]]:
    """Mean, min, max and standard deviation of consecutive buckets of ``size`` points."""
    out = []
    for start in range(0, len(values), size):
        b = values[start : start + size]
        out.append(
            {
                "mean": statistics.fmean(b),
                "min": min(b),
                "max": max(b),
                "stdev": statistics.pstdev(b) if len(b) > 1 else 0.0,
            }
        )
    return out
