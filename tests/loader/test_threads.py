"""Parallel loading in threads (the default for ``jobs`` > 1): the compiled decoder reads and decodes runs of files
without the GIL; every frame equals a one-thread load's and the isolated processes', in the same order."""

from __future__ import annotations

import gc
import gzip
import itertools
import os
import pstats
import shutil
import threading
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import celerylab as cl
from celerylab._files import sidecar_path
from celerylab.core import _cdecode, decode, parse
from celerylab.testing import FakeClock, write_corpus

from .conftest import make_set


def _pure_inner(n: int) -> int:
    return n * 2


def _pure_outer(n: int) -> int:
    return sum(_pure_inner(i) for i in range(n))


def _mixed_folder(tmp_path) -> tuple[str, list[str]]:
    """Files the compiled decoder takes in runs, and between them files it leaves to the Python path: gzip, the
    pure-Python ``profile`` module's format, a bad file, a temporary file, an empty file."""
    folder = tmp_path / "mixed"
    good = make_set(folder, 24)
    write_corpus(str(folder / "syn"), 40, n_functions=200, n_edges=500, seed=11)
    with open(good[3], "rb") as f:
        data = f.read()
    with gzip.open(folder / "m-zipped.prof.gz", "wb") as f:
        f.write(data)
    import profile

    p = profile.Profile(timer=FakeClock())
    p.runcall(_pure_outer, 5)
    p.dump_stats(str(folder / "n-pure.prof"))
    (folder / "o-bad.prof").write_bytes(b"{garbage")
    (folder / "p-empty.prof").write_bytes(b"")
    shutil.copy(good[5], folder / "q-writing.prof.tmp")
    return str(folder), good


def _frames(ps) -> dict[str, pd.DataFrame]:
    return {k: getattr(ps, k).reset_index(drop=True) for k in ("profiles", "functions", "stats", "edges", "errors")}


def test_threads_equal_one_thread_and_isolated_processes_frame_by_frame(tmp_path):
    folder, _ = _mixed_folder(tmp_path)
    with pytest.warns(UserWarning):
        one = _frames(cl.load(folder, jobs=1, cache=False))
    assert len(one["errors"]) == 3  # the bad, the empty and the temporary file: named, nothing else lost
    for jobs in (2, 3):
        with pytest.warns(UserWarning):
            threads = _frames(cl.load(folder, jobs=jobs, cache=False))
        for name, frame in one.items():
            pd.testing.assert_frame_equal(threads[name], frame, check_exact=True, obj=f"jobs={jobs} {name}")
    with pytest.warns(UserWarning):
        isolated = _frames(cl.load(folder, jobs=2, cache=False, isolate=True))
    for name, frame in one.items():
        pd.testing.assert_frame_equal(isolated[name], frame, check_exact=True, obj=f"isolated {name}")
    loaded = [p for p in one["profiles"]["path"] if not p.endswith(".gz")]  # pstats reads no gzip
    assert pstats.Stats(*loaded).stats == cl.load(loaded, jobs=2, cache=False).to_pstats_dict()


def test_thread_chunks_share_their_threads_keys_and_the_merge_maps_each_key_once(tmp_path, monkeypatch):
    paths = sorted(write_corpus(str(tmp_path / "syn"), 200, n_functions=150, n_edges=400, seed=4))
    sent: list[int] = []
    real = parse._parse_chunk

    def spy(paths, opener=open, keys=None, bare=frozenset()):
        out = real(paths, opener, keys, bare)
        sent.append(len(out[0]["funcs"]))
        return out

    monkeypatch.setattr(parse, "_parse_chunk", spy)
    ps = cl.load(paths, jobs=2, cache=False)
    chunks = parse._thread_chunks(paths, 2)
    assert len(sent) == len(chunks) > 2
    # each of the two threads sends a key once, whatever number of its chunks hold it
    assert len(ps.functions) <= sum(sent) <= 2 * len(ps.functions)
    assert ps.to_pstats_dict() == pstats.Stats(*paths).stats


def test_merging_a_threads_chunks_out_of_order_is_refused():
    keys = decode.Keys()
    a = decode.parse_files([], keys=keys)
    b = decode.parse_files([], keys=keys)
    b["funcs_base"] = 5  # as if a chunk of this thread had been skipped
    merger = parse._Merger()
    merger.add((a, []))
    with pytest.raises(RuntimeError, match="out of order"):
        merger.add((b, []))
    assert b["keys_id"] == keys.id


@pytest.mark.skipif(_cdecode is None or not hasattr(_cdecode.Interner, "add_paths"), reason="compiled decoder")
def test_add_paths_decodes_as_add_and_stops_before_a_file_it_leaves_to_python(tmp_path):
    paths = sorted(write_corpus(str(tmp_path / "syn"), 6, n_functions=80, n_edges=200, seed=2))
    gz = str(tmp_path / "c.prof.gz")
    with open(paths[2], "rb") as f, gzip.open(gz, "wb") as g:
        g.write(f.read())
    order = [*paths[:2], gz, *paths[2:]]
    f1, i1 = [], {}
    one = _cdecode.Interner(f1, i1)
    got = one.add_paths(tuple(map(os.fsencode, order)), 0, 0)
    assert len(got) == 2  # stopped at the gzip file, nothing of it taken
    got += one.add_paths(tuple(map(os.fsencode, order)), 3, 3)
    f2, i2 = [], {}
    ref = _cdecode.Interner(f2, i2)
    want = []
    for slot, p in enumerate(order):
        if p != gz:
            with open(p, "rb") as f:
                want.append(ref.add(f.read(), slot))
    assert got == want and f1 == f2
    a, b = one.take(), ref.take()
    assert [bytes(x) for x in a[0]] == [bytes(x) for x in b[0]] and a[1:] == b[1:]
    # unreadable and missing files stop the run as well (the Python path words why)
    assert one.add_paths((os.fsencode(str(tmp_path / "missing.prof")),), 0, 9) == []
    assert one.add_paths((os.fsencode(str(tmp_path)),), 0, 9) == []  # a directory
    # a path with a NUL byte names no file: the run stops there rather than open the path cut at the NUL
    cut = os.fsencode(paths[0]) + b"\0.old"
    assert one.add_paths((cut,), 0, 9) == []
    with pytest.raises(ValueError, match="start"):
        one.add_paths(tuple(map(os.fsencode, order)), -1, 0)
    assert one.pending() == 0


@pytest.mark.skipif(_cdecode is None, reason="compiled decoder")
def test_an_interner_is_used_by_one_thread_at_a_time(tmp_path):
    # a big file keeps add() busy without the GIL; the other thread's calls on the same interner are refused
    big = str(tmp_path / "big.prof")
    (made,) = write_corpus(str(tmp_path / "w"), 1, n_functions=60000, n_edges=240000, seed=1, with_sidecars=False)
    shutil.move(made, big)
    with open(big, "rb") as f:
        data = f.read()
    funcs: list = []
    t = _cdecode.Interner(funcs, {})
    refused: list[str] = []
    started = threading.Event()

    def other() -> None:
        started.wait()
        for _ in range(200000):
            try:
                t.pending()
            except RuntimeError as e:
                refused.append(str(e))
                return

    th = threading.Thread(target=other)
    th.start()
    for slot in range(5):
        started.set()
        assert t.add(data, slot) is not None
        if refused:
            break
    th.join()
    assert refused and "in use by another thread" in refused[0]
    # the refused calls changed nothing: every add that ran is in the columns, each key interned once
    assert funcs == []  # the keys' Python tuples wait for sync(): add() made none of them (it ran without the GIL)
    t.sync()
    assert t.take()[1] == (slot + 1) * len(funcs)
    assert len(funcs) == len(set(funcs))


def test_threads_leave_the_collector_as_they_found_it(tmp_path):
    make_set(tmp_path / "p", 12)
    import gc

    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            cl.load(tmp_path / "p", jobs=2, cache=False)
            assert gc.isenabled() is enabled
        finally:
            gc.enable()


@pytest.mark.parametrize("jobs", [1, 2])
def test_sidecars_are_looked_for_only_where_the_walk_listed_one(tmp_path, monkeypatch, jobs):
    with_side = write_corpus(str(tmp_path / "a"), 6, n_functions=40, n_edges=80, seed=1)  # each with its sidecar
    bare = write_corpus(str(tmp_path / "a"), 5, n_functions=40, n_edges=80, seed=2, with_sidecars=False)
    looked: list[str] = []
    real = parse.read_sidecar

    def spy(path, opener=open):
        looked.append(path)
        return real(path, opener)

    monkeypatch.setattr(parse, "read_sidecar", spy)
    ps = cl.load(tmp_path / "a", jobs=jobs, cache=False)
    assert sorted(looked) == sorted(sidecar_path(p) for p in with_side)
    named = ps.profiles.set_index("path")["name_source"]
    assert (named[sorted(with_side)] == "sidecar").all() and (named[sorted(bare)] == "filename").all()
    assert ps.to_pstats_dict() == pstats.Stats(*ps.profiles["path"]).stats and len(ps) == 11
    looked.clear()
    cl.load(bare, jobs=jobs, cache=False)  # files named one by one: their sidecars are looked for
    assert sorted(looked) == sorted(sidecar_path(p) for p in bare)


def _held(a: np.ndarray) -> int:
    """Bytes of the buffer a merged column is a view of (Arrow's pool)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    assert isinstance(a.base, pa.Buffer), type(a.base)
    return a.base.size


def test_merged_columns_come_from_arrows_pool_writable_and_are_reused(tmp_path):
    """The stats/edges columns are views of Arrow pool buffers (which keeps freed memory for the next load: glibc
    hands blocks this big back to the OS), writable as numpy's, no more than a quarter too long, and freed with the
    frames."""
    import gc

    paths = sorted(write_corpus(str(tmp_path / "syn"), 60, n_functions=40, n_edges=80, seed=8))
    before = pa.total_allocated_bytes()
    ps = cl.load(paths, jobs=2, cache=False)
    cols = [ps.stats[c].to_numpy() for c in ps.stats] + [ps.edges[c].to_numpy() for c in ps.edges]
    assert all(_held(c) <= c.nbytes * 5 // 4 + 8 for c in cols)
    assert pa.total_allocated_bytes() - before >= sum(c.nbytes for c in cols)
    fresh = parse.pooled(3, np.int32)
    fresh[:] = 7  # writable, as np.empty's
    assert fresh.dtype == np.int32 and list(fresh) == [7, 7, 7]
    del ps, cols, fresh
    gc.collect()
    assert pa.total_allocated_bytes() - before < 64 * 1024  # given back to the pool with the frames


def test_merged_columns_grow_past_a_wrong_guess_and_widen_counts_that_do_not_fit_int32():
    rng = np.random.default_rng(3)
    parts = [rng.integers(-5, 5, size=n).astype(np.int32) for n in (3, 0, 40, 7, 1000)]
    parts[3] = parts[3].astype(np.int64) + 2**40  # a call count beyond int32, met half-way
    col = parse._Column(np.int64, count=True)
    for i, p in enumerate(parts):
        col.put(p, per_byte=0.01, bytes_left=100 * (len(parts) - i - 1))  # guesses far too small
    out = col.array()
    assert out.dtype == np.int64 and np.array_equal(out, np.concatenate(parts))
    assert _held(out) <= out.nbytes * 5 // 4 and len(col.array()) == 0
    small = parse._Column(np.int64, count=True)
    small.put(parts[0], per_byte=1.0, bytes_left=10**5)  # guessed far too large: copied to its length
    kept = small.array()
    assert kept.dtype == np.int32 and np.array_equal(kept, parts[0]) and _held(kept) == kept.nbytes
    near = parse._Column(np.float64)
    near.put(np.arange(100.0), per_byte=1.0, bytes_left=10)  # guessed 12 rows too many: the view kept
    assert np.array_equal(near.array(), np.arange(100.0))
    ids = parse._Column(np.int32)
    with pytest.raises(IndexError, match="refers to id 9 of 3"):
        ids.take(np.arange(3, dtype=np.int32), np.array([0, 9], dtype=np.int32), 1.0, 0)


def test_parser_threads_run_at_most_a_window_of_chunks_ahead_of_a_slow_merge(tmp_path, monkeypatch):
    paths = sorted(write_corpus(str(tmp_path / "syn"), 240, n_functions=30, n_edges=60, seed=6))
    lock = threading.Lock()
    state = {"parsed": 0, "merged": 0, "most_ahead": 0}
    real_chunk, real_add = parse._parse_chunk, parse._Merger.add

    def chunk(*args, **kwargs):
        out = real_chunk(*args, **kwargs)
        with lock:
            state["parsed"] += 1
            state["most_ahead"] = max(state["most_ahead"], state["parsed"] - state["merged"])
        return out

    def slow_add(self, result):
        time.sleep(0.01)  # a merge slower than the parse: without the window every chunk would pile up
        real_add(self, result)
        with lock:
            state["merged"] += 1

    monkeypatch.setattr(parse, "_parse_chunk", chunk)
    monkeypatch.setattr(parse._Merger, "add", slow_add)
    ps = cl.load(paths, jobs=2, cache=False)
    n_chunks = len(parse._thread_chunks(paths, 2))
    assert state["merged"] == n_chunks > 2 * parse._AHEAD + 2
    assert state["most_ahead"] <= 2 * parse._AHEAD
    assert ps.to_pstats_dict() == pstats.Stats(*paths).stats


@pytest.mark.parametrize("where", ["parse", "merge"])
def test_an_error_in_a_parser_thread_reaches_the_caller_and_every_thread_ends(tmp_path, monkeypatch, where):
    paths = sorted(write_corpus(str(tmp_path / "syn"), 120, n_functions=20, n_edges=40, seed=8))
    chunks = [paths[i : i + 5] for i in range(0, len(paths), 5)]  # 24 chunks: far more than the window of 6
    real = parse._parse_chunk
    calls = []

    def chunk(*args, **kwargs):
        calls.append(1)
        if where == "parse" and len(calls) == 4:
            raise MemoryError("chunk 4")
        return real(*args, **kwargs)

    merged = []

    def take(result):
        merged.append(result)
        if where == "merge" and len(merged) == 3:
            raise RuntimeError("merge 3")

    monkeypatch.setattr(parse, "_parse_chunk", chunk)
    before = threading.active_count()
    with pytest.raises(MemoryError if where == "parse" else RuntimeError, match=r"chunk 4|merge 3"):
        parse._run_threads(chunks, 2, parse.Progress(0, False), take)
    assert threading.active_count() == before
    # the threads stopped taking chunks: at most the window past the last merge, and the chunk each had in hand
    assert len(calls) <= len(merged) + 2 * parse._AHEAD + 2 < len(chunks) and len(merged) <= 3
    assert gc.isenabled()


def test_the_progress_bar_moves_in_the_callers_thread_by_every_file(tmp_path, monkeypatch):
    paths = sorted(write_corpus(str(tmp_path / "syn"), 90, n_functions=20, n_edges=40, seed=9))
    moves: list[tuple[str, int]] = []

    class Bar(parse.Progress):
        def update(self, n: int) -> None:
            moves.append((threading.current_thread().name, n))

    real_add = parse._Merger.add

    def slow_add(self, result):
        time.sleep(0.02)  # merges spread over time: the bar moves several times
        real_add(self, result)

    monkeypatch.setattr(parse._Merger, "add", slow_add)
    parsed = parse.parse(paths, 2, Bar(len(paths), False))
    assert len(parsed.paths) == 90
    assert {name for name, _ in moves} == {threading.current_thread().name}
    assert sum(n for _, n in moves) == 90 and len([n for _, n in moves if n]) > 1


def test_merge_rows_maps_ids_copies_and_refuses_what_does_not_fit():
    """The compiled merge of one chunk's rows: ids through their tables, counts of either width, times; a count
    beyond int32 for an int32 column is refused before that column is written (the caller widens it); an id beyond
    its table is an IndexError."""
    from celerylab.core.decode import _cdecode

    merge_rows = _cdecode.merge_rows
    rng = np.random.default_rng(7)
    n = 1000
    pid_table = rng.integers(0, 50, 60).astype(np.int32)
    id_table = rng.integers(0, 10**6, 300).astype(np.int32)
    srcs = (rng.integers(0, 60, n).astype(np.int32), rng.integers(0, 300, n).astype(np.int32),
            rng.integers(-3, 2**31 - 1, n).astype(np.int32), rng.integers(-3, 2**40, n), rng.random(n))  # fmt: skip
    dsts = (np.zeros(n, np.int32), np.zeros(n, np.int32), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n))
    assert merge_rows(dsts, srcs, "mmccf", (pid_table, id_table, None, None, None)) == -1
    assert np.array_equal(dsts[0], pid_table[srcs[0]]) and np.array_equal(dsts[1], id_table[srcs[1]])
    assert all(np.array_equal(d, s) for d, s in zip(dsts[2:], srcs[2:]))
    # int64 counts into int32: written while they fit, refused (column untouched) when one does not
    fits = rng.integers(-(2**31), 2**31, n)
    narrow = np.zeros(n, np.int32)
    assert merge_rows((narrow,), (fits,), "c", (None,)) == -1 and np.array_equal(narrow, fits)
    first, big = np.zeros(n, np.int32), np.zeros(n, np.int32)
    huge = fits.copy()
    huge[-1] = 2**31
    assert merge_rows((first, big), (srcs[0], huge), "mc", (pid_table, None)) == 1
    assert np.array_equal(first, pid_table[srcs[0]]) and not big.any()
    for bad in (np.array([0, 300], np.int32), np.array([-1, 0], np.int32)):
        with pytest.raises(IndexError, match="beyond its table"):
            merge_rows((np.zeros(2, np.int32),), (bad,), "m", (id_table,))
    with pytest.raises(ValueError, match="lengths differ"):
        merge_rows((np.zeros(3),), (np.zeros(2),), "f", (None,))


@pytest.mark.parametrize("compiled_merge", [True, False])
def test_a_count_beyond_int32_in_a_later_chunk_widens_the_merged_column(tmp_path, monkeypatch, compiled_merge):
    """Chunks merged before a file whose call count needs int64 were int32: the column is widened then, with the
    compiled merge and with the numpy one, and every total equals pstats."""
    import marshal

    from celerylab.core import decode

    if not compiled_merge:
        monkeypatch.delattr(decode._cdecode, "merge_rows")
    folder = tmp_path / "c"
    paths = sorted(write_corpus(str(folder), 40, n_functions=20, n_edges=30, seed=8))
    big = 5 * 2**32 + 3
    key = ("/srv/app/tasks.py", 10, "hot")
    caller = ("/srv/app/tasks.py", 5, "main")
    (folder / "zz-big.prof").write_bytes(
        marshal.dumps({key: (big, big + 1, 1.5, 2.5, {caller: (big, big + 1, 1.0, 2.0)}), caller: (1, 1, 0.5, 3.0, {})})
    )
    for jobs in (1, 2):
        ps = cl.load(folder, jobs=jobs, cache=False)
        assert len(ps) == 41 and ps.stats["ncalls"].dtype == np.int64 and ps.edges["ncalls"].dtype == np.int64
        for frame in (ps.stats, ps.edges):
            assert int(frame[["ncalls", "pcalls"]].to_numpy().max()) == big + 1
        assert ps.to_pstats_dict() == pstats.Stats(*paths, str(folder / "zz-big.prof")).stats


def test_thread_chunks_hold_about_equal_bytes_and_every_file_once_in_order():
    """Real corpora mix small and large files: chunks cut by bytes, not by count (equal counts gave chunks from 0.4
    to 1.5 MB on the real-world corpus, and the last thread to finish idled the other); every file once, in order;
    files that could not be stat'ed (-1) or sizes of nothing fall back to equal counts."""
    rng = np.random.default_rng(4)
    files = [f"f{i:04d}" for i in range(300)]
    sizes = np.where(rng.random(300) < 0.1, 2_000_000, 20_000).astype(np.int64)  # a tenth of the files 100x larger
    by_bytes = parse._thread_chunks(files, 2, sizes)
    assert [f for c in by_bytes for f in c] == files and all(by_bytes)

    def chunk_bytes(chunks: list[list[str]]) -> np.ndarray:
        at = np.cumsum([0] + [len(c) for c in chunks])
        return np.array([sizes[a:b].sum() for a, b in itertools.pairwise(at)])

    mean = sizes.sum() / len(by_bytes)
    assert np.abs(chunk_bytes(by_bytes) - mean).max() <= sizes.max()  # each within one file of the mean
    by_count = parse._thread_chunks(files, 2)
    assert len(by_count) == len(by_bytes) == 16
    assert np.abs(chunk_bytes(by_count) - mean).max() > sizes.max()  # what cutting by count gave
    for odd in (np.zeros(300, np.int64), np.full(300, -1, np.int64)):
        chunks = parse._thread_chunks(files, 2, odd)
        assert [f for c in chunks for f in c] == files and all(chunks)
    assert parse._thread_chunks(files[:1], 2, sizes[:1]) == [files[:1]]
    assert parse._thread_chunks([], 2, sizes[:0]) == []
