"""Worker throughput with capture: tasks/s of a real worker over Redis, uncaptured vs captured at several rates.

    scripts/dev bench bench_throughput                       # prefork (and gevent when installed), 3 task sizes
    scripts/dev bench bench_throughput --pools prefork --rounds 3 --rates 0.01

One worker process runs the tasks (``-P prefork -c 1``; ``-P gevent -c 1``), so tasks/s is the worker's own rate, not
the machine's parallelism.  Capture is switched on and off *inside the running worker* between rounds (a control
task installs or uninstalls it in the process that runs the tasks), so every configuration shares the process, its
caches and the machine's load of the moment; rounds alternate the order.  For each task size (trivial, 1 ms of
CPU, 20 ms of CPU) and sample rate, a fixed batch of tasks is queued while the worker does not consume (remote
control ``cancel_consumer``), then timed from ``add_consumer`` until the last result arrives, so the producer's own
work does not compete with the worker on the machine's cores (prefork; ``--prequeue``: the gevent worker gets its
batch while it runs, as its consumer restarted by ``add_consumer`` drains a full queue slowly); the
printed ratio is the median over rounds of (captured tasks/s) / (uncaptured tasks/s) of the same round pair, next
to the same ratio per CPU second of the worker's processes (less sensitive to the rest of the machine).
Target: at 1 % sampling >= 99 % of the uncaptured rate for the 1 ms task.  Rate 0 gives an A/A row (uncaptured against
uncaptured: the spread and bias of the method itself); a rate below 1e-6 installs capture that never samples.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BROKER = "redis://127.0.0.1:6379/0"

APP_SOURCE = '''
import os, time
from celery import Celery
app = Celery("throughput", broker=os.environ["BENCH_BROKER"], backend=os.environ["BENCH_BROKER"])
app.conf.update(broker_connection_retry_on_startup=True, task_default_queue=os.environ["BENCH_QUEUE"],
                worker_hijack_root_logger=False, result_expires=600,
                worker_prefetch_multiplier=int(os.environ.get("BENCH_PREFETCH", "4")))
_capture = []

@app.task(name="tp.trivial")
def trivial():
    return 1

@app.task(name="tp.cpu")
def cpu(ms):
    end = time.thread_time() + ms / 1000.0
    n = 0
    while time.thread_time() < end:
        n += 1
    return n

@app.task(name="tp.capture", bind=True)
def capture(self, directory, rate):
    """Install capture (rate > 0) or uninstall it, in the process that runs the tasks.  A deployed capture is
    installed at worker start, before the worker builds its tasks' tracers, so a profile ends with the task body;
    installed mid-run it cannot (the tracers hold the task's run from before): the tracers are built again here, as
    the worker would have built them after a capture installed at start."""
    import celerylab.capture as c
    from celery.app.trace import build_tracer
    while _capture:
        _capture.pop().uninstall()
    if directory:
        _capture.append(c.install(app, directory, sample_rate=rate, tasks="tp.trivial,tp.cpu"))
    for name in ("tp.trivial", "tp.cpu"):
        task = app.tasks[name]
        task.__trace__ = build_tracer(name, task, app.loader, self.request.hostname, app=app)
    return os.getpid()
'''

KINDS = {"trivial": ("tp.trivial", ()), "1ms": ("tp.cpu", (1.0,)), "20ms": ("tp.cpu", (20.0,))}


#: two-sided 97.5 % quantiles of Student's t for n - 1 degrees of freedom (n = pairs), for the 95 % intervals
_T975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23, 11: 2.20,
         12: 2.18, 13: 2.16, 14: 2.14, 15: 2.13, 16: 2.12, 17: 2.11, 18: 2.10, 19: 2.09, 20: 2.09}  # fmt: skip


def _mean_ci(values: list[float]) -> list[float]:
    """Mean of the pair ratios and its 95 % confidence interval (Student's t; pairs are independent rounds)."""
    m = statistics.fmean(values)
    if len(values) < 2:
        return [m, float("nan"), float("nan")]
    half = _T975.get(len(values) - 1, 1.96) * statistics.stdev(values) / len(values) ** 0.5
    return [m, m - half, m + half]


def _ci_text(values: list[float]) -> str:
    m, lo, hi = _mean_ci(values)
    return f"{100 * m:.1f} %, 95 % CI {100 * lo:.1f}-{100 * hi:.1f}"


def _group_cpu(pgid: int) -> float:
    """utime + stime of every process in the worker's process group (/proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run_pool(pool: str, tmp: Path, rates: list[float], rounds: int, batch: dict[str, int],
             kinds: list[str] | None = None, prequeue: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    kinds = kinds or list(KINDS)
    from celery import Celery

    queue = f"tp-{pool}-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERYLAB_")}
    env.update(BENCH_BROKER=BROKER, BENCH_QUEUE=queue, PYTHONPATH=f"{tmp}:{ROOT}")
    host = f"tp-{pool}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    argv = [sys.executable, "-m", "celery", "-A", "tpapp", "worker", "-P", pool, "-c", "1", "-n", host, "-Q", queue,
            "-l", "WARNING", "--without-mingle", "--without-gossip", "--without-heartbeat"]  # fmt: skip
    log_path = tmp / f"worker-{pool}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = Celery("tp-client", broker=BROKER, backend=BROKER, set_as_current=False)
    profiles = tmp / f"profiles-{pool}"

    def switch(rate: float) -> None:
        r = client.send_task("tp.capture", args=(str(profiles) if rate > 0 else None, rate), queue=queue)
        r.get(timeout=120)

    def consume(on: bool) -> None:
        """Start or stop the worker consuming the queue (remote control), and wait until it says it did."""
        if on:
            replies = client.control.add_consumer(queue, destination=[host], reply=True, timeout=30)
        else:
            replies = client.control.cancel_consumer(queue, destination=[host], reply=True, timeout=30)
        if not replies:
            raise RuntimeError(f"{pool} worker did not answer the {'add' if on else 'cancel'}_consumer command")

    def one_round(kind: str) -> tuple[float, float]:
        """The batch is queued while the worker does not consume, so the producer's own CPU use does not overlap
        the timed part; then the worker consumes it, and the round ends when the last task's result arrives (one
        worker process runs tasks in queue order)."""
        name, args = KINDS[kind]
        n = batch[kind]
        if not prequeue:  # sent while the worker consumes: the producer shares the cores with the worker
            cpu0, t0 = _group_cpu(proc.pid), time.perf_counter()
            results = [client.send_task(name, args=args, queue=queue) for _ in range(n)]
        else:
            consume(False)
            results = [client.send_task(name, args=args, queue=queue) for _ in range(n)]
            cpu0, t0 = _group_cpu(proc.pid), time.perf_counter()
            consume(True)
        results[-1].get(timeout=600)
        rate = n / (time.perf_counter() - t0), n / max(_group_cpu(proc.pid) - cpu0, 1e-9)
        for r in results:  # every task ran (and none failed)
            r.get(timeout=600)
        return rate

    out = []
    try:
        deadline = time.monotonic() + 60
        warm = client.send_task("tp.trivial", queue=queue)
        while not warm.ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{pool} worker did not start: see {log_path}")
            time.sleep(0.02)
        for kind in kinds:
            one_round(kind)  # warm-up
            for rate in rates:  # rate 0: an A/A row, uncaptured against uncaptured (the method's own bias/noise)
                pairs = []
                for i in range(rounds):
                    got = {}
                    for side in ("off", "on") if i % 2 == 0 else ("on", "off"):
                        switch(rate if side == "on" else 0.0)
                        got[side] = one_round(kind)
                    pairs.append((got["off"], got["on"]))
                switch(0.0)
                wall = [on[0] / off[0] for off, on in pairs]
                cpu = [on[1] / off[1] for off, on in pairs]
                row = {
                    "pool": pool, "task": kind, "rate": rate, "rounds": rounds, "batch": batch[kind],
                    "prequeued": prequeue,
                    "uncaptured_tasks_per_s": statistics.median(off[0] for off, _ in pairs),
                    "captured_tasks_per_s": statistics.median(on[0] for _, on in pairs),
                    "wall_ratio": statistics.median(wall), "cpu_ratio": statistics.median(cpu),
                    "wall_ratio_range": [min(wall), max(wall)],
                    "wall_ratio_mean_ci95": _mean_ci(wall), "cpu_ratio_mean_ci95": _mean_ci(cpu),
                }  # fmt: skip
                out.append(row)
                label = "A/A" if rate == 0 else ("out" if rate < 1e-6 else f"{100 * rate:.1f} %")  # out: never sampled
                print(
                    f"  {pool:8} {kind:8} {label:>8}   {row['uncaptured_tasks_per_s']:8.1f} -> "
                    f"{row['captured_tasks_per_s']:8.1f} tasks/s   {100 * row['wall_ratio']:6.1f} % wall "
                    f"(range {100 * min(wall):.1f}-{100 * max(wall):.1f}; mean {_ci_text(wall)})   "
                    f"{100 * row['cpu_ratio']:6.1f} % per worker CPU second (mean {_ci_text(cpu)})",
                    flush=True,
                )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        with client.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
        client.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pools", default="prefork,gevent", help="comma-separated pools (gevent skipped if missing)")
    p.add_argument("--rates", default="0.01,0.1,1", help="comma-separated sample rates")
    p.add_argument("--rounds", type=int, default=5, help="alternating pairs of rounds per configuration")
    p.add_argument("--batch", default="trivial=400,1ms=300,20ms=60", help="tasks per round, per task size")
    p.add_argument("--tasks", default=",".join(KINDS), help=f"comma-separated task sizes of {', '.join(KINDS)}")
    p.add_argument(
        "--prequeue",
        default="prefork",
        help="pools whose batches are queued before the worker consumes "
        "them (others get them while they run: gevent's Redis consumer, restarted by add_consumer, takes "
        "~12 ms per task from a full queue here)",
    )
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)
    rates = [float(x) for x in args.rates.split(",")]
    batch = {k: int(v) for k, v in (item.split("=") for item in args.batch.split(","))}
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    print("  pool     task       rate    uncaptured -> captured            ratio (median of pairs)")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as d:
        tmp = Path(d)
        (tmp / "tpapp.py").write_text(APP_SOURCE)
        for pool in args.pools.split(","):
            if pool == "gevent":
                try:
                    import gevent  # noqa: F401
                except ImportError:
                    print("  gevent: not installed, skipped")
                    continue
            rows += run_pool(pool, tmp, rates, args.rounds, batch, args.tasks.split(","),
                             prequeue=pool in args.prequeue.split(","))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
