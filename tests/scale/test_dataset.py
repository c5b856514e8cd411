"""ingest -> open_dataset on a real LocalCluster (2 worker processes): every result equals ``cl.load`` of the same
files, and pstats, to the last digit."""

from __future__ import annotations

import os
import pstats
import warnings

import numpy as np
import pandas as pd
import pytest

import celerylab as cl
from celerylab.scale import ingest
from celerylab.scale.ingest import read_manifest
from celerylab.testing import write_not_utf8

from .conftest import make_corpus


def load(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cl.load(str(folder), cache=False, jobs=1)


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, client):
    folder = tmp_path_factory.mktemp("src")
    make_corpus(folder)
    dataset = str(tmp_path_factory.mktemp("ds") / "dataset")
    report = ingest(str(folder), dataset, scheduler=client, chunk_size=5)
    return folder, dataset, report


@pytest.fixture(scope="module")
def ds(corpus, client):
    return cl.open_dataset(corpus[1], scheduler=client)


@pytest.fixture(scope="module")
def ps(corpus):
    return load(corpus[0])


def test_ingest_reports_bad_files_exactly_as_load_does(corpus, ps):
    _folder, _dataset, report = corpus
    assert report.profiles == len(ps) == 26 and report.chunks == 6
    assert sorted(report.errors) == sorted(ps.errors.itertuples(index=False, name=None))
    assert any(p.endswith("broken.prof") for p, _ in report.errors)
    assert any(p.endswith("badside.json") and "not valid UTF-8 JSON" in r for p, r in report.errors)


def test_the_materialised_selection_has_the_frames_load_builds(ds, ps):
    got = ds.to_profileset()
    assert type(got) is cl.ProfileSet
    for name in ("profiles", "functions", "stats", "edges", "sql", "allocations"):
        assert_same(getattr(got, name), getattr(ps, name))
    assert sorted(got.errors.itertuples(index=False, name=None)) == sorted(ps.errors.itertuples(index=False, name=None))
    # and the oracle itself
    assert got.to_pstats_dict() == pstats.Stats(*ps.profiles["path"]).stats


def test_cluster_top_equals_the_in_memory_top_to_the_last_digit(ds, ps):
    for by in ("tottime", "cumtime", "ncalls", "tottime_p95"):
        assert_same(ds.top(None, by=by), ps.top(None, by=by))
    assert_same(ds.top(5, group_by="task_name"), ps.top(5, group_by="task_name"))
    totals = ds.function_totals().sort_values("first")
    ft = ps.function_totals
    assert np.array_equal(totals["tottime"].to_numpy(), ft["tottime"].to_numpy())  # bit for bit
    assert np.array_equal(totals["cumtime"].to_numpy(), ft["cumtime"].to_numpy())


def test_summaries_hotspots_callers_and_diff_equal_load(ds, ps):
    assert_same(ds.task_summary(), ps.task_summary())
    assert_same(ds.n_plus_one(), ps.n_plus_one() if hasattr(ps, "n_plus_one") else cl.analysis.n_plus_one(ps))
    assert_same(ds.leak_suspects(), cl.analysis.leak_suspects(ps))
    assert len(ds.n_plus_one()) == 1 and bool(ds.leak_suspects()["suspect"].iloc[0])
    assert_same(ds.callers("fib"), ps.callers("fib"))
    assert_same(ds.callees("workload"), ps.callees("workload"))
    assert_same(ds.callers("fib", split_by="run"), ps.callers("fib", split_by="run"))
    d = ds.diff(split_by="run", values=("baseline", "candidate"), group_by="task_name")
    assert_same(d, ps.diff(split_by="run", values=("baseline", "candidate"), group_by="task_name"))
    assert_same(ds.diff(split_by="run"), ps.diff(split_by="run"))
    # two selections against each other: cl.diff of cl.load of each side's files
    base, cand = ps.where(run="baseline"), ps.where(run="candidate")
    expected = cl.diff(load_subset(base), load_subset(cand), group_by="task_name")
    assert_same(ds.where(run="baseline").diff(ds.where(run="candidate"), group_by="task_name"), expected)


def test_where_is_pushed_down_and_equals_profileset_where(ds, ps, corpus):
    sub, ref = ds.where(run="baseline"), ps.where(run="baseline")
    assert len(sub) == len(ref) == 12
    assert all("run=baseline" in f for f in sub._pruned_files("stats"))
    # a selection is numbered as cl.load numbers the same files (a where() of a ProfileSet keeps the set's ids)
    assert_same(sub.top(None), load_subset(ref).top(None))
    assert_same(sub.top(None).drop(columns="func_id"), ref.top(None).drop(columns="func_id"))
    assert_same(sub.to_profileset().stats, load_subset(ref).stats)
    day = ds.where(date="2026-01-02")
    assert len(day) == int((ps.profiles["started_at"] >= pd.Timestamp("2026-01-02", tz="UTC")).sum()) > 0
    assert all("date=2026-01-02" in f for f in day._pruned_files("stats"))
    both = ds.where(task_name=["reports.build", "email.send"], wall_s=slice(0.02, None), state="SUCCESS")
    ref2 = ps.where(task_name=["reports.build", "email.send"], wall_s=slice(0.02, None), state="SUCCESS")
    assert len(both) == len(ref2) > 0
    assert_same(both.task_summary(), ref2.task_summary())
    assert_same(both.top(None), load_subset(ref2).top(None))
    none, ref0 = ds.where(task_name="no.such.task"), ps.where(task_name="no.such.task")
    assert len(none) == 0
    assert_same(none.task_summary(), ref0.task_summary())
    assert len(none.top(None)) == 0 and list(none.top(None).columns) == list(ref0.top(None).columns)
    glob = ds.where(task_name="orders.*", pid=lambda c: c == 100)  # not pushable: applied after reading
    assert_same(glob.task_summary(), ps.where(task_name="orders.*", pid=lambda c: c == 100).task_summary())


def load_subset(ref):
    """cl.load of just the files of a selection: what the materialised selection must equal."""
    return load_paths(ref.profiles["path"].tolist())


def load_paths(paths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cl.load(paths, cache=False, jobs=1)


def test_incremental_ingest_adds_only_new_files_and_rerunning_is_a_no_op(tmp_path, client):
    src = tmp_path / "src"
    make_corpus(src, 10, extras=False)
    dataset = str(tmp_path / "ds")
    first = ingest(str(src), dataset, scheduler=client, chunk_size=4)
    assert (first.new_files, first.profiles) == (10, 10)
    parts = set(read_manifest(dataset)["part"])
    again = ingest(str(src), dataset, scheduler=client)
    assert (again.new_files, again.skipped, again.profiles) == (0, 10, 0)
    assert set(read_manifest(dataset)["part"]) == parts  # nothing written
    make_corpus(src, 5, start=10, extras=False)
    more = ingest(str(src), dataset, scheduler=client, chunk_size=4)
    assert (more.new_files, more.skipped, more.profiles) == (5, 10, 5)
    assert_same(cl.open_dataset(dataset, scheduler=client).top(None), load(src).top(None))


def test_a_changed_file_replaces_its_old_version(tmp_path, client):
    src = tmp_path / "src"
    paths = make_corpus(src, 4, extras=False)
    dataset = str(tmp_path / "ds")
    ingest(str(src), dataset, scheduler=client)
    with open(paths[0], "rb") as f, open(paths[1], "wb") as g:  # rewrite one profile with other content
        g.write(f.read())
    assert ingest(str(src), dataset, scheduler=client).new_files == 1
    ds = cl.open_dataset(dataset, scheduler=client)
    assert len(ds) == 4
    assert_same(ds.to_profileset().stats, load(src).stats)


def test_a_chunk_that_never_committed_is_invisible_and_then_removed(tmp_path, client):
    from celerylab.scale._work import parse_chunk
    from celerylab.scale.ingest import list_sources

    src = tmp_path / "src"
    make_corpus(src, 3, extras=False)
    dataset = str(tmp_path / "ds")
    ingest(str(src), dataset, scheduler=client)
    make_corpus(tmp_path / "late", 2, start=50, extras=False)
    files, _ = list_sources(str(tmp_path / "late"))
    orphan = parse_chunk(files, dataset, "ab" * 12)  # data written, manifest not (the ingest died here)
    assert orphan.written
    assert len(cl.open_dataset(dataset)) == 3
    ingest(str(src), dataset, scheduler=client)
    assert not any(os.path.exists(p) for p in orphan.written)


def test_cli_ingest_uses_the_given_scheduler_and_reports_bad_files(tmp_path, client, capsys):
    from celerylab.cli import main

    src = tmp_path / "src"
    make_corpus(src, 3)
    dataset = str(tmp_path / "ds")
    assert main(["ingest", str(src), "--to", dataset, "--scheduler", client.scheduler.address, "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "5 profile(s) ingested from 6 new file(s)" in out
    assert f"{src}/broken.prof: binary data of no known format" in err  # cl.load's reason for it
    assert main(["ingest", str(src), "--to", dataset, "--scheduler", client.scheduler.address]) == 0
    assert "0 profile(s) ingested from 0 new file(s) (6 already ingested" in capsys.readouterr().out


def _killer():
    from distributed import WorkerPlugin

    class Killer(WorkerPlugin):
        """A worker plugin: the parser dies (the whole worker process, as a marshal bug or an OOM kill would) on
        any profile that names a function ``KILLME``.  A plugin, so that restarted workers have it too."""

        name = "celerylab-killer"

        def setup(self, worker=None):
            import os as _os

            from celerylab.core import decode

            real = decode.parse_files  # every file a worker parses goes through it (the compiled decoder reads
            # runs of local files itself, so the hook looks at each file before the parse does)

            def dying(paths, opener=open, keys=None):
                for path in paths:
                    with opener(path, "rb") as f:
                        if b"KILLME" in f.read():
                            _os._exit(1)
                return real(paths, opener, keys)

            decode.parse_files = dying

    return Killer()


def test_a_file_that_kills_its_worker_is_named_and_nothing_else_is_lost(tmp_path):
    import dask
    from distributed import Client, LocalCluster

    from celerylab.core.parse import CRASH_REASON
    from celerylab.testing import write_profile

    src = tmp_path / "src"
    good = make_corpus(src, 6, extras=False)
    killer = write_profile(str(src), {("app.py", 1, "KILLME"): (1, 1, 0.1, 0.1, {})}, task_name="x", task_id="k")
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as c,
    ):
        c.register_plugin(_killer())
        rep = ingest(str(src), str(tmp_path / "ds"), scheduler=c, chunk_size=4)
    assert rep.errors == [(killer, CRASH_REASON)]
    assert rep.profiles == 6
    ds = cl.open_dataset(str(tmp_path / "ds"))
    assert sorted(ds.profiles["path"]) == good
    assert ds.errors.values.tolist() == [[killer, CRASH_REASON]]


def test_without_a_scheduler_ingest_starts_a_local_cluster_sized_to_the_machine(tmp_path, monkeypatch):
    import sys

    mod = sys.modules["celerylab.scale.ingest"]  # the module (the package exports the function of that name)

    sizes = []
    real = mod.local_cluster

    def spy(n_workers=None, **kw):
        cluster = real(n_workers, **kw)
        sizes.append(len(cluster.workers))
        return cluster

    monkeypatch.setattr(mod, "local_cluster", spy)
    make_corpus(tmp_path / "src", 3, extras=False)
    rep = ingest(str(tmp_path / "src"), str(tmp_path / "ds"))
    assert rep.profiles == 3 and sizes == [os.cpu_count()]


def test_the_sql_and_allocations_tables_hold_the_sidecar_rows_by_profile_key(ds, ps):
    sql = ds._table("sql")
    assert len(sql) == len(ps.sql) > 0
    keys = ds._selected().set_index("path")["profile_key"]
    expected = ps.sql.assign(profile_key=ps.profiles["path"].iloc[ps.sql["profile_id"]].map(keys).to_numpy())
    assert sorted(zip(sql["profile_key"], sql["count"])) == sorted(zip(expected["profile_key"], expected["count"]))
    assert len(ds._table("allocations")) == len(ps.allocations)


def test_usage_errors(tmp_path, ds):
    from celerylab.errors import UsageError

    with pytest.raises(UsageError, match="not a celerylab dataset"):
        cl.open_dataset(str(tmp_path))
    with pytest.raises(UsageError, match="date is a 'YYYY-MM-DD' string"):
        ds.where(date=lambda c: c)
    with pytest.raises(UsageError, match="more than max_profiles=3"):
        ds.to_profileset(max_profiles=3)
    with pytest.raises(cl.FunctionNotFound):
        ds.callers("no_such_function_anywhere")


def test_ingest_shows_a_progress_bar_when_asked(tmp_path, client, capsys):
    make_corpus(tmp_path / "src", 3, extras=False)
    ingest(str(tmp_path / "src"), str(tmp_path / "ds"), scheduler=client, progress=True)
    assert "celerylab ingest" in capsys.readouterr().err


def test_names_that_are_not_utf8_are_ingested_and_totals_stay_exact(tmp_path, client):
    """A file name of bytes that are not UTF-8, a function named with a lone surrogate, a sidecar's run and task name
    holding one, and a broken file with such a name: Parquet's strings are UTF-8, so the dataset writes each as its
    escape (as the loader's frames show names); the functions keep their identity and every total equals pstats.
    They once failed the whole ingest with UnicodeEncodeError."""
    folder = tmp_path / "src"
    good = make_corpus(folder, 3, extras=False)
    odd, broken = write_not_utf8(str(folder), good[0], task_name="odd\udcfftask", run="run\udcfe")
    paths = sorted([*good, *odd])

    def shown(text):
        return text.encode("utf-8", "backslashreplace").decode()

    dataset = str(tmp_path / "ds")
    report = ingest(str(folder), dataset, scheduler=client, chunk_size=2)
    assert report.profiles == len(paths) == 5
    assert [p for p, _ in report.errors] == [broken]  # the report names the file itself
    assert sorted(read_manifest(dataset)["path"]) == sorted(shown(p) for p in [*paths, broken])
    again = ingest(str(folder), dataset, scheduler=client)
    assert again.new_files == 0 and again.skipped == 6, "the escaped manifest still knows every file"
    ds = cl.open_dataset(dataset, scheduler=client)
    got = ds.to_profileset()
    assert sorted(got.profiles["path"]) == sorted(shown(p) for p in paths)
    assert "odd\\udcfftask" in set(got.profiles["task_name"].astype(object))
    assert "run\\udcfe" in set(got.profiles["run"].astype(object))
    oracle = pstats.Stats(*paths)
    totals = ds.function_totals().merge(ds._functions(), on="func_key").set_index(["file", "line", "name"])
    assert len(totals) == len(oracle.stats)
    for (file, line, name), (_cc, _nc, tt, ct, _callers) in oracle.stats.items():
        row = totals.loc[(shown(file), line, shown(name))]
        assert (row["tottime"], row["cumtime"]) == (tt, ct), name
    loaded = load(folder)  # cl.load shows the same names the same way
    assert set(loaded.functions["label"]) == set(got.functions["label"])


def test_a_line_number_beyond_64_bits_leaves_out_that_profile_with_its_reason(tmp_path, client):
    """pstats (and cl.load) read a line number beyond 64 bits; the dataset's line column is int64: that profile is
    left out, named with the reason, and the rest of its chunk is ingested exactly (it was reported as a parser
    crash, after its whole chunk failed)."""
    import marshal

    from celerylab.scale._work import BEYOND_INT64

    folder = tmp_path / "src"
    good = make_corpus(folder, 3, extras=False)
    huge = str(folder / "huge.prof")
    with open(huge, "wb") as f:
        f.write(marshal.dumps({("a.py", 2**70, "f"): (1, 1, 0.5, 0.5, {}), ("a.py", 1, "g"): (1, 1, 0.25, 0.25, {})}))
    dataset = str(tmp_path / "ds")
    report = ingest(str(folder), dataset, scheduler=client, chunk_size=10)
    assert report.profiles == 3 and report.errors == [(huge, BEYOND_INT64)]
    assert report.chunks == 1
    ds = cl.open_dataset(dataset, scheduler=client)
    assert_same(ds.top(None), load_subset(load(folder).where(path=lambda c: c != huge)).top(None))
    assert ingest(str(folder), dataset, scheduler=client).new_files == 0, "its verdict is kept"
    assert sorted(ds.to_profileset().profiles["path"]) == sorted(good)
