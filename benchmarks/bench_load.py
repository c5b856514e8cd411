"""Load benchmark: celerylab.load vs the floor of bare marshal.load, vs pstats, jobs=1/2, cache re-open, peak RSS.

    scripts/dev bench bench_load            # 1 000 profiles for the timings, 10 000 for peak RSS
    scripts/dev bench bench_load --n 300 --rss-n 2000

Every ratio is against a baseline measured in the same run on the same files (warm page cache: each timing
is the best of --repeat runs after one untimed read of every file).  Targets:
jobs=1 <= 1.3x the marshal floor; jobs=2 >= 1.6x faster than the floor; re-open >= 20x faster than the first
load; 10 000 profiles in <= 1 GB peak RSS.
"""

from __future__ import annotations

import argparse
import gc
import json
import marshal
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import celerylab as cl
from celerylab.testing import write_corpus


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def marshal_floor(paths: list[str]) -> None:
    for p in paths:
        with open(p, "rb") as f:
            marshal.load(f)


def marshal_loads_floor(paths: list[str]) -> None:
    for p in paths:
        with open(p, "rb") as f:
            marshal.loads(f.read())


def corpus(folder: Path, n: int) -> list[str]:
    marker = folder / f".n{n}"
    if marker.exists():
        return sorted(str(p) for p in folder.glob("*.prof"))
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    paths = write_corpus(str(folder), n, seed=7, runs=("baseline", "candidate"))
    marker.touch()
    print(f"  generated {n} profiles in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return sorted(paths)


def rss_child(folder: str, jobs: int) -> dict:
    code = (
        "import json, resource, warnings, celerylab as cl\n"
        "warnings.simplefilter('ignore')\n"
        f"ps = cl.load({folder!r}, jobs={jobs}, cache=False, progress=False)\n"
        "rows = (len(ps.stats), len(ps.edges))\n"
        "mem = sum(df.memory_usage(deep=False).sum() for df in (ps.stats, ps.edges))\n"
        "from celerylab.core import parse\n"
        "def hwm(pid):\n"
        "    for line in open(f'/proc/{pid}/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1])\n"
        "    return 0\n"
        "# the parser processes are children of the forkserver and stay up for reuse: their own peak (VmHWM)\n"
        "kids = max([hwm(p) for p in (parse._POOL._processes if parse._POOL else ())], default=0)\n"
        "print(json.dumps({'peak_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 'child_peak_kb': kids,"
        " 'profiles': len(ps), 'stats_rows': rows[0], 'edge_rows': rows[1], 'frame_bytes': int(mem)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def fresh_first_load(folder: str, jobs: int) -> float:
    """Seconds of the first ``cl.load`` in a new process: it includes starting the parser processes."""
    code = (
        "import time, warnings, celerylab as cl\n"
        "warnings.simplefilter('ignore')\n"
        "import celerylab.core.load\n"
        "t = time.perf_counter()\n"
        f"cl.load({folder!r}, jobs={jobs}, cache=False, progress=False)\n"
        "print(time.perf_counter() - t)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="profiles for the timing runs")
    ap.add_argument("--rss-n", type=int, default=10000, help="profiles for the peak-RSS run (0: skip)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "celerylab-bench-load"))
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    root = Path(args.dir)
    paths = corpus(root / f"n{args.n}", args.n)
    marshal_floor(paths)  # warm the page cache

    res: dict[str, float] = {}
    res["marshal_floor_s"] = best(lambda: marshal_floor(paths), args.repeat)
    res["marshal_loads_floor_s"] = best(lambda: marshal_loads_floor(paths), args.repeat)
    res["pstats_s"] = best(lambda: pstats.Stats(*paths), 1)
    res["jobs1_s"] = best(lambda: cl.load(paths[0].rsplit("/", 1)[0], jobs=1, cache=False, progress=False), args.repeat)
    res["jobs2_s"] = best(lambda: cl.load(paths[0].rsplit("/", 1)[0], jobs=2, cache=False, progress=False), args.repeat)
    res["jobs2_fresh_process_s"] = sorted(fresh_first_load(paths[0].rsplit("/", 1)[0], 2) for _ in range(3))[1]
    cache_dir = tempfile.mkdtemp(prefix="celerylab-bench-cache-")
    try:
        t0 = time.perf_counter()
        cl.load(root / f"n{args.n}", jobs=2, cache=cache_dir, progress=False)
        res["first_load_with_cache_write_s"] = time.perf_counter() - t0
        res["reopen_s"] = best(
            lambda: cl.load(root / f"n{args.n}", jobs=2, cache=cache_dir, progress=False), args.repeat
        )
        # one new file: only it is parsed
        extra = write_corpus(str(root / f"n{args.n}"), 1, seed=99)
        t0 = time.perf_counter()
        ps = cl.load(root / f"n{args.n}", jobs=2, cache=cache_dir, progress=False)
        res["reopen_plus_one_new_s"] = time.perf_counter() - t0
        assert len(ps) == args.n + 1
        for p in extra:
            os.remove(p)
            os.remove(p[: -len(".prof")] + ".json")
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)

    floor = res["marshal_floor_s"]
    print(f"\ncelerylab load benchmark: {args.n} profiles (~500 functions, ~1000 edges each), {os.cpu_count()} CPUs")
    rows = [
        ("bare marshal.load (floor)", floor, "1.00x floor"),
        ("marshal.loads(f.read())", res["marshal_loads_floor_s"], f"{res['marshal_loads_floor_s'] / floor:.2f}x floor"
         "   (the stricter floor: what celerylab's parser itself does)"),
        ("pstats.Stats(*files)", res["pstats_s"], f"{res['pstats_s'] / floor:.2f}x floor"),
        ("cl.load jobs=1", res["jobs1_s"], f"{res['jobs1_s'] / floor:.2f}x floor   (target <= 1.3x); "
         f"{res['jobs1_s'] / res['marshal_loads_floor_s']:.2f}x the stricter floor"),
        ("cl.load jobs=2", res["jobs2_s"], f"{floor / res['jobs2_s']:.2f}x faster than floor   (target >= 1.6x)"),
        ("first jobs=2 load, new process", res["jobs2_fresh_process_s"],
         "median of 3; includes starting the parser processes (reused by later loads)"),
        ("first load + cache write", res["first_load_with_cache_write_s"], ""),
        ("cache re-open", res["reopen_s"],
         f"{res['first_load_with_cache_write_s'] / res['reopen_s']:.1f}x faster than the first load   (target >= 20x);"
         f" {res['jobs2_s'] / res['reopen_s']:.1f}x faster than an uncached jobs=2 load"),
        ("re-open + 1 new file", res["reopen_plus_one_new_s"], ""),
    ]  # fmt: skip
    for name, t, note in rows:
        print(f"  {name:<28} {t * 1000:9.1f} ms   {note}")
    if args.rss_n:
        rss_paths = corpus(root / f"n{args.rss_n}", args.rss_n)
        r = rss_child(str(root / f"n{args.rss_n}"), 2)
        res["rss"] = r  # type: ignore[assignment]
        print(
            f"  peak RSS, {r['profiles']:,} profiles ({r['stats_rows']:,} stat rows, {r['edge_rows']:,} edges): "
            f"parent {r['peak_kb'] / 1024:.0f} MB, largest parser child {r['child_peak_kb'] / 1024:.0f} MB "
            f"(frames hold {r['frame_bytes'] / 2**20:.0f} MB)   (target <= 1024 MB)"
        )
        del rss_paths
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
