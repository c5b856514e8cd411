"""Real ``celery worker`` subprocesses over the local Redis broker, and helpers to wait for their files."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BROKER = "redis://127.0.0.1:6379/0"
AMQP = "amqp://guest:guest@127.0.0.1:5672//"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
CELERY = [sys.executable, "-m", "celery"]
CELERYLAB = [sys.executable, "-m", "celerylab.cli"]


@pytest.fixture
def install(tmp_path):
    """``install(directory=None, **options)``: capture on the in-process app (:mod:`.inproc`), uninstalled after
    the test."""
    import celerylab.capture as capture

    from . import inproc

    handles = []

    def _install(directory=None, **kw):
        h = capture.install(inproc.app, directory or tmp_path / "profiles", **kw)
        handles.append(h)
        return h

    yield _install
    for h in handles:
        h.uninstall()


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def require_services(*ports: int) -> None:
    missing = [p for p in ports if not port_open(p)]
    if missing:
        pytest.fail(f"services not running on 127.0.0.1 ports {missing}: run `scripts/dev test` (it starts them)")


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.05, check: Any = None) -> Any:
    """Poll ``predicate()`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if check is not None:
            check()
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Worker:
    """One ``celery worker`` subprocess with its own queue, capture directory and log file."""

    def __init__(self, tmp: Path, name: str, argv: list[str], env: dict[str, str] | None = None,
                 queue: str | None = None, directory: Path | None = None, broker: str = BROKER) -> None:  # fmt: skip
        from celery import Celery

        self.name = name
        self.queue = queue or f"captest-{name}-{uuid.uuid4().hex[:8]}"
        self.hostname = f"{name}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
        self.dir = directory or tmp / "profiles"
        self.log_path = tmp / "worker.log"
        full_env = dict(os.environ)
        for k in list(full_env):
            if k.startswith("CELERYLAB_") and k != "CELERYLAB_CACHE_DIR":
                del full_env[k]
        full_env.update(PYTHONPATH=str(REPO), CAPTEST_QUEUE=self.queue, CAPTEST_BROKER=broker, CAPTEST_BACKEND=BROKER,
                        PYTHONUNBUFFERED="1")  # fmt: skip
        full_env.update({k: v.replace("{dir}", str(self.dir)) for k, v in (env or {}).items()})
        argv = [a.replace("{dir}", str(self.dir)) for a in argv]
        argv += ["-n", self.hostname, "-Q", self.queue, "-l", "INFO", "--without-mingle", "--without-gossip",
                 "--without-heartbeat"]  # fmt: skip
        self.argv = argv
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        self.client = Celery("captest-client", broker=broker, backend=BROKER, set_as_current=False)
        self.client.conf.update(broker_connection_retry_on_startup=True, result_expires=600)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"worker {self.name} exited with {self.proc.returncode}:\n{self.log()[-4000:]}")

    def wait_ready(self, timeout: float = 60) -> None:
        def pong() -> bool:
            return bool(self.client.control.ping(destination=[self.hostname], timeout=0.3))

        wait_for(pong, timeout, f"worker {self.name} to answer ping", interval=0.1, check=self.check_alive)

    def send(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.client.send_task(name, args=args, kwargs=kwargs, queue=self.queue)

    def files(self, task_id: str, timeout: float = 30) -> tuple[Path, dict[str, Any]]:
        """Wait for ``<name>.<task_id>.prof`` (written after its sidecar); returns its path and the sidecar."""

        def find() -> Path | None:
            if not self.dir.exists():
                return None
            hits = [p for p in self.dir.iterdir() if p.name.endswith(f".{task_id}.prof")]
            return hits[0] if hits else None

        prof = wait_for(find, timeout, f"the profile of task {task_id}", check=self.check_alive)
        side = prof.with_suffix(".json")
        assert side.exists(), "the sidecar must be in place before the profile"
        return prof, json.loads(side.read_text(encoding="utf-8"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.client.close()


@pytest.fixture(scope="module")
def start_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``start_worker(name, argv, env, queue=None, directory=None)`` -> a ready :class:`Worker` (on its own queue and
    directory unless given), stopped at the end of the module."""
    workers: list[Worker] = []

    def start(name: str, argv: list[str], env: dict[str, str] | None = None, broker: str = BROKER,
              **kw: Any) -> Worker:  # fmt: skip
        require_services(6379, 5432, *([5672] if broker.startswith("amqp") else []))
        w = Worker(tmp_path_factory.mktemp(name), name, argv, env, broker=broker, **kw)
        workers.append(w)
        w.wait_ready()
        return w

    yield start
    for w in workers:
        w.stop()
