"""Every bad file gets a clear reason in ps.errors; every good file is still loaded."""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import json
import marshal
import os
import pickle
import pstats
import random
import re
import warnings
from pathlib import Path

import pytest

import celerylab as cl
from celerylab import LoadError
from celerylab.core import decode as _pstats
from celerylab.testing import write_not_utf8

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
    files = {
        "empty.prof": (b"", "empty file"),
        "truncated.prof": (raw[: len(raw) // 2], "truncated"),
        "random.prof": (random.Random(1).randbytes(4096), "binary data of no known format"),
        "gprof.prof": (GPROF_TEXT.encode(), "GNU gprof"),
        "data.prof": (json.dumps({"a": [1, 2, 3]}).encode(), "JSON"),
        "pickled.prof": (pickle.dumps(good), "pickle"),
        "list.prof": (marshal.dumps([1, 2, 3]), "marshal dump of a list"),
        "shape.prof": (marshal.dumps({("a.py", 1, "f"): (1, 2, 3)}), "wrong shape"),
        "badkey.prof": (marshal.dumps({"f": (1, 1, 0.1, 0.1, {})}), "wrong shape"),
        "nan.prof": (marshal.dumps(nan_stats), "NaN"),
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


def test_a_folder_named_twice_or_inside_another_is_loaded_once_without_an_error(tmp_path):
    """Naming a folder twice, or a folder and one inside it, in either order, loads each file once; nothing is
    reported (it was once "symlink loop (directory already visited)", with a warning that files could not be
    loaded), while a real symlink loop still is."""
    folder = tmp_path / "p"
    paths = make_set(folder, 3)
    make_set(folder / "sub", 2)
    whole = cl.load(folder, cache=False)
    assert len(whole) == 5 and not len(whole.errors)
    for source in ([folder, folder], [folder, folder / "sub"], [folder / "sub", folder], [str(folder), paths[0]]):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "could not be loaded"
            ps = cl.load(source, cache=False)
        assert not len(ps.errors), source
        assert sorted(ps.profiles["path"]) == sorted(whole.profiles["path"]), source
        assert ps.to_pstats_dict() == whole.to_pstats_dict()
    os.symlink(folder, folder / "sub" / "back")  # a link to a folder above: still a loop, still reported
    with pytest.warns(UserWarning, match="could not be loaded"):
        ps = cl.load(folder, cache=False)
    assert [os.path.basename(p) for p in ps.errors["path"]] == ["back"]
    assert "symlink loop" in ps.errors["reason"].iloc[0] and len(ps) == 5


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
    # a parser process that reaches this file dies (os._exit), as on a marshal bug or an OOM kill: the parent
    # hands the variable to its worker processes, which start clean (they do not fork the test process)
    monkeypatch.setenv(_pstats.CRASH_ENV, str(killer))
    with pytest.warns(UserWarning, match="1 file"):
        ps = cl.load(tmp_path, cache=False, jobs=2, isolate=True)
    assert ps.errors.to_dict("records") == [
        {"path": str(killer), "reason": "the parser process crashed on this file (hostile or corrupt data)"}
    ]
    assert sorted(ps.profiles["path"]) == good
    assert ps.to_pstats_dict() == pstats.Stats(*good).stats
    # the hook fires only in parser processes: parsed in this process, the same file loads
    assert len(cl.load(str(killer), cache=False, jobs=1)) == 1
    # and the pool that lost a worker is replaced: a later parallel load of everything works
    monkeypatch.delenv(_pstats.CRASH_ENV)
    ps = cl.load(tmp_path, cache=False, jobs=2, isolate=True)
    assert len(ps) == 17 and not len(ps.errors)


def test_hidden_profile_files_are_loaded_or_reported_never_skipped(tmp_path):
    # GIVEN hidden profile files in a folder (another tool's, or an older capture's .hidden.task.<id>.prof)
    good = make_set(tmp_path / "src", 3)
    hidden = []
    for i, p in enumerate(good):
        target = tmp_path / f".hidden{i}.prof" if i < 2 else tmp_path / f".hidden{i}.prof.gz"
        data = Path(p).read_bytes()
        target.write_bytes(__import__("gzip").compress(data) if target.suffix == ".gz" else data)
        hidden.append(str(target))
    (tmp_path / ".broken.prof").write_bytes(b"")  # a hidden profile that cannot be read: reported
    (tmp_path / ".DS_Store").write_bytes(b"\0\1")  # a hidden file that is no profile: left out, as before
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.prof").write_bytes(b"")  # hidden folders are not walked
    # WHEN the folder, and a glob naming hidden files, are loaded
    with pytest.warns(UserWarning, match="could not be loaded"):
        ps = cl.load(tmp_path, cache=False)
    # THEN every hidden profile is loaded, the broken one is in ps.errors
    assert set(hidden) <= set(ps.profiles["path"])
    assert [os.path.basename(p) for p in ps.errors["path"]] == [".broken.prof"]
    by_glob = cl.load(str(tmp_path / ".hidden*"), cache=False)
    assert sorted(by_glob.profiles["path"]) == sorted(hidden) and len(by_glob.errors) == 0


def _good_dict():
    return {("a.py", 1, "f"): (1, 1, 0.5, 0.5, {}), ("~", 0, "<built-in method builtins.len>"): (2, 2, 0.1, 0.1, {})}


REASONS = {
    # name: (content, the reason must contain this)
    "random-bytes": (random.Random(7).randbytes(4096), "binary data of no known format (first bytes "),
    "short-random": (bytes([0xE9, 0x17, 0x92]), "binary data of no known format"),
    "text": (b"hello, this is a note about the profiles\n" * 20, "a text file, not a cProfile dump"),
    "latin1-text": ("caf\xe9 r\xe9sum\xe9 " * 50).encode("latin-1"),
    "gprof": (GPROF_TEXT.encode(), "a text file that looks like GNU gprof output"),
    "printed": (b"   ncalls  tottime  percall  cumtime  percall filename:lineno(function)\n", "printed pstats"),
    "callgrind": (b"version: 1\ncreator: yappi\npid: 1\nevents: Ticks\nfl=(1) a.py\nfn=(1) f a.py:1\n", "callgrind"),
    "json": (json.dumps({"a": [1, 2, 3]}).encode(), "a JSON file, not a cProfile dump"),
    "jsonl": (b'{"a": 1}\n{"a": 2}\n', "a JSON-lines file"),
    "speedscope": (
        json.dumps({"$schema": "https://www.speedscope.app/file-format-schema.json"}).encode(),
        "a speedscope JSON profile",
    ),
    "chrome-trace": (json.dumps({"traceEvents": [{"ph": "X"}]}).encode(), "a Chrome trace-event JSON file"),
    "html": (b"<!DOCTYPE html><html><body>pyinstrument</body></html>", "an HTML file"),
    "pickle": (pickle.dumps(_good_dict()), "a Python pickle (protocol"),
    "zip": (b"PK\x03\x04" + bytes(60), "a zip archive, not a cProfile dump"),
    "bzip2": (bz2.compress(marshal.dumps(_good_dict())), "a bzip2-compressed file"),
    "pyc": (
        importlib.util.MAGIC_NUMBER + bytes(12) + marshal.dumps(compile("1", "x", "eval")),
        "a compiled Python module (.pyc)",
    ),
    "marshal-list": (marshal.dumps([1, 2, 3]), "a marshal dump of a list, not the dict cProfile writes"),
    "marshal-int": (marshal.dumps(12345), "a marshal dump of an int, not the dict cProfile writes"),
    "marshal-shape": (marshal.dumps({("a.py", 1, "f"): (1, 2, 3)}), "wrong shape: an entry is not (cc, nc, tt, ct"),
    # a dict keyed by a slice: marshal's TYPE_SLICE (':'), written by Python 3.14+, unknown to 3.11
    "newer-marshal": (b"\xfb:\xe9\x01\x00\x00\x00N" + bytes(8), "a marshal dump this Python (3.11) cannot read"),
    "gzip-text": (gzip.compress(b"just some words in a text file\n" * 10), "gzip-compressed, and inside: a text file"),
    "gzip-json": (gzip.compress(b'{"a": 1}'), "gzip-compressed, and inside: a JSON file"),
    "gzip-truncated": (gzip.compress(marshal.dumps(_good_dict()))[:-12], "truncated gzip file"),
    "gzip-twice": (
        gzip.compress(gzip.compress(marshal.dumps(_good_dict()))),
        "gzip-compressed, and inside: a gzip-compressed file",
    ),
}
REASONS["latin1-text"] = (REASONS["latin1-text"], "binary data of no known format")  # not UTF-8: not called text


@pytest.mark.parametrize("kind", sorted(REASONS))
def test_each_reason_says_what_the_file_is(tmp_path, kind):
    data, expected = REASONS[kind]
    path = tmp_path / f"{kind}.prof"
    path.write_bytes(data)
    with pytest.warns(UserWarning, match="1 file"):
        ps = cl.load(str(path), cache=False, jobs=1)
    (reason,) = ps.errors["reason"].tolist()
    assert expected in reason, reason
    assert not reason.endswith(("'", "(", ",")) and "\n" not in reason


@pytest.mark.parametrize("seed", range(40))
def test_random_bytes_are_never_called_text(seed):
    rng = random.Random(seed)
    data = rng.randbytes(rng.choice([5, 7, 64, 4096, 5000]))
    with pytest.raises(_pstats.BadProfile) as info:
        _pstats.decode(data)
    assert "text" not in str(info.value) or data.decode("utf-8", "replace").isprintable()


def test_long_reasons_are_cut_at_a_word_boundary():
    key = ("a.py", "not a line", "f" * 10 + " " + "g" * 200)
    with pytest.raises(_pstats.BadProfile) as info:
        chunk = _pstats.Chunk()
        _pstats.add_dict(chunk, 0, {key: (1, 1, 0.1, 0.1, {})})
    reason = str(info.value)
    assert reason.startswith("wrong shape: function key ")
    assert "…" in reason and "g" * 50 not in reason  # cut before the long word, not inside it


def test_the_warning_counts_every_group_of_reasons(tmp_path):
    make_set(tmp_path, 2, with_sidecars=False)
    kinds = ["text", "json", "pickle", "zip", "marshal-list", "newer-marshal", "gzip-text"]
    for i, kind in enumerate(kinds):
        for j in range(i % 2 + 1):
            (tmp_path / f"{kind}-{j}.prof").write_bytes(REASONS[kind][0])
    with pytest.warns(UserWarning) as rec:
        ps = cl.load(tmp_path, cache=False, jobs=1)
    (msg,) = [str(w.message) for w in rec]
    n = len(ps.errors)
    assert msg.startswith(f"celerylab.load: {n} file(s) could not be loaded")
    counts = [int(c) for c in re.findall(r"\((\d+)\)(?:;| —)", msg)]
    assert sum(counts) == n == 10 and len(counts) == len(kinds)  # every group, not only the top four


def test_names_that_are_not_utf8_load_exactly(tmp_path):
    """A file name of bytes that are not UTF-8 (``os.fsdecode`` keeps each odd byte as a lone surrogate), a function
    named with a lone surrogate and a sidecar's text holding one: pstats reads all three, and so does ``load``, with
    and without the cache (the ``str`` dtype is UTF-8 Arrow and cannot hold them: a path stays exact in an object
    column, a name or category is shown escaped).  They once failed the whole load with UnicodeEncodeError."""
    folder = tmp_path / "p"
    good = make_set(folder, 2)
    odd, broken = write_not_utf8(str(folder), good[0], task_name="odd\udcfftask")
    paths = sorted([*good, *odd])

    def shown(text):  # a lone surrogate, as the frames show it
        return text.encode("utf-8", "backslashreplace").decode()

    oracle = {(f, line, shown(n)): v for (f, line, n), v in pstats.Stats(*paths).stats.items()}
    for cache in (False, tmp_path / "cache", tmp_path / "cache"):
        with pytest.warns(UserWarning, match="1 file"):
            ps = cl.load(folder, cache=cache)
        assert sorted(ps.profiles["path"]) == paths
        assert pstats.Stats(*ps.profiles["path"]).total_tt == pstats.Stats(*paths).total_tt
        assert list(ps.errors["path"]) == [broken]
        labels = ps.functions.set_index("func_id")["label"]
        keys = ps.functions.set_index("func_id")[["file", "line", "name"]]
        got = ps.stats.groupby("func_id")[["tottime", "cumtime"]].sum()
        assert len(got) == len(oracle)
        for fid, row in got.iterrows():
            key = tuple(keys.loc[fid])
            assert (row["tottime"], row["cumtime"]) == pytest.approx(oracle[key][2:4], rel=0, abs=0), labels[fid]
        # shown escaped where they are shown (the function is known by its id): every view treats them as text
        assert "b.py:3(bad\\udc80name)" in set(labels)
        assert "odd\\udcfftask" in set(ps.profiles["task_name"].astype(object))
    assert len(cl.diff(ps, split_by="run")) and len(ps.top(5))
    ps.report(tmp_path / "report.html")
    assert "bad\\udc80name" in (tmp_path / "report.html").read_text(encoding="utf-8")
