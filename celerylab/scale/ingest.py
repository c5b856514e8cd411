"""``celerylab.scale.ingest``: profile files from folders or object storage -> a partitioned Parquet dataset, parsed
in parallel on a Dask distributed cluster, incrementally.

Per run: list the sources (the loader's own discovery for folders; an fsspec listing with the same rules for URLs),
keep the files the manifest does not hold in the same version (path, size, modification time), cut them into
chunks, parse each chunk on a worker (:func:`celerylab.scale._work.parse_chunk`, the loader's parser), and commit
each finished chunk by writing its manifest file.  A file that cannot be parsed is reported with the reason
``cl.load`` gives and recorded, so it is not parsed again until it changes; a file still being written (a
temporary name) or gone is reported and left for the next run.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .._files import TEMP_SUFFIXES
from ..core.frames import shown
from ..core.parse import CRASH_REASON
from ..core.sources import SKIP_IN_WALK, discover
from ..errors import UsageError
from . import _layout as L
from ._work import ChunkResult, SourceFile, parse_chunk

#: Reasons that say "not yet" rather than "never": such files are reported but not recorded, so a later run retries.
TRANSIENT = ("temporary file, still being written", "vanished while loading")


@dataclass
class IngestReport:
    """What one ingest run did.  ``errors`` lists ``(path, reason)`` as ``cl.load`` reports them."""

    dataset: str
    candidates: int = 0
    new_files: int = 0
    skipped: int = 0  # already in the dataset, unchanged
    profiles: int = 0
    chunks: int = 0
    seconds: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def profiles_per_second(self) -> float:
        return self.profiles / self.seconds if self.seconds else float("nan")

    def __str__(self) -> str:
        return (f"{self.dataset}: {self.profiles} profile(s) ingested from {self.new_files} new file(s) "
                f"({self.skipped} already ingested, {len(self.errors)} error(s)) in {self.seconds:.1f}s")  # fmt: skip


# ------------------------------------------------------------------------------------------------- listing
def list_sources(sources: str | Sequence[str], source_options: dict[str, Any] | None = None
                 ) -> tuple[list[SourceFile], list[tuple[str, str]]]:  # fmt: skip
    """Every candidate profile file under ``sources`` (folders, globs, files, or fsspec URLs), sorted, with the
    discovery errors ``cl.load`` reports."""
    items = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    local: list[str] = []
    remote: list[str] = []
    for item in items:
        s = os.fspath(item)
        if s.startswith("file://"):
            local.append(s[len("file://") :])
        elif "://" in s:
            remote.append(s)
        else:
            local.append(s)
    files: list[SourceFile] = []
    errors: list[tuple[str, str]] = []
    if local:
        found = discover(local[0] if len(local) == 1 else local)
        errors += found.errors
        for path in found.files:
            try:
                st = os.stat(path)
                files.append(SourceFile(path, st.st_size, str(st.st_mtime_ns)))
            except OSError:
                files.append(SourceFile(path, -1, ""))  # the parser reports what is wrong with it
    for url in remote:
        files += _list_remote(url, source_options, errors)
    uniq = {f.path: f for f in files}
    return [uniq[p] for p in sorted(uniq)], errors


def _list_remote(url: str, options: dict[str, Any] | None, errors: list[tuple[str, str]]) -> list[SourceFile]:
    fs, root = L.filesystem(url, options)
    try:
        if not fs.exists(root):
            errors.append((url, "no such file or directory"))
            return []
        if fs.isfile(root):
            entries = {root: fs.info(root)}
        else:
            entries = fs.find(root, detail=True)
    except OSError as e:
        errors.append((url, f"unreadable: {e}"))
        return []
    out = []
    for path, info in sorted(entries.items()):
        if info.get("type") == "directory":
            continue
        rel = posixpath.relpath(path, root) if path != root else posixpath.basename(path)
        parts = rel.split("/")
        name = parts[-1]
        if any(p.startswith(".") for p in parts[:-1]):
            continue  # hidden folders, as the loader's walk skips them
        if name.startswith(".") and not name.endswith(TEMP_SUFFIXES):
            continue
        if name.lower().endswith(SKIP_IN_WALK):
            continue
        mtime = info.get("LastModified") or info.get("mtime") or info.get("last_modified") or info.get("ETag") or ""
        out.append(SourceFile(L.full_url(fs, path), int(info.get("size") or 0), str(mtime)))
    return out


# ------------------------------------------------------------------------------------------------ manifest
def read_manifest(dataset: str, storage_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """Every committed manifest row (``path, size, mtime, profile_key, reason, part, seq``), oldest first."""
    fs, root = L.filesystem(dataset, storage_options)
    folder = posixpath.join(root, L.MANIFEST)
    try:
        files = sorted(fs.find(folder))
    except FileNotFoundError:
        files = []
    files = [f for f in files if L.part_id(f)]
    if not files:
        return L.MANIFEST_SCHEMA.empty_table().to_pandas(types_mapper=_nullable_ints)
    import pyarrow.dataset as pads

    table = pads.dataset(files, filesystem=fs, format="parquet", schema=L.MANIFEST_SCHEMA).to_table()
    df = table.to_pandas(types_mapper=_nullable_ints)  # 64-bit keys with nulls stay exact
    return df.sort_values("seq", kind="stable").reset_index(drop=True)


def _nullable_ints(t: pa.DataType) -> Any:
    return pd.Int64Dtype() if t == pa.int64() else None


def latest(manifest: pd.DataFrame) -> pd.DataFrame:
    """Each source path's latest committed record."""
    return manifest.drop_duplicates("path", keep="last").sort_values("path").reset_index(drop=True)


def _commit(fs: Any, root: str, res: ChunkResult, seq: int) -> None:
    rows = [r for r in res.files if not (r[4] and r[4].startswith(TRANSIENT))]
    if not rows:
        return
    # the manifest's text as the dataset's (frames.shown: a path that is not UTF-8 written with its escapes)
    df = pd.DataFrame([(shown(p), s, m, k, shown(r)) for p, s, m, k, r in rows],
                      columns=["path", "size", "mtime", "profile_key", "reason"])  # fmt: skip
    df["profile_key"] = pd.array([r[3] for r in rows], dtype="Int64")  # not through float64: 64-bit keys
    df["part"] = res.part
    df["seq"] = seq
    path = L.part_file(root, L.MANIFEST, res.part)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with fs.open(tmp, "wb") as f:
        pq.write_table(pa.Table.from_pandas(df, schema=L.MANIFEST_SCHEMA, preserve_index=False), f)
    fs.mv(tmp, path)


def _remove_uncommitted(fs: Any, root: str, committed: set[str]) -> int:
    """Delete data files of parts that never committed (a chunk whose ingest died half-way)."""
    removed = 0
    for table in (*L.TABLES, L.FUNCTIONS):
        try:
            files = fs.find(posixpath.join(root, table))
        except FileNotFoundError:
            continue
        for f in files:
            pid = L.part_id(f)
            if pid is not None and pid not in committed:
                fs.rm(f)
                removed += 1
    return removed


# ------------------------------------------------------------------------------------------------ cluster
def default_workers() -> int:
    """Worker processes for a LocalCluster on this machine: one per core."""
    return max(1, os.cpu_count() or 1)


def local_cluster(n_workers: int | None = None, **options: Any) -> Any:
    """A ``dask.distributed.LocalCluster`` of ``n_workers`` single-threaded worker processes (default: one per
    core: parsing is pure-Python and holds the GIL)."""
    from distributed import LocalCluster

    kw: dict[str, Any] = {"n_workers": n_workers or default_workers(), "threads_per_worker": 1, "processes": True,
                          "dashboard_address": ":0"}  # fmt: skip
    kw.update(options)
    return LocalCluster(**kw)


def _client(scheduler: Any) -> tuple[Any, Any, bool]:
    """``(client, cluster we started or None, whether we own the client)`` for a scheduler address, a Client, or
    None (a LocalCluster)."""
    from distributed import Client

    if scheduler is None:
        cluster = local_cluster()
        return Client(cluster), cluster, True
    if isinstance(scheduler, Client):
        return scheduler, None, False
    return Client(scheduler), None, True


def _chunks(files: list[SourceFile], size: int) -> list[list[SourceFile]]:
    return [files[i : i + size] for i in range(0, len(files), size)]


def _part_id(files: Iterable[SourceFile]) -> str:
    h = hashlib.blake2b(digest_size=12)
    for f in files:
        h.update(f"{f.path}\x00{f.size}\x00{f.mtime}\x01".encode("utf-8", "surrogatepass"))
    h.update(datetime.now(UTC).isoformat().encode())
    return h.hexdigest()


def ingest(
    sources: str | Sequence[str],
    to: str,
    *,
    scheduler: Any = None,
    chunk_size: int = 64,
    progress: bool | None = None,
    storage_options: dict[str, Any] | None = None,
    source_options: dict[str, Any] | None = None,
) -> IngestReport:
    """Parse the profile files of ``sources`` that ``to`` does not hold yet into the dataset ``to``, on a Dask
    cluster: ``scheduler`` is an address (``tcp://host:8786``), a ``distributed.Client``, or ``None`` for a
    ``LocalCluster`` with one single-threaded worker process per core.  Folders and URLs alike (``s3://…``;
    ``source_options`` / ``storage_options`` go to fsspec).  Returns an :class:`IngestReport`; bad files are in
    its ``errors`` (and stay in the dataset's ``errors``) with the reasons ``cl.load`` gives."""
    t0 = time.perf_counter()
    if chunk_size < 1:
        raise UsageError(f"ingest: chunk_size must be at least 1, not {chunk_size}")
    fs, root = L.filesystem(to, storage_options)
    report = IngestReport(dataset=to)
    files, report.errors = list_sources(sources, source_options)
    report.candidates = len(files)
    fs.makedirs(root, exist_ok=True)
    manifest = read_manifest(to, storage_options)
    _remove_uncommitted(fs, root, set(manifest["part"]))
    have = set(zip(manifest["path"], manifest["size"].astype(int), manifest["mtime"]))
    todo = [f for f in files if (shown(f.path), f.size, f.mtime) not in have]
    report.new_files = len(todo)
    report.skipped = len(files) - len(todo)
    if not todo:
        report.seconds = time.perf_counter() - t0
        return report
    seq = int(manifest["seq"].max()) + 1 if len(manifest) else 0
    chunks = _chunks(todo, chunk_size)
    report.chunks = len(chunks)
    client, cluster, owned = _client(scheduler)
    bar = _bar(len(todo), progress)
    try:
        from distributed import as_completed

        futures = {}
        for c in chunks:
            part = _part_id(c)
            fut = client.submit(parse_chunk, c, to, part, storage_options, source_options, key=f"ingest-{part}",
                                pure=False, retries=1)  # fmt: skip
            futures[fut] = c
        for fut in as_completed(list(futures)):
            chunk = futures.pop(fut)
            try:
                results = [fut.result()]
            except Exception:  # a worker died on this chunk: find the file, file by file
                results = _isolate(client, chunk, to, storage_options, source_options)
            for res in results:
                _commit(fs, root, res, seq)
                seq += 1
                report.profiles += res.n_profiles
                report.errors += [(p, r) for p, _s, _m, _k, r in res.files if r is not None]
                report.errors += res.sidecar_errors
                if bar is not None:
                    bar.update(len(res.files))
    finally:
        if bar is not None:
            bar.close()
        if owned:
            client.close()
        if cluster is not None:
            cluster.close()
    report.seconds = time.perf_counter() - t0
    return report


def _isolate(client: Any, chunk: list[SourceFile], to: str, storage_options: Any, source_options: Any
             ) -> list[ChunkResult]:  # fmt: skip
    out = []
    for f in chunk:
        part = _part_id([f])
        fut = client.submit(parse_chunk, [f], to, part, storage_options, source_options, key=f"ingest-{part}",
                            pure=False)  # fmt: skip
        try:
            out.append(fut.result())
        except Exception:  # this file kills its parser: report it as cl.load does
            out.append(ChunkResult(part=part, files=[(f.path, f.size, f.mtime, None, CRASH_REASON)]))
    return out


def _bar(total: int, progress: bool | None) -> Any:
    from ..core.parse import _interactive

    show = progress if progress is not None else (total >= 200 and _interactive())
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="file", desc="celerylab ingest", leave=False)
