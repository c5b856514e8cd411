"""A producer process that knows nothing of celerylab: publishes ``captest.ok`` tasks and exits.

    python -m tests.capture.producer_script N MODE      (MODE: shared | fresh)

``shared`` publishes through the app's connection pool, as Celery does by default; ``fresh`` turns the pool off
(``broker_pool_limit = 0``), so every publish opens and closes its own broker connection inside ``send_task``: the
planted producer-side regression.
Broker from $CAPTEST_BROKER, queue from $CAPTEST_QUEUE; prints the task ids, one per line.
"""

from __future__ import annotations

import os
import sys

from celery import Celery

BROKER = os.environ.get("CAPTEST_BROKER", "redis://127.0.0.1:6379/0")
app = Celery("producer-script", broker=BROKER, backend=os.environ.get("CAPTEST_BACKEND", BROKER))
app.conf.update(broker_connection_retry_on_startup=True, task_default_queue=os.environ.get("CAPTEST_QUEUE", "captest"))


def main() -> None:
    n, mode = int(sys.argv[1]), sys.argv[2]
    if mode == "fresh":
        app.conf.broker_pool_limit = 0  # no pool: a new connection per publish
    for i in range(n):
        r = app.send_task("captest.ok", args=(i,))
        print(r.id, flush=True)


if __name__ == "__main__":
    main()
