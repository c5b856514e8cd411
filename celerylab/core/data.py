"""ProfileData: tidy frames of many loaded profiles, and the exact aggregations over them.

Frames (see docs/architecture.md, "The data contract"):

* ``profiles``  — one row per loaded file: ``profile_id, path, task_id, task_name, run, hostname, pid, state,
  started_at, finished_at, wall_s, cpu_s, …sidecar/metadata columns…, total_tt, n_functions, n_edges``;
* ``functions`` — one row per distinct function: ``func_id, file, line, name, label, module, kind``;
* ``stats``     — ``profile_id, func_id, ncalls, pcalls, tottime, cumtime``;
* ``edges``     — ``profile_id, caller_id, callee_id, ncalls, pcalls, tottime, cumtime``;
* ``sql``       — ``profile_id, sql, count, time_s, callers`` (from sidecars);
* ``allocations`` — ``profile_id, file, line, size, count`` (tracemalloc top sites from sidecars);
* ``errors``    — ``path, reason`` for every file that could not be loaded.

``stats`` and ``edges`` rows are kept in ``profile_id`` order: the exact aggregations below rely on it.
Users hold the subclass :class:`celerylab.ProfileSet`, which adds the analysis, report and widget methods; this
class knows nothing of those layers.
"""

from __future__ import annotations

import fnmatch
import marshal
import os
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Any, Self

import numpy as np
import pandas as pd

from .._io import write_atomic
from ..errors import AmbiguousFunction, ColumnNotFound, FunctionNotFound, UsageError
from .rules import (
    count_array,
    count_sums,
    count_values,
    duration,
    id_lookup,
    pstats_row_order,
    pstats_sum,
    task_key,
)

FuncRef = int | str


class ProfileData:
    """Many profiles as tidy pandas frames. Build one with :func:`celerylab.load` (which returns the
    :class:`~celerylab.ProfileSet` facade)."""

    def __init__(
        self,
        profiles: pd.DataFrame,
        functions: pd.DataFrame,
        stats: pd.DataFrame,
        edges: pd.DataFrame,
        sql: pd.DataFrame | None = None,
        allocations: pd.DataFrame | None = None,
        errors: pd.DataFrame | None = None,
        metadata_report: pd.DataFrame | None = None,
    ) -> None:
        self.profiles = profiles
        self.functions = functions
        self.stats = stats
        self.edges = edges
        self.sql = sql if sql is not None else pd.DataFrame(columns=["profile_id", "sql", "count", "time_s", "callers"])
        self.allocations = (
            allocations
            if allocations is not None
            else pd.DataFrame(columns=["profile_id", "file", "line", "size", "count"])
        )
        self.errors = errors if errors is not None else pd.DataFrame(columns=["path", "reason"])
        self.metadata_report = (
            metadata_report
            if metadata_report is not None
            else pd.DataFrame(columns=["kind", "key", "column", "profile_value", "metadata_value"])
        )

    @classmethod
    def of(cls, data: ProfileData) -> Self:
        """The same frames (not copied) as an instance of ``cls``."""
        return cls(profiles=data.profiles, functions=data.functions, stats=data.stats, edges=data.edges,
                   sql=data.sql, allocations=data.allocations, errors=data.errors,
                   metadata_report=data.metadata_report)  # fmt: skip

    # ------------------------------------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.profiles)

    @property
    def profile_ids(self) -> np.ndarray:
        return self.profiles["profile_id"].to_numpy()

    @cached_property
    def labels(self) -> pd.Series:
        """``func_id -> label`` (pstats style ``file:line(name)``)."""
        return pd.Series(self.functions["label"].to_numpy(), index=self.functions["func_id"].to_numpy())

    def id_lookup(self, ids: Iterable[int] | np.ndarray) -> np.ndarray:
        """A boolean array indexed by profile id: true for ``ids`` (:func:`celerylab.core.rules.id_lookup`), long
        enough for every id in ``profiles`` and ``stats``."""
        return id_lookup(ids, self.profiles["profile_id"].to_numpy(), self.stats["profile_id"].to_numpy())

    def _subset(self, keep_ids: np.ndarray) -> Self:
        lookup = self.id_lookup(keep_ids)

        def rows(df: pd.DataFrame) -> pd.DataFrame:
            if not len(df):
                return df
            pid = df["profile_id"].to_numpy()
            return df.loc[lookup[pid]].reset_index(drop=True)

        return type(self)(
            profiles=rows(self.profiles),
            functions=self.functions,
            stats=rows(self.stats),
            edges=rows(self.edges),
            sql=rows(self.sql),
            allocations=rows(self.allocations),
            errors=self.errors,
            metadata_report=self.metadata_report,
        )

    def where(self, mask: Any = None, /, **conditions: Any) -> Self:
        """The profiles that match every condition, as a new set of the same class.

        Each keyword names a ``profiles`` column.  Its value is a scalar (equality), a string with ``*?[`` (glob on
        the text), a list/set/tuple (any of), a ``slice(lo, hi)`` (``lo <= v < hi``; times may be strings), or a
        callable taking the column and returning a boolean Series.  A positional boolean mask over ``profiles`` or
        a callable taking ``profiles`` also works: ``ps.where(lambda p: p.wall_s > 1)``.
        """
        df = self.profiles
        keep = pd.Series(True, index=df.index)
        if mask is not None:
            m = mask(df) if callable(mask) else mask
            keep &= pd.Series(np.asarray(m, dtype=bool), index=df.index)
        for col, cond in conditions.items():
            if col not in df.columns:
                raise ColumnNotFound(f"where(): no column {col!r} in profiles; columns are {list(df.columns)}")
            keep &= _match(df[col], cond)
        ids = df.loc[keep, "profile_id"].to_numpy()
        return self._subset(ids)

    # -------------------------------------------------------------------------------------- exact aggregation
    def _pstats_order(self, df: pd.DataFrame) -> np.ndarray:
        """Row positions of ``df`` (rows in profile id order) in the order ``pstats.Stats(*paths)`` adds them
        (:func:`celerylab.core.rules.pstats_row_order`).  Float sums in this order equal pstats' exactly."""
        first = int(self.profiles["profile_id"].iloc[0]) if len(self.profiles) else None
        return pstats_row_order(df["profile_id"].to_numpy(), first)

    @cached_property
    def function_totals(self) -> pd.DataFrame:
        """Per function over the whole set: ``func_id, ncalls, pcalls, tottime, cumtime, n_profiles``;
        exactly ``pstats.Stats(*self.profiles.path).stats``."""
        s = self.stats
        order = self._pstats_order(s)
        fid = s["func_id"].to_numpy()[order]
        nf = len(self.functions)
        out = pd.DataFrame({"func_id": np.arange(nf, dtype=np.int32)})
        n_prof = np.bincount(fid, minlength=nf)
        for c in ("ncalls", "pcalls"):
            out[c] = _count_sum(fid, s[c], order, nf)
        for c in ("tottime", "cumtime"):
            out[c] = np.bincount(fid, weights=s[c].to_numpy()[order], minlength=nf)
        out["n_profiles"] = n_prof
        return out.loc[n_prof > 0].reset_index(drop=True)

    @cached_property
    def edge_totals(self) -> pd.DataFrame:
        """Per caller→callee pair over the whole set: ``caller_id, callee_id, ncalls, pcalls, tottime, cumtime,
        n_profiles``; exactly the ``callers`` of ``pstats.Stats(*paths)``."""
        e = self.edges
        order = self._pstats_order(e)
        caller = e["caller_id"].to_numpy()[order]
        callee = e["callee_id"].to_numpy()[order]
        key = caller.astype(np.int64) * max(len(self.functions), 1) + callee
        codes, uniques = pd.factorize(key, sort=True)
        n = len(uniques)
        out = pd.DataFrame(
            {
                "caller_id": (uniques // max(len(self.functions), 1)).astype(np.int32),
                "callee_id": (uniques % max(len(self.functions), 1)).astype(np.int32),
            }
        )
        for c in ("ncalls", "pcalls"):
            out[c] = _count_sum(codes, e[c], order, n)
        for c in ("tottime", "cumtime"):
            out[c] = np.bincount(codes, weights=e[c].to_numpy()[order], minlength=n)
        out["n_profiles"] = np.bincount(codes, minlength=n)
        return out

    # ---------------------------------------------------------------------------------------------- lookups
    def resolve(self, func: FuncRef) -> int:
        """A func_id from a func_id, an exact pstats label, an exact function name, or a unique fragment of a
        label.  Raises :class:`~celerylab.errors.FunctionNotFound` or :class:`~celerylab.errors.AmbiguousFunction`
        (whose message and ``candidates`` list the matches)."""
        f = self.functions
        if isinstance(func, int | np.integer):
            if 0 <= int(func) < len(f) and int(f["func_id"].iloc[int(func)]) == int(func):
                return int(func)
            raise FunctionNotFound(f"no function with func_id {func}")
        if not isinstance(func, str) or not func:
            raise TypeError(f"func must be a func_id (int) or a label / name fragment (str), not {func!r}")
        present = f["func_id"].isin(self.function_totals["func_id"])
        for candidates in (f.loc[f["label"] == func], f.loc[present & (f["name"] == func)],
                           f.loc[present & f["label"].str.contains(func, regex=False)]):  # fmt: skip
            if len(candidates) == 1:
                return int(candidates["func_id"].iloc[0])
            if len(candidates) > 1:
                tot = self.function_totals.set_index("func_id")["cumtime"]
                ranked = candidates.assign(_t=candidates["func_id"].map(tot)).sort_values("_t", ascending=False)
                labels = ranked["label"].tolist()
                shown = "\n  ".join(labels[:20]) + (f"\n  … and {len(labels) - 20} more" if len(labels) > 20 else "")
                raise AmbiguousFunction(
                    f"{func!r} matches {len(labels)} functions; use a longer fragment, the full label or a "
                    f"func_id:\n  {shown}",
                    labels,
                )
        import difflib

        close = difflib.get_close_matches(func, f.loc[present, "name"].unique().tolist(), n=5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise FunctionNotFound(f"no function matches {func!r}{hint}")

    # ---------------------------------------------------------------------------------------------- export
    def to_pstats_dict(self) -> dict[tuple[str, int, str], tuple[Any, ...]]:
        """The merged stats as the dict ``pstats.Stats(...).stats`` holds."""
        ft = self.function_totals
        et = self.edge_totals
        keys = list(
            zip(self.functions["file"].tolist(), self.functions["line"].tolist(), self.functions["name"].tolist())
        )
        callers: dict[int, dict[tuple[str, int, str], Any]] = {}
        # unknown counts are written as pyinstrument writes them: -1
        for caller, callee, nc, pc, tt, ct in zip(
            et["caller_id"].tolist(), et["callee_id"].tolist(), _counts_list(et["ncalls"]), _counts_list(et["pcalls"]),
            et["tottime"].tolist(), et["cumtime"].tolist(),
        ):  # fmt: skip
            # the pure-Python `profile` module records bare counts (times unknown: NaN here)
            callers.setdefault(callee, {})[keys[caller]] = nc if tt != tt else (nc, pc, tt, ct)
        out: dict[tuple[str, int, str], tuple[Any, ...]] = {}
        for fid, nc, pc, tt, ct in zip(
            ft["func_id"].tolist(), _counts_list(ft["ncalls"]), _counts_list(ft["pcalls"]), ft["tottime"].tolist(),
            ft["cumtime"].tolist(),
        ):  # fmt: skip
            out[keys[fid]] = (pc, nc, tt, ct, callers.get(fid, {}))
        return out

    def to_pstats(self, path: str | os.PathLike[str]) -> str:
        """Write one merged profile that stdlib ``pstats``, snakeviz and gprof2dot read; returns the path.
        ``pstats.Stats(path).stats == pstats.Stats(*self.profiles.path).stats``."""
        if not len(self.stats):
            raise UsageError("to_pstats: the ProfileSet holds no profiles")
        return write_atomic(path, marshal.dumps(self.to_pstats_dict()))

    # --------------------------------------------------------------------------------------------- display
    def summary(self) -> dict[str, Any]:
        p = self.profiles
        out: dict[str, Any] = {
            "profiles": len(p),
            "tasks": int(p["task_name"].nunique()) if "task_name" in p else 0,
            "runs": sorted(str(x) for x in p["run"].dropna().unique()) if "run" in p else [],
            "workers": int(p[["hostname", "pid"]].dropna().drop_duplicates().shape[0]) if len(p) else 0,
            "functions": len(self.function_totals),
            "stats_rows": len(self.stats),
            "edge_rows": len(self.edges),
            "errors": len(self.errors),
            # pstats.Stats(*paths).total_tt: the per-file totals added in pstats' order
            "total_tt": pstats_sum(
                p["profile_id"].to_numpy(),
                int(p["profile_id"].iloc[0]) if len(p) else None,
                p["total_tt"].to_numpy(dtype=np.float64),
            ),
        }
        if len(p) and p["started_at"].notna().any():
            out["first_started"] = p["started_at"].min()
            out["last_started"] = p["started_at"].max()
        return out

    def task_summary(self) -> pd.DataFrame:
        """One row per task name (publishing a task, from producer profiles, is its own row: ``name (publish)``):
        profiles, failures, wall/total time (mean, p50, p95)."""
        p = self.profiles
        if not len(p):
            return pd.DataFrame(columns=["task_name", "profiles"])
        names = task_key(p)
        g = p.assign(task_name=names).groupby("task_name", observed=True)
        wall = duration(p)
        out = pd.DataFrame({"profiles": g.size()})
        if "state" in p:
            out["failed"] = g["state"].agg(lambda s: int((s.astype(object) == "FAILURE").sum()))
        w = wall.groupby(names)
        out["wall_mean_s"] = w.mean()
        out["wall_p50_s"] = w.median()
        out["wall_p95_s"] = w.quantile(0.95)
        out["total_s"] = w.sum()
        return out.sort_values("total_s", ascending=False).reset_index()

    def __repr__(self) -> str:
        s = self.summary()
        lines = [
            f"<celerylab.ProfileSet: {s['profiles']:,} profiles, {s['tasks']} tasks, {s['workers']} worker processes, "
            f"{s['functions']:,} functions, {s['stats_rows']:,} stat rows, {s['edge_rows']:,} edges>"
        ]
        if s["runs"]:
            lines.append(f"  runs: {', '.join(s['runs'])}")
        if "first_started" in s:
            lines.append(f"  started: {s['first_started']} … {s['last_started']}")
        if s["errors"]:
            lines.append(f"  {s['errors']} file(s) could not be loaded: see .errors")
        return "\n".join(lines)


def _int_sum(keys: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, keys, values.astype(np.int64, copy=False))
    return out


def _count_sum(keys: np.ndarray, col: pd.Series, order: np.ndarray, n: int) -> Any:
    """Per-key sums of a call-count column (rows in ``order``); NA where any term is unknown (rules.count_sums)."""
    return count_sums(keys, count_array(col)[order], n)


def _counts_list(col: pd.Series) -> list[int]:
    return count_values(col)[0].tolist()


def _match(col: pd.Series, cond: Any) -> pd.Series:
    if callable(cond) and not isinstance(cond, str):
        return pd.Series(np.asarray(cond(col), dtype=bool), index=col.index)
    if isinstance(cond, slice):
        lo, hi = cond.start, cond.stop
        if pd.api.types.is_datetime64_any_dtype(col):
            lo = pd.Timestamp(lo, tz="UTC") if lo is not None and pd.Timestamp(lo).tz is None else lo
            hi = pd.Timestamp(hi, tz="UTC") if hi is not None and pd.Timestamp(hi).tz is None else hi
            lo = pd.Timestamp(lo) if lo is not None else None
            hi = pd.Timestamp(hi) if hi is not None else None
        m = pd.Series(True, index=col.index)
        if lo is not None:
            m &= col >= lo
        if hi is not None:
            m &= col < hi
        return m.fillna(False).astype(bool)
    if isinstance(cond, str) and any(ch in cond for ch in "*?["):
        text = col.astype(object).map(lambda v: None if v is None or v != v else str(v))
        # pandas may hand the missing values back as NaN, not None: only strings can match
        return text.map(lambda v: isinstance(v, str) and fnmatch.fnmatchcase(v, cond)).astype(bool)
    if isinstance(cond, Iterable) and not isinstance(cond, str | bytes):
        return col.astype(object).isin(list(cond))
    return (col.astype(object) == cond).fillna(False).astype(bool)


Filter = Callable[[pd.DataFrame], Any]
