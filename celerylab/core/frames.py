"""The ``profiles``/``functions``/``sql``/``allocations`` frames built from parsed sidecars and function keys,
and the join of user metadata."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.internals import create_dataframe_from_blocks

from .._files import sidecar_path
from ..errors import LoadError
from . import names as _names
from .classify import KINDS, classify_codes, classify_factorized, label
from .decode import PROFILERS
from .parse import Parsed

_CORE_COLUMNS = ["task_id", "task_name", "run", "role", "hostname", "pid", "state", "started_at", "finished_at",
                 "wall_s", "cpu_s"]  # fmt: skip
_CATEGORY_COLUMNS = ("task_name", "run", "hostname", "state", "pool", "queue", "exception_type", "name_source", "role",
                     "publish_kind", "broker", "exchange")  # fmt: skip
_TIME_COLUMNS = ("started_at", "finished_at")


# ------------------------------------------------------------------------------------------- a frame from columns
def frame_of(columns: pd.Index, arrays: list[Any]) -> pd.DataFrame:
    """A frame of ``arrays`` (1-D numpy arrays or pandas extension arrays of one length, taken as they are: no copy,
    no inference) named by ``columns``, with a default index.  ``pd.DataFrame(dict)`` checks and infers every
    column first: 74-86 µs for the 6 columns of ``stats``, 150 µs for the 17 of a ``profiles`` frame, against 21 and
    42 µs here (a cache re-open of 300 profiles makes four frames)."""
    n = len(arrays[0]) if arrays else 0
    blocks = [(a.reshape(1, -1) if isinstance(a, np.ndarray) else a, np.array([i], dtype=np.intp))
              for i, a in enumerate(arrays)]  # fmt: skip
    return create_dataframe_from_blocks(blocks, pd.RangeIndex(n), columns)


def names_index(names: Sequence[str]) -> pd.Index:
    """The column index of a frame whose columns are ``names``: the ``str`` index ``pd.DataFrame`` gives them.  Its
    values (immutable) are made once per process for each list of names: Arrow's conversion of a Python list is
    ~0.25 ms the first time in a while (a re-open after other work), and the same few names come every load."""
    return pd.Index(_names_array(tuple(names)), copy=False)


@functools.lru_cache(maxsize=64)
def _names_array(names: tuple[str, ...]) -> Any:
    return pd.arrays.ArrowStringArray(pa.array(names, type=pa.large_string()), dtype=STR)


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


def build_frames(parsed: Parsed, pattern: re.Pattern[str] | None) -> dict[str, pd.DataFrame]:
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
            row.setdefault("role", "worker")  # sidecars before the producer side existed came from workers
            if isinstance(sc.get("sys_prefixes"), list):
                prefixes.update(str(p) for p in sc["sys_prefixes"])
        if not row.get("task_name") or not row.get("task_id"):
            named = _names.parse_fields(path, pattern)
            for key in ("task_name", "task_id"):
                if not row.get(key) and named.get(key):
                    row[key] = named[key]
                    row.setdefault("name_source", "filename")
            if "name_source" in row and row["name_source"] == "filename":
                # what a web profiler's file name also says (werkzeug, pretix): the request's duration and end
                if row.get("wall_s") is None and "wall_s" in named:
                    row["wall_s"] = named["wall_s"]
                if row.get("finished_at") is None and "finished_at" in named:
                    with contextlib.suppress(OverflowError, ValueError, OSError):
                        row["finished_at"] = datetime.fromtimestamp(named["finished_at"], UTC).isoformat()
        rows.append(row)
    profiles = _profiles(rows, parsed)

    funcs = _functions(parsed, prefixes)

    sql = table("sql", sql_rows)
    allocations = table("allocations", alloc_rows)
    # the sidecars that could not be read, as (path, reason) rows: joined to the load's errors
    return {"profiles": profiles, "functions": funcs, "sql": sql, "allocations": allocations,
            "sidecar_errors": side_errors}  # fmt: skip


def _profiles(rows: list[dict[str, Any]], parsed: Parsed) -> pd.DataFrame:
    """The ``profiles`` frame from one dict per profile.  ``pd.DataFrame(rows)`` infers each column's dtype; the
    columns are then fixed up as plain arrays and put in a frame once (a column set into a frame costs ~0.1 ms)."""
    base = _rows_frame(rows) if rows else pd.DataFrame({"profile_id": [], "path": []})
    n = len(base)
    cols: dict[str, Any] = {c: base[c].to_numpy() if base[c].dtype == object else base[c].array for c in base.columns}
    absent = [c for c in _CORE_COLUMNS if c not in cols]  # no profile has it (no sidecars: another tool's files)
    for c in absent:
        cols[c] = np.full(n, None, dtype=object)
    cols["profile_id"] = np.asarray(cols["profile_id"]).astype(np.int32)
    cols["total_tt"] = parsed.total_tt
    cols["profiler"] = pd.Categorical.from_codes(
        np.fromiter((_PROFILER_CODES.get(p, -1) for p in parsed.profilers), np.int8, len(parsed.profilers)),
        dtype=pd.CategoricalDtype(list(PROFILERS)),
    )
    cols["n_functions"] = parsed.n_stats
    cols["n_edges"] = parsed.n_edges
    for c in (*_TIME_COLUMNS, "wall_s", "cpu_s"):
        cols[c] = _fixed(c, cols[c], c in absent)
    front = ["profile_id", "path", *_CORE_COLUMNS]
    out: dict[str, Any] = {}
    for c in front + [c for c in cols if c not in front]:
        v = cols[c]
        if c in absent and c in _CATEGORY_COLUMNS:
            out[c] = _fixed(c, v, True)
            continue
        if v.dtype == object:  # lists and mixed values: missing is None, as after a Parquet round trip
            v = np.asarray(v, dtype=object).copy()
            v[pd.isna(v)] = None
        out[c] = _as_category(v) if c in _CATEGORY_COLUMNS else v
    return _columns_frame(out)


_PROFILER_CODES = {p: i for i, p in enumerate(PROFILERS)}


def _fixed(column: str, values: Any, all_none: bool) -> Any:
    """A core column of ``profiles`` given its type (times parsed, durations numeric, categories).  A column no
    profile has is made from the same conversion of one None, repeated (the conversions cost ~0.3 ms each even
    on nothing)."""
    if all_none and len(values):  # (the conversions of nothing give other dtypes: int64 for no durations)
        template = _NONE_COLUMNS.get(column)
        if template is None:
            template = _NONE_COLUMNS[column] = _fixed(column, np.full(1, None, dtype=object), False)
        return template.take(np.full(len(values), -1, dtype=np.intp), allow_fill=True)
    if column in _TIME_COLUMNS:
        return pd.to_datetime(pd.Series(values, copy=False), utc=True, errors="coerce", format="ISO8601").array
    if column in ("wall_s", "cpu_s"):
        return pd.to_numeric(pd.Series(values, copy=False), errors="coerce").array
    return _as_category(values)


_NONE_COLUMNS: dict[str, Any] = {}


#: the frames read from sidecar lists, by name: their columns and the dtypes they are given
_TABLES: dict[str, tuple[list[str], dict[str, Any]]] = {
    "sql": (["profile_id", "sql", "count", "time_s", "callers"], {"profile_id": np.int32, "count": "Int64",
                                                                   "time_s": "float64"}),
    "allocations": (["profile_id", "file", "line", "size", "count"], {"profile_id": np.int32, "line": "Int64",
                                                                      "size": "Int64", "count": "Int64"}),
    "errors": (["path", "reason"], {}),
    "metadata_report": (["kind", "key", "column", "profile_value", "metadata_value"], {}),
}  # fmt: skip
_EMPTY: dict[str, pd.DataFrame] = {}


def table(name: str, rows: list[Any]) -> pd.DataFrame:
    """One of :data:`_TABLES` from its rows (an empty one is made once and copied: most loads have no SQL, no
    errors, no metadata report).  The copy is shallow: a frame of no rows has no value to share, and its axes are new
    views (a column added or removed, an index or column name set stays in the copy; tested); a deep copy took
    ~25 µs more each, four times a re-open, after other work."""
    if not rows and name in _EMPTY:
        return _EMPTY[name].copy(deep=False)
    columns, dtypes = _TABLES[name]
    df = _rows_frame(rows, columns)
    if dtypes:
        df = df.astype(dtypes)
    if not rows:
        _EMPTY[name] = df.copy()
    return df


def _functions(parsed: Parsed, prefixes: set[str]) -> pd.DataFrame:
    """The ``functions`` frame: from the decoder's texts (``parsed.texts``: names, labels, lines and files as Arrow
    columns, no Python string per function) where every chunk had them, else from the keys (labelled by the merge
    as it met them, or here)."""
    keys = parsed.funcs or []
    texts = parsed.texts if parsed.texts is not None and len(parsed.texts[2]) == len(keys) else None
    if texts is not None:  # made by the decoder: no Python string per function
        name_arr, label_arr, lines, file_arr = texts
        name_col, label_col, file_col = (
            pd.arrays.ArrowStringArray(a, dtype=STR) for a in (name_arr, label_arr, file_arr)
        )
        enc = pc.dictionary_encode(file_arr)  # the distinct files, in order of first appearance
        c = classify_codes(enc.dictionary.to_pylist(), enc.indices.to_numpy(zero_copy_only=False).astype(np.int32),
                           lambda rows: name_arr.take(pa.array(rows)).to_pylist(), prefixes)  # fmt: skip
    else:
        files, names = list(map(itemgetter(0), keys)), list(map(itemgetter(2), keys))
        labels = parsed.labels if parsed.labels is not None and len(parsed.labels) == len(keys) else None
        name_col = _strings(names)
        label_col = _strings(labels if labels is not None else [label(*k) for k in keys])
        lines = _lines(list(map(itemgetter(1), keys)))
        c = classify_factorized(files, names, prefixes)
        file_col = _strings(c.files, c.file_codes)
    return _columns_frame(
        {
            "func_id": np.arange(len(keys), dtype=np.int32),
            "file": file_col,
            "line": lines,
            "name": name_col,
            "label": label_col,
            "module": _strings(c.modules, c.module_codes),
            "kind": pd.Categorical.from_codes(c.kind_codes, categories=list(KINDS)),
        },
    )


STR = pd.StringDtype("pyarrow", na_value=np.nan)  # what pd.array(values, dtype="str") gives


def _strings(values: Any, codes: np.ndarray | None = None) -> Any:
    """A ``str`` column of Python strings: pyarrow converts them twice as fast as ``pd.array(values, dtype="str")``,
    to the same array.  With ``codes``, the column is ``values[codes]``, gathered by Arrow from the few distinct
    values (a function's file or module: 10 000 functions of 550 files, 0.30 -> 0.12 ms)."""
    try:
        arr = pa.array(values, type=pa.large_string())
    except UnicodeEncodeError:  # a name with a lone surrogate (see _rows_frame): shown escaped, "\\udc80"
        arr = pa.array([shown(v) for v in values], type=pa.large_string())
    if codes is not None:
        arr = arr.take(pa.array(codes))
    return pd.arrays.ArrowStringArray(arr, dtype=STR)


def shown(text: Any) -> Any:
    """``text`` with each lone surrogate written as its escape (``"\\udc80"``): what the ``functions`` frame shows
    of such a name, so that every view can treat it as text (the function is known by its id, its key is kept), and
    what the scale dataset writes of any text (Parquet's strings are UTF-8)."""
    if not isinstance(text, str) or text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _lines(values: list[int]) -> np.ndarray:
    """The ``line`` column: int64, or Python ints where a file holds a line number beyond 64 bits (pstats reads it)."""
    try:
        return np.array(values, dtype=np.int64)
    except OverflowError:
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out


def _rows_frame(rows: list[Any], columns: list[str] | None = None) -> pd.DataFrame:
    """``pd.DataFrame(rows)``, and where a text value holds a lone surrogate, its column as Python objects.  Such text
    comes from a file name that is not UTF-8 (``os.fsdecode`` escapes each odd byte as a surrogate) or a function named
    so (``pstats`` reads both); the ``str`` dtype is Arrow's UTF-8 and cannot hold it, and pandas raises on the whole
    frame.  The value is kept exactly (``pstats.Stats(path)`` opens the path)."""
    try:
        return pd.DataFrame(rows, columns=columns)
    except UnicodeEncodeError:
        raw = pd.DataFrame(rows, columns=columns, dtype=object)
        return _columns_frame({c: raw[c].to_numpy() for c in raw.columns})


def _columns_frame(columns: dict[str, Any]) -> pd.DataFrame:
    """``pd.DataFrame(columns, copy=False)``, and where a text value holds a lone surrogate, its column as Python
    objects (see :func:`_rows_frame`)."""
    try:
        return pd.DataFrame(columns, copy=False)
    except UnicodeEncodeError:
        out = {}
        for c, v in columns.items():
            try:
                out[c] = pd.Series(v, copy=False)
            except UnicodeEncodeError:
                out[c] = pd.Series(v, dtype=object, copy=False)
        return pd.DataFrame(out, copy=False)


def _categorize(df: pd.DataFrame) -> pd.DataFrame:
    for c in _CATEGORY_COLUMNS:
        if c in df.columns:
            v = _as_category(df[c].array)
            if v is not df[c].array:
                df[c] = v
    return df


def _as_category(values: Any) -> Any:
    """A column of :data:`_CATEGORY_COLUMNS` as a category (text or mixed values; anything else as it is)."""
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        with contextlib.suppress(TypeError):
            try:
                return pd.Categorical(values)
            except UnicodeEncodeError:  # a lone surrogate (see _rows_frame): shown escaped
                return pd.Categorical(np.array([shown(v) for v in values], dtype=object))
    return values


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
    # each profile's metadata row: a task profiled twice (a retry keeps its task_id) gets the row on both profiles
    row_of = meta.index.get_indexer(left.to_numpy())
    pos = np.flatnonzero(row_of >= 0)
    pos = pos[np.argsort(row_of[pos], kind="stable")]  # in the metadata's order (as conflicts are reported)
    src, keys = row_of[pos], meta.index.to_numpy()[row_of[pos]]
    out = profiles.copy()
    for col in meta.columns:
        if col in ("profile_id", "path", "task_id") and col != key:
            report.append(("reserved_column", None, col, None, None))
            continue
        newv = meta[col].astype(object).to_numpy()[src]
        if col in out.columns:
            current = out[col].astype(object).to_numpy()[pos]
            for k, a, b in zip(keys, current, newv):
                if _present(a) and _present(b) and a != b and str(a) != str(b):
                    report.append(("conflict", k, col, a, b))
            full = out[col].astype(object).to_numpy().copy()
            keep = np.array([_present(b) for b in newv], dtype=bool)
            full[pos[keep]] = newv[keep]
            out[col] = full
        else:
            full = np.full(len(out), None, dtype=object)
            full[pos] = newv
            out[col] = full
        out[col] = _retype(out[col])
    return _categorize(out), table("metadata_report", report)


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
