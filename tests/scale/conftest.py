"""Fixtures of the scale-out tests: one real ``dask.distributed.LocalCluster`` (2 worker processes × 1 thread) and
one S3 endpoint (moto's standalone server on 127.0.0.1) shared by the whole session, and a varied corpus."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from celerylab.testing import FakeClock, profile_fake_clock, sidecar, synthetic_stats, workload, write_profile

pytest.importorskip("distributed")
pytest.importorskip("s3fs")

TASKS = ("orders.process", "reports.build", "email.send")
T0 = datetime(2026, 1, 1, 23, 59, 50, tzinfo=UTC)  # the corpus spans two dates
MiB = 2**20
LAZY = "SELECT * FROM lines WHERE order_id = ?"
CALLER = "/srv/app/reports.py:57(load_report_rows)"


def make_corpus(folder, n: int = 24, *, start: int = 0, extras: bool = True) -> list[str]:
    """``n`` profiles of real code (fake clock) with sidecars: 3 tasks, runs baseline/candidate, two dates, SQL
    with an N+1 in some ``reports.build`` runs, RSS growth in one worker's ``orders.process`` (a leak).  With
    ``extras``: a profile without sidecar, one with an unusable sidecar, and a corrupt file."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    rss = {100: 50 * MiB, 101: 50 * MiB}
    for i in range(start, start + n):
        clock = FakeClock()
        stats = profile_fake_clock(workload, i % 6, clock, clock=clock)
        task = TASKS[i % 3]
        pid = 100 + i % 2
        grow = MiB if (task == "orders.process" and pid == 100) else 0
        extra: dict = {
            "memory": {
                "rss_before": rss[pid],
                "rss_after": rss[pid] + grow,
                "peak_traced": 2 * MiB,
                "top": [{"file": "/srv/app/o.py", "line": 3, "size": grow, "count": 1}],
            }
        }
        rss[pid] += grow
        if task == "reports.build":
            k = 25 if i % 2 else 1
            extra["sql"] = {
                "count": k,
                "time_s": 0.001 * k,
                "statements": [{"sql": LAZY, "count": k, "time_s": 0.001 * k, "callers": [CALLER]}],
            }
        meta = sidecar(
            task,
            str(uuid.UUID(int=i + 1)),
            run=("baseline", "candidate")[i % 2],
            started=T0 + timedelta(seconds=i),
            wall_s=0.01 * (1 + i % 5),
            pid=pid,
            state="FAILURE" if i == 5 else "SUCCESS",
            **extra,
        )
        paths.append(write_profile(str(folder), stats, task_name=task, task_id=str(uuid.UUID(int=i + 1)), meta=meta))
    if extras:
        paths.append(
            write_profile(str(folder), synthetic_stats(30, 50, seed=7), task_name="legacy.job", task_id="nosidecar")
        )
        p = write_profile(str(folder), synthetic_stats(30, 50, seed=8), task_name="orders.process", task_id="badside")
        with open(os.path.join(str(folder), "orders.process.badside.json"), "w") as f:
            f.write("{not json")
        paths.append(p)
        with open(os.path.join(str(folder), "broken.prof"), "wb") as f:
            f.write(b"\x00\x01garbage that is no marshal dump")
    return sorted(paths)


@pytest.fixture(scope="session")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on a free loopback port; yields the endpoint URL."""
    from moto.server import ThreadedMotoServer

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        os.environ.setdefault(k, v)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def s3_options(endpoint: str) -> dict:
    return {"key": "testing", "secret": "testing",
            "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
            "use_listings_cache": False, "skip_instance_cache": True}  # fmt: skip


@pytest.fixture
def bucket(s3_server):
    """A fresh bucket: ``(s3 url, storage options)``."""
    import boto3

    opts = s3_options(s3_server)
    name = f"b{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")  # fmt: skip
    s3.create_bucket(Bucket=name)
    return f"s3://{name}", opts


@pytest.fixture
def copy_of():
    def copy(src, dst):
        shutil.copytree(src, dst)
        return str(dst)

    return copy
