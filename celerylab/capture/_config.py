"""Capture settings from worker flags and ``CELERYLAB_*`` environment variables (flags win)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

#: environment variable -> install() keyword
ENV = {
    "CELERYLAB_DIR": "directory",
    "CELERYLAB_SAMPLE": "sample_rate",
    "CELERYLAB_TASKS": "tasks",
    "CELERYLAB_RUN": "run",
    "CELERYLAB_MEMORY": "memory",
    "CELERYLAB_SQL": "sql",
    "CELERYLAB_MAX_FILES": "max_files",
    "CELERYLAB_MAX_BYTES": "max_bytes",
    "CELERYLAB_ARGS": "record_args",
    "CELERYLAB_REDACT": "redact",
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_bool(text: str) -> bool:
    """``1/true/yes/on`` -> True, ``0/false/no/off`` -> False."""
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def parse_size(text: str | int) -> int:
    """``"500M"`` -> 524288000; plain integers are bytes."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 500M, 2G or a number of bytes)")
    unit = m.group(2).lower()
    return int(float(m.group(1)) * 1024 ** ("kmgt".find(unit) + 1)) if unit else int(float(m.group(1)))


def _convert(key: str, value: Any) -> Any:
    if value is None or (isinstance(value, bool | int | float | tuple | list) and key != "tasks"):
        return value
    if key == "sample_rate":
        return float(value)
    if key in ("sql", "record_args"):
        return parse_bool(str(value))
    if key == "max_files":
        return int(value)
    if key == "max_bytes":
        return parse_size(value)
    if key == "tasks":
        items = [value] if isinstance(value, str) else list(value)
        out = [p.strip() for item in items for p in str(item).split(",") if p.strip()]
        return out or None
    if key == "memory":
        v = str(value).strip().lower()
        return {"0": "off", "false": "off", "no": "off", "1": "rss", "true": "rss", "yes": "rss"}.get(v, v)
    return str(value)


def settings(flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """install() keywords from ``flags`` (install() keyword -> value or None) over ``environ``.

    Empty when no directory is given: capture stays off.
    """
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for var, key in ENV.items():
        raw = environ.get(var)
        if raw not in (None, ""):
            out[key] = _convert(key, raw)
    for key, value in (flags or {}).items():
        if value is not None and value != ():
            out[key] = _convert(key, value)
    if not out.get("directory"):
        return {}
    return out


#: install_producer() keywords that come from the same settings as a worker's
PRODUCER_KEYS = ("directory", "sample_rate", "tasks", "run", "max_files", "max_bytes")


def producer_settings(options: Mapping[str, Any] | None = None,
                      environ: Mapping[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """install_producer() keywords when producer capture is switched on (``CELERYLAB_PRODUCER=1``, or
    ``producer: True`` in ``options``, e.g. a Django ``CELERYLAB`` setting with the same names as the environment
    variables without their prefix: ``{"producer": True, "dir": ..., "sample": 0.01}``); else empty."""
    environ = os.environ if environ is None else environ
    opts = {str(k).lower(): v for k, v in (options or {}).items()}
    on = opts.get("producer", environ.get("CELERYLAB_PRODUCER", ""))
    if not (on if isinstance(on, bool) else parse_bool(str(on))):
        return {}
    flags = {key: opts.get(var[len("CELERYLAB_") :].lower()) for var, key in ENV.items()}
    conf = settings(flags, environ) or {k: v for k, v in ((k, _convert(k, v)) for k, v in flags.items()) if v}
    out = {k: v for k, v in conf.items() if k in PRODUCER_KEYS}
    out.setdefault("directory", None)
    if out["directory"] is None:
        out["sample_rate"] = 0.0  # no folder to write to: stamp the timing header only
    return out
