"""Where the shipped sample profiles live."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from importlib import resources
from pathlib import Path

#: The archive the wheel carries (written by the build step in setup.py from the repository's sample_profiles/).
ARCHIVE = "_data/sample_profiles.tar.xz"


def sample_profiles() -> Path:
    """The folder of sample profiles (``baseline`` and ``candidate`` runs of the demo app).

    Looks in ``$CELERYLAB_SAMPLES``, then the repository's ``sample_profiles/`` (source checkout), then the archive
    installed with the package, extracted once into the cache folder (``$CELERYLAB_CACHE_DIR`` or
    ``~/.cache/celerylab``, ``samples-<digest>/``).
    """
    env = os.environ.get("CELERYLAB_SAMPLES")
    candidates = [Path(env)] if env else []
    package = Path(__file__).resolve().parents[1]
    candidates += [package.parent / "sample_profiles"]
    for c in candidates:
        if c.is_dir():
            return c
    archive = resources.files("celerylab").joinpath(ARCHIVE)
    if archive.is_file():
        return _extracted(archive)
    raise FileNotFoundError(
        "celerylab sample profiles not found; looked in: "
        + ", ".join(str(c) for c in candidates)
        + f", and the package's {ARCHIVE}"
    )


def _extracted(archive: resources.abc.Traversable) -> Path:
    from .cache import cache_root

    data = archive.read_bytes()
    digest = hashlib.sha1(data).hexdigest()[:12]
    target = Path(cache_root(True)) / f"samples-{digest}"
    folder = target / "sample_profiles"
    if (target / ".complete").is_file():
        return folder
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".samples-{digest}.", dir=target.parent))
    try:
        with tempfile.TemporaryFile() as f:
            f.write(data)
            f.seek(0)
            with tarfile.open(fileobj=f, mode="r:xz") as tar:
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse links and paths outside tmp
                    tar.extractall(tmp, filter="data")
                else:  # pragma: no cover - our own archive, written by setup.py
                    tar.extractall(tmp)
        (tmp / ".complete").write_text(digest)
        try:
            os.replace(tmp, target)  # atomic: a concurrent first use finds the complete folder or none
        except OSError:
            if not (target / ".complete").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
