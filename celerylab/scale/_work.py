"""What a Dask worker runs during ingest: parse one chunk of source files with the loader's own parser, and write
the chunk's rows as Parquet files of one part (not yet committed: the client writes the manifest).

Imports fsspec and pyarrow, never dask: a chunk is a plain function call, testable without a cluster.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..core.decode import Opener
from ..core.frames import build_frames, shown
from ..core.parse import parse_serial
from . import _layout as L


@dataclass(frozen=True)
class SourceFile:
    """One candidate profile file: the path a user sees (a plain path, or a URL), and its version."""

    path: str
    size: int
    mtime: str

    @property
    def key(self) -> int:
        return L.profile_key(self.path, self.size, self.mtime)


@dataclass
class ChunkResult:
    part: str
    #: one row per input file: (path, size, mtime, profile_key or None, reason or None)
    files: list[tuple[str, int, str, int | None, str | None]] = field(default_factory=list)
    #: (sidecar path, reason) for sidecars that could not be used (the profile is ingested without them)
    sidecar_errors: list[tuple[str, str]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    n_profiles: int = 0


def _date_of(sc: Any) -> str | None:
    if not isinstance(sc, dict) or not sc.get("started_at"):
        return None
    try:
        t = datetime.fromisoformat(str(sc["started_at"]))
    except ValueError:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return t.date().isoformat()


def _str(v: Any) -> str | None:
    """A text value as the dataset stores it: Parquet's strings are UTF-8, so a lone surrogate (a file name that is
    not UTF-8, a name pstats reads with one) is written as its escape, as the loader's frames show it."""
    return None if v is None else shown(str(v))


def _within(pid: np.ndarray) -> np.ndarray:
    """Each row's position among the rows of its profile (rows are grouped by profile, in order)."""
    n = len(pid)
    if not n:
        return np.empty(0, dtype=np.int32)
    starts = np.flatnonzero(np.r_[True, pid[1:] != pid[:-1]])
    lengths = np.diff(np.r_[starts, n])
    return (np.arange(n) - np.repeat(starts, lengths)).astype(np.int32)


BEYOND_INT64 = (
    "a line number beyond 64 bits: the dataset's line column is int64, so this profile is left out "
    "(cl.load reads it, as pstats does)"
)


def _beyond_int64(parsed: Any) -> set[str]:
    """The paths of the profiles that name a function whose line number does not fit in int64 (only a corrupt or
    hostile file has one)."""
    funcs = parsed.funcs or []
    try:
        np.fromiter((k[1] for k in funcs), dtype=np.int64, count=len(funcs))
        return set()
    except OverflowError:
        pass
    big = np.array([not -(2**63) <= k[1] < 2**63 for k in funcs] or [False], dtype=bool)
    s, e = parsed.stats, parsed.edges
    pids = np.concatenate([s["profile_id"][big[s["func_id"]]],
                           e["profile_id"][big[e["caller_id"]] | big[e["callee_id"]]]])  # fmt: skip
    return {parsed.paths[i] for i in np.unique(pids)}


def parse_chunk(files: list[SourceFile], dataset: str, part: str, storage_options: dict[str, Any] | None = None,
                source_options: dict[str, Any] | None = None) -> ChunkResult:  # fmt: skip
    """Parse ``files`` (all on one filesystem) and write their rows under part ``part`` of ``dataset``."""
    result = ChunkResult(part=part)
    if not files:
        return result
    opener: Opener = open
    if "://" in files[0].path:
        src_fs, _ = L.filesystem(files[0].path, source_options)
        opener = src_fs.open
    parsed = parse_serial([f.path for f in files], opener)
    beyond = _beyond_int64(parsed)
    if beyond:  # the chunk again without them: the dataset's line column is int64
        parsed = parse_serial([f.path for f in files if f.path not in beyond], opener)
        parsed.errors += [(p, BEYOND_INT64) for p in sorted(beyond)]
    bad = dict(parsed.errors)
    ok_keys: dict[str, int] = {}
    for f in files:
        if f.path in bad:
            result.files.append((f.path, f.size, f.mtime, None, bad[f.path]))
        else:
            ok_keys[f.path] = f.key
            result.files.append((f.path, f.size, f.mtime, f.key, None))
    result.n_profiles = len(parsed.paths)
    if not parsed.paths:
        return result
    assert parsed.sidecars is not None and parsed.funcs is not None
    pkeys = np.array([ok_keys[p] for p in parsed.paths], dtype=np.int64)
    fkeys = np.array([L.func_key(*k) for k in parsed.funcs], dtype=np.int64)
    frames = build_frames(parsed, None)
    result.sidecar_errors = list(frames["sidecar_errors"])

    dates, runs, sidecar_text, sidecar_error = [], [], [], []
    for sc in parsed.sidecars:
        good = sc if isinstance(sc, dict) else None
        dates.append(_date_of(good))
        runs.append(_str(good.get("run")) if good else None)
        sidecar_text.append(json.dumps(good, allow_nan=True) if good is not None else None)
        sidecar_error.append(sc if isinstance(sc, str) else None)
    p = frames["profiles"]
    prof = pd.DataFrame({
        "profile_key": pkeys,
        "path": [_str(p) for p in parsed.paths],
        "task_name": [_str(v) for v in p["task_name"].astype(object)],
        "task_id": [_str(v) for v in p["task_id"].astype(object)],
        "hostname": [_str(v) for v in p["hostname"].astype(object)],
        "pid": pd.to_numeric(p["pid"], errors="coerce").astype("Int64"),
        "state": [_str(v) for v in p["state"].astype(object)],
        "started_at": p["started_at"],
        "wall_s": p["wall_s"].astype("float64"),
        "total_tt": parsed.total_tt,
        "n_functions": parsed.n_stats,
        "n_edges": parsed.n_edges,
        "profiler": list(parsed.profilers),
        "sidecar": sidecar_text,
        "sidecar_error": sidecar_error,
    })  # fmt: skip
    s, e = parsed.stats, parsed.edges
    stats = pd.DataFrame({
        "profile_key": pkeys[s["profile_id"]], "row": _within(s["profile_id"]), "func_key": fkeys[s["func_id"]],
        "ncalls": s["ncalls"].astype(np.int64), "pcalls": s["pcalls"].astype(np.int64),
        "tottime": s["tottime"], "cumtime": s["cumtime"],
    })  # fmt: skip
    edges = pd.DataFrame({
        "profile_key": pkeys[e["profile_id"]], "row": _within(e["profile_id"]),
        "caller_key": fkeys[e["caller_id"]], "callee_key": fkeys[e["callee_id"]],
        "ncalls": e["ncalls"].astype(np.int64), "pcalls": e["pcalls"].astype(np.int64),
        "tottime": e["tottime"], "cumtime": e["cumtime"],
    })  # fmt: skip
    sql = frames["sql"]
    sql = pd.DataFrame({
        "profile_key": pkeys[sql["profile_id"].to_numpy()], "sql": [_str(v) for v in sql["sql"]],
        "count": sql["count"], "time_s": sql["time_s"],
        "callers": [[_str(c) for c in v] if isinstance(v, list) else None for v in sql["callers"]],
    })  # fmt: skip
    al = frames["allocations"]
    allocations = pd.DataFrame({
        "profile_key": pkeys[al["profile_id"].to_numpy()], "file": [_str(v) for v in al["file"]],
        "line": al["line"], "size": al["size"], "count": al["count"],
    })  # fmt: skip
    funcs = pd.DataFrame([(shown(f), line, shown(n)) for f, line, n in parsed.funcs], columns=["file", "line", "name"])
    funcs.insert(0, "func_key", fkeys)

    fs, root = L.filesystem(dataset, storage_options)
    # partition of each profile (by position), then of every row through its profile
    part_of_profile = pd.Series(list(zip(dates, runs)))
    codes, uniques = pd.factorize(part_of_profile)
    pos_of_key = pd.Index(pkeys)
    tables = {"profiles": prof, "stats": stats, "edges": edges, "sql": sql, "allocations": allocations}
    for name, df in tables.items():
        if not len(df) and name not in ("profiles", "stats"):
            continue
        row_codes = codes[pos_of_key.get_indexer(df["profile_key"].to_numpy())]
        for ci, (date, run) in enumerate(uniques):
            sub = df.loc[row_codes == ci]
            if not len(sub):
                continue
            _write(fs, L.part_file(root, name, part, date, run), sub, L.SCHEMAS[name], result)
    _write(fs, L.part_file(root, L.FUNCTIONS, part), funcs, L.FUNCTIONS_SCHEMA, result)
    return result


def _write(fs: Any, path: str, df: pd.DataFrame, schema: pa.Schema, result: ChunkResult) -> None:
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    with fs.open(path, "wb") as f:
        pq.write_table(table, f, compression="zstd")
    result.written.append(path)
