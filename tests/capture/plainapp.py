"""A test app that knows nothing of celerylab (for ``celerylab worker``)."""

from __future__ import annotations

import os

from celery import Celery

from tests.capture.tasks_common import add_tasks

BROKER = os.environ.get("CAPTEST_BROKER", "redis://127.0.0.1:6379/0")
app = Celery("plaintest", broker=BROKER, backend=BROKER)
app.conf.update(broker_connection_retry_on_startup=True, result_expires=600,
                task_default_queue=os.environ.get("CAPTEST_QUEUE", "captest"))  # fmt: skip
if os.environ.get("CAPTEST_POOL"):  # a pool named only in the configuration
    app.conf.worker_pool = os.environ["CAPTEST_POOL"]
if os.environ.get("CAPTEST_VISIBILITY"):  # Redis: unacknowledged messages come back after this many seconds
    app.conf.broker_transport_options = {"visibility_timeout": float(os.environ["CAPTEST_VISIBILITY"])}
add_tasks(app)
