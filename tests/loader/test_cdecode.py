"""The compiled decoder (celerylab/core/_cdecode.c) against the Python path: the same columns, bit for bit, on
every shape; None (the Python path takes over, nothing interned) on every shape it does not own; never a crash on
cut or corrupted bytes."""

from __future__ import annotations

import gzip
import itertools
import json
import marshal
import math
import pstats
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest

import celerylab as cl
from celerylab.core import decode
from celerylab.testing import FakeClock, fib, profile_fake_clock, workload

C = decode._cdecode


@contextmanager
def python_path():
    saved = decode._cdecode
    decode._cdecode = None
    try:
        yield
    finally:
        decode._cdecode = saved


def _same(a: dict, b: dict) -> None:
    assert a["funcs"] == b["funcs"]
    assert repr(a["outcomes"]) == repr(b["outcomes"])  # repr: NaN totals of bad files compare equal
    for part in ("stats", "edges"):
        for x, y in zip(a[part], b[part], strict=True):
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), part


def both_paths(paths: list[str]) -> dict:
    """``parse_files(paths)`` on the compiled path, checked equal to the Python path."""
    got = decode.parse_files(paths)
    with python_path():
        want = decode.parse_files(paths)
    _same(got, want)
    return got


def takes(data: bytes) -> bool:
    """Whether the compiled decoder owns these bytes (and leaves nothing interned when it does not)."""
    funcs: list = []
    index: dict = {}
    interner = C.Interner(funcs, index)
    out = interner.add(data, 0)
    if out is None:
        assert funcs == [] and index == {} and interner.pending() == 0
    return out is not None


def stats_of(n: int = 12) -> dict:
    return profile_fake_clock(workload, 3, FakeClock())


def write(tmp_path, name: str, data: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_the_compiled_decoder_is_built():
    # the install step builds it (setup.py, optional only for installs without a compiler); the suite runs on it
    assert C is not None, "celerylab.core._cdecode is not built: run scripts/dev install"
    assert C.__file__.endswith(".abi3.so")


@pytest.mark.parametrize("version", [2, 3, 4])
def test_every_marshal_version_with_binary_floats_decodes_the_same(tmp_path, version):
    stats = stats_of()
    data = marshal.dumps(stats, version)
    assert takes(data)
    got = both_paths([write(tmp_path, "p.prof", data)])
    assert got["outcomes"][0][1] is None and got["outcomes"][0][2] == len(stats)


@pytest.mark.parametrize("version", [0, 1])
def test_text_floats_of_old_marshal_versions_go_to_the_python_path(tmp_path, version):
    data = marshal.dumps(stats_of(), version)
    assert not takes(data)
    both_paths([write(tmp_path, "p.prof", data)])


def test_a_merged_pstats_dump_shares_key_tuples_and_decodes_the_same(tmp_path):
    # pstats.Stats.dump_stats after add(): caller keys are the very tuples of the function keys (marshal refs)
    files = []
    for i in range(3):
        files.append(write(tmp_path, f"f{i}.prof", marshal.dumps(profile_fake_clock(workload, i, FakeClock()))))
    merged = str(tmp_path / "merged.prof")
    pstats.Stats(*files).dump_stats(merged)
    with open(merged, "rb") as f:
        assert takes(f.read())
    both_paths([*files, merged])
    ps = cl.load([*files, merged], cache=False, jobs=1)
    assert ps.to_pstats_dict() == pstats.Stats(*files, merged).stats


def test_gzip_and_many_files_in_one_chunk_intern_the_same_ids(tmp_path):
    paths = []
    for i in range(8):
        data = marshal.dumps(profile_fake_clock(workload, i % 6, FakeClock()))
        name = f"p{i}.prof"
        if i % 2:
            data, name = gzip.compress(data), name + ".gz"
        paths.append(write(tmp_path, name, data))
    got = both_paths(paths)
    assert all(o[1] is None for o in got["outcomes"])


def _key(f="a.py", line=1, name="f"):
    return (f, line, name)


def _dump_pieces(entries: list[tuple[tuple, tuple]]) -> bytes:
    """A marshal dict written piece by piece (version 2: no refs), so that it can hold what marshal.dumps of a
    dict never writes, such as a key twice."""
    out = b"{"
    for k, v in entries:
        out += marshal.dumps(k, 2) + marshal.dumps(v, 2)
    return out + b"0"


SHAPES = {
    # name: (pstats dict or raw bytes, whether the compiled decoder owns it)
    "int times": ({_key(): (1, 1, 2, 3, {})}, True),
    "negative counts (pyinstrument)": ({_key(): (-1, -1, 0.5, 0.5, {_key(name="g"): (-1, -1, 0.1, 0.1)})}, True),
    "yappi order (pc > nc)": ({_key(): (3, 2, 0.5, 0.5, {})}, True),
    "large counts (marshal long)": (
        {_key(): (2**40, 2**41 + 5, 0.5, 0.5, {_key(name="g"): (2**35, 3, 0.1, 0.1)})},
        True,
    ),
    "negative large count": ({_key(): (-(2**40), 7, 0.5, 0.5, {})}, True),
    "counts beyond 60 bits": ({_key(): (2**62, 2**62, 0.5, 0.5, {})}, False),
    "counts beyond int64": ({_key(): (2**70, 2**70, 0.5, 0.5, {})}, False),
    "non-ascii names": (
        {
            _key("é/ü.py", 3, "naïve_函数"): (1, 1, 0.5, 0.5, {_key(): (1, 1, 0.25, 0.25)}),
            _key(): (1, 1, 0.25, 0.25, {}),
        },
        True,
    ),
    "a lone surrogate in a name": ({_key(name="bad\udc80"): (1, 1, 0.5, 0.5, {})}, True),
    "caller that is not a function of the file": (
        {_key(): (1, 1, 0.5, 0.5, {_key(name="elsewhere"): (1, 1, 0.5, 0.5)})},
        True,
    ),
    "profile module: bare caller counts": (
        {_key(): (1, 1, 0.5, 0.5, {_key(name="g"): 1}), _key(name="g"): (1, 1, 0.5, 0.5, {})},
        False,
    ),
    "profile module root": ({("profile", 0, "profiler"): (1, 1, 0.0, 0.0, {})}, True),
    "builtins": (
        {
            ("~", 0, "<built-in method builtins.len>"): (1, 1, 0.5, 0.5, {}),
            ("~", 0, "<method 'x'>"): (1, 1, 0.5, 0.5, {}),
        },
        True,
    ),
    "NaN time": ({_key(): (1, 1, math.nan, 0.5, {})}, False),
    "infinite caller time": ({_key(): (1, 1, 0.5, 0.5, {_key(name="g"): (1, 1, math.inf, 0.5)})}, False),
    "float count": ({_key(): (1.0, 1, 0.5, 0.5, {})}, False),
    "bool count": ({_key(): (True, 1, 0.5, 0.5, {})}, False),
    "string time": ({_key(): (1, 1, "0.5", 0.5, {})}, False),
    "line as float": ({("a.py", 1.0, "f"): (1, 1, 0.5, 0.5, {})}, False),
    "code object name": ({("a.py", 1, None): (1, 1, 0.5, 0.5, {})}, False),
    "short entry": ({_key(): (1, 1, 0.5, 0.5)}, False),
    "callers not a dict": ({_key(): (1, 1, 0.5, 0.5, [])}, False),
    "empty": ({}, False),
    "a list": ([1, 2], False),
    "duplicate key": (_dump_pieces([(_key(), (1, 1, 0.5, 0.5, {})), (_key(), (2, 2, 0.7, 0.7, {}))]), False),
    "duplicate caller": (
        b"{"
        + marshal.dumps(_key(), 2)
        + b"(\x05\x00\x00\x00"
        + b"".join(marshal.dumps(x, 2) for x in (1, 1, 0.5, 0.5))
        + b"{"
        + (marshal.dumps(_key(name="g"), 2) + marshal.dumps((1, 1, 0.1, 0.1), 2)) * 2
        + b"00",
        False,
    ),
    "ascii type holding latin-1 bytes": (
        b"{)\x03z\x04a\xe9.pyi\x01\x00\x00\x00z\x01f)\x05"
        + b"i\x01\x00\x00\x00" * 2
        + b"g"
        + np.float64(0.5).tobytes() * 1
        + b"g"
        + np.float64(0.5).tobytes()
        + b"{00",
        False,
    ),
    "trailing bytes after the dict": (marshal.dumps({_key(): (1, 1, 0.5, 0.5, {})}) + b"garbage", True),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_each_shape_is_decoded_the_same_or_left_to_the_python_path(tmp_path, name):
    obj, owned = SHAPES[name]
    data = obj if isinstance(obj, bytes) else marshal.dumps(obj)
    assert takes(data) == owned
    both_paths([write(tmp_path, "p.prof", data)])


def test_a_file_left_to_the_python_path_mid_chunk_does_not_shift_ids(tmp_path):
    # the duplicate-key file is parsed in C up to interning its new functions, then given up: they must be forgotten
    new_funcs = _dump_pieces(
        [(_key(name="only_here"), (1, 1, 0.5, 0.5, {})), (_key(name="only_here"), (1, 1, 0.5, 0.5, {}))]
    )
    bare = {_key(name="g"): (1, 1, 0.5, 0.5, {_key(name="h"): 2}), _key(name="h"): (2, 2, 0.5, 0.5, {})}
    paths = [
        write(tmp_path, "a.prof", marshal.dumps(stats_of())),
        write(tmp_path, "b.prof", new_funcs),
        write(tmp_path, "c.prof", marshal.dumps(bare)),  # interned by the Python path, then met by C in d
        write(
            tmp_path,
            "d.prof",
            marshal.dumps({**{k: (1, 1, 0.5, 0.5, {}) for k in bare}, _key(name="x"): (1, 1, 0.1, 0.1, {})}),
        ),
        write(tmp_path, "e.prof", b"\xfb" + b"\x00" * 7),  # cut short
        write(tmp_path, "f.prof", marshal.dumps(stats_of())),
    ]
    got = both_paths(paths)
    assert [o[1] is None for o in got["outcomes"]] == [True, True, True, True, False, True]
    assert got["funcs"].count(_key(name="only_here")) == 1


FUZZ = r"""
import json, marshal, os, random, resource, sys
from celerylab.core import decode
from celerylab.testing import FakeClock, profile_fake_clock, workload, fib
# a corrupted length can make marshal.loads ask for gigabytes: cap this process so that it gets a MemoryError
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
C = decode._cdecode
assert C is not None
def fixed(stats):  # the same bytes on every machine: file names do not depend on where the repo is
    keys = {}  # one tuple per function, as cProfile shares them: marshal writes the callers' keys as references
    k = lambda key: keys.setdefault(key, ("/app/" + os.path.basename(key[0]), key[1], key[2]))
    return {k(f): (*v[:4], {k(c): t for c, t in v[4].items()}) for f, v in stats.items()}
seeds = [marshal.dumps(fixed(profile_fake_clock(workload, 2, FakeClock()))),
         marshal.dumps(fixed(profile_fake_clock(fib, 6)), 2)]
path = os.path.join(sys.argv[1], "fuzz.prof")
rng = random.Random(7)
def parse(data):
    with open(path, "wb") as f:
        f.write(data)
    walks = C.marshal_check(data) == decode._marshal_walk(data)
    got = decode.parse_files([path])
    decode._cdecode = None
    try:
        want = decode.parse_files([path])
    finally:
        decode._cdecode = C
    same = walks and got["funcs"] == want["funcs"] and repr(got["outcomes"]) == repr(want["outcomes"])
    for part in ("stats", "edges"):
        same = same and all(x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(got[part], want[part]))
    return same, got["outcomes"][0][1] is None
cases = ok = 0
bad = []
def case(kind, data):
    global cases, ok
    same, good = parse(bytes(data))
    cases += 1; ok += good
    if not same: bad.append((kind, bytes(data).hex()[:200]))
for seed in seeds:
    for cut in range(0, len(seed), 3):
        case("cut", seed[:cut])
    for _ in range(1500):
        data = bytearray(seed)
        for _ in range(rng.choice((1, 1, 2, 4))):
            i = rng.randrange(len(data))
            data[i] = rng.choice((data[i] ^ (1 << rng.randrange(8)), rng.randrange(256), 0x72, 0x80 | data[i]))
        case("mutated", data)
    # every back-reference pointed at each of the 8 slots registered last before it: among them the tuple that holds
    # it, which marshal.loads crashes on (CPython gh-148653).  The slot count: the least index the walk calls invalid
    def slots_before(i):
        lo, hi = 0, 1 << 16
        while lo < hi:
            mid = (lo + hi) // 2
            if decode._marshal_walk(seed[: i + 1] + mid.to_bytes(4, "little") + seed[i + 5 :]) == (0, i + 5, 0):
                hi = mid
            else:
                lo = mid + 1
        return lo
    refs = [i for i in range(len(seed) - 4) if seed[i] == 0x72]
    for i in refs:
        n = slots_before(i)
        for slot in range(max(0, n - 8), n):
            data = bytearray(seed)
            data[i + 1 : i + 5] = slot.to_bytes(4, "little")
            case("ref", data)
print(json.dumps({"cases": cases, "loaded": ok, "bad": bad[:5], "n_bad": len(bad)}))
"""


def test_cut_and_corrupted_bytes_never_crash_and_agree_with_the_python_path(tmp_path):
    out = subprocess.run([sys.executable, "-c", FUZZ, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["n_bad"] == 0, res["bad"]
    assert res["cases"] > 4000
    assert 0 < res["loaded"] < res["cases"]  # both outcomes were exercised


# marshal.loads on these kills the interpreter with SIGSEGV on the Pythons that have CPython gh-148653 (3.11 to
# 3.15): a tuple registered for back-references before its items are read, then hashed through a reference to it
# while incomplete.  The first is CPython's own reproducer; the second is a cProfile dump with one caller key's
# back-reference pointed at the (file, line, name) tuple that holds it, as one corrupted byte can make it.
def _self_ref_dump() -> bytes:
    f, g = ("a.py", 1, "f"), ("a.py", 2, "g")
    stats = {f: (1, 1, 0.5, 0.5, {}), g: (1, 1, 0.5, 0.5, {f: (1, 1, 0.5, 0.5)})}
    data = marshal.dumps(stats)
    # slot 6 is the key ("a.py", 2, "g"); its file name is a reference to slot 2 ("a.py"): point it at slot 6
    assert data.count(b"\xa9\x03r\x02\x00\x00\x00") == 1
    return data.replace(b"\xa9\x03r\x02\x00\x00\x00", b"\xa9\x03r\x06\x00\x00\x00")


SELF_REFERENCING = {
    "gh-148653": b"\xa8\x01\x00\x00\x00<\x01\x00\x00\x00r\x00\x00\x00\x00",
    "cProfile dump": _self_ref_dump(),
}


@pytest.mark.parametrize("pure", [False, True], ids=["compiled", "python"])
@pytest.mark.parametrize("name", list(SELF_REFERENCING))
def test_a_tuple_that_refers_to_itself_is_a_bad_file_not_a_crash(tmp_path, name, pure):
    path = write(tmp_path, "self.prof", SELF_REFERENCING[name])
    write(tmp_path, "good.prof", marshal.dumps(stats_of()))
    code = (
        "import sys; import celerylab as cl; from celerylab.core import decode\n"
        f"if {pure}: decode._cdecode = None\n"
        "ps = cl.load(sys.argv[1], cache=False, jobs=1, progress=False)\n"
        "print(len(ps.profiles)); print(ps.errors.iloc[0]['path']); print(ps.errors.iloc[0]['reason'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]  # -11 is the crash
    n, bad_path, reason = out.stdout.splitlines()[-3:]
    assert n == "1" and bad_path == path
    assert reason.startswith("corrupt marshal data: at byte ") and "refers to itself" in reason


def test_the_walk_reads_every_marshal_type_to_its_last_byte():
    # the walk must keep marshal's back-reference numbering on everything marshal writes, or it would miss a hazard
    # behind an object it misreads: each dump is walked to its end, on both walks, at every marshal version
    def f(a, b=2, *c, d, **e):
        return [a + b for _ in c], lambda: (a, d, e)

    shared = ("shared", 1)
    objs = [
        f.__code__,
        compile("x = {1: 'a'}; y = [x, x]", "m.py", "exec"),
        (1, -1, 2**70, -(2**70), 0, 1.5, -0.0, 1 + 2j, b"bytes", "text", "é", None, True, False, Ellipsis),
        [StopIteration, frozenset(), frozenset({1, shared}), set(), {2, shared}, (), [], {}],
        {shared: [shared, (shared, shared)], "k": {"n": {frozenset({shared}): shared}}},
        [[[[[[[[[]]]]]]]]],
        profile_fake_clock(workload, 2, FakeClock()),
    ]
    for obj in objs:
        for version in range(marshal.version + 1):
            data = marshal.dumps(obj, version)
            assert C.marshal_check(data) == decode._marshal_walk(data) == (0, len(data), 0), (obj, version)


@pytest.mark.parametrize(
    "data, want",
    [
        (b"(\xff\xff\xff\x7f", (2, 0, 2**31 - 1)),  # a tuple of 2**31 - 1 items: marshal would allocate 16 GB first
        (b"[\x00\x00\x00\x10N", (2, 0, 1 << 28)),
        (b"{\xa9\x01l\xff\xff\xff\x7f", (2, 3, 2**31 - 1)),
        (b"[\x01\x00\x00\x00" * 2001 + b"N", (3, 2000 * 5, 0)),
        (b"{)\x01\xe3" + b"\x00" * 20 + b"r\x00\x00\x00\x00", (0, 29, 0)),  # a reference to a code object being read:
        # marshal raises on it
        (b"{\xa9\x02N" + b"\xa9\x01r\x01\x00\x00\x00", (1, 6, 0)),
        (b"\xa9\x02N" + b"[\x01\x00\x00\x00r\x00\x00\x00\x00", (1, 8, 0)),  # inside a list inside it, still open
    ],
)
def test_the_walk_reports_each_hazard_at_its_byte(data, want):
    assert C.marshal_check(data) == decode._marshal_walk(data) == want


def test_load_on_both_paths_equals_pstats(tmp_path):
    paths = [
        write(tmp_path, f"p{i}.prof", marshal.dumps(profile_fake_clock(workload, i % 6, FakeClock()))) for i in range(6)
    ]
    paths.append(write(tmp_path, "fib.prof", marshal.dumps(profile_fake_clock(fib, 9))))
    ref = pstats.Stats(*sorted(paths))  # the loader's order
    ps = cl.load(tmp_path, cache=False, jobs=1)
    with python_path():
        ps_py = cl.load(tmp_path, cache=False, jobs=1)
    assert ps.to_pstats_dict() == ref.stats == ps_py.to_pstats_dict()
    assert ps.summary()["total_tt"] == ref.total_tt == ps_py.summary()["total_tt"]
    assert list(ps.profiles["profiler"].astype(str)) == list(ps_py.profiles["profiler"].astype(str))


def _texts_of(texts) -> tuple[list[str], list[str], list[int], list[str]]:
    n_off, n_bytes, l_off, l_bytes, lines, f_off, f_bytes = texts

    def strings(offsets: bytes, data: bytes) -> list[str]:
        return [data[a:b].decode() for a, b in itertools.pairwise(np.frombuffer(offsets, dtype=np.int64))]

    return (
        strings(n_off, n_bytes),
        strings(l_off, l_bytes),
        np.frombuffer(lines, np.int64).tolist(),
        strings(f_off, f_bytes),
    )


TEXT_KEYS = [
    ("~", 0, "<built-in method builtins.len>"),
    ("~", 0, "<method 'append' of 'list' objects>"),
    ("~", 0, "<>"),
    ("~", 0, "<"),
    ("~", 0, "plain"),
    ("~", 0, ""),
    ("~", 7, "<not a builtin: line 7>"),
    ("~~", 0, "<two tildes>"),
    ("a.py", -3, "negative_line"),
    ("a.py", 0, "<module>"),
    ("a.py", 2**59, "big_line"),
    ("a.py", -(2**59), "big_negative_line"),
    ("é/ü.py", 12, "naïve_函数"),
    ("x.py", 1, "{braces}(parens):colon"),
    ("/some/where/deep/module.py", 123456, "f"),
]


def test_texts_are_the_names_labels_and_lines_of_the_keys(tmp_path):
    """``Interner.texts`` (the functions frame's name and label columns as Arrow buffers) equals ``classify.label``
    and the keys' names and lines, for any range of ids; None where a name holds a surrogate or an id has no entry
    in the C table; a range out of bounds is refused."""
    from celerylab.core.classify import label

    stats = {k: (1, 1, 0.5, 0.5, {}) for k in TEXT_KEYS}
    got = both_paths([write(tmp_path, "a.prof", marshal.dumps(stats))])
    funcs = got["funcs"]
    assert sorted(funcs) == sorted(TEXT_KEYS)
    names, labels, lines, files = _texts_of(got["texts"])
    assert names == [k[2] for k in funcs]
    assert labels == [label(*k) for k in funcs]
    assert lines == [k[1] for k in funcs]
    assert files == [k[0] for k in funcs]
    keys = decode.Keys()
    decode.parse_files([write(tmp_path, "b.prof", marshal.dumps(stats))], keys=keys)
    for a, b in ((0, 1), (3, 9), (len(funcs), len(funcs)), (0, len(funcs))):
        names, labels, lines, files = _texts_of(keys.interner.texts(a, b))
        assert list(zip(files, lines, names)) == keys.funcs[a:b]
        assert labels == [label(*k) for k in keys.funcs[a:b]]
    for bad in ((-1, 2), (3, 2), (0, len(funcs) + 1)):
        with pytest.raises(ValueError, match="out of range"):
            keys.interner.texts(*bad)
    surrogate = {("a.py", 1, "bad\udc80"): (1, 1, 0.5, 0.5, {}), ("a.py", 2, "good"): (1, 1, 0.5, 0.5, {})}
    assert both_paths([write(tmp_path, "s.prof", marshal.dumps(surrogate))])["texts"] is None
    # a line beyond 64 bits: the Python path's key, which the C table cannot hold (no entry for its id)
    huge = {("a.py", 2**70, "f"): (1, 1, 0.5, 0.5, {}), ("a.py", 2, "g"): (1, 1, 0.5, 0.5, {})}
    assert both_paths([write(tmp_path, "h.prof", marshal.dumps(huge))])["texts"] is None


def test_functions_frame_is_the_same_with_and_without_the_decoders_texts(tmp_path, monkeypatch):
    """Chunks whose texts the decoder made, chunks without (a surrogate in a name, the Python path), and a mix of
    the two in one load give the same ``functions`` frame, labels and lines included; a line beyond 64 bits and a
    name with a surrogate load too (object columns)."""
    import pandas.testing as pdt

    folder = tmp_path / "p"
    folder.mkdir()
    for i in range(96):  # 6 chunks of 16
        stats = {(f"m{i % 7}.py", j, f"f{j}"): (1, 1, 0.5, 0.5, {}) for j in range(i % 5 + 1)}
        stats.update({k: (1, 1, 0.25, 0.25, {("m0.py", 0, "f0"): (1, 1, 0.1, 0.1)}) for k in TEXT_KEYS[i % 6 :: 6]})
        (folder / f"p{i:03d}.prof").write_bytes(marshal.dumps(stats))
    parsed = {jobs: cl.load(folder, jobs=jobs, cache=False) for jobs in (1, 2)}
    with python_path():
        plain = cl.load(folder, jobs=2, cache=False)
    for ps in parsed.values():
        pdt.assert_frame_equal(ps.functions, plain.functions)
        assert ps.functions["label"].dtype == "str"
    # every other chunk without texts: the merge makes every label from the keys from then on
    from celerylab.core import parse as parse_mod

    real_chunk, calls = parse_mod._parse_chunk, []

    def some_texts(*args, **kwargs):
        packed, side = real_chunk(*args, **kwargs)
        calls.append(packed["texts"] is not None)
        if len(calls) % 2 == 0:
            packed["texts"] = None
        return packed, side

    monkeypatch.setattr(parse_mod, "_parse_chunk", some_texts)
    pdt.assert_frame_equal(cl.load(folder, jobs=2, cache=False).functions, plain.functions)
    assert len(calls) > 2 and all(calls)
    monkeypatch.undo()
    (folder / "odd.prof").write_bytes(
        marshal.dumps({("a.py", 2**70, "huge"): (1, 1, 0.5, 0.5, {}), ("b.py", 1, "bad\udc80"): (1, 1, 0.5, 0.5, {})})
    )
    ps = cl.load(folder, jobs=2, cache=False)
    f = ps.functions.set_index("name", drop=False)
    assert f.loc["huge", "line"] == 2**70 and f.loc["huge", "label"] == f"a.py:{2**70}(huge)"
    assert f.loc["bad\\udc80", "label"] == "b.py:1(bad\\udc80)"  # shown escaped
    assert pstats.Stats(*ps.profiles["path"]).total_tt == pytest.approx(ps.profiles["total_tt"].sum(), abs=1e-12)


def test_gather_texts_takes_the_rows_of_each_part_and_refuses_what_does_not_add_up():
    rng = np.random.default_rng(7)
    parts, want = [], []
    for k in range(5):
        words = ["".join(rng.choice(list("abcé函_<>:()"), size=rng.integers(0, 9))) for _ in range(rng.integers(0, 30))]
        data = "".join(words).encode()
        offsets = np.cumsum([0] + [len(w.encode()) for w in words]).astype(np.int64)
        rows = np.sort(rng.choice(len(words), size=rng.integers(0, len(words) + 1), replace=False)).astype(np.int64)
        if k == 2:
            rows = rows[::-1].copy()  # any order
        parts.append((offsets.tobytes(), data, rows))
        want += [words[i] for i in rows]
    off, data = C.gather_texts(parts)
    assert _texts_of((off, data, off, data, b"", off, data))[0] == want
    good = (np.array([0, 1, 3], dtype=np.int64).tobytes(), b"abc")
    assert C.gather_texts([(*good, np.array([1, 0], dtype=np.int64))]) == (
        np.array([0, 2, 3], dtype=np.int64).tobytes(),
        b"bca",
    )
    for bad, match in (
        ([(*good, np.array([2], dtype=np.int64))], "out of range"),
        ([(*good, np.array([-1], dtype=np.int64))], "out of range"),
        ([(good[0], b"abcd", np.array([0], dtype=np.int64))], "do not span"),
        ([(np.array([0, 5, 3], dtype=np.int64).tobytes(), b"abc", np.array([0], dtype=np.int64))], "out of range"),
        ([(b"\0" * 7, b"", np.array([], dtype=np.int64))], "int64"),
    ):
        with pytest.raises(ValueError, match=match):
            C.gather_texts(bad)
    with pytest.raises(TypeError):
        C.gather_texts([(good[0], good[1])])
