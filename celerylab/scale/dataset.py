"""``cl.open_dataset``: an ingested dataset, filtered with ``where`` (pushed down to Parquet), analysed with the
``ProfileSet`` API — on the Dask cluster where the data is large, in memory where the selection is small.

Exactness.  ``cl.load`` numbers its profiles by sorted path and its functions by first appearance; every float
total is summed in pstats' order (first profile, then the others reversed: :func:`~celerylab.core.rules.
pstats_row_order`).  A dataset keeps the source path of every profile and each row's position in its file, so
it rebuilds the same order: :meth:`Dataset.to_profileset` makes the very frames ``cl.load`` makes on the same files
(the sidecars go through the loader's own :func:`~celerylab.core.frames.build_frames`), and the cluster-side
:meth:`Dataset.top` sorts each function's rows by that rank before summing, after a shuffle by ``func_key``.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads

from ..analysis.drilldown import TOP_COLUMNS, _with_labels
from ..core.data import FuncRef, ProfileData
from ..core.frames import build_frames
from ..core.frames import table as rows_table
from ..core.parse import EDGE_COLS, STAT_COLS, Parsed, _concat_columns
from ..core.rules import UNKNOWN
from ..errors import ColumnNotFound, UsageError
from . import _layout as L
from .ingest import latest, read_manifest

#: profiles columns a condition can be pushed down to, with the Python types a pushed value must have
_PUSHABLE: dict[str, tuple[type, ...]] = {
    "task_name": (str,), "task_id": (str,), "hostname": (str,), "state": (str,), "path": (str,),
    "pid": (int,), "wall_s": (int, float), "run": (str,), "date": (str,),
}  # fmt: skip
_SORTABLE = ("tottime", "cumtime", "ncalls", "pcalls")
_PER_INVOCATION = ("tottime_p50", "tottime_p95", "cumtime_p50", "cumtime_p95")
_ROW_BITS = 32  # a stats row's "first appearance" rank: profile position << 32 | row


@dataclass
class _Scope:
    """The committed files of a dataset, read once per Dataset."""

    fs: Any
    root: str
    manifest: pd.DataFrame  # latest record of every source path
    files: dict[str, list[str]] = field(default_factory=dict)


def open_dataset(
    path: str, *, storage_options: dict[str, Any] | None = None, cls: type[ProfileData] = ProfileData,
    scheduler: Any = None,
) -> Dataset:  # fmt: skip
    """Open the dataset ``path`` (a folder or an fsspec URL) written by :func:`celerylab.scale.ingest`.
    ``scheduler`` (an address or a ``distributed.Client``) is where cluster-side computations run; without it they
    run on the machine's default Dask scheduler.  ``cls`` is what :meth:`Dataset.to_profileset` returns."""
    if isinstance(scheduler, str):
        from distributed import Client

        scheduler = Client(scheduler)  # one connection for every computation of this dataset and its selections
    fs, root = L.filesystem(path, storage_options)
    if not fs.exists(posixpath.join(root, L.MANIFEST)):
        raise UsageError(f"{path}: not a celerylab dataset (no {L.MANIFEST}/ folder); create it with celerylab ingest")
    full = read_manifest(path, storage_options)
    man = latest(full)
    committed = set(full["part"])
    scope = _Scope(fs, root, man)
    for table in (*L.TABLES, L.FUNCTIONS):
        try:
            found = fs.find(posixpath.join(root, table))
        except FileNotFoundError:
            found = []
        scope.files[table] = sorted(f for f in found if L.part_id(f) in committed)
    return Dataset(path, scope, cls, {}, scheduler)


class Dataset:
    """A selection of an ingested dataset.  Cheap to make: nothing is read until a result is asked for."""

    def __init__(self, url: str, scope: _Scope, cls: type[ProfileData], conditions: dict[str, Any],
                 scheduler: Any) -> None:  # fmt: skip
        self.url = url
        self._scope = scope
        self._cls = cls
        self.conditions = conditions
        self._scheduler = scheduler
        self._cache: dict[str, Any] = {}

    def __repr__(self) -> str:
        cond = ", ".join(f"{k}={v!r}" for k, v in self.conditions.items())
        return f"<celerylab.scale.Dataset {self.url}{' where ' + cond if cond else ''}>"

    # ---------------------------------------------------------------------------------------------- selection
    def where(self, **conditions: Any) -> Dataset:
        """The profiles matching every condition (the semantics of :meth:`ProfileSet.where`, plus ``date``, the
        ``YYYY-MM-DD`` partition).  Conditions on ``date``, ``run`` and the fixed profile columns (task_name,
        task_id, hostname, state, pid, wall_s, started_at, path) are pushed down to Parquet (partition pruning,
        then row filters); any other (sidecar columns, globs, callables) is applied to the profiles after reading."""
        merged = dict(self.conditions)
        for k, v in conditions.items():
            if k == "date" and not _date_condition(v):
                raise UsageError(f"where(date={v!r}): date is a 'YYYY-MM-DD' string, a list of them or a slice of them")
            if k in merged:
                raise UsageError(f"where(): {k!r} is already filtered in this selection")
            merged[k] = v
        return Dataset(self.url, self._scope, self._cls, merged, self._scheduler)

    def _expression(self, include_rows: bool) -> pads.Expression | None:
        """The pushed-down part of the conditions (a superset of the selection: the rest is applied after)."""
        expr: pads.Expression | None = None

        def add(e: pads.Expression) -> None:
            nonlocal expr
            expr = e if expr is None else expr & e

        for col, cond in self.conditions.items():
            if col == "started_at" and isinstance(cond, slice) and include_rows:
                for bound, op in ((cond.start, "ge"), (cond.stop, "lt")):
                    if bound is None:
                        continue
                    t = pd.Timestamp(bound)
                    t = t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")
                    scalar = pa.scalar(t.to_pydatetime(), type=pa.timestamp("us", tz="UTC"))
                    add(pads.field(col) >= scalar if op == "ge" else pads.field(col) < scalar)
                continue
            types = _PUSHABLE.get(col)
            if types is None or (not include_rows and col not in ("date", "run")):
                continue
            f = pads.field(col)
            if isinstance(cond, slice):
                if all(
                    b is None or (isinstance(b, types) and not isinstance(b, bool)) for b in (cond.start, cond.stop)
                ):
                    if cond.start is not None:
                        add(f >= cond.start)
                    if cond.stop is not None:
                        add(f < cond.stop)
            elif isinstance(cond, str):
                if str in types and not any(ch in cond for ch in "*?["):
                    add(f == cond)
            elif isinstance(cond, list | tuple | set | frozenset):
                vals = list(cond)
                typed = vals and all(isinstance(v, types) and not isinstance(v, bool) for v in vals)
                if typed and not any(isinstance(v, str) and any(ch in v for ch in "*?[") for v in vals):
                    add(f.isin(vals))
            elif isinstance(cond, types) and not isinstance(cond, bool):
                add(f == cond)
        return expr

    def _table(self, name: str, columns: list[str] | None = None, keys: np.ndarray | None = None,
               key_column: str = "profile_key", extra: pads.Expression | None = None) -> pd.DataFrame:  # fmt: skip
        """Rows of a partitioned table in the committed parts, partitions pruned by the date/run conditions."""
        files = self._scope.files.get(name, [])
        schema = L.SCHEMAS[name]
        if not files:
            empty = schema.empty_table().to_pandas()
            return empty[columns] if columns else empty
        dataset = pads.dataset(files, filesystem=self._scope.fs, format="parquet", schema=pa.unify_schemas(
            [schema, L.PARTITION_SCHEMA]), partitioning=pads.partitioning(L.PARTITION_SCHEMA, flavor="hive"),
            partition_base_dir=posixpath.join(self._scope.root, name))  # fmt: skip
        expr = self._expression(include_rows=name == "profiles")
        if keys is not None:
            k = pads.field(key_column).isin(pa.array(keys, type=pa.int64()))
            expr = k if expr is None else expr & k
        if extra is not None:
            expr = extra if expr is None else expr & extra
        return dataset.to_table(columns=columns, filter=expr).to_pandas()

    # ------------------------------------------------------------------------------------------------ profiles
    @property
    def errors(self) -> pd.DataFrame:
        """``path, reason`` of every source file the dataset could not ingest (latest version of each path)."""
        m = self._scope.manifest
        bad = m.loc[m["reason"].notna(), ["path", "reason"]]
        return bad.reset_index(drop=True)

    def _selected(self) -> pd.DataFrame:
        """The raw profiles rows of the selection (latest version of each path), sorted by path: cl.load's order."""
        if "selected" in self._cache:
            return self._cache["selected"]
        m = self._scope.manifest
        valid = m["profile_key"].dropna().astype(np.int64).to_numpy()
        raw = self._table("profiles", keys=valid)
        raw = raw.sort_values("path", kind="stable").reset_index(drop=True)
        frames = self._frames(raw, [])
        rest = {k: v for k, v in self.conditions.items() if k != "date"}
        if rest:
            keep_ids = (
                ProfileData(frames["profiles"], frames["functions"], _empty_stats(), _empty_edges())
                .where(**rest)
                .profiles["profile_id"]
                .to_numpy()
            )
            raw = raw.iloc[keep_ids].reset_index(drop=True)
        self._cache["selected"] = raw
        return raw

    def _frames(self, raw: pd.DataFrame, funcs: list[tuple[str, int, str]]) -> dict[str, pd.DataFrame]:
        sidecars: list[Any] = []
        for text, err in zip(raw["sidecar"].astype(object).tolist(), raw["sidecar_error"].astype(object).tolist()):
            sidecars.append(json.loads(text) if isinstance(text, str) else err if isinstance(err, str) else None)
        parsed = Parsed(
            funcs=funcs,
            paths=raw["path"].tolist(),
            n_stats=raw["n_functions"].to_numpy(dtype=np.int64),
            n_edges=raw["n_edges"].to_numpy(dtype=np.int64),
            total_tt=raw["total_tt"].to_numpy(dtype=np.float64),
            profilers=raw["profiler"].astype(str).tolist(),
            sidecars=sidecars,
            stats={},
            edges={},
            errors=[],
        )
        return build_frames(parsed, None)

    def __len__(self) -> int:
        return len(self._selected())

    @property
    def profiles(self) -> pd.DataFrame:
        """The ``profiles`` frame of the selection, as ``cl.load`` builds it."""
        return self._light().profiles

    def _light(self) -> ProfileData:
        """Profiles, sql and allocations of the selection (no stats, no edges): what profile-level analyses need."""
        if "light" not in self._cache:
            frames = self._frames(self._selected(), [])
            self._cache["light"] = self._cls(
                profiles=frames["profiles"], functions=frames["functions"], stats=_empty_stats(),
                edges=_empty_edges(), sql=frames["sql"], allocations=frames["allocations"],
                errors=self._errors(frames),
            )  # fmt: skip
        return self._cache["light"]

    def _errors(self, frames: dict[str, Any]) -> pd.DataFrame:
        side = frames["sidecar_errors"]  # (path, reason) rows
        return pd.concat([self.errors, rows_table("errors", side)], ignore_index=True) if side else self.errors

    # ---------------------------------------------------------------------------------------------- functions
    def _functions(self) -> pd.DataFrame:
        """``func_key, file, line, name`` of every function in the committed parts (one row per key)."""
        if "functions" not in self._cache:
            files = self._scope.files.get(L.FUNCTIONS, [])
            if files:
                t = pads.dataset(files, filesystem=self._scope.fs, format="parquet", schema=L.FUNCTIONS_SCHEMA)
                f = t.to_table().to_pandas().drop_duplicates().reset_index(drop=True)
            else:
                f = L.FUNCTIONS_SCHEMA.empty_table().to_pandas()
            if f["func_key"].duplicated().any():
                dup = f.loc[f["func_key"].duplicated(keep=False)].head(4).to_dict("records")
                raise UsageError(f"{self.url}: two functions share a func_key (hash collision): {dup}")
            self._cache["functions"] = f.set_index("func_key")
        return self._cache["functions"]

    def _func_list(self, keys_in_order: np.ndarray) -> list[tuple[str, int, str]]:
        f = self._functions().loc[keys_in_order]
        return list(zip(f["file"].tolist(), [int(x) for x in f["line"].tolist()], f["name"].tolist()))

    # --------------------------------------------------------------------------------------------- materialise
    def to_profileset(self, *, edges: bool = True, max_profiles: int | None = None) -> ProfileData:
        """The selection in memory, as the class given to :func:`open_dataset` (a ``ProfileSet`` from
        ``cl.open_dataset``): frames equal to ``cl.load`` of the same files (paths are the source paths/URLs).
        ``edges=False`` leaves the caller edges out (diff and top need none).  ``max_profiles`` refuses a
        selection larger than that (:class:`UsageError`) rather than filling the memory."""
        raw = self._selected()
        if max_profiles is not None and len(raw) > max_profiles:
            raise UsageError(f"{self.url}: the selection holds {len(raw):,} profiles, more than max_profiles="
                             f"{max_profiles:,}; narrow it with where(...) or use the cluster-side "
                             "methods")  # fmt: skip
        keys = raw["profile_key"].to_numpy()
        pos = pd.Index(keys)
        s = self._table("stats", keys=keys)
        s_pid = pos.get_indexer(s["profile_key"].to_numpy())
        s = s.assign(_pid=s_pid).sort_values(["_pid", "row"], kind="stable")
        e = self._table("edges", keys=keys) if edges else L.EDGES_SCHEMA.empty_table().to_pandas()
        e = e.assign(_pid=pos.get_indexer(e["profile_key"].to_numpy())).sort_values(["_pid", "row"], kind="stable")
        # functions numbered as cl.load numbers them: by first appearance (profile, then row; callers after stats)
        n_stats = raw["n_functions"].to_numpy(dtype=np.int64)
        first = pd.concat([
            pd.Series((s["_pid"].to_numpy().astype(np.int64) << _ROW_BITS) + s["row"].to_numpy(),
                      index=s["func_key"].to_numpy()),
            pd.Series((e["_pid"].to_numpy().astype(np.int64) << _ROW_BITS) + n_stats[e["_pid"].to_numpy()]
                      + e["row"].to_numpy(), index=e["caller_key"].to_numpy()),
        ])  # fmt: skip
        order = first.groupby(level=0).min().sort_values(kind="stable")
        fkeys = order.index.to_numpy()
        fid = pd.Index(fkeys)
        frames = self._frames(raw, self._func_list(fkeys))
        stats = _concat_columns(STAT_COLS, [[s["_pid"].to_numpy()], [fid.get_indexer(s["func_key"].to_numpy())],
                                            [s["ncalls"].to_numpy()], [s["pcalls"].to_numpy()],
                                            [s["tottime"].to_numpy()], [s["cumtime"].to_numpy()]],
                                (np.int32, np.int32, np.int64, np.int64, np.float64, np.float64))  # fmt: skip
        edge_cols = _concat_columns(EDGE_COLS, [[e["_pid"].to_numpy()], [fid.get_indexer(e["caller_key"].to_numpy())],
                                                [fid.get_indexer(e["callee_key"].to_numpy())],
                                                [e["ncalls"].to_numpy()], [e["pcalls"].to_numpy()],
                                                [e["tottime"].to_numpy()], [e["cumtime"].to_numpy()]],
                                    (np.int32, np.int32, np.int32, np.int64, np.int64, np.float64,
                                     np.float64))  # fmt: skip
        return self._cls(
            profiles=frames["profiles"], functions=frames["functions"], stats=pd.DataFrame(stats, copy=False),
            edges=pd.DataFrame(edge_cols, copy=False), sql=frames["sql"], allocations=frames["allocations"],
            errors=self._errors(frames),
        )  # fmt: skip

    # ---------------------------------------------------------------------------------- profile-level analyses
    def task_summary(self) -> pd.DataFrame:
        """:meth:`ProfileSet.task_summary` of the selection (profile rows only: no stats are read)."""
        return self._light().task_summary()

    def n_plus_one(self, **options: Any) -> pd.DataFrame:
        """:func:`celerylab.analysis.n_plus_one` of the selection (sidecar SQL only: no stats are read)."""
        from ..analysis import n_plus_one

        return n_plus_one(self._light(), **options)

    def leak_suspects(self, **options: Any) -> pd.DataFrame:
        """:func:`celerylab.analysis.leak_suspects` of the selection (sidecar memory only: no stats are read)."""
        from ..analysis import leak_suspects

        return leak_suspects(self._light(), **options)

    def diff(self, other: Dataset | ProfileData | None = None, *, max_profiles: int | None = None,
             **options: Any) -> pd.DataFrame:  # fmt: skip
        """:func:`celerylab.analysis.diff` (per function or per task, with statistics) of the selection — with
        ``split_by=`` — or against ``other``.  The per-invocation tests need every invocation's numbers, so the
        selection's stats (no edges) are materialised; ``max_profiles`` bounds it."""
        from ..analysis import diff

        a = self.to_profileset(edges=False, max_profiles=max_profiles)
        b = other.to_profileset(edges=False, max_profiles=max_profiles) if isinstance(other, Dataset) else other
        return diff(a, b, **options)

    # ------------------------------------------------------------------------------------------ cluster side
    def function_totals(self) -> pd.DataFrame:
        """Per function over the selection, computed on the Dask cluster: ``func_key, ncalls, pcalls, tottime,
        cumtime, n_profiles, first`` and the per-invocation ``tottime_p50/p95, cumtime_p50/p95`` — each float
        summed in pstats' order, so equal to ``ProfileSet.function_totals`` to the last digit."""
        if "totals" in self._cache:
            return self._cache["totals"]
        from ._cluster import exact_function_totals

        raw = self._selected()
        files = self._pruned_files("stats")
        # rows filters beyond the partitions: send the profile keys with the reads (else filter after the shuffle)
        narrowed = "narrowed" in self._cache or any(c not in ("date", "run") for c in self.conditions)
        out = exact_function_totals(self._scope.fs, self._scope.root, files, raw["profile_key"].to_numpy(),
                                    scheduler=self._scheduler, push_keys=narrowed)  # fmt: skip
        self._cache["totals"] = out
        return out

    def _pruned_files(self, table: str) -> list[str]:
        """The table's committed files in the partitions the date/run conditions select."""
        files = self._scope.files.get(table, [])
        out = []
        for f in files:
            part = L.partition_of(f)
            if all(_partition_match(part.get(c), self.conditions[c]) for c in ("date", "run") if c in self.conditions):
                out.append(f)
        return out

    def _numbered_functions(self, totals: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(totals with func_id, the functions frame) numbered by first appearance, as cl.load numbers them."""
        t = totals.sort_values("first", kind="stable").reset_index(drop=True)
        t.insert(0, "func_id", np.arange(len(t), dtype=np.int32))
        frames = self._frames(self._selected(), self._func_list(t["func_key"].to_numpy()))
        return t, frames["functions"]

    def top(self, n: int | None = 20, by: str = "tottime", group_by: str | list[str] | None = None) -> pd.DataFrame:
        """:func:`celerylab.analysis.top` of the selection, summed on the cluster (exact; see
        :meth:`function_totals`).  ``group_by``: one cluster computation per group value."""
        if by not in _SORTABLE + _PER_INVOCATION:
            raise UsageError(f"top(by={by!r}): by must be one of {', '.join(_SORTABLE + _PER_INVOCATION)}")
        if group_by is not None:
            cols = [group_by] if isinstance(group_by, str) else list(group_by)
            p = self.profiles
            for c in cols:
                if c not in p.columns:
                    raise ColumnNotFound(f"top(group_by={c!r}): no such column in profiles; columns are "
                                         f"{list(p.columns)}")  # fmt: skip
            parts = []
            raw = self._selected()
            numbered, functions = self._numbered_functions(self.function_totals())
            ids = pd.Series(numbered["func_id"].to_numpy(), index=numbered["func_key"].to_numpy())
            for key, g in p.groupby(cols, observed=True, sort=True, dropna=False):
                sub = Dataset(self.url, self._scope, self._cls, self.conditions, self._scheduler)
                sub._cache["selected"] = raw.iloc[g["profile_id"].to_numpy()].reset_index(drop=True)
                sub._cache["narrowed"] = True
                # numbered as the whole selection numbers them (ProfileSet.top(group_by=...) keeps the set's ids)
                totals = sub.function_totals()
                totals = totals.assign(func_id=ids.loc[totals["func_key"].to_numpy()].to_numpy()).sort_values(
                    "func_id", kind="stable")  # fmt: skip
                t = _top_rows(totals, functions, self.profiles, len(g), n, by)
                keys = key if isinstance(key, tuple) else (key,)
                for c, v in reversed(list(zip(cols, keys))):
                    t.insert(0, c, v)
                parts.append(t)
            return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols + TOP_COLUMNS)
        totals, functions = self._numbered_functions(self.function_totals())
        return _top_rows(totals, functions, self.profiles, len(self._selected()), n, by)

    def _neighbours(self, func: FuncRef, split_by: str | list[str] | None, side: str) -> pd.DataFrame:
        from ..analysis import callees, callers

        totals, functions = self._numbered_functions(self.function_totals())
        # resolve as a ProfileSet would: its function_totals are the cluster's (one pseudo-profile holds them)
        pseudo = pd.DataFrame({"profile_id": np.zeros(len(totals), dtype=np.int32), "func_id": totals["func_id"],
                               "ncalls": totals["ncalls"], "pcalls": totals["pcalls"],
                               "tottime": totals["tottime"], "cumtime": totals["cumtime"]})  # fmt: skip
        resolver = ProfileData(self.profiles.iloc[:1], functions, pseudo, _empty_edges())
        fid = resolver.resolve(func)
        key = int(totals["func_key"].iloc[fid])
        raw = self._selected()
        pos = pd.Index(raw["profile_key"].to_numpy())
        col = "callee_key" if side == "callers" else "caller_key"
        e = self._table("edges", keys=raw["profile_key"].to_numpy(), extra=pads.field(col) == key)
        e = e.assign(_pid=pos.get_indexer(e["profile_key"].to_numpy())).sort_values(["_pid", "row"], kind="stable")
        fmap = pd.Index(totals["func_key"].to_numpy())
        extra_keys = [k for k in pd.unique(e[["caller_key", "callee_key"]].to_numpy().ravel()) if k not in fmap]
        if extra_keys:  # a caller that is no stats entry (not written by cProfile): number it after the others
            functions = self._frames(raw, self._func_list(np.r_[totals["func_key"].to_numpy(), extra_keys]))[
                "functions"]  # fmt: skip
            fmap = pd.Index(np.r_[totals["func_key"].to_numpy(), extra_keys])
        edges = pd.DataFrame({
            "profile_id": e["_pid"].to_numpy().astype(np.int32),
            "caller_id": fmap.get_indexer(e["caller_key"].to_numpy()).astype(np.int32),
            "callee_id": fmap.get_indexer(e["callee_key"].to_numpy()).astype(np.int32),
            "ncalls": e["ncalls"].to_numpy(), "pcalls": e["pcalls"].to_numpy(),
            "tottime": e["tottime"].to_numpy(), "cumtime": e["cumtime"].to_numpy(),
        })  # fmt: skip
        ps = ProfileData(self.profiles, functions, _empty_stats(), edges)
        fn = callers if side == "callers" else callees
        return fn(ps, fid, split_by=split_by)

    def callers(self, func: FuncRef, *, split_by: str | list[str] | None = None) -> pd.DataFrame:
        """:func:`celerylab.analysis.callers` of the selection: the function resolved against the cluster's
        totals, then only its edges read (a pushed-down filter on ``callee_key``)."""
        return self._neighbours(func, split_by, "callers")

    def callees(self, func: FuncRef, *, split_by: str | list[str] | None = None) -> pd.DataFrame:
        """:func:`celerylab.analysis.callees` of the selection (a pushed-down filter on ``caller_key``)."""
        return self._neighbours(func, split_by, "callees")


def _top_rows(totals: pd.DataFrame, functions: pd.DataFrame, profiles: pd.DataFrame, n_profiles: int,
              n: int | None, by: str) -> pd.DataFrame:  # fmt: skip
    """:func:`celerylab.analysis.top`'s rows from cluster totals sorted by ``func_id`` (the same arithmetic)."""
    n_prof = max(n_profiles, 1)
    out = totals[["func_id", "ncalls", "pcalls", "tottime", "cumtime", "n_profiles"]].copy()
    out["func_id"] = out["func_id"].astype(np.int32)
    total_tt = float(out["tottime"].sum()) if len(out) else 0.0
    out["tottime_mean"] = out["tottime"] / n_prof
    out["cumtime_mean"] = out["cumtime"] / n_prof
    out["calls_mean"] = out["ncalls"] / n_prof
    out["share"] = out["tottime"] / total_tt if total_tt else np.nan
    for c in _PER_INVOCATION:
        out[c] = totals[c].to_numpy()
    out = out.sort_values([by, "func_id"], ascending=[False, True], kind="stable")
    if n is not None:
        out = out.head(n)
    light = ProfileData(profiles, functions, _empty_stats(), _empty_edges())
    return _with_labels(light, out.reset_index(drop=True))[TOP_COLUMNS]


def _date_condition(cond: Any) -> bool:
    def plain(v: Any) -> bool:
        return isinstance(v, str) and not any(ch in v for ch in "*?[")

    if isinstance(cond, slice):
        return all(b is None or plain(b) for b in (cond.start, cond.stop))
    if isinstance(cond, list | tuple | set | frozenset):
        return bool(cond) and all(plain(v) for v in cond)
    return plain(cond)


def _partition_match(value: str | None, cond: Any) -> bool:
    """Whether a partition value may hold rows of the condition (a superset: unknown kinds of condition keep it)."""
    if isinstance(cond, slice):
        if value is None:
            return False
        lo, hi = cond.start, cond.stop
        if (lo is not None and not isinstance(lo, str)) or (hi is not None and not isinstance(hi, str)):
            return True
        return (lo is None or value >= lo) and (hi is None or value < hi)
    if isinstance(cond, str):
        return True if any(ch in cond for ch in "*?[") else value == cond
    if isinstance(cond, Iterable) and not isinstance(cond, bytes):
        vals = list(cond)
        return not all(isinstance(v, str) for v in vals) or value in vals
    return True


def _empty_stats() -> pd.DataFrame:
    return pd.DataFrame({c: np.empty(0, dtype=np.int32 if c.endswith("_id") else np.float64) for c in STAT_COLS})


def _empty_edges() -> pd.DataFrame:
    return pd.DataFrame({c: np.empty(0, dtype=np.int32 if c.endswith("_id") else np.float64) for c in EDGE_COLS})


__all__ = ["UNKNOWN", "Dataset", "open_dataset"]
