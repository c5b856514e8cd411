"""Cluster-side aggregation of a dataset's ``stats`` with Dask DataFrame, exact to pstats.

Float addition is not associative, so a tree of partial sums would differ from pstats in the last digits.  Instead
the rows are shuffled by ``func_key`` (every row of a function lands in one partition), and each partition sums
its functions' rows sequentially in pstats' order — the first profile, then the others reversed
(:func:`celerylab.core.rules.pstats_row_order`), a rank that the client computes from the sorted paths and ships
once.  Per-invocation percentiles use the same trick as the in-memory path: a function absent from an invocation
counts as 0, and zeros sort first, so the quantile's two neighbours are read without building the dense matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import _layout as L

_COLUMNS = ["profile_key", "row", "func_key", "ncalls", "pcalls", "tottime", "cumtime"]
RESULT_META = pd.DataFrame({
    "func_key": pd.Series(dtype=np.int64), "ncalls": pd.Series(dtype=np.int64), "pcalls": pd.Series(dtype=np.int64),
    "tottime": pd.Series(dtype=np.float64), "cumtime": pd.Series(dtype=np.float64),
    "n_profiles": pd.Series(dtype=np.int64), "first": pd.Series(dtype=np.int64),
    "tottime_p50": pd.Series(dtype=np.float64), "tottime_p95": pd.Series(dtype=np.float64),
    "cumtime_p50": pd.Series(dtype=np.float64), "cumtime_p95": pd.Series(dtype=np.float64),
})  # fmt: skip


def _read(paths: list[str], fs: Any, keys: np.ndarray | None) -> pd.DataFrame:
    """The stats rows of a batch of files (only the rows of ``keys``' profiles when given)."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    dataset = pads.dataset(paths, filesystem=fs, format="parquet", schema=L.STATS_SCHEMA)
    flt = pads.field("profile_key").isin(pa.array(keys, type=pa.int64())) if keys is not None else None
    return dataset.to_table(columns=_COLUMNS, filter=flt).to_pandas()


def pstats_ranks(n: int) -> np.ndarray:
    """The rank at which each profile position (0 = first by path) is added by ``pstats.Stats(*paths)``."""
    rank = np.empty(n, dtype=np.int64)
    if n:
        rank[0] = 0
        rank[1:] = n - np.arange(1, n)
    return rank


def _lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    d = b - a
    return b - d * (1 - t) if t >= 0.5 else a + d * t  # numpy's _lerp, as analysis._dist.quantiles_sorted


def _quantiles_with_zeros(sorted_vals: np.ndarray, starts: np.ndarray, counts: np.ndarray, n: int,
                          q: float) -> np.ndarray:  # fmt: skip
    """Per group (rows ``starts[g] : starts[g] + counts[g]`` of ``sorted_vals``, sorted ascending), the ``q``
    quantile of the group's values padded with zeros to ``n`` values (linear interpolation, bit for bit)."""
    h = (n - 1) * q
    lo = int(np.floor(h))
    hi = min(lo + 1, n - 1)
    t = h - lo
    zeros = n - counts

    def at(j: int) -> np.ndarray:
        inside = j >= zeros
        idx = np.where(inside, starts + (j - zeros), 0)
        return np.where(inside, sorted_vals[idx] if len(sorted_vals) else 0.0, 0.0)

    return _lerp(at(lo), at(hi), t)


def totals_of_partition(df: pd.DataFrame, keys: pd.Index, n: int) -> pd.DataFrame:
    """Exact totals of the functions whose rows are all in ``df``; ``keys`` are the selected profiles' keys in
    path order (rows of other profiles are dropped)."""
    pos = keys.get_indexer(df["profile_key"].to_numpy())
    keep = pos >= 0
    if not keep.all():
        df, pos = df.loc[keep], pos[keep]
    if not len(df):
        return RESULT_META.iloc[:0].copy()
    rank = pstats_ranks(n)[pos]
    codes0, uniq0 = pd.factorize(df["func_key"].to_numpy(), sort=True)
    small = codes0.astype(np.uint16) if len(uniq0) < 2**16 else codes0  # a stable sort of uint16 is a radix sort
    by_rank = np.argsort(rank)
    order = by_rank[np.argsort(small[by_rank], kind="stable")]  # by function, then in pstats' order
    codes = codes0[order]
    uniq = uniq0
    k = len(uniq)
    out: dict[str, np.ndarray] = {"func_key": uniq.astype(np.int64)}
    for c in ("ncalls", "pcalls"):  # float64 sums of integers are exact below 2**53, as in the in-memory drilldown
        out[c] = np.bincount(codes, weights=df[c].to_numpy()[order].astype(np.float64), minlength=k).astype(np.int64)
    for c in ("tottime", "cumtime"):
        out[c] = np.bincount(codes, weights=df[c].to_numpy()[order], minlength=k)
    counts = np.bincount(codes, minlength=k)
    out["n_profiles"] = counts
    starts = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
    first = (pos.astype(np.int64) << 32) + df["row"].to_numpy().astype(np.int64)
    out["first"] = np.minimum.reduceat(first[order], starts)
    for c in ("tottime", "cumtime"):
        vals = df[c].to_numpy()[order]
        by_value = np.argsort(vals)
        sv = vals[by_value[np.argsort(small[order][by_value], kind="stable")]]  # ascending within each function
        out[f"{c}_p50"] = _quantiles_with_zeros(sv, starts, counts, n, 0.5)
        out[f"{c}_p95"] = _quantiles_with_zeros(sv, starts, counts, n, 0.95)
    return pd.DataFrame(out)[list(RESULT_META.columns)]


def exact_function_totals(fs: Any, root: str, files: list[str], profile_keys: np.ndarray, *,
                          scheduler: Any = None, npartitions: int | None = None,
                          push_keys: bool = False) -> pd.DataFrame:  # fmt: skip
    """Per function over the profiles ``profile_keys`` (in path order), from the ``stats`` files ``files``,
    computed with Dask DataFrame (on ``scheduler``: an address or Client; else the current default).
    ``push_keys``: filter the rows by profile while reading (worth it when the selection is a small part of the
    files' rows; the keys then travel with every read task)."""
    import dask
    import dask.dataframe as dd

    n = len(profile_keys)
    if not files or not n:
        return RESULT_META.iloc[:0].copy()
    keys = dask.delayed(pd.Index(np.asarray(profile_keys, dtype=np.int64)), pure=True)
    # a few files per read task: per-task overhead, not bytes, dominates small part files
    n_batches = max(1, min(len(files), 32))
    batches = [files[i::n_batches] for i in range(n_batches)]
    pushed = np.asarray(profile_keys, dtype=np.int64) if push_keys else None
    ddf = dd.from_map(_read, batches, fs=fs, keys=pushed, meta=L.STATS_SCHEMA.empty_table().to_pandas()[_COLUMNS],
                      enforce_metadata=False)  # fmt: skip
    parts = npartitions or max(1, min(len(files), 16))
    # task-based shuffle: no p2p extension to start, and rows per function are few (one per profile)
    shuffled = ddf.shuffle(on="func_key", npartitions=parts, shuffle_method="tasks")
    result = shuffled.map_partitions(totals_of_partition, keys, n, meta=RESULT_META)
    client = _client(scheduler)
    if client is not None:
        out = client.compute(result).result()
    else:
        out = result.compute()
    return out.sort_values("first", kind="stable").reset_index(drop=True)


def _client(scheduler: Any) -> Any:
    if scheduler is None:
        return None
    from distributed import Client

    return scheduler if isinstance(scheduler, Client) else Client(scheduler)
