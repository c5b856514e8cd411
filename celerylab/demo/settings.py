"""Configuration of the demo app, read from the environment when the app module is imported.

==============================  ===========================================================================
``CELERYLAB_DEMO_VARIANT``      ``baseline`` (default) or ``candidate``: the candidate switches the planted
                                regressions (N+1 report query, slower serialiser, thumbnail cache leak) and
                                the planted improvement (faster rolling totals) on.  Same code, one switch.
``CELERYLAB_DEMO_DATABASE``     SQLAlchemy URL.  Default: PostgreSQL ``celerylab_demo`` at 127.0.0.1:5432
                                when it answers, else a SQLite file in the temp directory.
``CELERYLAB_DEMO_BROKER``       broker URL (default ``redis://127.0.0.1:6379/0``).
``CELERYLAB_DEMO_BACKEND``      result backend URL (default: the broker URL).
``CELERYLAB_DEMO_QUEUE``        default queue (default ``celerylab-demo``).
==============================  ===========================================================================
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

VARIANTS = ("baseline", "candidate")
PG_HOST, PG_PORT = "127.0.0.1", 5432
DEFAULT_PG_DATABASE = "celerylab_demo"


def variant() -> str:
    """``baseline`` or ``candidate`` (``CELERYLAB_DEMO_VARIANT``); anything else is an error."""
    v = os.environ.get("CELERYLAB_DEMO_VARIANT", "baseline").strip().lower() or "baseline"
    if v not in VARIANTS:
        raise ValueError(f"CELERYLAB_DEMO_VARIANT must be one of {', '.join(VARIANTS)}, not {v!r}")
    return v


def postgres_reachable(host: str = PG_HOST, port: int = PG_PORT, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on the PostgreSQL port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def default_database_url(name: str = DEFAULT_PG_DATABASE) -> str:
    """PostgreSQL database ``name`` on 127.0.0.1:5432 when reachable, else ``<tmp>/<name>.sqlite``."""
    if postgres_reachable():
        return f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    return "sqlite:///" + str(Path(tempfile.gettempdir()) / f"{name}.sqlite")


def database_url() -> str:
    return os.environ.get("CELERYLAB_DEMO_DATABASE") or default_database_url()


def broker_url() -> str:
    return os.environ.get("CELERYLAB_DEMO_BROKER", "redis://127.0.0.1:6379/0")


def backend_url() -> str:
    return os.environ.get("CELERYLAB_DEMO_BACKEND") or broker_url()


def queue() -> str:
    return os.environ.get("CELERYLAB_DEMO_QUEUE", "celerylab-demo")
