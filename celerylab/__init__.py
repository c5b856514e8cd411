"""celerylab: find out why a Celery task got slower or fatter.

Everything is imported on first use: ``import celerylab.capture`` in a worker pulls in neither pandas nor the
analysis core, and ``import celerylab`` pulls in neither celery, plotly nor ipywidgets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .core.samples import sample_profiles
from .errors import AmbiguousFunction, CelerylabError, FunctionNotFound, LoadError

__all__ = [
    "AmbiguousFunction",
    "CelerylabError",
    "FunctionNotFound",
    "LoadError",
    "ProfileSet",
    "__version__",
    "diff",
    "load",
    "open_dataset",
    "sample_profiles",
]

if TYPE_CHECKING:
    from . import analysis as analysis
    from . import capture as capture
    from .analysis.diff import diff as diff
    from .profileset import ProfileSet as ProfileSet
    from .profileset import load as load
    from .profileset import open_dataset as open_dataset

_LAZY = {
    "load": ("profileset", "load"),
    "ProfileSet": ("profileset", "ProfileSet"),
    "diff": ("analysis", "diff"),
    "open_dataset": ("profileset", "open_dataset"),
}
_SUBMODULES = (
    "capture",
    "widgets",
    "charts",
    "report",
    "callgraph",
    "analysis",
    "testing",
    "demo",
    "core",
    "fmt",
    "scale",
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{mod}", __name__), attr)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'celerylab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
