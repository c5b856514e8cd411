"""Finding profile files (folders walked recursively, globs, paths) and reading their sidecars."""

from __future__ import annotations

import glob as _glob
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .._files import PROFILE_EXTENSIONS, SIDECAR_SUFFIX, TEMP_SUFFIXES, is_schema, sidecar_path
from ..errors import UsageError
from .decode import Opener, describe_error

Source = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]

#: Not sniffed when met while walking a directory (a file named explicitly is always sniffed).
SKIP_IN_WALK = (
    ".json", ".jsonl", ".csv", ".tsv", ".md", ".rst", ".txt", ".html", ".htm", ".svg", ".png", ".jpg", ".pdf",
    ".parquet", ".py", ".pyc", ".ipynb", ".yaml", ".yml", ".toml", ".log", ".dot", ".gv", ".ini", ".cfg",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------------- discovery
def _hidden_skipped(name: str, is_dir: bool) -> bool:
    """Whether a hidden entry met while walking is left out: hidden folders (``.git``, ``.ipynb_checkpoints``, our
    own cache) and hidden files that are not profiles.  A hidden profile file (``.x.prof``, ``.x.prof.gz``) and a
    temporary file are kept: the first is loaded, the second reported, never skipped in silence."""
    if not name.startswith("."):
        return False
    if is_dir:
        return True
    base = name[:-3] if name.endswith(".gz") else name
    return not (base.endswith(PROFILE_EXTENSIONS) or name.endswith(TEMP_SUFFIXES))


@dataclass
class Found:
    files: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)
    #: folders read whole by the walk -> the names of their files: whether a sidecar exists is known from this
    #: listing without asking the file system again (a re-open of the cache stats only the sidecars there are)
    listed: dict[str, set[str]] = field(default_factory=dict)

    #: files added by name or glob rather than by a folder's walk (their folder's listing is not known)
    unlisted: int = 0

    def sidecar_known_absent(self, sidecar: str) -> bool:
        folder, _, name = sidecar.rpartition(os.sep)
        names = self.listed.get(folder)
        return names is not None and name not in names

    def sidecars_of(self, files: list[str]) -> list[str | None]:
        """The sidecar path of each of ``files`` (found by this discovery), None where the walk's listing of its
        folder shows there is none.  When every file came from a walk and no walked folder holds a sidecar (a
        folder of another tool's profiles), that is known without a look at any file name."""
        if not self.unlisted and not any(n.endswith(SIDECAR_SUFFIX) for names in self.listed.values() for n in names):
            return [None] * len(files)
        paths = [sidecar_path(p) for p in files]
        return [None if self.sidecar_known_absent(s) else s for s in paths]


def _walk(root: str, found: Found, seen_dirs: set[tuple[int, int]], seen_files: set[str]) -> None:
    try:
        st = os.stat(root)
    except OSError as e:
        found.errors.append((root, describe_error(e)))
        return
    key = (st.st_dev, st.st_ino)
    if key in seen_dirs:
        found.errors.append((root, "symlink loop (directory already visited), skipped"))
        return
    seen_dirs.add(key)
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as e:
        found.errors.append((root, describe_error(e)))
        return
    base = os.path.abspath(root)  # once per folder: a name joined to it is absolute and normal already
    found.listed[base] = {e.name for e in entries}
    prefix = base if base.endswith(os.sep) else base + os.sep
    for entry in entries:
        path = entry.path
        try:
            is_dir = entry.is_dir()
        except OSError as e:
            found.errors.append((path, describe_error(e)))
            continue
        if _hidden_skipped(entry.name, is_dir):
            continue
        if is_dir:
            _walk(path, found, seen_dirs, seen_files)
            continue
        if entry.is_symlink() and not os.path.exists(path):
            try:
                os.stat(path)
                reason = "broken symlink"
            except OSError as e:
                reason = "symlink loop" if e.errno == 40 else "broken symlink"
            found.errors.append((path, reason))
            continue
        if entry.name.lower().endswith(SKIP_IN_WALK):
            continue
        real = prefix + entry.name
        if real not in seen_files:
            seen_files.add(real)
            found.files.append(real)


def discover(source: Source) -> Found:
    """Every candidate profile file under ``source`` (dirs recursively, globs, paths), sorted and unique."""
    items: list[str]
    if isinstance(source, str | os.PathLike):
        items = [os.fspath(source)]
    else:
        items = [os.fspath(s) for s in source]
    if not items:
        raise UsageError("celerylab.load: no source given")
    found = Found()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()
    for item in items:
        item = os.path.expanduser(item)
        if _glob.has_magic(item):
            matches = sorted(_glob.glob(item, recursive=True))
            if not matches:
                found.errors.append((item, "glob matched no files"))
            for m in matches:
                if os.path.isdir(m):
                    found.roots.append(os.path.abspath(m))
                    _walk(m, found, seen_dirs, seen_files)
                elif not _hidden_skipped(os.path.basename(m), False):
                    a = os.path.abspath(m)
                    if a not in seen_files:
                        seen_files.add(a)
                        found.files.append(a)
                        found.unlisted += 1
            continue
        if os.path.isdir(item):
            found.roots.append(os.path.abspath(item))
            _walk(item, found, seen_dirs, seen_files)
        elif os.path.lexists(item):
            a = os.path.abspath(item)
            if a not in seen_files:
                seen_files.add(a)
                found.files.append(a)
                found.unlisted += 1
        else:
            found.errors.append((item, "no such file or directory"))
    found.files.sort()
    return found


# ------------------------------------------------------------------------------------------------------ sidecars
def read_sidecar(path: str, opener: Opener = open) -> dict[str, Any] | str | None:
    """The sidecar dict, ``None`` if there is none, or a string: the reason it is unusable."""
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        return describe_error(e)
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return f"sidecar is not valid UTF-8 JSON: {e}"
    if not isinstance(obj, dict):
        return f"sidecar holds a JSON {type(obj).__name__}, expected an object"
    schema = obj.get("schema")
    if schema is not None and not is_schema(schema):
        return f"sidecar has unknown schema {schema!r}"
    return obj


__all__ = ["SKIP_IN_WALK", "Found", "Source", "discover", "read_sidecar", "sidecar_path"]
