"""Masking secrets in what capture records as text: task arguments (``record_args``) and exception messages.

Standard library only.  Two rules work together:

* a *name* that looks secret (a keyword argument or dict key such as ``password``, ``api_key``, ``auth_token``)
  has its whole value replaced by ``<redacted>`` (:data:`SECRET_NAME`);
* inside any recorded text, each pattern of :data:`BUILTIN` masks the secret part of a match and keeps the rest:
  the password of a URL (``postgresql://app:***@db/app``), the value of an ``Authorization`` header and of
  ``Bearer``/``Basic``/``Token`` credentials, ``password=…``/``token: …``/``secret=…``/``api_key=…`` pairs inside
  reprs (a dataclass's, a dict's, a query string), AWS access key ids (``AKIA…``/``ASIA…``).

Extra patterns come from ``install(redact=[...])`` or ``$CELERYLAB_REDACT`` (one regular expression, or a JSON
list of them); a pattern with a group masks only its first group, one without masks the whole match.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

MASK = "***"

#: Names (keyword arguments, dict keys) whose values are never recorded.
SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)?|pwd|token|secret|key|auth|credential|cookie|session|signature|private", re.IGNORECASE
)

_NAME = r"[\w-]*(?:password|passwd|passphrase|pwd|token|secret|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?|auth|session[_-]?id|signature)[\w-]*"  # noqa: E501
_QUOTED_OR_BARE = r"""(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|b'(?:[^'\\]|\\.)*'|[^\s,;&)}\]'"]+)"""

#: (pattern, replacement): each keeps the non-secret parts of what it matches.
BUILTIN: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:PASSWORD@host (the last @ before the host ends the password)
    (
        re.compile(
            r"(?P<pre>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s'\"]*:)(?P<s>[^\s'\"]+?)(?=@[^@\s'\"]*(?:[/\s'\"?#]|$))"
        ),
        rf"\g<pre>{MASK}",
    ),
    # Authorization: <anything> / 'Authorization': '<anything>' / authorization=<anything>
    (
        re.compile(
            r"(?P<pre>\b(?:proxy-)?authorization['\"]?\s*[:=]\s*)(?P<s>'[^']*'|\"[^\"]*\"|[^\r\n,;}]+)", re.IGNORECASE
        ),
        rf"\g<pre>'{MASK}'",
    ),
    # Bearer <token>, Basic <base64>, Token <token>, Digest ...
    (
        re.compile(r"(?P<pre>\b(?:bearer|basic|token|digest)\s+)(?P<s>[A-Za-z0-9._~+/=-]{6,})", re.IGNORECASE),
        rf"\g<pre>{MASK}",
    ),
    # password='x' / "api_key": "x" / token=x / secret: x (reprs, JSON, query strings, DSNs "password=x")
    (re.compile(rf"(?P<pre>\b{_NAME}['\"]?\s*[:=]\s*)(?P<s>{_QUOTED_OR_BARE})", re.IGNORECASE), rf"\g<pre>'{MASK}'"),
    # AWS access key ids
    (re.compile(r"\b(?P<pre>A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|PKA))(?P<s>[0-9A-Z]{16})\b"), rf"\g<pre>{MASK}"),
)


def patterns_from(value: str | Iterable[str] | None) -> list[str]:
    """Extra patterns from an ``install(redact=...)`` value or ``$CELERYLAB_REDACT``: one pattern, a list, or a
    JSON list in a string.  Raises ``ValueError`` for a pattern that does not compile."""
    if value is None or value == "":
        return []
    items: list[str]
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            loaded = json.loads(text)
            if not isinstance(loaded, list) or not all(isinstance(p, str) for p in loaded):
                raise ValueError(f"redact patterns: expected a JSON list of strings, got {text!r}")
            items = loaded
        else:
            items = [text]
    else:
        items = [str(p) for p in value]
    for p in items:
        try:
            re.compile(p)
        except re.error as e:
            raise ValueError(f"redact pattern {p!r} is not a regular expression: {e}") from e
    return [p for p in items if p]


class Redactor:
    """The built-in patterns plus ``extra`` ones."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.extra = [re.compile(p) for p in extra]

    def secret_name(self, name: str) -> bool:
        """Whether a keyword argument or dict key named ``name`` holds a secret."""
        return bool(SECRET_NAME.search(name))

    def sub(self, text: str) -> str:
        """``text`` with every secret masked."""
        for rx, repl in BUILTIN:
            text = rx.sub(repl, text)
        for rx in self.extra:
            text = rx.sub(_mask_group, text)
        return text


def _mask_group(m: re.Match[str]) -> str:
    if m.re.groups:
        whole, start, end = m.group(0), m.start(1) - m.start(0), m.end(1) - m.start(0)
        if m.start(1) < 0:
            return whole
        return whole[:start] + MASK + whole[end:]
    return MASK


DEFAULT = Redactor()
