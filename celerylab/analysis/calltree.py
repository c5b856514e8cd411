"""Call-tree data for icicle / flame views, reconstructed from caller→callee edges.

**An approximation.**  cProfile records, per function, who called it and how much time those calls took
(``edges``), not whole stacks.  The tree is rebuilt top-down: a node of function ``f`` with value ``v`` gives each
callee ``c`` the value ``v × cumtime(f→c) / cumtime(f)``, i.e. ``f``'s time is split over its callees in the
proportions measured over *all* of ``f``'s calls, whoever the caller was.  That is exact at the roots and one level
down, and for every function that has a single caller; it is only an estimate where a function's cost depends on
its caller.  Every row says so in ``approximate``.

Recursion and cycles: an edge back to a function already on the path (self-recursion ``f→f`` or a cycle
``f→g→f``) is not expanded again — the time of the inner calls is already inside the outer call's cumtime
(cProfile counts a recursive function's cumtime once, at the outermost call) — and the node is flagged
``recursive``.  Children never sum past their parent (scaled down when recursion inflates edge times), so the
frame plots with plotly's ``branchvalues="total"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..core.data import FuncRef, ProfileData

APPROXIMATION_NOTE = "call tree reconstructed from caller→callee edges: an approximation, not recorded stacks"

CALL_TREE_COLUMNS = ["id", "parent", "func_id", "label", "name", "depth", "value", "self_value", "value_mean",
                     "share", "approximate", "recursive"]  # fmt: skip


def call_tree(
    ps: ProfileData,
    *,
    root: FuncRef | None = None,
    max_depth: int = 12,
    min_share: float = 0.005,
    max_nodes: int = 5000,
) -> pd.DataFrame:
    """Nodes of the call tree of the selection, parents before children.

    Columns: ``id`` (the path of func_ids from the root, ``"3/17/42"``), ``parent`` (``""`` for roots),
    ``func_id, label, name, depth`` (0 at roots), ``value`` (inclusive seconds summed over the selection),
    ``self_value`` (``value`` minus the children shown: own time, pruned callees and recursion),
    ``value_mean`` (``value`` per invocation of the selection), ``share`` (of the roots' total),
    ``approximate`` (False only where the value is measured: roots and their direct callees), ``recursive``
    (the function calls back into itself or an ancestor here; that branch was not expanded again).

    ``root``: a func_id / label / name fragment to start from (default: every function nobody else calls).
    Nodes below ``min_share`` of the total, deeper than ``max_depth`` or past ``max_nodes`` are left out (their
    time stays in their parent's ``self_value``).  See the module docstring: this is an approximation.
    """
    ft = ps.function_totals
    if not len(ft):
        return pd.DataFrame({c: [] for c in CALL_TREE_COLUMNS})
    cum = np.zeros(len(ps.functions), dtype=np.float64)
    cum[ft["func_id"].to_numpy()] = ft["cumtime"].to_numpy()
    et = ps.edge_totals
    caller = et["caller_id"].to_numpy()
    callee = et["callee_id"].to_numpy()
    ect = et["cumtime"].to_numpy()
    order = np.argsort(caller, kind="stable")
    caller, callee, ect = caller[order], callee[order], ect[order]
    starts = np.searchsorted(caller, np.arange(len(ps.functions) + 1))
    self_loop = set(callee[caller == callee].tolist())

    if root is not None:
        roots = [ps.resolve(root)]
    else:
        called = np.zeros(len(ps.functions), dtype=bool)
        called[callee[caller != callee]] = True
        present = ft["func_id"].to_numpy()
        roots = [int(f) for f in present if not called[f]]
        if not roots:  # everything is called by something (a cycle at the top): take the biggest function
            roots = [int(present[np.argmax(cum[present])])]
    total = float(sum(cum[r] for r in roots))
    threshold = min_share * total if total > 0 else 0.0
    labels = ps.functions["label"].to_numpy()
    names = ps.functions["name"].to_numpy()
    n_prof = max(len(ps.profiles), 1)

    rows: list[list[Any]] = []
    # depth-first, biggest child first; a node is (id, parent, func, value, depth, path)
    stack: list[tuple[str, str, int, float, int, frozenset[int]]] = []
    for r in sorted(roots, key=lambda f: cum[f]):
        stack.append((str(r), "", r, float(cum[r]), 0, frozenset([r])))
    while stack and len(rows) < max_nodes:
        node_id, parent, f, value, depth, path = stack.pop()
        if value <= 0 or value < threshold:
            continue
        lo, hi = starts[f], starts[f + 1]
        kids = callee[lo:hi]
        kid_ct = ect[lo:hi]
        back = [c for c in kids.tolist() if c in path]
        recursive = f in self_loop or bool(back)
        child_vals: list[tuple[int, float]] = []
        if depth < max_depth and cum[f] > 0:
            for c, t in zip(kids.tolist(), kid_ct.tolist()):
                if c in path or t <= 0:
                    continue
                child_vals.append((c, value * t / cum[f]))
            s = sum(v for _c, v in child_vals)
            if s > value:
                child_vals = [(c, v * value / s) for c, v in child_vals]
        shown = [(c, v) for c, v in child_vals if v > 0 and v >= threshold]
        rows.append([node_id, parent, f, labels[f], names[f], depth, value, value - sum(v for _c, v in shown),
                     value / n_prof, value / total if total else np.nan, depth >= 2, recursive])  # fmt: skip
        for c, v in sorted(shown, key=lambda cv: cv[1]):
            stack.append((f"{node_id}/{c}", node_id, c, v, depth + 1, path | {c}))
    out = pd.DataFrame(rows, columns=CALL_TREE_COLUMNS)
    if len(out):
        # children left out by max_nodes: give their time back to their parent's self_value
        shown_sum = out.loc[out["parent"] != ""].groupby("parent")["value"].sum()
        out["self_value"] = out["value"] - out["id"].map(shown_sum).fillna(0.0)
    out["self_value"] = out["self_value"].clip(lower=0.0)
    return out
