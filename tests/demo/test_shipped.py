"""The shipped ``sample_profiles/``: what the manifest promises is what the files hold."""

from __future__ import annotations

from collections import Counter

import pytest

import celerylab as cl
from celerylab.demo import manifest as mf

MAX_BYTES = 25 * 1024 * 1024


@pytest.fixture(scope="module")
def shipped():
    root = cl.sample_profiles()
    return root, mf.read_manifest(root), cl.load(str(root), cache=False, progress=False)


def test_sample_profiles_points_at_the_two_runs(shipped):
    root, m, _ = shipped
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["baseline", "candidate",
                                                                                    "manifest.json"]  # fmt: skip
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) <= MAX_BYTES
    for run in mf.RUNS:
        assert m["runs"][run]["directory"] == run
        assert not list((root / run).glob("*.prof")), "profiles are shipped gzipped"


def test_files_match_the_manifest(shipped):
    _, m, ps = shipped
    assert len(ps.errors) == 0
    p = ps.profiles
    for run in mf.RUNS:
        mine = p[(p["run"] == run) & (p["role"] == "worker")]
        info = m["runs"][run]
        published = p[(p["run"] == run) & (p["role"] == "producer")]
        assert len(published) == info["publishes"] > 0
        assert set(published["task_name"].astype(str)) == {m["producer"]["tasks"]}
        assert info["profiles"] >= 300 and len(mine) == info["profiles"]
        assert dict(Counter(mine["task_name"].astype(str))) == info["tasks"]
        assert set(info["tasks"]) == set(mf.TASKS)
        assert (mine["state"] == "FAILURE").sum() == info["failures"] > 0
        assert (mine["state"] == "RETRY").sum() == info["retries"] > 0
        assert sorted(mine["pid"].unique().tolist()) == info["pids"] and len(info["pids"]) == 2
        assert (mine["pool"].astype(str) == "prefork").all()


def test_planted_functions_resolve_in_the_shipped_set(shipped):
    _, m, ps = shipped
    assert [p["id"] for p in m["planted"]] == [p["id"] for p in mf.PLANTED]
    for item, obs in zip(m["planted"], m["observed"]):
        fid = ps.resolve(item["function"])
        assert ps.functions["label"].iloc[fid] == obs["function_label"]
        assert {"baseline", "candidate"} <= set(ps.where(task_name=item["task"]).profiles["run"])
    for item, obs in zip(m["planted_producer"], m["observed_producer"]):
        fid = ps.resolve(item["function"])
        assert ps.functions["label"].iloc[fid] == obs["function_label"]
        assert obs["publish_ratio"] > 1.2
