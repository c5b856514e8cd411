"""What the commands share: loading a selection, output checks, JSON output, common options, exit codes."""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from ..errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

    from ..profileset import ProfileSet

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REGRESSION = 3


def load_selection(
    sources: Sequence[str], *, jobs: int | None, cache: bool, task: str | None = None, run: str | None = None
) -> ProfileSet:
    """Load ``sources``; fail (exit 1) with the reasons when nothing loads; list unreadable files on stderr."""
    from ..profileset import load

    src: Any = sources[0] if len(sources) == 1 else list(sources)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the CLI reports load problems itself, below
        ps = load(src, jobs=jobs, cache=cache, progress=None)
    shown = ", ".join(sources)
    if len(ps.errors):
        head = ps.errors.head(5)
        lines = [f"  {p}: {r}" for p, r in zip(head["path"], head["reason"])]
        more = f"\n  … and {len(ps.errors) - 5} more" if len(ps.errors) > 5 else ""
        if len(ps):
            click.echo(
                f"celerylab: warning: {len(ps.errors)} file(s) could not be loaded:\n" + "\n".join(lines) + more,
                err=True,
            )
        else:
            raise UsageError(f"{shown}: no profile could be loaded:\n" + "\n".join(lines) + more)
    if not len(ps):
        raise UsageError(f"{shown}: no profile files found")
    conditions = {k: v for k, v in (("task_name", task), ("run", run)) if v is not None}
    if conditions:
        sub = ps.where(**conditions)
        if not len(sub):
            have = {k: sorted(str(x) for x in ps.profiles[k].dropna().unique())[:20] for k in conditions}
            raise UsageError(
                f"{shown}: no profile matches "
                + ", ".join(f"{k}={v!r}" for k, v in conditions.items())
                + "; available: "
                + "; ".join(f"{k}: {', '.join(v)}" for k, v in have.items())
            )
        ps = sub
    return ps


def check_output(path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{path}: output folder {folder} does not exist")
    return path


def jsonable(v: Any) -> Any:
    import numpy as np
    import pandas as pd

    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        f = float(v)
        return None if math.isnan(f) else (("inf" if f > 0 else "-inf") if math.isinf(f) else f)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, list | tuple | np.ndarray):
        return [jsonable(x) for x in v]
    return v


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    cols = list(df.columns)
    return [{c: jsonable(v) for c, v in zip(cols, row)} for row in df.itertuples(index=False, name=None)]


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False))


_COMMON = [
    click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Parser threads (default: CPUs)."),
    click.option("--no-cache", is_flag=True, help="Neither read nor write the load cache."),
]


def with_common(f: Any) -> Any:
    for opt in reversed(_COMMON):
        f = opt(f)
    return f


def with_selection(f: Any) -> Any:
    """``--task`` and ``--run``: which profiles of SRC a command looks at."""
    f = click.option("--run", default=None, help="Only profiles of this run label.")(f)
    return click.option("--task", default=None, help="Only profiles of this task name (glob allowed: 'orders.*').")(f)


def range_option(*decls: str, low: float, high: float | None = None, default: float, help: str) -> Any:
    """A numeric option with bounds and its default shown; whole numbers when ``default`` is an ``int``."""
    kind: click.ParamType
    if isinstance(default, int):
        kind = click.IntRange(min=int(low), max=None if high is None else int(high))
    else:
        kind = click.FloatRange(min=low, max=high)
    return click.option(*decls, type=kind, default=default, show_default=True, help=help)


def output_option(help: str) -> Any:
    return click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False), help=help)
