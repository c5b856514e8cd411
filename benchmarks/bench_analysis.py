"""Analysis benchmark on a synthetic corpus (default 10 000 profiles, half "baseline", half "candidate").

    .venv/bin/python benchmarks/bench_analysis.py                       # 10 000 profiles (generated once)
    .venv/bin/python benchmarks/bench_analysis.py --n 2000 --repeat 3
    .venv/bin/python benchmarks/bench_analysis.py --dir /tmp/celerylab-bench-load   # reuse bench_load's corpus

Targets: callers/callees of one function <= 20 ms on 10 000 profiles (~10 M edge rows); diff of two
5 000-profile runs <= 1 s.  Every figure is printed next to a baseline measured in the same run on the same data:
callers/callees vs building the all-pairs edge totals and filtering them (what a naive implementation does);
diff vs a naive pandas ``groupby`` of per-run means (no distributions, no test) and vs ``scipy.stats.mannwhitneyu``
over dense per-invocation matrices of every function (the straightforward way to get the same p-values).
Times are the median of ``--repeat`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd
from scipy import stats

import celerylab as cl
from celerylab.analysis import call_tree, callees, callers, category_shares, diff, top
from celerylab.testing import write_corpus


def timed(fn, repeat: int) -> tuple[float, object]:
    out = fn()  # warm-up (and the result)
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def corpus(folder: Path, n: int) -> Path:
    marker = folder / f".n{n}"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        write_corpus(str(folder), n, seed=7, runs=("baseline", "candidate"))
        marker.touch()
        print(f"generated {n} profiles in {time.perf_counter() - t0:.1f} s")
    return folder


def naive_callers(ps: cl.ProfileSet, fid: int) -> pd.DataFrame:
    et = ps.__class__.edge_totals.func(ps)  # type: ignore[attr-defined]  # uncached: what a naive version pays
    return et.loc[et["callee_id"] == fid]


def naive_diff(ps: cl.ProfileSet) -> pd.DataFrame:
    s = ps.stats.merge(ps.profiles[["profile_id", "run"]], on="profile_id")
    n = ps.profiles.groupby("run", observed=True).size()
    tot = s.groupby(["run", "func_id"], observed=True)["tottime"].sum().unstack(0).fillna(0.0)
    means = tot / n
    return means.assign(delta=means["candidate"] - means["baseline"])


def scipy_diff(ps: cl.ProfileSet) -> np.ndarray:
    p = ps.profiles
    s = ps.stats
    nf = int(s["func_id"].max()) + 1
    out = []
    mats = []
    for run in ("baseline", "candidate"):
        ids = p.loc[p["run"].astype(str) == run, "profile_id"].to_numpy()
        slot = np.full(int(p["profile_id"].max()) + 1, -1)
        slot[ids] = np.arange(len(ids))
        m = slot[s["profile_id"].to_numpy()] >= 0
        mat = np.zeros((len(ids), nf))
        mat[slot[s["profile_id"].to_numpy()[m]], s["func_id"].to_numpy()[m]] = s["tottime"].to_numpy()[m]
        mats.append(mat)
    out = stats.mannwhitneyu(mats[0], mats[1], axis=0, method="asymptotic").pvalue
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000, help="profiles (half per run)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "celerylab-bench-analysis"))
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--skip-scipy", action="store_true", help="skip the dense scipy baseline (slow)")
    args = ap.parse_args()

    folder = corpus(Path(args.dir) / f"n{args.n}", args.n)
    t0 = time.perf_counter()
    ps = cl.load(str(folder), progress=False)
    print(f"loaded {ps.summary()['profiles']:,} profiles, {len(ps.stats):,} stat rows, {len(ps.edges):,} edge rows "
          f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    res: dict[str, float] = {}

    # ---- callers / callees of one function: the one with the most callers
    e = ps.edges
    fid = int(np.bincount(e["callee_id"].to_numpy()).argmax())
    label = ps.functions["label"].iloc[fid]
    res["callers_s"], c = timed(lambda: callers(ps, fid), args.repeat)
    res["callees_s"], _ = timed(lambda: callees(ps, fid), args.repeat)
    res["callers_by_label_s"], _ = timed(lambda: callers(ps, label), args.repeat)
    res["callers_split_run_s"], _ = timed(lambda: callers(ps, fid, split_by="run"), args.repeat)
    res["naive_callers_s"], _ = timed(lambda: naive_callers(ps, fid), max(1, args.repeat // 2))
    print(f"\ncallers/callees of {label} ({len(c)} callers) over {len(e):,} edge rows")  # type: ignore[arg-type]
    print(f"  callers(func_id)          {res['callers_s'] * 1e3:8.1f} ms   (target <= 20 ms)")
    print(f"  callees(func_id)          {res['callees_s'] * 1e3:8.1f} ms")
    print(f"  callers(label)            {res['callers_by_label_s'] * 1e3:8.1f} ms   (resolve included)")
    print(f"  callers(split_by='run')   {res['callers_split_run_s'] * 1e3:8.1f} ms")
    print(f"  naive: all edge totals    {res['naive_callers_s'] * 1e3:8.1f} ms   "
          f"({res['naive_callers_s'] / res['callers_s']:.0f}x slower)")  # fmt: skip

    # ---- diff of the two 5 000-profile runs
    a, b = ps.where(run="baseline"), ps.where(run="candidate")
    res["diff_two_sets_s"], d = timed(lambda: cl.diff(a, b), args.repeat)
    res["diff_split_s"], _ = timed(lambda: diff(ps, split_by="run", values=("baseline", "candidate")), args.repeat)
    res["diff_by_task_s"], dt = timed(
        lambda: diff(ps, split_by="run", values=("baseline", "candidate"), group_by="task_name"), args.repeat
    )
    # the synthetic runs do not differ, so the default diff tests nothing: time the worst case too, every function
    # tested (relevance filters off), which is what the scipy baseline below does
    res["diff_all_tested_s"], dall = timed(lambda: cl.diff(a, b, min_change=0.0, min_share=0.0), args.repeat)
    res["naive_diff_s"], _ = timed(lambda: naive_diff(ps), args.repeat)
    print(f"\ndiff: {len(a):,} vs {len(b):,} profiles, {len(d):,} functions "  # type: ignore[arg-type]
          f"({int(d['p_value'].notna().sum())} tested; statuses {d['status'].value_counts().to_dict()})")  # type: ignore[index]  # fmt: skip
    print(f"  cl.diff(a, b)                         {res['diff_two_sets_s']:6.3f} s   (target <= 1 s)")
    print(f"  cl.diff(a, b), every function tested  {res['diff_all_tested_s']:6.3f} s   "
          f"({int(dall['p_value'].notna().sum())} Mann-Whitney tests; target <= 1 s)")  # type: ignore[index]  # fmt: skip
    print(f"  diff(ps, split_by='run')              {res['diff_split_s']:6.3f} s")
    print(f"  ... group_by='task_name' ({len(dt):,} rows) {res['diff_by_task_s']:6.3f} s")  # type: ignore[arg-type]
    print(f"  naive pandas groupby means (no stats) {res['naive_diff_s']:6.3f} s   "
          f"(diff = {res['diff_two_sets_s'] / res['naive_diff_s']:.1f}x of it)")  # fmt: skip
    if not args.skip_scipy:
        res["scipy_dense_mwu_s"], _ = timed(lambda: scipy_diff(ps), 1)
        print(f"  scipy mannwhitneyu, dense, all funcs  {res['scipy_dense_mwu_s']:6.3f} s   "
              f"({res['scipy_dense_mwu_s'] / res['diff_all_tested_s']:.1f}x the all-tested cl.diff)")  # fmt: skip

    # ---- others, for the record
    res["top_by_task_s"], _ = timed(lambda: top(ps, 20, group_by="task_name"), max(1, args.repeat // 2))
    res["category_shares_s"], _ = timed(lambda: category_shares(ps), max(1, args.repeat // 2))
    res["call_tree_s"], _ = timed(lambda: call_tree(ps), max(1, args.repeat // 2))
    print("\nothers")
    print(f"  top(20, group_by='task_name')  {res['top_by_task_s']:6.3f} s")
    print(f"  category_shares()              {res['category_shares_s']:6.3f} s")
    print(f"  call_tree() (edge totals cached) {res['call_tree_s']:6.3f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
