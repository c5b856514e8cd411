"""A test app that opted into celerylab (``register(app)``): capture is switched on by flags or env vars."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from celery import Celery, signals

import celerylab.capture
from tests.capture.tasks_common import add_tasks

BROKER = os.environ.get("CAPTEST_BROKER", "redis://127.0.0.1:6379/0")
app = Celery("captest", broker=BROKER, backend=os.environ.get("CAPTEST_BACKEND", BROKER))
app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False, result_expires=600,
                task_default_queue=os.environ.get("CAPTEST_QUEUE", "captest"))  # fmt: skip
add_tasks(app)
celerylab.capture.register(app)


@signals.worker_init.connect(weak=False, dispatch_uid="captest.foreign_profiler")
def _foreign_profiler(**_: Any) -> None:
    """CAPTEST_FOREIGN_PROFILER=1: another tool profiles every new thread (pool threads start later)."""
    if os.environ.get("CAPTEST_FOREIGN_PROFILER"):
        threading.setprofile(lambda *a: None)


@signals.worker_process_init.connect(weak=False, dispatch_uid="captest.kill_midwrite")
def _kill_midwrite(**_: Any) -> None:
    """CAPTEST_KILL_MIDWRITE=1: the pool process dies (SIGKILL) once captest.midwrite's profile is fully written
    to its temporary file, before the rename — as a worker killed mid-write would."""
    if not os.environ.get("CAPTEST_KILL_MIDWRITE"):
        return
    from celerylab.capture import _writer

    def hook(stage: str, final: str) -> None:
        if stage == "profile" and os.path.basename(final).startswith("captest.midwrite."):
            os.kill(os.getpid(), signal.SIGKILL)

    _writer.fault_hook = hook
