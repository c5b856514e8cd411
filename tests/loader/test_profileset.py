"""ProfileSet methods: where, top, callers/callees (vs pstats), resolve, display, progress, import layering."""

from __future__ import annotations

import pstats
import subprocess
import sys

import pandas as pd
import pytest

import celerylab as cl
from celerylab import AmbiguousFunction, FunctionNotFound
from celerylab.testing import FakeClock, profile_fake_clock, workload, write_profile

from .conftest import make_set


@pytest.fixture
def ps(fake_set):
    folder, _ = fake_set
    return cl.load(folder, cache=False)


def test_where_filters(ps):
    assert set(ps.where(run="candidate").profiles["run"]) == {"candidate"}
    assert len(ps.where(task_name=["orders.process", "email.send"])) == 8
    assert len(ps.where(task_name="orders.*", run="baseline")) == 2
    assert ps.where(state="FAILURE").profiles["path"].str.contains("email.send").all()
    window = ps.where(started_at=slice("2026-01-01T00:00:03", "2026-01-01T00:00:06"))
    assert sorted(window.profiles["started_at"].dt.second) == [3, 4, 5]
    assert len(ps.where(lambda p: p.wall_s > 0.035)) == 4
    assert len(ps.where(pid=100).stats) == int(ps.profiles.loc[ps.profiles.pid == 100, "n_functions"].sum())
    with pytest.raises(KeyError, match="no column 'nope'"):
        ps.where(nope=1)


def test_a_glob_condition_skips_missing_values(tmp_path):
    """A profile without a task name (no sidecar, a name the file name does not give) never matches a glob; it
    used to raise a TypeError once pandas handed the missing value back as NaN."""
    folder = tmp_path / "p"
    make_set(folder, 3)
    write_profile(str(folder), profile_fake_clock(workload, 1), task_name="x", task_id="1")
    (folder / "x.1.prof").rename(folder / "noname.prof")
    ps = cl.load(folder, cache=False)
    assert ps.profiles["task_name"].isna().sum() == 1
    assert len(ps.where(task_name="orders.*")) == 1
    assert len(ps.where(task_name="*")) == 3


def test_top_matches_pstats_and_groups(ps, fake_set):
    _, paths = fake_set
    ref = pstats.Stats(*paths)
    t = ps.top(5)
    by_tt = sorted(ref.stats.items(), key=lambda kv: -kv[1][2])[:5]
    assert t["tottime"].tolist() == [v[2] for _, v in by_tt]
    assert t["label"].tolist() == [pstats.func_std_string(k) for k, _ in by_tt]
    assert t["share"].iloc[0] == pytest.approx(by_tt[0][1][2] / sum(v[2] for v in ref.stats.values()))
    g = ps.top(3, by="cumtime", group_by="run")
    assert g.groupby("run").size().to_dict() == {"baseline": 3, "candidate": 3}
    base = pstats.Stats(*ps.where(run="baseline").profiles["path"])
    assert g.loc[g.run == "baseline", "cumtime"].iloc[0] == max(v[3] for v in base.stats.values())
    with pytest.raises(ValueError, match="by must be one of"):
        ps.top(by="percall")


def test_callers_and_callees_equal_pstats_edges(ps, fake_set):
    _, paths = fake_set
    ref = pstats.Stats(*paths)
    ref.calc_callees()
    key = next(k for k in ref.stats if k[2] == "parse")
    callers = ps.callers("parse")
    expected = {pstats.func_std_string(c): v for c, v in ref.stats[key][4].items()}
    got = {r.label: (r.ncalls, r.pcalls, r.tottime, r.cumtime) for r in callers.itertuples()}
    assert got == expected
    callees = ps.callees("parse")
    expected = {pstats.func_std_string(c): v for c, v in ref.all_callees[key].items()}
    got = {r.label: (r.ncalls, r.pcalls, r.tottime, r.cumtime) for r in callees.itertuples()}
    assert got == expected
    split = ps.callers("parse", split_by="run")
    assert set(split["run"]) == {"baseline", "candidate"}
    assert split["ncalls"].sum() == sum(v[0] for v in ref.stats[key][4].values())


def test_resolve_by_id_label_name_fragment_and_clear_errors(ps):
    fid = ps.resolve("crunch")
    label = ps.functions.set_index("func_id").loc[fid, "label"]
    assert ps.resolve(label) == fid == ps.resolve(int(fid))
    assert ps.resolve(label.rsplit("/", 1)[1]) == fid  # a unique fragment of a label: "testing.py:NN(crunch)"
    with pytest.raises(AmbiguousFunction) as info:
        ps.resolve("is_")  # is_even and is_odd
    assert {c.rsplit("(", 1)[1] for c in info.value.candidates} == {"is_even)", "is_odd)"}
    assert "is_even" in str(info.value) and "is_odd" in str(info.value)
    with pytest.raises(FunctionNotFound, match="did you mean 'crunch'"):
        ps.resolve("crunh")


def test_repr_and_html_escape_names(tmp_path):
    c = FakeClock()
    stats = profile_fake_clock(workload, 1, c, clock=c)
    from celerylab.testing import sidecar

    name = "<script>alert('x')</script>"
    write_profile(str(tmp_path), stats, task_name="evil", task_id="00000000-0000-0000-0000-000000000001",
                  meta=sidecar(name, "00000000-0000-0000-0000-000000000001"))  # fmt: skip
    ps = cl.load(tmp_path, cache=False)
    html = ps._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    text = repr(ps)
    assert text.startswith("<celerylab.ProfileSet: 1 profiles, 1 tasks")


def test_task_summary_numbers(ps):
    s = ps.task_summary().set_index("task_name")
    p = ps.profiles
    email = p.loc[p.task_name == "email.send", "wall_s"]
    assert s.loc["email.send", "profiles"] == 4
    assert s.loc["email.send", "failed"] == 1
    assert s.loc["email.send", "wall_p50_s"] == pytest.approx(email.median())
    assert s.loc["email.send", "wall_p95_s"] == pytest.approx(email.quantile(0.95))


def test_progress_bar_on_request_and_silent_by_default(tmp_path, capsys):
    make_set(tmp_path, 4)
    cl.load(tmp_path, cache=False, progress=True, jobs=1)
    assert "celerylab.load" in capsys.readouterr().err
    cl.load(tmp_path, cache=False, jobs=1)  # not interactive (pytest captures stderr): silent
    assert capsys.readouterr().err == ""


def test_empty_source_warns_and_gives_an_empty_set(tmp_path):
    with pytest.warns(UserWarning, match="no profile files found"):
        ps = cl.load(tmp_path, cache=False)
    assert len(ps) == 0 and list(ps.top(5)["label"]) == []
    assert isinstance(ps.profiles, pd.DataFrame)


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [("celerylab", ("ipywidgets", "plotly", "celery", "pandas")),
     ("celerylab.core.load", ("ipywidgets", "plotly", "celery")),
     ("celerylab.analysis", ("ipywidgets", "plotly", "celery"))],
)  # fmt: skip
def test_import_layering(module, forbidden):
    code = f"import sys, {module}; print(','.join(m for m in {forbidden!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import {module} pulled in {out}"
