"""Writing output files (reports, charts, call graphs, merged profiles): one check, one atomic write.  Stdlib only."""

from __future__ import annotations

import contextlib
import os

from .errors import OutputFolderMissing


def check_folder(path: str | os.PathLike[str]) -> str:
    """``path`` as a string, after checking that the folder it goes into exists (:class:`OutputFolderMissing`)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputFolderMissing(f"{path}: output folder {folder} does not exist")
    return path


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> str:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary file renamed into place: a reader never sees a
    partial file.  Returns the path.  A lone surrogate in the text (a file name that is not UTF-8, as Python decodes
    it) is written as its escape, ``\\udcff``."""
    path = check_folder(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode("utf-8", "backslashreplace") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
