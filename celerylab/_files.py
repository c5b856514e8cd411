"""The on-disk contract between capture (which writes) and the loader (which reads).  Stdlib only.

Per profiled task, capture writes ``<stem>.prof`` (``cProfile`` ``dump_stats`` output) and ``<stem>.json`` (the
sidecar, a UTF-8 JSON object whose ``schema`` is :data:`SCHEMA`).  Each is written to a hidden temporary name
(:func:`temp_name`) and renamed into place, the sidecar first, so a reader never sees a partial file and whoever sees
a ``.prof`` finds its sidecar beside it.  The loader pairs any profile file with ``stem(path) + ".json"``.

Every rule of that contract lives here, once: capture, the loader, retention and :mod:`celerylab.testing` import it.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata

#: The sidecar schema capture writes; loaders accept every version of the same family (:data:`SCHEMA_FAMILY`).
SCHEMA = "celerylab.task/1"
SCHEMA_FAMILY = "celerylab.task/"

PROFILE_SUFFIX = ".prof"
SIDECAR_SUFFIX = ".json"

#: Extensions stripped from a profile file's name to find its stem (and so its sidecar and the name's metadata).
PROFILE_EXTENSIONS = (".prof", ".pstats", ".pstat", ".profile", ".cprof", ".out", ".dat")
#: Names of files still being written, by celerylab or by other tools; never loaded as profiles.
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")

#: Characters capture keeps in a file name (portable to Windows, macOS, SMB/NFS and object stores); any other
#: becomes ``_``.  Not ``:`` (NTFS streams, macOS Finder), not ``/ \\ * ? " < > |``, no control characters.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@+-]")
#: The longest file name capture writes, suffix (``.prof``/``.json``) included: well under the 255 bytes of most
#: file systems, and short enough for the temporary name (:func:`temp_name`) and for Windows' 260-character paths.
MAX_NAME = 150
#: Names Windows reserves whatever their extension.
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
#: A capture temporary file: ``.<final name>.<pid>-<random hex>.tmp``.
TEMP_RE = re.compile(r"^\..+\.(\d+)-[0-9a-f]+\.tmp$")


def is_schema(value: object) -> bool:
    """Whether a sidecar's ``schema`` value belongs to celerylab's sidecar family (any version)."""
    return str(value).startswith(SCHEMA_FAMILY)


def _portable(text: str) -> str:
    """``text`` in the portable character set: accents folded to ASCII (``é`` -> ``e``), anything else ``_``."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    if len(folded) < len(text) // 2:  # mostly non-Latin (CJK, emoji): folding dropped it, keep the positions
        folded = text
    return _UNSAFE.sub("_", folded)


def capture_stem(task_name: str, task_id: str, retries: int = 0, attempt: int = 1, *, extra: str = "") -> str:
    """The file stem capture writes for one task run: ``<task_name>.<task_id>[.retry<N>][.a<K>]``.

    Portable and bounded: characters outside ``[A-Za-z0-9_.@+-]`` become ``_`` (accented letters are folded to
    ASCII first), a leading ``.`` or ``-`` becomes ``_``, Windows' reserved names get a ``_`` prefix, and the
    stem plus its longest suffix stays within :data:`MAX_NAME` characters.  Whenever the name or id had to be
    changed, ``~<hash>`` (10 hex digits of a SHA-256 of the exact task name and id) keeps distinct tasks apart.
    ``attempt`` > 1 marks a further file set of the same run (a redelivery); ``extra`` is a fixed ending
    (``.publish``) kept within the bound too.  The sidecar always keeps the exact
    ``task_name`` and ``task_id``; the loader reports those, never what it reads in the file name.

    >>> capture_stem("billing.charge", "5f1c", 2)
    'billing.charge.5f1c.retry2'
    >>> capture_stem("a:b/c", "1")
    'a_b_c.1~cb30f34368'
    """
    name, tid = _portable(task_name), _portable(task_id)
    exact = name == task_name and tid == task_id
    if name[:1] in (".", "-", ""):
        name, exact = "_" + name.lstrip(".-"), False
    if name.split(".", 1)[0].upper() in _WINDOWS_RESERVED:
        name, exact = "_" + name, False
    tail = (f".retry{retries}" if retries else "") + (f".a{attempt}" if attempt > 1 else "") + extra
    room = MAX_NAME - max(len(PROFILE_SUFFIX), len(SIDECAR_SUFFIX)) - len(tail)
    if exact and len(name) + 1 + len(tid) <= room:
        return f"{name}.{tid}{tail}"
    digest = "~" + hashlib.sha256(f"{task_name}\0{task_id}".encode("utf-8", "surrogatepass")).hexdigest()[:10]
    room -= len(digest)
    # keep the id whole when it fits in half of the room (it is what tells runs apart), then the task name
    tid = tid[: max(room // 2, room - 1 - len(name))]
    name = name[: room - 1 - len(tid)].rstrip(".")
    return f"{name}.{tid}{digest}{tail}"


def publish_stem(task_name: str, task_id: str) -> str:
    """The file stem of a profiled publish (producer side): the task's stem plus ``.publish``, so that the profile
    of publishing a task and the profile of running it can share a folder."""
    return capture_stem(task_name, task_id, extra=".publish")


def temp_name(final_name: str) -> str:
    """The hidden temporary name a file is written under before it is renamed to ``final_name``."""
    return f".{final_name}.{os.getpid()}-{os.urandom(4).hex()}.tmp"


def stem(path: str) -> str:
    """File name without the profile/compression extensions: ``a/t.1234.prof.gz`` -> ``t.1234``."""
    # os.path.basename on POSIX, without its call (a re-open of the cache computes this for every file)
    name = path[path.rfind("/") + 1 :] if os.sep == "/" else os.path.basename(path)
    if name.endswith(".gz"):
        name = name[:-3]
    for ext in PROFILE_EXTENSIONS:
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def sidecar_path(path: str) -> str:
    """Where the sidecar of the profile file ``path`` is: ``<dir>/<stem>.json``."""
    i = path.rfind("/")
    if os.sep == "/" and i > 0 and path[i - 1] != "/":
        # what the general form below gives for an ordinary POSIX path, without its cost (a re-open of the
        # cache computes this for every file)
        return path[: i + 1] + stem(path[i + 1 :]) + SIDECAR_SUFFIX
    return os.path.join(os.path.dirname(path), stem(path) + SIDECAR_SUFFIX)
