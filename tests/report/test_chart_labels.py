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
