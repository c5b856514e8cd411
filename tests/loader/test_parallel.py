"""Parallel loading in isolated processes (``isolate=True``) never forks the caller: no inherited connections, locks
or after-fork hooks, no hang."""

from __future__ import annotations

import os
import pstats
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import celerylab as cl
from celerylab.core import parse

from .conftest import make_set


def _port_open(port: int) -> bool:
    s = socket.socket()
    s.settimeout(0.5)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.mark.services
@pytest.mark.timeout(120)
def test_load_after_celery_and_kombu_connections_over_redis_and_rabbitmq(tmp_path):
    """After ``app.control.ping()`` over Redis, forked loader workers hung forever in kombu's after-fork hook."""
    for port, name in ((6379, "Redis"), (5672, "RabbitMQ")):
        if not _port_open(port):
            pytest.fail(f"{name} is not running on port {port} (scripts/dev test starts it)")
    from celery import Celery
    from kombu import Connection

    paths = make_set(tmp_path / "profiles", 40, with_sidecars=False)
    parse.shutdown_pool()  # the workers must start now, after the connections are open
    redis_app = Celery("t-redis", broker="redis://127.0.0.1:6379/15", backend="redis://127.0.0.1:6379/15")
    amqp_app = Celery("t-amqp", broker="amqp://guest:guest@127.0.0.1:5672//")
    conns = []
    try:
        assert redis_app.control.ping(timeout=0.3) == []  # no worker answers; the connection pool is now live
        assert amqp_app.control.ping(timeout=0.3) == []
        for url in ("redis://127.0.0.1:6379/15", "amqp://guest:guest@127.0.0.1:5672//"):
            conn = Connection(url)
            conn.ensure_connection(max_retries=1)
            conn.default_channel.queue_declare(queue="celerylab-test-parallel", auto_delete=True)
            conns.append(conn)
        for _ in range(2):  # the first load starts the workers, the second reuses them
            ps = cl.load(tmp_path / "profiles", jobs=4, cache=False, isolate=True)
            assert ps.profiles["path"].tolist() == paths
            assert ps.to_pstats_dict() == pstats.Stats(*paths).stats
        # the connections of the test process still work
        assert redis_app.control.ping(timeout=0.3) == []
        for conn in conns:
            assert conn.connected
    finally:
        for conn in conns:
            conn.release()
        redis_app.close()
        amqp_app.close()
        parse.shutdown_pool()


def test_worker_processes_are_started_once_and_reused(tmp_path):
    make_set(tmp_path, 24, with_sidecars=False)
    parse.shutdown_pool()
    cl.load(tmp_path, jobs=2, cache=False, isolate=True)
    pool = parse._POOL
    assert pool is not None
    first = set(pool._processes)
    cl.load(tmp_path, jobs=2, cache=False, isolate=True)
    assert parse._POOL is pool and set(pool._processes) == first
    assert os.getpid() not in first
    # not forks of the caller: children of the forkserver (or spawned), never of this process
    ppids = {int(Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[1]) for pid in first}
    assert os.getpid() not in ppids or parse._mp_context().get_start_method() == "spawn"
    parse.shutdown_pool()
    assert parse._POOL is None


@pytest.mark.timeout(120)
def test_a_script_without_a_main_guard_loads_in_parallel(tmp_path):
    """Spawned/forkserver workers must not re-run the caller's script (it has no ``if __name__`` guard)."""
    make_set(tmp_path / "profiles", 24, with_sidecars=False)
    script = tmp_path / "analyse.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import celerylab as cl
            print("script body ran", flush=True)
            ps = cl.load({str(tmp_path / "profiles")!r}, jobs=2, cache=False, isolate=True)
            print("loaded", len(ps), flush=True)
            """
        )
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=100, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["script body ran", "loaded 24"]


def test_a_load_with_another_number_of_jobs_replaces_the_pool_without_breaking_one_in_flight(tmp_path):
    import threading

    paths = make_set(tmp_path, 48, with_sidecars=False)
    ref = pstats.Stats(*paths).stats
    results: list[tuple[int, object]] = []

    def run(jobs: int) -> None:
        try:
            results.append((jobs, cl.load(tmp_path, jobs=jobs, cache=False, isolate=True).to_pstats_dict() == ref))
        except Exception as e:  # reported below
            results.append((jobs, e))

    threads = [threading.Thread(target=run, args=(j,)) for j in (2, 3, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results, key=lambda r: r[0]) == [(2, True), (2, True), (3, True), (3, True)]
    parse.shutdown_pool()


def test_a_worker_killed_between_loads_is_replaced(tmp_path):
    import signal
    import time

    paths = make_set(tmp_path, 32, with_sidecars=False)
    cl.load(tmp_path, jobs=2, cache=False, isolate=True)
    victim = next(iter(parse._POOL._processes))
    os.kill(victim, signal.SIGKILL)
    time.sleep(0.2)
    ps = cl.load(tmp_path, jobs=2, cache=False, isolate=True)
    assert ps.profiles["path"].tolist() == paths and not len(ps.errors)
    assert victim not in parse._POOL._processes
    parse.shutdown_pool()


def _my_shm_files() -> list[str]:
    return sorted(p for p in os.listdir(parse._SHM_DIR) if p.startswith(f"{parse._SHM_PREFIX}{os.getpid()}-"))


def test_workers_hand_columns_back_through_shared_memory_and_nothing_is_left_there(tmp_path, monkeypatch):
    assert parse._shm_usable()  # Linux: the path this machine takes
    make_set(tmp_path, n=40)
    seen: list[str] = []
    real = parse._from_shm

    def spy(packed):
        if "shm" in packed:
            seen.append(packed["shm"][0])
        return real(packed)

    monkeypatch.setattr(parse, "_from_shm", spy)
    ps = cl.load(tmp_path, jobs=2, cache=False, isolate=True)
    ref = cl.load(tmp_path, jobs=1, cache=False)
    assert len(seen) >= 2  # every chunk came back that way
    assert all(os.path.basename(p).startswith(f"{parse._SHM_PREFIX}{os.getpid()}-") for p in seen)
    assert _my_shm_files() == []
    for name in ("stats", "edges"):
        a, b = getattr(ps, name), getattr(ref, name)
        assert list(a.columns) == list(b.columns) and list(a.dtypes) == list(b.dtypes)
        assert all(a[c].equals(b[c]) for c in a.columns)
    assert ps.to_pstats_dict() == pstats.Stats(*ps.profiles["path"]).stats


def test_shared_memory_round_trip_keeps_dtypes_lengths_and_alignment():
    import numpy as np

    packed = {
        "funcs": [("a.py", 1, "f")],
        "outcomes": [],
        "stats": [np.arange(3, dtype=np.int32), np.array([], dtype=np.int64), np.array([0.1, -0.0, 3e300])],
        "edges": [np.arange(5, dtype=np.int32)[::2], np.array([2**40, -1], dtype=np.int64)],
    }
    out = parse._to_shm({**packed, "stats": list(packed["stats"]), "edges": list(packed["edges"])}, str(os.getpid()))
    assert "stats" not in out and len(_my_shm_files()) == 1
    back = parse._from_shm(out)
    assert _my_shm_files() == []  # unlinked once mapped
    for part in ("stats", "edges"):
        for x, y in zip(back[part], packed[part], strict=True):
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
            assert x.ctypes.data % 8 == 0


def test_a_load_that_fails_midway_leaves_no_shared_memory_behind(tmp_path, monkeypatch):
    make_set(tmp_path, n=40)
    calls = []

    def failing_take(result):
        calls.append(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        parse._run_parallel(parse._chunks(sorted(map(str, tmp_path.glob("*.prof"))), 2), 2,
                            parse.Progress(0, False), failing_take)  # fmt: skip
    assert calls == [1]
    assert _my_shm_files() == []


def test_the_shared_memory_of_a_dead_parent_is_removed_by_the_next_pool(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = Path(parse._SHM_DIR) / f"{parse._SHM_PREFIX}{int(dead.stdout)}-0123abcd"
    stale.write_bytes(b"x" * 64)
    parse.shutdown_pool()
    make_set(tmp_path, n=8)
    cl.load(tmp_path, jobs=2, cache=False, isolate=True)
    assert not stale.exists()


def test_a_parser_process_that_dies_leaves_no_shared_memory_behind(tmp_path, monkeypatch):
    # a dying worker breaks the pool, and the pool drops results that other workers had already written to
    # /dev/shm but not yet handed back: the load that lost them removes them, not only the parent's exit
    from celerylab.core import decode

    good = make_set(tmp_path, n=60, with_sidecars=False)
    for i in range(4):
        killer = tmp_path / f"{i:02d}-killer.prof"  # early in the order: other chunks are in flight when it dies
        killer.write_bytes(Path(good[0]).read_bytes())
        monkeypatch.setenv(decode.CRASH_ENV, str(killer))
        with pytest.warns(UserWarning, match="1 file"):
            ps = cl.load(tmp_path, jobs=2, cache=False, isolate=True)
        assert len(ps) == 60 + i
        assert _my_shm_files() == []
        monkeypatch.setenv(decode.CRASH_ENV, "")
        killer.rename(tmp_path / f"{i:02d}-was-killer.prof")
