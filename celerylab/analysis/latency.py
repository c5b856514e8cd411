"""The whole life of a task: publish, queue wait and run, per task, with percentiles and over time.

Where each number comes from (docs/producer.md says what each can and cannot be trusted for):

* ``publish`` — ``publish_s`` of producer profiles (``role == "producer"``): the wall time of one outermost
  ``delay``/``apply_async``/``send_task`` in the producer process;
* ``queue_wait`` — ``queue_wait_s`` of worker profiles: start of run − max(publish, eta) (two hosts' clocks);
  split into ``broker_wait`` (received − publish) and ``prefetch_wait`` (start − max(received, eta), one host);
* ``run`` — the worker's duration of the task (``wall_s``; :func:`celerylab.core.rules.duration`).

Every stage is summarised over the profiles that have it (a producer profile has no queue wait, a worker profile
no publish time); ``n`` says how many.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.data import ProfileData
from ..core.rules import duration, group_key
from ..errors import ColumnNotFound

#: stage -> the profiles column it comes from ("" for the task's run time) and the role that records it
STAGES: dict[str, tuple[str, str]] = {
    "publish": ("publish_s", "producer"),
    "queue_wait": ("queue_wait_s", "worker"),
    "broker_wait": ("broker_wait_s", "worker"),
    "prefetch_wait": ("prefetch_wait_s", "worker"),
    "run": ("", "worker"),
}
LATENCY_COLUMNS = ["stage", "n", "mean", "p50", "p95", "p99", "max"]


def stage_values(ps: ProfileData) -> pd.DataFrame:
    """Long form, one row per (profile, stage it has): ``profile_id, task_name, started_at, stage, seconds``."""
    p = ps.profiles
    role = p["role"].astype(object) if "role" in p.columns else pd.Series("worker", index=p.index, dtype=object)
    role = role.where(role.notna(), "worker")
    run_time = duration(p) if len(p) else pd.Series(dtype=float)
    parts = []
    for stage, (col, who) in STAGES.items():
        if col and col not in p.columns:
            continue
        values = pd.to_numeric(p[col], errors="coerce") if col else run_time
        keep = (role == who).to_numpy() & values.notna().to_numpy()
        if not keep.any():
            continue
        parts.append(pd.DataFrame({
            "profile_id": p["profile_id"].to_numpy()[keep],
            "task_name": group_key(p["task_name"]).to_numpy()[keep],
            "started_at": p["started_at"].to_numpy()[keep],
            "stage": stage,
            "seconds": values.to_numpy(dtype=float)[keep],
        }))  # fmt: skip
    if not parts:
        return pd.DataFrame(columns=["profile_id", "task_name", "started_at", "stage", "seconds"])
    return pd.concat(parts, ignore_index=True)


def _summary(g: pd.core.groupby.SeriesGroupBy) -> pd.DataFrame:
    return pd.DataFrame({
        "n": g.size(), "mean": g.mean(), "p50": g.median(), "p95": g.quantile(0.95), "p99": g.quantile(0.99),
        "max": g.max(),
    })  # fmt: skip


def _by_columns(by: str | list[str] | None) -> list[str]:
    return [] if by is None else ([by] if isinstance(by, str) else list(by))


def _with_columns(ps: ProfileData, v: pd.DataFrame, cols: list[str], where: str) -> pd.DataFrame:
    """``v`` (stage values) with the profiles columns ``cols`` added (as group keys: missing → ``(unknown)``)."""
    for col in cols:
        if col in v.columns:
            continue
        if col not in ps.profiles.columns:
            raise ColumnNotFound(f"{where}(by={cols!r}): no such column {col!r} in profiles")
        key = group_key(ps.profiles.set_index("profile_id")[col])
        v = v.assign(**{col: key.reindex(v["profile_id"]).to_numpy()})
    return v


def latency(ps: ProfileData, by: str | list[str] | None = "task_name") -> pd.DataFrame:
    """Per task (or per value of other profiles columns, e.g. ``["task_name", "run"]``; ``None``: overall) and
    stage: ``n, mean, p50, p95, p99, max`` in seconds.  Stages in life order: publish, queue_wait (broker_wait +
    prefetch_wait), run."""
    cols = _by_columns(by)
    v = _with_columns(ps, stage_values(ps), cols, "latency")
    keys = [*cols, "stage"]
    if not len(v):
        return pd.DataFrame(columns=[*keys[:-1], *LATENCY_COLUMNS])
    out = _summary(v.groupby(keys, sort=False)["seconds"]).reset_index()
    order = {s: i for i, s in enumerate(STAGES)}
    out = out.assign(_o=out["stage"].map(order)).sort_values([*keys[:-1], "_o"], kind="stable")
    return out.drop(columns="_o").reset_index(drop=True)[[*keys[:-1], *LATENCY_COLUMNS]]


def latency_over_time(ps: ProfileData, *, freq: str = "1min", stages: tuple[str, ...] = ("queue_wait", "run"),
                      by: str | list[str] | None = "task_name") -> pd.DataFrame:  # fmt: skip
    """Per time bin (by start time, ``freq`` as pandas offsets: ``"10s"``, ``"1min"``, ``"1h"``), task (or the
    ``by`` profiles columns, e.g. ``["task_name", "run"]``) and stage: ``time, [task_name,] stage, n, p50, p95, p99,
    max`` — queue wait rising while run time stays flat is a backlog."""
    by_cols = _by_columns(by)
    v = stage_values(ps)
    v = v.loc[v["stage"].isin(stages) & pd.notna(v["started_at"])]
    cols = ["time", *by_cols, "stage", "n", "p50", "p95", "p99", "max"]
    if not len(v):
        return pd.DataFrame(columns=cols)
    v = _with_columns(ps, v, by_cols, "latency_over_time")
    v = v.assign(time=pd.to_datetime(v["started_at"], utc=True).dt.floor(freq))
    keys = ["time", *by_cols, "stage"]
    g = v.groupby(keys, sort=True)["seconds"]
    out = pd.DataFrame({"n": g.size(), "p50": g.median(), "p95": g.quantile(0.95), "p99": g.quantile(0.99),
                        "max": g.max()}).reset_index()  # fmt: skip
    return out[cols]


def queue_wait_episodes(ps: ProfileData, *, threshold: float = 1.0, freq: str = "10s") -> pd.DataFrame:
    """Time bins whose p95 queue wait exceeds ``threshold`` seconds, merged into episodes: ``start, end,
    tasks, n, p95_max`` — when work waited because the workers were saturated (or prefetch held it)."""
    t = latency_over_time(ps, freq=freq, stages=("queue_wait",), by=None)
    cols = ["start", "end", "n", "p95_max", "tasks"]
    hot = t.loc[t["p95"] > threshold].reset_index(drop=True)
    if not len(hot):
        return pd.DataFrame(columns=cols)
    step = pd.Timedelta(freq)
    new = np.r_[True, (hot["time"].diff().iloc[1:] > step).to_numpy()]
    hot = hot.assign(episode=np.cumsum(new))
    v = stage_values(ps)
    v = v.loc[v["stage"] == "queue_wait"].assign(time=lambda d: pd.to_datetime(d["started_at"], utc=True))
    rows = []
    for _, e in hot.groupby("episode"):
        start, end = e["time"].min(), e["time"].max() + step
        inside = v.loc[(v["time"] >= start) & (v["time"] < end) & (v["seconds"] > threshold)]
        rows.append((start, end, int(e["n"].sum()), float(e["p95"].max()),
                     sorted(inside["task_name"].astype(str).unique().tolist())))  # fmt: skip
    return pd.DataFrame(rows, columns=cols)
