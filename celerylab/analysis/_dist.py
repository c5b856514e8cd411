"""Per-invocation distributions: dense (key × invocation) blocks, quantiles and a Mann–Whitney U test.

The denominator of every per-invocation number is the set of invocations (profiles) of the selection or group:
a function absent from a profile contributes 0 for that profile.  A dense block holds, for a range of keys, one
row per key and one column per invocation (zeros where the key is absent), so sorting a row gives the full
distribution, zeros included.  Blocks are sized to stay under ``MAX_BLOCK`` cells, so memory is bounded whatever
the number of functions.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from ..core.decode import _cdecode

MAX_BLOCK = 4_000_000  # cells (float64) per dense block: 32 MB
SHORT_ROW = 512  # values of B per row up to which the test merges a whole block at once (else row by row)
PARALLEL_CELLS = 1 << 20  # cells of a block from which its rows are sorted and merged in threads
RADIX_ROW = 2048  # values per row from which the compiled radix sort can beat numpy's (here by 1.3x; 2.9x at 10 000)


def by_rows(fn: Callable[[int, int], object], k: int, cells: int) -> None:
    """``fn(lo, hi)`` over row ranges that cover ``0..k``: one range, or, for a block of ``cells`` >=
    :data:`PARALLEL_CELLS`, one per CPU, run in threads (``fn`` must release the GIL: numpy's sort and the compiled
    merge do); the first exception any range raised is raised."""
    n = min(os.cpu_count() or 1, k) if cells >= PARALLEL_CELLS else 1
    if n <= 1:
        fn(0, k)
        return
    bounds = [k * i // n for i in range(n + 1)]
    errors: list[BaseException] = []

    def run(lo: int, hi: int) -> None:
        try:
            fn(lo, hi)
        except BaseException as e:  # raised in the caller's thread below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(bounds[i], bounds[i + 1])) for i in range(1, n)]
    for t in threads:
        t.start()
    run(bounds[0], bounds[1])
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def sort_rows(mat: np.ndarray) -> None:
    """``mat.sort(axis=1)``: long rows by the compiled radix sort (the same values in the same order, NaNs last),
    a big matrix's rows split over threads."""
    compiled = mat.shape[1] >= RADIX_ROW and mat.dtype == np.float64 and mat.flags.c_contiguous and _radix_wins()
    if compiled:
        by_rows(lambda lo, hi: _cdecode.sort_rows(mat[lo:hi]), mat.shape[0], mat.size)
    else:
        by_rows(lambda lo, hi: mat[lo:hi].sort(axis=1), mat.shape[0], mat.size)


def block_size(n_slots: int) -> int:
    """Keys per dense block for ``n_slots`` invocations."""
    return max(1, MAX_BLOCK // max(n_slots, 1))


def dense_blocks(
    slot: np.ndarray, key: np.ndarray, values: np.ndarray, n_slots: int, keys: np.ndarray, per: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For the wanted ``keys`` (sorted unique ints), yield ``(block_keys, matrix)`` where ``matrix[i, j]`` is the
    sum of ``values`` of rows with ``key == block_keys[i]`` and ``slot == j`` (0 where there is none); ``per``
    keys per block (default :func:`block_size`)."""
    if not len(keys):
        return
    per = per or block_size(n_slots)
    if len(keys) <= per and len(key) and keys[0] == 0 and keys[-1] == len(keys) - 1 and key.max() < len(keys):
        # the wanted keys are exactly 0..K-1: no position lookup, no mask
        flat = key.astype(np.int64) * n_slots + slot
        yield keys, np.bincount(flat, weights=values, minlength=len(keys) * n_slots).reshape(len(keys), n_slots)
        return
    kmax = int(max(keys.max(), key.max() if len(key) else 0)) + 1
    pos = np.full(kmax, -1, dtype=np.int64)
    pos[keys] = np.arange(len(keys))
    rowpos = pos[key]
    if len(keys) <= per:
        m = rowpos >= 0
        flat = rowpos[m] * n_slots + slot[m]
        yield keys, np.bincount(flat, weights=values[m], minlength=len(keys) * n_slots).reshape(len(keys), n_slots)
        return
    # several blocks: the rows ordered by key position once (a stable sort keeps their order within a key, so every
    # cell sums its rows in the same order), then each block is a slice — not a scan of every row per block
    idx = np.flatnonzero(rowpos >= 0)
    rp = rowpos[idx]
    order = np.argsort(rp.astype(np.uint16) if len(keys) <= 2**16 else rp, kind="stable")
    idx, rp = idx[order], rp[order]
    bounds = np.searchsorted(rp, np.arange(0, len(keys) + per, per))
    for b, start in enumerate(range(0, len(keys), per)):
        stop = min(start + per, len(keys))
        lo, hi = bounds[b], bounds[b + 1]
        rows = idx[lo:hi]
        nb = stop - start
        flat = (rp[lo:hi] - start) * n_slots + slot[rows]
        mat = np.bincount(flat, weights=values[rows], minlength=nb * n_slots).reshape(nb, n_slots)
        yield keys[start:stop], mat


def quantiles_sorted(mat: np.ndarray, qs: tuple[float, ...]) -> list[np.ndarray]:
    """Quantiles (numpy's default linear interpolation) of each row of a row-sorted matrix."""
    n = mat.shape[1]
    out = []
    for q in qs:
        if n == 0:
            out.append(np.full(mat.shape[0], np.nan))
            continue
        h = (n - 1) * q
        lo = int(np.floor(h))
        hi = min(lo + 1, n - 1)
        t = h - lo
        a, b = mat[:, lo], mat[:, hi]
        d = b - a
        # numpy's _lerp, bit for bit: a + d*t, or b - d*(1-t) from t >= 0.5 on
        out.append(b - d * (1 - t) if t >= 0.5 else a + d * t)
    return out


def mannwhitney_parts(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of two row-sorted matrices: ``(u_b, var)`` — the Mann–Whitney U of ``b`` and its variance under the
    null hypothesis, with the tie correction.

    Every row without sorting the pooled sample: the rows are sorted already, so ``U_b`` is the sum over ``b``'s
    values of (values of ``a`` below + half of those equal) — one merge (``searchsorted``) per row — and the tie
    term ``Σ (t³ − t)`` over the pooled values, with ``t = t_a + t_b`` per distinct value, is
    ``T_a + T_b + 3 Σ_v (t_a² t_b + t_a t_b²)``: the runs of equal values of each side (found from the neighbours
    that are equal, vectorised over every row) and, per value of ``b`` that ``a`` holds too, its count in ``a``
    (``t_a``) and in ``b`` (``t_b``)."""
    k, na = a.shape
    nb = b.shape[1]
    n = na + nb
    if not k or not na or not nb:
        tie = _tie_sum(a) + _tie_sum(b) if k else np.zeros(0)
        u_b = np.zeros(k)
    else:
        below, eq, cross = _rank_counts(a, b)
        u_b = below + 0.5 * eq
        tie = _tie_sum(a) + _tie_sum(b) + 3.0 * cross
    with np.errstate(invalid="ignore", divide="ignore"):
        var = na * nb / 12.0 * ((n + 1) - tie / (n * (n - 1))) if n > 1 else np.zeros(k)
    return u_b, np.asarray(var, dtype=np.float64)


@functools.cache
def _radix_wins() -> bool:
    """Whether the compiled radix sort beats numpy's on this machine (timed once per process on 64 k values, best of
    three: 5-20 ms, the first touch of the memory included).  numpy's sort of float64 takes ~26 ns a value on rows
    of 10 000 here, the radix sort ~9; where numpy's SIMD sort is dispatched, it can take ~4."""
    if _cdecode is None or not hasattr(_cdecode, "sort_rows"):
        return False
    sample = np.random.default_rng(0).lognormal(size=(8, 8192))
    best = [float("inf"), float("inf")]
    for _ in range(3):
        for i, sort in enumerate((lambda m: m.sort(axis=1), _cdecode.sort_rows)):
            m = sample.copy()
            t = time.perf_counter()
            sort(m)
            best[i] = min(best[i], time.perf_counter() - t)
    return best[1] < 0.9 * best[0]


def _rank_counts(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the pairs ``a < b``, ``Σ t_a t_b`` (pairs ``a == b``) and ``Σ t_a t_b (t_a + t_b)`` — one merge
    per row in the compiled helper (the GIL released), else with ``searchsorted``."""
    if _cdecode is None or not hasattr(_cdecode, "rank_counts"):
        return (_merge_rows if b.shape[1] > SHORT_ROW else _merge_block)(a, b)
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    below, eq, cross = (np.empty(a.shape[0], dtype=np.int64) for _ in range(3))
    by_rows(
        lambda lo, hi: _cdecode.rank_counts(a[lo:hi], b[lo:hi], below[lo:hi], eq[lo:hi], cross[lo:hi]),
        a.shape[0],
        a.size + b.size,
    )
    return below, eq, cross


def _merge_rows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the pairs ``a < b``, ``Σ t_a t_b`` (pairs ``a == b``) and ``Σ t_a t_b (t_a + t_b)`` — row by row,
    one merge each, each row's temporaries staying in cache (long rows)."""
    k = a.shape[0]
    below, eq, cross = (np.zeros(k, dtype=np.int64) for _ in range(3))
    for i in range(k):
        below[i], eq[i], cross[i] = _merge_counts(a[i], b[i])
    return below, eq, cross


def _merge_block(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_merge_rows` for short rows, where the calls per row are the cost: two merges per row, the rest
    vectorised over the block."""
    k, nb = b.shape
    lo = np.empty((k, nb), dtype=np.intp)
    hi = np.empty((k, nb), dtype=np.intp)
    for i in range(k):
        ai, bi = a[i], b[i]
        lo[i] = ai.searchsorted(bi, "left")
        hi[i] = ai.searchsorted(bi, "right")
    pairs = hi - lo  # per value of b: how many values of a equal it
    cross = np.zeros(k, dtype=np.int64)
    if pairs.any():
        first = np.ones((k, nb), dtype=bool)  # runs of b, a NaN each its own (as for _tie_sum)
        np.not_equal(b[:, 1:], b[:, :-1], out=first[:, 1:])
        run = np.cumsum(first.ravel()) - 1
        t_b = np.bincount(run)[run].reshape(k, nb)
        cross = (pairs * (t_b + pairs)).sum(axis=1)
    return lo.sum(axis=1), pairs.sum(axis=1), cross


def _merge_counts(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int]:
    """For two sorted vectors: the pairs ``a < b``, and over the values ``v`` of ``b`` that ``a`` holds too,
    ``Σ t_a t_b`` and ``Σ t_a t_b (t_a + t_b)`` with ``t_a``, ``t_b`` the counts of ``v`` in ``a`` and ``b`` — as
    ``searchsorted`` counts them (a NaN of ``b`` equals every NaN of ``a``; within ``b`` each NaN is a value of its
    own, as for :func:`_tie_sum`)."""
    lo = a.searchsorted(b, "left")  # per value of b: the values of a below it
    below = int(lo.sum())
    at = a.take(lo, mode="clip")  # where lo == len(a), a's last value is below b's: never equal
    shared = at == b
    if b[-1] != b[-1]:  # NaNs sort last
        shared |= np.isnan(at) & np.isnan(b)
    if not shared.any():
        return below, 0, 0
    shared[1:] &= b[1:] != b[:-1]  # the first of each run of b
    j = np.flatnonzero(shared)
    v = b[j]
    t_a = a.searchsorted(v, "right") - lo[j]
    t_b = np.where(np.isnan(v), 1, b.searchsorted(v, "right") - j)
    pairs = t_a * t_b
    return below, int(pairs.sum()), int((pairs * (t_a + t_b)).sum())


def _tie_sum(m: np.ndarray) -> np.ndarray:
    """Per row of a row-sorted matrix, ``Σ (t³ − t)`` over its runs of equal values (NaNs are never equal).  A run
    of ``t`` values is ``t − 1`` equal neighbours in a row: when those are few, only they are looked at; else every
    cell gets its run (the runs of length 1 add 0)."""
    k, w = m.shape
    if not k or w < 2:
        return np.zeros(k)
    equal = m[:, 1:] == m[:, :-1]
    n_equal = int(np.count_nonzero(equal))
    if not n_equal:
        return np.zeros(k)
    if n_equal > equal.size // 8:
        first = np.ones((k, w), dtype=bool)
        np.logical_not(equal, out=first[:, 1:])
        flat = first.ravel()
        t = np.bincount(np.cumsum(flat) - 1).astype(np.float64)  # every run's length, in row order
        return np.bincount(np.flatnonzero(flat) // w, weights=t**3 - t, minlength=k)
    rows, cols = np.nonzero(equal)
    at = rows * w + cols  # two rows' neighbours are never adjacent here
    first_equal = np.flatnonzero(np.concatenate([[True], np.diff(at) != 1]))
    t = np.diff(np.concatenate([first_equal, [len(at)]])).astype(np.float64) + 1.0
    return np.bincount(rows[first_equal], weights=t**3 - t, minlength=k)


def mannwhitney_sorted(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Mann–Whitney U test per row of two row-sorted matrices (rows = keys, columns = invocations).

    Returns ``(u_b, p)``: U of ``b`` (``u_b > n_a * n_b / 2`` means ``b`` tends to be larger) and the p-value of
    the normal approximation with tie correction and continuity correction — exactly what
    ``scipy.stats.mannwhitneyu(a, b, method="asymptotic")`` computes, row by row.  Rows whose values are all
    equal get ``p = 1``.
    """
    na, nb = a.shape[1], b.shape[1]
    u_b, var = mannwhitney_parts(a, b)
    mu = na * nb / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        big = np.maximum(u_b, na * nb - u_b)
        z = (big - mu - 0.5) / np.sqrt(var)
        p = np.minimum(2.0 * _ndtr(-z), 1.0)
    p = np.where(np.isfinite(p), p, 1.0)
    return u_b, p


def van_elteren(dev: np.ndarray, var: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stratified Mann–Whitney (van Elteren) test: ``dev``/``var`` are (strata × keys) of ``U_b - n_a n_b / 2``
    and its null variance, ``n`` the invocations of each stratum (both sides); strata are weighted
    ``1 / (n + 1)``.  Returns ``(t, p)``: the weighted statistic (its sign is the direction) and the two-sided
    normal p-value (1 where the variance is 0)."""
    w = (1.0 / (n + 1.0))[:, None]
    t = (w * dev).sum(axis=0)
    v = (w * w * var).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.minimum(2.0 * _ndtr(-np.abs(t) / np.sqrt(v)), 1.0)
    return t, np.where(np.isfinite(p) & (v > 0), p, 1.0)


def bh_adjust(p: np.ndarray, m: int | None = None) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values of ``p`` in a family of ``m >= len(p)`` hypotheses (the others are
    taken as p = 1, which can only make the adjustment more conservative)."""
    p = np.asarray(p, dtype=float)
    k = len(p)
    if not k:
        return p.copy()
    m = max(int(m or k), k)
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, k + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(k)
    out[order] = np.minimum(ranked, 1.0)
    return out


def _ndtr(x: np.ndarray) -> np.ndarray:
    """The standard normal CDF (scipy imported on first use: not on the explorer's path to its first plot)."""
    from scipy import special

    return np.asarray(special.ndtr(x))
