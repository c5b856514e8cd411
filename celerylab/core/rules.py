"""The rules of the data that more than one layer relies on, each written once.

* :data:`UNKNOWN` — how a missing task name (or any missing group key) is shown and grouped;
* :func:`group_key` — a column with missing values replaced by :data:`UNKNOWN`, for grouping and labels;
* :func:`duration_column` / :func:`duration` — a task's duration: ``wall_s`` where capture recorded it, else the
  profile's ``total_tt`` (files from other tools have no wall time);
* :func:`pstats_row_order` / :func:`pstats_ordered` — the order in which ``pstats.Stats(*paths)`` adds rows: float
  sums in that order equal pstats' to the last digit;
* :func:`id_lookup` — a boolean array indexed by profile id, the one way a subset of profiles is selected from the
  ``stats``/``edges`` rows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

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
