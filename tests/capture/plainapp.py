"""A test app that knows nothing of celerylab (for ``celerylab worker``)."""

from __future__ import annotations

import os
import signal

from celery import Celery, signals

from tests.capture.tasks_common import add_tasks

BROKER = os.environ.get("CAPTEST_BROKER", "redis://127.0.0.1:6379/0")
app = Celery("plaintest", broker=BROKER, backend=BROKER)
app.conf.update(broker_connection_retry_on_startup=True, result_expires=600,
                task_default_queue=os.environ.get("CAPTEST_QUEUE", "captest"))  # fmt: skip
if os.environ.get("CAPTEST_POOL"):  # a pool named only in the configuration
    app.conf.worker_pool = os.environ["CAPTEST_POOL"]
if os.environ.get("CAPTEST_VISIBILITY"):  # Redis: unacknowledged messages come back after this many seconds
    app.conf.broker_transport_options = {
        "visibility_timeout": float(os.environ["CAPTEST_VISIBILITY"]),
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
add_tasks(app)


@signals.task_postrun.connect(weak=False, dispatch_uid="captest.kill_after_postrun")
def _kill_after_postrun(task=None, args=None, **_):
    """CAPTEST_KILL_AFTER_POSTRUN=1: the first run of captest.after_write dies (SIGKILL) right after the postrun
    receivers connected before this one (capture's, under ``celerylab worker``) wrote their files, before the ack."""
    if not os.environ.get("CAPTEST_KILL_AFTER_POSTRUN") or getattr(task, "name", None) != "captest.after_write":
        return
    marker = args[0]
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
