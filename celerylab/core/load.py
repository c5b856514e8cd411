"""Batch loading: many profile files (+ sidecars, + user metadata) -> one :class:`~celerylab.core.data.ProfileData`.

Discovery (:mod:`.sources`), parallel parsing (:mod:`.parse`), the cache (:mod:`.cache`) and the frames
(:mod:`.frames`) are put together here.
"""

from __future__ import annotations

import gc
import os
import re
import warnings
from collections import Counter
from typing import Any

import pandas as pd

from ..errors import LoadError
from . import cache as _cache
from . import names as _names
from .data import ProfileData
from .decode import stat_names_started
from .frames import build_frames, frame_of, merge_metadata, names_index, table
from .parse import Progress, parse
from .rules import caller_format_clash, column_facts, nullable_counts
from .sources import Source, discover, folder_roots


# ------------------------------------------------------------------------------------------------------- load()
def load(
    source: Source,
    *,
    metadata: pd.DataFrame | str | os.PathLike[str] | None = None,
    jobs: int | None = None,
    cache: bool | str | os.PathLike[str] = True,
    strict: bool = False,
    progress: bool | None = None,
    name_pattern: str | re.Pattern[str] | None = None,
    isolate: bool = False,
) -> ProfileData:
    """Load profile files into a :class:`ProfileSet`.

    ``source`` is a directory (walked recursively), a glob, a file, or a list of these.  Files are recognised by
    content (cProfile/pstats marshal dumps, optionally gzip-compressed), not by extension.  Per-function totals
    equal ``pstats.Stats(*ps.profiles.path)``.  Files that cannot be loaded are listed in ``ps.errors`` with the
    reason (``strict=True`` raises :class:`LoadError` instead).  ``metadata`` (DataFrame, CSV, JSON-lines or
    Parquet) is joined on ``task_id`` or ``path``; conflicts and unmatched rows are listed in
    ``ps.metadata_report``.  ``cache`` (default on) keeps parsed results in Parquet so re-opening is fast:
    ``True`` uses ``$CELERYLAB_CACHE_DIR`` or ``~/.cache/celerylab``, a path uses that folder.
    ``name_pattern`` is a regex with ``(?P<task_name>…)``/``(?P<task_id>…)`` groups for custom file names.
    ``jobs`` threads parse the files (default: one per CPU); ``isolate=True`` parses them in ``jobs`` separate
    processes instead (slower to start), so that a file that crashes the parser is named in ``ps.errors`` rather
    than taking this process down: for files from sources you do not trust.
    """
    pattern = _names.compile_pattern(name_pattern) if name_pattern is not None else None
    jobs = max(1, int(jobs)) if jobs else (os.cpu_count() or 1)
    # the cyclic collector stays off for the whole load: it makes no reference cycles, and its passes over the
    # function keys and rows it holds while it builds the frames (objects freed before it returns) cost ~1.3 ms of a
    # 40 ms load of 300 profiles, for nothing
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _load(source, pattern, metadata, jobs, cache, strict, progress, isolate)
    finally:
        if was_enabled:
            gc.enable()


def _load(
    source: Source,
    pattern: re.Pattern[str] | None,
    metadata: pd.DataFrame | str | os.PathLike[str] | None,
    jobs: int,
    cache: bool | str | os.PathLike[str],
    strict: bool,
    progress: bool | None,
    isolate: bool,
) -> ProfileData:
    store, found, kept = None, None, None
    if cache:
        roots = folder_roots(source)
        if roots is not None:  # folders only: the last walk is kept in the cache while none of them changes
            store = _cache.Store.for_roots(roots, [], cache)
            kept = store.read_walk(roots)
    if kept is None:
        found = discover(source)
        store = _cache.Store.for_source(found, cache, pattern) if cache else None
    n_files = kept.n if kept is not None else len(found.files)  # type: ignore[union-attr]
    bar = Progress(n_files, progress)
    pattern_key = pattern.pattern if pattern is not None else ""
    built, parsed = None, None
    try:
        if store is not None:
            fresh: list[int] = []

            def parse_fresh(files: list[str], sizes: Any) -> Any:
                fresh.append(len(files))
                return parse(files, jobs, bar, isolate, found.sidecars_of(files), sizes)  # type: ignore[union-attr]

            # the stat calls run in threads of their own while this one reads the current generation's frames:
            # used if the signatures show nothing changed (a re-open's two longest steps, side by side)
            if kept is not None:  # no Python object for any file unless something changed
                sigs_of = stat_names_started(kept.names, kept.n)
                frames_read = store.read_frames(pattern_key)
                parsed = store.read_unchanged(kept, sigs_of)
                unchanged = parsed is not None
                if parsed is None:
                    found = kept.found()
                    if found is None:  # the kept walk cannot give its files: walked again, and kept again
                        found, kept = discover(source), None
                        n_files = len(found.files)
                        sigs_of = _cache.sigs_started(found.files, found)
            else:
                sigs_of = _cache.sigs_started(found.files, found)  # type: ignore[union-attr]
                frames_read = store.read_frames(pattern_key)
            if parsed is None:
                assert found is not None
                parsed, unchanged = store.load(found.files, parse_fresh, found, sigs_of=sigs_of)
            built = frames_read if unchanged else None
            if built is None:
                try:
                    store.complete(parsed)  # the keys and sidecars an unchanged re-open did not read
                except _cache.CacheDamaged:  # they cannot be read: every file parsed again, the cache rewritten
                    assert found is not None
                    parsed, _ = store.load(found.files, parse_fresh, found, anew=True)
            bar.cached(n_files - sum(fresh))
        else:
            assert found is not None
            parsed = parse(found.files, jobs, bar, isolate, found.sidecars_of(found.files))
    finally:
        bar.close()
    if built is None:
        built = build_frames(parsed, pattern)
        if store is not None:
            store.write_frames(built, pattern_key)
    if store is not None and found is not None and (kept is None or kept.gen != store.files_gen):
        store.write_walk(found)  # walked now, or kept with another generation than the one that holds its files
    facts = parsed.facts if parsed.facts is not None else column_facts(parsed.stats, parsed.edges)
    if facts["edges.tottime.nan"]:
        _refuse_what_pstats_refuses(parsed, built["functions"]["label"])
    frames = {
        "profiles": built["profiles"],
        "functions": built["functions"],
        "stats": _frame(parsed.stats, facts, "stats"),
        "edges": _frame(parsed.edges, facts, "edges"),
        "sql": built["sql"],
        "allocations": built["allocations"],
        # a kept walk met no error (sources.keepable)
        "errors": table("errors", (found.errors if found else []) + parsed.errors + built["sidecar_errors"]),
    }
    report = table("metadata_report", [])
    if metadata is not None:
        frames["profiles"], report = merge_metadata(frames["profiles"], metadata)
        if len(report):
            counts = Counter(report["kind"])
            warnings.warn(
                "celerylab.load: metadata merge: "
                + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())
                + " (see ps.metadata_report)",
                stacklevel=4,
            )
    errors = frames["errors"]
    if len(errors):
        if strict:
            lines = "\n".join(f"  {p}: {r}" for p, r in errors.itertuples(index=False))
            raise LoadError(f"{len(errors)} file(s) could not be loaded:\n{lines}", errors=errors)
        warnings.warn(_error_summary(errors, n_files), stacklevel=4)
    if not len(frames["profiles"]) and not len(errors):
        warnings.warn(f"celerylab.load: no profile files found in {source!r}", stacklevel=4)
    return ProfileData(**frames, metadata_report=report)


def _refuse_what_pstats_refuses(parsed: Any, labels: pd.Series) -> None:
    """``pstats.Stats(*files)`` raises TypeError on files of the pure-Python ``profile`` module mixed with cProfile
    (or yappi, pyinstrument) files that record one same call: so does ``load``, naming two such files."""
    e = parsed.edges
    clash = caller_format_clash(e["profile_id"], e["caller_id"], e["callee_id"], e["tottime"])
    if clash is None:
        return
    a, b, caller, callee = clash
    call = f" both record the call {labels.iloc[caller]} -> {labels.iloc[callee]}, and"
    raise LoadError(
        f"these profiles cannot be combined:\n  {parsed.paths[a]} (written by the pure-Python `profile` module: "
        f"callers as bare counts)\n  {parsed.paths[b]} (cProfile format: callers as (nc, cc, tt, ct))\n"
        f"They{call} pstats.Stats refuses to add the two formats (TypeError); load them separately."
    )


def _frame(cols: dict[str, Any], facts: dict[str, bool], part: str) -> pd.DataFrame:
    """A stats/edges frame; call counts a profiler did not record (negative in the file) become NA."""
    cols = dict(cols)
    for c in ("ncalls", "pcalls"):
        if facts[f"{part}.{c}.unknown"]:
            cols[c] = nullable_counts(cols[c])
    return frame_of(names_index(list(cols)), list(cols.values()))


def _error_summary(errors: pd.DataFrame, total: int) -> str:
    # every group of reasons is counted (their counts add up to the number of files)
    counts = Counter(r.split(":")[0].split(" (")[0] for r in errors["reason"])
    groups = "; ".join(f"{r} ({n})" for r, n in counts.most_common())
    return (
        f"celerylab.load: {len(errors)} file(s) could not be loaded, {total} candidate files: {groups} — see ps.errors"
    )
