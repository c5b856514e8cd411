"""The producer side: profiled publishing and queue wait, with real workers over Redis and RabbitMQ."""

from __future__ import annotations

import json
import os
import pstats
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

import celerylab as cl
from celerylab.capture import _timing, install_producer

from .conftest import AMQP, BROKER, CELERY, CELERYLAB, REPO

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _load(directory: Path) -> cl.ProfileSet:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return cl.load(directory, cache=False)


@pytest.fixture
def producer(tmp_path):
    """Producer capture in this (test) process, removed after the test."""
    caps = []

    def _install(**kw):
        cap = install_producer(tmp_path / "published", **kw)
        caps.append(cap)
        return cap

    yield _install
    for c in caps:
        c.uninstall()


@pytest.fixture(scope="module")
def solo(start_worker):
    """One solo worker over Redis (one task at a time: a queue forms behind a slow task)."""
    return start_worker("psolo", [*CELERY, "-A", "tests.capture.capapp", "worker", "-P", "solo",
                                  "--celerylab-dir", "{dir}", "--celerylab-sql", "0"])  # fmt: skip


@pytest.fixture(scope="module")
def rabbit(start_worker):
    """A solo worker over RabbitMQ (results in Redis)."""
    return start_worker("prabbit", [*CELERY, "-A", "tests.capture.capapp", "worker", "-P", "solo",
                                    "--celerylab-dir", "{dir}", "--celerylab-sql", "0"], broker=AMQP)  # fmt: skip


def _publish_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.publish.prof"))


def test_sampled_publishing_writes_profiles_that_load_exactly(solo, producer, tmp_path):
    # GIVEN producer capture in this process, and a worker
    cap = producer(sample_rate=1.0, run="p1")
    client = solo.client
    # WHEN tasks are published as an application would: send_task, a signature, delay on a task object, a group
    r1 = client.send_task("captest.ok", args=(3,), queue=solo.queue)
    r2 = client.signature("captest.ok", args=(4,), queue=solo.queue).apply_async()
    from celery import group

    g = group(client.signature("captest.ok", args=(i,), queue=solo.queue) for i in range(3)).apply_async()
    assert r1.get(timeout=30) == 3 and r2.get(timeout=30) == 6 and g.get(timeout=30) == [0, 0, 1]
    # THEN one profile per outermost publish: the group is one publish of three messages
    files = _publish_files(tmp_path / "published")
    assert len(files) == 3 == cap.counts.written == cap.counts.profiled
    ps = _load(tmp_path / "published")
    p = ps.profiles.set_index("task_id")
    assert set(p["role"].astype(str)) == {"producer"}
    assert p.loc[r1.id, "task_name"] == "captest.ok" and p.loc[r1.id, "publish_kind"] == "send_task"
    assert p.loc[r2.id, "publish_kind"] == "signature"
    assert p.loc[g.id, "task_name"] == "celery.group" and p.loc[g.id, "messages"] == 3
    assert (p["queue"].astype(str) == solo.queue).all() and (p["broker"].astype(str) == "redis").all()
    assert (p["message_bytes"] > 0).all() and (p["publish_s"] > 0).all() and (p["run"].astype(str) == "p1").all()
    # AND they load exactly: every total equals pstats on the same files
    assert ps.to_pstats_dict() == pstats.Stats(*map(str, files)).stats
    # AND the profile holds the publishing machinery (kombu's publish), not only our wrapper
    names = set(ps.functions.loc[ps.function_totals["func_id"], "name"])
    assert "publish" in names and "send_task" in names


def test_sampled_out_publishes_write_nothing_but_still_carry_the_timing_header(solo, producer, tmp_path):
    cap = producer(sample_rate=0.0)
    r = solo.client.send_task("captest.ok", args=(1,), queue=solo.queue)
    assert r.get(timeout=30) == 0
    _, meta = solo.files(r.id)
    assert cap.counts.sampled_out == 1 and cap.counts.written == 0
    assert not (tmp_path / "published").exists() or not _publish_files(tmp_path / "published")
    assert meta["role"] == "worker" and meta["published_at"] is not None and meta["producer"] == _timing.identity()


@pytest.fixture(scope="module")
def prefork1(start_worker):
    """A prefork worker with one pool process: its consumer keeps taking (prefetching) messages while it is busy."""
    return start_worker("pprefork", [*CELERY, "-A", "tests.capture.capapp", "worker", "-P", "prefork", "-c", "1",
                                     "--celerylab-dir", "{dir}", "--celerylab-sql", "0"])  # fmt: skip


@pytest.mark.parametrize(("pool", "held_in"), [("solo", "broker"), ("prefork1", "prefetch")])
def test_queue_wait_of_a_task_held_back_by_a_busy_worker(pool, held_in, producer, request):
    worker = request.getfixturevalue(pool)
    producer(sample_rate=0.0)  # the timing header only
    # GIVEN a worker with one execution slot, busy for 1.5 s
    busy = worker.send("captest.sleep", 1.5)
    time.sleep(0.2)  # the sleep has started
    # WHEN a quick task is published behind it
    quick = worker.send("captest.ok", 1)
    assert busy.get(timeout=30) == 1.5 and quick.get(timeout=30) == 0
    _, meta = worker.files(quick.id)
    # THEN its queue wait is the ~1.3 s it waited (tolerance: worker scheduling), nothing is an eta delay, and the
    # two parts add up to it
    assert 1.0 <= meta["queue_wait_s"] <= 2.5, meta
    assert meta.get("eta_delay_s") is None and meta["clock_skew_suspect"] is False
    assert meta["broker_wait_s"] + meta["prefetch_wait_s"] == pytest.approx(meta["queue_wait_s"], abs=0.01)
    # AND the split says where it waited: a solo worker does not read the broker while its task runs (the message
    # waits in the broker); a prefork consumer prefetches it at once and holds it until the pool process is free
    waited = {"broker": meta["broker_wait_s"], "prefetch": meta["prefetch_wait_s"]}
    other = "prefetch" if held_in == "broker" else "broker"
    assert waited[held_in] >= 1.0 and waited[other] < 0.5, meta
    # AND the busy task itself did not wait
    _, busy_meta = worker.files(busy.id)
    assert busy_meta["queue_wait_s"] < 0.5


def test_a_countdown_is_not_counted_as_queue_wait(solo, producer):
    producer(sample_rate=0.0)
    r = solo.client.send_task("captest.ok", args=(2,), queue=solo.queue, countdown=1.5)
    assert r.get(timeout=30) == 1
    _, meta = solo.files(r.id)
    assert 1.3 <= meta["eta_delay_s"] <= 1.7, meta
    assert meta["queue_wait_s"] < 0.5, meta  # waited only as long as it was asked to
    # run started after the eta, so the worker held it (prefetch) for about the countdown
    assert meta["prefetch_wait_s"] < 0.5


def test_over_rabbitmq(rabbit, producer, tmp_path):
    producer(sample_rate=1.0)
    r = rabbit.client.send_task("captest.ok", args=(5,), queue=rabbit.queue)
    assert r.get(timeout=30) == 10
    _, meta = rabbit.files(r.id)
    assert meta["queue_wait_s"] is not None and 0 <= meta["queue_wait_s"] < 5
    ps = _load(tmp_path / "published")
    assert ps.profiles["broker"].astype(str).tolist() == ["amqp"]
    assert ps.profiles["task_id"].tolist() == [r.id]


def _run_producer(out: Path, n: int, mode: str, queue: str, run: str) -> list[str]:
    """``celerylab run`` around a producer script that knows nothing of celerylab."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERYLAB_") or k == "CELERYLAB_CACHE_DIR"}
    env.update(PYTHONPATH=str(REPO), CAPTEST_QUEUE=queue, CAPTEST_BROKER=BROKER)
    cmd = [*CELERYLAB, "run", "--dir", str(out), "--run", run, "--tasks", "captest.*", "--",
           sys.executable, "-m", "tests.capture.producer_script", str(n), mode]  # fmt: skip
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_celerylab_run_profiles_an_unmodified_producer_and_diff_finds_the_planted_regression(solo, tmp_path):
    out = tmp_path / "producer"
    # GIVEN the same script, baseline publishing through the connection pool, candidate opening a connection
    # per publish (broker_pool_limit=0), each run under `celerylab run` (no change to the script)
    base = _run_producer(out / "baseline", 25, "shared", solo.queue, "baseline")
    cand = _run_producer(out / "candidate", 25, "fresh", solo.queue, "candidate")
    # THEN one profile per publish, named by the script's own task ids
    ps = _load(out)
    assert sorted(ps.profiles["task_id"]) == sorted(base + cand)
    assert set(ps.profiles["role"].astype(str)) == {"producer"}
    # AND the per-task diff of the producer profiles finds publishing slower in the candidate
    d = cl.diff(ps, split_by="run", by="task_name")
    row = d.set_index("label").loc["captest.ok (publish)"]  # publishing is its own task
    assert row["status"] == "slower" and row["ratio"] > 1.5, row
    # AND the functions that account for it are the connection set-up
    f = cl.diff(ps, split_by="run")
    slower = f.loc[f["status"].astype(str) == "slower", "label"].head(15).tolist()
    assert any("connect" in lbl or "establish_connection" in lbl for lbl in slower), slower
    # AND the CLI gate fails on it
    r = subprocess.run([*CELERYLAB, "diff", str(out), "--by", "run", "--per", "task", "--fail-on-regression", "20"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 3, r.stdout + r.stderr


def test_producer_capture_never_breaks_a_publish(solo, producer, tmp_path, monkeypatch):
    cap = producer(sample_rate=1.0)
    from celerylab.capture import _writer

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_writer, "write_pair", broken)
    r = solo.client.send_task("captest.ok", args=(2,), queue=solo.queue)
    assert r.get(timeout=30) == 1  # the publish went through
    assert cap.counts.errors == 1 and cap.counts.written == 0
    # AND an exception of the publish itself reaches the caller unchanged
    from kombu.exceptions import OperationalError

    bad = solo.client.__class__("bad", broker="redis://127.0.0.1:1/0", set_as_current=False)
    bad.conf.broker_connection_retry = False
    bad.conf.broker_connection_max_retries = 0
    with pytest.raises(OperationalError):
        bad.send_task("captest.ok", args=(1,), retry=False)


def test_producer_settings_from_django_and_the_environment(tmp_path):
    from celerylab.capture import _config

    assert _config.producer_settings({}, environ={}) == {}
    conf = _config.producer_settings({"producer": True, "dir": str(tmp_path), "sample": "0.25", "tasks": "a.*,b"},
                                     environ={})  # fmt: skip
    assert conf == {"directory": str(tmp_path), "sample_rate": 0.25, "tasks": ["a.*", "b"]}
    env = {"CELERYLAB_PRODUCER": "1", "CELERYLAB_DIR": str(tmp_path), "CELERYLAB_RUN": "r9"}
    assert _config.producer_settings(environ=env) == {"directory": str(tmp_path), "run": "r9"}
    # without a folder: the timing header only
    assert _config.producer_settings(environ={"CELERYLAB_PRODUCER": "yes"}) == {"directory": None, "sample_rate": 0.0}
    with pytest.raises(ValueError, match="not a boolean"):
        _config.producer_settings(environ={"CELERYLAB_PRODUCER": "maybe"})


def test_django_app_installs_producer_capture(tmp_path):
    code = (
        "import django, json; from django.conf import settings; "
        f"settings.configure(INSTALLED_APPS=['celerylab.capture.django.CelerylabCapture'], "
        f"CELERYLAB={{'producer': True, 'dir': {str(tmp_path)!r}, 'sample': 0.5}}); django.setup(); "
        "from celerylab.capture import active_producer; c = active_producer(); "
        "print(json.dumps([c.directory, c.sample_rate]))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [str(tmp_path), 0.5]


def test_a_publishing_loop_is_sampled_and_bounded_on_disk(producer, tmp_path):
    from celery import Celery

    app = Celery("loop", broker=BROKER, set_as_current=False)
    app.conf.broker_connection_retry_on_startup = True
    queue = f"captest-loop-{os.getpid()}-{time.monotonic_ns()}"
    # GIVEN 5 % sampling and a cap of 20 profiles
    cap = producer(sample_rate=0.05, max_files=20)
    try:
        # WHEN a loop publishes 2 000 tasks (nobody consumes them)
        for i in range(2000):
            app.send_task("captest.ok", args=(i,), queue=queue)
        # THEN about 5 % were profiled, one file pair per sampled publish, and the folder stays under its cap
        assert cap.counts.publishes == 2000
        assert 40 <= cap.counts.profiled <= 180, cap.counts
        assert cap.counts.written == cap.counts.profiled and cap.counts.errors == 0
        files = _publish_files(tmp_path / "published")
        assert 1 <= len(files) <= 20 and cap.counts.deleted == cap.counts.written - len(files)
        assert len(list((tmp_path / "published").glob("*.json"))) == len(files)
    finally:
        with app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
        app.close()
