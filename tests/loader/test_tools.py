"""THE RULE: every file ``pstats.Stats`` accepts, celerylab loads, with every total equal to pstats'.

The corpus is written at run time by the real tools (cProfile, the pure-Python ``profile`` module with and without a
calibration ``bias``, yappi, pyinstrument), each profiling recursion and mutual recursion.
"""

from __future__ import annotations

import marshal
import math
import os
import pstats
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import celerylab as cl
from celerylab import LoadError
from celerylab.core.decode import key_text

pytestmark = pytest.mark.timeout(300)

WORK = textwrap.dedent(
    """
    import sys

    def fact(n):                       # direct recursion
        return 1 if n <= 1 else n * fact(n - 1)

    def even(n):                       # mutual recursion
        return True if n == 0 else odd(n - 1)

    def odd(n):
        return False if n == 0 else even(n - 1)

    def walk(node):                    # recursion through a helper
        return 1 + sum(visit(c) for c in node)

    def visit(node):
        return walk(node)

    def main(n=40):
        tree = [[[], [[]]], [[[]]]]
        total = 0
        for i in range(n):
            total += fact(15) % 7 + even(i % 13) + walk(tree)
            sorted(range(300), key=lambda x: -x)
        s = 0
        for i in range(n * 2000):
            s += i * i
        return total + s

    if __name__ == "__main__":
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
    """
)

PROFILE_BIAS = textwrap.dedent(
    """
    import profile, sys
    sys.path.insert(0, sys.argv[1])
    import work
    for i, bias in enumerate((2e-6, 2e-5)):   # a large calibration bias: negative times
        p = profile.Profile(bias=bias)
        p.runcall(work.main, 20 + i)
        p.dump_stats(sys.argv[2] + f"/bias{i}.prof")
    """
)

YAPPI = textwrap.dedent(
    """
    import sys, yappi
    sys.path.insert(0, sys.argv[1])
    import work
    for i, clock in enumerate(("cpu", "wall")):
        yappi.clear_stats()
        yappi.set_clock_type(clock)
        yappi.start(builtins=bool(i))
        work.main(30 + i)
        yappi.stop()
        yappi.get_func_stats().save(sys.argv[2] + f"/yappi{i}.prof", type="pstat")
    """
)


def _run(args: list[str], cwd: Path) -> None:
    subprocess.run([sys.executable, *args], cwd=cwd, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, list[str]]:
    """tool -> its files (absolute paths), written by the real tools."""
    root = tmp_path_factory.mktemp("tools")
    src = root / "src"
    src.mkdir()
    (src / "work.py").write_text(WORK)
    out: dict[str, list[str]] = {}

    def folder(name: str) -> Path:
        d = root / name
        d.mkdir()
        return d

    d = folder("cprofile")
    for i in range(2):
        _run(["-m", "cProfile", "-o", str(d / f"c{i}.prof"), "work.py", str(30 + i)], src)
    d = folder("profile")
    for i in range(2):
        _run(["-m", "profile", "-o", str(d / f"p{i}.prof"), "work.py", str(20 + i)], src)
    d = folder("bias")
    _run(["-c", PROFILE_BIAS, str(src), str(d)], src)
    d = folder("yappi")
    _run(["-c", YAPPI, str(src), str(d)], src)
    d = folder("pyinstrument")
    for i in range(2):
        _run(["-m", "pyinstrument", "-i", "0.0002", "-r", "pstats", "-o", str(d / f"i{i}.prof"), "work.py",
              str(60 + i)], src)  # fmt: skip
    for name in ("cprofile", "profile", "bias", "yappi", "pyinstrument"):
        out[name] = sorted(str(p) for p in (root / name).iterdir())
    return out


def _key(k) -> tuple[str, int, str]:
    return (k[0], k[1], k[2] if isinstance(k[2], str) else key_text(k[2]))


def _unknown_counts(files: list[str]) -> tuple[set, set]:
    """Functions and (caller, callee) calls whose count some file does not know (negative)."""
    funcs, edges = set(), set()
    for f in files:
        with open(f, "rb") as fh:
            d = marshal.load(fh)
        for k, (cc, nc, _tt, _ct, callers) in d.items():
            if cc < 0 or nc < 0:
                funcs.add(_key(k))
            for c, v in callers.items():
                if isinstance(v, tuple) and (v[0] < 0 or v[1] < 0):
                    edges.add((_key(c), _key(k)))
    return funcs, edges


def assert_equals_pstats(ps, files: list[str], *, same_paths: bool = True) -> None:
    """Every per-function, per-edge and summary total of ``ps`` equals ``pstats.Stats(*files)`` (same order;
    ``same_paths=False``: ``ps`` loaded copies of ``files``, in the same order)."""
    assert len(ps.profiles) == len(files)
    if same_paths:
        assert list(ps.profiles["path"]) == files
    ref = pstats.Stats(*files)
    ref_stats = {_key(k): (v[0], v[1], v[2], v[3], {_key(c): x for c, x in v[4].items()}) for k, v in ref.stats.items()}
    unknown_funcs, unknown_edges = _unknown_counts(files)
    assert ps.summary()["total_tt"] == ref.total_tt
    keys = list(zip(ps.functions["file"], ps.functions["line"], ps.functions["name"]))
    ft = ps.function_totals
    assert len(ft) == len(ref_stats)
    for fid, nc, pc, tt, ct in zip(ft["func_id"], ft["ncalls"], ft["pcalls"], ft["tottime"], ft["cumtime"]):
        k = keys[fid]
        cc_ref, nc_ref, tt_ref, ct_ref, _ = ref_stats[k]
        assert (tt, ct) == (tt_ref, ct_ref), k
        if k in unknown_funcs:  # pstats adds the -1s; an unknown count stays unknown here
            assert pd.isna(nc) and pd.isna(pc), k
        else:
            assert (nc, pc) == (nc_ref, cc_ref), k
    et = ps.edge_totals
    assert len(et) == sum(len(v[4]) for v in ref_stats.values())
    for caller, callee, nc, pc, tt, ct in et[
        ["caller_id", "callee_id", "ncalls", "pcalls", "tottime", "cumtime"]
    ].itertuples(index=False, name=None):
        r = ref_stats[keys[callee]][4][keys[caller]]
        if not isinstance(r, tuple):  # the `profile` module: a bare count, no times
            assert (nc, pc) == (r, r) and math.isnan(tt) and math.isnan(ct)
            continue
        assert (tt, ct) == (r[2], r[3]), (keys[caller], keys[callee])
        if (keys[caller], keys[callee]) in unknown_edges:
            assert pd.isna(nc) and pd.isna(pc)
        else:
            assert (nc, pc) == (r[0], r[1])
    # per profile: pstats' own total of each file
    for path, total in zip(files, ps.profiles["total_tt"]):
        assert total == pstats.Stats(path).total_tt


@pytest.mark.parametrize("tool", ["cprofile", "profile", "bias", "yappi", "pyinstrument"])
@pytest.mark.parametrize("jobs", [1, 2])
def test_every_tools_files_load_and_equal_pstats(corpus, tool, jobs):
    files = corpus[tool]
    ps = cl.load(files, cache=False, jobs=jobs)
    assert not len(ps.errors), ps.errors
    assert_equals_pstats(ps, files)
    expected = "profile" if tool == "bias" else tool
    assert ps.profiles["profiler"].astype(str).tolist() == [expected] * len(files)


def test_what_each_tool_cannot_show(corpus):
    """The corpus really has what the loader must cope with, and the frames show it as documented."""
    yappi = cl.load(corpus["yappi"], cache=False, jobs=1)
    assert (yappi.stats["pcalls"] > yappi.stats["ncalls"]).any()  # (ncall, nactualcall) swapped under recursion
    pyi = cl.load(corpus["pyinstrument"], cache=False, jobs=1)
    assert pyi.stats["ncalls"].isna().all() and pyi.function_totals["ncalls"].isna().all()  # sampling: no counts
    assert not (pyi.function_totals["ncalls"].dropna() < 0).any()
    bias = cl.load(corpus["bias"], cache=False, jobs=1)
    assert (bias.stats["tottime"] < 0).any()  # the calibration bias overshoots: negative times are valid
    prof = cl.load(corpus["profile"], cache=False, jobs=1)
    assert prof.edges["tottime"].isna().all()  # callers are bare counts: no per-caller times
    root = prof.functions.loc[prof.functions["file"] == "profile", "name"].tolist()
    assert "profiler" in root and any(n.startswith("<code object <module>") and " at 0x" not in n for n in root)


@pytest.mark.parametrize(
    ("tools", "pstats_accepts"),
    [
        (("cprofile", "yappi", "pyinstrument"), True),  # all record callers as (nc, cc, tt, ct)
        (("cprofile", "pyinstrument", "bias"), True),  # `profile` files, but no call recorded in both formats
        (("yappi", "bias"), False),  # the same calls (same absolute paths) in both caller formats
        (("cprofile", "yappi", "pyinstrument", "bias", "profile"), False),
    ],
)
def test_mixed_tools_behave_as_pstats(corpus, tools, pstats_accepts):
    files = sorted(f for tool in tools for f in corpus[tool])
    try:
        pstats.Stats(*files)
        accepted = True
    except TypeError:
        accepted = False
    assert accepted == pstats_accepts  # the corpus is what this test thinks it is
    if accepted:
        ps = cl.load(files, cache=False, jobs=2)
        assert not len(ps.errors)
        assert_equals_pstats(ps, files)
        assert set(ps.profiles["profiler"].astype(str)) == {"profile" if t == "bias" else t for t in tools}
    else:
        with pytest.raises(LoadError, match="cannot be combined") as info:
            cl.load(files, cache=False, jobs=2)
        named = [f for f in files if f in str(info.value)]
        assert len(named) == 2
        with pytest.raises(TypeError):
            pstats.Stats(*named)  # the two files named are a pair pstats refuses


def test_profile_module_and_cprofile_files_of_the_same_code_are_refused_as_pstats_refuses(corpus, tmp_path):
    a, b = corpus["cprofile"][0], corpus["profile"][0]
    for order in ([a, b], [b, a]):
        with pytest.raises(TypeError):
            pstats.Stats(*order)
    with pytest.raises(LoadError) as info:
        cl.load([a, b], cache=False, jobs=1)
    msg = str(info.value)
    assert a in msg and b in msg and "profile` module" in msg and "load them separately" in msg
    # also when the combination is met in a folder, and through the cache
    for f in (a, b):
        os.symlink(f, tmp_path / os.path.basename(f))
    for cache in (tmp_path / "cache", tmp_path / "cache"):
        with pytest.raises(LoadError, match="cannot be combined"):
            cl.load(tmp_path, cache=cache, jobs=2)


def test_tool_files_survive_the_cache(corpus, tmp_path):
    files = sorted(f for tool in ("cprofile", "pyinstrument", "bias") for f in corpus[tool])
    for _ in range(2):  # written, then re-opened from the cache
        ps = cl.load(files, cache=tmp_path / "cache", jobs=1)
        assert_equals_pstats(ps, files)
        assert ps.profiles["profiler"].astype(str).tolist()[0] == "profile"


def test_to_pstats_round_trips_unknown_counts_as_pyinstrument_writes_them(corpus, tmp_path):
    ps = cl.load(corpus["pyinstrument"][:1], cache=False, jobs=1)
    out = ps.to_pstats(tmp_path / "merged.prof")
    assert pstats.Stats(out).stats == pstats.Stats(corpus["pyinstrument"][0]).stats


def test_gzipped_profiles_of_every_tool_load_natively(corpus, tmp_path):
    """``.prof.gz`` files (and folders of them) load as they are; totals equal pstats of the uncompressed files."""
    import gzip

    files = sorted(f for tool in ("cprofile", "pyinstrument", "yappi") for f in corpus[tool])
    folder = tmp_path / "gz" / "nested"
    folder.mkdir(parents=True)
    for f in files:
        (folder / (os.path.basename(f) + ".gz")).write_bytes(gzip.compress(Path(f).read_bytes()))
    for cache in (False, tmp_path / "cache", tmp_path / "cache"):
        ps = cl.load(tmp_path / "gz", cache=cache, jobs=2)
        assert not len(ps.errors)
        assert all(p.endswith(".prof.gz") for p in ps.profiles["path"])
        assert [os.path.basename(p)[:-3] for p in ps.profiles["path"]] == [os.path.basename(f) for f in files]
        assert_equals_pstats(ps, files, same_paths=False)
        assert ps.profiles["profiler"].astype(str).tolist() == ["cprofile"] * 2 + ["pyinstrument"] * 2 + ["yappi"] * 2


def test_drilldowns_keep_unknown_counts_unknown_and_times_exact(corpus):
    files = sorted(corpus["cprofile"] + corpus["pyinstrument"])
    ps = cl.load(files, cache=False, jobs=1)
    ref = pstats.Stats(*files).stats
    unknown_funcs, unknown_edges = _unknown_counts(files)
    f = ps.functions
    for name in ("fact", "even", "odd", "walk"):
        fid = int(f.loc[(f["file"] == "work.py") & (f["name"] == name), "func_id"].iloc[0])
        key = ("work.py", int(f.loc[fid, "line"]), name)
        for side, table in (("callers", ps.callers(fid)), ("callees", ps.callees(fid))):
            assert len(table)
            for row in table.itertuples():
                other = (f.loc[row.func_id, "file"], int(f.loc[row.func_id, "line"]), f.loc[row.func_id, "name"])
                caller, callee = (other, key) if side == "callers" else (key, other)
                r = ref[callee][4][caller]
                assert (row.tottime, row.cumtime) == (r[2], r[3])
                if (caller, callee) in unknown_edges:
                    assert pd.isna(row.ncalls) and pd.isna(row.pcalls)
                else:
                    assert (row.ncalls, row.pcalls) == (r[0], r[1])
    top = ps.top(None)
    assert not (top["ncalls"].dropna() < 0).any()
    assert top["ncalls"].isna().sum() == len(unknown_funcs & set(zip(f["file"], f["line"], f["name"])))


def test_profiler_is_unknown_when_the_file_shows_no_sign(tmp_path):
    import cProfile

    from celerylab.testing import fib

    p = cProfile.Profile(builtins=False)  # no C functions: nothing says cProfile
    p.runcall(fib, 8)
    p.dump_stats(tmp_path / "nobuiltins.prof")
    plain = cProfile.Profile()
    plain.runcall(fib, 8)
    plain.dump_stats(tmp_path / "plain.prof")
    (tmp_path / "synthetic.prof").write_bytes(marshal.dumps({("a.py", 1, "f"): (2, 2, 0.5, 0.5, {})}))
    ps = cl.load(tmp_path, cache=False, jobs=1)
    got = dict(zip(ps.profiles["path"].map(os.path.basename), ps.profiles["profiler"].astype(str)))
    assert got == {"nobuiltins.prof": "unknown", "plain.prof": "cprofile", "synthetic.prof": "unknown"}
    assert list(ps.profiles["profiler"].cat.categories) == ["cprofile", "profile", "yappi", "pyinstrument", "unknown"]


def test_a_merged_file_with_both_caller_formats_loads_as_pstats_reads_it(corpus, tmp_path):
    """pstats can merge `profile` and cProfile files that share no call; the merged file (pstats' dump_stats or
    celerylab's to_pstats) holds both caller formats, and loads."""
    files = sorted(corpus["cprofile"] + corpus["bias"])
    ref = pstats.Stats(*files)
    merged = tmp_path / "merged_by_pstats.prof"
    ref.dump_stats(merged)
    ps = cl.load(files, cache=False, jobs=1)
    ours = Path(ps.to_pstats(tmp_path / "merged_by_celerylab.prof"))
    assert pstats.Stats(str(ours)).stats == ref.stats
    for path in (merged, ours):
        one = cl.load(str(path), cache=False, jobs=1)
        assert not len(one.errors)
        assert one.profiles["profiler"].astype(str).tolist() == ["unknown"]
        assert_equals_pstats(one, [str(path)])
        assert one.to_pstats_dict() == pstats.Stats(str(path)).stats
        assert one.edges["tottime"].isna().any() and one.edges["tottime"].notna().any()


def test_compiled_and_python_decoders_agree_on_every_tool(corpus):
    from celerylab.core import decode

    from .test_cdecode import both_paths, takes

    files = [f for name in sorted(corpus) for f in corpus[name]]
    both_paths(files)  # one chunk: ids interned across tools must match too
    for name, paths in corpus.items():
        for f in paths:
            with open(f, "rb") as fh:
                # only the profile module's bare caller counts are left to the Python path
                assert takes(fh.read()) == (name not in ("profile", "bias")), f
    assert decode._cdecode is not None
