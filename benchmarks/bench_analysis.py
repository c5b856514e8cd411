"""Analysis benchmark on a synthetic corpus (default 10 000 profiles, half "baseline", half "candidate") and on a
corpus of real-world profiles of varied programs (``realworld_corpus.py``; A/B = alternate files).

    .venv/bin/python benchmarks/bench_analysis.py                       # both corpora (10 000 + 300 profiles)
    .venv/bin/python benchmarks/bench_analysis.py --n 2000 --repeat 3 --corpus synthetic
    .venv/bin/python benchmarks/bench_analysis.py --dir /tmp/celerylab-bench-load   # reuse bench_load's corpus

Targets: callers/callees of one function <= 20 ms on 10 000 profiles (~10 M edge rows); diff of two
5 000-profile runs with every function tested <= 1 s and faster than the dense scipy baseline; at ``--n 100000``
the default diff of the loaded set split by run (per task) <= 2 s, also with every function tested.  Every figure
is printed next to a baseline measured in the same run on the same data: callers/callees vs building the all-pairs
edge totals and filtering them (what a naive implementation does); diff vs a naive pandas ``groupby`` of per-task,
per-run means (no distributions, no test) and vs ``scipy.stats.mannwhitneyu`` over dense per-invocation matrices of
every function (the straightforward way to get the same p-values as the pooled, unstratified diff).  The synthetic
runs do not differ, so a default diff tests no function there: the headline is the diff with the relevance filters
off, every function tested.  Times are the median of ``--repeat`` runs after one warm-up.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realworld_corpus


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
    """Per task and function, the mean own time per invocation of each run (no distributions, no test): what the
    default diff (per task) computes first, done with a pandas merge and groupby."""
    s = ps.stats.merge(ps.profiles[["profile_id", "run", "task_name"]], on="profile_id")
    n = ps.profiles.groupby(["task_name", "run"], observed=True).size()
    tot = s.groupby(["task_name", "func_id", "run"], observed=True)["tottime"].sum()
    means = (tot / n.reindex(tot.index.droplevel("func_id")).to_numpy()).unstack("run").fillna(0.0)
    return means.assign(delta=means["candidate"] - means["baseline"])


def peak_rss_during(fn) -> tuple[float, float] | None:  # type: ignore[no-untyped-def]
    """(resident GB before ``fn``, peak GB while it ran): Linux only (the high-water mark is reset first)."""

    def status(field: str) -> float:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field)) / 2**20

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    before = status("VmRSS:")
    fn()
    return before, status("VmHWM:")


def scipy_diff(a: cl.ProfileSet, b: cl.ProfileSet) -> np.ndarray:
    """p-values of every function (by label) from scipy's Mann-Whitney U over dense (invocation x function)
    matrices, zeros where a function did not run: what cl.diff computes, done the straightforward way."""
    labels = [x.functions["label"].astype(str).to_numpy() for x in (a, b)]
    codes, uniq = pd.factorize(np.concatenate(labels))
    mats = []
    start = 0
    for x, lab in zip((a, b), labels):
        code = codes[start : start + len(lab)]
        start += len(lab)
        fcode = np.zeros(int(x.functions["func_id"].max()) + 1, dtype=np.int64)
        fcode[x.functions["func_id"].to_numpy()] = code
        ids = x.profiles["profile_id"].to_numpy()
        slot = np.full(int(ids.max()) + 1, -1)
        slot[ids] = np.arange(len(ids))
        s = x.stats
        pid = s["profile_id"].to_numpy()
        m = slot[pid] >= 0
        mat = np.zeros((len(ids), len(uniq)))
        np.add.at(mat, (slot[pid[m]], fcode[s["func_id"].to_numpy()[m]]), s["tottime"].to_numpy()[m])
        mats.append(mat)
    return stats.mannwhitneyu(mats[0], mats[1], axis=0, method="asymptotic").pvalue


def analyse(title: str, ps: cl.ProfileSet, a: cl.ProfileSet, b: cl.ProfileSet, args: argparse.Namespace,
            split_run: bool) -> dict[str, float]:  # fmt: skip
    res: dict[str, float] = {}
    print(f"\n==== {title}: {len(ps):,} profiles, {len(ps.stats):,} stat rows, {len(ps.edges):,} edge rows")
    # ---- callers / callees of one function: the one with the most callers
    e = ps.edges
    fid = int(np.bincount(e["callee_id"].to_numpy()).argmax())
    label = ps.functions["label"].iloc[fid]
    res["callers_s"], c = timed(lambda: callers(ps, fid), args.repeat)
    res["callees_s"], _ = timed(lambda: callees(ps, fid), args.repeat)
    res["callers_by_label_s"], _ = timed(lambda: callers(ps, label), args.repeat)
    if split_run:
        res["callers_split_run_s"], _ = timed(lambda: callers(ps, fid, split_by="run"), args.repeat)
    res["naive_callers_s"], _ = timed(lambda: naive_callers(ps, fid), max(1, args.repeat // 2))
    print(f"callers/callees of {label} ({len(c)} callers) over {len(e):,} edge rows")  # type: ignore[arg-type]
    print(f"  callers(func_id)          {res['callers_s'] * 1e3:8.1f} ms   (target <= 20 ms at 10 000 profiles)")
    print(f"  callees(func_id)          {res['callees_s'] * 1e3:8.1f} ms")
    print(f"  callers(label)            {res['callers_by_label_s'] * 1e3:8.1f} ms   (resolve included)")
    if split_run:
        print(f"  callers(split_by='run')   {res['callers_split_run_s'] * 1e3:8.1f} ms")
    print(f"  naive: all edge totals    {res['naive_callers_s'] * 1e3:8.1f} ms   "
          f"({res['naive_callers_s'] / res['callers_s']:.0f}x slower)")  # fmt: skip

    # ---- diff of the two halves
    res["diff_all_tested_s"], dall = timed(lambda: cl.diff(a, b, min_change=0.0, min_share=0.0), args.repeat)
    res["diff_two_sets_s"], d = timed(lambda: cl.diff(a, b), args.repeat)
    n_tested = int(dall["p_value"].notna().sum())  # type: ignore[index]
    print(f"diff: {len(a):,} vs {len(b):,} profiles, {len(d):,} functions")  # type: ignore[arg-type]
    print(f"  cl.diff(a, b), every function tested  {res['diff_all_tested_s']:6.3f} s   "
          f"({n_tested} Mann-Whitney tests; target <= 1 s)")  # fmt: skip
    print(f"  cl.diff(a, b) (default filters)       {res['diff_two_sets_s']:6.3f} s   "
          f"({int(d['p_value'].notna().sum())} tested; statuses {d['status'].value_counts().to_dict()})")  # type: ignore[index]  # fmt: skip
    if split_run:
        # one loaded set split by run, per task (the default grouping): the figure the 100 000-profile target is on
        ab = {"split_by": "run", "values": ("baseline", "candidate")}
        res["diff_split_s"], dt = timed(lambda: diff(ps, **ab), args.repeat)
        res["diff_split_all_tested_s"], dta = timed(lambda: diff(ps, **ab, min_change=0.0, min_share=0.0), args.repeat)
        res["naive_diff_s"], _ = timed(lambda: naive_diff(ps), args.repeat)
        peak = peak_rss_during(lambda: diff(ps, **ab, min_change=0.0, min_share=0.0))
        n_split = int(dta["p_value"].notna().sum())  # type: ignore[index]
        print(f"  diff(ps, split_by='run'), per task    {res['diff_split_s']:6.3f} s   ({len(dt):,} rows)")  # type: ignore[arg-type]
        print(f"  ... every function tested             {res['diff_split_all_tested_s']:6.3f} s   "
              f"({n_split} tests; target <= 2 s at 100 000 profiles)")  # fmt: skip
        print(f"  naive pandas groupby of per-task means (no stats) {res['naive_diff_s']:6.3f} s   (the all-tested "
              f"split diff = {res['diff_split_all_tested_s'] / res['naive_diff_s']:.1f}x of it)")  # fmt: skip
        if peak is not None:
            res["diff_split_rss_before_gb"], res["diff_split_rss_peak_gb"] = peak
            print(f"  peak RSS during the all-tested split diff {peak[1]:.2f} GB (+{peak[1] - peak[0]:.2f} GB over "
                  f"the {peak[0]:.2f} GB resident before)")  # fmt: skip
    # the same test as the scipy baseline: one unstratified Mann-Whitney per function over every invocation (pooled:
    # group_by=None; the default compares each function within each task)
    res["diff_all_tested_unstratified_s"], dun = timed(
        lambda: cl.diff(a, b, min_change=0.0, min_share=0.0, group_by=None, stratify=None), args.repeat
    )
    print(f"  ... pooled, stratify=None (the scipy test) {res['diff_all_tested_unstratified_s']:6.3f} s")
    if not args.skip_scipy:
        res["scipy_dense_mwu_s"], p = timed(lambda: scipy_diff(a, b), 1)
        ratio = res["scipy_dense_mwu_s"] / res["diff_all_tested_s"]
        ratio_un = res["scipy_dense_mwu_s"] / res["diff_all_tested_unstratified_s"]
        # the same p-values: cl.diff's unstratified ones against scipy's, per label
        labels = pd.factorize(np.concatenate([x.functions["label"].astype(str).to_numpy() for x in (a, b)]))[1]
        ref = pd.Series(np.where(np.isfinite(p), p, 1.0), index=labels)  # type: ignore[call-overload]
        got = dun.set_index("label")["p_value"].dropna()  # type: ignore[union-attr]
        common = got.index.intersection(ref.index)
        res["max_abs_p_difference"] = float(np.max(np.abs(got[common].to_numpy() - ref[common].to_numpy())))
        print(f"  scipy mannwhitneyu, dense, all funcs  {res['scipy_dense_mwu_s']:6.3f} s   (the same test in "
              f"cl.diff is {ratio_un:.1f}x faster; the all-tested per-task diff {ratio:.1f}x)")  # fmt: skip
        print(f"  p-values of the pooled unstratified diff vs scipy on {len(common)} functions: largest difference "
              f"{res['max_abs_p_difference']:.1e}")  # fmt: skip
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000, help="synthetic profiles (half per run)")
    ap.add_argument("--real-n", type=int, default=300, help="real-world profiles")
    ap.add_argument("--corpus", choices=("both", "synthetic", "real"), default="both")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "celerylab-bench-analysis"))
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--skip-scipy", action="store_true", help="skip the dense scipy baseline (slow)")
    args = ap.parse_args()
    print(f"celerylab analysis benchmark, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    out: dict[str, object] = {"load_average_before": os.getloadavg()}
    if args.corpus in ("both", "synthetic"):
        folder = corpus(Path(args.dir) / f"n{args.n}", args.n)
        t0 = time.perf_counter()
        ps = cl.load(str(folder), progress=False)
        print(f"loaded {len(ps):,} synthetic profiles in {time.perf_counter() - t0:.1f} s")
        a, b = ps.where(run="baseline"), ps.where(run="candidate")
        res = analyse("synthetic corpus", ps, a, b, args, split_run=True)
        # ---- others, for the record
        res["top_by_task_s"], _ = timed(lambda: top(ps, 20, group_by="task_name"), max(1, args.repeat // 2))
        res["category_shares_s"], _ = timed(lambda: category_shares(ps), max(1, args.repeat // 2))
        res["call_tree_s"], _ = timed(lambda: call_tree(ps), max(1, args.repeat // 2))
        print("others")
        print(f"  top(20, group_by='task_name')  {res['top_by_task_s']:6.3f} s")
        print(f"  category_shares()              {res['category_shares_s']:6.3f} s")
        print(f"  call_tree() (edge totals cached) {res['call_tree_s']:6.3f} s")
        out["synthetic"] = res
        del ps, a, b
    if args.corpus in ("both", "real"):
        folder = Path(args.dir) / f"real{args.real_n}"
        realworld_corpus.build(folder, args.real_n)
        ps = cl.load(str(folder), progress=False)
        half = (np.arange(len(ps)) % 2).astype(bool)
        out["real"] = analyse("real-world corpus (A/B = alternate files)", ps, ps.where(~half), ps.where(half), args,
                              split_run=False)  # fmt: skip
    out["load_average_after"] = os.getloadavg()
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
