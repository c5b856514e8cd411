"""Short, readable labels in the charts; the full label stays in the hover."""

from __future__ import annotations

import pandas as pd

from celerylab.charts.calltree import LABEL_WIDTH, calltree
from celerylab.core.rules import short_label


def test_short_label():
    assert short_label("/srv/app/reports.py:56(load_report_rows)") == "reports.load_report_rows:56"
    assert short_label("{built-in method time.sleep}") == "{built-in method time.sleep}"
    assert short_label("/a/b.py:1(<genexpr>)") == "b.<genexpr>:1"
    cut = short_label("/srv/app/reports.py:56(" + "x" * 80 + ")", 20)
    assert len(cut) == 20 and cut.endswith("…") and cut.startswith("reports.")


def test_calltree_boxes_show_short_names_and_hover_the_full_label():
    tree = pd.DataFrame({
        "id": ["1", "1/2"], "parent": ["", "1"], "func_id": [1, 2],
        "label": ["/venv/lib/python3.11/site-packages/celery/app/trace.py:877(__protected_call__)",
                  "/srv/app/reports.py:56(" + "load_report_rows_" * 5 + ")"],
        "value": [1.0, 0.5],
    })  # fmt: skip
    for kind in ("icicle", "sunburst"):
        tr = calltree(tree, kind=kind).data[0]
        assert tr.text[0] == "trace.__protected_call__:877"
        assert len(tr.text[1]) == LABEL_WIDTH and tr.text[1].endswith("…")
        assert tr.texttemplate == "%{text}"
        assert tr.customdata[0][1] == tree["label"][0]  # the hover has the full label


def test_every_chart_has_a_title_and_axis_units_and_the_export_carries_the_title():
    import json

    import celerylab as cl
    from celerylab.charts.diff import diff_changes
    from celerylab.charts.export import figure_html
    from celerylab.charts.findings import findings_chart
    from celerylab.charts.hotspots import allocation_sites, memory_growth, sql_statements
    from celerylab.charts.overview import task_durations, task_totals

    ps = cl.load(cl.sample_profiles())
    figs = {
        "durations": task_durations(ps.profiles, color="run"),
        "totals": task_totals(ps.task_summary()),
        "sql": sql_statements(cl.analysis.db_hotspots(ps).head(5)),
        "memory": memory_growth(ps.profiles),
        "allocations": allocation_sites(cl.analysis.allocation_sites(ps).head(5)),
        "diff": diff_changes(cl.diff(ps, split_by="run")),
        "findings": findings_chart(cl.findings(ps, evidence=False)),
    }
    for name, fig in figs.items():
        assert fig.layout.title.text, name
        axis = fig.layout.xaxis.title.text or ""
        yaxis = fig.layout.yaxis.title.text or ""
        assert "(" in axis + yaxis, (name, axis, yaxis)  # a unit in brackets on the value axis
        page = figure_html(fig)  # the exported page carries it (JSON may escape non-ASCII)
        assert fig.layout.title.text in page or json.dumps(fig.layout.title.text)[1:-1] in page, name
    assert figs["durations"].layout.showlegend and figs["durations"].layout.legend.title.text == "run"
    assert {t.name for t in figs["durations"].data} == {"baseline", "candidate"}


def test_runs_and_statuses_have_one_colour_in_every_chart():
    import celerylab as cl
    from celerylab.charts._style import RUN_COLORS, STATUS_COLORS, STATUS_NAMES
    from celerylab.charts.diff import diff_changes, diff_volcano
    from celerylab.charts.drilldown import per_profile
    from celerylab.charts.findings import findings_chart
    from celerylab.charts.overview import task_durations

    ps = cl.load(cl.sample_profiles())
    # the runs: baseline (started first) is A and blue, candidate B and orange, in every chart that splits by run
    durations = task_durations(ps.profiles, color="run")
    boxes = {t.name: (t.marker.color, t.line.color) for t in durations.data}
    # a task's profiled publishes are a box of their own, as in the task summary (not pooled with its runs)
    publishes = ps.profiles["role"].astype(str) == "producer"
    assert sum(list(t.x).count("demo.orders.process (publish)") for t in durations.data) == int(publishes.sum())
    assert boxes == {"baseline": (RUN_COLORS[0],) * 2, "candidate": (RUN_COLORS[1],) * 2}
    stats = ps.stats.merge(ps.profiles[["profile_id", "run", "started_at"]], on="profile_id")
    per = per_profile(stats.sample(400, random_state=1), by="run")  # shuffled: the start times order the runs
    assert {t.name: t.marker.color for t in per.data} == {k: v[0] for k, v in boxes.items()}
    assert per.layout.showlegend and per.layout.legend.title.text == "run"
    # the statuses: one trace per status with its colour and a legend saying what it means
    d = cl.diff(ps, split_by="run", values=("baseline", "candidate"))
    status_of = {v: k for k, v in STATUS_NAMES.items()}
    bars, volcano = diff_changes(d, n=400), diff_volcano(d)
    assert {"slower (B > A)", "new (only in B)", "gone (only in A)"} <= {t.name for t in bars.data}
    assert {"slower (B > A)", "no significant change"} <= {t.name for t in volcano.data}  # tested rows only
    for fig in (bars, volcano):
        assert all(t.marker.color == STATUS_COLORS[status_of[t.name]] for t in fig.data)
        assert fig.layout.showlegend is not False and fig.layout.title.text
    found = findings_chart(cl.findings(ps, evidence=False))
    assert {t.name: t.marker.color for t in found.data} == {"slower": STATUS_COLORS["slower"],
                                                            "faster": STATUS_COLORS["faster"]}  # fmt: skip
    # new and gone are their own colours: neither a run's, nor each other's, nor any other status's
    assert {STATUS_COLORS["new"], STATUS_COLORS["gone"]}.isdisjoint(RUN_COLORS)
    assert len(set(STATUS_COLORS.values())) == len(STATUS_COLORS)


def test_diff_bars_are_labelled_task_and_short_function_with_the_full_label_on_hover():
    from celerylab.charts.diff import diff_changes

    d = pd.DataFrame({
        "task_name": ["demo.reports.build", "demo.mail"],
        "label": ["/srv/app/reports.py:56(load_report_rows)", "/srv/app/mail.py:3(<lambda>)"],
        "status": ["slower", "gone"], "delta": [0.0016, -0.0005],
    })  # fmt: skip
    fig = diff_changes(d)
    slower, gone = fig.data
    assert slower.y == ("demo.reports.build · reports.load_report_rows:56",) and slower.x == (1.6,)
    assert gone.y == ("demo.mail · mail.&lt;lambda&gt;:3",) and gone.name == "gone (only in A)"
    assert slower.customdata[0][2] == "/srv/app/reports.py:56(load_report_rows)"
    assert list(fig.layout.yaxis.categoryarray) == [slower.y[0], gone.y[0]]  # the diff's order
    assert fig.layout.xaxis.title.text == "delta: B − A (ms per task invocation)"
