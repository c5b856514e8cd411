"""Capture must never hurt the task: every failure is logged once, counted and swallowed.

These run celery's real tracer in-process (``Task.apply()``) against real file systems: a full tmpfs, a
read-only tmpfs, a directory that vanished; a real foreign profiler; real Python 3.12/3.13 interpreters.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import celerylab.capture as capture

from . import inproc

CAPTURE_DIR = Path(capture.__file__).parent


@pytest.fixture
def tmpfs(tmp_path):
    """A tiny real tmpfs (needs root and mount rights; skipped elsewhere)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def _visible(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "celerylab.capture" and r.levelno >= logging.WARNING]


def test_disk_full(install, tmpfs, caplog):
    # GIVEN a capture directory on a file system that is full
    out = tmpfs / "profiles"
    out.mkdir()
    fd = os.open(tmpfs / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError) as full:
            while True:
                os.write(fd, b"\0" * 1024)
    finally:
        os.close(fd)
    assert full.value.errno == 28  # ENOSPC: the disk really is full
    h = install(out)
    # WHEN tasks run
    results = [inproc.run(inproc.work, n).get() for n in (10, 20, 30)]
    # THEN they are unaffected, nothing partial is left, the error is counted per task and logged once
    assert results == [45, 190, 435]
    assert _visible(out) == []
    assert h.counts.errors == 3 and h.counts.written == 0
    assert len([m for m in _warnings(caplog) if "No space left" in m or "OSError" in m]) == 1


def test_read_only_directory(install, tmpfs, caplog):
    out = tmpfs / "profiles"
    out.mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    h = install(out)
    assert [inproc.run(inproc.work, 5).get() for _ in range(3)] == [10] * 3
    assert _visible(out) == [] and h.counts.errors == 3
    msgs = _warnings(caplog)
    assert len(msgs) == 1 and "Read-only file system" in msgs[0]


def test_directory_vanished_is_recreated(install, tmp_path):
    out = tmp_path / "profiles"
    h = install(out)
    shutil.rmtree(out)
    r = inproc.run(inproc.work, 4)
    assert r.get() == 6
    assert _visible(out) == [f"inproc.work.{r.id}.json", f"inproc.work.{r.id}.prof"]
    assert h.counts.errors == 0


def test_directory_replaced_by_a_file(install, tmp_path, caplog):
    out = tmp_path / "profiles"
    h = install(out)
    shutil.rmtree(out)
    out.write_text("not a directory")
    assert inproc.run(inproc.work, 4).get() == 6
    assert inproc.run(inproc.boom).failed()  # failures are still the task's own
    assert out.read_text() == "not a directory"
    assert h.counts.errors == 2 and len(_warnings(caplog)) == 1


def test_foreign_profiler_is_left_alone(install, tmp_path, caplog):
    h = install()
    calls: list[str] = []

    def foreign(frame, event, arg):
        calls.append(event)

    sys.setprofile(foreign)
    try:
        results = [inproc.run(inproc.work, 3).get() for _ in range(2)]
        still = sys.getprofile()
    finally:
        sys.setprofile(None)
    assert results == [3, 3]
    assert still is foreign and calls  # ours never replaced it
    assert h.counts.skipped_busy == 2 and h.counts.profiled == 0
    assert _visible(tmp_path / "profiles") == []
    assert len([m for m in _warnings(caplog) if "another profiler is active" in m]) == 1


def _pythons() -> list[str]:
    found = []
    for v in ("3.12", "3.13"):
        base = Path("/root/.pyenv/versions")
        cands = sorted(base.glob(f"{v}.*/bin/python{v}")) if base.exists() else []
        exe = str(cands[-1]) if cands else shutil.which(f"python{v}")
        if exe:
            found.append(exe)
    return found


@pytest.mark.parametrize("python", _pythons() or [pytest.param(None, marks=pytest.mark.skip(
    reason="no Python 3.12+ interpreter on this machine (pyenv 3.12/3.13 not found)"))])  # fmt: skip
def test_one_profiler_per_process_on_312_plus(python):
    # GIVEN Python 3.12+, where cProfile runs on sys.monitoring and allows one active profiler per process
    script = textwrap.dedent(f"""
        import importlib.util, json, sys, threading
        spec = importlib.util.spec_from_file_location("p", {str(CAPTURE_DIR / "_profile.py")!r})
        p = importlib.util.module_from_spec(spec); spec.loader.exec_module(p)
        first = p.start()
        out = {{"version": sys.version_info[:2], "first": first is not None}}
        box = {{}}
        def other_thread():   # a concurrent task in the threads pool
            box["second"] = p.start()
        t = threading.Thread(target=other_thread); t.start(); t.join()
        out["second_skipped"] = box["second"] is None
        try:
            import cProfile; cProfile.Profile().enable()
        except ValueError as e:
            out["raw_error"] = str(e)
        p.stop(first)
        third = p.start(); out["after_stop"] = third is not None; p.stop(third)
        out["stats"] = len(p.dump(third)) > 0
        print(json.dumps(out))
    """)
    r = subprocess.run([python, "-I", "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert tuple(out["version"]) >= (3, 12)
    # THEN the bare second profiler raises, ours is skipped (None) instead, and profiling works again afterwards
    assert "Another profiling tool is already active" in out["raw_error"]
    assert out == {**out, "first": True, "second_skipped": True, "after_stop": True, "stats": True}


def test_capture_error_inside_the_task_thread_never_raises(install, tmp_path, monkeypatch):
    # a broken hook (here: the SQL recorder itself) must not reach the task
    from celerylab.capture import _sql

    h = install()

    def broken_add(self, *a, **k):
        raise RuntimeError("recorder broke")

    monkeypatch.setattr(_sql.SqlRecorder, "add", broken_add)
    assert inproc.run(inproc.sqlite_task, 3).get() == 1 + 2 + 3
    assert h.counts.written == 1  # the profile is still written, without the statements


def test_no_profiler_left_active_after_failures(install, tmp_path):
    (tmp_path / "nope").write_text("")  # the parent is a file: the directory cannot be made, every write fails
    h = install(tmp_path / "nope" / "x", memory="tracemalloc")
    for _ in range(2):
        assert inproc.run(inproc.work, 3).get() == 3
        assert inproc.run(inproc.boom).failed()
    import tracemalloc

    assert sys.getprofile() is None and not tracemalloc.is_tracing()
    assert h.counts.profiled == 4 and h.counts.written == 0 and h.counts.errors == 5  # + making the directory
