"""The cache: re-open gives identical frames; only new/changed files are parsed; removed files drop out."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import pstats
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import celerylab as cl
import celerylab.core.cache as cache_mod
import celerylab.core.load as load_mod
from celerylab.core import sources

from .conftest import make_set

FRAMES = ("profiles", "functions", "stats", "edges", "sql", "allocations", "errors")


@pytest.fixture
def parsed_files(monkeypatch):
    """Records which files the parser is asked to parse."""
    seen: list[str] = []
    real = load_mod.parse

    def spy(files, jobs, bar, isolate=False, sidecars=None, sizes=None):
        seen.extend(files)
        return real(files, jobs, bar, isolate, sidecars, sizes)

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
            if f == "core.bin":
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
    assert any((tmp_path / "default-cache").rglob("core.bin"))


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


def _uncached(folder) -> cl.ProfileSet:
    return cl.load(folder, cache=False)


def _same_as_uncached(ps, folder) -> None:
    fresh = _uncached(folder)
    # functions too: the same ids as an uncached load, and no function that no profile holds
    for name in ("profiles", "functions", "stats", "edges", "errors"):
        pdt.assert_frame_equal(getattr(ps, name), getattr(fresh, name), check_categorical=False)
    assert ps.to_pstats_dict() == pstats.Stats(*fresh.profiles["path"]).stats


def _bump_mtime(path: str) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


@pytest.mark.parametrize("change", ["touch", "replace", "delete", "add"])
def test_each_kind_of_change_reparses_exactly_that_file(tmp_path, parsed_files, change):
    """A touched file (same bytes, new mtime) is parsed again; a file replaced by other content of another profile
    gives that profile's numbers; a deleted one drops out; an added one is parsed — and nothing else is."""
    folder = tmp_path / "p"
    paths = make_set(folder, 6)
    cache = tmp_path / "cache"
    cl.load(folder, cache=cache)
    parsed_files.clear()
    target = paths[3]
    if change == "touch":
        _bump_mtime(target)
        expect = [target]
    elif change == "replace":
        # other content: another profile's bytes (tmp name + os.replace, as an editor or capture would do)
        tmp = target + ".new"
        Path(tmp).write_bytes(Path(paths[0]).read_bytes())
        os.replace(tmp, target)
        _bump_mtime(target)
        expect = [target]
    elif change == "delete":
        os.remove(target)
        expect = []
    else:
        extra = make_set(tmp_path / "q", 7)[-1]
        target = str(folder / ("zz-added-" + os.path.basename(extra)))
        Path(target).write_bytes(Path(extra).read_bytes())
        expect = [target]
    ps = cl.load(folder, cache=cache)
    assert sorted(parsed_files) == expect
    _same_as_uncached(ps, folder)
    if change == "replace":
        row = ps.profiles.set_index("path").loc[target]
        assert row["total_tt"] == pstats.Stats(paths[0]).total_tt
    assert (target in ps.profiles["path"].tolist()) == (change != "delete")
    # the updated cache re-opens unchanged, without parsing
    parsed_files.clear()
    again = cl.load(folder, cache=cache)
    assert parsed_files == []
    _same_as_uncached(again, folder)


@pytest.mark.parametrize("name", ["core.bin", "keys.pickle"])
def test_truncated_cache_file_is_ignored_and_rebuilt(tmp_path, parsed_files, name):
    """A cache file cut short (a full disk, a killed copy) is never read as data: the files are parsed again and
    the cache rewritten."""
    folder = tmp_path / "p"
    paths = make_set(folder, 4)
    cache = tmp_path / "cache"
    cl.load(folder, cache=cache)
    (victim,) = list(cache.glob(f"*/gen-*/{name}"))
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    # and the built frames too, so that the re-open has to rebuild them from the columns
    for f in cache.rglob("frames-*/frames.pickle"):
        f.write_bytes(f.read_bytes()[:10])
    parsed_files.clear()
    ps = cl.load(folder, cache=cache)
    assert sorted(parsed_files) == paths
    _same_as_uncached(ps, folder)
    parsed_files.clear()
    _same_as_uncached(cl.load(folder, cache=cache), folder)


@pytest.mark.parametrize("damage", ["cut", "padded", "garbage", "a plain pickle", "other shape"])
def test_damaged_cached_frames_are_rebuilt_from_the_columns(tmp_path, parsed_files, damage):
    import pickle

    from celerylab.core import cache as cache_mod

    folder = tmp_path / "p"
    make_set(folder, 4)
    cache = tmp_path / "cache"
    cl.load(folder, cache=cache)
    (victim,) = list(cache.rglob("frames-*/frames.pickle"))
    data = victim.read_bytes()
    if damage == "other shape":
        cache_mod._dump_mapped([1], str(victim))
    else:
        victim.write_bytes(
            {
                "cut": data[: len(data) // 2],
                "padded": data + bytes(64),
                "garbage": b"\x80\x05junk",
                "a plain pickle": pickle.dumps(pickle.loads(b"\x80\x05]\x94.")),  # format 5's kind of file
            }[damage]
        )
    parsed_files.clear()
    ps = cl.load(folder, cache=cache)
    assert parsed_files == []  # the columns were fine: only the frames are built again
    _same_as_uncached(ps, folder)
    (again,) = list(cache.rglob("frames-*/frames.pickle"))
    assert set(cache_mod._load_mapped(str(again))) == set(cache_mod._FRAMES)  # and written back whole


def test_frames_from_the_cache_are_writable_and_never_written_back(tmp_path):
    # their column buffers are a private mapping of the cache file: a user's edit changes their frame, not the cache
    folder = tmp_path / "p"
    make_set(folder, 4)
    cache = tmp_path / "cache"
    first = cl.load(folder, cache=cache)
    ps = cl.load(folder, cache=cache)
    ps.functions.loc[0, "line"] = 123456
    ps.profiles.loc[0, "total_tt"] = -1.0
    again = cl.load(folder, cache=cache)
    pdt.assert_frame_equal(again.functions, first.functions)
    pdt.assert_frame_equal(again.profiles, first.profiles)
    assert ps.functions.loc[0, "line"] == 123456
    # the empty frames (no SQL, no allocations, no errors, no metadata report) are copies of one template each: an
    # edit of one set's stays in that set
    for name in ("sql", "allocations", "errors", "metadata_report"):
        mine, pristine = getattr(ps, name), getattr(first, name).copy()
        mine["added"] = 1
        mine.columns.name = "renamed"
        mine.index.name = "row"
        mine.insert(0, "inserted", [])
        del mine[mine.columns[1]]
        for other in (getattr(first, name), getattr(cl.load(folder, cache=cache), name), getattr(again, name)):
            pdt.assert_frame_equal(other, pristine)
            assert other.columns.name is None and other.index.name is None and not len(other)


def test_re_opened_columns_have_numpys_own_dtypes(tmp_path):
    """Every numeric column of a re-opened set has numpy's dtype object itself, as a parsed set's do: numpy's pickle
    makes arrays with a copy of their dtype, on which ``np.add.at`` (the diff's walks) leaves its fast path (a diff
    of a re-opened set took 3.5x as long)."""
    folder = tmp_path / "p"
    make_set(folder, 6)
    cache = tmp_path / "cache"
    cl.load(folder, cache=cache)
    ps = cl.load(folder, cache=cache)
    for name in ("stats", "edges", "profiles", "functions"):
        frame = getattr(ps, name)
        numeric = [c for c in frame.columns if frame[c].dtype.kind in "biuf" and isinstance(frame[c].dtype, np.dtype)]
        assert numeric, name
        for c in numeric:
            col = frame[c].to_numpy()
            assert col.dtype is np.dtype(col.dtype.str), (name, c)
    tt = ps.stats["tottime"].to_numpy()
    acc = np.zeros(3)
    np.add.at(acc, np.arange(len(tt)) % 3, tt)
    assert acc.sum() == pytest.approx(tt.sum(), rel=1e-12)


def _round_trip(tmp_path, obj):
    path = str(tmp_path / "frames.bin")
    cache_mod._dump_mapped(obj, path)
    return cache_mod._load_mapped(path)


WHEN = pd.to_datetime(["2026-01-01", "2026-01-02", None, "2026-01-02", None], utc=True)


def test_frames_are_stored_by_their_columns_and_come_back_identical(tmp_path):
    """The frames file makes frames, categoricals and str columns again from their columns and buffers: every
    dtype, category order, missing value and column name comes back as it was."""
    strings = pd.array(["a", None, "ccc", "", "dé"], dtype="str")
    frame = pd.DataFrame(
        {
            "i32": np.arange(5, dtype=np.int32),
            "f": [0.5, np.nan, -0.0, np.inf, 1e-300],
            "s": strings,
            "s_na": pd.array(["x", None, "y", "z", "w"], dtype=pd.StringDtype("pyarrow", na_value=pd.NA)),
            "s_sliced": pd.array(["p", "q", "r", "s", "t", "u", "v"], dtype="str")[2:],
            "cat": pd.Categorical(["b", "a", None, "b", "a"], categories=["b", "a"]),
            # equal to `cat` by pandas' == (unordered): its own order must stay its own
            "cat_other_order": pd.Categorical(["a", "b", "a", None, "b"], categories=["a", "b"]),
            "cat_ordered": pd.Categorical(["lo", "hi", "lo", "hi", "lo"], categories=["lo", "hi"], ordered=True),
            "cat_empty": pd.Categorical([None] * 5),
            "cat_empty_2": pd.Categorical([None] * 5),
            "cat_int": pd.Categorical([3, 1, 3, 1, 1]),
            "cat_when": pd.Categorical(WHEN),
            "cat_float": pd.Categorical([0.5, 1.5, 0.5, None, 0.5]),
            # equal as tuples ((1,) == (True,)): not one dtype
            "cat_one": pd.Categorical([1, None, 1, 1, 1], categories=pd.Index([1], dtype=object)),
            "cat_true": pd.Categorical([True, None, True, True, True], categories=pd.Index([True], dtype=object)),
            "when": pd.to_datetime(["2026-01-01", None, "2026-01-02", "2026-01-03", None], utc=True),
            "when_s": pd.to_datetime(["2026-01-01", None, "2026-01-02", "2026-01-03", None], utc=True).as_unit("s"),
            "when_paris": pd.to_datetime(["2026-01-01", None, "2026-07-02", "2026-01-03", None]).tz_localize(
                "Europe/Paris"
            ),
            "when_naive": pd.to_datetime(["2026-01-01", None, "1677-09-22", "2262-04-11", None]).as_unit("ms"),
            "cat_many": pd.Categorical([f"c{i}" for i in range(5)], categories=[f"c{i}" for i in range(100)]),
            "n": pd.array([1, None, 3, 4, 5], dtype="Int64"),
            "obj": np.array([[1], None, "x", {"k": 1}, 2.5], dtype=object),
            "flag": np.array([True, False, True, True, False]),
        }
    )
    frame.columns.name = "cols"
    empty = frame.iloc[:0].copy()
    no_columns = pd.DataFrame(index=pd.RangeIndex(3))
    own_index = frame.set_index("i32")
    with_attrs = frame.copy()
    with_attrs.attrs["source"] = "x"
    multi = pd.DataFrame(np.ones((2, 2)), columns=pd.MultiIndex.from_tuples([("a", 1), ("a", 2)]))
    plain = frame.copy()
    plain.columns.name = None  # its column names come as one tuple, their index made once per process
    frames = {"f": frame, "e": empty, "n": no_columns, "o": own_index, "a": with_attrs, "m": multi, "p": plain}
    back = _round_trip(tmp_path, frames)
    pdt.assert_frame_equal(back["f"], frame)
    assert back["f"].columns.name == "cols"
    pdt.assert_frame_equal(back["p"], plain)
    assert back["p"].columns.dtype == plain.columns.dtype and back["p"].columns.name is None
    for c in ("when", "when_s", "when_paris", "when_naive"):
        assert back["f"][c].dtype == frame[c].dtype and str(back["f"][c].dt.tz) == str(frame[c].dt.tz), c
        assert back["f"][c].isna().tolist() == frame[c].isna().tolist(), c
    # few categories of plain values: one dtype object per process (they are immutable), read after read
    again = _round_trip(tmp_path, frames)
    for c in ("cat", "cat_ordered", "cat_empty", "cat_int", "cat_one", "cat_true"):
        assert again["f"][c].dtype is back["f"][c].dtype is back["p"][c].dtype, c
    for c in ("cat_float", "cat_when", "cat_many"):  # made again each time, as pandas makes them
        assert again["f"][c].dtype is not back["f"][c].dtype, c
    for c in frame.columns:
        assert back["f"][c].dtype == frame[c].dtype, c
        if isinstance(frame[c].dtype, pd.CategoricalDtype):
            assert list(back["f"][c].cat.categories) == list(frame[c].cat.categories), c
            assert back["f"][c].cat.ordered == frame[c].cat.ordered, c
            assert type(back["f"][c].cat.categories) is type(frame[c].cat.categories), c
    assert type(back["f"].columns) is type(frame.columns) and back["f"].columns.dtype == frame.columns.dtype
    assert list(back["f"]["cat_other_order"].cat.codes) == [0, 1, 0, -1, 1]
    assert back["f"]["cat_true"].iloc[0] is True and type(back["f"]["cat_one"].iloc[0]) is int
    assert back["f"]["s"].isna().tolist() == [False, True, False, False, False]
    assert back["f"]["s_na"].dtype.na_value is pd.NA
    pdt.assert_frame_equal(back["e"], empty)
    pdt.assert_frame_equal(back["n"], no_columns)
    pdt.assert_frame_equal(back["o"], own_index)
    pdt.assert_frame_equal(back["a"], with_attrs)
    assert back["a"].attrs == {"source": "x"}
    pdt.assert_frame_equal(back["m"], multi)
    # the columns are views of the mapping: a write changes the frame, and the categories stay checked by pandas
    back["f"].loc[0, "i32"] = 99
    assert back["f"]["i32"].iloc[0] == 99
    with pytest.raises(TypeError):
        back["f"].loc[0, "cat"] = "not a category"


def test_signatures_stat_in_c_equal_os_stat(tmp_path, monkeypatch):
    from celerylab._files import sidecar_path
    from celerylab.core import cache as cache_mod
    from celerylab.core import decode
    from celerylab.core.decode import _cdecode
    from celerylab.core.sources import discover

    folder = tmp_path / "p é"  # a non-ASCII folder name: encoded as os.stat encodes it
    paths = make_set(folder, 4)
    os.remove(paths[1][: -len(".prof")] + ".json")  # one profile without its sidecar
    os.symlink(paths[0], folder / "link.prof")
    files = [*paths, str(folder / "link.prof"), str(folder / "gone.prof")]
    found = discover(str(folder))

    def os_stat(path):
        try:
            st = os.stat(path)
        except OSError:
            return [-1, -1]
        return [st.st_size, st.st_mtime_ns]

    want = [os_stat(p) + os_stat(sidecar_path(p)) for p in files]
    assert sum(w[0] > 0 for w in want) == 5 and want[1][2] == -1 and want[-1][0] == -1
    assert _cdecode is not None
    assert cache_mod._sigs(files, found).tolist() == want
    assert cache_mod._sigs(files, None).tolist() == want
    many = files * 30  # long enough for a second thread to stat the second half: the same rows, in order
    sides = [sidecar_path(p) if i % 3 else None for i, p in enumerate(many)]
    want_many = [os_stat(p) + (os_stat(s) if s else [-1, -1]) for p, s in zip(many, sides)]
    assert decode.stat_sigs(many, sides).tolist() == want_many
    # started in threads of their own (one, or two past 1 024 calls), while the caller goes on: the same rows
    huge = many * 12
    huge_sides = sides * 12
    assert sum(s is not None for s in huge_sides) + len(huge) > 1024
    named = decode.names_blob(huge, huge_sides)  # a kept walk's names: one bytes object, no str per file
    assert named.count(b"\0") == 2 * len(huge) and "p é".encode() in named
    for got, args in (
        (decode.stat_sigs_started(many, sides), (many, sides)),
        (decode.stat_sigs_started(huge, huge_sides), (huge, huge_sides)),
        (decode.stat_names_started(named, len(huge)), (huge, huge_sides)),
        (decode.stat_names_started(decode.names_blob(many, sides), len(many)), (many, sides)),
        (cache_mod.sigs_started(files, found), (files, found.sidecars_of(files))),
        (decode.stat_sigs_started([], []), ([], [])),
        (decode.stat_names_started(b"", 0), ([], [])),
    ):
        first = got()
        assert first.tolist() == decode.stat_sigs(*args).tolist() and got().tolist() == first.tolist()
    for _ in range(20):  # a job dropped unwaited joins its threads (nothing freed under them)
        _cdecode.stat_start(huge, huge_sides)
        _cdecode.stat_start(named, len(huge))
    with pytest.raises(ValueError, match="differ in length"):
        _cdecode.stat_start(many, sides[:-1])
    for bad, n, why in (
        (named[:-1], len(huge), "end after"),
        (named + b"x\0", len(huge), "more than"),
        (named, len(named), "cannot hold"),
        (named, -1, "cannot hold"),
        (b"a\0", 1, "end after"),
        (b"a\0", 2, "cannot hold"),
    ):
        with pytest.raises(ValueError, match=why):
            _cdecode.stat_start(bad, n)
    with pytest.raises(TypeError, match="lists"):
        _cdecode.stat_start(named, sides)
    monkeypatch.setattr(decode, "_cdecode", None)  # the os.stat path gives the same signatures
    assert cache_mod._sigs(files, found).tolist() == want
    assert cache_mod.sigs_started(files, found)().tolist() == want
    assert decode.stat_names_started(named, len(huge))().tolist() == decode.stat_sigs(huge, huge_sides).tolist()


# --------------------------------------------------------------------------------------------- the kept walk
def _quiet(folder) -> None:
    """Every folder under ``folder`` last changed a minute ago (as a corpus written earlier is)."""
    past = os.stat(folder).st_mtime_ns - 60 * 10**9
    for d, _, _ in os.walk(folder):
        os.utime(d, ns=(past, past))


@pytest.fixture
def walks(monkeypatch):
    """Counts the walks of a source (discover) that loads make."""
    n = [0]
    real = load_mod.discover

    def spy(source):
        n[0] += 1
        return real(source)

    monkeypatch.setattr(load_mod, "discover", spy)
    return n


@pytest.mark.parametrize(
    "change", ["none", "add", "delete", "rename", "add sidecar", "add in subfolder", "new subfolder", "touch"]
)
def test_a_kept_walk_serves_re_opens_until_a_folder_changes(tmp_path, walks, parsed_files, change, monkeypatch):
    folder = tmp_path / "p"
    paths = make_set(folder, 6, with_sidecars=False)
    sub = make_set(folder / "sub", 2, with_sidecars=False)
    _quiet(folder)
    cache = tmp_path / "cache"
    first = cl.load(folder, cache=cache)
    assert walks[0] == 1 and len(first) == 8
    again = cl.load(folder, cache=cache)
    assert walks[0] == 1, "an unchanged re-open walks nothing"
    for name in FRAMES:
        pdt.assert_frame_equal(getattr(first, name), getattr(again, name))
    parsed_files.clear()
    target = paths[2]
    if change == "add":
        Path(folder / "zz-new.prof").write_bytes(Path(paths[0]).read_bytes())
    elif change == "delete":
        os.remove(target)
    elif change == "rename":
        os.rename(target, str(folder / "renamed.prof"))
    elif change == "add sidecar":
        Path(target[: -len(".prof")] + ".json").write_text(json.dumps({"task_name": "late.sidecar", "queue": "q"}))
    elif change == "add in subfolder":
        Path(folder / "sub" / "zz-new.prof").write_bytes(Path(sub[0]).read_bytes())
    elif change == "new subfolder":
        (folder / "deeper").mkdir()
        Path(folder / "deeper" / "x.prof").write_bytes(Path(paths[0]).read_bytes())
    elif change == "touch":
        _bump_mtime(target)  # a file changed in place: the signatures' business, the walk is still the same
    ps = cl.load(folder, cache=cache)
    parsed = list(parsed_files)
    assert walks[0] == (1 if change in ("none", "touch") else 2)
    assert parsed == {"none": [], "delete": [], "rename": [str(folder / "renamed.prof")], "touch": [target],
                      "add sidecar": [target], "add": [str(folder / "zz-new.prof")],
                      "add in subfolder": [str(folder / "sub" / "zz-new.prof")],
                      "new subfolder": [str(folder / "deeper" / "x.prof")]}[change]  # fmt: skip
    _same_as_uncached(ps, folder)
    if change == "add sidecar":
        row = ps.profiles.set_index("path").loc[target]
        assert row["task_name"] == "late.sidecar" and row["queue"] == "q"

    # the walk is kept with the generation that holds its files (a walk kept before a file changed in place is
    # kept again with the new one; a changed folder is walked again once it is quiet): a re-open then reads
    # neither the walk's files nor the generation's as Python objects, and stats only the files the walk names
    def kept_gen():
        (kept_file,) = Path(cache).glob("*/walk.pickle")
        kept = pickle.loads(kept_file.read_bytes())[1]
        assert kept.n == len(ps)
        return kept.gen, (kept_file.parent / "CURRENT").read_text()

    if change in ("none", "touch"):
        assert kept_gen()[0] == kept_gen()[1]
    _quiet(folder)
    cl.load(folder, cache=cache)
    walked, n_parsed = walks[0], len(parsed_files)
    assert kept_gen()[0] == kept_gen()[1]
    monkeypatch.setattr(cache_mod.KeptWalk, "found", lambda self: pytest.fail("the kept walk was unpickled"))
    monkeypatch.setattr(cache_mod.Store, "load", lambda *a, **k: pytest.fail("the files were listed"))
    fast = cl.load(folder, cache=cache)
    assert walks[0] == walked and len(parsed_files) == n_parsed
    for name in FRAMES:
        pdt.assert_frame_equal(getattr(fast, name), getattr(ps, name))


def test_a_walk_of_folders_changed_just_before_it_is_not_kept(tmp_path, walks):
    folder = tmp_path / "p"
    make_set(folder, 3)
    # the folder changed a moment ago (its mtime set ahead, so that a slow machine cannot make it 2 s old before
    # the walk): a change after the walk might keep its mtime
    soon = time.time_ns() + 10 * 10**9
    os.utime(folder, ns=(soon, soon))
    cache = tmp_path / "cache"
    cl.load(folder, cache=cache)
    cl.load(folder, cache=cache)
    assert walks[0] == 2
    assert not list(Path(cache).glob("*/walk.pickle"))
    found = sources.discover(folder)
    assert not sources.keepable(found)
    found.dirs = [(p, d, i, found.walked_ns - sources.QUIET_NS - 1) for p, d, i, _ in found.dirs]
    assert sources.keepable(found)
    found.dirs[0] = (*found.dirs[0][:3], found.walked_ns - sources.QUIET_NS)
    assert not sources.keepable(found)


@pytest.mark.parametrize("source", ["glob", "file list"])
def test_a_source_that_names_files_or_patterns_is_always_walked(tmp_path, walks, source):
    folder = tmp_path / "p"
    paths = make_set(folder, 3)
    _quiet(folder)
    src = str(folder / "*.prof") if source == "glob" else paths
    for _ in range(3):
        assert len(cl.load(src, cache=tmp_path / "cache")) == 3
    assert walks[0] == 3


def test_a_damaged_kept_walk_is_walked_again_and_rewritten(tmp_path, walks):
    folder = tmp_path / "p"
    make_set(folder, 3)
    _quiet(folder)
    cache = tmp_path / "cache"
    first = cl.load(folder, cache=cache)
    (kept,) = Path(cache).glob("*/walk.pickle")
    kept.write_bytes(kept.read_bytes()[:40])
    pdt.assert_frame_equal(cl.load(folder, cache=cache).profiles, first.profiles)
    assert walks[0] == 2
    pdt.assert_frame_equal(cl.load(folder, cache=cache).profiles, first.profiles)
    assert walks[0] == 2, "the walk was kept again"


@pytest.mark.parametrize("damage", ["garbage", "another object", "fewer files"])
def test_a_kept_walk_whose_files_cannot_be_read_back_is_walked_again(tmp_path, walks, parsed_files, damage):
    """An unchanged re-open reads only the kept walk's names; when a file changed, the whole walk is read back from
    inside it: damaged there, the source is walked again, the change merged in, and the walk kept again."""
    folder = tmp_path / "p"
    paths = make_set(folder, 3, with_sidecars=False)
    _quiet(folder)
    cache = tmp_path / "cache"
    cl.load(folder, cache=cache)
    (kept_file,) = Path(cache).glob("*/walk.pickle")
    fmt, kept = pickle.loads(kept_file.read_bytes())
    found = kept.found()
    kept.pickled = {"garbage": b"\x80\x05garbage", "another object": pickle.dumps([1, 2]),
                    "fewer files": pickle.dumps(dataclasses.replace(found, files=found.files[:2]))}[damage]  # fmt: skip
    kept_file.write_bytes(pickle.dumps((fmt, kept)))
    parsed_files.clear()
    _bump_mtime(paths[1])  # a file changed in place: the kept walk's names are stat'ed, then its files wanted
    ps = cl.load(folder, cache=cache)
    assert walks[0] == 2 and parsed_files == [paths[1]]
    kept_again = pickle.loads(kept_file.read_bytes())[1]
    assert kept_again.found() is not None and kept_again.gen == (kept_file.parent / "CURRENT").read_text()
    pdt.assert_frame_equal(cl.load(folder, cache=cache).profiles, ps.profiles)
    assert walks[0] == 2, "the walk was kept again"
    _same_as_uncached(ps, folder)


def test_the_cache_hands_the_parser_the_sizes_its_signatures_stat_ed(tmp_path, monkeypatch):
    from celerylab.core import decode

    folder = tmp_path / "p"
    paths = make_set(folder, 5)
    given = []
    real = load_mod.parse

    def spy(files, jobs, bar, isolate=False, sidecars=None, sizes=None):
        given.append((list(files), None if sizes is None else sizes.tolist()))
        return real(files, jobs, bar, isolate, sidecars, sizes)

    def no_second_stat(paths):
        raise AssertionError("the files were stat'ed again")

    monkeypatch.setattr(load_mod, "parse", spy)
    monkeypatch.setattr(decode, "file_sizes", no_second_stat)
    cl.load(folder, cache=tmp_path / "cache")
    sizes = [os.path.getsize(p) for p in paths]
    Path(paths[2]).write_bytes(Path(paths[0]).read_bytes())  # one file changed: parsed again, with its new size
    _bump_mtime(paths[2])
    ps = cl.load(folder, cache=tmp_path / "cache")
    assert sizes[2] != sizes[0]
    assert given == [(paths, sizes), ([paths[2]], [sizes[0]])]
    assert ps.to_pstats_dict() == pstats.Stats(*paths).stats


def test_new_files_between_cached_ones_merge_in_path_order_with_counts_widened(tmp_path, parsed_files):
    """Files added between cached ones (each cuts the cached rows into runs), one of them with a call count beyond
    int32 and one bad: exactly those are parsed, and the merged cache equals an uncached load, dtypes included (the
    cached int32 counts become int64, none cut to 32 bits), then re-opens unchanged."""
    import marshal

    folder = tmp_path / "p"
    paths = make_set(folder, 8)
    cache = tmp_path / "cache"
    cl.load(folder, cache=cache)
    assert str(cl.load(folder, cache=cache).stats["ncalls"].dtype) == "int32"
    donors = make_set(tmp_path / "q", 11)
    added = []
    for i, pos in enumerate((0, 3, 5)):  # before the first cached file, and between cached files
        name = os.path.basename(paths[pos])[:-5] + f"-{i}.prof"  # sorts right after paths[pos]
        Path(folder, name).write_bytes(Path(donors[8 + i]).read_bytes())
        added.append(str(folder / name))
    big = 3 * 2**31 + 7
    key = ("/srv/app/tasks.py", 10, "hot")
    Path(folder, "aa-big.prof").write_bytes(marshal.dumps({key: (big, big, 1.5, 2.5, {})}))
    Path(folder, "ab-bad.prof").write_bytes(b"not a profile")
    added += [str(folder / "aa-big.prof"), str(folder / "ab-bad.prof")]
    parsed_files.clear()
    with pytest.warns(UserWarning):
        ps = cl.load(folder, cache=cache)
    assert sorted(parsed_files) == sorted(added)
    with pytest.warns(UserWarning):
        _same_as_uncached(ps, folder)
    assert str(ps.stats["ncalls"].dtype) == "int64"
    assert ps.stats["ncalls"].max() == big
    assert ps.profiles["path"].tolist() == sorted(paths + added[:4])
    parsed_files.clear()
    with pytest.warns(UserWarning):
        again = cl.load(folder, cache=cache)
    assert parsed_files == []
    with pytest.warns(UserWarning):
        _same_as_uncached(again, folder)
    # then the file that held the only call of `hot` and a cached file are deleted: `hot` leaves `functions` too
    os.remove(folder / "aa-big.prof")
    os.remove(paths[4])
    parsed_files.clear()
    with pytest.warns(UserWarning):
        gone = cl.load(folder, cache=cache)
    assert parsed_files == []
    assert "hot" not in set(gone.functions["name"])
    with pytest.warns(UserWarning):
        _same_as_uncached(gone, folder)


@pytest.mark.parametrize("damage", ["cut", "missing"])
def test_damaged_keys_met_while_merging_a_changed_file_parse_everything_again(tmp_path, parsed_files, damage):
    """The keys and sidecars are read only when frames are rebuilt or files merged in: found damaged then, every
    file is parsed again (nothing half-merged), the cache rewritten whole, and the next re-open parses nothing."""
    folder = tmp_path / "p"
    paths = make_set(folder, 5)
    cache = tmp_path / "cache"
    cl.load(folder, cache=cache)
    (keys,) = list(cache.glob("*/gen-*/keys.pickle"))
    if damage == "cut":
        keys.write_bytes(keys.read_bytes()[:20])
    else:
        keys.unlink()
    _bump_mtime(paths[2])
    parsed_files.clear()
    ps = cl.load(folder, cache=cache)
    assert sorted(parsed_files) == paths
    _same_as_uncached(ps, folder)
    parsed_files.clear()
    again = cl.load(folder, cache=cache)
    assert parsed_files == []
    _same_as_uncached(again, folder)


def test_load_warnings_point_at_the_callers_line(tmp_path):
    """A warning of ``cl.load`` (a file it could not load, a cache it could not write) names the caller's file and
    line, not celerylab's."""
    folder = tmp_path / "p"
    make_set(folder, 2)
    (folder / "bad.prof").write_bytes(b"not a profile")
    with pytest.warns(UserWarning) as caught:
        cl.load(folder, cache=False)
    assert {w.filename for w in caught} == {__file__}
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning) as caught:
        cl.load(folder, cache=blocker)
    assert any("cannot write the cache" in str(w.message) for w in caught)
    assert {w.filename for w in caught} == {__file__}
