"""SQL statement shapes, shared by capture (which normalises as it records) and analysis (which normalises again,
idempotently, so that text from any source groups the same way).  Stdlib only: capture imports it in workers."""

from __future__ import annotations

import re

_STRING = re.compile(r"'(?:[^']|'')*'")
_PLACEHOLDER = re.compile(r"%\(\w+\)s|%s|\$\d+|(?<![:\w]):\w+|\?")
_NUMBER = re.compile(r"(?<![\w.$])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")
_IN_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_ROWS = re.compile(r"\(\?\.\.\.\)(?:\s*,\s*\(\?\.\.\.\))+|\(\?\)(?:\s*,\s*\(\?\))+")
_SPACE = re.compile(r"\s+")


def statement_shape(sql: str) -> str:
    """One text per statement shape: string literals, numbers and placeholders become ``?``, value lists
    ``(?...)``, repeated row tuples ``(?...), ...``, whitespace collapses.  Idempotent.

    >>> statement_shape("SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'x'  LIMIT 10")
    'SELECT * FROM t WHERE id IN (?...) AND name = ? LIMIT ?'
    """
    s = _STRING.sub("?", sql)
    s = _PLACEHOLDER.sub("?", s)
    s = _NUMBER.sub("?", s)
    s = _IN_LIST.sub("(?...)", s)
    s = _ROWS.sub(lambda m: m.group(0)[: m.group(0).index(")") + 1] + ", ...", s)
    return _SPACE.sub(" ", s).strip()
