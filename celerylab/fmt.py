"""Numbers become text here, and only here: the render edge shared by reports, widgets and the CLI.

* :func:`value` — one value in a named format (``int``, ``seconds``, ``ms``, ``number``, ``percent``, ``ratio``,
  ``pvalue``, ``bytes``, ``datetime``, ``text``, or ``auto`` to pick by type);
* :func:`esc` — HTML-escape any value (``None`` is empty);
* :func:`html_table` — a DataFrame as an escaped HTML table (the report's, the widgets' and the notebook repr's);
* :func:`text_table` — a DataFrame as an aligned plain-text table (the CLI's);
* :func:`left_cut` — clip a long label from the left, keeping its end (``file:line(name)``).

Everything before this edge keeps numbers as numbers.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: What a missing value shows as in reports and the CLI.
MISSING = "—"
FORMATS = ("int", "seconds", "ms", "number", "percent", "ratio", "pvalue", "bytes", "datetime", "text", "auto")


def is_missing(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float | np.floating) and math.isnan(v))


def value(v: Any, fmt: str = "auto", *, missing: str = MISSING) -> str:
    """``v`` as display text in the format ``fmt`` (see the module docstring); ``missing`` for None/NaN/NA."""
    if is_missing(v):
        return missing
    if fmt == "auto":
        fmt = "number" if isinstance(v, float | np.floating) else "text"
    try:
        if fmt == "int":
            return f"{int(v):,}"
        if fmt == "seconds":
            return seconds(float(v))
        if fmt == "ms":
            return milliseconds(float(v))
        if fmt == "number":
            return f"{float(v):.4g}"
        if fmt == "percent":
            return f"{float(v) * 100:.1f}%"
        if fmt == "ratio":
            r = float(v)
            return "∞" if math.isinf(r) else f"{r:.3g}×"
        if fmt == "pvalue":
            p = float(v)
            return f"{p:.2g}" if p >= 1e-4 else "<0.0001"
        if fmt == "bytes":
            return nbytes(float(v))
        if fmt == "datetime":
            return pd.Timestamp(v).isoformat(sep=" ")
    except (TypeError, ValueError, OverflowError):
        pass
    if isinstance(v, list | tuple | np.ndarray):
        return ", ".join(map(str, v))
    return str(v)


def seconds(v: float) -> str:
    """A duration with its unit: ``1.234 s``, ``12.3 ms``, ``45.6 µs``."""
    if v == 0:
        return "0"
    a = abs(v)
    return f"{v:.4g} s" if a >= 1 else f"{v * 1e3:.3g} ms" if a >= 1e-3 else f"{v * 1e6:.3g} µs"


def milliseconds(v: float) -> str:
    """Seconds as a number of milliseconds without a unit (the column names it, so a column has one unit): three
    significant digits, never an exponent — ``120``, ``1.70``, ``0.0870``; ``±<0.0001`` below that."""
    ms = v * 1e3
    if ms == 0 or math.isinf(ms):
        return "0" if ms == 0 else str(ms)
    if abs(ms) < 1e-4:
        return "-<0.0001" if ms < 0 else "<0.0001"
    digits = min(4, max(0, 2 - math.floor(math.log10(abs(ms)))))
    return f"{ms:,.{digits}f}"


def nbytes(v: float) -> str:
    """A size with its binary unit: ``512 B``, ``1.5 KiB``, ``3.2 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(v) < 1024 or unit == "GiB":
            return f"{v:.4g} {unit}" if unit != "B" else f"{int(v):,} B"
        v /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def meta(v: Any) -> str:
    """A metadata value (report header, summaries): integers with separators, timestamps readable."""
    if isinstance(v, int | np.integer) and not isinstance(v, bool):
        return f"{int(v):,}"
    if isinstance(v, pd.Timestamp):
        return v.isoformat(sep=" ")
    return str(v)


def raw_number(v: Any) -> str | None:
    """The exact text of a number (``repr`` of a float) for machine reading, ``None`` for anything else."""
    if isinstance(v, bool | np.bool_):
        return None
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return repr(float(v)) if not math.isnan(v) else "nan"
    return None


def esc(v: object) -> str:
    """HTML-escaped text of ``v`` (quotes too); ``None`` is empty."""
    return html.escape("" if v is None else str(v), quote=True)


def left_cut(text: Any, width: int) -> Any:
    """Function labels keep their end (``file:line(name)``); the front of a long path is what can go."""
    return text if not isinstance(text, str) or len(text) <= width else "…" + text[-(width - 1) :]


def html_table(
    df: pd.DataFrame,
    columns: Sequence[str] | None = None,
    formats: Mapping[str, str] | None = None,
    *,
    max_rows: int | None = None,
    caption: str | None = None,
    table_id: str | None = None,
    css_class: str | None = None,
    highlight: Iterable[bool] | None = None,
    inline_style: bool = False,
    missing: str = MISSING,
    titles: Mapping[str, str] | None = None,
) -> str:
    """``df`` as an escaped HTML table: names like ``<script>`` are shown, never interpreted.

    ``formats`` maps a column to a :func:`value` format (default ``auto``); numeric cells carry their exact value
    in ``data-value`` and the class ``num``.  ``inline_style`` styles the table with attributes (notebook output,
    where no stylesheet applies); otherwise the page's stylesheet does.  ``highlight`` marks rows.  With
    ``max_rows``, a line says how many rows were left out.  ``titles`` maps a column to the column holding each
    cell's full text: the cell is cut with an ellipsis (class ``cut``) and the full text is its ``title`` (hover).
    """
    fm = formats or {}
    tt = {c: t for c, t in (titles or {}).items() if c in df.columns and t in df.columns}
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    d = df if max_rows is None else df.head(max_rows)
    hl = list(highlight)[: len(d)] if highlight is not None else []
    th = " style='text-align:left;padding:2px 8px'" if inline_style else ""
    td = " style='padding:1px 8px'" if inline_style else ""
    head = "".join(f"<th{th}>{esc(c)}</th>" for c in cols)
    fmts = [fm.get(c, "auto") for c in cols]
    rows = []
    full = {c: d[t].tolist() for c, t in tt.items()}
    for i, r in enumerate(d[cols].itertuples(index=False, name=None)):
        style = " style='background:#fff3cd'" if i < len(hl) and hl[i] else ""
        cells = []
        for c, v, f in zip(cols, r, fmts, strict=True):
            raw = raw_number(v) if f not in ("text", "auto") or isinstance(v, float | np.floating) else None
            text = esc(value(v, f, missing=missing))
            if c in full:
                cells.append(f'<td class="text label" title="{esc(full[c][i])}"><div class="cut">{text}</div></td>')
            elif raw is not None and not inline_style:
                cells.append(f'<td class="num" data-value="{esc(raw)}">{text}</td>')
            elif inline_style:
                cells.append(f"<td{td}>{text}</td>")
            else:
                cells.append(f'<td class="text">{text}</td>')
        rows.append(f"<tr{style}>{''.join(cells)}</tr>")
    cap = f'<div class="caption">{esc(caption)}</div>' if caption else ""
    attrs = f' id="{esc(table_id)}"' if table_id else ""
    if css_class:
        attrs += f" class='{esc(css_class)}'"
    if inline_style:
        attrs += " style='border-collapse:collapse;font-size:12px'"
    more = ""
    if max_rows is not None and len(df) > max_rows:
        more = f"<div style='color:#666'>… {len(df) - max_rows} more rows</div>"
    return f"{cap}<table{attrs}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def text_table(df: pd.DataFrame, formats: Mapping[str, str] | None = None, *, max_label: int = 90) -> str:
    """A plain-text table: numbers formatted by :func:`value` (by column format, else by type), numeric columns
    right-aligned, text cells clipped from the left at ``max_label``."""
    fm = formats or {}
    cols = list(df.columns)
    rows = []
    for r in df.itertuples(index=False, name=None):
        cells = []
        for c, v in zip(cols, r):
            f = fm.get(c) or ("number" if isinstance(v, float) else "int" if isinstance(v, int) else "text")
            s = value(v, f)
            if f == "text":
                s = left_cut(s, max_label)
            cells.append(s)
        rows.append(cells)
    widths = [max([len(str(c))] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    numeric = [fm.get(c, "text") != "text" for c in cols]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(s.rjust(w) if n else s.ljust(w) for s, w, n in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line([str(c) for c in cols])] + [line(r) for r in rows])
