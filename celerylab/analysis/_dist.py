"""Per-invocation distributions: dense (key × invocation) blocks, quantiles and a Mann–Whitney U test.

The denominator of every per-invocation number is the set of invocations (profiles) of the selection or group:
a function absent from a profile contributes 0 for that profile.  A dense block holds, for a range of keys, one
row per key and one column per invocation (zeros where the key is absent), so sorting a row gives the full
distribution, zeros included.  Blocks are sized to stay under ``MAX_BLOCK`` cells, so memory is bounded whatever
the number of functions.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

MAX_BLOCK = 4_000_000  # cells (float64) per dense block: 32 MB


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

    Every row at once, without sorting the pooled sample: the rows are sorted already, so ``U_b`` is the sum over
    ``b``'s values of (values of ``a`` below + half of those equal) — two merges (``searchsorted``) per row — and
    the tie term ``Σ (t³ − t)`` over the pooled values, with ``t = t_a + t_b`` per distinct value, is
    ``T_a + T_b + 3 Σ_v (t_a² t_b + t_a t_b²)``: the run lengths of each side (vectorised over every row) and, per
    value of ``b``, its count in ``a`` (``hi − lo`` of the merge)."""
    k, na = a.shape
    nb = b.shape[1]
    n = na + nb
    if not k or not na or not nb:
        tie = _tie_sum(a)[0] + _tie_sum(b)[0] if k else np.zeros(0)
        u_b = np.zeros(k)
    else:
        lo = np.empty((k, nb), dtype=np.int64)
        hi = np.empty((k, nb), dtype=np.int64)
        for i in range(k):
            ai, bi = a[i], b[i]
            lo[i] = ai.searchsorted(bi, "left")
            hi[i] = ai.searchsorted(bi, "right")
        eq = hi - lo  # per value of b: how many values of a equal it
        u_b = lo.sum(axis=1) + 0.5 * eq.sum(axis=1)
        t_a, _ = _tie_sum(a)
        t_b, run_b = _tie_sum(b)
        tie = t_a + t_b + 3.0 * (eq * (run_b + eq)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = na * nb / 12.0 * ((n + 1) - tie / (n * (n - 1))) if n > 1 else np.zeros(k)
    return u_b, np.asarray(var, dtype=np.float64)


def _tie_sum(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a row-sorted matrix, ``Σ (t³ − t)`` over its runs of equal values, and per cell the length of
    the run it is in; vectorised over every row."""
    k, w = m.shape
    if not k or not w:
        return np.zeros(k), np.zeros((k, w), dtype=np.int64)
    start = np.ones((k, w), dtype=bool)
    np.not_equal(m[:, 1:], m[:, :-1], out=start[:, 1:])
    flat = start.ravel()
    run = np.cumsum(flat) - 1  # run id of every cell, rows never share a run (each row starts one)
    length = np.bincount(run)
    row_of_run = np.flatnonzero(flat) // w
    t = length.astype(np.float64)
    return np.bincount(row_of_run, weights=t**3 - t, minlength=k), length[run].reshape(k, w)


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
