"""Put on ``PYTHONPATH`` by ``celerylab run``: start producer capture, then run the ``sitecustomize`` this one hides
(if any), so that the application's own start-up is unchanged."""

from __future__ import annotations

import importlib.util
import os
import sys

try:
    import celerylab.capture.autostart  # noqa: F401  (installs from the environment; never raises)
except Exception as _e:  # pragma: no cover - celerylab itself missing or broken: say so, change nothing else
    print(f"celerylab: producer capture not started: {_e}", file=sys.stderr)

_here = os.path.dirname(os.path.abspath(__file__))
_rest = [p for p in sys.path if os.path.abspath(p or ".") != _here]
_spec = importlib.machinery.PathFinder.find_spec("sitecustomize", _rest)
if _spec is not None and _spec.loader is not None and _spec.origin != os.path.abspath(__file__):
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
