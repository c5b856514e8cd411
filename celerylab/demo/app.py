"""The demo Celery app: ``celery -A celerylab.demo.app worker [--celerylab-dir DIR --celerylab-run LABEL]``.

Configuration comes from :mod:`celerylab.demo.settings` (``CELERYLAB_DEMO_*`` environment variables).  The
variant is stored in ``app.conf.celerylab_demo_variant`` and read by the tasks through :func:`variant`, so the
baseline and candidate runs execute the same code and differ only where a plant is switched on.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from ..capture import register
from . import settings

TASK_MODULES = (
    "celerylab.demo.orders",
    "celerylab.demo.reports",
    "celerylab.demo.thumbnails",
    "celerylab.demo.campaigns",
    "celerylab.demo.analytics",
    "celerylab.demo.partners",
    "celerylab.demo.batch",
    "celerylab.demo.imports",
)

app = Celery("celerylab_demo", include=list(TASK_MODULES))
app.conf.update(
    broker_url=settings.broker_url(),
    result_backend=settings.backend_url(),
    broker_connection_retry_on_startup=True,
    task_default_queue=settings.queue(),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    task_track_started=False,
    worker_hijack_root_logger=False,
    celerylab_demo_variant=settings.variant(),
)
# `celery -A celerylab.demo.app worker --celerylab-dir DIR [--celerylab-run LABEL ...]` switches capture on.
register(app)


def variant() -> str:
    """``baseline`` or ``candidate``: which behaviour this worker runs."""
    return str(app.conf.celerylab_demo_variant)


def candidate() -> bool:
    """True in the candidate run (the planted changes are on)."""
    return variant() == "candidate"


@worker_process_init.connect(weak=False, dispatch_uid="celerylab.demo.warm_up")
def _warm_up(**_: Any) -> None:
    """Each pool process connects to the database and the result backend and configures the ORM mappers before its
    first task, as production apps do: otherwise whichever task runs first in a process pays for the connections
    (and the imports they trigger), and that one-off cost lands on a different task in each run."""
    from sqlalchemy import text
    from sqlalchemy.orm import configure_mappers

    from . import db

    configure_mappers()
    with db.engine().connect() as c:
        c.execute(text("SELECT 1"))
    app.backend.get_task_meta("celerylab-demo-warm-up")  # opens this process's result-backend connection
