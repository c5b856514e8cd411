"""Task name / id from profile file names, for files that have no sidecar."""

from __future__ import annotations

import re

from .._files import stem
from ..errors import UsageError

_UUID = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
_TS = r"\d{4}-?\d{2}-?\d{2}(?:[T_-]?\d{2}[:\-.]?\d{2}[:\-.]?\d{2}(?:[.,]\d+)?Z?)?|\d{10}(?:\.\d+)?"
_SEP = r"[._\-+@ ]"

#: Tried in order; each must define ``task_id`` and/or ``task_name``.
PATTERNS: tuple[re.Pattern[str], ...] = (
    # <task>.<uuid>  (what celerylab capture writes), also <task>-<uuid>, <task>_<uuid>
    re.compile(rf"^(?P<task_name>[A-Za-z_][\w.:\-]*?){_SEP}(?P<task_id>{_UUID})(?:{_SEP}(?:{_TS}))?$"),
    # <uuid>.<task>
    re.compile(rf"^(?P<task_id>{_UUID}){_SEP}(?P<task_name>[A-Za-z_][\w.:]*?)(?:{_SEP}(?:{_TS}))?$"),
    # <uuid>, <uuid>-<timestamp>, <timestamp>-<uuid>
    re.compile(rf"^(?:(?:{_TS}){_SEP})?(?P<task_id>{_UUID})(?:{_SEP}(?:{_TS}))?$"),
    # <task>-<timestamp>, <timestamp>-<task>
    re.compile(rf"^(?P<task_name>[A-Za-z_][\w.:]*?){_SEP}(?:{_TS})$"),
    re.compile(rf"^(?:{_TS}){_SEP}(?P<task_name>[A-Za-z_][\w.:]*)$"),
)


def compile_pattern(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    rx = re.compile(pattern) if isinstance(pattern, str) else pattern
    if not {"task_id", "task_name"} & set(rx.groupindex):
        raise UsageError(f"name pattern {rx.pattern!r} must define a (?P<task_id>...) or (?P<task_name>...) group")
    return rx


def parse_name(path: str, pattern: re.Pattern[str] | None = None) -> tuple[str | None, str | None]:
    """``(task_name, task_id)`` from the file name; ``None`` for what it does not say."""
    s = stem(path)
    for rx in (pattern,) if pattern is not None else PATTERNS:
        m = rx.search(s)
        if m:
            g = m.groupdict()
            return g.get("task_name") or None, g.get("task_id") or None
    return None, None
