"""The explorer's controllers, driven through their named handlers; assertions on figure data and widget state."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from plotly.callbacks import Points

import celerylab as cl
from celerylab.widgets import explore
from celerylab.widgets._filters import ALL

from .conftest import EVIL, N_PLUS_ONE_SQL, ONLY_EVIL


def fid_of(ps, key) -> int:
    file, line, name = key
    f = ps.functions
    return int(f.loc[(f["file"] == file) & (f["line"] == line) & (f["name"] == name), "func_id"].iloc[0])


def click(trace, index: int = 0) -> Points:
    return Points(point_inds=[index], xs=[trace.x[index]], ys=[trace.y[index]], trace_name=trace.name, trace_index=0)


def all_html(widget) -> str:
    """Every HTML/Label value and option label under ``widget`` (what the browser would render as text/markup)."""
    import ipywidgets as w

    out = []
    stack = [widget]
    while stack:
        x = stack.pop()
        if isinstance(x, w.HTML | w.Label):
            out.append(x.value)
        if isinstance(x, w.Button):
            out.append(x.description)
        if hasattr(x, "children"):
            stack.extend(x.children)
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------- overview
def test_overview_shows_the_task_summary_and_one_box_per_run(app, ps):
    # WHEN the Overview tab is opened (the explorer opens on Findings)
    app.show("Overview")
    # THEN the overview's frame is the set's task summary, and the duration figure splits by run
    pd.testing.assert_frame_equal(app.current, ps.task_summary())
    fig = app.overview.durations_fig
    assert sorted(t.name for t in fig.data) == ["baseline", "candidate"]
    assert sum(len(t.y) for t in fig.data) == len(ps)
    assert "12</b> profiles" in app.overview.summary.value


def test_task_filter_applies_to_every_tab(app, ps):
    # WHEN the task dropdown is changed as a user would
    app.filters.dropdowns["task"].value = "orders.process"
    # THEN the selection, the count and the visible tab follow
    assert len(app.selection) == 10
    assert set(app.profiles["task_name"].astype(str)) == {"orders.process"}
    assert "10 of 12 profiles" in app.filters.count.value
    assert app.current["task_name"].tolist() == ["orders.process"]
    # AND a tab drawn later uses the same filter (own times summed over the 10 profiles, not the 12)
    app.show("Functions")
    evil = fid_of(ps, EVIL)
    assert app.current.set_index("func_id").loc[evil, "n_profiles"] == 10
    totals = ps.where(task_name="orders.process").top(n=None)
    got = app.current.set_index("func_id")["tottime"]
    assert got.to_dict() == pytest.approx(totals.set_index("func_id")["tottime"].to_dict())
    # AND reset brings everything back
    app.filters.on_reset()
    assert len(app.selection) == 12 and app.filters.dropdowns["task"].value == ALL
    # AND the visible Functions tab redraws from the whole set (no table cached from the filtered one)
    assert app.current.set_index("func_id").loc[evil, "n_profiles"] == 12


def test_set_filters_accepts_where_conditions_and_time_window(app):
    sel = app.set_filters(run=["candidate"], started_at=slice("2026-01-01T00:02", "2026-01-01T00:06"))
    assert sorted(sel.profiles["started_at"].dt.minute.tolist()) == [3, 5]
    assert app.filters.time_from.value.startswith("2026-01-01T00:02")
    # a one-value list shows as that value: the dropdown says what is selected
    assert app.filters.dropdowns["run"].value == "candidate"
    assert set(app.profiles["run"].astype(str)) == {"candidate"}


def test_every_filter_dropdown_shows_the_condition_that_applies(app, ps):
    # WHEN filters a dropdown has no single option for are set from Python
    app.set_filters(task_name="orders.*", run=["baseline", "candidate"], hostname="no-such-host")
    dd = app.filters.dropdowns
    # THEN each dropdown names its condition (an extra option), and what they show is what filters
    assert (dd["task"].value, dd["run"].value, dd["worker"].value) == ("orders.* (pattern)", "baseline | candidate",
                                                                        "no-such-host")  # fmt: skip
    assert dd["state"].value == ALL
    assert app.filters.shown() == app.filters.conditions
    assert len(app.selection) == 0
    # WHEN the user picks a real value where the extra option was
    dd["worker"].value = ALL
    # THEN the extra option goes, and the shown state is still the applied one
    assert "no-such-host" not in dd["worker"].options
    assert app.filters.shown() == app.filters.conditions == {"task_name": "orders.*",
                                                              "run": ["baseline", "candidate"]}  # fmt: skip
    assert len(app.selection) == 10
    # AND reset shows (all) everywhere, with no extra option left
    app.filters.on_reset()
    assert all(d.value == ALL for d in dd.values()) and app.filters.conditions == {}
    assert "orders.* (pattern)" not in dd["task"].options and len(app.selection) == 12


def test_the_diff_dropdowns_show_what_the_diff_computes_with(app, ps):
    tab = app.show("Diff")
    assert (tab.group_by.value, tab.a.value, tab.b.value) == tab.used == ("run", "baseline", "candidate")
    # WHEN a filter leaves one run only: nothing to compare, and B shows nothing (not a value it does not use)
    app.set_filters(run="candidate")
    assert tab.a.options == ("candidate",) and tab.b.value is None
    assert tab.used == ("run", "candidate", None) and "nothing to compare" in tab.summary.value
    assert not len(tab.current)
    # WHEN the filter goes, A and B show the two runs again and the diff is computed with them
    app.filters.on_reset()
    assert (tab.a.value, tab.b.value) == ("candidate", "baseline") == tab.used[1:]
    pd.testing.assert_frame_equal(tab.current, cl.diff(ps, split_by="run", values=("candidate", "baseline")))
    # WHEN the column changes (a user picks it), its values are offered and the first two compared
    tab.group_by.value = "task_name"
    assert tab.used == ("task_name", tab.a.value, tab.b.value) and set(tab.a.options) == set(
        ps.profiles["task_name"].astype(str)
    )
    assert tab.a.value != tab.b.value and len(tab.current)
    # comparing two tasks pools them: no task column (the split column never groups)
    assert "task_name" not in tab.current.columns
    # WHEN a filter hides the task B was showing, B falls back to a value in the selection
    app.set_filters(task_name=tab.a.value)
    assert tab.b.value is None and tab.used[2] is None
    app.filters.on_reset()
    # an error (A = B) clears when the user fixes B
    tab.b.value = tab.a.value
    assert app.errors.banner.layout.display == "" and "pick two different values" in app.errors.message
    tab.b.value = next(v for v in tab.b.options if v != tab.a.value)
    assert app.errors.banner.layout.display == "none"
    # AND reset restores the defaults: by run, baseline against candidate, every row
    tab.significant_only.value = True
    tab.group_by.value = "task_name"
    tab.b.value = tab.a.value  # an error again
    assert app.errors.banner.layout.display == ""
    tab.reset_button.click()
    assert (tab.group_by.value, tab.a.value, tab.b.value) == tab.used == ("run", "baseline", "candidate")
    assert tab.significant_only.value is False and app.errors.banner.layout.display == "none"
    pd.testing.assert_frame_equal(tab.current, cl.diff(ps, split_by="run", values=("baseline", "candidate")))


def test_a_run_has_one_colour_in_every_tab_and_new_gone_have_their_own(app, ps):
    from celerylab.charts._style import RUN_COLORS, STATUS_COLORS

    app.show("Overview")
    over = {t.name: t.marker.color for t in app.overview.durations_fig.data}
    assert over == {"baseline": RUN_COLORS[0], "candidate": RUN_COLORS[1]}
    tab = app.show("Diff")
    dist = {t.name: t.marker.color for t in tab.dist_fig.data}
    assert dist == {"A: baseline": over["baseline"], "B: candidate": over["candidate"]}
    assert tab.dist_fig.shown.layout.legend.title.text == "run"
    # swapped sides: the runs keep their colours
    tab.compare("candidate", "baseline")
    assert {t.name: t.marker.color for t in tab.dist_fig.data} == {"A: candidate": over["candidate"],
                                                                   "B: baseline": over["baseline"]}  # fmt: skip
    # a filter to one run does not recolour it
    app.set_filters(run="candidate")
    app.show("Overview")
    assert [t.marker.color for t in app.overview.durations_fig.data] == [over["candidate"]]
    # new and gone are neither run's colour (nor each other's, nor slower/faster)
    assert {STATUS_COLORS["new"], STATUS_COLORS["gone"]}.isdisjoint(RUN_COLORS)
    assert len(set(STATUS_COLORS.values())) == len(STATUS_COLORS)


def test_bad_time_window_shows_an_error_and_keeps_the_filters(app):
    # GIVEN a working filter
    app.filters.dropdowns["run"].value = "baseline"
    assert len(app.selection) == 6
    # WHEN a user types a text that is no date (a real failing input through the handler)
    app.filters.time_from.value = "yesterday-ish"
    # THEN the error shows in the notebook (banner + traceback output), nothing raised, the selection stays
    assert "yesterday-ish" in app.errors.message
    assert "is not a date/time" in app.errors.banner.value
    assert app.errors.banner.layout.display == ""
    tb = app.errors.output.outputs[-1]
    assert tb["name"] == "stderr" and "ValueError" in tb["text"]
    assert len(app.selection) == 6
    # AND dismiss hides it
    app.errors.clear_button.click()
    assert app.errors.banner.layout.display == "none" and app.errors.output.outputs == ()


def test_an_error_clears_when_the_filter_is_fixed_or_reset(app):
    app.filters.time_from.value = "yesterday-ish"
    assert app.errors.banner.layout.display == ""
    # WHEN the text is corrected
    app.filters.time_from.value = "2026-01-01 00:03:00"
    # THEN the banner goes, and the filter applies
    assert app.errors.banner.layout.display == "none" and app.errors.output.outputs == ()
    assert len(app.selection) == 9
    # AND a reset after a new error clears it too
    app.filters.time_to.value = "nonsense"
    assert app.errors.banner.layout.display == ""
    app.filters.on_reset()
    assert app.errors.banner.layout.display == "none" and len(app.selection) == 12


# ------------------------------------------------------------------------------------------------ functions
def test_functions_table_sorts_and_filters(app, ps):
    tab = app.show("Functions")
    assert app.current["tottime"].is_monotonic_decreasing
    tab.sort_by.value = "ncalls"
    tab.descending.value = False
    assert app.current["ncalls"].is_monotonic_increasing
    assert tab.descending.description == "ascending"
    tab.kind.value = "third-party"
    assert app.current["label"].str.contains("sqlalchemy").all() and len(app.current) == 1
    tab.kind.value = "(all)"
    tab.search.value = "load_"
    assert app.current["name"].tolist() == ["load_orders"]
    # the figure shows exactly the table's rows
    assert list(tab.fig.data[0].x) == pytest.approx(app.current["ncalls"].tolist())


def test_function_bar_click_opens_the_drilldown(app, ps):
    tab = app.show("Functions")
    row = 1
    want = int(app.current["func_id"].iloc[row])
    tab.on_bar_click(tab.fig.data[0], click(tab.fig.data[0], row))
    assert app.active is app.drilldown
    assert app.drilldown.focus == want
    assert app.selected["func_id"].tolist() == [want]


def test_function_picker_and_drill_button(app):
    tab = app.show("Functions")
    tab.on_drill()  # nothing picked yet: a visible error, no exception
    assert "pick a function" in app.errors.message
    tab.picker.value = tab.picker.options[2][1]
    assert tab.selected["func_id"].tolist() == [tab.picker.value]
    tab.drill_button.click()
    assert app.drilldown.focus == tab.picker.value


# ------------------------------------------------------------------------------------------------ drilldown
def test_drilldown_shows_exact_callers_and_callees_and_moves_on_click(app, ps):
    exec_id = fid_of(ps, ("/venv/lib/python3.11/site-packages/sqlalchemy/engine/base.py", 100, "execute"))
    app.drill(exec_id)
    dd = app.drilldown
    callers, callees = ps.callers(exec_id), ps.callees(exec_id)
    fig = dd.fig
    assert [c[0] for c in fig.data[0].customdata] == callers["func_id"].tolist()
    assert list(fig.data[0].x) == pytest.approx(callers["cumtime"].tolist())
    assert [c[0] for c in fig.data[1].customdata] == callees["func_id"].tolist()
    assert dd.current.groupby("side").size().to_dict() == {"callee": 1, "caller": 2}
    assert "60 calls" in dd.info.value
    # WHEN the largest caller bar is clicked
    target = int(fig.data[0].customdata[0][0])
    dd.on_figure_click(fig.data[0], click(fig.data[0], 0))
    # THEN the focus moves, the figure follows, and the breadcrumb remembers where we came from
    assert dd.focus == target
    assert [c[0] for c in dd.fig.data[1].customdata] == ps.callees(target)["func_id"].tolist()
    assert dd.history == [exec_id]
    assert dd.breadcrumb_names == ["execute", ps.functions["name"].iloc[target]]
    # AND back returns
    dd.back_button.click()
    assert dd.focus == exec_id and dd.history == []
    assert dd.back_button.disabled


def test_drilldown_lists_and_breadcrumb_navigation(app, ps):
    body = fid_of(ps, ("/srv/app/orders.py", 1, "task_body"))
    app.drill(body)
    dd = app.drilldown
    assert dd.callers_list.options == ()
    # pick the first callee in the list, then its first callee
    first = dd.callees_list.options[0][1]
    dd.callees_list.value = first
    assert dd.focus == first
    dd.callees_list.value = dd.callees_list.options[0][1]
    assert dd.history == [body, first]
    # the first breadcrumb button goes back two steps and drops the rest
    dd._crumb_buttons[0].click()
    assert dd.focus == body and dd.history == []


def test_drilldown_unknown_function_is_reported_not_raised(app):
    dd = app.drilldown
    app.show("Drilldown")
    before = dd.focus
    dd.picker.value = "no_such_function_anywhere"
    assert "FunctionNotFound" in app.errors.message
    assert "no_such_function_anywhere" in app.errors.banner.value
    assert dd.focus == before


def test_drilldown_per_profile_boxes_by_run(app, ps):
    evil = fid_of(ps, EVIL)
    app.drill(evil)
    runs = {t.name: sorted(t.y) for t in app.drilldown.runs_fig.data}
    want = app.drilldown.per_profile_frame(evil)
    assert set(runs) == {"baseline", "candidate"}
    assert runs["candidate"] == pytest.approx(sorted(want.loc[want["run"] == "candidate", "cumtime"]))
    assert min(runs["candidate"]) > max(runs["baseline"])


def test_drilldown_focus_survives_a_filter_that_hides_it(app, ps):
    evil = fid_of(ps, ONLY_EVIL)
    label = ps.functions["label"].iloc[evil]
    app.drill(evil)
    app.filters.dropdowns["task"].value = "orders.process"
    # THEN the drilldown says the focus is hidden by the filters, keeps it, and the box still names it
    dd = app.drilldown
    assert "celerylab-focus-hidden" in dd.info.value and "hidden by the filters" in dd.info.value
    assert "is not called in the filtered profiles (10)" in dd.info.value
    assert dd.current.empty and dd.focus == evil and dd.picker.value == label
    assert dd.fig.shown.layout.annotations[0].text.startswith("hidden by the filters")
    # AND when the filter is relaxed the focus is drawn again
    app.filters.dropdowns["task"].value = ALL
    assert dd.focus == evil and dd.current["side"].tolist() == ["caller"]
    assert "celerylab-focus'" in dd.info.value and "hidden" not in dd.info.value and dd.picker.value == label


def test_drilldown_function_box_follows_the_focus(app, ps):
    labels = ps.functions["label"]
    exec_id = fid_of(ps, ("/venv/lib/python3.11/site-packages/sqlalchemy/engine/base.py", 100, "execute"))
    dd = app.drilldown
    # state.drill (what the Functions and Findings tabs use)
    app.state.drill(exec_id)
    assert dd.focus == exec_id and dd.picker.value == labels.iloc[exec_id]
    # a click on a caller bar
    target = int(dd.fig.data[0].customdata[0][0])
    dd.on_figure_click(dd.fig.data[0], click(dd.fig.data[0], 0))
    assert dd.picker.value == labels.iloc[target]
    # a pick in the callees list, then back
    first = dd.callees_list.options[0][1]
    dd.callees_list.value = first
    assert dd.picker.value == labels.iloc[first] and dd.history == [exec_id, target]
    dd.back_button.click()
    assert dd.focus == target and dd.picker.value == labels.iloc[target]
    # a filter change redraws the same focus with the same text, and the sync is not taken for a new pick
    app.filters.dropdowns["run"].value = "baseline"
    assert dd.focus == target and dd.picker.value == labels.iloc[target] and dd.history == [exec_id]
    assert not app.errors.errors


def test_drilldown_error_clears_when_the_function_box_is_fixed(app, ps):
    dd = app.drilldown
    app.show("Drilldown")
    dd.picker.value = "no_such_function_anywhere"
    assert app.errors.banner.layout.display == "" and "no_such_function_anywhere" in app.errors.banner.value
    # WHEN the text is corrected to a function that exists
    dd.picker.value = "load_orders"
    # THEN the banner goes and the drilldown shows it
    assert app.errors.banner.layout.display == "none" and app.errors.output.outputs == ()
    assert dd.focus == fid_of(ps, ("/srv/app/orders.py", 10, "load_orders"))
    assert dd.picker.value == ps.functions["label"].iloc[dd.focus]
    # AND an error of another control is not cleared by an unrelated success
    app.filters.time_from.value = "yesterday-ish"
    assert app.errors.banner.layout.display == ""
    dd.callees_list.value = dd.callees_list.options[0][1]
    assert app.errors.banner.layout.display == "" and "yesterday-ish" in app.errors.banner.value


# ----------------------------------------------------------------------------------------------- escaping
def test_hostile_names_are_escaped_in_every_html_widget(app, ps):
    app.drill(fid_of(ps, EVIL))
    for name in ("Overview", "Functions", "Drilldown", "Diff", "Hotspots"):
        app.show(name)
    text = all_html(app.widget)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "<script>" not in text.replace("<script>alert(1)</script>", "")  # buttons hold plain text only
    for html_value in re.findall(r"<[^>]*onerror[^>]*>", text):
        pytest.fail(f"unescaped markup reached an HTML widget: {html_value}")
    # plotly titles and ticks get entities too (plotly.js reads a subset of HTML)
    assert "&lt;script&gt;" in app.drilldown.fig.shown.layout.title.text


# ---------------------------------------------------------------------------------------------------- diff
def test_diff_ranks_the_planted_regression_first(app, ps):
    tab = app.show("Diff")
    assert (tab.group_by.value, tab.a.value, tab.b.value) == tab.used == ("run", "baseline", "candidate")
    d = app.current
    # the API's default: each function within each task, the task column first
    pd.testing.assert_frame_equal(d, cl.diff(ps, split_by="run", values=("baseline", "candidate")))
    assert list(d.columns[:3]) == ["task_name", "label", "status"]
    assert d["label"].iloc[0] == ps.functions["label"].iloc[fid_of(ps, EVIL)]
    assert d["task_name"].iloc[0] == "orders.process" and (d["n_a"].iloc[0], d["n_b"].iloc[0]) == (5, 5)
    # 5 against 5 invocations: ranked first, but not significant after the correction over 11 keys
    assert d["status"].iloc[0] == "same" and d["p_value"].iloc[0] < 0.01 < d["p_adjusted"].iloc[0]
    # bars: "task · function", short, one trace per status, the legend says which
    bars = tab.fig.data[0]
    assert bars.x[0] == pytest.approx(d["delta"].iloc[0] * 1000)  # ms
    assert bars.y[0] == "orders.process · orders.&lt;script&gt;alert(1)&lt;/script&gt;:20"
    assert bars.name == "no significant change" and tab.fig.shown.layout.showlegend
    # the table: the task first, then the short name
    assert re.search(r"<th[^>]*>task_name</th><th[^>]*>function</th>", tab.table.value)
    # distributions side by side: one box trace per group, coloured as the runs are in the Overview
    assert [t.name for t in tab.dist_fig.data] == ["A: baseline", "B: candidate"]
    assert "6 profiles" in tab.summary.value
    # changed only: the bars and the table keep the non-"same" rows
    tab.significant_only.value = True
    assert sum(len(t.x) for t in tab.fig.data) == int((d["status"] != "same").sum())
    assert tab.selected["status"].ne("same").all()


def test_diff_pool_tasks_compares_every_task_together_and_reset_restores_per_task(app, ps):
    tab = app.show("Diff")
    # WHEN 'pool tasks' is ticked: the frame is cl.diff with group_by=None (no task column), and the tab says so
    tab.pooled.value = True
    pooled = cl.diff(ps, split_by="run", values=("baseline", "candidate"), group_by=None)
    pd.testing.assert_frame_equal(app.current, pooled)
    assert "task_name" not in app.current.columns and "pooled" in tab.summary.value
    assert "<th" in tab.table.value and ">task_name</th>" not in tab.table.value
    # pooled over 6 against 6 invocations the hostile function's change gets another denominator than per task
    per_task = cl.diff(ps, split_by="run", values=("baseline", "candidate"))
    evil = ps.functions["label"].iloc[fid_of(ps, EVIL)]
    assert pooled.set_index("label").loc[evil, "n_a"] == 6 and per_task["n_a"].iloc[0] == 5
    # WHEN reset: per task again
    tab.on_reset()
    assert tab.pooled.value is False
    pd.testing.assert_frame_equal(app.current, per_task)
    assert "within each task" in tab.summary.value


def test_diff_bar_click_drills_into_the_function(app, ps):
    tab = app.show("Diff")
    tab.on_bar_click(tab.fig.data[0], click(tab.fig.data[0], 0))
    assert app.active is app.drilldown and app.drilldown.focus == fid_of(ps, EVIL)


def test_diff_same_group_twice_is_an_error_and_other_columns_work(app):
    tab = app.show("Diff")
    tab.b.value = "baseline"
    assert "pick two different values" in app.errors.message
    d = tab.compare("orders.process", "evil.<img src=x onerror=alert(1)>", by="task_name")
    assert len(d) and tab.group_by.value == "task_name"
    assert "&lt;img" in tab.summary.value


def test_diff_respects_the_filters(app):
    app.set_filters(task_name="orders.process")
    tab = app.show("Diff")
    a, b = tab.sides()
    assert len(a) == 5 and len(b) == 5


# ------------------------------------------------------------------------------------------------ hotspots
def test_hotspots_flag_n_plus_one_and_the_leaking_worker(app):
    tab = app.show("Hotspots")
    sql = tab.sql.set_index("sql")
    assert sql.loc[N_PLUS_ONE_SQL, "count"] == 300
    assert bool(sql.loc[N_PLUS_ONE_SQL, "n_plus_one"]) is True
    assert "background:#fff3cd" in tab.sql_table.value
    mem = tab.memory.set_index("pid")
    assert bool(mem.loc[200, "leak_suspect"]) and not bool(mem.loc[201, "leak_suspect"])
    assert mem.loc[200, "growth"] == 30 * 2**20
    assert mem.loc[200, "suspect_tasks"] == "orders.process"  # the task that carries the growth, not its neighbour
    assert "30" in tab.memory_table.value  # growth shown in MiB
    assert sorted(t.name for t in tab.memory_fig.data) == ["worker1@host:200", "worker1@host:201"]
    assert len(tab.alloc_fig.data[0].x) == 1
    assert set(tab.selected["kind"]) == {"n_plus_one", "leak_suspect"}


def test_hotspots_memory_comes_from_the_filtered_tasks_only_and_draws_rss_per_process(app):
    from .conftest import EVIL_TASK

    tab = app.show("Hotspots")
    lines = [t for t in tab.rss_fig.data if t.mode == "lines"]
    marks = [t for t in tab.rss_fig.data if t.mode == "markers"]
    assert sorted(t.name for t in lines) == ["worker1@host:200", "worker1@host:201"]
    assert [t.name for t in marks] == ["orders.process"] and list(marks[0].x) == [1, 2, 4, 5]
    assert list(lines[0].y) == [107.5, 115.0, 115.0, 122.5, 130.0, 130.0]  # RSS after each task (MiB)
    assert tab.rss_fig.shown.layout.title.text and "(MiB)" in tab.rss_fig.shown.layout.yaxis.title.text
    # the hostile task ran between the leaking ones in pid 200: its readings climb, but none of it is its own
    app.set_filters(task_name=EVIL_TASK)
    tab = app.show("Hotspots")
    mem = tab.memory.set_index("pid")
    assert list(mem.index) == [200] and mem.loc[200, "tasks"] == 2
    assert mem.loc[200, "growth"] == 0 and mem.loc[200, "growth_mib"] == 0 and not bool(mem.loc[200, "leak_suspect"])
    assert tab.rss["seq"].tolist() == [1, 2] and not tab.rss["grew"].any()
    assert [t.mode for t in tab.rss_fig.data] == ["lines"]  # nothing marked
    app.set_filters(task_name="orders.process")
    mem = app.show("Hotspots").memory.set_index("pid")
    assert mem.loc[200, "growth"] == 30 * 2**20 and mem.loc[201, "growth"] == 0
    assert not app.errors.errors


def test_hotspots_without_sidecar_data_say_so(tmp_path):
    from celerylab.testing import write_profile

    from .conftest import stats_for

    write_profile(str(tmp_path), stats_for(0.01), task_name="t.a", task_id="1")
    app = explore(cl.load(tmp_path, cache=False))
    tab = app.show("Hotspots")
    assert "no SQL captured" in tab.sql_table.value
    assert "no memory data" in tab.memory_table.value
    assert not app.errors.errors


# --------------------------------------------------------------------------------------- call graph / tree
def test_callgraph_renders_svg_of_the_selection_and_reacts_to_thresholds(app):
    tab = app.show("Call graph")
    assert tab.svg.lstrip().startswith("<?xml") or "<svg" in tab.svg
    assert "load_orders" in tab.graph.svg and "&lt;script&gt;" in tab.graph.svg
    assert "<script>" not in tab.graph.svg
    n_before = tab.svg.count('class="node"')
    tab.node_thres.value = 40.0
    assert tab.svg.count('class="node"') < n_before
    assert "node ≥ 40%" in tab.status.value


def test_callgraph_without_dot_says_how_to_install_it(app, monkeypatch):
    monkeypatch.setenv("CELERYLAB_DOT", "/nonexistent/dot")
    tab = app.show("Call graph")
    assert tab.svg == "" and tab.graph.svg == ""
    assert "apt-get install graphviz" in tab.status.value


def test_calltree_is_labelled_as_an_approximation_and_consistent(app, ps):
    app.drill(fid_of(ps, ("/srv/app/orders.py", 1, "task_body")))
    tab = app.show("Call tree")
    # by default the whole tree: its first root is the function with the most cumulative time
    assert tab.rooted.value is False
    assert tab.current["value"].iloc[0] == pytest.approx(ps.function_totals.set_index("func_id")["cumtime"].max())
    tab.rooted.value = True
    tree = app.current
    assert "reconstructed from caller edges" in tab.fig.shown.layout.title.text
    assert tab.fig.data[0].type == "icicle"
    # children never exceed their parent (branchvalues="total" would draw nothing otherwise)
    kids = tree.groupby("parent")["value"].sum()
    vals = tree.set_index("id")["value"]
    for parent, s in kids.items():
        if parent:
            assert s <= vals[parent] + 1e-12
    assert tree.loc[tree["parent"] == "", "func_id"].tolist() == [app.drilldown.focus]
    tab.kind.value = "sunburst"
    assert tab.fig.data[0].type == "sunburst"
    tab.rooted.value = False
    assert tab.current["value"].iloc[0] == pytest.approx(ps.function_totals.set_index("func_id")["cumtime"].max())


# ------------------------------------------------------------------------------------------ python access
def test_state_reads_back_as_dataframes(app, ps):
    assert isinstance(app.current, pd.DataFrame) and isinstance(app.selected, pd.DataFrame)
    app.drill("load_orders")
    sel = app.selected
    assert sel["name"].tolist() == ["load_orders"]
    ft = ps.function_totals.set_index("func_id")
    assert sel["cumtime"].iloc[0] == pytest.approx(ft.loc[sel["func_id"].iloc[0], "cumtime"])
    assert set(app.current["side"]) == {"caller", "callee"}
    assert "Explorer" in repr(app) and len(repr(app)) < 300


def test_profileset_explore_shortcut_and_initial_filters(ps):
    app = ps.explore(run="candidate")
    assert len(app.selection) == 6
    assert app.filters.dropdowns["run"].value == "candidate"
    bundle = app._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_import_celerylab_does_not_import_widgets():
    import subprocess
    import sys

    code = "import sys, celerylab as cl; cl.ProfileSet; assert 'ipywidgets' not in sys.modules; " \
           "assert 'plotly' not in sys.modules; print('ok')"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "ok", out.stderr


def test_sample_profiles_open_without_errors():
    ps = cl.load(cl.sample_profiles(), cache=False)
    app = explore(ps)
    for t in app.tab_list:
        app.show(t.title)
    assert not app.errors.errors, app.errors.message
    assert np.isfinite(app.drilldown.last_update_ms)


# ------------------------------------------------------------------------------------------------- findings
def test_the_explorer_opens_on_the_findings(app, ps):
    # THEN the first tab is Findings, and its frame is cl.findings of the selection split by run
    assert app.active is app.findings and app.tabs.selected_index == 0
    expected = cl.findings(ps, split_by="run")
    pd.testing.assert_frame_equal(app.current.drop(columns=["evidence"]), expected.drop(columns=["evidence"]))
    first = app.current.iloc[0]
    assert (first["task_name"], first["direction"]) == ("orders.process", "slower")
    assert first["cause_label"] == f"{EVIL[0]}:{EVIL[1]}({EVIL[2]})"
    text = all_html(app.findings.widget)
    assert "A</b> = run baseline" in text and "orders.process slower" in text
    assert "&lt;script&gt;" in text and "<script>" not in text.replace("<script>alert", "")  # escaped, never raw
    assert "N+1" not in first["headline"] or first["n_plus_one"]
    # the chart: one bar per time finding, coloured by direction, with a title, axis unit and legend
    fig = app.findings.fig.shown
    assert [t.name for t in fig.data] == ["slower"] and fig.layout.showlegend
    assert "(ms)" in fig.layout.xaxis.title.text and fig.layout.title.text


def test_a_finding_is_one_click_from_its_drilldown(app, ps):
    # WHEN the finding's button is clicked
    app.findings.buttons[0].click()
    # THEN the drilldown shows its cause
    assert app.active is app.drilldown
    assert app.drilldown.focus == fid_of(ps, EVIL)
    # AND a click on the finding's bar does the same
    app.show("Findings")
    app.drilldown.focus = None
    bars = app.findings.fig.data[0]
    app.findings.on_bar_click(bars, click(bars, 0))
    assert app.active is app.drilldown and app.drilldown.focus == fid_of(ps, EVIL)
    assert not app.errors.errors


def test_findings_follow_the_filters(app):
    # WHEN the filters leave one run
    app.filters.dropdowns["run"].value = "baseline"
    # THEN the findings say why there is nothing to compare, and the frame is empty
    assert app.findings.current.empty
    assert "two runs" in app.findings.summary.value
    # AND when they are reset, the findings come back
    app.filters.on_reset()
    assert len(app.findings.current) and not app.errors.errors


def test_hotspots_sql_table_is_paged_one_line_per_statement_with_the_full_text_on_demand(app):
    tab = app.show("Hotspots")
    assert len(tab.sql) == 2
    # GIVEN a page of one statement
    tab.page = 1
    tab.refresh()
    # THEN one row shows, with a "show more" button that says how many are left
    assert tab.sql_table.value.count("<tr") == 2  # header + 1 row
    assert tab.sql_more.layout.display == "" and "1 of 2 statements shown" in tab.sql_more.description
    # WHEN it is clicked, THEN the other row shows and the button goes
    tab.sql_more.click()
    assert tab.sql_table.value.count("<tr") == 3 and tab.sql_more.layout.display == "none"
    assert "SELECT\u00a0*\u00a0FROM\u00a0items" in tab.sql_table.value  # one line: no-break spaces
    # AND the full statement is one pick away
    tab.sql_pick.value = 0
    assert N_PLUS_ONE_SQL.replace("*", "*") in tab.sql_full.value and "orders.py:10(load_orders)" in tab.sql_full.value
    assert not app.errors.errors


def test_hotspots_long_sql_stays_on_one_line():
    from celerylab.widgets._hotspots import SQL_WIDTH, _one_line

    long = "SELECT a,\n  b FROM t WHERE " + " AND ".join(f"c{i} = ?" for i in range(40))
    cut = _one_line(long, SQL_WIDTH)
    assert "\n" not in cut and len(cut) == SQL_WIDTH and cut.endswith("…") and cut.startswith("SELECT a, b FROM t")


def test_call_graph_view_fits_on_open_and_highlights_the_hot_path_of_the_selection(app, ps):
    from celerylab.callgraph import HOT_PATH_COLOR, VIEWER_JS, hot_path

    tab = app.show("Call graph")
    # the page's viewer fits the graph on open and zooms/pans the viewBox (driven in the browser test)
    assert "celerylabGraphView" in tab.graph._esm and VIEWER_JS in tab.graph._esm
    assert tab.graph.svg.startswith("<svg") and "viewBox" in tab.graph.svg[: tab.graph.svg.find(">")]
    for zoom in ('data-zoom=\\"in\\"', 'data-zoom=\\"out\\"', 'data-zoom=\\"fit\\"', 'data-zoom=\\"hot\\"'):
        assert zoom in tab.graph._esm
    # the hot path of the whole selection: task_body -> <script> (the slow candidate calls) -> execute -> sleep
    chain = hot_path(ps)["function"].str.split(":").str[-1].tolist()
    assert chain == ["task_body", "<script>alert(1)</script>", "execute", "<built-in method time.sleep>"]
    assert "4 on the hot path" in tab.status.value and HOT_PATH_COLOR in tab.graph.svg
    # on a filtered subset the tab redraws from the selection: the baseline's path, times of its 6 profiles
    app.set_filters(run=["baseline"])
    tab = app.show("Call graph")
    base = hot_path(app.selection)
    assert base["function"].str.split(":").str[-1].tolist() == chain
    assert base["time_s"].iloc[:2].tolist() == pytest.approx([6 * (0.016 + 0.002), 6 * (0.002 + 0.011)])
    assert "4 on the hot path" in tab.status.value and "6 profiles" in tab.status.value
    assert not app.errors.errors


def test_the_widget_the_cli_and_the_api_agree_on_the_samples(capsys):
    """The shipped runs: the Diff tab, ``celerylab diff --by run`` and ``cl.diff`` compare each function within
    each task by default, and give the same rows — demo.reports.build's load_report_rows significantly slower."""
    import json

    from celerylab.cli import main

    ps = cl.load(cl.sample_profiles())
    api = cl.diff(ps, split_by="run", values=("baseline", "candidate"))
    app = explore(ps)
    tab = app.show("Diff")
    assert tab.used == ("run", "baseline", "candidate")
    pd.testing.assert_frame_equal(tab.current, api)
    main(["diff", str(cl.sample_profiles()), "--by", "run", "--json", "-n", "100000"])
    out = json.loads(capsys.readouterr().out)
    assert out["group_by"] == ["task_name"]
    changes = pd.DataFrame(out["changes"])
    sig = api.loc[api["status"].astype(str) != "same"].reset_index(drop=True)
    assert list(changes.columns[:3]) == ["task_name", "label", "status"]
    assert (
        changes[["task_name", "label", "status"]].astype(str).equals(sig[["task_name", "label", "status"]].astype(str))
    )
    assert np.allclose(changes["mean_b"].to_numpy(float), sig["mean_b"].to_numpy(float), rtol=1e-12)
    assert np.allclose(changes["p_adjusted"].to_numpy(float), sig["p_adjusted"].to_numpy(float), rtol=1e-9,
                       equal_nan=True)  # fmt: skip

    def row(d):
        m = (d["task_name"] == "demo.reports.build") & d["label"].str.endswith("(load_report_rows)")
        assert m.sum() == 1
        return d.loc[m].iloc[0]

    for r in (row(api), row(tab.current), row(changes)):
        assert r["status"] == "slower" and r["p_adjusted"] < 0.05 and r["ratio"] > 5
        assert r["n_a"] == r["n_b"] == len(ps.where(run="baseline", task_name="demo.reports.build"))
    # the widget's bars and table lead with the task
    assert any(y.startswith("demo.reports.build · ") for t in tab.fig.data for y in t.y)
