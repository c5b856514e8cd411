"""Cache of parsed profiles, keyed per file by path + size + mtime (of the profile and its sidecar).

One store per source (a hash of its roots / files).  Each save writes a new generation folder and then switches
a pointer file with ``os.replace``, so a reader never sees a half-written cache and two writers cannot mix.
The columns (``stats``, ``edges``, the per-file ``index``, ``functions``) are uncompressed Arrow IPC files that a
re-open memory-maps: the numpy columns are views of the page cache, nothing is decoded or copied.  Re-opening
an unchanged corpus costs a stat of every file and its sidecar (compared as arrays) and the mapping; new or
changed files are parsed and merged in; removed files drop out.  The built frames (profiles, functions, sql,
allocations) are one pickle beside them, which keeps every pandas dtype and any metadata column, and unpickles
several times faster than Arrow converts back to pandas; its column buffers are stored out of band (pickle protocol
5) and mapped back like the Arrow columns, so only the small frame skeletons are unpickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import pickle
import re
import shutil
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from .._files import sidecar_path
from .decode import stat_sigs
from .parse import Parsed
from .rules import column_facts
from .sources import Found, keepable, still_valid

FORMAT = 6  # 2: the profiler column, negative (unknown) counts and times kept; 3: a foreign path keeps its
#           celerylab package in the module name (classify.OWN_PACKAGE); 4: Arrow IPC columns, memory-mapped;
#           5: the built frames pickled; 6: the frames' column buffers out of band, mapped
_FRAMES = ("profiles", "functions", "sql", "allocations", "sidecar_errors")
_FRAMES_FILE = "frames.pickle"
# the last walk of the source (a pickled sources.Found), kept while its folders do not change; a change to Found's
# fields needs a new FORMAT (an older pickle would lack them)
_WALK_FILE = "walk.pickle"
# reasons that depend on the moment, not on the content: never cached, always tried again
_TRANSIENT = ("unreadable", "vanished", "symlink", "is a directory", "the parser process crashed", "temporary file")


def cache_root(cache: bool | str | os.PathLike[str]) -> str:
    if cache is True:
        base = os.environ.get("CELERYLAB_CACHE_DIR") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "celerylab"
        )
        return base
    if cache is False:
        raise ValueError("cache_root: caching is off (cache=False)")
    return os.fspath(cache)


def _sigs(files: list[str], found: Found | None) -> np.ndarray:
    """(size, mtime_ns) of every file and of its sidecar as an ``(n, 4)`` int64 array, -1 where missing (a sidecar the
    walk did not list is not asked for)."""
    return stat_sigs(files, found.sidecars_of(files) if found else [sidecar_path(p) for p in files])


class Store:
    def __init__(self, folder: str) -> None:
        self.folder = folder

    @classmethod
    def for_source(cls, found: Found, cache: bool | str | os.PathLike[str], pattern: re.Pattern[str] | None) -> Store:
        return cls.for_roots(found.roots, found.files, cache)

    @classmethod
    def for_roots(cls, roots: list[str], files: list[str], cache: bool | str | os.PathLike[str]) -> Store:
        """The store of a source that walked ``roots`` (or, with none, named ``files``)."""
        spec = json.dumps({"roots": sorted(roots), "files": [] if roots else files, "v": FORMAT})
        key = hashlib.sha1(spec.encode()).hexdigest()[:16]
        return cls(os.path.join(cache_root(cache), key))

    # ------------------------------------------------------------------------------------------------ the walk
    def read_walk(self, roots: list[str]) -> Found | None:
        """The walk kept by :meth:`write_walk` for these ``roots``, if every folder it read is unchanged
        (:func:`sources.still_valid`); None otherwise (walk again)."""
        try:
            with open(os.path.join(self.folder, _WALK_FILE), "rb") as f:
                fmt, found = pickle.load(f)
        except Exception:  # missing, cut short, or written by another version: walked again
            return None
        if fmt != FORMAT or not isinstance(found, Found) or found.roots != roots:
            return None
        return found if still_valid(found) else None

    def write_walk(self, found: Found) -> None:
        """Keep ``found`` for the next re-open, when it can be kept (:func:`sources.keepable`)."""
        if not keepable(found):
            return
        found.sidecars_of(found.files)  # made now, kept with it
        tmp = os.path.join(self.folder, f".{_WALK_FILE}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "wb") as f:
                pickle.dump((FORMAT, found), f, protocol=5)
            os.replace(tmp, os.path.join(self.folder, _WALK_FILE))
        except (OSError, pickle.PicklingError):
            with contextlib.suppress(OSError):
                os.remove(tmp)

    # ----------------------------------------------------------------------------------------------- reading
    def _current(self) -> str | None:
        try:
            with open(os.path.join(self.folder, "CURRENT")) as f:
                gen = f.read().strip()
        except OSError:
            return None
        path = os.path.join(self.folder, gen)
        return path if gen and os.path.isdir(path) else None

    def _read(self, gen: str) -> tuple[Any, dict[str, np.ndarray], dict[str, np.ndarray], dict[str, bool]] | None:
        try:
            index = _map(os.path.join(gen, "index.arrow"))
            stats_t = _map(os.path.join(gen, "stats.arrow"))
            stats = _columns(stats_t)
            edges = _columns(_map(os.path.join(gen, "edges.arrow")))
            facts = json.loads((stats_t.schema.metadata or {})[_FACTS_KEY.encode()])
            # read only when frames are rebuilt, but checked now (its footer): a damaged cache is rebuilt at once
            pa.ipc.open_file(pa.memory_map(os.path.join(gen, "functions.arrow"), "r"))
            if index.schema.names[: len(_INDEX_COLS)] != list(_INDEX_COLS):
                return None
        except (OSError, pa.ArrowException, KeyError, ValueError):
            return None
        return index, stats, edges, facts

    def _read_keys_and_sidecars(self, gen: str, ok: list[int] | np.ndarray) -> tuple[list[Any], list[Any]]:
        """Function keys and sidecars: needed only to (re)build frames, so read only then."""
        f = _map(os.path.join(gen, "functions.arrow")).to_pydict()
        side = _map(os.path.join(gen, "index.arrow")).column("sidecar").take(pa.array(np.asarray(ok, dtype=np.int64)))
        return list(zip(f["file"], f["line"], f["name"])), [_side(s) for s in side.to_pylist()]

    def complete(self, parsed: Parsed) -> None:
        """Fill in what an unchanged re-open skipped reading (``funcs``, ``sidecars``)."""
        if parsed.funcs is None or parsed.sidecars is None:
            gen = self._current()
            if gen is None:
                raise RuntimeError(f"celerylab cache {self.folder} vanished while loading; load again")
            parsed.funcs, parsed.sidecars = self._read_keys_and_sidecars(gen, parsed.cache_rows or [])

    def load(
        self, files: list[str], parse: Callable[[list[str], np.ndarray], Parsed], found: Found | None = None
    ) -> tuple[Parsed, bool]:
        """The parsed content of ``files``, from the cache where unchanged; ``(parsed, nothing_changed)``.
        ``found``: the discovery that listed ``files`` (its folder listings say which sidecars exist); ``parse``
        is given the files to parse and their sizes (from the signatures: not stat'ed again)."""
        sigs = _sigs(files, found)  # the one piece of per-file work of a re-open: a stat or two
        gen = self._current()
        cached = self._read(gen) if gen else None
        if gen is None or cached is None:
            parsed = parse(files, sigs[:, 0].copy())
            self._save(parsed, files, sigs)
            return parsed, False
        index, stats, edges, facts = cached
        cpaths = index.column("path").to_pylist()
        csig = np.column_stack([index.column(c).to_numpy() for c in _SIG_COLS]) if len(cpaths) else np.empty((0, 4))
        reason = index.column("reason")
        is_ok = reason.is_null().to_numpy(zero_copy_only=False)
        # row of the cache index of every file (-1: not cached), then which of them are unchanged
        if cpaths == files:
            rows = np.arange(len(files))
        else:
            pos = {p: i for i, p in enumerate(cpaths)}
            rows = np.fromiter((pos.get(p, -1) for p in files), dtype=np.int64, count=len(files))
        cur = sigs
        fresh_file = rows >= 0
        fresh_file[fresh_file] = (csig[rows[fresh_file]] == cur[fresh_file]).all(axis=1)
        fresh_rows = rows[fresh_file]
        ok = np.flatnonzero(is_ok)  # cached good profiles, in old id order
        keep_ok = np.zeros(len(cpaths), dtype=bool)
        keep_ok[fresh_rows] = True
        keep_err_rows = np.flatnonzero(keep_ok & ~is_ok)
        keep_err = list(zip([cpaths[i] for i in keep_err_rows], reason.take(pa.array(keep_err_rows)).to_pylist()))
        keep_ok &= is_ok
        n = index.column("n_stats").to_numpy()
        old = Parsed(
            funcs=None,
            paths=[cpaths[i] for i in ok] if len(ok) != len(cpaths) else cpaths,
            n_stats=n[ok].astype(np.int64),
            n_edges=index.column("n_edges").to_numpy()[ok].astype(np.int64),
            total_tt=index.column("total_tt").to_numpy(zero_copy_only=False)[ok].astype(np.float64),
            profilers=index.column("profiler").take(pa.array(ok)).to_pylist(),
            sidecars=None,
            stats=stats,
            edges=edges,
            errors=[],
            cache_rows=ok.tolist(),
        )
        if fresh_file.all() and len(fresh_rows) == len(cpaths):
            old.errors = keep_err
            old.facts = facts
            return old, True  # the common case: nothing changed
        ok_pos = np.full(len(cpaths), -1, dtype=np.int64)
        ok_pos[ok] = np.arange(len(ok))
        keep_pids = ok_pos[np.flatnonzero(keep_ok)]
        old.funcs, old.sidecars = self._read_keys_and_sidecars(gen, ok)
        old = _subset(old, keep_pids)
        old.errors = keep_err
        todo = [p for p, f in zip(files, fresh_file) if not f]
        new = parse(todo, sigs[~fresh_file, 0]) if todo else None
        parsed = _combine(old, new) if new is not None else old
        self._save(parsed, files, sigs)
        return parsed, False

    def read_frames(self, key: str) -> dict[str, Any] | None:
        """The built frames saved with the current generation for name pattern ``key``, or None."""
        gen = self._current()
        if gen is None:
            return None
        folder = os.path.join(gen, "frames-" + hashlib.sha1(key.encode()).hexdigest()[:12])
        try:
            frames = _load_frames(os.path.join(folder, _FRAMES_FILE))
        except Exception:  # cut short, or written by another pandas: rebuilt (and rewritten) by the caller
            return None
        return frames if isinstance(frames, dict) and set(frames) == set(_FRAMES) else None

    def write_frames(self, frames: dict[str, Any], key: str) -> None:
        gen = self._current()
        if gen is None:
            return
        folder = os.path.join(gen, "frames-" + hashlib.sha1(key.encode()).hexdigest()[:12])
        tmp = folder + f".{uuid.uuid4().hex[:8]}.tmp"
        try:
            os.makedirs(tmp)
            _dump_frames({name: frames[name] for name in _FRAMES}, os.path.join(tmp, _FRAMES_FILE))
            if os.path.isdir(folder):  # damaged frames that were rebuilt: moved aside, then removed
                old = folder + f".{uuid.uuid4().hex[:8]}.old"
                os.replace(folder, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, folder)
        except (OSError, pickle.PicklingError, TypeError, AttributeError):  # not picklable: rebuilt next time
            shutil.rmtree(tmp, ignore_errors=True)

    # ----------------------------------------------------------------------------------------------- writing
    def _save(self, parsed: Parsed, files: list[str], sigs: np.ndarray) -> None:
        assert parsed.funcs is not None and parsed.sidecars is not None, "saving needs funcs and sidecars"
        sig_of = dict(zip(files, sigs))
        try:
            os.makedirs(self.folder, exist_ok=True)
            gen_name = f"gen-{uuid.uuid4().hex[:12]}"
            gen = os.path.join(self.folder, gen_name)
            os.makedirs(gen)
            errs = [(p, r) for p, r in parsed.errors if p in sig_of and not r.startswith(_TRANSIENT)]
            paths = parsed.paths + [p for p, _ in errs]
            sig = np.array([sig_of[p] for p in paths], dtype=np.int64).reshape(len(paths), 4)
            n_err = len(errs)
            index = pa.table(
                {
                    "path": pa.array(paths, pa.string()),
                    **{c: sig[:, j] for j, c in enumerate(_SIG_COLS)},
                    "reason": pa.array([None] * len(parsed.paths) + [r for _, r in errs], pa.string()),
                    "n_stats": np.concatenate([parsed.n_stats, np.zeros(n_err)]).astype(np.int64),
                    "n_edges": np.concatenate([parsed.n_edges, np.zeros(n_err)]).astype(np.int64),
                    "total_tt": np.concatenate([parsed.total_tt, np.full(n_err, np.nan)]).astype(np.float64),
                    "profiler": pa.array(list(parsed.profilers) + [None] * n_err, pa.string()),
                    "sidecar": pa.array([_side_text(s) for s in parsed.sidecars] + [None] * n_err, pa.string()),
                }
            )
            _write(index, os.path.join(gen, "index.arrow"))
            if parsed.facts is None:  # found once: the load that saves reads them from parsed too
                parsed.facts = column_facts(parsed.stats, parsed.edges)
            meta = {_FACTS_KEY: json.dumps(parsed.facts)}
            _write(pa.table(parsed.stats).replace_schema_metadata(meta), os.path.join(gen, "stats.arrow"))
            _write(pa.table(parsed.edges), os.path.join(gen, "edges.arrow"))
            f = parsed.funcs
            _write(
                pa.table({"file": pa.array([k[0] for k in f], pa.string()),
                          "line": pa.array([k[1] for k in f], pa.int64()),
                          "name": pa.array([k[2] for k in f], pa.string())}),
                os.path.join(gen, "functions.arrow"),
            )  # fmt: skip
            tmp = os.path.join(self.folder, f".CURRENT.{uuid.uuid4().hex[:8]}.tmp")
            with open(tmp, "w") as fh:
                fh.write(gen_name)
            os.replace(tmp, os.path.join(self.folder, "CURRENT"))
            for entry in os.listdir(self.folder):
                if entry.startswith("gen-") and entry != gen_name:
                    # a reader that mapped the old generation keeps its pages: unlinking never truncates them
                    shutil.rmtree(os.path.join(self.folder, entry), ignore_errors=True)
        except OSError as e:  # a cache that cannot be written is not an error of the load
            import warnings

            warnings.warn(f"celerylab: cannot write the cache in {self.folder}: {e}", stacklevel=4)


_SIG_COLS = ("size", "mtime_ns", "sidecar_size", "sidecar_mtime_ns")
_FACTS_KEY = "celerylab.column_facts"  # rules.column_facts, in the schema metadata of stats.arrow
_INDEX_COLS = ("path", *_SIG_COLS, "reason", "n_stats", "n_edges", "total_tt", "profiler", "sidecar")


def _write(table: pa.Table, path: str) -> None:
    """One uncompressed Arrow IPC file holding one record batch: mapped back, every column is one contiguous
    buffer that numpy views without a copy."""
    batches = table.combine_chunks().to_batches()
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        for b in batches or [pa.record_batch([pa.array([], f.type) for f in table.schema], schema=table.schema)]:
            writer.write_batch(b)


_ALIGN = 64


def _dump_frames(frames: dict[str, Any], path: str) -> None:
    """``frames`` pickled with their contiguous column buffers out of band: an 8-byte header length, the header
    (the pickle, each buffer's offset and length, the buffers' total length), then the buffers, 64-byte aligned."""
    raws: list[memoryview] = []

    def out_of_band(buf: pickle.PickleBuffer) -> bool:
        try:
            raws.append(buf.raw())
        except BufferError:  # not contiguous: kept in the pickle
            return True
        return False

    meta = pickle.dumps(frames, protocol=5, buffer_callback=out_of_band)
    spans, pos = [], 0
    for r in raws:
        pos += -pos % _ALIGN
        spans.append((pos, r.nbytes))
        pos += r.nbytes
    header = pickle.dumps((meta, spans, pos), protocol=5)
    start = 8 + len(header)
    with open(path, "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header + bytes(-start % _ALIGN))
        at = 0
        for (off, _), r in zip(spans, raws):
            f.write(bytes(off - at))
            f.write(r)
            at = off + r.nbytes


def _load_frames(path: str) -> Any:
    """The frames :func:`_dump_frames` wrote, their column buffers views of a private (copy-on-write) mapping of
    the file: writable, never written back.  ValueError when the file is cut short or padded."""
    with open(path, "rb") as f:
        view = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY))
    n = int.from_bytes(view[:8], "little")
    meta, spans, total = pickle.loads(view[8 : 8 + n])
    start = 8 + n + (-(8 + n) % _ALIGN)
    if len(view) != start + total:
        raise ValueError(f"frames file {path}: {len(view)} bytes, its header says {start + total}")
    return pickle.loads(meta, buffers=[view[start + off : start + off + size] for off, size in spans])


def _map(path: str) -> pa.Table:
    """The table in an Arrow IPC file, memory-mapped (its buffers are views of the file's pages)."""
    return pa.ipc.open_file(pa.memory_map(path, "r")).read_all()


def _columns(t: pa.Table) -> dict[str, np.ndarray]:
    """Zero-copy numpy views of a mapped table's columns (one chunk each, no nulls)."""
    out = {}
    for name in t.column_names:
        col = t.column(name)
        if col.num_chunks != 1 or col.null_count:
            raise ValueError(f"cache column {name} is not one chunk without nulls")
        out[name] = col.chunk(0).to_numpy(zero_copy_only=True)
    return out


def _side_text(s: Any) -> str | None:
    """A sidecar (a dict, None, or the text of its error) as stored in the index."""
    if s is None:
        return None
    return json.dumps(s if isinstance(s, dict) else {"__error__": s})


def _side(s: str | None) -> Any:
    if s is None:
        return None
    obj = json.loads(s)
    if isinstance(obj, dict) and set(obj) == {"__error__"}:
        return obj["__error__"]
    return obj


def _subset(p: Parsed, pids: np.ndarray) -> Parsed:
    """Keep profiles ``pids`` (sorted old ids), renumbered 0..k-1."""
    n = len(p.paths)
    if len(pids) == n:
        return p
    new_id = np.full(n, -1, dtype=np.int32)
    new_id[pids] = np.arange(len(pids), dtype=np.int32)

    def sub(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        nid = new_id[cols["profile_id"]]
        keep = nid >= 0
        out = {k: v[keep] for k, v in cols.items()}
        out["profile_id"] = nid[keep]
        return out

    return Parsed(
        funcs=p.funcs,
        paths=[p.paths[i] for i in pids],
        n_stats=p.n_stats[pids],
        n_edges=p.n_edges[pids],
        total_tt=p.total_tt[pids],
        profilers=[p.profilers[i] for i in pids],
        sidecars=None if p.sidecars is None else [p.sidecars[i] for i in pids],
        stats=sub(p.stats),
        edges=sub(p.edges),
        errors=p.errors,
    )


def _combine(a: Parsed, b: Parsed) -> Parsed:
    """Merge two Parsed with disjoint paths into one in path order."""
    assert a.funcs is not None and b.funcs is not None and a.sidecars is not None and b.sidecars is not None
    index = {k: i for i, k in enumerate(a.funcs)}
    remap_b = np.array([index.setdefault(k, len(index)) for k in b.funcs], dtype=np.int32)
    paths = a.paths + b.paths
    order = np.argsort(np.array(paths, dtype=object), kind="stable")
    new_pid = np.empty(len(paths), dtype=np.int32)
    new_pid[order] = np.arange(len(paths), dtype=np.int32)
    na = len(a.paths)

    def join(ca: dict[str, np.ndarray], cb: dict[str, np.ndarray], id_cols: tuple[str, ...]) -> dict[str, np.ndarray]:
        pid = np.concatenate([new_pid[ca["profile_id"]], new_pid[cb["profile_id"] + na]])
        perm = np.argsort(pid, kind="stable")
        out = {"profile_id": pid[perm]}
        for k in ca:
            if k == "profile_id":
                continue
            vb = remap_b[cb[k]] if k in id_cols and len(cb[k]) else cb[k]
            out[k] = np.concatenate([ca[k], vb.astype(ca[k].dtype, copy=False)])[perm]
        return out

    def reorder(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.concatenate([x, y])[order]

    sidecars = a.sidecars + b.sidecars
    return Parsed(
        funcs=list(index),
        paths=[paths[i] for i in order],
        n_stats=reorder(a.n_stats, b.n_stats),
        n_edges=reorder(a.n_edges, b.n_edges),
        total_tt=reorder(a.total_tt, b.total_tt),
        profilers=[(a.profilers + b.profilers)[i] for i in order],
        sidecars=[sidecars[i] for i in order],
        stats=join(a.stats, b.stats, ("func_id",)),
        edges=join(a.edges, b.edges, ("caller_id", "callee_id")),
        errors=a.errors + b.errors,
    )
