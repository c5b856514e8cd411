"""Cache of parsed profiles, keyed per file by path + size + mtime (of the profile and its sidecar).

One store per source (a hash of its roots / files).  Each save writes a new generation folder and then switches
a pointer file with ``os.replace``, so a reader never sees a half-written cache and two writers cannot mix.

A generation holds three files, each read only when needed:

* ``core.bin``: what every re-open reads — the files and their signatures, the good profiles' index, their
  ``stats``/``edges`` columns and the column facts.  It is a pickle whose column buffers are stored out of band
  (pickle protocol 5), 64-byte aligned after it: a re-open maps the file and unpickles the small skeleton, and the
  numpy columns are views of the mapping (copy-on-write): nothing is decoded or copied.  One file, not one Arrow
  IPC file per table: opening an Arrow file (its schema and footer) cost ~0.12 ms each, a sixth of a whole re-open
  of 300 profiles, measured.
* ``keys.pickle``: the function keys and the sidecars, read only when frames are built again or new files are
  merged in.
* ``frames-<key>/frames.pickle``: the built frames (profiles, functions, sql, allocations, sidecar errors) for
  one name pattern, stored the same way as the core (empty ones as None, made again from their template): every
  pandas dtype and any metadata column kept, several times faster than Arrow converts back to pandas.

Beside the generations, a store keeps the last walk of a source of folders (``walk.pickle``, a :class:`KeptWalk`):
its folders' mtimes, its files' names as one bytes object, and the generation that holds exactly those files.

Re-opening an unchanged corpus costs a stat of every folder, file and sidecar (the files' compared as one array,
made in C from the kept names) and the two mappings, with no Python object made for any file; new or changed
files are parsed and merged in; removed files drop out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
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
import pandas as pd
import pyarrow as pa

from .._files import sidecar_path
from .decode import fits_int32, names_blob, stat_sigs, stat_sigs_started
from .frames import STR, frame_of, names_index, table
from .parse import Parsed
from .rules import column_facts
from .sources import Found, dirs_unchanged, keepable

FORMAT = 10  # 2: the profiler column, negative (unknown) counts and times kept; 3: a foreign path keeps its
#           celerylab package in the module name (classify.OWN_PACKAGE); 4: Arrow IPC columns, memory-mapped;
#           5: the built frames pickled; 6: the frames' column buffers out of band, mapped; 7: one core file
#           (no Arrow), keys and sidecars pickled apart, empty frames not stored; 8: arrays made again with
#           numpy's own dtypes (_array); 9: frames, categoricals and str columns made again from their
#           columns and buffers (_frame, _categorical, _strings); 10: the kept walk as a KeptWalk (its files'
#           names as one bytes object, the generation that holds them), dtypes of a few categories made once per
#           process, datetime columns from their buffers, sidecar errors as rows
_FRAMES = ("profiles", "functions", "sql", "allocations", "sidecar_errors")
_FRAMES_FILE = "frames.pickle"
_EMPTY_STORED_AS_NONE = ("sql", "allocations")  # most loads have none: made from frames.table
# a generation: the core (what every re-open reads: the files and their signatures, the good profiles' index and
# their stats/edges columns, the column facts), its columns memory-mapped; the function keys and sidecars (read
# only when frames are built again or new files are merged in)
_CORE_FILE = "core.bin"
_KEYS_FILE = "keys.pickle"
_CORE_KEYS = {"format", "files", "sig", "pid", "errors", "paths", "n_stats", "n_edges", "total_tt", "profilers",
              "stats", "edges", "facts"}  # fmt: skip
_NEVER = -2  # the signature of a file with no lasting verdict: no stat gives it, so the file is parsed again
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
    return stat_sigs(files, _sidecars(files, found))


def sigs_started(files: list[str], found: Found | None) -> Callable[[], np.ndarray]:
    """:func:`_sigs`, started now in threads of their own (:func:`decode.stat_sigs_started`); call the result."""
    return stat_sigs_started(files, _sidecars(files, found))


def _sidecars(files: list[str], found: Found | None) -> list[str | None]:
    return found.sidecars_of(files) if found else [sidecar_path(p) for p in files]


class Store:
    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._gen: str | None = None  # the generation the last load read or wrote
        # the name of the generation that holds exactly the files of the last load (the list itself, by identity)
        self.files_gen: str | None = None
        self.files_gen_of: list[str] | None = None

    @classmethod
    def for_source(cls, found: Found, cache: bool | str | os.PathLike[str], pattern: re.Pattern[str] | None) -> Store:
        return cls.for_roots(found.roots, found.files, cache)

    @classmethod
    def for_roots(cls, roots: list[str], files: list[str], cache: bool | str | os.PathLike[str]) -> Store:
        """The store of a source that walked ``roots`` (or, with none, named ``files``)."""
        key = _roots_key(tuple(sorted(roots))) if roots else _store_key([], files)
        return cls(os.path.join(cache_root(cache), key))

    # ------------------------------------------------------------------------------------------------ the walk
    def read_walk(self, roots: list[str]) -> KeptWalk | None:
        """The walk kept by :meth:`write_walk` for these ``roots``, if every folder it read is unchanged
        (:func:`sources.dirs_unchanged`); None otherwise (walk again)."""
        try:
            fd = os.open(os.path.join(self.folder, _WALK_FILE), os.O_RDONLY)
            try:
                raw = os.read(fd, os.fstat(fd).st_size + 1)
            finally:
                os.close(fd)
            fmt, kept = pickle.loads(raw)
        except Exception:  # missing, cut short, or written by another version: walked again
            return None
        if fmt != FORMAT or not isinstance(kept, KeptWalk) or kept.roots != roots:
            return None
        return kept if dirs_unchanged(kept.dirs) else None

    def write_walk(self, found: Found) -> None:
        """Keep ``found`` for the next re-open, when it can be kept (:func:`sources.keepable`), with the
        generation that holds its files, when the last :meth:`load` of its files read or wrote one."""
        if not keepable(found):
            return
        sides = found.sidecars_of(found.files)  # made now, kept with it
        gen = self.files_gen if self.files_gen_of is found.files else None
        kept = KeptWalk(found.roots, found.dirs, gen, len(found.files), names_blob(found.files, sides),
                        pickle.dumps(found, protocol=5))  # fmt: skip
        tmp = os.path.join(self.folder, f".{_WALK_FILE}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "wb") as f:
                pickle.dump((FORMAT, kept), f, protocol=5)
            os.replace(tmp, os.path.join(self.folder, _WALK_FILE))
        except (OSError, pickle.PicklingError):
            with contextlib.suppress(OSError):
                os.remove(tmp)

    def read_unchanged(self, kept: KeptWalk, sigs_of: Callable[[], np.ndarray]) -> Parsed | None:
        """The parsed content of the kept walk's files when the current generation holds them (``kept.gen``) and
        none of them changed (``sigs_of``: their signatures, started); None otherwise (:meth:`load` them).  No
        Python object is made for any file."""
        gen = self._gen = self._gen or self._current()
        if gen is None or kept.gen is None or os.path.basename(gen) != kept.gen:
            return None
        core = self._read(gen)
        if core is None or len(core["sig"]) != kept.n or not _same(core["sig"], sigs_of()):
            return None
        return _parsed(core)

    # ----------------------------------------------------------------------------------------------- reading
    def _current(self) -> str | None:
        # read with the bare system calls: a text-mode open() (a buffered reader, a decoder) took 0.19 ms in a
        # re-open after other work, these 0.14 ms (the name is ASCII, 16 bytes)
        try:
            fd = os.open(os.path.join(self.folder, "CURRENT"), os.O_RDONLY)
        except OSError:
            return None
        try:
            gen = os.read(fd, 256).decode("ascii", "replace").strip()
        except OSError:
            return None
        finally:
            os.close(fd)
        return os.path.join(self.folder, gen) if gen else None

    def _read(self, gen: str) -> dict[str, Any] | None:
        """The core of generation ``gen`` (its index, columns and column facts), or None when it is missing,
        cut short or not of this version (the files are then parsed again)."""
        try:
            core = _load_mapped(os.path.join(gen, _CORE_FILE))
        except Exception:  # missing, cut short, garbage, or written by another version
            return None
        if not isinstance(core, dict) or core.get("format") != FORMAT or set(core) != _CORE_KEYS:
            return None
        return core

    def _read_keys(self, gen: str) -> tuple[list[Any], list[Any]]:
        """Function keys and sidecars of the generation's good profiles: needed only to (re)build frames or to
        merge new files in, so read only then.  :class:`CacheDamaged` when they cannot be read."""
        try:
            with open(os.path.join(gen, _KEYS_FILE), "rb") as f:
                fmt, funcs, sidecars = pickle.load(f)
        except Exception as e:  # missing, cut short, garbage
            raise CacheDamaged(f"{gen}: {_KEYS_FILE}: {e}") from e
        if fmt != FORMAT or not isinstance(funcs, list) or not isinstance(sidecars, list):
            raise CacheDamaged(f"{gen}: {_KEYS_FILE}: not of this version")
        return funcs, sidecars

    def complete(self, parsed: Parsed) -> None:
        """Fill in what an unchanged re-open skipped reading (``funcs``, ``sidecars``); :class:`CacheDamaged` when
        they cannot be read (the caller loads again with ``anew``)."""
        if parsed.funcs is None or parsed.sidecars is None:
            gen = self._gen or self._current()
            if gen is None:
                raise CacheDamaged(f"celerylab cache {self.folder} vanished while loading")
            funcs, sidecars = self._read_keys(gen)
            if len(sidecars) != len(parsed.paths):
                raise CacheDamaged(f"{gen}: {_KEYS_FILE}: {len(sidecars)} sidecars for {len(parsed.paths)} profiles")
            parsed.funcs, parsed.sidecars = funcs, sidecars

    def load(
        self,
        files: list[str],
        parse: Callable[[list[str], np.ndarray], Parsed],
        found: Found | None = None,
        anew: bool = False,
        sigs_of: Callable[[], np.ndarray] | None = None,
    ) -> tuple[Parsed, bool]:
        """The parsed content of ``files``, from the cache where unchanged; ``(parsed, nothing_changed)``.
        ``found``: the discovery that listed ``files`` (its folder listings say which sidecars exist); ``parse``
        is given the files to parse and their sizes (from the signatures: not stat'ed again).  ``anew``: the cache
        is not read (it was found damaged): every file is parsed and a new generation written.  ``sigs_of``: the
        files' signatures, already started (:func:`sigs_started`); stat'ed here otherwise."""
        gen = self._gen = None if anew else (self._gen or self._current())
        self.files_gen = self.files_gen_of = None
        # the one piece of per-file work of a re-open: a stat or two
        sigs = sigs_of() if sigs_of is not None else _sigs(files, found)
        core = self._read(gen) if gen else None
        if gen is None or core is None:
            parsed = parse(files, sigs[:, 0].copy())
            self._save(parsed, files, sigs)
            return parsed, False
        old = _parsed(core)
        try:  # pickled apart: an unchanged re-open of a kept walk never reads them (read_unchanged)
            cfiles = pickle.loads(core["files"])
        except Exception:  # garbage
            return self.load(files, parse, found, anew=True)
        if cfiles == files and _same(core["sig"], sigs):
            self.files_gen, self.files_gen_of = os.path.basename(gen), files
            return old, True  # the common case: nothing changed
        old.facts = None
        # row of every file in the cached generation (-1: not there), then which of them are unchanged
        pos = {p: i for i, p in enumerate(cfiles)}
        rows = np.fromiter((pos.get(p, -1) for p in files), dtype=np.int64, count=len(files))
        fresh = rows >= 0
        fresh[fresh] = (core["sig"][rows[fresh]] == sigs[fresh]).all(axis=1)
        keep_pids = np.sort(core["pid"][rows[fresh]])
        fresh_paths = {files[i] for i in np.flatnonzero(fresh)}
        try:
            old.funcs, old.sidecars = self._read_keys(gen)
        except CacheDamaged:
            return self.load(files, parse, found, anew=True)
        old = _subset(old, keep_pids[keep_pids >= 0])
        old.errors = [(p, r) for p, r in core["errors"] if p in fresh_paths]
        todo = [p for p, f in zip(files, fresh) if not f]
        new = parse(todo, sigs[~fresh, 0]) if todo else None
        parsed = _narrow_counts(_renumber(_combine(old, new) if new is not None else old))
        self._save(parsed, files, sigs)
        return parsed, False

    def read_frames(self, key: str) -> dict[str, Any] | None:
        """The built frames saved with the current generation for name pattern ``key``, or None.  Read before
        :meth:`load` (while the files' stat calls run), it reads the generation that :meth:`load` then checks."""
        gen = self._gen = self._gen or self._current()
        if gen is None:
            return None
        folder = os.path.join(gen, "frames-" + hashlib.sha1(key.encode()).hexdigest()[:12])
        try:
            frames = _load_mapped(os.path.join(folder, _FRAMES_FILE))
        except Exception:  # cut short, or written by another pandas: rebuilt (and rewritten) by the caller
            return None
        if not isinstance(frames, dict) or set(frames) != set(_FRAMES):
            return None
        if not isinstance(frames["sidecar_errors"], list):  # (path, reason) rows
            return None
        for name in _EMPTY_STORED_AS_NONE:
            if frames[name] is None:
                frames[name] = table(name, [])
        return frames

    def write_frames(self, frames: dict[str, Any], key: str) -> None:
        gen = self._gen or self._current()
        if gen is None:
            return
        folder = os.path.join(gen, "frames-" + hashlib.sha1(key.encode()).hexdigest()[:12])
        tmp = folder + f".{uuid.uuid4().hex[:8]}.tmp"
        try:
            os.makedirs(tmp)
            stored = {n: None if n in _EMPTY_STORED_AS_NONE and not len(frames[n]) else frames[n] for n in _FRAMES}
            _dump_mapped(stored, os.path.join(tmp, _FRAMES_FILE))
            if os.path.isdir(folder):  # damaged frames that were rebuilt: moved aside, then removed
                old = folder + f".{uuid.uuid4().hex[:8]}.old"
                os.replace(folder, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, folder)
        except (OSError, pickle.PicklingError, TypeError, AttributeError):  # not picklable: rebuilt next time
            shutil.rmtree(tmp, ignore_errors=True)

    # ----------------------------------------------------------------------------------------------- writing
    def _save(self, parsed: Parsed, files: list[str], sigs: np.ndarray) -> None:
        """Write a new generation for ``files`` (signatures ``sigs``) and make it current."""
        assert parsed.funcs is not None and parsed.sidecars is not None, "saving needs funcs and sidecars"
        if parsed.facts is None:  # found once: the load that saves reads them from parsed too
            parsed.facts = column_facts(parsed.stats, parsed.edges)
        pid = np.full(len(files), -1, dtype=np.int64)
        row = {p: i for i, p in enumerate(files)}
        pid[[row[p] for p in parsed.paths]] = np.arange(len(parsed.paths))
        errors = [(p, r) for p, r in parsed.errors if p in row and not r.startswith(_TRANSIENT)]
        sig = np.array(sigs, dtype=np.int64).reshape(len(files), 4)
        known = pid >= 0
        known[[row[p] for p, _ in errors]] = True
        sig[~known] = _NEVER  # a file with no lasting verdict (a transient error) is parsed again next time
        core = {
            "format": FORMAT, "files": pickle.dumps(files, protocol=5), "sig": sig, "pid": pid, "errors": errors,
            "paths": parsed.paths, "n_stats": np.asarray(parsed.n_stats, dtype=np.int64),
            "n_edges": np.asarray(parsed.n_edges, dtype=np.int64),
            "total_tt": np.asarray(parsed.total_tt, dtype=np.float64), "profilers": list(parsed.profilers),
            "stats": parsed.stats, "edges": parsed.edges, "facts": parsed.facts,
        }  # fmt: skip
        try:
            os.makedirs(self.folder, exist_ok=True)
            gen_name = f"gen-{uuid.uuid4().hex[:12]}"
            gen = os.path.join(self.folder, gen_name)
            os.makedirs(gen)
            with open(os.path.join(gen, _KEYS_FILE), "wb") as f:
                pickle.dump((FORMAT, parsed.funcs, parsed.sidecars), f, protocol=5)
            _dump_mapped(core, os.path.join(gen, _CORE_FILE))
            tmp = os.path.join(self.folder, f".CURRENT.{uuid.uuid4().hex[:8]}.tmp")
            with open(tmp, "w") as fh:
                fh.write(gen_name)
            os.replace(tmp, os.path.join(self.folder, "CURRENT"))
            self._gen = gen
            self.files_gen, self.files_gen_of = gen_name, files
            for entry in os.listdir(self.folder):
                if entry.startswith("gen-") and entry != gen_name:
                    # a reader that mapped the old generation keeps its pages: unlinking never truncates them
                    shutil.rmtree(os.path.join(self.folder, entry), ignore_errors=True)
        except (OSError, pickle.PicklingError) as e:  # a cache that cannot be written is not an error of the load
            import warnings

            warnings.warn(f"celerylab: cannot write the cache in {self.folder}: {e}", stacklevel=6)


def _store_key(roots: list[str], files: list[str]) -> str:
    """The folder name of a source's store: a hash of its roots (or, with none, its files) and the format."""
    spec = json.dumps({"roots": roots, "files": files, "v": FORMAT})
    return hashlib.sha1(spec.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=64)
def _roots_key(roots: tuple[str, ...]) -> str:
    """:func:`_store_key` of a source of folders, kept per process (its JSON and hash took 0.1 ms of a re-open
    after other work)."""
    return _store_key(list(roots), [])


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two signature arrays are equal, compared as bytes: ``np.array_equal``'s Python around the comparison
    was 40 µs of a re-open after other work (300 files), this 3."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _parsed(core: dict[str, Any]) -> Parsed:
    """The parsed content a generation's core holds (without the function keys and sidecars: :meth:`Store.complete`
    reads them when needed)."""
    return Parsed(
        funcs=None,
        paths=core["paths"],
        n_stats=core["n_stats"],
        n_edges=core["n_edges"],
        total_tt=core["total_tt"],
        profilers=core["profilers"],
        sidecars=None,
        stats=core["stats"],
        edges=core["edges"],
        errors=list(core["errors"]),
        facts=core["facts"],
    )


@dataclasses.dataclass
class KeptWalk:
    """A walk kept for re-opens (:meth:`Store.write_walk`): what a re-open of unchanged folders needs, with no
    Python object per file, and the whole walk pickled, unpickled only when something changed."""

    roots: list[str]
    dirs: list[tuple[str, int, int, int]]  # Found.dirs: what sources.dirs_unchanged checks
    gen: str | None  # the generation that held exactly these files when the walk was kept
    n: int  # how many files
    names: bytes  # their names and their sidecars' (decode.names_blob)
    pickled: bytes  # the Found

    def found(self) -> Found | None:
        """The whole walk, or None when it cannot be read back (the source is walked again)."""
        try:
            found = pickle.loads(self.pickled)
        except Exception:  # damaged
            return None
        return found if isinstance(found, Found) and len(found.files) == self.n else None


class CacheDamaged(Exception):
    """A generation's file that a load needs cannot be read: the cache is dropped and the files parsed again."""


_ALIGN = 64


def _dump_mapped(obj: Any, path: str) -> None:
    """``obj`` (the core, or frames) pickled with its contiguous column buffers out of band: an 8-byte header
    length, the header (the pickle, each buffer's offset and length, the buffers' total length), then the buffers,
    64-byte aligned."""
    raws: list[memoryview] = []

    def out_of_band(buf: pickle.PickleBuffer) -> bool:
        try:
            raws.append(buf.raw())
        except BufferError:  # not contiguous: kept in the pickle
            return True
        return False

    out = io.BytesIO()
    _ArrayPickler(out, protocol=5, buffer_callback=out_of_band).dump(obj)
    meta = out.getvalue()
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


class _ArrayPickler(pickle.Pickler):
    """Pickles plain numeric arrays, frames and the pandas arrays the frames hold as the functions below make them
    again: from their buffers (out of band, so mapped), without the checks and inference of pandas' own pickle.

    * A plain numeric array: :func:`_array` of its buffer and its dtype's name.  numpy's own pickle makes the array
      again with a *copy* of its dtype, and numpy's fast paths for ``ufunc.at`` want the dtype itself
      (``np.add.at`` over a float64 column of 4.9 M values: 0.007 s, or 0.28 s with an unpickled dtype: a diff of a
      re-opened set took 3.5x as long as the same diff of a set just parsed).
    * A frame with a default index: :func:`_frame` of its column names and its columns' arrays
      (:func:`frames.frame_of`).  pandas' pickle makes each categorical's categories a new Index and checks them,
      and infers the column index: the two frames of 300 profiles took 0.38 ms to unpickle, 1/4 of a re-open.
    * A categorical: :func:`_categorical` of its codes and its dtype, one :func:`_categorical_dtype` of its
      categories' values for equal dtypes.
    * A ``str`` column: :func:`_strings` of its Arrow buffers.
    Anything else is pickled as pandas and numpy pickle it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._dtypes: dict[tuple[Any, ...], pd.CategoricalDtype] = {}

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is np.ndarray:
            if obj.flags.c_contiguous and _plain(obj.dtype):
                return _array, (pickle.PickleBuffer(obj), obj.dtype.str, obj.shape)
        elif kind is pd.DataFrame:
            return _frame_reduced(obj)
        elif kind is pd.Categorical:
            return _categorical, (self._one_dtype(obj.dtype), obj.codes)
        elif kind is pd.CategoricalDtype and obj.categories is not None:
            few = _few_categories(obj)
            if few is not None:
                return _few_categorical_dtype, few
            return _categorical_dtype, (_index_values(obj.categories), obj.categories.name, obj.ordered)
        elif kind is pd.arrays.ArrowStringArray:
            return _strings_reduced(obj)
        elif kind is pd.arrays.DatetimeArray and obj.ndim == 1 and getattr(obj, "freq", None) is None:
            i8: Any = np.ascontiguousarray(obj.asi8)  # a view of its values
            return _datetimes, (pickle.PickleBuffer(i8), self._one(obj.dtype))
        return NotImplemented

    def _one(self, dtype: Any) -> Any:
        """One object for equal (hashable) dtypes: pickled once."""
        return self._dtypes.setdefault(("other", dtype), dtype)

    def _one_dtype(self, dtype: pd.CategoricalDtype) -> pd.CategoricalDtype:
        """One object for equal categorical dtypes (same categories, in the same order; pandas' ``==`` ignores the
        order of unordered ones): pickled once and made once when read (``profiles`` of another tool's files has five
        columns of no categories)."""
        cats = dtype.categories
        key = (dtype.ordered, str(cats.dtype), cats.name, tuple((type(c), c) for c in cats))  # (1 == True: not one)
        return self._dtypes.setdefault(key, dtype)


def _plain(dtype: np.dtype) -> bool:
    return dtype.kind in "biufc" and dtype.names is None and dtype.metadata is None and dtype.subdtype is None


def _array(buf: Any, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """An array over ``buf`` (mapped or in the pickle) with numpy's dtype ``dtype`` itself, not a copy of it."""
    return np.frombuffer(buf, dtype=np.dtype(dtype)).reshape(shape)


def _frame_reduced(df: pd.DataFrame) -> Any:
    """``df`` as :func:`_frame` makes it again, or NotImplemented (pickled by pandas) when it has more than columns
    of one length under unique, flat names: an index of its own, attributes, flags."""
    idx, cols = df.index, df.columns
    if (
        type(idx) is not pd.RangeIndex
        or (idx.start, idx.step, idx.name) != (0, 1, None)
        or type(cols) is not pd.Index
        or not cols.is_unique
        or df.attrs
        or not df.flags.allows_duplicate_labels
    ):
        return NotImplemented
    arrays = []
    for i in range(df.shape[1]):
        a = df.iloc[:, i].array
        arrays.append(a.to_numpy() if isinstance(a, pd.arrays.NumpyExtensionArray) else a)
    if arrays and cols.name is None and cols.dtype == STR and all(type(c) is str for c in cols):
        return _named_frame, (tuple(cols), arrays)
    return _frame, (_index_values(cols), cols.name, len(df), arrays)


def _named_frame(names: tuple[str, ...], arrays: list[Any]) -> pd.DataFrame:
    """A frame whose column index is the ``str`` index of ``names``, its values made once per process
    (:func:`frames.names_index`: a frame's names come as one tuple, the same ones every load)."""
    return frame_of(names_index(names), arrays)


def _frame(names: Any, name: Any, n: int, arrays: list[Any]) -> pd.DataFrame:
    if not arrays:
        return pd.DataFrame(index=pd.RangeIndex(n), columns=_index(names, name))
    return frame_of(_index(names, name), arrays)


def _index_values(index: pd.Index) -> Any:
    """The values of a flat index, as :func:`_index` takes them (a numpy array or an extension array)."""
    a = index.array
    return a.to_numpy() if isinstance(a, pd.arrays.NumpyExtensionArray) else a


def _index(values: Any, name: Any) -> pd.Index:
    return pd.Index(values, dtype=values.dtype, copy=False, name=name)


def _categorical_dtype(categories: Any, name: Any, ordered: bool) -> pd.CategoricalDtype:
    """A categorical dtype, as it was.  Its categories were unique when it was pickled: they are not checked again
    (a check makes a hash table: ~25 µs a dtype)."""
    index = _index(categories, name)
    try:
        return pd.CategoricalDtype._from_fastpath(index, ordered)
    except AttributeError:  # not in this pandas: the public, checking constructor
        return pd.CategoricalDtype(index, ordered)


#: categories of these types, at most this many: pickled as their values and made once per process
_FEW_TYPES = (str, int, bool)  # not float: 0.0 and -0.0 are equal keys, and would share one dtype
_FEW = 64


def _few_categories(dtype: pd.CategoricalDtype) -> tuple[str, tuple[tuple[type, Any], ...], bool] | None:
    """``(categories' dtype, ((type, value), ...), ordered)`` of a dtype of a few unnamed categories of plain
    values, whose dtype its name gives again; None otherwise."""
    cats = dtype.categories
    if len(cats) > _FEW or cats.name is not None:
        return None
    values = tuple((type(c), c) for c in cats)
    kind = str(cats.dtype)
    if any(t not in _FEW_TYPES for t, _ in values) or pd.api.types.pandas_dtype(kind) != cats.dtype:
        return None
    return kind, values, dtype.ordered


@functools.lru_cache(maxsize=256)
def _few_categorical_dtype(kind: str, values: tuple[tuple[type, Any], ...], ordered: bool) -> pd.CategoricalDtype:
    """A categorical dtype of a few categories (:func:`_few_categories`), one object per process for each: the
    same few come every load (``kind``, ``profiler``, no task names at all), and a dtype made again is ~50 µs in a
    re-open after other work (dtypes are immutable).  The values' types are in the key: categories ``[1]`` and
    ``[True]`` are two dtypes."""
    index = pd.Index([v for _, v in values], dtype=kind)
    return _categorical_dtype(_index_values(index), None, ordered)


def _categorical(dtype: pd.CategoricalDtype, codes: np.ndarray) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


def _datetimes(buf: Any, dtype: Any) -> pd.arrays.DatetimeArray:
    """A datetime column over its int64 buffer (mapped), of ``dtype`` (with or without a time zone): its values were
    valid when it was pickled, so they are not checked again (pandas' own pickle, or ``pd.array``: 60-110 µs a
    column in a re-open after other work, this ~20-40)."""
    values = np.frombuffer(buf, dtype=np.int64).view(dtype.base)  # numpy's datetime64 of the unit
    try:
        return pd.arrays.DatetimeArray._simple_new(values, dtype=dtype)
    except AttributeError:  # not in this pandas: the public, checking constructor
        return pd.array(values, dtype=dtype)


def _strings_reduced(a: pd.arrays.ArrowStringArray) -> Any:
    arr = a.__arrow_array__().combine_chunks()
    if not pa.types.is_large_string(arr.type) and not pa.types.is_string(arr.type):
        return NotImplemented
    bufs = [None if b is None else pickle.PickleBuffer(b) for b in arr.buffers()]
    na = a.dtype.na_value
    return _strings, (pa.types.is_large_string(arr.type), len(arr), arr.offset, arr.null_count, bufs,
                      "nan" if na is not pd.NA else "NA", a.dtype.storage)  # fmt: skip


def _strings(large: bool, n: int, offset: int, nulls: int, bufs: list[Any], na: str, storage: str) -> Any:
    """A ``str`` column over its Arrow buffers (mapped: nothing copied)."""
    kind = pa.large_string() if large else pa.string()
    arr = pa.Array.from_buffers(kind, n, [None if b is None else pa.py_buffer(b) for b in bufs], nulls, offset)
    return pd.arrays.ArrowStringArray(arr, dtype=_string_dtype(storage, na))


@functools.lru_cache(maxsize=8)
def _string_dtype(storage: str, na: str) -> pd.StringDtype:
    """One dtype object per kind of ``str`` column (dtypes are immutable; a new one is ~20 µs after other work)."""
    return pd.StringDtype(storage, na_value=np.nan if na == "nan" else pd.NA)


def _load_mapped(path: str) -> Any:
    """What :func:`_dump_mapped` wrote, its column buffers views of a private (copy-on-write) mapping of the file:
    writable, never written back.  ValueError when the file is cut short or padded."""
    fd = os.open(path, os.O_RDONLY)  # not open(): its buffered reader was 15-60 µs of a re-open, for nothing
    try:
        view = memoryview(mmap.mmap(fd, 0, access=mmap.ACCESS_COPY))
    finally:
        os.close(fd)
    n = int.from_bytes(view[:8], "little")
    meta, spans, total = pickle.loads(view[8 : 8 + n])
    start = 8 + n + (-(8 + n) % _ALIGN)
    if len(view) != start + total:
        raise ValueError(f"frames file {path}: {len(view)} bytes, its header says {start + total}")
    return pickle.loads(meta, buffers=[view[start + off : start + off + size] for off, size in spans])


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
    order = np.argsort(np.array(paths, dtype=object), kind="stable")  # a's profiles, then b's -> path order
    na, n = len(a.paths), len(paths)
    # runs of profiles that stay next to each other (a's profiles keep their order, so one new file cuts a's rows
    # in two): each run is one slice of a's or b's rows, and the columns are put together from those slices
    brk = np.flatnonzero(np.diff(order) != 1) + 1
    run_first, run_last = order[np.r_[0, brk]] if n else order, order[np.r_[brk - 1, n - 1]] if n else order

    def join(ca: dict[str, np.ndarray], cb: dict[str, np.ndarray], id_cols: tuple[str, ...]) -> dict[str, np.ndarray]:
        counts = np.concatenate(
            [np.bincount(ca["profile_id"], minlength=na), np.bincount(cb["profile_id"], minlength=n - na)]
        )
        start = np.concatenate([[0], np.cumsum(counts)])  # each profile's first row in a's rows then b's
        rows_a = len(ca["profile_id"])
        spans: list[tuple[bool, int, int]] = []  # (from a, start, stop)
        for s, e in zip(start[run_first].tolist(), start[run_last + 1].tolist()):
            if e <= rows_a:
                spans.append((True, s, e))
            elif s >= rows_a:
                spans.append((False, s - rows_a, e - rows_a))
            else:
                spans += [(True, s, rows_a), (False, 0, e - rows_a)]
        out = {"profile_id": np.repeat(np.arange(n, dtype=np.int32), counts[order])}
        for k in ca:
            if k == "profile_id":
                continue
            va, vb = ca[k], (remap_b[cb[k]] if k in id_cols and len(cb[k]) else cb[k])
            # the dtype an uncached load gives: int32 counts meeting int64 ones become int64 (an empty side's
            # dtype does not count)
            dt = vb.dtype if not len(va) else va.dtype if not len(vb) else np.result_type(va.dtype, vb.dtype)
            pieces = [(va if in_a else vb)[s:e] for in_a, s, e in spans]
            out[k] = np.concatenate(pieces).astype(dt, copy=False) if pieces else np.empty(0, dt)
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


def _renumber(p: Parsed) -> Parsed:
    """Function ids as an uncached load of the same files gives them, whatever files were added or removed since
    the cache was written.  The parser numbers keys as it meets them: each profile in path order, its own
    functions (its ``stats`` rows) first, then the callers that are not among them (its ``edges`` rows), so the
    order is found from the columns alone: each key by (profile, own or caller, row) of its first row.  Functions
    no profile holds any more are dropped."""
    assert p.funcs is not None
    nf = len(p.funcs)
    never = np.iinfo(np.int64).max

    def first(pid: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        row = np.full(nf, never, dtype=np.int64)
        row[ids[::-1]] = np.arange(len(ids) - 1, -1, -1)  # the last write of each id is its first row
        prof = np.full(nf, never, dtype=np.int64)
        met = row < never
        prof[met] = pid[row[met]]
        return prof, row

    prof_own, row_own = first(p.stats["profile_id"], p.stats["func_id"])
    prof_caller, row_caller = first(p.edges["profile_id"], p.edges["caller_id"])
    own = prof_own <= prof_caller
    prof = np.where(own, prof_own, prof_caller)
    order = np.lexsort((np.where(own, row_own, row_caller), ~own, prof))
    order = order[prof[order] < never]
    if len(order) == nf and np.array_equal(order, np.arange(nf)):
        return p
    new_id = np.full(nf, -1, dtype=np.int32)
    new_id[order] = np.arange(len(order), dtype=np.int32)
    p.funcs = [p.funcs[i] for i in order]
    p.labels = None
    p.stats = {**p.stats, "func_id": new_id[p.stats["func_id"]]}
    p.edges = {**p.edges, "caller_id": new_id[p.edges["caller_id"]], "callee_id": new_id[p.edges["callee_id"]]}
    return p


def _narrow_counts(p: Parsed) -> Parsed:
    """Call counts back to int32 where every value left fits (the file that needed int64 was removed), as an
    uncached load of the same files keeps them (:func:`decode.fits_int32`)."""
    for cols in (p.stats, p.edges):
        for c in ("ncalls", "pcalls"):
            if cols[c].dtype == np.int64 and fits_int32(cols[c]):
                cols[c] = cols[c].astype(np.int32)
    return p
