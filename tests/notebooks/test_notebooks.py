"""Execute every notebook in notebooks/ with a real kernel; the notebooks' own asserts are the checks.

The notebooks assert the facts they show (e.g. the planted regression is found), so a regression in the
analysis fails here.  Outputs are stripped in git (see README); this test never writes the notebooks back.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = {"01_quickstart.ipynb", "02_compare_runs.ipynb", "03_db_and_memory_hotspots.ipynb",
            "04_capture_in_your_app.ipynb", "05_producer_and_queue_wait.ipynb"}  # fmt: skip


def test_the_worked_notebooks_exist():
    assert {p.name for p in NOTEBOOKS} >= EXPECTED


def test_notebooks_are_stored_without_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name}: outputs are kept in git"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # Jupyter/IPython write their state here, not in the user's home
    monkeypatch.setenv("CELERYLAB_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except CellExecutionError as e:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # IPython colours tracebacks
        pytest.fail(f"{path.name} failed:\n{plain[-3000:]}")
    # every code cell ran, in order
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))
    assert os.environ["HOME"] == str(tmp_path)
