"""The on-disk contract between capture (which writes) and the loader (which reads).  Stdlib only.

Per profiled task, capture writes ``<stem>.prof`` (``cProfile`` ``dump_stats`` output) and ``<stem>.json`` (the
sidecar, a UTF-8 JSON object whose ``schema`` is :data:`SCHEMA`).  Each is written to a hidden temporary name
(:func:`temp_name`) and renamed into place, the sidecar first, so a reader never sees a partial file and whoever sees
a ``.prof`` finds its sidecar beside it.  The loader pairs any profile file with ``stem(path) + ".json"``.

Every rule of that contract lives here, once: capture, the loader, retention and :mod:`celerylab.testing` import it.
"""

from __future__ import annotations

import os
import re

#: The sidecar schema capture writes; loaders accept every version of the same family (:data:`SCHEMA_FAMILY`).
SCHEMA = "celerylab.task/1"
SCHEMA_FAMILY = "celerylab.task/"

PROFILE_SUFFIX = ".prof"
SIDECAR_SUFFIX = ".json"

#: Extensions stripped from a profile file's name to find its stem (and so its sidecar and the name's metadata).
PROFILE_EXTENSIONS = (".prof", ".pstats", ".pstat", ".profile", ".cprof", ".out", ".dat")
#: Names of files still being written, by celerylab or by other tools; never loaded as profiles.
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")

#: Characters capture keeps in a file name; any other becomes ``_``.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:@+-]")
#: A capture temporary file: ``.<final name>.<pid>-<random hex>.tmp``.
TEMP_RE = re.compile(r"^\..+\.(\d+)-[0-9a-f]+\.tmp$")


def is_schema(value: object) -> bool:
    """Whether a sidecar's ``schema`` value belongs to celerylab's sidecar family (any version)."""
    return str(value).startswith(SCHEMA_FAMILY)


def capture_stem(task_name: str, task_id: str, retries: int = 0) -> str:
    """The file stem capture writes for one task run: ``<task_name>.<task_id>[.retry<N>]``, unsafe characters
    replaced by ``_``."""
    stem = f"{_UNSAFE.sub('_', task_name)}.{_UNSAFE.sub('_', task_id)}"
    return f"{stem}.retry{retries}" if retries else stem


def publish_stem(task_name: str, task_id: str) -> str:
    """The file stem of a profiled publish (producer side): the task's stem plus ``.publish``, so that the profile
    of publishing a task and the profile of running it can share a folder."""
    return capture_stem(task_name, task_id) + ".publish"


def temp_name(final_name: str) -> str:
    """The hidden temporary name a file is written under before it is renamed to ``final_name``."""
    return f".{final_name}.{os.getpid()}-{os.urandom(4).hex()}.tmp"


def stem(path: str) -> str:
    """File name without the profile/compression extensions: ``a/t.1234.prof.gz`` -> ``t.1234``."""
    name = os.path.basename(path)
    if name.endswith(".gz"):
        name = name[:-3]
    for ext in PROFILE_EXTENSIONS:
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def sidecar_path(path: str) -> str:
    """Where the sidecar of the profile file ``path`` is: ``<dir>/<stem>.json``."""
    return os.path.join(os.path.dirname(path), stem(path) + SIDECAR_SUFFIX)
