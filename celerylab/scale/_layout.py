"""The dataset's layout in storage, its table schemas and its stable keys: the one place that knows them.

A dataset is a folder (local or any fsspec URL)::

    DATASET/
      profiles/date=2026-01-01/run=baseline/part-<id>.parquet    one row per profile (the sidecar kept as JSON)
      stats/date=…/run=…/part-<id>.parquet                       profile_key, row, func_key, ncalls, …
      edges/date=…/run=…/part-<id>.parquet                       profile_key, row, caller_key, callee_key, …
      sql/…, allocations/…                                       from the sidecars, keyed by profile_key
      functions/part-<id>.parquet                                func_key, file, line, name
      _manifest/part-<id>.parquet                                one row per source file: what was ingested

Every ingest chunk writes its data files under one part id, then its manifest file last: a part is *committed*
when its manifest file exists, and readers read committed parts only (a chunk that died half-way is invisible, and
its files are deleted by the next ingest).  Keys are stable hashes, the same in every part and on every machine:
``func_key`` of ``(file, line, name)``, ``profile_key`` of ``(source path, size, modification time)`` (a file
that changed is a new profile version; readers keep each path's latest).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from typing import Any
from urllib.parse import quote, unquote

import pyarrow as pa

TABLES = ("profiles", "stats", "edges", "sql", "allocations")
PARTITIONED = TABLES
FUNCTIONS = "functions"
MANIFEST = "_manifest"
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
PART_RE = re.compile(r"part-([0-9a-f]{16,64})\.parquet$")

PROFILES_SCHEMA = pa.schema([
    ("profile_key", pa.int64()), ("path", pa.string()), ("task_name", pa.string()), ("task_id", pa.string()),
    ("hostname", pa.string()), ("pid", pa.int64()), ("state", pa.string()),
    ("started_at", pa.timestamp("us", tz="UTC")), ("wall_s", pa.float64()), ("total_tt", pa.float64()),
    ("n_functions", pa.int64()), ("n_edges", pa.int64()), ("profiler", pa.string()), ("sidecar", pa.string()),
    ("sidecar_error", pa.string()),
])  # fmt: skip
STATS_SCHEMA = pa.schema([
    ("profile_key", pa.int64()), ("row", pa.int32()), ("func_key", pa.int64()), ("ncalls", pa.int64()),
    ("pcalls", pa.int64()), ("tottime", pa.float64()), ("cumtime", pa.float64()),
])  # fmt: skip
EDGES_SCHEMA = pa.schema([
    ("profile_key", pa.int64()), ("row", pa.int32()), ("caller_key", pa.int64()), ("callee_key", pa.int64()),
    ("ncalls", pa.int64()), ("pcalls", pa.int64()), ("tottime", pa.float64()), ("cumtime", pa.float64()),
])  # fmt: skip
SQL_SCHEMA = pa.schema([
    ("profile_key", pa.int64()), ("sql", pa.string()), ("count", pa.int64()), ("time_s", pa.float64()),
    ("callers", pa.list_(pa.string())),
])  # fmt: skip
ALLOCATIONS_SCHEMA = pa.schema([
    ("profile_key", pa.int64()), ("file", pa.string()), ("line", pa.int64()), ("size", pa.int64()),
    ("count", pa.int64()),
])  # fmt: skip
FUNCTIONS_SCHEMA = pa.schema([("func_key", pa.int64()), ("file", pa.string()), ("line", pa.int64()),
                              ("name", pa.string())])  # fmt: skip
MANIFEST_SCHEMA = pa.schema([
    ("path", pa.string()), ("size", pa.int64()), ("mtime", pa.string()), ("profile_key", pa.int64()),
    ("reason", pa.string()), ("part", pa.string()), ("seq", pa.int64()),
])  # fmt: skip
SCHEMAS: dict[str, pa.Schema] = {
    "profiles": PROFILES_SCHEMA, "stats": STATS_SCHEMA, "edges": EDGES_SCHEMA, "sql": SQL_SCHEMA,
    "allocations": ALLOCATIONS_SCHEMA, FUNCTIONS: FUNCTIONS_SCHEMA, MANIFEST: MANIFEST_SCHEMA,
}  # fmt: skip
#: The partition columns, in directory order, as readers see them.
PARTITION_SCHEMA = pa.schema([("date", pa.string()), ("run", pa.string())])


def _hash64(text: str) -> int:
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def func_key(file: str, line: int, name: str) -> int:
    """A function's identity in every part of every dataset: a 64-bit hash of ``(file, line, name)``."""
    return _hash64(f"{file}\x00{line}\x00{name}")


def profile_key(path: str, size: int, mtime: str) -> int:
    """One version of one source file: a 64-bit hash of ``(path, size, mtime)``."""
    return _hash64(f"{path}\x00{size}\x00{mtime}")


def partition_dir(date: str | None, run: str | None) -> str:
    """``date=<d>/run=<r>``, values URI-encoded (``/`` in a run name stays one level), missing = Hive's null."""

    def enc(v: str | None) -> str:
        return NULL_PARTITION if v is None or v == "" else quote(str(v), safe="")

    return f"date={enc(date)}/run={enc(run)}"


def partition_of(path: str) -> dict[str, str | None]:
    """``{"date": …, "run": …}`` read back from a data file's path."""
    out: dict[str, str | None] = {"date": None, "run": None}
    for seg in path.split("/"):
        k, eq, v = seg.partition("=")
        if eq and k in out:
            out[k] = None if v == NULL_PARTITION else unquote(v)
    return out


def part_file(root: str, table: str, part: str, date: str | None = None, run: str | None = None) -> str:
    if table in PARTITIONED:
        return posixpath.join(root, table, partition_dir(date, run), f"part-{part}.parquet")
    return posixpath.join(root, table, f"part-{part}.parquet")


def part_id(path: str) -> str | None:
    m = PART_RE.search(path)
    return m.group(1) if m else None


def filesystem(url: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """``(fsspec filesystem, root path in it)`` for a folder or URL; a local folder is made absolute."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    if _is_local(fs):
        import os

        root = os.path.abspath(os.path.expanduser(root))
    return fs, root.rstrip("/") or "/"


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def is_local(fs: Any) -> bool:
    """Whether ``fs`` is the local filesystem (its paths are plain paths, the ones ``cl.load`` reports)."""
    return _is_local(fs)


def full_url(fs: Any, path: str) -> str:
    """The path a user sees: the plain path on the local filesystem, ``s3://bucket/key`` elsewhere."""
    return path if _is_local(fs) else fs.unstrip_protocol(path)
