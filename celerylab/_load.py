"""Batch loading: many profile files (+ sidecars, + user metadata) -> one ProfileSet.

Files are parsed in chunks by worker processes; each chunk interns its functions locally and returns plain numpy
columns, which the parent remaps to global ids.  A chunk whose worker dies is retried file by file so that the
culprit is named and nothing else is lost.
"""

from __future__ import annotations

import contextlib
import glob as _glob
import json
import multiprocessing as mp
import os
import re
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import _cache, _names, _pstats
from ._classify import classify
from .errors import LoadError
from .profileset import ProfileSet

Source = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]

#: Not sniffed when met while walking a directory (a file named explicitly is always sniffed).
SKIP_IN_WALK = (
    ".json", ".jsonl", ".csv", ".tsv", ".md", ".rst", ".txt", ".html", ".htm", ".svg", ".png", ".jpg", ".pdf",
    ".parquet", ".py", ".pyc", ".ipynb", ".yaml", ".yml", ".toml", ".log", ".dot", ".gv", ".ini", ".cfg",
)  # fmt: skip

SIDECAR_SCHEMA = "celerylab.task/"

_CORE_COLUMNS = ["task_id", "task_name", "run", "hostname", "pid", "state", "started_at", "finished_at",
                 "wall_s", "cpu_s"]  # fmt: skip
_CATEGORY_COLUMNS = ("task_name", "run", "hostname", "state", "pool", "queue", "exception_type", "name_source")
_TIME_COLUMNS = ("started_at", "finished_at")


# ---------------------------------------------------------------------------------------------------- discovery
@dataclass
class Found:
    files: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)


def _walk(root: str, found: Found, seen_dirs: set[tuple[int, int]], seen_files: set[str]) -> None:
    try:
        st = os.stat(root)
    except OSError as e:
        found.errors.append((root, _pstats.describe_error(e)))
        return
    key = (st.st_dev, st.st_ino)
    if key in seen_dirs:
        found.errors.append((root, "symlink loop (directory already visited), skipped"))
        return
    seen_dirs.add(key)
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as e:
        found.errors.append((root, _pstats.describe_error(e)))
        return
    for entry in entries:
        if entry.name.startswith(".") and not entry.name.endswith(_pstats.TEMP_SUFFIXES):
            continue  # hidden files and folders: .git, .ipynb_checkpoints, our own cache
        path = entry.path
        try:
            is_dir = entry.is_dir()
        except OSError as e:
            found.errors.append((path, _pstats.describe_error(e)))
            continue
        if is_dir:
            _walk(path, found, seen_dirs, seen_files)
            continue
        if entry.is_symlink() and not os.path.exists(path):
            try:
                os.stat(path)
                reason = "broken symlink"
            except OSError as e:
                reason = "symlink loop" if e.errno == 40 else "broken symlink"
            found.errors.append((path, reason))
            continue
        if entry.name.lower().endswith(SKIP_IN_WALK):
            continue
        real = os.path.abspath(path)
        if real not in seen_files:
            seen_files.add(real)
            found.files.append(real)


def discover(source: Source) -> Found:
    """Every candidate profile file under ``source`` (dirs recursively, globs, paths), sorted and unique."""
    items: list[str]
    if isinstance(source, str | os.PathLike):
        items = [os.fspath(source)]
    else:
        items = [os.fspath(s) for s in source]
    if not items:
        raise ValueError("celerylab.load: no source given")
    found = Found()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()
    for item in items:
        item = os.path.expanduser(item)
        if _glob.has_magic(item):
            matches = sorted(_glob.glob(item, recursive=True))
            if not matches:
                found.errors.append((item, "glob matched no files"))
            for m in matches:
                if os.path.isdir(m):
                    found.roots.append(os.path.abspath(m))
                    _walk(m, found, seen_dirs, seen_files)
                elif not os.path.basename(m).startswith(".") or m.endswith(_pstats.TEMP_SUFFIXES):
                    a = os.path.abspath(m)
                    if a not in seen_files:
                        seen_files.add(a)
                        found.files.append(a)
            continue
        if os.path.isdir(item):
            found.roots.append(os.path.abspath(item))
            _walk(item, found, seen_dirs, seen_files)
        elif os.path.lexists(item):
            a = os.path.abspath(item)
            if a not in seen_files:
                seen_files.add(a)
                found.files.append(a)
        else:
            found.errors.append((item, "no such file or directory"))
    found.files.sort()
    return found


def sidecar_path(path: str) -> str:
    d = os.path.dirname(path)
    return os.path.join(d, _names.stem(path) + ".json")


# ------------------------------------------------------------------------------------------------------ sidecars
def read_sidecar(path: str) -> dict[str, Any] | str | None:
    """The sidecar dict, ``None`` if there is none, or a string: the reason it is unusable."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        return _pstats.describe_error(e)
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return f"sidecar is not valid UTF-8 JSON: {e}"
    if not isinstance(obj, dict):
        return f"sidecar holds a JSON {type(obj).__name__}, expected an object"
    schema = obj.get("schema")
    if schema is not None and not str(schema).startswith(SIDECAR_SCHEMA):
        return f"sidecar has unknown schema {schema!r}"
    return obj


def _parse_chunk(paths: list[str]) -> tuple[dict[str, Any], list[Any]]:
    packed = _pstats.parse_files(paths)
    sidecars = [read_sidecar(sidecar_path(p)) if r is None else None for p, r, *_ in packed["outcomes"]]
    return packed, sidecars


def _mp_context() -> Any:
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else "spawn")


class _Progress:
    def __init__(self, total: int, progress: bool | None) -> None:
        self.bar = None
        show = progress
        if show is None:
            show = total >= 200 and _interactive()
        if show:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, unit="file", desc="celerylab.load", leave=False)
            except ImportError:  # pragma: no cover - tqdm is a dependency
                self.bar = None

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _interactive() -> bool:
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _chunks(files: list[str], jobs: int) -> list[list[str]]:
    if not files:
        return []
    size = max(4, min(256, len(files) // (jobs * 8) or 1))
    return [files[i : i + size] for i in range(0, len(files), size)]


def _run_parallel(chunks: list[list[str]], jobs: int, progress: _Progress) -> list[tuple[dict[str, Any], list[Any]]]:
    """Parse chunks in ``jobs`` processes; a chunk whose process dies is retried, then file by file."""
    results: list[Any] = [None] * len(chunks)
    if jobs <= 1 or len(chunks) <= 1:
        for i, c in enumerate(chunks):
            results[i] = _parse_chunk(c)
            progress.update(len(c))
        return results
    todo = list(range(len(chunks)))
    for _attempt in range(2):
        failed = []
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=_mp_context()) as pool:
            futures: dict[Future[Any], int] = {pool.submit(_parse_chunk, chunks[i]): i for i in todo}
            for fut in _as_completed(futures):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                    progress.update(len(chunks[i]))
                except BrokenProcessPool:
                    failed.append(i)
        todo = sorted(failed)
        if not todo:
            return results
    # still failing: one process per file, so the file that kills its parser is the one reported
    for i in todo:
        parts = []
        for path in chunks[i]:
            parts.append(_parse_one_isolated(path))
            progress.update(1)
        results[i] = _concat_chunk_results(parts)
    return results


def _as_completed(futures: dict[Future[Any], int]) -> Iterable[Future[Any]]:
    from concurrent.futures import as_completed

    return as_completed(futures)


def _parse_one_isolated(path: str) -> tuple[dict[str, Any], list[Any]]:
    with ProcessPoolExecutor(max_workers=1, mp_context=_mp_context()) as pool:
        fut = pool.submit(_parse_chunk, [path])
        try:
            return fut.result()
        except BrokenProcessPool:
            pass
    packed = _pstats.parse_files([])
    packed["outcomes"] = [(path, "the parser process crashed on this file (hostile or corrupt data)", 0, 0, np.nan)]
    return packed, [None]


def _concat_chunk_results(parts: list[tuple[dict[str, Any], list[Any]]]) -> tuple[dict[str, Any], list[Any]]:
    """Join single-file results into one chunk (function ids re-interned)."""
    index: dict[Any, int] = {}
    outcomes: list[Any] = []
    sidecars: list[Any] = []
    s_cols: list[list[np.ndarray]] = [[] for _ in range(6)]
    e_cols: list[list[np.ndarray]] = [[] for _ in range(7)]
    for packed, side in parts:
        remap = np.array([index.setdefault(k, len(index)) for k in packed["funcs"]], dtype=np.int32)
        slot = len(outcomes)
        outcomes.extend(packed["outcomes"])
        sidecars.extend(side)
        s = packed["stats"]
        e = packed["edges"]
        s_cols[0].append(s[0] + slot)
        s_cols[1].append(remap[s[1]] if len(s[1]) else s[1])
        for j in range(2, 6):
            s_cols[j].append(s[j])
        e_cols[0].append(e[0] + slot)
        e_cols[1].append(remap[e[1]] if len(e[1]) else e[1])
        e_cols[2].append(remap[e[2]] if len(e[2]) else e[2])
        for j in range(3, 7):
            e_cols[j].append(e[j])
    return (
        {
            "funcs": list(index),
            "outcomes": outcomes,
            "stats": [np.concatenate(c) for c in s_cols],
            "edges": [np.concatenate(c) for c in e_cols],
        },
        sidecars,
    )


# ------------------------------------------------------------------------------------------------------ merging
@dataclass
class Parsed:
    """Everything parsed from files, with global function ids, in path order (profile_id = position)."""

    funcs: list[tuple[str, int, str]] | None  # None: not read from the cache (not needed unless frames are rebuilt)
    paths: list[str]
    n_stats: np.ndarray
    n_edges: np.ndarray
    total_tt: np.ndarray
    sidecars: list[Any] | None
    stats: dict[str, np.ndarray]
    edges: dict[str, np.ndarray]
    errors: list[tuple[str, str]]
    cache_rows: list[int] | None = None  # rows of the cache index these profiles came from


STAT_COLS = ("profile_id", "func_id", "ncalls", "pcalls", "tottime", "cumtime")
EDGE_COLS = ("profile_id", "caller_id", "callee_id", "ncalls", "pcalls", "tottime", "cumtime")


def _merge(results: Sequence[tuple[dict[str, Any], list[Any]]]) -> Parsed:
    index: dict[Any, int] = {}
    paths: list[str] = []
    n_stats: list[int] = []
    n_edges: list[int] = []
    total_tt: list[float] = []
    sidecars: list[Any] = []
    errors: list[tuple[str, str]] = []
    s_parts: list[list[np.ndarray]] = [[] for _ in STAT_COLS]
    e_parts: list[list[np.ndarray]] = [[] for _ in EDGE_COLS]
    for packed, side in results:
        remap = np.array([index.setdefault(k, len(index)) for k in packed["funcs"]], dtype=np.int32)
        # slot (position in chunk) -> global profile id, -1 for files that failed
        slot_to_pid = np.full(len(packed["outcomes"]) + 1, -1, dtype=np.int32)
        for slot, ((path, reason, ns, ne, ttt), sc) in enumerate(zip(packed["outcomes"], side)):
            if reason is not None:
                errors.append((path, reason))
                continue
            slot_to_pid[slot] = len(paths)
            paths.append(path)
            n_stats.append(ns)
            n_edges.append(ne)
            total_tt.append(ttt)
            sidecars.append(sc)
        s, e = packed["stats"], packed["edges"]
        s_parts[0].append(slot_to_pid[s[0]])
        s_parts[1].append(remap[s[1]] if len(remap) else s[1])
        for j in range(2, 6):
            s_parts[j].append(s[j])
        e_parts[0].append(slot_to_pid[e[0]])
        e_parts[1].append(remap[e[1]] if len(remap) else e[1])
        e_parts[2].append(remap[e[2]] if len(remap) else e[2])
        for j in range(3, 7):
            e_parts[j].append(e[j])
        packed.clear()
    _release_memory()
    stats = _concat_columns(STAT_COLS, s_parts, (np.int32, np.int32, np.int64, np.int64, np.float64, np.float64))
    edges = _concat_columns(
        EDGE_COLS, e_parts, (np.int32, np.int32, np.int32, np.int64, np.int64, np.float64, np.float64)
    )
    return Parsed(
        funcs=list(index),
        paths=paths,
        n_stats=np.array(n_stats, dtype=np.int64),
        n_edges=np.array(n_edges, dtype=np.int64),
        total_tt=np.array(total_tt, dtype=np.float64),
        sidecars=sidecars,
        stats=stats,
        edges=edges,
        errors=errors,
    )


def _concat_columns(
    names: Sequence[str], parts: list[list[np.ndarray]], dtypes: Sequence[Any]
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, col, dt in zip(names, parts, dtypes):
        if (
            dt is np.int64
            and name in ("ncalls", "pcalls")
            and all(not len(c) or c.max() <= np.iinfo(np.int32).max for c in col)
        ):
            dt = np.int32  # call counts fit in 32 bits in practice: half the memory (exact sums use int64)
        out[name] = np.concatenate(col).astype(dt, copy=False) if col else np.empty(0, dtype=dt)
        col.clear()  # free each column's pieces as soon as it is joined ...
        _release_memory()  # ... and hand them back to the OS, so the peak stays near the final size
    return out


def _release_memory() -> None:
    """Return freed heap memory to the OS (glibc keeps freed chunk buffers otherwise)."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None


# --------------------------------------------------------------------------------------------- frames from parsed
def _flatten_sidecar(
    sc: dict[str, Any], row: dict[str, Any], pid: int, sql_rows: list[Any], alloc_rows: list[Any]
) -> None:
    for k, v in sc.items():
        if k == "schema":
            continue
        if k == "sql" and isinstance(v, dict):
            row["sql_count"] = v.get("count")
            row["sql_time_s"] = v.get("time_s")
            for st in v.get("statements") or ():
                if isinstance(st, dict):
                    callers = st.get("callers") or []
                    sql_rows.append((pid, st.get("sql"), st.get("count"), st.get("time_s"), list(callers)))
            continue
        if k == "memory" and isinstance(v, dict):
            for mk, mv in v.items():
                if mk == "top":
                    for a in mv or ():
                        if isinstance(a, dict):
                            alloc_rows.append((pid, a.get("file"), a.get("line"), a.get("size"), a.get("count")))
                elif not isinstance(mv, dict | list):
                    row[f"memory_{mk}"] = mv
            continue
        if k == "sys_prefixes":
            row[k] = list(v) if isinstance(v, list) else v
            continue
        if isinstance(v, dict):
            for sk, sv in v.items():
                row[f"{k}_{sk}"] = sv if not isinstance(sv, dict | list) else json.dumps(sv, default=str)
        elif isinstance(v, list):
            row[k] = json.dumps(v, default=str)
        else:
            row[k] = v


def _build_frames(parsed: Parsed, pattern: re.Pattern[str] | None) -> dict[str, pd.DataFrame]:
    """The frames made from sidecars and function keys (cached as they are); stats/edges come from ``parsed``."""
    assert parsed.sidecars is not None, "frames are built from sidecars that were read"
    rows: list[dict[str, Any]] = []
    sql_rows: list[Any] = []
    alloc_rows: list[Any] = []
    prefixes: set[str] = set()
    side_errors: list[tuple[str, str]] = []
    for pid, (path, sc) in enumerate(zip(parsed.paths, parsed.sidecars)):
        row: dict[str, Any] = {"profile_id": pid, "path": path}
        if isinstance(sc, str):
            side_errors.append((sidecar_path(path), sc + " (profile loaded without its metadata)"))
            sc = None
        if sc:
            _flatten_sidecar(sc, row, pid, sql_rows, alloc_rows)
            row["name_source"] = "sidecar"
            if isinstance(sc.get("sys_prefixes"), list):
                prefixes.update(str(p) for p in sc["sys_prefixes"])
        if not row.get("task_name") or not row.get("task_id"):
            name, tid = _names.parse_name(path, pattern)
            if not row.get("task_name") and name:
                row["task_name"] = name
                row.setdefault("name_source", "filename")
            if not row.get("task_id") and tid:
                row["task_id"] = tid
                row.setdefault("name_source", "filename")
        rows.append(row)
    profiles = pd.DataFrame(rows) if rows else pd.DataFrame({"profile_id": [], "path": []})
    for c in _CORE_COLUMNS:
        if c not in profiles.columns:
            profiles[c] = None
    profiles["profile_id"] = profiles["profile_id"].astype(np.int32)
    profiles["total_tt"] = parsed.total_tt
    profiles["n_functions"] = parsed.n_stats
    profiles["n_edges"] = parsed.n_edges
    for c in _TIME_COLUMNS:
        profiles[c] = pd.to_datetime(profiles[c], utc=True, errors="coerce", format="ISO8601")
    for c in ("wall_s", "cpu_s"):
        profiles[c] = pd.to_numeric(profiles[c], errors="coerce")
    for c in profiles.columns:
        if profiles[c].dtype == object:  # lists and mixed values: missing is None, as after a Parquet round trip
            profiles[c] = profiles[c].astype(object).where(profiles[c].notna(), None)
    front = ["profile_id", "path", *_CORE_COLUMNS]
    profiles = profiles[front + [c for c in profiles.columns if c not in front]]
    profiles = _categorize(profiles)

    funcs = pd.DataFrame(parsed.funcs, columns=["file", "line", "name"])
    funcs.insert(0, "func_id", np.arange(len(funcs), dtype=np.int32))
    funcs["line"] = funcs["line"].astype(np.int64)
    funcs["label"] = _labels(funcs)
    module, kind = classify(funcs["file"], funcs["name"], prefixes)
    funcs["module"] = module
    funcs["kind"] = pd.Categorical(kind, categories=["builtin", "stdlib", "third-party", "app"])

    sql = pd.DataFrame(sql_rows, columns=["profile_id", "sql", "count", "time_s", "callers"])
    sql = sql.astype({"profile_id": np.int32, "count": "Int64", "time_s": "float64"})
    allocations = pd.DataFrame(alloc_rows, columns=["profile_id", "file", "line", "size", "count"])
    allocations = allocations.astype({"profile_id": np.int32, "line": "Int64", "size": "Int64", "count": "Int64"})
    side = pd.DataFrame(side_errors, columns=["path", "reason"])
    return {"profiles": profiles, "functions": funcs, "sql": sql, "allocations": allocations, "sidecar_errors": side}


def _labels(funcs: pd.DataFrame) -> list[str]:
    # pstats.func_std_string
    out = []
    for f, line, name in zip(funcs["file"].tolist(), funcs["line"].tolist(), funcs["name"].tolist()):
        if f == "~" and line == 0:
            out.append(f"{{{name[1:-1]}}}" if name.startswith("<") and name.endswith(">") else name)
        else:
            out.append(f"{f}:{line}({name})")
    return out


def _categorize(df: pd.DataFrame) -> pd.DataFrame:
    for c in _CATEGORY_COLUMNS:
        if c in df.columns and (df[c].dtype == object or isinstance(df[c].dtype, pd.StringDtype)):
            with contextlib.suppress(TypeError):
                df[c] = df[c].astype("category")
    return df


# ------------------------------------------------------------------------------------------------------ metadata
def _read_metadata(metadata: Any) -> tuple[pd.DataFrame, str]:
    if isinstance(metadata, pd.DataFrame):
        return metadata.copy(), "the metadata DataFrame"
    path = os.fspath(metadata)
    name = os.path.basename(path)
    try:
        if path.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path), name
        if path.endswith((".jsonl", ".ndjson", ".jsonl.gz")):
            return pd.read_json(path, lines=True), name
        if path.endswith((".json", ".json.gz")):
            with open(path, "rb") as f:
                head = f.read(1).lstrip()
            return pd.read_json(path, lines=head != b"["), name
        if path.endswith(".parquet"):
            return pd.read_parquet(path), name
    except (OSError, ValueError) as e:
        raise LoadError(f"metadata file {path}: cannot be read: {e}") from None
    raise LoadError(f"metadata file {path}: unknown format (use .csv, .jsonl, .json or .parquet, or a DataFrame)")


def merge_metadata(profiles: pd.DataFrame, metadata: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Join user metadata on ``task_id`` (or ``path``). Returns (profiles, report of conflicts/unmatched rows).

    Values from the metadata win over sidecar values; every difference is reported.
    """
    meta, what = _read_metadata(metadata)
    report: list[tuple[str, Any, str | None, Any, Any]] = []
    if "task_id" in meta.columns:
        key = "task_id"
        left = profiles["task_id"].astype(object)
        right = meta["task_id"].astype(str)
    elif "path" in meta.columns:
        key = "path"
        left = profiles["path"].astype(object)
        right = meta["path"].map(lambda p: os.path.abspath(os.path.expanduser(str(p))))
    else:
        raise LoadError(f"{what}: needs a 'task_id' or 'path' column to join on (has {list(meta.columns)[:10]})")
    meta = meta.assign(**{key: right.to_numpy()})
    dup = meta[key].duplicated(keep="first")
    for k in meta.loc[dup, key]:
        report.append(("duplicate_key", k, key, None, None))
    meta = meta.loc[~dup]
    matched = meta[key].isin(set(left.dropna()))
    for k in meta.loc[~matched, key]:
        report.append(("unmatched_metadata", k, key, None, None))
    meta = meta.loc[matched].set_index(key)
    pos = pd.Index(left).get_indexer(meta.index)
    out = profiles.copy()
    for col in meta.columns:
        values = meta[col]
        if col in ("profile_id", "path", "task_id") and col != key:
            report.append(("reserved_column", None, col, None, None))
            continue
        if col in out.columns:
            current = out[col].astype(object).to_numpy()[pos]
            newv = values.astype(object).to_numpy()
            for k, a, b in zip(meta.index, current, newv):
                if _present(a) and _present(b) and a != b and str(a) != str(b):
                    report.append(("conflict", k, col, a, b))
            full = out[col].astype(object).to_numpy().copy()
            keep = np.array([_present(b) for b in newv], dtype=bool)
            full[pos[keep]] = newv[keep]
            out[col] = full
        else:
            full = np.full(len(out), None, dtype=object)
            full[pos] = values.astype(object).to_numpy()
            out[col] = full
        out[col] = _retype(out[col])
    rep = pd.DataFrame(report, columns=["kind", "key", "column", "profile_value", "metadata_value"])
    return _categorize(out), rep


def _present(v: Any) -> bool:
    if v is None:
        return False
    try:
        return not bool(pd.isna(v))
    except (TypeError, ValueError):
        return True


def _retype(s: pd.Series) -> pd.Series:
    if s.dtype != object:
        return s
    nonnull = s.dropna()
    if len(nonnull) and all(isinstance(v, bool | np.bool_) for v in nonnull):
        return s.astype("boolean")
    num = pd.to_numeric(s, errors="coerce")
    if num.notna().sum() == len(nonnull) and len(nonnull):
        return num
    return s


# ------------------------------------------------------------------------------------------------------- load()
def load(
    source: Source,
    *,
    metadata: pd.DataFrame | str | os.PathLike[str] | None = None,
    jobs: int | None = None,
    cache: bool | str | os.PathLike[str] = True,
    strict: bool = False,
    progress: bool | None = None,
    name_pattern: str | re.Pattern[str] | None = None,
) -> ProfileSet:
    """Load profile files into a :class:`ProfileSet`.

    ``source`` is a directory (walked recursively), a glob, a file, or a list of these.  Files are recognised by
    content (cProfile/pstats marshal dumps, optionally gzip-compressed), not by extension.  Per-function totals
    equal ``pstats.Stats(*ps.profiles.path)``.  Files that cannot be loaded are listed in ``ps.errors`` with the
    reason (``strict=True`` raises :class:`LoadError` instead).  ``metadata`` (DataFrame, CSV, JSON-lines or
    Parquet) is joined on ``task_id`` or ``path``; conflicts and unmatched rows are listed in
    ``ps.metadata_report``.  ``cache`` (default on) keeps parsed results in Parquet so re-opening is fast:
    ``True`` uses ``$CELERYLAB_CACHE_DIR`` or ``~/.cache/celerylab``, a path uses that folder.
    ``name_pattern`` is a regex with ``(?P<task_name>…)``/``(?P<task_id>…)`` groups for custom file names.
    """
    pattern = _names.compile_pattern(name_pattern) if name_pattern is not None else None
    found = discover(source)
    jobs = max(1, int(jobs)) if jobs else (os.cpu_count() or 1)
    store = _cache.Store.for_source(found, cache, pattern) if cache else None
    bar = _Progress(len(found.files), progress)
    pattern_key = pattern.pattern if pattern is not None else ""
    built = None
    try:
        if store is not None:
            parsed, unchanged = store.load(found.files, lambda files: _parse(files, jobs, bar))
            built = store.read_frames(pattern_key) if unchanged else None
        else:
            parsed = _parse(found.files, jobs, bar)
    finally:
        bar.close()
    if built is None:
        if store is not None:
            store.complete(parsed)
        built = _build_frames(parsed, pattern)
        if store is not None:
            store.write_frames(built, pattern_key)
    frames = {
        "profiles": built["profiles"],
        "functions": built["functions"],
        "stats": pd.DataFrame(parsed.stats, copy=False),
        "edges": pd.DataFrame(parsed.edges, copy=False),
        "sql": built["sql"],
        "allocations": built["allocations"],
        "errors": pd.DataFrame(
            found.errors + parsed.errors + list(built["sidecar_errors"].itertuples(index=False, name=None)),
            columns=["path", "reason"],
        ),
    }
    report = pd.DataFrame(columns=["kind", "key", "column", "profile_value", "metadata_value"])
    if metadata is not None:
        frames["profiles"], report = merge_metadata(frames["profiles"], metadata)
        if len(report):
            counts = Counter(report["kind"])
            warnings.warn(
                "celerylab.load: metadata merge: "
                + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())
                + " (see ps.metadata_report)",
                stacklevel=2,
            )
    errors = frames["errors"]
    if len(errors):
        if strict:
            lines = "\n".join(f"  {p}: {r}" for p, r in errors.itertuples(index=False))
            raise LoadError(f"{len(errors)} file(s) could not be loaded:\n{lines}", errors=errors)
        warnings.warn(_error_summary(errors, len(found.files)), stacklevel=2)
    if not len(frames["profiles"]) and not len(errors):
        warnings.warn(f"celerylab.load: no profile files found in {source!r}", stacklevel=2)
    return ProfileSet(**frames, metadata_report=report)


def _error_summary(errors: pd.DataFrame, total: int) -> str:
    counts = Counter(r.split(":")[0].split(" (")[0] for r in errors["reason"])
    top = "; ".join(f"{r} ({n})" for r, n in counts.most_common(4))
    return f"celerylab.load: {len(errors)} file(s) could not be loaded, {total} candidate files: {top} — see ps.errors"


def _parse(files: list[str], jobs: int, bar: _Progress) -> Parsed:
    return _merge(_run_parallel(_chunks(files, jobs), jobs, bar))


ParseFn = Callable[[list[str]], Parsed]
