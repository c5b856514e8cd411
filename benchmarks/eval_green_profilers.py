"""Option evaluation for per-task profiles under gevent (issue #13): celerylab's per-greenlet cProfile against yappi
with its greenlet backend and per-task tags, on the same workload, without celery.

    pip install yappi gevent   # yappi is NOT a celerylab dependency: use a scratch virtualenv
    python benchmarks/eval_green_profilers.py none|cprofile|yappi

80 tasks on a gevent pool of 20, each calling its own helper 100 times with a 2 ms sleep after each call, plus one
recursive ``fib(10)``.  Prints the batch wall time, whether any profile holds the other kind's helper, whether the
entry function is one call, and ``fib``'s (primitive, total) call counts as ``pstats`` reads them from the file
(cProfile: ``(1, 177)``; yappi's pstat export puts them the other way round).
"""

# ruff: noqa
from gevent import monkey

monkey.patch_all()
import gevent, gevent.pool, marshal, os, pstats, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
mode = sys.argv[1]
N_EACH, TIMES = 40, 100
d = tempfile.mkdtemp()


def step_a():
    return 1


def step_b():
    return 2


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def entry(step):
    t = fib(10) * 0
    for _ in range(TIMES):
        t += step()
        time.sleep(0.002)
    return t


if mode == "cprofile":
    import importlib.util

    spec = importlib.util.spec_from_file_location("_profile", os.path.join(ROOT, "celerylab", "capture", "_profile.py"))
    _profile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(_profile)
if mode == "yappi":
    import yappi

    yappi.set_context_backend("greenlet")
    yappi.set_clock_type("wall")
    yappi.set_tag_callback(lambda: getattr(gevent.getcurrent(), "tag", 0))
    yappi.start()
done = []


def task(i, kind):
    step = step_a if kind == "a" else step_b
    if mode == "cprofile":
        p = _profile.start()
        entry(step)
        _profile.stop(p)
        open(f"{d}/{i}.prof", "wb").write(_profile.dump(p))
    elif mode == "yappi":
        g = gevent.getcurrent()
        g.tag = i + 1
        entry(step)
        st = yappi.get_func_stats(filter={"tag": i + 1})
        st.save(f"{d}/{i}.prof", type="pstat")
    else:
        entry(step)
    done.append((i, kind))


pool = gevent.pool.Pool(20)
t0 = time.perf_counter()
for i in range(2 * N_EACH):
    pool.spawn(task, i, "ab"[i % 2])
pool.join()
wall = time.perf_counter() - t0
bad = entry_bad = prim_bad = 0
if mode != "none":
    for i, kind in done:
        st = {k[2]: v for k, v in pstats.Stats(f"{d}/{i}.prof").stats.items()}
        own, other = ("step_a", "step_b") if kind == "a" else ("step_b", "step_a")
        bad += other in st
        e = st.get("entry")
        entry_bad += e is None or e[:2] != (1, 1)
        prim_bad += st.get(own, (0, 0))[:2] != (TIMES, TIMES)
fibs = set()
if mode != "none":
    for i, kind in done:
        st = {k[2]: v for k, v in pstats.Stats(f"{d}/{i}.prof").stats.items()}
        fibs.add(st["fib"][:2])
print(
    mode,
    f"fib (primitive, total) calls {sorted(fibs)}",
    f"wall {wall:.2f}s",
    f"tasks {len(done)}",
    f"with other's functions {bad}",
    f"entry not 1 call {entry_bad}",
    f"own helper not {TIMES} calls {prim_bad}",
)
