"""The frames the tabs draw, all from :mod:`celerylab.analysis` (the widgets compute nothing of their own)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .. import analysis as an

if TYPE_CHECKING:
    from ..core.data import ProfileData

MIB = 2**20


def diff_frame(ps: ProfileData, column: str, a: object, b: object, *, pooled: bool = False) -> pd.DataFrame:
    """``cl.diff(ps, split_by=column, values=(a, b))`` with the API's defaults (each function within each task:
    :data:`celerylab.analysis.diff.DEFAULT_GROUP_BY`): per-invocation means, delta, ratio, p-values and status,
    ranked by contribution.  ``pooled``: every task's invocations together (``group_by=None``)."""
    if pooled:
        return an.diff(ps, split_by=column, values=(a, b), group_by=None)
    return an.diff(ps, split_by=column, values=(a, b))


def value_colors(ps: ProfileData, column: str) -> dict[str, str]:
    """The colour of each value of ``ps.profiles[column]`` (the run colours in A, B, … order), as every chart
    draws them."""
    from ..analysis.diff import ordered_values
    from ..charts._style import run_colors

    return run_colors(ordered_values(ps.profiles, column)) if column in ps.profiles.columns else {}


def calltree_frame(ps: ProfileData, *, root: int | None = None, max_depth: int = 8) -> pd.DataFrame:
    """Nodes ``id, parent, func_id, label, value, …`` of the call tree rebuilt from caller edges (an approximation)."""
    return an.call_tree(ps, root=root, max_depth=max_depth)


def sql_frame(ps: ProfileData) -> pd.DataFrame:
    """One row per normalised statement with ``n_plus_one`` flags (:func:`celerylab.analysis.db_hotspots`)."""
    return an.db_hotspots(ps)


def memory_frame(ps: ProfileData) -> pd.DataFrame:
    """One row per worker process with ``leak_suspect`` (:func:`celerylab.analysis.memory_hotspots`), plus the
    byte columns in MiB for display (``*_mib``)."""
    m = an.memory_hotspots(ps)
    for c in ("rss_first", "rss_last", "growth", "growth_per_task", "late_growth"):
        if c in m.columns:
            m[f"{c}_mib"] = m[c].astype(float) / MIB
    return m


def allocations_frame(ps: ProfileData) -> pd.DataFrame:
    """Allocation sites still held at task end, summed over the selection, largest first."""
    a = an.allocation_sites(ps)
    return a.sort_values("size", ascending=False, kind="stable").reset_index(drop=True) if len(a) else a


def findings_frame(ps: ProfileData, split_by: str = "run", *, evidence: bool = True) -> pd.DataFrame:
    """What changed per task and why (:func:`celerylab.analysis.findings`), ranked, with evidence (or without:
    the quick first answer)."""
    return an.findings(ps, split_by=split_by, evidence=evidence)
