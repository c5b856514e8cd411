"""celerylab: find out why a Celery task got slower or fatter.

Everything is imported on first use: ``import celerylab.capture`` in a worker pulls in neither pandas nor the
analysis core, and ``import celerylab`` pulls in neither celery, plotly nor ipywidgets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .core.samples import sample_profiles
from .errors import AmbiguousFunction, AnalysisNotInstalled, CelerylabError, FunctionNotFound, LoadError, missing_part

__all__ = [
    "AmbiguousFunction",
    "CelerylabError",
    "FunctionNotFound",
    "LoadError",
    "ProfileSet",
    "__version__",
    "diff",
    "findings",
    "load",
    "open_dataset",
    "sample_profiles",
]

if TYPE_CHECKING:
    from . import analysis as analysis
    from . import capture as capture
    from .analysis.diff import diff as diff
    from .analysis.findings import findings as findings
    from .profileset import ProfileSet as ProfileSet
    from .profileset import load as load
    from .profileset import open_dataset as open_dataset

_LAZY = {
    "load": ("profileset", "load"),
    "ProfileSet": ("profileset", "ProfileSet"),
    "diff": ("analysis", "diff"),
    "findings": ("analysis", "findings"),
    "open_dataset": ("profileset", "open_dataset"),
}
_SUBMODULES = ("capture", "widgets", "charts", "report", "callgraph", "analysis", "testing", "demo", "core", "fmt",
               "scale")  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY or name in _SUBMODULES:
        mod, attr = _LAZY.get(name, (name, ""))
        try:
            module = importlib.import_module(f".{mod}", __name__)
        except ModuleNotFoundError as e:
            if missing_part(e):
                raise AnalysisNotInstalled(f"celerylab.{name}", str(e.name)) from None
            raise
        if not attr:
            return module
        value = getattr(module, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'celerylab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
