"""One profile file -> columnar arrays.

A cProfile/pstats file is a ``marshal`` dump of ``{(file, line, name): (cc, nc, tt, ct, callers)}`` where
``cc`` is the number of *primitive* calls and comes first, and each ``callers[(file, line, name)]`` is
``(nc, cc, tt, ct)`` (cProfile) or a plain call count (the pure-Python ``profile`` module).  This module decodes
that once into named columns:

* ``ncalls`` = total calls (pstats ``nc``), ``pcalls`` = primitive calls (pstats ``cc``),
* ``tottime`` = time in the function itself, ``cumtime`` = time including callees.

It imports only the standard library and numpy: it runs in loader worker processes.
"""

from __future__ import annotations

import json
import marshal
import math
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._files import TEMP_SUFFIXES

FuncKey = tuple[str, int, str]

# Capture writes ``.<final name>.<random>.tmp`` and then ``os.replace``s it into place.

_GZIP_MAGIC = b"\x1f\x8b"
_MARSHAL_DICT = (0x7B, 0xFB)  # TYPE_DICT, TYPE_DICT | FLAG_REF
_MAX_DECOMPRESSED = 1 << 31
_INT32_MAX = np.iinfo(np.int32).max


_PY2 = (
    "a profile written by Python 2 (its marshal format and byte-string names cannot be read by Python 3); "
    "convert it with Python 2's pstats, or re-profile under Python 3"
)


class BadProfile(ValueError):
    """A file that is not a valid profile; the message is the reason a user reads."""


@dataclass
class Chunk:
    """Parsed content of several files, with chunk-local function ids."""

    funcs: list[FuncKey] = field(default_factory=list)
    index: dict[FuncKey, int] = field(default_factory=dict)
    # one entry per input file: (path, reason or None, n_stats, n_edges, total_tt)
    outcomes: list[tuple[str, str | None, int, int, float]] = field(default_factory=list)
    s_prof: list[np.ndarray] = field(default_factory=list)
    s_cols: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    e_prof: list[np.ndarray] = field(default_factory=list)
    e_cols: list[tuple[np.ndarray, ...]] = field(default_factory=list)

    def packed(self) -> dict[str, Any]:
        """Plain arrays, cheap to pickle back to the parent process."""

        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            if not parts:
                return np.empty(0, dtype=dtype)
            out = np.concatenate(parts)
            if out.dtype == np.int64 and (not len(out) or out.max() <= _INT32_MAX):
                out = out.astype(np.int32)  # call counts: half the bytes to pickle back and hold
            return out

        s = list(zip(*self.s_cols)) if self.s_cols else [[], [], [], [], []]
        e = list(zip(*self.e_cols)) if self.e_cols else [[], [], [], [], [], []]
        dtypes_s = (np.int32, np.int64, np.int64, np.float64, np.float64)
        dtypes_e = (np.int32, np.int32, np.int64, np.int64, np.float64, np.float64)
        return {
            "funcs": self.funcs,
            "outcomes": self.outcomes,
            "stats": [cat(self.s_prof, np.int32)] + [cat(list(c), d) for c, d in zip(s, dtypes_s)],
            "edges": [cat(self.e_prof, np.int32)] + [cat(list(c), d) for c, d in zip(e, dtypes_e)],
        }


#: Opens a file for reading in binary mode: ``open`` for local files, an fsspec ``open`` for object storage.
Opener = Callable[[str, str], Any]


def read_bytes(path: str, opener: Opener = open) -> bytes:
    """The file's bytes, gunzipped if compressed. Raises BadProfile / OSError."""
    with opener(path, "rb") as f:
        data = f.read()
    if data[:2] == _GZIP_MAGIC:
        try:
            d = zlib.decompressobj(wbits=31)
            data = d.decompress(data, _MAX_DECOMPRESSED)
            if d.unconsumed_tail:
                raise BadProfile("gzip content larger than 2 GiB")
            if not d.eof:
                raise BadProfile("truncated gzip file")
        except zlib.error as e:
            raise BadProfile(f"corrupt gzip file: {e}") from None
    return data


def _sniff_text(data: bytes) -> str | None:
    """A reason if ``data`` is text rather than a marshal dump."""
    head = data[:4096]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # a cut in the middle of a multi-byte sequence at the 4096 boundary
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return None
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    if not text or printable < 0.95 * len(text):
        return None
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            json.loads(data.decode("utf-8"))
            return "a JSON file, not a cProfile dump"
        except (ValueError, UnicodeDecodeError):
            pass
        if stripped[:1] == "{" and "\n{" in text:
            return "a JSON-lines file, not a cProfile dump"
    if "Flat profile" in text or "Call graph" in text or ("cumulative" in text and "self" in text):
        return "a text file that looks like GNU gprof output, not a cProfile dump"
    if "ncalls" in text and "tottime" in text:
        return "a text file that looks like printed pstats output, not a cProfile dump"
    return "a text file, not a cProfile dump"


def decode(data: bytes) -> dict[Any, Any]:
    """The pstats dict in ``data``; BadProfile with a reason otherwise."""
    if not data:
        raise BadProfile("empty file")
    if data[0] == 0x80 and len(data) > 1 and 2 <= data[1] <= 5:
        raise BadProfile(f"a Python pickle (protocol {data[1]}), not a cProfile dump")
    if data[0] not in _MARSHAL_DICT:
        reason = _sniff_text(data)
        if reason:
            raise BadProfile(reason)
    try:
        obj = marshal.loads(data)
    except EOFError:
        if data[0] in _MARSHAL_DICT:
            raise BadProfile("truncated: the marshal data ends early (file cut short or still being written)") from None
        raise BadProfile(f"not a cProfile dump: unrecognised content (first bytes {data[:8].hex(' ')})") from None
    except (ValueError, TypeError) as e:
        reason = _sniff_text(data)
        if reason:
            raise BadProfile(reason) from None
        if data[:2] == b"{(":
            # Python 2's marshal: a dict of plain 4-byte-counted tuples, no reference flags, str as bytes
            raise BadProfile(_PY2) from None
        raise BadProfile(
            f"not a cProfile dump ({e}): random or corrupt bytes, or written by a Python whose marshal format "
            "this one cannot read"
        ) from None
    except MemoryError:
        raise BadProfile("corrupt marshal data: it asks for more memory than is available") from None
    if not isinstance(obj, dict):
        raise BadProfile(f"not a cProfile dump: a marshal dump of a {type(obj).__name__}, not the dict cProfile writes")
    if not obj:
        raise BadProfile("profile has no functions")
    return obj


def _check_key(key: Any) -> FuncKey:
    if type(key) is tuple and len(key) == 3 and type(key[0]) is str and type(key[1]) is int and type(key[2]) is str:
        return key
    if type(key) is tuple and len(key) == 3 and isinstance(key[0], bytes):
        raise BadProfile(_PY2)
    raise BadProfile(f"wrong shape: function key {key!r:.80} is not (file, line, name)")


def _numbers(values: Iterable[Any], what: str, integer: bool) -> np.ndarray:
    arr = np.array(values if isinstance(values, tuple | list) else list(values))
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise BadProfile(f"wrong shape: {what} holds non-numbers")
    if integer:
        if arr.dtype.kind == "f":
            raise BadProfile(f"wrong shape: {what} holds non-integer call counts")
        if arr.size and arr.min() < 0:
            raise BadProfile(f"invalid numbers: negative {what}")
        return arr.astype(np.int64, copy=False)
    arr = arr.astype(np.float64, copy=False)
    if arr.size:
        if not np.isfinite(arr).all():
            raise BadProfile(f"invalid numbers: {what} holds NaN or infinity")
        if arr.min() < 0:
            raise BadProfile(f"invalid numbers: negative {what}")
    return arr


def add_dict(chunk: Chunk, slot: int, stats: dict[Any, Any]) -> tuple[int, int, float]:
    """Append one decoded pstats dict to ``chunk`` as profile ``slot``; returns (n_stats, n_edges, total_tt)."""
    index = chunk.index
    funcs = chunk.funcs
    get = index.get

    def fid(key: Any) -> int:
        i = get(key)
        if i is None:
            i = len(funcs)
            index[_check_key(key)] = i
            funcs.append(key)
        return i

    keys = list(stats)
    vals = list(stats.values())
    ids = [get(k, -1) for k in keys]
    if -1 in ids:
        ids = [fid(k) for k in keys]
    try:
        if set(map(len, vals)) != {5}:
            raise BadProfile("wrong shape: an entry is not (cc, nc, tt, ct, callers)")
    except TypeError:
        raise BadProfile("wrong shape: an entry is not (cc, nc, tt, ct, callers)") from None
    cc, nc, tt, ct, callers = zip(*vals)
    s_pc = _numbers(cc, "primitive call counts", True)
    s_nc = _numbers(nc, "call counts", True)
    s_tt = _numbers(tt, "tottime", False)
    s_ct = _numbers(ct, "cumtime", False)
    # bad pstats would make the arithmetic below meaningless; pstats itself never writes pc > nc
    if (s_pc > s_nc).any():
        raise BadProfile("invalid numbers: more primitive calls than calls")

    callee: list[int] = []
    caller_keys: list[Any] = []
    caller_vals: list[Any] = []
    for i, cd in zip(ids, callers):
        if cd:
            if type(cd) is not dict:
                raise BadProfile("wrong shape: callers of an entry is not a dict")
            callee.extend([i] * len(cd))
            caller_keys.extend(cd)
            caller_vals.extend(cd.values())
        elif cd != {} and type(cd) is not dict:
            raise BadProfile("wrong shape: callers of an entry is not a dict")
    n_edges = len(callee)
    if n_edges:
        caller = [get(k, -1) for k in caller_keys]
        if -1 in caller:
            caller = [fid(k) for k in caller_keys]
        first = caller_vals[0]
        if type(first) is tuple:
            try:
                if set(map(len, caller_vals)) != {4}:
                    raise TypeError
            except TypeError:
                raise BadProfile("wrong shape: a caller entry is not (nc, cc, tt, ct)") from None
            e_nc, e_cc, e_tt, e_ct = zip(*caller_vals)
            e = (
                np.array(caller, dtype=np.int32),
                np.array(callee, dtype=np.int32),
                _numbers(e_nc, "caller call counts", True),
                _numbers(e_cc, "caller primitive call counts", True),
                _numbers(e_tt, "caller tottime", False),
                _numbers(e_ct, "caller cumtime", False),
            )
        else:
            # pure-Python `profile` module: callers map to a bare call count; times unknown (NaN)
            if any(type(v) is tuple for v in caller_vals):
                raise BadProfile("wrong shape: mixed caller formats")
            counts = _numbers(caller_vals, "caller call counts", True)
            nan = np.full(n_edges, np.nan)
            e = (np.array(caller, dtype=np.int32), np.array(callee, dtype=np.int32), counts, counts.copy(), nan, nan)
        chunk.e_prof.append(np.full(n_edges, slot, dtype=np.int32))
        chunk.e_cols.append(e)

    n = len(ids)
    chunk.s_prof.append(np.full(n, slot, dtype=np.int32))
    chunk.s_cols.append((np.array(ids, dtype=np.int32), s_nc, s_pc, s_tt, s_ct))
    # pstats.Stats.get_top_level_stats: a plain left-to-right sum
    total_tt = 0.0
    for x in tt:
        total_tt += x
    return n, n_edges, float(total_tt)


def parse_files(paths: list[str], opener: Opener = open) -> dict[str, Any]:
    """Parse ``paths`` into one packed chunk. Never raises for a bad file: its reason goes in ``outcomes``.
    ``opener`` opens a path (default: local files; the scale-out ingest passes an fsspec opener)."""
    chunk = Chunk()
    for path in paths:
        slot = len(chunk.outcomes)
        # snapshot so that a file failing half-way leaves no rows behind
        n_funcs, n_s, n_e = len(chunk.funcs), len(chunk.s_cols), len(chunk.e_cols)
        try:
            if path.endswith(TEMP_SUFFIXES):
                raise BadProfile("temporary file, still being written (skipped)")
            stats = decode(read_bytes(path, opener))
            n, ne, total_tt = add_dict(chunk, slot, stats)
            chunk.outcomes.append((path, None, n, ne, total_tt))
        except (BadProfile, OSError, RecursionError, MemoryError) as e:
            for key in chunk.funcs[n_funcs:]:
                del chunk.index[key]
            del chunk.funcs[n_funcs:]
            del chunk.s_cols[n_s:], chunk.s_prof[n_s:]
            del chunk.e_cols[n_e:], chunk.e_prof[n_e:]
            chunk.outcomes.append((path, describe_error(e), 0, 0, math.nan))
    return chunk.packed()


def describe_error(e: BaseException) -> str:
    if isinstance(e, BadProfile):
        return str(e)
    if isinstance(e, IsADirectoryError):
        return "is a directory"
    if isinstance(e, PermissionError):
        return "unreadable: permission denied"
    if isinstance(e, FileNotFoundError):
        return "vanished while loading (file not found)"
    if isinstance(e, OSError):
        if e.errno == 40:  # ELOOP
            return "symlink loop"
        return f"unreadable: {e.strerror or e}"
    if isinstance(e, RecursionError):
        return "corrupt marshal data: nested too deeply"
    if isinstance(e, MemoryError):
        return "corrupt marshal data: it asks for more memory than is available"
    return f"{type(e).__name__}: {e}"
