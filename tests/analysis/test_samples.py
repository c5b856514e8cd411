"""The shipped sample profiles: the planted changes of ``manifest.json`` come out on top, unchanged tasks `same`."""

from __future__ import annotations

import pytest

import celerylab as cl
from celerylab import analysis as an

DIRECTION = {"regression": "slower", "improvement": "faster"}


@pytest.fixture(scope="module")
def sample():
    from celerylab.demo.manifest import read_manifest

    root = cl.sample_profiles()
    if not (root / "manifest.json").exists():
        pytest.skip(f"no sample manifest in {root}")
    m = read_manifest(root)
    ps = cl.load(str(root), cache=False, progress=False)
    return m, ps.where(run="baseline"), ps.where(run="candidate")


def _timed(m):
    return [p for p in m["planted"] if p["kind"] in DIRECTION]


def test_task_level_diff_ranks_the_planted_tasks_first_and_the_rest_same(sample):
    m, a, b = sample
    d = cl.diff(a, b, by="task_name")
    planted = {p["task"]: DIRECTION[p["kind"]] for p in _timed(m)}
    assert set(d["label"].head(len(planted))) == set(planted)  # the biggest contributions to the change
    st = d.set_index("label")["status"].astype(str)
    for task, direction in planted.items():
        assert st[task] == direction, task
    for task in m["unchanged_tasks"]:
        assert st[task] == "same", task


def test_planted_functions_change_in_the_expected_direction(sample):
    m, a, b = sample
    d = cl.diff(a, b, group_by="task_name", metric="cumtime")
    for p in _timed(m):
        rows = d.loc[(d.task_name == p["task"]) & d.label.str.endswith(f"({p['function']})")]
        assert len(rows) == 1, p["function"]
        assert rows["status"].astype(str).iloc[0] == DIRECTION[p["kind"]], p["function"]
        # among the biggest inclusive changes of its task (only its callers' chain can be bigger)
        task_rows = d.loc[d.task_name == p["task"]].reset_index(drop=True)
        rank = task_rows.index[task_rows.label == rows["label"].iloc[0]][0]
        assert rank < 15, (p["function"], rank)


def test_function_diff_blames_only_planted_tasks(sample):
    m, a, b = sample
    # the worker plants, and publishing the task whose publishes the producer-side plant slows down
    planted_tasks = {p["task"] for p in m["planted"]} | {f"{p['task']} (publish)" for p in m["planted_producer"]}
    for metric in ("tottime", "cumtime"):
        d = cl.diff(a, b, group_by="task_name", metric=metric)
        changed = d.loc[d.status.astype(str).isin(["slower", "faster"])]
        assert set(changed["task_name"]) <= planted_tasks, metric
        assert not set(changed["task_name"]) & set(m["unchanged_tasks"])
    # default cl.diff (one row per function, stratified by task): its biggest significant change is one that the
    # per-task diff attributes to a planted task
    grouped = cl.diff(a, b, group_by="task_name")
    blamed = set(grouped.loc[grouped.status.astype(str).isin(["slower", "faster"]), "label"])
    top = cl.diff(a, b)
    first = top.loc[top.status.astype(str).isin(["slower", "faster"])].iloc[0]
    assert first["label"] in blamed


def test_db_suspects_point_at_the_n_plus_one(sample):
    m, a, b = sample
    item = next(p for p in m["planted"] if p["category"] == "db")
    sus = an.n_plus_one(b)
    hit = sus.loc[sus.task_name == item["task"]]
    assert len(hit) and hit["caller"].str.contains(f"({item['function']})", regex=False).all()
    assert hit["affected_share"].iloc[0] > 0.5
    assert item["task"] not in set(an.n_plus_one(a)["task_name"])
    ta = an.db_time(a).set_index("task_name")
    tb = an.db_time(b).set_index("task_name")
    assert tb.loc[item["task"], "db_time_mean"] > 2 * ta.loc[item["task"], "db_time_mean"]
    assert tb.loc[item["task"], "sql_count_mean"] > 3 * ta.loc[item["task"], "sql_count_mean"]


def test_memory_suspects_point_at_the_leak(sample):
    m, a, b = sample
    item = next(p for p in m["planted"] if p["kind"] == "leak")
    wb = an.memory_hotspots(b)
    assert wb["leak_suspect"].all() and (wb["suspect_tasks"] == item["task"]).all()
    assert not an.memory_hotspots(a)["leak_suspect"].any()  # baseline grows a little, but no task carries it
    ls = an.leak_suspects(b)
    assert ls["task_name"].iloc[0] == item["task"] and bool(ls["suspect"].iloc[0])
    assert ls["suspect"].sum() == 1
    sites = an.allocation_sites(b.where(task_name=item["task"]))
    top_site = sites.iloc[0]
    assert top_site["file"].endswith(item["module"].split("/")[-1])
    fid = b.resolve(item["function"])
    f = b.functions.iloc[fid]
    assert str(f["file"]).endswith(item["module"].split("/")[-1]) and top_site["line"] > int(f["line"])


def test_rss_over_tasks_marks_the_leaking_task_in_every_candidate_process(sample):
    from celerylab.charts.hotspots import rss_over_tasks

    m, a, b = sample
    item = next(p for p in m["planted"] if p["kind"] == "leak")
    seq = an.rss_sequence(b)
    fig = rss_over_tasks(seq, min_growth=an.hotspots.RSS_GROWTH_MARK)
    lines = [t for t in fig.data if t.mode == "lines"]
    marks = [t for t in fig.data if t.mode == "markers"]
    assert sorted(t.name for t in lines) == sorted(seq["worker"].unique()) and len(lines) == 2
    assert marks[0].name == item["task"] and marks[0].marker.color == "#d62728"  # most marks: first, red
    leak = seq.loc[seq["task_name"] == item["task"]]
    assert len(marks[0].x) == int(leak["grew"].sum()) and leak["grew"].mean() > 0.8
    assert all(len(t.x) <= 2 for t in marks[1:])  # any other task: at most a warm-up run per process
    for w, g in seq.groupby("worker"):  # the marked runs are where that process's line climbs
        grew = g.loc[g["task_name"] == item["task"], "grew"].sum()
        assert grew >= 0.8 * (g["task_name"] == item["task"]).sum(), w
    assert fig.layout.title.text and "(MiB)" in fig.layout.yaxis.title.text and fig.layout.xaxis.title.text
    assert fig.layout.showlegend
    # baseline: the same task does not keep growing RSS
    base = an.rss_sequence(a)
    assert base.loc[base["task_name"] == item["task"], "grew"].mean() < 0.2


def test_the_producer_side_regression_is_found_on_producer_profiles(sample):
    m, a, b = sample
    item = m["planted_producer"][0]
    pa, pb = a.where(role="producer"), b.where(role="producer")
    assert len(pa) == m["runs"]["baseline"]["publishes"] and len(pb) == m["runs"]["candidate"]["publishes"]
    per_task = cl.diff(pa, pb, by="task_name").set_index("label")
    row = per_task.loc[f"{item['task']} (publish)"]
    assert row["status"] == "slower" and row["ratio"] > 1.2, row
    funcs = cl.diff(pa, pb)
    fid = pb.resolve(item["function"])
    label = pb.functions["label"].iloc[fid]
    hit = funcs.loc[funcs["label"] == label]
    assert len(hit) == 1 and hit["status"].astype(str).iloc[0] in ("slower", "new"), hit


def test_the_burst_shows_as_a_queue_wait_episode_in_each_run(sample):
    m, a, b = sample
    q = m["queue_wait"]
    for side in (a, b):
        eps = an.queue_wait_episodes(side, threshold=q["threshold_s"])
        assert len(eps) >= 1 and q["task"] in eps["tasks"].iloc[0], eps
        lat = an.latency(side).set_index(["task_name", "stage"])
        assert lat.loc[(q["task"], "queue_wait"), "max"] > q["threshold_s"]
        # publishing is recorded for the producer's task only, and a publish is never counted as a run
        published = m["producer"]["tasks"]
        assert lat.loc[(published, "publish"), "n"] == len(side.where(role="producer"))
        assert lat.loc[(published, "run"), "n"] == len(side.where(role="worker", task_name=published))
