"""Per-task profiles on concurrent pools (issue #13): how many tasks are profiled, whether a profile holds another
task's functions, the batch time with capture on and off, and the cost of the greenlet switch hook.

    scripts/dev bench bench_green_pools                       # gevent, eventlet, threads; needs Redis
    scripts/dev bench bench_green_pools --root /tmp/checkout  # the same against another checkout (e.g. main)

Each run starts ``celery -A tests.capture.capapp worker -P POOL -c 20`` from ``--root`` (capture switched on with
``--celerylab-dir``, or not at all), sends 40 ``captest.yield_a`` and 40 ``captest.yield_b`` tasks alternately
(each calls its own helper 100 times with a 2 ms ``time.sleep`` after each call, so tasks interleave), waits for
every result and then for the files.  ``--root`` must hold ``tests/capture/{capapp,tasks_common}.py`` of this
checkout (copy them into another checkout to compare).
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROKER = "redis://127.0.0.1:6379/0"


def run_worker(root: str, pool: str, conc: int, n_each: int, capture: bool) -> dict[str, object]:
    from celery import Celery

    d = tempfile.mkdtemp(prefix="bench-green-")
    queue, host = f"bench-{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    env = {**os.environ, "PYTHONPATH": root, "CAPTEST_QUEUE": queue, "CAPTEST_BROKER": BROKER}
    argv = [sys.executable, "-m", "celery", "-A", "tests.capture.capapp", "worker", "-n", host, "-Q", queue,
            "-l", "WARNING", "--without-mingle", "--without-gossip", "--without-heartbeat", "-P", pool,
            "-c", str(conc)] + (["--celerylab-dir", d] if capture else [])  # fmt: skip
    with open(os.path.join(d, "worker.log"), "wb") as log:
        proc = subprocess.Popen(argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = Celery("bench", broker=BROKER, backend=BROKER, set_as_current=False)
    try:
        t0 = time.monotonic()
        while not client.control.ping(destination=[host], timeout=0.3):
            if time.monotonic() - t0 > 60 or proc.poll() is not None:
                raise SystemExit(f"worker did not start: see {d}/worker.log")
        client.send_task("captest.ok", args=(1,), queue=queue).get(timeout=60)  # warm
        t0 = time.monotonic()
        sent = []
        for _ in range(n_each):
            sent.append(("a", client.send_task("captest.yield_a", args=(100, 0.002), queue=queue)))
            sent.append(("b", client.send_task("captest.yield_b", args=(100, 0.002), queue=queue)))
        for _, r in sent:
            r.get(timeout=300)
        wall = time.monotonic() - t0
        kinds = {r.id: k for k, r in sent}
        time.sleep(3)  # the postrun writes follow the results
        profs = [f for f in os.listdir(d) if f.startswith("captest.yield_") and f.endswith(".prof")]
        mixed = entry_not_one = 0
        for f in profs:
            kind = kinds[f.split(".")[2]]
            stats = {k[2]: v for k, v in pstats.Stats(os.path.join(d, f)).stats.items()}
            mixed += ("step_b" if kind == "a" else "step_a") in stats
            entry = stats.get(f"yield_{kind}")
            entry_not_one += entry is None or entry[:2] != (1, 1)
        return {"root": root, "pool": pool, "c": conc, "tasks": len(sent), "capture": capture,
                "batch_wall_s": round(wall, 2), "profiled": len(profs), "with_other_tasks_functions": mixed,
                "entry_not_one_call": entry_not_one}  # fmt: skip
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        client.close()
        shutil.rmtree(d, ignore_errors=True)


def switch_cost(n: int = 200_000) -> dict[str, float]:
    """ns per greenlet switch: no hook; hook installed, nothing profiled; both greenlets profiled."""
    import greenlet

    sys.path.insert(0, str(ROOT))
    from celerylab.capture import _profile

    def once(profiled: bool, hook: bool) -> float:
        main = greenlet.getcurrent()

        def body() -> None:
            prof = _profile.start() if profiled else None
            for _ in range(n):
                main.switch()
            if prof is not None:
                _profile.stop(prof)

        previous = greenlet.gettrace()
        if hook:
            _profile._ensure_tracer()
        else:
            greenlet.settrace(None)
        try:
            g1, g2 = greenlet.greenlet(body), greenlet.greenlet(body)
            t = time.perf_counter()
            while not (g1.dead and g2.dead):
                for g in (g1, g2):
                    if not g.dead:
                        g.switch()
            return (time.perf_counter() - t) / (4 * n) * 1e9
        finally:
            greenlet.settrace(previous)

    return {
        label: round(min(once(p, h) for _ in range(3)))
        for label, p, h in (
            ("no_hook_ns", False, False),
            ("hook_nothing_profiled_ns", False, True),
            ("hook_both_profiled_ns", True, True),
        )
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(ROOT))
    ap.add_argument("--pools", default="gevent,eventlet,threads")
    ap.add_argument("-c", type=int, default=20)
    ap.add_argument("--each", type=int, default=40)
    args = ap.parse_args()
    for pool in args.pools.split(","):
        for capture in (False, True):
            print(json.dumps(run_worker(args.root, pool, args.c, args.each, capture)), flush=True)
    print(json.dumps({"greenlet_switch": switch_cost()}), flush=True)


if __name__ == "__main__":
    main()
