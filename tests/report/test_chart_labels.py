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
