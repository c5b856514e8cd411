"""Exceptions raised by celerylab."""

from __future__ import annotations

from typing import Any


class CelerylabError(Exception):
    """Base class of celerylab's own errors."""


class LoadError(CelerylabError):
    """Files could not be loaded (``strict=True``), or an argument of ``load`` is unusable."""

    def __init__(self, message: str, *, errors: Any = None) -> None:
        super().__init__(message)
        #: DataFrame (path, reason) of the files that failed, when the error is about files
        self.errors = errors


class AmbiguousFunction(CelerylabError, LookupError):
    """A function reference matched more than one function; ``candidates`` lists their labels."""

    def __init__(self, message: str, candidates: list[str]) -> None:
        super().__init__(message)
        self.candidates = candidates


class FunctionNotFound(CelerylabError, LookupError):
    """A function reference matched no function."""
