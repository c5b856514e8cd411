"""Finding profile files (folders walked recursively, globs, paths) and reading their sidecars."""

from __future__ import annotations

import glob as _glob
import json
import os
import time
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
    #: every folder the walk read: (path, st_dev, st_ino, st_mtime_ns) as it was before the walk read it, and when
    #: the walk started (``time.time_ns``): what :func:`dirs_unchanged` checks a kept walk against
    dirs: list[tuple[str, int, int, int]] = field(default_factory=list)
    walked_ns: int = 0
    #: whether the source was folders only (no glob, no file named, nothing missing): a walk that can be kept
    folders_only: bool = True
    #: ``sidecars_of(files)``, kept once made (a kept walk carries it: a re-open does not make it again)
    sides: list[str | None] | None = None

    def sidecar_known_absent(self, sidecar: str) -> bool:
        folder, _, name = sidecar.rpartition(os.sep)
        names = self.listed.get(folder)
        return names is not None and name not in names

    def sidecars_of(self, files: list[str]) -> list[str | None]:
        """The sidecar path of each of ``files`` (found by this discovery), None where the walk's listing of its
        folder shows there is none.  When every file came from a walk and no walked folder holds a sidecar (a
        folder of another tool's profiles), that is known without a look at any file name."""
        if files is self.files and self.sides is not None and len(self.sides) == len(files):
            return self.sides
        if not self.unlisted and not any(n.endswith(SIDECAR_SUFFIX) for names in self.listed.values() for n in names):
            sides: list[str | None] = [None] * len(files)
        else:
            sides = [None if self.sidecar_known_absent(s) else s for s in map(sidecar_path, files)]
        if files is self.files:
            self.sides = sides
        return sides


def _walk(root: str, found: Found, seen_dirs: set[tuple[int, int]], seen_files: set[str]) -> None:
    try:
        st = os.stat(root)
    except OSError as e:
        found.errors.append((root, describe_error(e)))
        return
    key = (st.st_dev, st.st_ino)
    if key in seen_dirs:
        # reached again through a symlink: a loop, or a link to a folder walked already; otherwise the folder was
        # named twice, or named inside another folder named, and its files are listed already (nothing is lost)
        if os.path.islink(root):
            found.errors.append((root, "symlink loop (directory already visited), skipped"))
        return
    seen_dirs.add(key)
    found.dirs.append((os.path.abspath(root), st.st_dev, st.st_ino, st.st_mtime_ns))
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
    items = _items(source)
    if not items:
        raise UsageError("celerylab.load: no source given")
    found = Found(walked_ns=time.time_ns())
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()
    for item in items:
        if _glob.has_magic(item):
            found.folders_only = False  # what a pattern matches is not known from the folders it walked
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
            found.folders_only = False
            a = os.path.abspath(item)
            if a not in seen_files:
                seen_files.add(a)
                found.files.append(a)
                found.unlisted += 1
        else:
            found.folders_only = False
            found.errors.append((item, "no such file or directory"))
    found.files.sort()
    return found


def _items(source: Source) -> list[str]:
    """The paths or patterns a source names, ``~`` expanded."""
    items = [source] if isinstance(source, str | os.PathLike) else list(source)
    return [os.path.expanduser(os.fspath(s)) for s in items]


def folder_roots(source: Source) -> list[str] | None:
    """The folders ``source`` names, as :func:`discover` records them in ``roots``, when it names only existing
    folders (no pattern, no file); None otherwise."""
    roots = []
    for item in _items(source):
        if _glob.has_magic(item) or not os.path.isdir(item):
            return None
        roots.append(os.path.abspath(item))
    return roots or None


#: A walk is kept only if each folder it read had not changed for this long when the walk began: a folder changed
#: after the walk then shows a later mtime, even where the file system keeps mtimes to the second (or two, FAT)
QUIET_NS = 2_000_000_000


def keepable(found: Found) -> bool:
    """Whether a re-open may use this walk instead of walking again (see :func:`dirs_unchanged`): folders only, no
    error met (a folder it could not read may become readable without its parent changing), and every folder
    quiet for :data:`QUIET_NS` before the walk began."""
    return (
        found.folders_only
        and not found.errors
        and bool(found.dirs)
        and all(m < found.walked_ns - QUIET_NS for *_, m in found.dirs)
    )


def dirs_unchanged(dirs: list[tuple[str, int, int, int]]) -> bool:
    """Whether a kept walk still lists what a new walk would: every folder it read (``dirs``: ``Found.dirs`` of a
    walk that was :func:`keepable`) is still the same folder with the same mtime (adding, removing or renaming an
    entry changes its folder's mtime; a file changed in place is the cache's signatures' business, not the
    walk's)."""
    for path, dev, ino, mtime in dirs:
        try:
            st = os.stat(path)
        except OSError:
            return False
        if (st.st_dev, st.st_ino, st.st_mtime_ns) != (dev, ino, mtime):
            return False
    return True


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


__all__ = [
    "SKIP_IN_WALK",
    "Found",
    "Source",
    "dirs_unchanged",
    "discover",
    "folder_roots",
    "keepable",
    "read_sidecar",
    "sidecar_path",
]
