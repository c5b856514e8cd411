"""Write figures to files: self-contained HTML, and PNG / SVG / PDF / JPEG / WebP through kaleido.

Kaleido drives a Chromium; celerylab uses the system one (Debian ``chromium``; ``BROWSER_PATH`` overrides) and
never downloads anything: MathJax is switched off and plotly.js comes from the installed plotly package.

A cold export starts a browser (seconds).  For many images, open one browser for all of them::

    from celerylab.charts.export import image_export, write_image
    with image_export():
        for fig, path in zip(figs, paths):
            write_image(fig, path)

or call :func:`write_images` once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import plotly.graph_objects as go

from .._io import write_atomic
from ..errors import ExportError, UsageError

IMAGE_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg", "webp")
HTML_FORMATS = ("html", "htm")

_KALEIDO_OPTS: dict[str, Any] = {"mathjax": False}  # offline: MathJax would be fetched from a CDN
_session_depth = 0


def _format_of(path: str, format: str | None) -> str:
    fmt = (format or os.path.splitext(path)[1].lstrip(".")).lower()
    if not fmt:
        raise ExportError(f"{path}: no file extension; pass format= (one of {', '.join(IMAGE_FORMATS + HTML_FORMATS)})")
    if fmt not in IMAGE_FORMATS + HTML_FORMATS:
        raise ExportError(f"{path}: unknown format {fmt!r}; use one of {', '.join(IMAGE_FORMATS + HTML_FORMATS)}")
    return "jpeg" if fmt == "jpg" else fmt


def figure_html(fig: go.Figure, *, title: str | None = None) -> str:
    """A complete, self-contained HTML page for ``fig`` (plotly.js inlined; opens without network)."""
    import html as _html

    body = fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})
    if title:
        body = body.replace("<head>", f"<head><title>{_html.escape(title)}</title>", 1)
    return body


def write_html(fig: go.Figure, path: str | os.PathLike[str], *, title: str | None = None) -> str:
    """Write ``fig`` as one self-contained HTML file; returns the path."""
    return write_atomic(os.fspath(path), figure_html(fig, title=title).encode("utf-8"))


def _chromium_error(e: BaseException) -> ExportError:
    return ExportError(
        "static image export needs Chromium, which was not found: apt-get install chromium "
        f"(or set BROWSER_PATH to a Chrome/Chromium binary) [{type(e).__name__}: {e}]"
    )


@contextlib.contextmanager
def image_export() -> Iterator[None]:
    """Keep one Chromium open for every :func:`write_image` / :func:`figure_image` inside the block.

    Nested blocks reuse the outer browser; a kaleido server someone else started is reused and left running."""
    global _session_depth
    import kaleido
    from kaleido import _global_server
    from kaleido.errors import ChromeNotFoundError

    started = False
    if _session_depth == 0 and not _global_server.is_running():
        try:
            kaleido.start_sync_server(**_KALEIDO_OPTS, silence_warnings=True)
        except ChromeNotFoundError as e:
            raise _chromium_error(e) from e
        started = True
    _session_depth += 1
    try:
        yield
    finally:
        _session_depth -= 1
        if started:
            kaleido.stop_sync_server(silence_warnings=True)


def figure_image(
    fig: go.Figure | dict[str, Any],
    format: str = "png",
    *,
    width: int | None = None,
    height: int | None = None,
    scale: float = 1.0,
) -> bytes:
    """``fig`` rendered as image bytes (png, svg, pdf, jpeg, webp) by kaleido with the system Chromium."""
    import kaleido
    from kaleido import _global_server
    from kaleido.errors import ChromeNotFoundError

    fmt = _format_of("figure." + format, None)
    if fmt in HTML_FORMATS:
        return figure_html(fig if isinstance(fig, go.Figure) else go.Figure(fig)).encode("utf-8")
    fig_dict = fig.to_dict() if isinstance(fig, go.Figure) else dict(fig)
    layout = fig_dict.get("layout", {})
    opts = {
        "format": fmt,
        "width": width or layout.get("width") or 900,
        "height": height or layout.get("height") or 500,
        "scale": scale,
    }
    try:
        if _global_server.is_running():
            data = kaleido.calc_fig_sync(fig_dict, opts=opts)
        else:
            data = kaleido.calc_fig_sync(fig_dict, opts=opts, kopts=dict(_KALEIDO_OPTS))
    except ChromeNotFoundError as e:
        raise _chromium_error(e) from e
    if not data:
        raise ExportError(f"kaleido returned an empty {fmt} image")
    return bytes(data)


def write_image(
    fig: go.Figure,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    width: int | None = None,
    height: int | None = None,
    scale: float = 1.0,
) -> str:
    """Write ``fig`` to ``path``; the format comes from ``format`` or the extension (``.html`` works too)."""
    path = os.fspath(path)
    fmt = _format_of(path, format)
    if fmt in HTML_FORMATS:
        return write_html(fig, path)
    return write_atomic(path, figure_image(fig, fmt, width=width, height=height, scale=scale))


def write_images(
    figs: Sequence[go.Figure], paths: Sequence[str | os.PathLike[str]], *, scale: float = 1.0
) -> list[str]:
    """Write each figure to its path with one shared browser; returns the paths."""
    if len(figs) != len(paths):
        raise UsageError(f"write_images: {len(figs)} figures but {len(paths)} paths")
    with image_export():
        return [write_image(f, p, scale=scale) for f, p in zip(figs, paths)]


def export(fig: go.Figure, path: str | os.PathLike[str], **kwargs: Any) -> str:
    """Alias of :func:`write_image`: any supported extension, HTML included."""
    return write_image(fig, path, **kwargs)
