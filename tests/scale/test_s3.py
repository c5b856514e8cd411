"""ship -> S3 (moto's server on 127.0.0.1) -> ingest on the LocalCluster -> open_dataset: the same task_summary,
top and diff as ``cl.load`` of the same files; partial uploads never appear; a failed upload keeps the files."""

from __future__ import annotations

import os
import shutil
import warnings

import celerylab as cl
from celerylab.scale import ingest, ship

from .conftest import make_corpus, s3_options
from .test_dataset import assert_same


def _load(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cl.load(str(folder), cache=False, jobs=1)


def _s3(opts):
    import s3fs

    return s3fs.S3FileSystem(**opts)


def test_ship_ingest_open_on_s3_equals_load_of_the_same_files(tmp_path, bucket, client):
    url, opts = bucket
    capture = tmp_path / "capture"
    make_corpus(capture, 18)
    # a capture still writing: its temporary file must never be shipped
    tmp_name = capture / ".orders.process.x.prof.123-abcd.tmp"
    tmp_name.write_bytes(b"partial")
    reference = shutil.copytree(capture, tmp_path / "reference")
    os.remove(reference / tmp_name.name)

    rep = ship(str(capture), f"{url}/profiles", storage_options=opts)
    assert len(rep.shipped) == 21 and rep.failed == []
    left = sorted(os.listdir(capture))
    assert left == [tmp_name.name]  # shipped pairs deleted, the temp file kept
    fs = _s3(opts)
    keys = [k.rsplit("/", 1)[1] for k in fs.find(f"{url}/profiles")]
    assert len([k for k in keys if k.endswith(".prof")]) == 21 and len([k for k in keys if k.endswith(".json")]) == 19
    assert not [k for k in keys if k.startswith(".") or k.endswith(".tmp")]

    dataset = f"{url}/dataset"
    report = ingest(f"{url}/profiles", dataset, scheduler=client, storage_options=opts, source_options=opts,
                    chunk_size=4)  # fmt: skip
    ps = _load(reference)
    assert report.profiles == len(ps) == 20
    # the corrupt file and the bad sidecar: the reasons cl.load gives, for the S3 paths
    local_errors = sorted((os.path.basename(p), r) for p, r in ps.errors.itertuples(index=False))
    assert sorted((p.rsplit("/", 1)[1], r) for p, r in report.errors) == local_errors
    assert all(p.startswith(f"{url}/profiles/") for p, _ in report.errors)

    ds = cl.open_dataset(dataset, storage_options=opts, scheduler=client)
    assert_same(ds.task_summary(), ps.task_summary())
    assert_same(ds.top(None), ps.top(None))
    assert_same(ds.diff(split_by="run", group_by="task_name"), ps.diff(split_by="run", group_by="task_name"))
    got = ds.to_profileset()
    assert got.profiles["path"].str.startswith(f"{url}/profiles/").all()
    assert_same(got.stats, ps.stats)
    assert_same(got.edges, ps.edges)
    assert sorted(ds.errors["reason"]) == sorted(ps.errors.loc[ps.errors["path"].str.endswith(".prof"), "reason"])

    # more profiles arrive; re-ingest adds only them
    make_corpus(capture, 4, start=100, extras=False)
    assert len(ship(str(capture), f"{url}/profiles", storage_options=opts).shipped) == 4
    again = ingest(f"{url}/profiles", dataset, scheduler=client, storage_options=opts, source_options=opts)
    assert (again.new_files, again.profiles, again.skipped) == (4, 4, 21)
    make_corpus(reference, 4, start=100, extras=False)
    ds = cl.open_dataset(dataset, storage_options=opts, scheduler=client)
    assert_same(ds.top(None), _load(reference).top(None))
    assert ingest(f"{url}/profiles", dataset, scheduler=client, storage_options=opts,
                  source_options=opts).new_files == 0  # fmt: skip


def test_a_corrupt_file_dropped_in_the_bucket_is_reported_and_the_rest_ingested(tmp_path, bucket, client):
    url, opts = bucket
    src = tmp_path / "src"
    make_corpus(src, 6, extras=False)
    fs = _s3(opts)
    fs.put(str(src) + "/", f"{url}/in/", recursive=True)
    fs.pipe(f"{url}/in/sub/truncated.prof", sorted(src.glob("*.prof"))[0].read_bytes()[:50])
    rep = ingest(f"{url}/in", f"{url}/ds", scheduler=client, storage_options=opts, source_options=opts)
    assert rep.profiles == 6
    local = tmp_path / "truncated.prof"
    local.write_bytes(fs.cat(f"{url}/in/sub/truncated.prof"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = cl.load(str(local), cache=False).errors["reason"].tolist()
    assert rep.errors == [(f"{url}/in/sub/truncated.prof", expected[0])]
    assert expected[0].startswith("truncated")
    ds = cl.open_dataset(f"{url}/ds", storage_options=opts)
    assert ds.errors.values.tolist() == [[f"{url}/in/sub/truncated.prof", expected[0]]]
    assert len(ds) == 6


def test_ship_keeps_the_files_when_the_storage_is_unreachable_and_ships_them_later(tmp_path, bucket):
    url, opts = bucket
    capture = tmp_path / "capture"
    make_corpus(capture, 3, extras=False)
    before = sorted(os.listdir(capture))
    down = s3_options("http://127.0.0.1:9")  # nothing listens on the discard port
    down["config_kwargs"] = {"connect_timeout": 1, "retries": {"max_attempts": 1}}
    rep = ship(str(capture), f"{url}/p", storage_options=down)
    assert rep.shipped == [] and len(rep.failed) == 3
    assert sorted(os.listdir(capture)) == before  # nothing deleted
    rep = ship(str(capture), f"{url}/p", storage_options=opts)
    assert len(rep.shipped) == 3 and os.listdir(capture) == []
    assert len(_s3(opts).find(f"{url}/p")) == 6


def test_a_failed_move_leaves_no_profile_and_no_temp_key(tmp_path, bucket, monkeypatch):
    """The profile goes to a temporary key first: if the move fails, readers see no profile (the sidecar alone is
    no profile) and the local files stay."""
    import s3fs

    url, opts = bucket
    capture = tmp_path / "capture"
    make_corpus(capture, 1, extras=False)

    def broken_mv(self, *a, **k):
        raise ConnectionError("network down during the move")

    monkeypatch.setattr(s3fs.S3FileSystem, "mv", broken_mv)
    rep = ship(str(capture), f"{url}/p", storage_options=opts)
    assert rep.shipped == [] and "network down" in rep.failed[0][1]
    assert len(os.listdir(capture)) == 2
    keys = _s3(opts).find(f"{url}/p")
    assert [k for k in keys if k.endswith(".prof") or ".tmp" in k] == []


def test_ship_to_a_local_url_and_the_cli(tmp_path, capsys):
    from celerylab.cli import main

    capture = tmp_path / "capture"
    make_corpus(capture, 2, extras=False)
    dest = tmp_path / "dest"
    assert main(["ship", "--dir", str(capture), "--to", f"file://{dest}"]) == 0
    assert "shipped 2 profile(s)" in capsys.readouterr().out
    assert sorted(p.suffix for p in dest.iterdir()) == [".json", ".json", ".prof", ".prof"]
    assert os.listdir(capture) == []
