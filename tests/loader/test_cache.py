"""The Parquet cache: re-open gives identical frames; only new/changed files are parsed; removed files drop out."""

from __future__ import annotations

import os
import pstats
from pathlib import Path

import pandas.testing as pdt
import pytest

import celerylab as cl
import celerylab.core.load as load_mod

from .conftest import make_set

FRAMES = ("profiles", "functions", "stats", "edges", "sql", "allocations", "errors")


@pytest.fixture
def parsed_files(monkeypatch):
    """Records which files the parser is asked to parse."""
    seen: list[str] = []
    real = load_mod.parse

    def spy(files, jobs, bar):
        seen.extend(files)
        return real(files, jobs, bar)

    monkeypatch.setattr(load_mod, "parse", spy)
    return seen


def test_reopen_is_identical_and_parses_nothing(tmp_path, parsed_files):
    paths = make_set(tmp_path / "p", 6)
    cache = tmp_path / "cache"
    first = cl.load(tmp_path / "p", cache=cache)
    assert sorted(parsed_files) == paths
    parsed_files.clear()
    again = cl.load(tmp_path / "p", cache=cache)
    assert parsed_files == []
    for name in FRAMES:
        pdt.assert_frame_equal(getattr(first, name), getattr(again, name))
    assert again.to_pstats_dict() == pstats.Stats(*paths).stats


def test_new_changed_and_removed_files(tmp_path, parsed_files):
    folder = tmp_path / "p"
    paths = make_set(folder, 6)
    cache = tmp_path / "cache"
    cl.load(folder, cache=cache)
    # add two files (from another set), change one, remove one
    names = {os.path.basename(p) for p in paths}
    extra = [p for p in make_set(tmp_path / "q", 8) if os.path.basename(p) not in names]
    assert len(extra) == 2
    added = []
    for p in extra:
        dst = folder / os.path.basename(p)
        dst.write_bytes(Path(p).read_bytes())
        added.append(str(dst))
    changed = paths[1]
    Path(changed).write_bytes(Path(paths[2]).read_bytes())
    os.utime(changed, ns=(os.stat(changed).st_atime_ns, os.stat(changed).st_mtime_ns + 10**9))
    os.remove(paths[0])
    parsed_files.clear()
    ps = cl.load(folder, cache=cache)
    assert sorted(parsed_files) == sorted([*added, changed])
    now = sorted([*paths[1:], *added])
    assert ps.profiles["path"].tolist() == now
    assert ps.to_pstats_dict() == pstats.Stats(*now).stats
    # and the updated cache re-opens to the same thing without parsing
    parsed_files.clear()
    again = cl.load(folder, cache=cache)
    assert parsed_files == []
    for name in FRAMES:
        pdt.assert_frame_equal(getattr(ps, name), getattr(again, name))


def test_changed_sidecar_invalidates_its_entry(tmp_path):
    import json

    folder = tmp_path / "p"
    paths = make_set(folder, 3)
    cache = tmp_path / "cache"
    cl.load(folder, cache=cache)
    side = paths[0][: -len(".prof")] + ".json"
    meta = json.loads(Path(side).read_text())
    meta["state"] = "RETRY"
    Path(side).write_text(json.dumps(meta))
    os.utime(side, ns=(0, os.stat(side).st_mtime_ns + 10**9))
    ps = cl.load(folder, cache=cache)
    assert ps.profiles.set_index("path").loc[paths[0], "state"] == "RETRY"


def test_bad_files_are_remembered_but_transient_reasons_are_retried(tmp_path, parsed_files):
    folder = tmp_path / "p"
    make_set(folder, 2)
    (folder / "empty.prof").write_bytes(b"")
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning):
        cl.load(folder, cache=cache)
    parsed_files.clear()
    with pytest.warns(UserWarning):
        ps = cl.load(folder, cache=cache)
    assert parsed_files == []  # the empty file's verdict came from the cache
    assert ps.errors["reason"].tolist() == ["empty file"]


def test_corrupt_cache_falls_back_to_parsing(tmp_path, parsed_files):
    folder = tmp_path / "p"
    paths = make_set(folder, 3)
    cache = tmp_path / "cache"
    cl.load(folder, cache=cache)
    for root, _, files in os.walk(cache):
        for f in files:
            if f == "stats.parquet":
                Path(root, f).write_bytes(b"garbage")
    parsed_files.clear()
    ps = cl.load(folder, cache=cache)
    assert sorted(parsed_files) == paths
    assert ps.to_pstats_dict() == pstats.Stats(*paths).stats


def test_cache_false_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CELERYLAB_CACHE_DIR", str(tmp_path / "default-cache"))
    make_set(tmp_path / "p", 2)
    cl.load(tmp_path / "p", cache=False)
    assert not (tmp_path / "default-cache").exists()
    cl.load(tmp_path / "p")  # cache=True: the default folder
    assert any((tmp_path / "default-cache").rglob("stats.parquet"))


def test_progress_counts_cached_files_as_cached(tmp_path, monkeypatch):
    """A second load of unchanged files parses nothing: the progress bar says the files came from the cache."""
    import tqdm.auto

    import celerylab as cl
    from celerylab.testing import write_corpus

    calls: list[tuple[str, object]] = []

    class FakeBar:
        def __init__(self, total, **kw):
            calls.append(("total", total))

        def update(self, n):
            calls.append(("update", n))

        def set_description(self, text):
            calls.append(("desc", text))

        def close(self):
            calls.append(("close", None))

    monkeypatch.setattr(tqdm.auto, "tqdm", FakeBar)
    folder = tmp_path / "corpus"
    write_corpus(str(folder), 12)
    cl.load(folder, cache=tmp_path / "cache", progress=True)
    first = list(calls)
    calls.clear()
    cl.load(folder, cache=tmp_path / "cache", progress=True)
    assert ("desc", "celerylab.load (12 cached)") not in first
    assert sum(n for k, n in first if k == "update") == 12
    assert ("desc", "celerylab.load (12 cached)") in calls and ("update", 12) in calls
