"""``celerylab ship``: move finished profile pairs from a worker's capture folder to object storage.

A pair is ``<stem>.prof`` (or another profile extension, optionally ``.gz``) and its sidecar ``<stem>.json``.
Capture renames both into place only when complete (sidecar first), so any non-hidden profile file is finished;
hidden and temporary names are never shipped.  Per pair:

1. the sidecar is uploaded to its final key (a sidecar alone is never taken for a profile: readers pair profiles
   with sidecars, not the other way round);
2. the profile is uploaded to a hidden temporary key (``.<name>.<pid>-<hex>.tmp``, the name capture itself uses)
   and then moved to its final key, so a reader never sees a partial profile;
3. the final key's size is checked against the local file; only then are the local files deleted.

Any failure (network, permissions, a full disk) keeps the local files; the next run ships them.
"""

from __future__ import annotations

import os
import posixpath
import time
from dataclasses import dataclass, field
from typing import Any

from .._files import PROFILE_EXTENSIONS, TEMP_SUFFIXES, sidecar_path, temp_name
from ..errors import UsageError
from . import _layout as L


@dataclass
class ShipReport:
    shipped: list[str] = field(default_factory=list)  # local profile paths whose pair was uploaded and deleted
    failed: list[tuple[str, str]] = field(default_factory=list)  # (local profile path, reason): kept for next time
    bytes: int = 0

    def __str__(self) -> str:
        return f"shipped {len(self.shipped)} profile(s) ({self.bytes:,} bytes), {len(self.failed)} kept after failure"


def finished_profiles(folder: str) -> list[str]:
    """The finished profile files under ``folder`` (recursively), sorted: no hidden or temporary names."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or name.endswith(TEMP_SUFFIXES):
                continue
            base = name[:-3] if name.endswith(".gz") else name
            if base.endswith(PROFILE_EXTENSIONS):
                out.append(os.path.join(dirpath, name))
    return sorted(out)


def ship(folder: str, to: str, *, storage_options: dict[str, Any] | None = None, keep: bool = False) -> ShipReport:
    """Upload every finished pair under ``folder`` to ``to`` (any fsspec URL), keeping the relative layout; delete
    the local files once the upload is confirmed (``keep=True``: never delete).  Never raises for a pair that
    fails: it is listed in ``failed`` and stays on disk."""
    if not os.path.isdir(folder):
        raise UsageError(f"ship: {folder} is not a folder")
    fs, root = L.filesystem(to, storage_options)
    report = ShipReport()
    for path in finished_profiles(folder):
        rel = os.path.relpath(path, folder).replace(os.sep, "/")
        final = posixpath.join(root, rel)
        side = sidecar_path(path)
        has_side = os.path.exists(side)
        tmp = posixpath.join(posixpath.dirname(final), temp_name(posixpath.basename(final)))
        try:
            size = os.path.getsize(path)
            fs.makedirs(posixpath.dirname(final), exist_ok=True)
            if has_side:
                side_final = posixpath.join(posixpath.dirname(final), os.path.basename(side))
                fs.put_file(side, side_final)
                _confirm(fs, side_final, os.path.getsize(side))
            fs.put_file(path, tmp)
            _confirm(fs, tmp, size)
            fs.mv(tmp, final)
            _confirm(fs, final, size)
        except Exception as e:  # whatever the storage raises, the files stay for the next run
            report.failed.append((path, f"{type(e).__name__}: {e}"))
            try:
                if fs.exists(tmp):
                    fs.rm(tmp)
            except Exception:  # the storage is unreachable: the next run cleans up
                pass
            continue
        report.bytes += size + (os.path.getsize(side) if has_side else 0)
        if not keep:
            os.remove(path)
            if has_side:
                os.remove(side)
        report.shipped.append(path)
    return report


def _confirm(fs: Any, key: str, size: int) -> None:
    fs.invalidate_cache(posixpath.dirname(key))
    info = fs.info(key)
    if int(info.get("size") or 0) != size:
        raise OSError(f"uploaded {key} has {info.get('size')} bytes, the local file {size}")


def ship_forever(folder: str, to: str, *, interval: float, storage_options: dict[str, Any] | None = None,
                 runs: int | None = None, echo: Any = None) -> None:  # fmt: skip
    """:func:`ship` every ``interval`` seconds (``runs`` times, or until interrupted); failures are retried."""
    done = 0
    while runs is None or done < runs:
        rep = ship(folder, to, storage_options=storage_options)
        if echo is not None and (rep.shipped or rep.failed):
            echo(str(rep))
        done += 1
        if runs is None or done < runs:
            time.sleep(interval)
