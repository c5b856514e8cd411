"""The rules of the data that more than one layer relies on, each written once.

* :data:`UNKNOWN` — how a missing task name (or any missing group key) is shown and grouped;
* :func:`group_key` — a column with missing values replaced by :data:`UNKNOWN`, for grouping and labels;
* :func:`duration_column` / :func:`duration` — a task's duration: ``wall_s`` where capture recorded it, else the
  profile's ``total_tt`` (files from other tools have no wall time);
* :func:`pstats_row_order` / :func:`pstats_ordered` — the order in which ``pstats.Stats(*paths)`` adds rows: float
  sums in that order equal pstats' to the last digit; :func:`pstats_sum` — one such sum (``Stats.total_tt``);
* :func:`count_values` / :data:`UNKNOWN_COUNT` — a call count that a profiler did not record (pyinstrument writes
  -1): unknown, never added into a sum;
* :func:`caller_format_clash` — the one combination of files ``pstats.Stats`` refuses: the same caller→callee
  call recorded as a bare count (the pure-Python ``profile`` module) in one file and as ``(nc, cc, tt, ct)``
  (cProfile and the others) in another;
* :func:`id_lookup` — a boolean array indexed by profile id, the one way a subset of profiles is selected from the
  ``stats``/``edges`` rows;
* :func:`task_key` — the task a profile stands for when profiles are grouped per task: publishing a task (a producer
  profile) and running it (a worker profile) are never pooled.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

_LABEL = re.compile(r"^(?P<path>.+):(?P<line>\d+)\((?P<name>.*)\)$")


def short_label(label: object, width: int | None = None) -> str:
    """A function's short name for charts: ``/srv/app/reports.py:56(load_report_rows)`` →
    ``reports.load_report_rows:56`` (file stem, name, line); built-ins (``{built-in method …}``) unchanged.  With
    ``width``, cut to that many characters with an ellipsis.  The full label stays for hovers and tables."""
    text = "" if label is None else str(label)
    m = _LABEL.match(text)
    if m:
        stem = os.path.splitext(os.path.basename(m.group("path")))[0]
        text = f"{stem}.{m.group('name')}:{m.group('line')}" if stem else f"{m.group('name')}:{m.group('line')}"
    if width is not None and len(text) > width:
        text = text[: max(width - 1, 1)] + "…"
    return text


#: The label of a missing task name (or other group key).
UNKNOWN = "(unknown)"


def group_key(values: pd.Series) -> pd.Series:
    """``values`` as objects with every missing value replaced by :data:`UNKNOWN` (same index)."""
    obj = values.astype(object)
    return obj.where(obj.notna(), UNKNOWN)


def duration_column(profiles: pd.DataFrame) -> str:
    """``"wall_s"`` when any profile has a recorded wall time, else ``"total_tt"`` (the profiler's own total)."""
    return "wall_s" if "wall_s" in profiles and profiles["wall_s"].notna().any() else "total_tt"


def duration(profiles: pd.DataFrame) -> pd.Series:
    """Each profile's duration in seconds, by :func:`duration_column`."""
    return profiles[duration_column(profiles)]


def pstats_row_order(pid: np.ndarray, first_pid: int | None) -> np.ndarray:
    """Row positions of rows sorted by profile id, in the order ``pstats.Stats(*paths)`` adds them: the rows of
    the first profile, then the rest reversed (``Stats.add`` walks its arguments reversed)."""
    n = len(pid)
    if not n:
        return np.empty(0, dtype=np.int64)
    idx = np.arange(n, dtype=np.int64)
    if first_pid is None or pid[0] != first_pid:
        return idx[::-1].copy()
    k = int(np.searchsorted(pid, first_pid, side="right"))
    return np.concatenate([idx[:k], idx[k:][::-1]])


def pstats_ordered(pid: np.ndarray, first_pid: int | None, *arrays: np.ndarray) -> list[np.ndarray]:
    """``arrays`` (aligned with ``pid``, sorted by profile id) re-ordered as :func:`pstats_row_order` says, with
    plain slice copies instead of a gather."""
    n = len(pid)
    k = int(np.searchsorted(pid, first_pid, side="right")) if n and first_pid is not None and pid[0] == first_pid else 0
    if k == 0:
        return [a[::-1] for a in arrays]
    return [np.concatenate([a[:k], a[k:][::-1]]) for a in arrays]


def pstats_sum(pid: np.ndarray, first_pid: int | None, values: np.ndarray) -> float:
    """``values`` (aligned with ``pid``, sorted by profile id) summed one by one in :func:`pstats_row_order`:
    ``pstats.Stats(*paths).total_tt`` exactly (a pairwise ``sum()`` differs in the last digits)."""
    if not len(values):
        return 0.0
    ordered = pstats_ordered(pid, first_pid, np.asarray(values, dtype=np.float64))[0]
    return float(np.add.accumulate(ordered)[-1])  # accumulate adds strictly left to right


#: How a file writes a call count it does not know (pyinstrument: -1).  Every negative count is unknown.
UNKNOWN_COUNT = -1


def count_values(col: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A call-count column as ``(int64 values, unknown mask or None)``: missing (NA) or negative counts are
    unknown.  Sums of counts are unknown (NA) wherever one of their terms is."""
    if isinstance(col, pd.Series):
        values = col.to_numpy(dtype=np.int64, na_value=UNKNOWN_COUNT)
    else:
        values = np.asarray(col).astype(np.int64, copy=False)
    unknown = values < 0
    return values, (unknown if unknown.any() else None)


def count_array(col: pd.Series) -> np.ndarray:
    """A call-count column as a numpy integer array, unknown counts as :data:`UNKNOWN_COUNT` (no copy when the
    column is a plain numpy column)."""
    if isinstance(col.dtype, np.dtype):
        return col.to_numpy()
    return col.to_numpy(dtype=np.int64, na_value=UNKNOWN_COUNT)


def count_sums(codes: np.ndarray, values: np.ndarray, n: int) -> Any:
    """Per-code sums of call counts (``values`` as :func:`count_array` gives them): int64, or a nullable integer
    array with NA where one of the terms is unknown."""
    unknown = values < 0
    sums = np.zeros(n, dtype=np.int64)
    np.add.at(sums, codes, np.where(unknown, 0, values).astype(np.int64, copy=False))
    if not unknown.any():
        return sums
    return pd.arrays.IntegerArray(sums, np.bincount(codes, weights=unknown, minlength=n) > 0)


def column_facts(stats: dict[str, np.ndarray], edges: dict[str, np.ndarray]) -> dict[str, bool]:
    """What :func:`nullable_counts` and :func:`caller_format_clash` look for in a whole column, found once: a load
    that comes from the cache reads these from it instead of passing over millions of mapped rows again."""
    facts = {f"{part}.{c}.unknown": bool(len(cols[c]) and cols[c].min() < 0)
             for part, cols in (("stats", stats), ("edges", edges)) for c in ("ncalls", "pcalls")}  # fmt: skip
    tt = edges["tottime"]
    facts["edges.tottime.nan"] = bool(len(tt) and np.isnan(tt.sum()))
    return facts


def nullable_counts(values: np.ndarray) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """``values`` as is when every count is known, else a nullable integer array with the unknown ones NA."""
    if not len(values) or values.min() >= 0:  # the common case, without a mask's allocation
        return values
    unknown = values < 0
    return pd.arrays.IntegerArray(values.astype(values.dtype if values.dtype.kind == "i" else np.int64), unknown)


def caller_format_clash(
    pid: np.ndarray, caller: np.ndarray, callee: np.ndarray, tottime: np.ndarray
) -> tuple[int, int, int, int] | None:
    """``(profile with a bare count, profile with a tuple, caller_id, callee_id)`` for one caller→callee call that
    two profiles record in the two caller formats (pstats' ``add_callers`` raises TypeError adding them), else None.
    Bare counts are the edges whose times are NaN (:mod:`.decode` stores them so; a file's own NaN is refused)."""
    if not len(tottime) or not np.isnan(tottime.sum()):  # no NaN anywhere (a NaN makes the sum NaN)
        return None
    bare = np.isnan(tottime)
    if not bare.any() or bare.all():
        return None
    n = int(max(caller.max(), callee.max())) + 1
    key = caller.astype(np.int64) * n + callee
    both = np.intersect1d(key[bare], key[~bare])
    if not len(both):
        return None
    k = both[0]
    hit = key == k
    a = int(pid[hit & bare][0])
    b = int(pid[hit & ~bare][0])
    return a, b, int(k // n), int(k % n)


def id_lookup(ids: Iterable[int] | np.ndarray, *id_columns: np.ndarray) -> np.ndarray:
    """A boolean array ``lookup`` with ``lookup[pid]`` true for the profile ids ``ids``; long enough to be indexed
    by every id in ``id_columns`` (the ``profile_id`` columns it will be applied to)."""
    ids = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), dtype=np.int64)
    size = 1
    for col in (ids, *id_columns):
        if len(col):
            size = max(size, int(col.max()) + 1)
    lookup = np.zeros(size, dtype=bool)
    lookup[ids] = True
    return lookup


#: what a producer profile's task is called when profiles are grouped per task
PUBLISH_SUFFIX = " (publish)"


def task_key(profiles: pd.DataFrame) -> pd.Series:
    """Per profile, the task it stands for: :func:`group_key` of ``task_name``, with :data:`PUBLISH_SUFFIX` for
    producer profiles (``role == "producer"``), so that a task's publishes and its runs are separate groups."""
    names = group_key(profiles["task_name"]) if "task_name" in profiles else pd.Series(UNKNOWN, index=profiles.index)
    if "role" not in profiles:
        return names
    producer = (profiles["role"].astype(object) == "producer").to_numpy()
    if not producer.any():
        return names
    return names.where(~producer, names.astype(str) + PUBLISH_SUFFIX)
