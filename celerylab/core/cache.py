"""Parquet cache of parsed profiles, keyed per file by path + size + mtime (of the profile and its sidecar).

One store per source (a hash of its roots / files).  Each save writes a new generation folder and then switches
a pointer file with ``os.replace``, so a reader never sees a half-written cache and two writers cannot mix.
Re-opening an unchanged corpus reads the Parquet files only; new or changed files are parsed and merged in;
removed files drop out.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .._files import sidecar_path
from .parse import Parsed
from .sources import Found

FORMAT = 3  # 2: the profiler column, negative (unknown) counts and times kept; 3: a foreign path keeps its
#           celerylab package in the module name (classify.OWN_PACKAGE)
_FRAMES = ("profiles", "functions", "sql", "allocations", "sidecar_errors")
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


def _sig(path: str) -> tuple[int, int, int, int]:
    try:
        st = os.stat(path)
        a, b = st.st_size, st.st_mtime_ns
    except OSError:
        a, b = -1, -1
    try:
        st = os.stat(sidecar_path(path))
        c, d = st.st_size, st.st_mtime_ns
    except OSError:
        c, d = -1, -1
    return a, b, c, d


class Store:
    def __init__(self, folder: str) -> None:
        self.folder = folder

    @classmethod
    def for_source(cls, found: Found, cache: bool | str | os.PathLike[str], pattern: re.Pattern[str] | None) -> Store:
        spec = json.dumps({"roots": sorted(found.roots), "files": [] if found.roots else found.files, "v": FORMAT})
        key = hashlib.sha1(spec.encode()).hexdigest()[:16]
        return cls(os.path.join(cache_root(cache), key))

    # ----------------------------------------------------------------------------------------------- reading
    def _current(self) -> str | None:
        try:
            with open(os.path.join(self.folder, "CURRENT")) as f:
                gen = f.read().strip()
        except OSError:
            return None
        path = os.path.join(self.folder, gen)
        return path if gen and os.path.isdir(path) else None

    def _read(self, gen: str) -> tuple[Any, dict[str, np.ndarray], dict[str, np.ndarray]] | None:
        try:
            cols = ["path", "sig", "reason", "n_stats", "n_edges", "total_tt", "profiler"]
            index = pq.read_table(os.path.join(gen, "index.parquet"), columns=cols).to_pydict()
            stats = _columns(pq.read_table(os.path.join(gen, "stats.parquet")))
            edges = _columns(pq.read_table(os.path.join(gen, "edges.parquet")))
        except (OSError, pa.ArrowException, KeyError):
            return None
        return index, stats, edges

    def _read_keys_and_sidecars(self, gen: str, ok: list[int]) -> tuple[list[Any], list[Any]]:
        """Function keys and sidecars: needed only to (re)build frames, so read only then."""
        f = pq.read_table(os.path.join(gen, "functions.parquet")).to_pydict()
        side = pq.read_table(os.path.join(gen, "index.parquet"), columns=["sidecar"]).column("sidecar").to_pylist()
        return list(zip(f["file"], f["line"], f["name"])), [_side(side[i]) for i in ok]

    def complete(self, parsed: Parsed) -> None:
        """Fill in what an unchanged re-open skipped reading (``funcs``, ``sidecars``)."""
        if parsed.funcs is None or parsed.sidecars is None:
            gen = self._current()
            if gen is None:
                raise RuntimeError(f"celerylab cache {self.folder} vanished while loading; load again")
            parsed.funcs, parsed.sidecars = self._read_keys_and_sidecars(gen, parsed.cache_rows or [])

    def load(self, files: list[str], parse: Callable[[list[str]], Parsed]) -> tuple[Parsed, bool]:
        """The parsed content of ``files``, from the cache where unchanged; ``(parsed, nothing_changed)``."""
        sigs = {p: _sig(p) for p in files}
        gen = self._current()
        cached = self._read(gen) if gen else None
        if gen is None or cached is None:
            parsed = parse(files)
            self._save(parsed, sigs)
            return parsed, False
        index, stats, edges = cached
        keep_ok: list[int] = []  # positions (old profile ids) of cached good profiles still valid
        keep_err: list[tuple[str, str]] = []
        fresh: set[str] = set()
        for i, path in enumerate(index["path"]):
            sig = sigs.get(path)
            if sig is None or tuple(index["sig"][i]) != sig:
                continue
            fresh.add(path)
            if index["reason"][i] is None:
                keep_ok.append(i)
            else:
                keep_err.append((path, index["reason"][i]))
        todo = [p for p in files if p not in fresh]
        ok = [i for i, r in enumerate(index["reason"]) if r is None]  # cached good profiles, in old id order
        n_cached_ok = len(ok)
        old = Parsed(
            funcs=None,
            paths=[index["path"][i] for i in ok],
            n_stats=np.array([index["n_stats"][i] for i in ok], dtype=np.int64),
            n_edges=np.array([index["n_edges"][i] for i in ok], dtype=np.int64),
            total_tt=np.array([index["total_tt"][i] for i in ok], dtype=np.float64),
            profilers=[index["profiler"][i] for i in ok],
            sidecars=None,
            stats=stats,
            edges=edges,
            errors=[],
            cache_rows=ok,
        )
        ok_pos = {i: k for k, i in enumerate(ok)}
        keep_pids = np.array([ok_pos[i] for i in keep_ok], dtype=np.int64)
        if not todo and len(keep_pids) == n_cached_ok and len(keep_err) == len(index["path"]) - n_cached_ok:
            old.errors = keep_err
            return old, True  # the common case: nothing changed
        old.funcs, old.sidecars = self._read_keys_and_sidecars(gen, ok)
        old = _subset(old, keep_pids)
        old.errors = keep_err
        new = parse(todo) if todo else None
        parsed = _combine(old, new) if new is not None else old
        self._save(parsed, sigs)
        return parsed, False

    def read_frames(self, key: str) -> dict[str, Any] | None:
        """The built frames saved with the current generation for name pattern ``key``, or None."""
        gen = self._current()
        if gen is None:
            return None
        folder = os.path.join(gen, "frames-" + hashlib.sha1(key.encode()).hexdigest()[:12])
        try:
            return {name: pd.read_parquet(os.path.join(folder, f"{name}.parquet")) for name in _FRAMES}
        except (OSError, ValueError, pa.ArrowException):
            return None

    def write_frames(self, frames: dict[str, Any], key: str) -> None:
        gen = self._current()
        if gen is None:
            return
        folder = os.path.join(gen, "frames-" + hashlib.sha1(key.encode()).hexdigest()[:12])
        tmp = folder + f".{uuid.uuid4().hex[:8]}.tmp"
        try:
            os.makedirs(tmp)
            for name in _FRAMES:
                frames[name].to_parquet(os.path.join(tmp, f"{name}.parquet"), index=False)
            os.replace(tmp, folder)
        except (OSError, ValueError, TypeError, pa.ArrowException):
            # e.g. a metadata column holding mixed types that Parquet cannot store: the frames are rebuilt next time
            shutil.rmtree(tmp, ignore_errors=True)

    # ----------------------------------------------------------------------------------------------- writing
    def _save(self, parsed: Parsed, sigs: dict[str, tuple[int, int, int, int]]) -> None:
        assert parsed.funcs is not None and parsed.sidecars is not None, "saving needs funcs and sidecars"
        try:
            os.makedirs(self.folder, exist_ok=True)
            gen_name = f"gen-{uuid.uuid4().hex[:12]}"
            gen = os.path.join(self.folder, gen_name)
            os.makedirs(gen)
            errs = [(p, r) for p, r in parsed.errors if p in sigs and not r.startswith(_TRANSIENT)]
            paths = parsed.paths + [p for p, _ in errs]
            index = pa.table(
                {
                    "path": paths,
                    "sig": [list(sigs[p]) for p in paths],
                    "reason": [None] * len(parsed.paths) + [r for _, r in errs],
                    "n_stats": list(map(int, parsed.n_stats)) + [0] * len(errs),
                    "n_edges": list(map(int, parsed.n_edges)) + [0] * len(errs),
                    "total_tt": list(map(float, parsed.total_tt)) + [None] * len(errs),
                    "profiler": list(parsed.profilers) + [None] * len(errs),
                    "sidecar": [
                        (json.dumps(s) if isinstance(s, dict) else None if s is None else json.dumps({"__error__": s}))
                        for s in parsed.sidecars
                    ]
                    + [None] * len(errs),
                },
                schema=pa.schema(
                    [
                        ("path", pa.string()),
                        ("sig", pa.list_(pa.int64())),
                        ("reason", pa.string()),
                        ("n_stats", pa.int64()),
                        ("n_edges", pa.int64()),
                        ("total_tt", pa.float64()),
                        ("profiler", pa.string()),
                        ("sidecar", pa.string()),
                    ]
                ),
            )
            pq.write_table(index, os.path.join(gen, "index.parquet"))
            for name, cols in (("stats", parsed.stats), ("edges", parsed.edges)):
                table = pa.table(cols)
                # one row group: the columns read back as single chunks, which convert to numpy without a copy
                pq.write_table(table, os.path.join(gen, f"{name}.parquet"), compression="lz4",
                               row_group_size=max(len(table), 1))  # fmt: skip
            f = parsed.funcs
            pq.write_table(
                pa.table({"file": [k[0] for k in f], "line": [k[1] for k in f], "name": [k[2] for k in f]},
                         schema=pa.schema([("file", pa.string()), ("line", pa.int64()), ("name", pa.string())])),
                os.path.join(gen, "functions.parquet"),
            )  # fmt: skip
            tmp = os.path.join(self.folder, f".CURRENT.{uuid.uuid4().hex[:8]}.tmp")
            with open(tmp, "w") as fh:
                fh.write(gen_name)
            os.replace(tmp, os.path.join(self.folder, "CURRENT"))
            for entry in os.listdir(self.folder):
                if entry.startswith("gen-") and entry != gen_name:
                    shutil.rmtree(os.path.join(self.folder, entry), ignore_errors=True)
        except OSError as e:  # a cache that cannot be written is not an error of the load
            import warnings

            warnings.warn(f"celerylab: cannot write the cache in {self.folder}: {e}", stacklevel=4)


def _columns(t: pa.Table) -> dict[str, np.ndarray]:
    return {name: t.column(name).to_numpy() for name in t.column_names}


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
