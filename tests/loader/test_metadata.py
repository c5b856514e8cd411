"""Sidecars, task names from file names, and user metadata joined with conflicts reported."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

import celerylab as cl
from celerylab import LoadError
from celerylab.core.names import PRESETS, parse_fields, parse_name
from celerylab.testing import FakeClock, profile_fake_clock, workload, write_profile

from .conftest import make_set

U = "0b7d8e6a-3f2c-4e1a-9c5d-1234567890ab"


@pytest.mark.parametrize(
    ("name", "task", "tid"),
    [
        (f"billing.charge.{U}.prof", "billing.charge", U),
        (f"billing.charge-{U}.prof.gz", "billing.charge", U),
        (f"{U}.prof", None, U),
        (f"{U}.billing.charge.pstats", "billing.charge", U),
        (f"billing.charge.{U}.20260101T120000Z.prof", "billing.charge", U),
        (f"20260101-120000-{U}.prof", None, U),
        ("billing.charge-20260101T120000.prof", "billing.charge", None),
        ("1767268800.5_billing.charge.prof", "billing.charge", None),
        ("profile.out", None, None),
    ],
)
def test_task_name_and_id_from_common_file_names(name, task, tid):
    assert parse_name(f"/x/{name}") == (task, tid)


def _one(folder, name):
    c = FakeClock()
    stats = profile_fake_clock(workload, 1, c, clock=c)
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_bytes(__import__("marshal").dumps(stats))
    return str(p)


def test_custom_name_pattern(tmp_path):
    _one(tmp_path, "job-42__orders.sync.prof")
    ps = cl.load(tmp_path, cache=False, name_pattern=r"job-(?P<task_id>\d+)__(?P<task_name>[\w.]+)")
    assert ps.profiles[["task_name", "task_id", "name_source"]].astype(object).values.tolist() == [
        ["orders.sync", "42", "filename"]
    ]
    with pytest.raises(ValueError, match="must define"):
        cl.load(tmp_path, cache=False, name_pattern=r"job-(\d+)")


def test_sidecar_fields_become_columns_and_frames(tmp_path):
    c = FakeClock()
    stats = profile_fake_clock(workload, 2, c, clock=c)
    meta = {
        "schema": "celerylab.task/1", "task_id": U, "task_name": "reports.build", "state": "FAILURE",
        "started_at": "2026-03-01T10:00:00+00:00", "finished_at": "2026-03-01T10:00:02.5+00:00",
        "wall_s": 2.5, "cpu_s": 1.25, "hostname": "w1@h", "pid": 77, "pool": "prefork", "queue": "reports",
        "retries": 2, "run": "candidate", "python": "3.11.7", "celery": "5.7.0", "sys_prefixes": ["/usr"],
        "exception": {"type": "ValueError", "message": "bad row"},
        "memory": {"rss_before": 100, "rss_after": 250, "peak_traced": 4096,
                   "top": [{"file": "/srv/app/img.py", "line": 12, "size": 2048, "count": 3}]},
        "sql": {"count": 7, "time_s": 0.03, "statements": [
            {"sql": "SELECT * FROM customer WHERE id = ?", "count": 6, "time_s": 0.02,
             "callers": ["/srv/app/reports.py:40(load_rows)"]}]},
    }  # fmt: skip
    write_profile(str(tmp_path), stats, task_name="reports.build", task_id=U, meta=meta)
    ps = cl.load(tmp_path, cache=False)
    row = ps.profiles.iloc[0]
    assert (row.task_name, row.task_id, row.state, row.run, row.pid, row.retries) == (
        "reports.build", U, "FAILURE", "candidate", 77, 2)  # fmt: skip
    assert row.started_at == pd.Timestamp("2026-03-01T10:00:00Z")
    assert row.wall_s == 2.5 and row.cpu_s == 1.25
    assert (row.exception_type, row.exception_message) == ("ValueError", "bad row")
    assert (row.memory_rss_before, row.memory_rss_after, row.memory_peak_traced) == (100, 250, 4096)
    assert (row.sql_count, row.sql_time_s) == (7, 0.03)
    assert ps.sql.to_dict("records") == [
        {"profile_id": 0, "sql": "SELECT * FROM customer WHERE id = ?", "count": 6, "time_s": 0.02,
         "callers": ["/srv/app/reports.py:40(load_rows)"]}]  # fmt: skip
    assert ps.allocations.to_dict("records") == [
        {"profile_id": 0, "file": "/srv/app/img.py", "line": 12, "size": 2048, "count": 3}]  # fmt: skip
    assert row.name_source == "sidecar"


def test_profiles_without_sidecars_still_load_with_names_from_files(tmp_path):
    paths = make_set(tmp_path, 3, with_sidecars=False)
    _one(tmp_path, "something-else.prof")
    ps = cl.load(tmp_path, cache=False)
    got = ps.profiles.set_index("path")
    for p in paths:
        name = p.rsplit("/", 1)[1]
        assert got.loc[p, "task_name"] == name[: name.index(".0000")]
        assert got.loc[p, "task_id"] == name[name.index(".0000") + 1 : -len(".prof")]
        assert got.loc[p, "name_source"] == "filename"
    assert pd.isna(got.loc[str(tmp_path / "something-else.prof"), "task_name"])


def test_user_metadata_joined_on_task_id_with_conflicts_and_unmatched_reported(tmp_path):
    paths = make_set(tmp_path / "p", 4)
    ps0 = cl.load(tmp_path / "p", cache=False)
    ids = ps0.profiles["task_id"].tolist()
    meta = pd.DataFrame({
        "task_id": [ids[0], ids[1], ids[1], "not-a-loaded-task"],
        "customer": ["acme", "globex", "dup", "nobody"],
        "state": ["SUCCESS", "REVOKED", "x", "y"],  # ids[1]'s sidecar says SUCCESS
    })  # fmt: skip
    with pytest.warns(UserWarning, match="metadata merge"):
        ps = cl.load(tmp_path / "p", cache=False, metadata=meta)
    got = ps.profiles.set_index("task_id")
    assert got.loc[ids[0], "customer"] == "acme"
    assert got.loc[ids[1], "customer"] == "globex"  # the first of the duplicates is used
    assert got.loc[ids[1], "state"] == "REVOKED"  # the user's value wins, and is reported
    assert pd.isna(got.loc[ids[2], "customer"])
    rep = ps.metadata_report
    assert set(map(tuple, rep[["kind", "key"]].values.tolist())) == {
        ("duplicate_key", ids[1]), ("unmatched_metadata", "not-a-loaded-task"), ("conflict", ids[1])}  # fmt: skip
    conflict = rep.loc[rep.kind == "conflict"].iloc[0]
    assert (conflict.column, conflict.profile_value, conflict.metadata_value) == ("state", "SUCCESS", "REVOKED")
    assert len(paths) == 4


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_metadata_files_and_join_on_path(tmp_path, fmt):
    paths = make_set(tmp_path / "p", 2, with_sidecars=False)
    rows = [{"path": paths[0], "deploy": "v1.2", "cost": 3.5}, {"path": paths[1], "deploy": "v1.3", "cost": 1.0}]
    f = tmp_path / f"meta.{fmt}"
    if fmt == "csv":
        pd.DataFrame(rows).to_csv(f, index=False)
    else:
        f.write_text("\n".join(json.dumps(r) for r in rows))
    ps = cl.load(tmp_path / "p", cache=False, metadata=f)
    got = ps.profiles.set_index("path")
    assert got.loc[paths[0], "deploy"] == "v1.2" and got.loc[paths[1], "cost"] == 1.0
    assert len(ps.metadata_report) == 0


def test_metadata_without_a_join_column_is_a_clear_error(tmp_path):
    make_set(tmp_path / "p", 1)
    with pytest.raises(LoadError, match=re.escape("needs a 'task_id' or 'path' column")):
        cl.load(tmp_path / "p", cache=False, metadata=pd.DataFrame({"x": [1]}))
    with pytest.raises(LoadError, match="unknown format"):
        cl.load(tmp_path / "p", cache=False, metadata=tmp_path / "meta.xlsx")


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_every_preset_reads_its_own_example(preset):
    fields = parse_fields(f"/x/{preset.example}")
    assert fields.get("task_name") or fields.get("task_id")
    # the example is read by this preset, or by an earlier one with the very same result
    own = {k: v for k, v in fields.items() if k != "name_preset"}
    m = preset.pattern.search(preset.example.rsplit(".prof", 1)[0].rsplit(".pstat", 1)[0])
    assert m, preset.example
    if fields["name_preset"] != preset.name:
        assert PRESETS.index(next(p for p in PRESETS if p.name == fields["name_preset"])) < PRESETS.index(preset)
        assert own["task_id"] in preset.example


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # werkzeug/Flask ProfilerMiddleware: the elapsed time and the epoch never go into the task name
        ("GET.root.000003ms.1700000000.prof", {"task_name": "GET /", "wall_s": 0.003, "finished_at": 1700000000.0}),
        (
            "POST.api.v1.orders.12ms.1700000123.prof",
            {"task_name": "POST /api/v1/orders", "wall_s": 0.012, "finished_at": 1700000123.0},
        ),
        # pretix
        (
            "1700000000_0.123_control_event_index.pstat",
            {"task_name": "/control_event_index", "wall_s": 0.123, "finished_at": 1700000000.0},
        ),
        ("1700000000_2.500_.pstat", {"task_name": "/", "wall_s": 2.5, "finished_at": 1700000000.0}),
        # django-silk, plain and SILKY_PYTHON_PROFILER_EXTENDED_FILE_NAME
        (f"{U}.prof", {"task_id": U}),
        (f"api_users_42_{U}.prof", {"task_name": "api_users_42", "task_id": U}),
        (f"2024_report_{U}.prof", {"task_name": "2024_report", "task_id": U}),
        # celerylab's own, with a retry suffix
        (f"orders.process.{U}.retry2.prof", {"task_name": "orders.process", "task_id": U}),
    ],
)
def test_file_name_presets_of_web_profilers(name, expected):
    got = {k: v for k, v in parse_fields(f"/x/{name}").items() if k != "name_preset"}
    assert got == expected


def test_presets_fill_duration_and_end_time_only_when_the_sidecar_has_none(tmp_path):
    _one(tmp_path, "GET.root.000003ms.1700000000.prof")
    _one(tmp_path, "1700000000_0.123_control_event_index.pstat")
    ps = cl.load(tmp_path, cache=False)
    p = ps.profiles.set_index(ps.profiles["path"].map(lambda s: s.rsplit("/", 1)[1]))
    assert p.loc["GET.root.000003ms.1700000000.prof", "task_name"] == "GET /"
    assert p.loc["GET.root.000003ms.1700000000.prof", "wall_s"] == 0.003
    assert p.loc["1700000000_0.123_control_event_index.pstat", "task_name"] == "/control_event_index"
    assert p.loc["1700000000_0.123_control_event_index.pstat", "finished_at"] == pd.Timestamp(
        1700000000, unit="s", tz="UTC"
    )
    assert set(p["name_source"].astype(str)) == {"filename"}


def test_metadata_reaches_every_profile_of_a_retried_task_and_skips_profiles_without_an_id(tmp_path):
    # a retried task is profiled once per attempt under one task_id; profiles of another tool have no task_id
    first = _one(tmp_path / "a", f"billing.charge.{U}.prof")
    retry = _one(tmp_path / "b", f"billing.charge.{U}.prof")
    foreign = [_one(tmp_path / "c", n) for n in ("profile.out", "other.prof")]
    meta = pd.DataFrame({"task_id": [U, "not-profiled"], "tenant": ["acme", "x"]})
    with pytest.warns(UserWarning, match="1 unmatched metadata"):
        ps = cl.load(tmp_path, metadata=meta, cache=False)
    tenant = ps.profiles.set_index("path")["tenant"]
    assert tenant[first] == tenant[retry] == "acme"
    assert tenant[foreign].isna().all()
    assert ps.metadata_report["kind"].tolist() == ["unmatched_metadata"]


@pytest.mark.parametrize("n", [0, 1, 5])
def test_core_columns_no_profile_has_are_what_their_conversion_gives(n):
    """A core column of ``profiles`` that no profile has (another tool's files, no sidecars) is made by repeating
    the conversion of one None: it must equal converting the whole column (dtype included), for every core column
    and any number of profiles (none: the conversions give other dtypes)."""
    import numpy as np
    import pandas.testing as pdt

    from celerylab.core import frames

    for column in (*frames._TIME_COLUMNS, "wall_s", "cpu_s", *frames._CATEGORY_COLUMNS):
        values = np.full(n, None, dtype=object)
        fast, slow = frames._fixed(column, values, True), frames._fixed(column, values, False)
        pdt.assert_series_equal(pd.Series(fast), pd.Series(slow), check_exact=True)
        assert fast.dtype == slow.dtype, column
