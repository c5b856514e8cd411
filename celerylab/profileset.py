"""ProfileSet: the object users hold — :class:`~celerylab.core.data.ProfileData` plus thin methods that delegate
to the analysis, report, call-graph and widget layers.

Nothing below this module imports it: the layers it delegates to work on ``ProfileData``, and every method here
is one call down (imported when called, so ``import celerylab`` stays light).  :func:`load` is
:func:`celerylab.load`.
"""

from __future__ import annotations

import functools
import inspect
import os
from typing import Any

import pandas as pd

from . import fmt
from .core.data import FuncRef, ProfileData
from .core.load import load as _load_data
from .core.sources import Source

__all__ = ["FuncRef", "ProfileSet", "load", "open_dataset"]


class ProfileSet(ProfileData):
    """Many profiles as tidy pandas frames, with the analysis at hand. Build one with :func:`celerylab.load`."""

    # -------------------------------------------------------------------------------------------- analysis
    def top(self, n: int | None = 20, by: str = "tottime", group_by: str | list[str] | None = None) -> pd.DataFrame:
        """The ``n`` functions with the most ``by``; see :func:`celerylab.analysis.top`."""
        from .analysis import top

        return top(self, n=n, by=by, group_by=group_by)

    def callers(self, func: FuncRef, *, split_by: str | None = None) -> pd.DataFrame:
        """Who calls ``func``, aggregated over the set (or per value of ``split_by``)."""
        from .analysis import callers

        return callers(self, func, split_by=split_by)

    def callees(self, func: FuncRef, *, split_by: str | None = None) -> pd.DataFrame:
        """What ``func`` calls, aggregated over the set (or per value of ``split_by``)."""
        from .analysis import callees

        return callees(self, func, split_by=split_by)

    # ------------------------------------------------------------------------------------------------ outputs
    def report(self, path: str | os.PathLike[str], **options: Any) -> str:
        """Write a self-contained HTML report (summary, top functions, time distributions, DB and memory
        hotspots, call graph) to ``path``; returns the path.  Options: :func:`celerylab.report.build_report`."""
        from .report import write_report

        return write_report(self, path, **options)

    def callgraph(self, path: str | os.PathLike[str], **options: Any) -> str:
        """Write the merged call graph (svg, png, pdf or dot, from the extension) to ``path``; returns the path.
        Options: :class:`celerylab.callgraph.CallgraphOptions` fields and ``timeout``."""
        from .callgraph import write_callgraph

        return write_callgraph(self, path, **options)

    def explore(self, **filters: Any) -> Any:
        """The interactive notebook explorer of this set (:func:`celerylab.widgets.explore`); ``filters`` are
        initial :meth:`where` conditions.  Imports ipywidgets/plotly only when called."""
        from .widgets._plot import plotly_lib

        plotly_lib()  # plotly.js on its way to the page while the kernel imports the tabs and draws the first one
        from .widgets import explore

        return explore(self, **filters)

    def diff(self, other: ProfileData | None = None, **options: Any) -> pd.DataFrame:
        """``cl.diff(self, other, **options)``, or with ``split_by=`` and no ``other`` a split of this set;
        see :func:`celerylab.analysis.diff`."""
        from .analysis import diff

        return diff(self, other, **options)

    def findings(self, split_by: str = "run", **options: Any) -> pd.DataFrame:
        """What changed between the two values of ``split_by`` per task, and why (ranked, with evidence);
        see :func:`celerylab.analysis.findings`."""
        from .analysis import findings

        return findings(self, split_by=split_by, **options)

    def call_tree(self, **options: Any) -> pd.DataFrame:
        """Call-tree nodes reconstructed from caller edges (an approximation); :func:`celerylab.analysis.call_tree`."""
        from .analysis import call_tree

        return call_tree(self, **options)

    def category_shares(self, by: str | list[str] | None = "task_name") -> pd.DataFrame:
        """Exclusive time per category per group; :func:`celerylab.analysis.category_shares`."""
        from .analysis import category_shares

        return category_shares(self, by=by)

    def db_hotspots(self, **options: Any) -> pd.DataFrame:
        """SQL statements from the sidecars, N+1 flags; :func:`celerylab.analysis.db_hotspots`."""
        from .analysis import db_hotspots

        return db_hotspots(self, **options)

    def latency(self, by: str | None = "task_name") -> pd.DataFrame:
        """Publish, queue wait and run per task with percentiles; :func:`celerylab.analysis.latency`."""
        from .analysis import latency

        return latency(self, by=by)

    def memory_hotspots(self, **options: Any) -> pd.DataFrame:
        """RSS growth per worker process, leak suspects; :func:`celerylab.analysis.memory_hotspots`."""
        from .analysis import memory_hotspots

        return memory_hotspots(self, **options)

    def rss_sequence(self, **options: Any) -> pd.DataFrame:
        """RSS after each task along each worker process; :func:`celerylab.analysis.rss_sequence`."""
        from .analysis import rss_sequence

        return rss_sequence(self, **options)

    # --------------------------------------------------------------------------------------------- display
    def _repr_html_(self) -> str:
        s = self.summary()
        rows = pd.DataFrame(
            [("profiles", f"{s['profiles']:,}"), ("tasks", str(s["tasks"])), ("runs", ", ".join(s["runs"]) or "—"),
             ("worker processes", str(s["workers"])), ("functions", f"{s['functions']:,}"),
             ("load errors", str(s["errors"]))],
            columns=["", "value"],
        )  # fmt: skip
        head = fmt.html_table(rows, inline_style=True)
        tasks = self.task_summary().head(10)
        cols = [c for c in ("task_name", "profiles", "failed", "wall_p50_s", "wall_p95_s", "total_s") if c in tasks]
        task_html = fmt.html_table(tasks, cols, inline_style=True) if len(tasks) else ""
        return f"<div><b>celerylab.ProfileSet</b>{head}{task_html}</div>"


@functools.wraps(_load_data)
def load(source: Source, **options: Any) -> ProfileSet:
    return ProfileSet.of(_load_data(source, **options))


load.__signature__ = inspect.signature(_load_data).replace(return_annotation="ProfileSet")  # type: ignore[attr-defined]


def open_dataset(path: str, *, storage_options: dict[str, Any] | None = None, scheduler: Any = None) -> Any:
    """Open a dataset written by ``celerylab ingest`` (:func:`celerylab.scale.open_dataset`); its
    ``to_profileset()`` gives a :class:`ProfileSet`.  Needs the ``scale`` extra (imported only here)."""
    from .scale import open_dataset as _open

    return _open(path, storage_options=storage_options, cls=ProfileSet, scheduler=scheduler)
