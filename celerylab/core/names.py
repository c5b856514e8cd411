"""Task name / id (and, for some tools, the duration and end time) from profile file names, for files that have
no sidecar.

Each :data:`PRESETS` entry is one tool's naming scheme, tried in order; the first that matches the file's stem
(:func:`celerylab._files.stem`) wins.  Named groups: ``task_name``, ``task_id``, and optionally ``method`` + ``url``
(an HTTP request: the task name becomes ``"GET /a/b"``), ``wall_ms``/``wall_s`` (the request's duration) and
``finished`` (epoch seconds when the file was written).  docs/loading.md lists the presets with examples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .._files import stem
from ..errors import UsageError

_UUID = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
_TS = r"\d{4}-?\d{2}-?\d{2}(?:[T_-]?\d{2}[:\-.]?\d{2}[:\-.]?\d{2}(?:[.,]\d+)?Z?)?|\d{10}(?:\.\d+)?"
_SEP = r"[._\-+@ ]"
_METHODS = r"GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|TRACE|CONNECT"


@dataclass(frozen=True)
class Preset:
    name: str
    pattern: re.Pattern[str]
    example: str  # a file name this preset reads (tested)


#: Tried in order; each defines ``task_id`` and/or ``task_name`` (or ``method`` + ``url``).
PRESETS: tuple[Preset, ...] = (
    # werkzeug / Flask ProfilerMiddleware: filename_format "{method}.{path}.{elapsed:.0f}ms.{time:.0f}.prof", path
    # being PATH_INFO.strip("/").replace("/", ".") or "root" (older versions zero-padded the elapsed ms)
    Preset(
        "werkzeug",
        re.compile(
            rf"^(?P<method>{_METHODS})\.(?P<url>.+?)\.(?P<wall_ms>\d+(?:\.\d+)?)ms\.(?P<finished>\d+(?:\.\d+)?)$"
        ),
        "GET.api.users.000003ms.1700000000.prof",
    ),
    # pretix's profiling middleware: "{time:.0f}_{tottime:.3f}_{path}.pstat", path = request.path[1:] with "/" -> "_"
    Preset(
        "pretix",
        re.compile(r"^(?P<finished>\d{9,11})_(?P<wall_s>\d+\.\d+)_(?P<url>[^.]*)$"),
        "1700000000_0.123_control_event_index.pstat",
    ),
    # celerylab capture: <task>.<uuid>[.retryN]; also <task>-<uuid>, <task>_<uuid> (django-silk's extended name
    # "<slugified path>_<request uuid>.prof" too, below when the slug starts with a digit)
    Preset(
        "celerylab",
        re.compile(rf"^(?P<task_name>[A-Za-z_][\w.:\-]*?){_SEP}(?P<task_id>{_UUID})(?:{_SEP}(?:{_TS}|retry\d+))?$"),
        "orders.process.0b7d8e6a-3f2c-4e1a-9c5d-1234567890ab.prof",
    ),
    # django-silk: "<request uuid>.prof", or with SILKY_PYTHON_PROFILER_EXTENDED_FILE_NAME
    # "<path slug>_<request uuid>.prof", the slug being the lower-cased path with non-word runs as "_"
    Preset(
        "django-silk",
        re.compile(rf"^(?:(?P<url>\w+?)_)?(?P<task_id>{_UUID})$"),
        "api_users_42_0b7d8e6a-3f2c-4e1a-9c5d-1234567890ab.prof",
    ),
    # <uuid>.<task>
    Preset(
        "uuid-task",
        re.compile(rf"^(?P<task_id>{_UUID}){_SEP}(?P<task_name>[A-Za-z_][\w.:]*?)(?:{_SEP}(?:{_TS}))?$"),
        "0b7d8e6a-3f2c-4e1a-9c5d-1234567890ab.orders.process.prof",
    ),
    # <uuid>-<timestamp>, <timestamp>-<uuid>
    Preset(
        "uuid",
        re.compile(rf"^(?:(?:{_TS}){_SEP})?(?P<task_id>{_UUID})(?:{_SEP}(?:{_TS}))?$"),
        "20260101-120000-0b7d8e6a-3f2c-4e1a-9c5d-1234567890ab.prof",
    ),
    # <task>-<timestamp>, <timestamp>-<task>
    Preset(
        "task-timestamp",
        re.compile(rf"^(?P<task_name>[A-Za-z_][\w.:]*?){_SEP}(?:{_TS})$"),
        "orders.process-20260101T120000.prof",
    ),
    Preset(
        "timestamp-task",
        re.compile(rf"^(?:{_TS}){_SEP}(?P<task_name>[A-Za-z_][\w.:]*)$"),
        "1767268800.5_orders.process.prof",
    ),
)

#: The patterns of :data:`PRESETS`, in order.
PATTERNS: tuple[re.Pattern[str], ...] = tuple(p.pattern for p in PRESETS)
_PRESET_PATTERNS = tuple((p.name, p.pattern) for p in PRESETS)


def compile_pattern(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    rx = re.compile(pattern) if isinstance(pattern, str) else pattern
    if not {"task_id", "task_name"} & set(rx.groupindex):
        raise UsageError(f"name pattern {rx.pattern!r} must define a (?P<task_id>...) or (?P<task_name>...) group")
    return rx


def parse_fields(path: str, pattern: re.Pattern[str] | None = None) -> dict[str, Any]:
    """What the file name says: ``task_name``, ``task_id``, ``wall_s``, ``finished_at`` (epoch seconds) and
    ``name_preset`` (which :data:`PRESETS` entry, or ``"name_pattern"``); absent keys for what it does not say."""
    s = stem(path)
    candidates = (("name_pattern", pattern),) if pattern is not None else _PRESET_PATTERNS
    for preset, rx in candidates:
        m = rx.search(s)
        if not m:
            continue
        g = {k: v for k, v in m.groupdict().items() if v}
        out: dict[str, Any] = {"name_preset": preset}
        if "task_id" in g:
            out["task_id"] = g["task_id"]
        if "task_name" in g:
            out["task_name"] = g["task_name"]
        elif preset == "werkzeug":
            out["task_name"] = f"{g['method']} /{'' if g['url'] == 'root' else g['url'].replace('.', '/')}"
        elif preset == "pretix":
            out["task_name"] = "/" + g.get("url", "")
        elif "url" in g:
            out["task_name"] = g["url"]
        if "wall_ms" in g:
            out["wall_s"] = float(g["wall_ms"]) / 1000.0
        elif "wall_s" in g:
            out["wall_s"] = float(g["wall_s"])
        if "finished" in g:
            out["finished_at"] = float(g["finished"])
        return out
    return {}


def parse_name(path: str, pattern: re.Pattern[str] | None = None) -> tuple[str | None, str | None]:
    """``(task_name, task_id)`` from the file name; ``None`` for what it does not say."""
    f = parse_fields(path, pattern)
    return f.get("task_name"), f.get("task_id")
