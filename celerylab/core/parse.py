"""Parsing many profile files and merging them into global columns (:class:`Parsed`).

Files are parsed in chunks: by ``jobs`` threads of this process (the compiled decoder works without the GIL, and
each thread interns function keys across the chunks it takes; the thread that parsed a chunk merges every chunk
next in order), or, with ``isolate``, by worker processes that return plain numpy columns through ``/dev/shm``
(the parent merges those as they arrive).  The merge remaps function ids to one global index (each key once per
thread) and chunk slots to profile ids.

The isolated workers never fork the caller: a fork copies its threads' locks, open sockets and after-fork hooks
(kombu's hook hangs in a child after ``app.control.ping()`` over Redis).  They are started from a clean
``forkserver`` (``spawn`` where there is none), without re-importing the caller's ``__main__``, once per process,
and reused by every later load (:func:`shutdown_pool` stops them).  A chunk whose worker dies is retried file by
file so that the culprit is named and nothing else is lost.
"""

from __future__ import annotations

import contextlib
import gc
import glob
import itertools
import mmap
import multiprocessing as mp
import multiprocessing.context as mp_context
import multiprocessing.spawn as mp_spawn
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence, Set
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from .._files import sidecar_path
from . import decode
from .classify import label
from .sources import read_sidecar


def _parse_chunk(
    paths: list[str], opener: decode.Opener = open, keys: decode.Keys | None = None, bare: Set[str] = frozenset()
) -> tuple[dict[str, Any], list[Any]]:
    """Parse ``paths`` and read the sidecar of each profile that loaded, but for the files in ``bare`` (their
    folder's listing shows no sidecar: not looked for again)."""
    packed = decode.parse_files(paths, opener, keys)
    sidecars = [
        read_sidecar(sidecar_path(p), opener) if r is None and p not in bare else None
        for p, r, *_ in packed["outcomes"]
    ]
    return packed, sidecars


# ------------------------------------------------------------------------------------------------ shared memory
# A worker hands its chunk's columns back through a file in /dev/shm (memory, not disk) instead of pickling them
# through the pool's pipe: one copy in the worker, none in transit, and the parent reads them in place (mapped)
# while it joins them.  The parent unlinks each file as soon as it has mapped it; a load removes the files of its
# own that a broken pool dropped when it ends; files of a parent that died are removed by the next pool's start.
# Elsewhere (no /dev/shm), or when writing fails, the columns are pickled.
_SHM_DIR = "/dev/shm"
_SHM_PREFIX = "celerylab-parse-"
_OWNER_ENV = "CELERYLAB_PARSER_OWNER"


def _shm_usable() -> bool:
    return sys.platform.startswith("linux") and os.path.isdir(_SHM_DIR) and os.access(_SHM_DIR, os.W_OK)


def _to_shm(packed: dict[str, Any], owner: str) -> dict[str, Any]:
    arrays = [*packed["stats"], *packed["edges"]]
    layout, views, at = [], [], 0
    page = mmap.ALLOCATIONGRANULARITY
    for a in arrays:
        a = np.ascontiguousarray(a)
        layout.append((a.dtype.str, len(a), at))
        views.append(a.view(np.uint8).data)
        # each column on its own pages: the parent maps them one by one and frees each once it is joined
        pad = -a.nbytes % page
        if pad:
            views.append(memoryview(bytes(pad)))
        at += a.nbytes + pad
    path = os.path.join(_SHM_DIR, f"{_SHM_PREFIX}{owner}-{uuid.uuid4().hex}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        written = 0
        while written < at:  # writev may write less than asked
            rest, skip = [], written
            for v in views:
                if skip >= len(v):
                    skip -= len(v)
                    continue
                rest.append(v[skip:])
                skip = 0
            written += os.writev(fd, rest[:1024])
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    n_stats = len(packed["stats"])
    out = {k: v for k, v in packed.items() if k not in ("stats", "edges")}
    out["shm"] = (path, layout[:n_stats], layout[n_stats:])
    return out


def _from_shm(packed: dict[str, Any]) -> dict[str, Any]:
    """The columns of a worker's chunk, each mapped from its pages of the chunk's /dev/shm file (unlinked here):
    a column's memory is returned as soon as the merge has joined it."""
    if "shm" not in packed:
        return packed
    path, s_layout, e_layout = packed.pop("shm")
    try:
        fd = os.open(path, os.O_RDONLY)
        try:

            def cols(layout: list[tuple[str, int, int]]) -> list[np.ndarray]:
                out = []
                for dt, n, at in layout:
                    d = np.dtype(dt)
                    if n:
                        m = mmap.mmap(fd, n * d.itemsize, prot=mmap.PROT_READ, offset=at)
                        out.append(np.frombuffer(m, dtype=d))
                    else:
                        out.append(np.empty(0, dtype=d))
                return out

            packed["stats"], packed["edges"] = cols(s_layout), cols(e_layout)
        finally:
            os.close(fd)
    finally:
        os.unlink(path)
    return packed


def _clean_stale_shm() -> None:
    """Remove the /dev/shm files of parents that died before reading them."""
    for path in glob.glob(os.path.join(_SHM_DIR, _SHM_PREFIX + "*")):
        pid = os.path.basename(path)[len(_SHM_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(path)
        except OSError:  # alive, another user's
            pass


def _discard_load_shm(load: str) -> None:
    """Remove what one load left in /dev/shm: the columns of chunks whose results a broken pool dropped (a worker
    that died takes the pool down with results other workers had written but not yet handed back)."""
    for path in glob.glob(os.path.join(_SHM_DIR, f"{_SHM_PREFIX}{os.getpid()}-{load}-*")):
        with contextlib.suppress(OSError):
            os.unlink(path)


def _parse_chunk_in_worker(paths: list[str], load: str) -> tuple[dict[str, Any], list[Any]]:
    """A chunk parsed in a worker; its columns go through /dev/shm, in a file named by the parent and the load."""
    packed, sidecars = _parse_chunk(paths)
    owner = os.environ.get(_OWNER_ENV)
    if owner and _shm_usable():
        with contextlib.suppress(OSError):  # /dev/shm full or not writable: pickled through the pipe instead
            packed = _to_shm(packed, f"{owner}-{load}")
    return packed, sidecars


def _worker_init(crash_target: str | None, owner: str | None = None) -> None:
    os.environ["CELERYLAB_PARSER_PROCESS"] = "1"
    if owner:
        os.environ[_OWNER_ENV] = owner
    if crash_target:
        os.environ[decode.CRASH_ENV] = crash_target
    else:
        os.environ.pop(decode.CRASH_ENV, None)


def _without_main(real: Any) -> Any:
    def get_preparation_data(name: str) -> dict[str, Any]:
        d = real(name)
        d.pop("init_main_from_name", None)
        d.pop("init_main_from_path", None)
        return d

    return get_preparation_data


if "forkserver" in mp.get_all_start_methods():
    from multiprocessing import popen_forkserver as _popen_module

    _BaseContext: Any = mp_context.ForkServerContext
    _BaseProcess: Any = mp_context.ForkServerProcess
else:  # pragma: no cover - Windows and other platforms without forkserver
    from multiprocessing import popen_spawn_posix as _popen_module  # type: ignore[no-redef]

    _BaseContext, _BaseProcess = mp_context.SpawnContext, mp_context.SpawnProcess


class _Popen(_popen_module.Popen):
    """Starts a worker that does not re-import the caller's ``__main__`` (a script without an ``if __name__ ==
    "__main__"`` guard would run again in every worker); the workers need only celerylab."""

    def _launch(self, process_obj: Any) -> None:
        with _LAUNCH_LOCK:
            real = mp_spawn.get_preparation_data
            mp_spawn.get_preparation_data = _without_main(real)
            try:
                super()._launch(process_obj)  # type: ignore[misc]
            finally:
                mp_spawn.get_preparation_data = real


class _WorkerProcess(_BaseProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _Popen(process_obj)


class _WorkerContext(_BaseContext):
    Process = _WorkerProcess


_LAUNCH_LOCK = threading.Lock()


def parse_serial(paths: list[str], opener: decode.Opener = open) -> Parsed:
    """Parse ``paths`` in this process, in order (one chunk): what a scale-out worker runs on its share of files.
    ``opener`` opens a path for reading (local files by default, an fsspec filesystem's ``open`` for URLs)."""
    return _merge([_parse_chunk(paths, opener)])


#: The reason given for a file whose parser process died (the same text wherever files are parsed).
CRASH_REASON = "the parser process crashed on this file (hostile or corrupt data)"


def _mp_context() -> Any:
    """A multiprocessing context whose processes start from a clean interpreter: ``forkserver`` (a fork of a
    fresh server process that has imported the parser), else ``spawn``; never a fork of the caller."""
    ctx = _WorkerContext()
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["celerylab.core.parse"])
    return ctx


_POOL: ProcessPoolExecutor | None = None
_POOL_KEY: tuple[int, int, str | None] | None = None  # (owner pid, workers, crash hook)
_POOL_LOCK = threading.Lock()


def _pool_locked(jobs: int) -> ProcessPoolExecutor:
    """The shared worker pool with ``jobs`` processes, started on first use and reused by later loads (the caller
    holds ``_POOL_LOCK``)."""
    global _POOL, _POOL_KEY
    key = (os.getpid(), jobs, os.environ.get(decode.CRASH_ENV))
    if _POOL is not None and key == _POOL_KEY and not getattr(_POOL, "_broken", False):
        return _POOL
    if _POOL is not None and _POOL_KEY is not None and _POOL_KEY[0] == os.getpid():
        # another size asked for: the old processes finish what a concurrent load gave them, then exit
        _POOL.shutdown(wait=False, cancel_futures=False)
    if _shm_usable():
        _clean_stale_shm()
    _POOL = ProcessPoolExecutor(
        max_workers=jobs, mp_context=_mp_context(), initializer=_worker_init, initargs=(key[2], str(os.getpid()))
    )
    # Every process is started at the first submit, none later.  Started on demand (CPython's default outside
    # fork), a process started by submit() while a worker dies escapes the broken pool's terminate, and the
    # interpreter then hangs at exit joining it (the kind of race CPython gh-119592 fixed; a loader test run hung
    # at exit on an idle worker that was never sent the terminate, after loads whose files killed their parser).
    if hasattr(_POOL, "_safe_to_dynamically_spawn_children"):
        _POOL._safe_to_dynamically_spawn_children = False
    _POOL_KEY = key
    return _POOL


def _submit(
    jobs: int, chunks: list[list[str]], todo: list[int], load: str
) -> tuple[ProcessPoolExecutor, dict[Future[Any], int]]:
    """Submit ``chunks[todo]`` to the shared pool: taking the pool and submitting is one step, so a concurrent load
    that replaces the pool (another ``jobs``) cannot shut it down in between."""
    global _POOL, _POOL_KEY
    with _POOL_LOCK:
        pool = _pool_locked(jobs)
        try:
            return pool, {pool.submit(_parse_chunk_in_worker, chunks[i], load): i for i in todo}
        except BrokenProcessPool:  # a worker died between loads: the next attempt starts a new pool
            _POOL, _POOL_KEY = None, None
            raise


def shutdown_pool() -> None:
    """Stop the shared parser processes (the next parallel load starts new ones)."""
    global _POOL, _POOL_KEY
    with _POOL_LOCK:
        if _POOL is not None and _POOL_KEY is not None and _POOL_KEY[0] == os.getpid():
            _POOL.shutdown(wait=True)  # a concurrent load's work is finished, never cancelled (it would hang)
        _POOL, _POOL_KEY = None, None


def _discard_pool(pool: ProcessPoolExecutor) -> None:
    """Drop a broken pool (a worker died) so that the next use starts a new one."""
    global _POOL, _POOL_KEY
    with _POOL_LOCK:
        if _POOL is pool:
            _POOL, _POOL_KEY = None, None
    pool.shutdown(wait=True)


class Progress:
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

    def cached(self, n: int) -> None:
        """``n`` files came from the cache: counted as done, and the bar says so."""
        if self.bar is not None and n > 0:
            self.bar.set_description(f"celerylab.load ({n:,} cached)")
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


Result = tuple[dict[str, Any], list[Any]]


def _run_parallel(
    chunks: list[list[str]], jobs: int, progress: Progress, take: Callable[[Result], None], bare: Set[str] = frozenset()
) -> None:
    """Parse chunks in ``jobs`` processes and hand each result to ``take`` in chunk order, as soon as it and every
    chunk before it are done (so the parent joins columns while the workers parse); a chunk whose process dies is
    retried, then file by file.  With one job, in this thread (``bare``: files known to have no sidecar)."""
    results: list[Any] = [None] * len(chunks)
    nxt = 0

    def deliver() -> None:
        nonlocal nxt
        while nxt < len(chunks) and results[nxt] is not None:
            packed, side = results[nxt]
            results[nxt] = True  # handed over: the parent holds no second reference to its columns
            take((_from_shm(packed), side))
            nxt += 1

    if jobs <= 1 or len(chunks) <= 1:
        keys = decode.Keys()  # one interning for every chunk: no key is re-mapped twice
        for c in chunks:
            take(_parse_chunk(c, keys=keys, bare=bare))
            progress.update(len(c))
        return
    todo = list(range(len(chunks)))
    futures: dict[Future[Any], int] = {}
    load = uuid.uuid4().hex[:12]
    try:
        for _attempt in range(2):
            failed = []
            try:
                pool, futures = _submit(jobs, chunks, todo, load)
            except BrokenProcessPool:  # a worker of the reused pool died since the last load
                continue
            for fut in _as_completed(futures):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                    progress.update(len(chunks[i]))
                except BrokenProcessPool:
                    failed.append(i)
                    continue
                deliver()
            if failed:
                _discard_pool(pool)
            todo = sorted(failed)
            if not todo:
                return
        # still failing: one process per file, so the file that kills its parser is the one reported
        for i in todo:
            parts = []
            for path in chunks[i]:
                parts.append(_parse_one_isolated(path))
                progress.update(1)
            results[i] = _concat_chunk_results(parts)
            deliver()
    finally:
        # an error, an interrupt or a broken pool: the columns nobody will read leave /dev/shm, every file of this
        # load that is left (chunks in flight are awaited first, so that theirs are written)
        for fut in futures:
            if not fut.cancel():
                with contextlib.suppress(BaseException):
                    fut.result()
        if _shm_usable():
            _discard_load_shm(load)


def _as_completed(futures: dict[Future[Any], int]) -> Iterable[Future[Any]]:
    from concurrent.futures import as_completed

    return as_completed(futures)


def _parse_one_isolated(path: str) -> tuple[dict[str, Any], list[Any]]:
    crash = os.environ.get(decode.CRASH_ENV)
    with ProcessPoolExecutor(
        max_workers=1, mp_context=_mp_context(), initializer=_worker_init, initargs=(crash,)
    ) as pool:
        fut = pool.submit(_parse_chunk, [path])  # pickled: a single file's columns are small
        try:
            return fut.result()
        except BrokenProcessPool:
            pass
    packed = decode.parse_files([])
    packed["outcomes"] = [(path, CRASH_REASON, 0, 0, np.nan, "")]
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
    profilers: list[str]  # which tool wrote each file (decode.detect_profiler)
    sidecars: list[Any] | None
    stats: dict[str, np.ndarray]
    edges: dict[str, np.ndarray]
    errors: list[tuple[str, str]]
    facts: dict[str, bool] | None = None  # rules.column_facts of stats/edges, when the cache knows them
    labels: list[str] | None = None  # classify.label of each of funcs, when the merge made them
    #: the name, label (Arrow large_string arrays), line (int64) and file (Arrow) of each of funcs, when the decoder
    #: made them all
    texts: tuple[pa.Array, pa.Array, np.ndarray, pa.Array] | None = None


_NO_IDS = np.empty(0, dtype=np.int32)
STAT_COLS = ("profile_id", "func_id", "ncalls", "pcalls", "tottime", "cumtime")
EDGE_COLS = ("profile_id", "caller_id", "callee_id", "ncalls", "pcalls", "tottime", "cumtime")


class _Column:
    """One output column, filled as chunks are merged (the copy happens while the threads parse, not after them).
    Its buffer (from :func:`pooled`) is sized, when it is first too small, to what the bytes merged so far predict
    for all the files (fresh memory a wrong guess does not fill is never touched, so it costs no RAM; a guess too
    small costs a copy of what it holds), and handed over as a view of its length (copied to its length where the
    guess was more than a quarter too large).  Call counts stay int32 while every value fits (as
    :func:`_concat_columns` decides)."""

    __slots__ = ("buf", "count", "n")

    def __init__(self, dtype: Any, count: bool = False) -> None:
        self.buf = np.empty(0, dtype=np.int32 if count else dtype)
        self.n = 0
        self.count = count

    def _room(self, m: int, per_byte: float, bytes_left: int) -> np.ndarray:
        need = self.n + m
        if need > len(self.buf):
            cap = max(need + int(per_byte * bytes_left * 1.25), int(len(self.buf) * 1.5))
            buf = pooled(cap, self.buf.dtype)
            buf[: self.n] = self.buf[: self.n]
            self.buf = buf
        out = self.buf[self.n : need]
        self.n = need
        return out

    def room(self, m: int, per_byte: float, bytes_left: int) -> np.ndarray:
        """The next ``m`` rows, to be written by the caller (:func:`_cdecode.merge_rows`)."""
        return self._room(m, per_byte, bytes_left)

    def widen(self, m: int) -> np.ndarray:
        """Counts become int64 (a value beyond int32 is coming); the last ``m`` rows, as :meth:`room` gave them."""
        self.count = False
        self.buf = _widened(self.buf, self.n)
        return self.buf[self.n - m : self.n]

    def put(self, part: np.ndarray, per_byte: float, bytes_left: int) -> None:
        if self.count and not decode.fits_int32(part):
            self.count = False
            self.buf = _widened(self.buf, self.n)
        self._room(len(part), per_byte, bytes_left)[...] = part

    def take(self, table: np.ndarray, ids: np.ndarray, per_byte: float, bytes_left: int) -> None:
        """Write ``table[ids]`` at the end (remapped ids, without a temporary)."""
        if len(ids) and (ids.min() < 0 or ids.max() >= len(table)):
            raise IndexError(f"celerylab: a parsed chunk refers to id {ids.max()} of {len(table)}")
        np.take(table, ids, out=self._room(len(ids), per_byte, bytes_left), mode="clip")

    def array(self) -> np.ndarray:
        buf, n = self.buf, self.n
        self.buf, self.n = np.empty(0, dtype=buf.dtype), 0  # handed over: the column starts empty again
        if len(buf) - n > n // 4:  # a guess far too large: the column copied to its length, the buffer freed
            out = pooled(n, buf.dtype)
            out[...] = buf[:n]
            return out
        return buf[:n]  # the tail (a quarter at most), never written, stays with the column


def pooled(n: int, dtype: Any) -> np.ndarray:
    """An uninitialised column of ``n`` values from Arrow's memory pool (mimalloc or jemalloc), which keeps the memory
    of freed columns for the next: glibc gives blocks this big back to the OS when they are freed, and touching a
    page afresh costs 1-3 µs here (a load of 300 real-world profiles wrote 9 MB of columns through 2 000 such page
    faults: 7 ms of a 40 ms load)."""
    dt = np.dtype(dtype)
    return np.frombuffer(pa.allocate_buffer(max(n, 1) * dt.itemsize), dtype=dt)[:n]


def _widened(buf: np.ndarray, n: int) -> np.ndarray:
    """``buf`` as int64, its first ``n`` values copied (the rest is yet to be written: not touched)."""
    out = pooled(len(buf), np.int64)
    out[:n] = buf[:n]
    return out


_STAT_DTYPES = (np.int32, np.int32, np.int64, np.int64, np.float64, np.float64)
_EDGE_DTYPES = (np.int32, np.int32, np.int32, np.int64, np.int64, np.float64, np.float64)


class _Merger:
    """Joins chunk results, in chunk order, into global columns: function ids remapped to one index, chunk slots to
    profile ids (failed files dropped).  ``sizes``: the size of each file the chunks hold, in their order (sizes the
    columns)."""

    def __init__(self, sizes: np.ndarray | None = None) -> None:
        # bytes in the files before each file: the merge predicts a column's length from the bytes merged so far
        self.before = np.concatenate([[0], np.cumsum(np.maximum(sizes, 0))]) if sizes is not None else None
        self.seen = 0  # files merged so far (failed ones too)
        self.index: dict[Any, int] = {}
        self.paths: list[str] = []
        self.n_stats: list[int] = []
        self.n_edges: list[int] = []
        self.total_tt: list[float] = []
        self.profilers: list[str] = []
        self.sidecars: list[Any] = []
        self.errors: list[tuple[str, str]] = []
        self.s_cols = [_Column(d, c in ("ncalls", "pcalls")) for c, d in zip(STAT_COLS, _STAT_DTYPES)]
        self.e_cols = [_Column(d, c in ("ncalls", "pcalls")) for c, d in zip(EDGE_COLS, _EDGE_DTYPES)]
        self.remaps: dict[int, np.ndarray] = {}  # decode.Keys id -> its local ids' global ids so far
        self.labels: list[str] = []  # each global function's label (classify.label), in id order
        # the decoder's texts of the new functions of each chunk so far ((buffers, positions of the new ones)), or
        # None from the first chunk that came without them: labels are then made from the keys
        self.texts: list[tuple[tuple[bytes, ...], np.ndarray]] | None = []

    def add(self, result: Result) -> None:
        packed, side = result
        index, funcs = self.index, packed["funcs"]
        known = len(index)
        new = [k for k in funcs if k not in index]  # a chunk's keys are distinct: its new ones take the next ids
        index.update(zip(new, range(known, known + len(new))))
        texts = packed.get("texts")
        if texts is None and self.texts is not None:  # labels from the keys from here on (the earlier ones too)
            self.labels = [label(*k) for k in list(index)[:known]]
            self.texts = None
        if self.texts is None:
            self.labels += [label(*k) for k in new]  # labelled here, while the threads parse the next chunks
        remap = np.fromiter(map(index.__getitem__, funcs), dtype=np.int32, count=len(funcs))
        if self.texts is not None and texts is not None and new:
            self.texts.append((texts, np.flatnonzero(remap >= known)))  # the new ones, in the order of their ids
        if "keys_id" in packed:  # keys interned across one thread's chunks: only the new ones were sent
            before = self.remaps.get(packed["keys_id"], _NO_IDS)
            if len(before) != packed["funcs_base"]:
                raise RuntimeError("celerylab: a thread's parsed chunks were merged out of order")
            remap = np.concatenate([before, remap]) if len(before) else remap
            self.remaps[packed["keys_id"]] = remap
        # slot (position in chunk) -> global profile id, -1 for files that failed
        slot_to_pid = np.full(len(packed["outcomes"]) + 1, -1, dtype=np.int32)
        for slot, ((path, reason, ns, ne, ttt, tool), sc) in enumerate(zip(packed["outcomes"], side)):
            if reason is not None:
                self.errors.append((path, reason))
                continue
            slot_to_pid[slot] = len(self.paths)
            self.paths.append(path)
            self.n_stats.append(ns)
            self.n_edges.append(ne)
            self.total_tt.append(ttt)
            self.profilers.append(tool)
            self.sidecars.append(sc)
        self.seen += len(packed["outcomes"])
        done, left = (1, 0)  # without the files' sizes: columns grow by half as needed
        if self.before is not None:
            done, left = int(self.before[self.seen]), int(self.before[-1] - self.before[self.seen])
        merge_rows = getattr(decode._cdecode, "merge_rows", None)
        for cols, part, ids in ((self.s_cols, packed["stats"], (1,)), (self.e_cols, packed["edges"], (1, 2))):
            per_byte = (cols[0].n + len(part[0])) / max(1, done)
            maps = tuple(
                slot_to_pid if j == 0 else remap if j in ids and len(remap) else None for j in range(len(cols))
            )
            if merge_rows is not None:  # every column in one call, the GIL released while it copies
                kinds = "".join("m" if m is not None else "c" if c.count or c.buf.dtype.kind == "i" else "f"
                                for m, c in zip(maps, cols))  # fmt: skip
                dsts = [c.room(len(x), per_byte, left) for c, x in zip(cols, part)]
                while (j := merge_rows(tuple(dsts), tuple(part), kinds, maps)) >= 0:
                    dsts[j] = cols[j].widen(len(part[j]))  # a count beyond int32: that column becomes int64
                continue
            for j, (col, m) in enumerate(zip(cols, maps)):
                if m is not None:
                    col.take(m, part[j], per_byte, left)
                else:
                    col.put(part[j], per_byte, left)
        packed.clear()

    def finish(self) -> Parsed:
        stats = {c: col.array() for c, col in zip(STAT_COLS, self.s_cols)}
        edges = {c: col.array() for c, col in zip(EDGE_COLS, self.e_cols)}
        if stats["cumtime"].nbytes >= _TRIM_BYTES // 8:
            _release_memory()  # the chunks' buffers, freed as they were merged, go back to the OS
        return Parsed(
            funcs=list(self.index),
            paths=self.paths,
            n_stats=np.array(self.n_stats, dtype=np.int64),
            n_edges=np.array(self.n_edges, dtype=np.int64),
            total_tt=np.array(self.total_tt, dtype=np.float64),
            profilers=self.profilers,
            sidecars=self.sidecars,
            stats=stats,
            edges=edges,
            errors=self.errors,
            labels=self.labels if self.texts is None else None,
            texts=_texts(self.texts) if self.texts is not None else None,
        )


def _texts(parts: list[tuple[tuple[bytes, ...], np.ndarray]]) -> tuple[pa.Array, pa.Array, np.ndarray, pa.Array]:
    """The name, label, line and file columns of the merged functions (Arrow, numpy for the lines), from each
    chunk's texts (:meth:`_cdecode.Interner.texts`) and the positions of its new functions: gathered in one copy
    (:func:`_cdecode.gather_texts`; Arrow's take and concatenation of each chunk's arrays took 0.8 ms for 10 000
    functions in 12 chunks)."""
    rows = [pos.astype(np.int64, copy=False) for _, pos in parts]
    columns = []
    for o, d in ((0, 1), (2, 3), (5, 6)):  # names, labels, files
        off, data = decode._cdecode.gather_texts([(t[o], t[d], r) for (t, _), r in zip(parts, rows)])
        buffers = [None, pa.py_buffer(off), pa.py_buffer(data)]
        columns.append(pa.Array.from_buffers(pa.large_string(), len(off) // 8 - 1, buffers))
    lines = [np.frombuffer(t[4], dtype=np.int64)[r] for (t, _), r in zip(parts, rows)]
    return columns[0], columns[1], np.concatenate(lines) if lines else np.empty(0, np.int64), columns[2]


def _merge(results: Sequence[Result]) -> Parsed:
    merger = _Merger()
    for r in results:
        merger.add(r)
    return merger.finish()


#: a column at least this big hands the pieces it was joined from back to the OS (malloc_trim walks the whole heap:
#: ~0.15 ms a call, worth it only where the pieces are large)
_TRIM_BYTES = 8 << 20


def _concat_columns(
    names: Sequence[str], parts: list[list[np.ndarray]], dtypes: Sequence[Any]
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, col, dt in zip(names, parts, dtypes):
        if dt is np.int64 and name in ("ncalls", "pcalls") and all(decode.fits_int32(c) for c in col):
            dt = np.int32  # call counts fit in 32 bits in practice: half the memory (exact sums use int64)
        out[name] = np.concatenate(col).astype(dt, copy=False) if col else np.empty(0, dtype=dt)
        col.clear()  # free each column's pieces as soon as it is joined ...
        if out[name].nbytes >= _TRIM_BYTES:
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


def _run_threads(
    chunks: list[list[str]], jobs: int, progress: Progress, take: Callable[[Result], None], bare: Set[str] = frozenset()
) -> None:
    """Parse chunks in ``jobs`` threads of this process and hand each result to ``take`` in chunk order, as soon
    as it and every chunk before it are done.  The compiled decoder reads and decodes a run of files without the GIL
    (each thread has its own interner), so the threads decode in parallel; the GIL is taken for the little Python
    around each run of files, and to make the Python keys of the functions a chunk met first (``Interner.sync``,
    at the chunk's end).  The merge runs in the parsing threads themselves: a thread that has parsed a chunk merges
    every chunk that is next in order (one thread at a time), so no third thread competes for the cores with the
    two that decode (on two cores, a merging main thread only ever got part of one).  A thread takes a chunk only
    while fewer than ``jobs * _AHEAD`` chunks wait to be merged: parsed chunks cannot pile up in memory."""
    n = len(chunks)
    if not n:
        return
    window = jobs * _AHEAD
    results: list[Result | None] = [None] * n
    cond = threading.Condition()
    merging = threading.Lock()
    at = {"taken": 0, "merged": 0, "shown": 0}  # chunks taken by a thread / handed to take / shown as done
    failed: list[BaseException] = []

    def merge_ready() -> None:
        while merging.acquire(blocking=False):
            try:
                while True:
                    with cond:
                        i = at["merged"]
                        result = results[i] if i < n else None
                        if result is None:
                            break
                        results[i] = None
                    take(result)
                    with cond:
                        at["merged"] = i + 1
                        cond.notify_all()
            finally:
                merging.release()
            with cond:  # a chunk parsed while this thread held the lock found it taken: merged here, not left
                i = at["merged"]
                if i >= n or results[i] is None:
                    return

    def work() -> None:
        keys = decode.Keys()  # this thread's keys, interned across the chunks it takes (in order, as merged)
        try:
            while True:
                with cond:
                    while not failed and at["taken"] < n and at["taken"] - at["merged"] >= window:
                        cond.wait()
                    if failed or at["taken"] >= n:
                        return
                    i = at["taken"]
                    at["taken"] = i + 1
                result = _parse_chunk(chunks[i], keys=keys, bare=bare)
                with cond:
                    results[i] = result
                merge_ready()
        except BaseException as e:  # handed to the caller's thread, which raises it; the other threads stop
            with cond:
                failed.append(e)
                cond.notify_all()

    # one switch for the whole load: parse_files leaves the collector as it finds it, which threads would race on
    was_enabled = gc.isenabled()
    gc.disable()
    threads = [threading.Thread(target=work, name=f"celerylab-parse-{k}", daemon=True) for k in range(min(jobs, n))]
    try:
        for t in threads:
            t.start()
        # the progress bar moves in this thread (a notebook's bar is a widget: not updated from other threads)
        while at["shown"] < n and not failed and any(t.is_alive() for t in threads):
            with cond:
                cond.wait_for(lambda: at["merged"] > at["shown"] or bool(failed), timeout=0.5)
                merged = at["merged"]
            progress.update(sum(len(c) for c in chunks[at["shown"] : merged]))
            at["shown"] = merged
        for t in threads:
            t.join()
        progress.update(sum(len(c) for c in chunks[at["shown"] : at["merged"]]))
    except BaseException as e:  # an interrupt: the threads end after the chunk each is parsing
        with cond:
            failed.append(e)
            cond.notify_all()
        for t in threads:
            t.join()
        raise
    finally:
        if was_enabled:
            gc.enable()
    if failed:
        raise failed[0]
    if at["merged"] != n:
        raise RuntimeError(f"celerylab: {n - at['merged']} parsed chunks were not merged")


#: chunks a parser thread may have parsed ahead of the merge
_AHEAD = 3


def _thread_chunks(files: list[str], jobs: int, sizes: np.ndarray | None = None) -> list[list[str]]:
    """Chunks for the threads: enough that the threads finish together and the merge of the first overlaps the
    parsing of the rest (a thread interns keys across its chunks, so more chunks cost the merge nothing), at most
    256 files each so that the progress bar moves, at least 16.  With the files' ``sizes``, the chunks hold about
    equal bytes rather than equal numbers of files."""
    if not files:
        return []
    n = max(1, min(len(files) // 16, max(jobs * 8, -(-len(files) // 256))))
    if sizes is None or len(sizes) != len(files):
        size = -(-len(files) // n)
        return [files[i : i + size] for i in range(0, len(files), size)]
    ends = np.cumsum(np.maximum(sizes, 0).astype(np.float64))
    cuts = np.searchsorted(ends, ends[-1] * np.arange(1, n) / n, side="right") if ends[-1] > 0 else np.arange(1, n)
    cuts = np.unique(np.clip(cuts, 1, len(files) - 1)) if len(files) > 1 else np.array([], dtype=np.intp)
    bounds = [0, *cuts.tolist(), len(files)]
    return [files[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def parse(
    files: list[str],
    jobs: int,
    bar: Progress,
    isolate: bool = False,
    sidecars: Sequence[str | None] | None = None,
    sizes: np.ndarray | None = None,
) -> Parsed:
    """Parse ``files`` with ``jobs`` threads of this process, or, when ``isolate``, ``jobs`` worker processes.
    ``sidecars`` (:meth:`Found.sidecars_of`): None for each file whose folder holds no sidecar for it (not looked
    for again); by default every file's sidecar is looked for.  ``sizes``: each file's size in bytes, where the
    caller has stat'ed them (the cache's signatures); stat'ed here otherwise."""
    sizes = sizes if sizes is not None else decode.file_sizes(files)
    merger = _Merger(sizes)
    bare = frozenset(f for f, s in zip(files, sidecars) if s is None) if sidecars is not None else frozenset()
    if jobs <= 1:
        _run_parallel(_chunks(files, 1), 1, bar, merger.add, bare)
    elif isolate:
        _run_parallel(_chunks(files, jobs), jobs, bar, merger.add)
    else:
        _run_threads(_thread_chunks(files, jobs, sizes), jobs, bar, merger.add, bare)
    return merger.finish()
