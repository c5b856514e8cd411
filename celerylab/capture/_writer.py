"""Atomic writes and the retention cap.

Every file is written as ``.<final name>.<pid>-<random>.tmp`` in the target directory and then ``os.replace``d
into place, so a reader never sees a partial file: a process killed mid-write leaves only a hidden ``.tmp``
(which :func:`remove_stale_tmp` deletes later).  The sidecar is written *before* the profile: whoever sees a
``.prof`` finds its ``.json`` next to it.  Retention deletes the ``.prof`` before its sidecar for the same reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable

from .._files import PROFILE_SUFFIX, SIDECAR_SUFFIX, TEMP_RE, is_schema, temp_name

#: Test seam: called as ``hook(stage, final_path)`` after a temporary file is complete and before it is renamed.
#: ``None`` in production.  Tests use it to kill a worker process at exactly that point.
fault_hook: Callable[[str, str], None] | None = None


def write_atomic(directory: str, name: str, data: bytes, stage: str = "", *, exclusive: bool = False) -> int:
    """Write ``data`` to ``directory/name`` atomically; returns the number of bytes written.

    ``exclusive``: never replace an existing ``name`` (raises :class:`FileExistsError`); done with ``os.link``,
    atomic too, or, on a file system without hard links, a check then ``os.replace``.  On any error the temporary
    file is removed and the error is raised to the caller.
    """
    final = os.path.join(directory, name)
    tmp = os.path.join(directory, temp_name(name))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        if fault_hook is not None:
            fault_hook(stage, final)
        if exclusive:
            _link_new(tmp, final)
        else:
            os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return len(data)


def _link_new(tmp: str, final: str) -> None:
    """Move ``tmp`` to ``final`` unless ``final`` exists (then :class:`FileExistsError`)."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (some FUSE, SMB, FAT file systems)
        if os.path.lexists(final):
            raise FileExistsError(final) from None
        os.replace(tmp, final)
        return
    os.unlink(tmp)


def write_pair(directory: str, stem: str, sidecar: bytes, profile: bytes, *, exclusive: bool = False) -> int:
    """Write ``<stem>.json`` then ``<stem>.prof`` atomically; returns the bytes written.  If the profile cannot be
    written, the sidecar is removed again (no orphan sidecar).  A vanished directory is made again, once.
    ``exclusive``: :class:`FileExistsError` when ``<stem>.json`` exists (another file set is there)."""
    try:
        return _write_pair(directory, stem, sidecar, profile, exclusive)
    except FileNotFoundError:
        os.makedirs(directory, exist_ok=True)
        return _write_pair(directory, stem, sidecar, profile, exclusive)


def _write_pair(directory: str, stem: str, sidecar: bytes, profile: bytes, exclusive: bool = False) -> int:
    n = write_atomic(directory, stem + SIDECAR_SUFFIX, sidecar, "sidecar", exclusive=exclusive)
    try:
        n += write_atomic(directory, stem + PROFILE_SUFFIX, profile, "profile")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, stem + SIDECAR_SUFFIX))
        raise
    return n


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_stale_tmp(directory: str, *, dead_min_age: float = 60.0, max_age: float = 3600.0) -> int:
    """Delete temporary files and orphan sidecars left by killed writers; returns how many were deleted.

    A ``.tmp`` (or a sidecar whose ``.prof`` never appeared) goes when its writer's pid no longer runs on this host
    and it is older than ``dead_min_age`` seconds, or when it is older than ``max_age`` (a writer on another host
    sharing the directory).
    """
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    names = {e.name for e in entries}
    for e in entries:
        m = TEMP_RE.match(e.name)
        try:
            pid: int | None = None
            if m:
                pid = int(m.group(1))
            elif e.name.endswith(SIDECAR_SUFFIX) and e.name[: -len(SIDECAR_SUFFIX)] + PROFILE_SUFFIX not in names:
                pid = _sidecar_pid(e.path)  # an orphan sidecar: its writer died before the profile was in place
            if pid is None:
                continue
            age = now - e.stat().st_mtime
            if age >= max_age or (age >= dead_min_age and not _pid_alive(pid)):
                os.unlink(e.path)
                removed += 1
        except OSError:
            continue
    return removed


def _sidecar_pid(path: str) -> int | None:
    """The writer's pid of a celerylab sidecar (``None`` for any other JSON file)."""
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not is_schema(meta.get("schema")) or not isinstance(meta.get("pid"), int):
        return None
    return int(meta["pid"])


class Retention:
    """Keep at most ``max_files`` profiles and ``max_bytes`` bytes (``.prof`` + sidecar) in ``directory``.

    Each process tracks what it wrote since its last directory scan; it rescans when its estimate passes a cap or
    every ``rescan_every`` writes (to see what other pool processes wrote), and then deletes the oldest profiles
    (by modification time) until the directory is at 90 % of each cap, so scans stay rare.
    """

    def __init__(self, directory: str, max_files: int | None, max_bytes: int | None, rescan_every: int = 50) -> None:
        self.directory = directory
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.rescan_every = max(1, min(rescan_every, (max_files // 10) if max_files else rescan_every))
        self.files = 0
        self.bytes = 0
        self.since_scan = 0
        self.deleted = 0
        self.scanned = False

    @property
    def enabled(self) -> bool:
        return self.max_files is not None or self.max_bytes is not None

    def added(self, nbytes: int) -> None:
        """Account for one profile just written; enforce the caps when needed."""
        if not self.enabled:
            return
        self.files += 1
        self.bytes += nbytes
        self.since_scan += 1
        over = (self.max_files is not None and self.files > self.max_files) or (
            self.max_bytes is not None and self.bytes > self.max_bytes
        )
        if over or not self.scanned or self.since_scan >= self.rescan_every:
            self.enforce()

    def enforce(self) -> None:
        """Scan the directory and delete the oldest profiles until both caps hold (with 10 % headroom)."""
        self.scanned = True
        self.since_scan = 0
        profiles: list[tuple[float, str, int]] = []
        sizes: dict[str, int] = {}
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return
        for e in entries:
            name = e.name
            if name.startswith("."):
                continue
            try:
                st = e.stat()
            except OSError:
                continue
            if name.endswith(PROFILE_SUFFIX):
                profiles.append((st.st_mtime, name[: -len(PROFILE_SUFFIX)], st.st_size))
            elif name.endswith(SIDECAR_SUFFIX):
                sizes[name[: -len(SIDECAR_SUFFIX)]] = st.st_size
        total = sum(p[2] + sizes.get(p[1], 0) for p in profiles)
        count = len(profiles)
        keep_files = None if self.max_files is None else (self.max_files * 9) // 10
        keep_bytes = None if self.max_bytes is None else (self.max_bytes * 9) // 10
        over_files = self.max_files is not None and count > self.max_files
        over_bytes = self.max_bytes is not None and total > self.max_bytes
        if over_files or over_bytes:
            profiles.sort()
            for _mtime, stem, size in profiles:
                if (keep_files is None or count <= keep_files) and (keep_bytes is None or total <= keep_bytes):
                    break
                try:  # profile first: no .prof without its sidecar
                    os.unlink(os.path.join(self.directory, stem + PROFILE_SUFFIX))
                    mine = True
                except FileNotFoundError:  # another pool process deleted it first: gone, but not our deletion
                    mine = False
                except OSError:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.directory, stem + SIDECAR_SUFFIX))
                count -= 1
                total -= size + sizes.get(stem, 0)
                self.deleted += mine
        self.files = count
        self.bytes = total
