"""celerylab's aggregates equal stdlib pstats exactly (the oracle)."""

from __future__ import annotations

import gzip
import json
import pstats
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import celerylab as cl
from celerylab.testing import FakeClock, fib, profile_fake_clock, workload, write_profile

from .conftest import make_set, real_profile


def _varied_real_workloads(folder: Path) -> list[str]:
    """Profiles of several real, different workloads: recursion, regex, json, sorting, sqlite, a class hierarchy."""
    import random
    import sqlite3

    def regexes(n):
        return [re.findall(r"\w+@\w+\.com", f"user{i}@example.com, x{i}") for i in range(n)]

    def db(n):
        con = sqlite3.connect(":memory:")
        con.execute("create table t (a int, b text)")
        con.executemany("insert into t values (?, ?)", [(i, str(i)) for i in range(n)])
        return con.execute("select count(*), sum(a) from t where a % 3 = 0").fetchall()

    class Shape:
        def area(self):
            return 0

    class Square(Shape):
        def __init__(self, s):
            self.s = s

        def area(self):
            return self.s * self.s + super().area()

    def shapes(n):
        return sum(Square(i).area() for i in range(n))

    def mixed(n):
        rng = random.Random(n)
        data = [rng.random() for _ in range(n * 10)]
        json.loads(json.dumps(sorted(data)))
        fib(10 + n % 5)

    jobs = [(fib, 14), (regexes, 200), (db, 300), (shapes, 500), (mixed, 7), (mixed, 3), (db, 50), (regexes, 10)]
    folder.mkdir(parents=True, exist_ok=True)
    return [real_profile(str(folder / f"w{i}.prof"), fn, arg) for i, (fn, arg) in enumerate(jobs)]


@pytest.mark.parametrize("jobs", [1, 2])
def test_merged_stats_equal_pstats_on_fake_timer_profiles(fake_set, jobs):
    folder, paths = fake_set
    ps = cl.load(folder, jobs=jobs, cache=False)
    assert ps.profiles["path"].tolist() == paths
    assert ps.to_pstats_dict() == pstats.Stats(*paths).stats


def test_merged_stats_equal_pstats_on_real_varied_workloads(tmp_path):
    paths = _varied_real_workloads(tmp_path / "real")
    ps = cl.load(tmp_path / "real", jobs=2, cache=False)
    ref = pstats.Stats(*sorted(paths))
    assert ps.to_pstats_dict() == ref.stats
    # the per-function columns, decoded: pstats (cc, nc, tt, ct) == (pcalls, ncalls, tottime, cumtime)
    ft = ps.function_totals.merge(ps.functions, on="func_id")
    for row in ft.itertuples():
        cc, nc, tt, ct, _ = ref.stats[(row.file, row.line, row.name)]
        assert (row.pcalls, row.ncalls, row.tottime, row.cumtime) == (cc, nc, tt, ct)
    # per-profile total_tt is what pstats computes for each file
    for path, total in zip(ps.profiles["path"], ps.profiles["total_tt"]):
        assert total == pstats.Stats(path).total_tt


def test_recursion_primitive_calls_and_functions_missing_from_some_files(fake_set):
    folder, _ = fake_set
    ps = cl.load(folder, cache=False)
    fid = ps.resolve(f"testing.py:{fib.__code__.co_firstlineno}(fib)")
    row = ps.function_totals.set_index("func_id").loc[fid]
    assert row.ncalls > row.pcalls == 12  # one primitive call per task, many recursive ones
    # slow_leaf only runs in variants 0 and 3: present in 4 of the 12 files
    leaf = ps.function_totals.set_index("func_id").loc[ps.resolve("slow_leaf")]
    assert leaf.n_profiles == 4
    # the fake clock: slow_leaf's own time is 2 ticks, the planted 25*(v+1) ticks land in its callee `advance`
    assert leaf.tottime == pytest.approx(4 * 0.002)
    adv = ps.function_totals.set_index("func_id").loc[ps.resolve("advance")]
    assert adv.tottime == pytest.approx(sum(25 * (v + 1) + 1 for v in (0, 3, 0, 3)) * 0.001)
    assert leaf.cumtime == pytest.approx(adv.tottime + leaf.tottime)
    # builtins are present with pstats' naming
    assert "{built-in method builtins.sorted}" in set(ps.functions["label"])


def test_subset_equals_pstats_of_the_subset(fake_set):
    folder, _ = fake_set
    ps = cl.load(folder, cache=False)
    sub = ps.where(task_name="reports.*")
    sub_paths = sub.profiles["path"].tolist()
    assert len(sub_paths) == 4 and all("reports.build" in p for p in sub_paths)
    assert sub.to_pstats_dict() == pstats.Stats(*sub_paths).stats


def test_to_pstats_file_reads_back_equal(tmp_path, fake_set):
    folder, paths = fake_set
    ps = cl.load(folder, cache=False)
    out = ps.to_pstats(tmp_path / "merged.prof")
    assert pstats.Stats(out).stats == pstats.Stats(*paths).stats


def test_gzip_and_any_extension_are_recognised_by_content(tmp_path):
    clock = FakeClock()
    stats = profile_fake_clock(workload, 1, clock, clock=clock)
    folder = tmp_path / "mixed"
    plain = write_profile(str(folder), stats, task_name="t", task_id="00000000-0000-0000-0000-000000000001")
    gz = write_profile(str(folder), stats, task_name="t", task_id="00000000-0000-0000-0000-000000000002",
                       compress=True)  # fmt: skip
    for ext in ("pstats", "pstat", "out", ""):
        shutil.copy(plain, folder / (f"copy.{ext}" if ext else "copy_noext"))
    ps = cl.load(folder, cache=False)
    assert len(ps.errors) == 0
    assert len(ps) == 6
    assert any(p.endswith(".prof.gz") for p in ps.profiles["path"])
    with gzip.open(gz, "rb") as f:
        assert f.read()[:1] in (b"{", b"\xfb")
    # six copies of the same profile: every total is six times the single one
    single = pstats.Stats(plain).stats
    merged = ps.to_pstats_dict()
    for key, (cc, nc, *_) in single.items():
        assert merged[key][:2] == (6 * cc, 6 * nc)


def test_pure_python_profile_module_format(tmp_path):
    import profile

    p = profile.Profile()
    p.runcall(fib, 9)
    path = str(tmp_path / "pure.prof")
    p.dump_stats(path)
    ps = cl.load(path, cache=False)
    assert len(ps.errors) == 0
    assert ps.to_pstats_dict() == pstats.Stats(path).stats


_OTHER_PYTHONS = sorted(Path("/root/.pyenv/versions").glob("3.1[23]*/bin/python3"))


@pytest.mark.skipif(not _OTHER_PYTHONS, reason="no Python 3.12/3.13 interpreter on this machine (pyenv)")
@pytest.mark.parametrize("python", _OTHER_PYTHONS, ids=lambda p: p.parent.parent.name)
def test_profile_written_by_another_python_version(tmp_path, python):
    out = tmp_path / "other.prof"
    code = textwrap.dedent(
        f"""
        import cProfile, json
        def fib(n): return n if n < 2 else fib(n-1) + fib(n-2)
        p = cProfile.Profile(); p.enable(); fib(12); json.dumps(list(range(50))); p.disable()
        p.dump_stats({str(out)!r})
        """
    )
    subprocess.run([str(python), "-c", code], check=True)
    ps = cl.load(out, cache=False)
    assert len(ps.errors) == 0
    assert ps.to_pstats_dict() == pstats.Stats(str(out)).stats
    assert ps.function_totals.set_index("func_id").loc[ps.resolve("fib"), "ncalls"] == 465


def test_python2_profile_is_rejected_with_a_clear_reason(tmp_path):
    py2 = Path("/root/.pyenv/versions/2.7.18/bin/python")
    out = tmp_path / "py2.prof"
    if py2.exists():
        code = f"import cProfile\ndef f(): return sum(range(10))\ncProfile.run('f()', {str(out)!r})\n"
        subprocess.run([str(py2), "-c", code], check=True)
    else:  # the same bytes: Python 2 marshals str as bytes
        import marshal

        out.write_bytes(marshal.dumps({(b"x.py", 1, b"f"): (1, 1, 0.1, 0.1, {})}))
    with pytest.warns(UserWarning, match="1 file"):
        ps = cl.load([str(out), *make_set(tmp_path / "ok", 2)], cache=False)
    assert len(ps) == 2
    assert ps.errors["path"].tolist() == [str(out)]
    assert "Python 2" in ps.errors["reason"].iloc[0]
    assert sys.version_info >= (3, 11)


def test_synthetic_corpus_with_cycles_equals_pstats(tmp_path):
    from celerylab.testing import write_corpus

    paths = sorted(write_corpus(str(tmp_path / "syn"), 30, n_functions=300, n_edges=700, seed=3))
    ps = cl.load(tmp_path / "syn", jobs=2, cache=False)
    ref = pstats.Stats(*paths)
    assert ps.to_pstats_dict() == ref.stats
    assert ps.profiles["total_tt"].sum() == pytest.approx(ref.total_tt)
    # the order of files matters for the last bit of float sums: celerylab follows pstats' own order
    assert ps.to_pstats_dict() == pstats.Stats(*ps.profiles["path"]).stats


def test_summary_total_tt_is_added_in_pstats_order(tmp_path):
    """pstats adds the per-file totals as first, last, …, second: the sum differs from a plain or pairwise sum."""
    import marshal

    paths = []
    for i, tt in enumerate((1.0, 1e16, -1e16, 1.0)):
        path = tmp_path / f"p{i}.prof"
        path.write_bytes(marshal.dumps({("a.py", 1, "f"): (1, 1, tt, tt, {})}))
        paths.append(str(path))
    ref = pstats.Stats(*paths)
    ps = cl.load(tmp_path, cache=False, jobs=1)
    assert ps.summary()["total_tt"] == ref.total_tt == 2.0
    assert ps.profiles["total_tt"].sum() != ref.total_tt  # what summary() used to report
    assert ps.function_totals["tottime"].tolist() == [ref.stats[("a.py", 1, "f")][2]]
    sub = ps.where(path=paths[1:])
    assert sub.summary()["total_tt"] == pstats.Stats(*paths[1:]).total_tt
