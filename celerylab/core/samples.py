"""Where the shipped sample profiles live."""

from __future__ import annotations

import os
from pathlib import Path


def sample_profiles() -> Path:
    """The folder of sample profiles (``baseline`` and ``candidate`` runs of the demo app).

    Looks in ``$CELERYLAB_SAMPLES``, then the repository's ``sample_profiles/`` (source checkout), then the copy
    installed with the package.
    """
    env = os.environ.get("CELERYLAB_SAMPLES")
    candidates = [Path(env)] if env else []
    package = Path(__file__).resolve().parents[1]
    candidates += [package.parent / "sample_profiles", package / "sample_profiles"]
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError("celerylab sample profiles not found; looked in: " + ", ".join(str(c) for c in candidates))
