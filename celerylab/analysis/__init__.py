"""Analysis over a ProfileSet: pure pandas, no widgets or plotting.

Public functions (columns in ``docs/analysis.md``): :func:`top`, :func:`callers`, :func:`callees`,
:func:`call_tree`, :func:`categorize`,
:func:`findings`, :func:`findings_evidence`, :func:`category_shares`, :func:`diff`, :func:`db_time`,
:func:`db_hotspots`, :func:`n_plus_one`, :func:`memory_by_task`, :func:`memory_hotspots`, :func:`leak_suspects`,
:func:`rss_sequence`, :func:`allocation_sites`, :func:`latency`, :func:`latency_over_time`, :func:`queue_wait_episodes`.
"""

from __future__ import annotations

from .calltree import APPROXIMATION_NOTE, call_tree
from .categories import CATEGORIES, CATEGORY_RULES, categorize, category_of, category_shares
from .diff import diff
from .drilldown import callees, callers, per_invocation, top
from .findings import findings, findings_evidence
from .hotspots import (
    allocation_sites,
    db_hotspots,
    db_time,
    leak_suspects,
    memory_by_task,
    memory_hotspots,
    n_plus_one,
    normalize_sql,
    rss_sequence,
)
from .latency import latency, latency_over_time, queue_wait_episodes

__all__ = [
    "APPROXIMATION_NOTE",
    "CATEGORIES",
    "CATEGORY_RULES",
    "allocation_sites",
    "call_tree",
    "callees",
    "callers",
    "categorize",
    "category_of",
    "category_shares",
    "db_hotspots",
    "db_time",
    "diff",
    "findings",
    "findings_evidence",
    "latency",
    "latency_over_time",
    "leak_suspects",
    "memory_by_task",
    "memory_hotspots",
    "n_plus_one",
    "normalize_sql",
    "per_invocation",
    "queue_wait_episodes",
    "rss_sequence",
    "top",
]
