"""Every bad file gets a clear reason in ps.errors; every good file is still loaded."""

from __future__ import annotations

import json
import marshal
import os
import pickle
import pstats
import random
from pathlib import Path

import pytest

import celerylab as cl
from celerylab import LoadError
from celerylab.core import decode as _pstats

from .conftest import make_set

GPROF_TEXT = """Flat profile:

Each sample counts as 0.01 seconds.
  %   cumulative   self              self     total
 time   seconds   seconds    calls  ms/call  ms/call  name
 60.00      0.06     0.06        1    60.00   100.00  main
"""


def _bad_files(folder) -> dict[str, str]:
    """name -> expected fragment of the reason."""
    good = marshal.loads(Path(make_set(folder / "_src", 1, with_sidecars=False)[0]).read_bytes())
    key = next(iter(good))
    raw = marshal.dumps(good)
    nan_stats = dict(good)
    nan_stats[key] = (1, 1, float("nan"), 1.0, {})
    neg_stats = dict(good)
    neg_stats[key] = (1, -3, 0.5, 1.0, {})
    files = {
        "empty.prof": (b"", "empty file"),
        "truncated.prof": (raw[: len(raw) // 2], "truncated"),
        "random.prof": (random.Random(1).randbytes(4096), "not a cProfile dump"),
        "gprof.prof": (GPROF_TEXT.encode(), "GNU gprof"),
        "data.prof": (json.dumps({"a": [1, 2, 3]}).encode(), "JSON"),
        "pickled.prof": (pickle.dumps(good), "pickle"),
        "list.prof": (marshal.dumps([1, 2, 3]), "marshal dump of a list"),
        "shape.prof": (marshal.dumps({("a.py", 1, "f"): (1, 2, 3)}), "wrong shape"),
        "badkey.prof": (marshal.dumps({"f": (1, 1, 0.1, 0.1, {})}), "wrong shape"),
        "nan.prof": (marshal.dumps(nan_stats), "NaN"),
        "negative.prof": (marshal.dumps(neg_stats), "negative"),
        "zero.prof": (marshal.dumps({}), "no functions"),
        "printed.prof": (
            b"   ncalls  tottime  percall  cumtime  percall filename:lineno(function)\n",
            "printed pstats",
        ),
        "inprogress.prof.tmp": (raw, "temporary file"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: why for name, (_, why) in files.items()}


def test_each_bad_file_has_a_clear_reason_and_good_files_survive(tmp_path):
    good = make_set(tmp_path, 6)
    expected = _bad_files(tmp_path)
    (tmp_path / "loop").mkdir()
    os.symlink(tmp_path / "loop", tmp_path / "loop" / "again")  # directory symlink loop
    os.symlink("self.prof", tmp_path / "self.prof")  # a symlink to itself
    with pytest.warns(UserWarning, match=r"could not be loaded") as rec:
        ps = cl.load(tmp_path, cache=False, jobs=2)
    assert len(rec) == 1  # one summary line, not one warning per file
    assert sorted(ps.profiles["path"]) == sorted(good + [p for p in ps.profiles["path"] if "/_src/" in p])
    reasons = dict(zip(ps.errors["path"].map(os.path.basename), ps.errors["reason"]))
    for name, why in expected.items():
        assert why in reasons[name], (name, reasons[name])
    assert "symlink loop" in reasons["self.prof"]
    assert any("symlink loop" in r for p, r in zip(ps.errors["path"], ps.errors["reason"]) if "again" in p)
    # the good files are complete and exact
    assert ps.where(path=lambda c: ~c.str.contains("/_src/")).to_pstats_dict() == pstats.Stats(*good).stats


def test_strict_raises_one_error_listing_every_bad_file(tmp_path):
    make_set(tmp_path, 3)
    (tmp_path / "empty.prof").write_bytes(b"")
    (tmp_path / "gprof.prof").write_text(GPROF_TEXT)
    with pytest.raises(LoadError) as info:
        cl.load(tmp_path, cache=False, strict=True)
    msg = str(info.value)
    assert "2 file(s)" in msg and "empty.prof: empty file" in msg and "gprof.prof: a text file" in msg
    assert len(info.value.errors) == 2


def test_files_passed_explicitly_are_sniffed_even_with_skipped_extensions(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    make_set(tmp_path, 2)
    ps = cl.load(tmp_path, cache=False)  # walking a folder: .txt is not a candidate, no error
    assert len(ps) == 2 and len(ps.errors) == 0
    with pytest.warns(UserWarning):
        ps = cl.load(str(tmp_path / "notes.txt"), cache=False)
    assert ps.errors["reason"].tolist() == ["a text file, not a cProfile dump"]


def test_missing_paths_and_empty_globs_are_reported(tmp_path):
    make_set(tmp_path, 1)
    with pytest.warns(UserWarning):
        ps = cl.load([str(tmp_path), str(tmp_path / "nope"), str(tmp_path / "*.nothing")], cache=False)
    reasons = dict(zip(ps.errors["path"], ps.errors["reason"]))
    assert reasons[str(tmp_path / "nope")] == "no such file or directory"
    assert reasons[str(tmp_path / "*.nothing")] == "glob matched no files"
    assert len(ps) == 1


def test_unreadable_file():
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="celerylab-perm-"))  # pytest's tmp folders are private to root
    os.chmod(base, 0o755)
    folder = base / "perm"
    good = make_set(folder, 2, with_sidecars=False)
    secret = folder / "secret.prof"
    secret.write_bytes(Path(good[0]).read_bytes())
    os.chmod(secret, 0o000)
    os.chmod(folder, 0o755)
    # root reads everything: load in a forked child that has dropped to an unprivileged user
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            import warnings

            warnings.simplefilter("ignore")
            ps = cl.load(str(folder), cache=False, jobs=1)
            os.write(write_fd, json.dumps([len(ps), ps.errors.to_dict("records")]).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        out = f.read()
    os.waitpid(pid, 0)
    shutil.rmtree(base)
    n, errors = json.loads(out)
    assert n == 2
    assert errors == [{"path": str(secret), "reason": "unreadable: permission denied"}]


def test_bad_sidecar_is_reported_and_the_profile_still_loads(tmp_path):
    paths = make_set(tmp_path, 2)
    side = paths[0][: -len(".prof")] + ".json"
    with open(side, "w") as f:
        f.write("{not json")
    with pytest.warns(UserWarning):
        ps = cl.load(tmp_path, cache=False)
    assert len(ps) == 2
    assert ps.errors["path"].tolist() == [side]
    assert "sidecar is not valid UTF-8 JSON" in ps.errors["reason"].iloc[0]
    row = ps.profiles.set_index("path").loc[paths[0]]
    assert row["task_name"] == "orders.process"  # still named, from the file name
    assert row["name_source"] == "filename"


def test_a_file_that_kills_its_parser_process_is_named_and_nothing_else_is_lost(tmp_path, monkeypatch):
    good = make_set(tmp_path, 16, with_sidecars=False)
    killer = tmp_path / "zz-killer.prof"
    killer.write_bytes(Path(good[0]).read_bytes())
    real_decode = _pstats.decode

    def dying_decode(data):
        # a hostile file whose parse takes the whole process down (as a marshal bug or OOM kill would)
        if data.endswith(b"") and os.getpid() != parent and dying_decode.target in data_paths:
            os._exit(1)
        return real_decode(data)

    # the parse of one specific path must die: wrap read_bytes to remember which file is being decoded
    parent = os.getpid()
    data_paths: list[str] = []
    real_read = _pstats.read_bytes

    def tracking_read(path, *args):
        data_paths[:] = [path]
        return real_read(path, *args)

    dying_decode.target = str(killer)
    monkeypatch.setattr(_pstats, "read_bytes", tracking_read)
    monkeypatch.setattr(_pstats, "decode", dying_decode)
    with pytest.warns(UserWarning, match="1 file"):
        ps = cl.load(tmp_path, cache=False, jobs=2)  # forked workers inherit the patched module
    assert ps.errors.to_dict("records") == [
        {"path": str(killer), "reason": "the parser process crashed on this file (hostile or corrupt data)"}
    ]
    assert sorted(ps.profiles["path"]) == good
    assert ps.to_pstats_dict() == pstats.Stats(*good).stats
