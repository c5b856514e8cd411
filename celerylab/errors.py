"""Every error celerylab raises on purpose, in one hierarchy.

``CelerylabError`` is the base: the CLI turns it (and only it) into ``celerylab: error: …`` and exit code 1; any
other exception is a bug and surfaces with its traceback.  Errors that replace a builtin a caller may already
catch also derive from it (``FunctionNotFound`` is a ``LookupError``, ``UsageError`` a ``ValueError``).

    CelerylabError
    ├── UsageError (ValueError)           an argument or option that cannot be used: unknown value, bad option
    │   └── ColumnNotFound (KeyError)     a profiles column that does not exist
    ├── FunctionNotFound (LookupError)    a function reference matched no function
    ├── AmbiguousFunction (LookupError)   … or more than one
    ├── LoadError                         files could not be loaded (strict), unusable metadata
    ├── CaptureError                      capture cannot be set up as asked
    ├── ExportError                       writing a chart, report, call graph or pstats file failed
    │   ├── OutputFolderMissing (FileNotFoundError)  the folder to write into does not exist
    │   └── CallgraphError                gprof2dot / Graphviz could not draw the call graph
    ├── GenerationError                   generating the demo sample set failed
    └── AnalysisNotInstalled (ImportError)  the light celerylab-capture installation has no analysis side
"""

from __future__ import annotations

from typing import Any


class CelerylabError(Exception):
    """Base class of celerylab's own errors."""


class UsageError(CelerylabError, ValueError):
    """An argument, option or value that cannot be used as given; the message says what would work."""


class ColumnNotFound(UsageError, KeyError):
    """A profiles column named in a filter, split or grouping does not exist."""

    def __str__(self) -> str:  # KeyError's str() is the repr of its message: show the message itself
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


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


class CaptureError(CelerylabError):
    """Capture cannot be installed or configured as asked (bad directory, sample rate, option)."""


class ExportError(CelerylabError):
    """A chart, report, call graph or merged profile could not be written."""


class OutputFolderMissing(ExportError, FileNotFoundError):
    """The folder an output file should go into does not exist."""


class CallgraphError(ExportError):
    """The call graph could not be drawn: gprof2dot or Graphviz ``dot`` is missing, failed or timed out."""


class GenerationError(CelerylabError):
    """Generating the demo sample set failed (a worker died, a wait timed out, a planted effect is missing)."""


class AnalysisNotInstalled(CelerylabError, ImportError):
    """A part of celerylab that this installation does not carry: ``celerylab-capture``, the light distribution
    for worker images, has capture only (see docs/deploy.md)."""

    def __init__(self, what: str, module: str) -> None:
        super().__init__(
            f"{what} needs celerylab's analysis side, which this installation does not have ({module} is missing: "
            "this is the light celerylab-capture distribution, for capture in workers). Analyse the profiles where "
            "the full package is installed: pip install celerylab",
            name=module,
        )


def missing_part(error: ModuleNotFoundError) -> bool:
    """Whether ``error`` is a module of celerylab itself that is absent (a light installation), rather than a
    missing third-party package (a broken one)."""
    name = error.name or ""
    return name == "celerylab" or name.startswith("celerylab.")
