"""Scale-out benchmark: ingest throughput on a Dask LocalCluster (1 and 2 worker processes) and query latency on
the dataset, next to the in-memory path (cl.load, ProfileSet) on the same files, printed as ratios of this run.

    scripts/dev bench bench_scale                 # 1 000 profiles
    scripts/dev bench bench_scale --n 10000

The corpus is celerylab.testing.write_corpus (synthetic profiles of 500 functions / ~1 000 edges each, two runs,
five tasks), written once per --n under --dir.  Every timing is one run (ingest writes a fresh dataset each
time); queries are timed on a fresh Dataset / a fresh ProfileSet (nothing cached), best of --repeat.  The dataset
is on local disk: object-storage latency is not measured here.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_load import best  # the same timing rule as the load benchmark

import celerylab as cl
from celerylab.profileset import ProfileSet
from celerylab.scale import ingest, local_cluster
from celerylab.testing import write_corpus


def corpus(folder: Path, n: int) -> None:
    marker = folder / f".n{n}"
    if marker.exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    write_corpus(str(folder), n, seed=7, runs=("baseline", "candidate"))
    marker.touch()
    print(f"  generated {n} profiles in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="profiles in the corpus (default 1000)")
    ap.add_argument("--dir", default="/tmp/celerylab-bench-scale", help="where the corpus and datasets go")
    ap.add_argument("--repeat", type=int, default=3, help="query timings: best of N")
    ap.add_argument("--chunk-size", type=int, default=64)
    ap.add_argument("--workers", default="1,2", help="worker counts to ingest with (queries run on the last)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    root = Path(args.dir)
    src = root / f"corpus-{args.n}"
    corpus(src, args.n)
    from distributed import Client

    rows = []
    ingest_s = {}
    counts = [int(w) for w in args.workers.split(",")]
    for workers in counts:
        dataset = root / f"dataset-{args.n}-w{workers}"
        shutil.rmtree(dataset, ignore_errors=True)
        with local_cluster(workers) as cluster, Client(cluster) as client:
            rep = ingest(str(src), str(dataset), scheduler=client, chunk_size=args.chunk_size, progress=False)
            ingest_s[workers] = rep.seconds
            rows.append(
                (f"ingest, {workers} Dask worker(s)", rep.seconds, f"{rep.profiles / rep.seconds:,.0f} profiles/s")
            )
            if workers == counts[-1]:
                t_open = best(lambda c=client, d=dataset: len(cl.open_dataset(str(d), scheduler=c)), args.repeat)

                def top(c=client, d=dataset):
                    return cl.open_dataset(str(d), scheduler=c).top(20)

                def diff(c=client, d=dataset):
                    return cl.open_dataset(str(d), scheduler=c).diff(split_by="run")

                def summary(c=client, d=dataset):
                    return cl.open_dataset(str(d), scheduler=c).task_summary()

                t_top = best(top, args.repeat)
                t_diff = best(diff, args.repeat)
                t_sum = best(summary, args.repeat)
                t_top_sub = best(lambda c=client, d=dataset: cl.open_dataset(str(d), scheduler=c)
                                 .where(task_name="orders.process").top(20), args.repeat)  # fmt: skip
    t0 = time.perf_counter()
    ps = cl.load(str(src), cache=False, jobs=1, progress=False)
    load1 = time.perf_counter() - t0
    t0 = time.perf_counter()
    ps = cl.load(str(src), cache=False, jobs=2, progress=False)
    load2 = time.perf_counter() - t0
    rows.append(("cl.load jobs=1 (in memory)", load1, f"{len(ps) / load1:,.0f} profiles/s"))
    rows.append(("cl.load jobs=2 (in memory)", load2, f"{len(ps) / load2:,.0f} profiles/s"))
    m_top = best(lambda: ProfileSet.of(ps).top(20), args.repeat)
    m_diff = best(lambda: ProfileSet.of(ps).diff(split_by="run"), args.repeat)
    m_sum = best(lambda: ProfileSet.of(ps).task_summary(), args.repeat)
    m_top_sub = best(lambda: ProfileSet.of(ps).where(task_name="orders.process").top(20), args.repeat)
    rows += [
        ("open_dataset (manifest + listing)", t_open, ""),
        (f"dataset top(20), on the cluster ({counts[-1]} workers)", t_top, f"{t_top / m_top:.1f}x the in-memory top"),
        ("dataset where(task).top(20)", t_top_sub, f"{t_top_sub / m_top_sub:.1f}x in memory"),
        ("dataset diff(split_by=run), materialised", t_diff, f"{t_diff / m_diff:.1f}x the in-memory diff"),
        ("dataset task_summary()", t_sum, f"{t_sum / m_sum:.1f}x in memory"),
        ("ProfileSet top(20)", m_top, ""),
        ("ProfileSet where(task).top(20)", m_top_sub, ""),
        ("ProfileSet diff(split_by=run)", m_diff, ""),
        ("ProfileSet task_summary()", m_sum, ""),
    ]
    print(f"celerylab bench_scale: {len(ps):,} profiles, {len(ps.stats):,} stat rows, {len(ps.edges):,} edges; "
          f"LocalCluster processes, 1 thread each; dataset on local disk")  # fmt: skip
    for name, secs, note in rows:
        print(f"  {name:<44} {secs:9.2f} s   {note}")
    if 1 in ingest_s and 2 in ingest_s:
        print(f"  ingest speed-up 2 vs 1 worker: {ingest_s[1] / ingest_s[2]:.2f}x")
    last = counts[-1]
    print(f"  ingest ({last} workers) vs cl.load jobs=2: {ingest_s[last] / load2:.2f}x the time")


if __name__ == "__main__":
    main()
