"""Build ``celerylab-capture``: the light distribution of celerylab for production worker images.

    .venv/bin/python scripts/build_capture_dist.py [--out dist/]

It is the same ``celerylab`` import package, restricted to what runs inside workers and producers — capture
(``celerylab.capture``), the on-disk contract, the ``celerylab worker`` and ``celerylab run`` commands — with Celery,
click and greenlet as its only requirements (no pandas, numpy, pyarrow, scipy, plotly or ipywidgets).  Like
``opencv-python`` / ``opencv-python-headless`` or ``psycopg2`` / ``psycopg2-binary``, the two distributions are
alternatives: install ``celerylab-capture`` in worker images and ``celerylab`` (everything) where profiles are
analysed; not both in one environment.

The module list is :data:`MODULES` (one place); a test builds this wheel, installs it into a fresh virtual
environment, runs a real worker with it and checks that the analysis side says clearly that it is not there.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: the files of ``celerylab`` that the light distribution carries (paths under celerylab/, globs allowed)
MODULES = (
    "__init__.py",
    "_version.py",
    "errors.py",
    "_files.py",
    "_sqltext.py",
    "_patch.py",
    "core/__init__.py",
    "core/samples.py",
    "capture/**/*.py",
    "cli/__init__.py",
    "cli/__main__.py",
    "cli/_common.py",
    "cli/worker.py",
    "cli/run.py",
)
REQUIRES = ("celery", "greenlet", "click")


def _requirement(name: str) -> str:
    """The full package's requirement line for ``name`` (one version rule for both distributions)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    m = re.search(rf'^\s*"({re.escape(name)}[<>=!~][^"]*)"', text, re.M)
    if not m:
        raise SystemExit(f"pyproject.toml names no requirement for {name}")
    return m.group(1)


def _version() -> str:
    text = (ROOT / "celerylab" / "_version.py").read_text(encoding="utf-8")
    m = re.search(r'__version__ = "([^"]+)"', text)
    assert m, "celerylab/_version.py has no __version__"
    return m.group(1)


PYPROJECT = """\
[build-system]
requires = ["setuptools>=77", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "celerylab-capture"
version = "{version}"
description = "celerylab's capture side only: profile Celery tasks in workers and publishing in producers."
readme = "README.md"
requires-python = ">=3.11"
license = "MIT"
dependencies = [{requires}]

[project.scripts]
celerylab = "celerylab.cli:main"

[tool.setuptools.packages.find]
include = ["celerylab*"]
"""

README = """\
# celerylab-capture

The capture side of [celerylab](https://pypi.org/project/celerylab/) for worker and producer images:
`celerylab worker --dir DIR -- -A proj`, `celerylab.capture.register(app)` / `install(app, DIR)`,
`celerylab run --dir DIR -- <producer>`.  It writes the profiles; analyse them where `pip install celerylab`
(the full package: it includes everything this one has) is installed.  Install one of the two, not both.
"""


def stage(dest: Path) -> list[str]:
    """Copy the light distribution's files into ``dest``; returns them (relative to the package)."""
    pkg = ROOT / "celerylab"
    files = sorted({p.relative_to(pkg).as_posix() for pattern in MODULES for p in pkg.glob(pattern) if p.is_file()})
    for rel in files:
        target = dest / "celerylab" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(pkg / rel, target)
    requires = ", ".join(f'"{_requirement(n)}"' for n in REQUIRES)
    (dest / "pyproject.toml").write_text(PYPROJECT.format(version=_version(), requires=requires), encoding="utf-8")
    (dest / "README.md").write_text(README, encoding="utf-8")
    return files


def build(out: Path) -> Path:
    """Build the wheel into ``out``; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="celerylab-capture-") as tmp:
        stage(Path(tmp))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), tmp],
                       check=True)  # fmt: skip
    wheels = sorted(out.glob(f"celerylab_capture-{_version()}-*.whl"))
    if not wheels:
        raise SystemExit(f"no celerylab_capture wheel in {out}")
    return wheels[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "dist"), help="folder for the wheel (default dist/)")
    print(build(Path(ap.parse_args().out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
