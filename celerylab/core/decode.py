"""One profile file -> columnar arrays.

A cProfile/pstats file is a ``marshal`` dump of ``{(file, line, name): (cc, nc, tt, ct, callers)}`` where
``cc`` is the number of *primitive* calls and comes first, and each ``callers[(file, line, name)]`` is
``(nc, cc, tt, ct)`` (cProfile) or a plain call count (the pure-Python ``profile`` module).  This module decodes
that once into named columns:

* ``ncalls`` = total calls (pstats ``nc``), ``pcalls`` = primitive calls (pstats ``cc``),
* ``tottime`` = time in the function itself, ``cumtime`` = time including callees.

Files as cProfile writes them go through the compiled decoder (:mod:`celerylab.core._cdecode`, built from
``_cdecode.c``), which reads the marshal bytes straight into columns; every other file, and every file where the
extension is not built or ``CELERYLAB_PURE_PYTHON=1`` is set, takes the Python path (``marshal.loads``, then
:func:`add_dict`).  Both give the same columns, bit for bit (tests/loader/test_cdecode.py).

It imports only the standard library and numpy: it runs in loader worker processes.
"""

from __future__ import annotations

import gc
import itertools
import json
import marshal
import math
import os
import re
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from .._files import TEMP_SUFFIXES

_cdecode: Any
if os.environ.get("CELERYLAB_PURE_PYTHON") == "1":
    _cdecode = None
else:
    try:
        from . import _cdecode  # type: ignore[attr-defined,no-redef]
    except ImportError:  # not built (an sdist installed without a C compiler): the Python path does everything
        _cdecode = None

FuncKey = tuple[str, int, str]

# Capture writes ``.<final name>.<random>.tmp`` and then ``os.replace``s it into place.

_GZIP_MAGIC = b"\x1f\x8b"
_MARSHAL_DICT = (0x7B, 0xFB)  # TYPE_DICT, TYPE_DICT | FLAG_REF
_MAX_DECOMPRESSED = 1 << 31
_INT32_MAX = np.iinfo(np.int32).max
_INT32_MIN = np.iinfo(np.int32).min


_PY2 = (
    "a profile written by Python 2 (its marshal format and byte-string names cannot be read by Python 3); "
    "convert it with Python 2's pstats, or re-profile under Python 3"
)


class BadProfile(ValueError):
    """A file that is not a valid profile; the message is the reason a user reads."""


@dataclass
class Chunk:
    """Parsed content of several files, with function ids local to the chunk (or to the thread's :class:`Keys`)."""

    funcs: list[FuncKey] = field(default_factory=list)
    index: dict[FuncKey, int] = field(default_factory=dict)
    # one entry per input file: (path, reason or None, n_stats, n_edges, total_tt, profiler)
    outcomes: list[tuple[str, str | None, int, int, float, str]] = field(default_factory=list)
    s_prof: list[np.ndarray] = field(default_factory=list)
    s_cols: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    e_prof: list[np.ndarray] = field(default_factory=list)
    e_cols: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    #: the compiled decoder's view of ``funcs``/``index`` (None: the Python path only)
    interner: Any = None

    def forget(self, n_funcs: int) -> None:
        """Drop every function interned after the first ``n_funcs`` (a file that failed half-way)."""
        if self.interner is not None:
            self.interner.truncate(n_funcs)
            return
        for key in self.funcs[n_funcs:]:
            del self.index[key]
        del self.funcs[n_funcs:]

    def flush(self) -> None:
        """Move the rows the compiled decoder holds into the column parts (before a file of the Python path, so
        that rows stay in file order), and the keys it met into ``funcs``/``index``.  Its buffers become the
        arrays' memory: no copy."""
        if self.interner is None:
            return
        self.interner.sync()  # the Python keys of the functions it gave ids to without the GIL
        if not self.interner.pending():
            return
        cols, _n_rows, ne, wide = self.interner.take()  # what each buffer holds: _cdecode.c, Interner.take
        count = np.int64 if wide else np.int32
        dtypes: tuple[Any, ...] = (np.int32, np.int32, count, count, np.float64, np.float64)
        dtypes += (np.int32, np.int32, np.int32, count, count, np.float64, np.float64)
        arrays = [np.frombuffer(c, dtype=d) for c, d in zip(cols, dtypes)]
        self.s_prof.append(arrays[0])
        self.s_cols.append(tuple(arrays[1:6]))
        if ne:  # as the Python path: no part for no edges
            self.e_prof.append(arrays[6])
            self.e_cols.append(tuple(arrays[7:]))

    def packed(self) -> dict[str, Any]:
        """Plain arrays, cheap to send back to the parent process."""
        self.flush()

        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            if not parts:
                return np.empty(0, dtype=dtype)
            out = np.concatenate(parts) if len(parts) > 1 else parts[0]
            if out.dtype == np.int64 and fits_int32(out):
                out = out.astype(np.int32)  # call counts: half the bytes to send back and hold
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
    return _read(path, opener)[0]


def _read(path: str, opener: Opener = open) -> tuple[bytes, bool]:
    """``(bytes, was gzip-compressed)``. Raises BadProfile / OSError."""
    with opener(path, "rb") as f:
        data = f.read()
    if data[:2] != _GZIP_MAGIC:
        return data, False
    try:
        d = zlib.decompressobj(wbits=31)
        data = d.decompress(data, _MAX_DECOMPRESSED)
        if d.unconsumed_tail:
            raise BadProfile("gzip content larger than 2 GiB")
        if not d.eof:
            raise BadProfile("truncated gzip file (cut short or still being written)")
    except zlib.error as e:
        raise BadProfile(f"corrupt gzip file ({e})") from None
    return data, True


def _decode_read(data: bytes, compressed: bool) -> dict[Any, Any]:
    """The pstats dict in a file's bytes (as :func:`_read` returned them); BadProfile with a reason otherwise."""
    try:
        return decode(data)
    except BadProfile as e:
        if compressed:
            raise BadProfile(f"gzip-compressed, and inside: {e}") from None
        raise


#: Leading bytes of formats people mistake for profiles -> what the file is.
_SIGNATURES = (
    (b"PK\x03\x04", "a zip archive"),
    (_GZIP_MAGIC, "a gzip-compressed file"),
    (b"BZh", "a bzip2-compressed file (decompress it first: bunzip2)"),
    (b"\xfd7zXZ\x00", "an xz-compressed file (decompress it first: unxz)"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file (decompress it first: unzstd)"),
    (b"\x7fELF", "an executable (ELF binary)"),
    (b"\x89PNG", "a PNG image"),
    (b"%PDF", "a PDF document"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"PAR1", "a Parquet file"),
    (b"\x93NUMPY", "a NumPy array file"),
)


def _sniff_binary(data: bytes) -> str | None:
    """What ``data`` is when it starts with a known binary signature."""
    for magic, what in _SIGNATURES:
        if data.startswith(magic):
            return f"{what}, not a cProfile dump"
    if data[:1] == b"\x80" and len(data) > 1 and 2 <= data[1] <= 5:
        return f"a Python pickle (protocol {data[1]}), not a cProfile dump"
    if len(data) >= 16 and data[2:4] == b"\r\n" and data[4:8] in (b"\0\0\0\0", b"\1\0\0\0", b"\3\0\0\0"):
        return "a compiled Python module (.pyc), not a cProfile dump"
    return None


def _sniff_text(data: bytes) -> str | None:
    """A reason if ``data`` is text rather than a marshal dump."""
    head = data[:4096]
    if b"\0" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        if len(data) <= len(head):
            return None
        # a cut in the middle of a multi-byte sequence at the 4096 boundary
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return None
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    if not text or printable < 0.95 * len(text):
        return None
    stripped = text.lstrip()
    low = stripped[:200].lower()
    if stripped[:1] in ("{", "["):
        try:
            obj = json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            obj = None
        else:
            if isinstance(obj, dict) and "speedscope" in str(obj.get("$schema", "")):
                return "a speedscope JSON profile (not a cProfile dump; speedscope.app opens it)"
            trace = isinstance(obj, dict) and "traceEvents" in obj
            trace |= isinstance(obj, list) and bool(obj) and isinstance(obj[0], dict) and "ph" in obj[0]
            if trace:
                return "a Chrome trace-event JSON file (not a cProfile dump; viztracer/Perfetto open it)"
            return "a JSON file, not a cProfile dump"
        if stripped[:1] == "{" and "\n{" in text:
            return "a JSON-lines file, not a cProfile dump"
    if low.startswith(("<!doctype html", "<html")):
        return "an HTML file (pyinstrument's or another tool's HTML report), not a cProfile dump"
    if low.startswith("<?xml") or low.startswith("<svg"):
        return "an XML/SVG file, not a cProfile dump"
    if "events:" in text and ("fn=" in text or "creator:" in text or "# callgrind format" in text):
        return "a text file in callgrind format (yappi/pyprof2calltree output), not a cProfile dump"
    if "Flat profile" in text or "Call graph" in text or ("cumulative" in text and "self" in text):
        return "a text file that looks like GNU gprof output, not a cProfile dump"
    if "ncalls" in text and "tottime" in text:
        return "a text file that looks like printed pstats output, not a cProfile dump"
    if len(text) < 4:
        return f"not a cProfile dump: {len(data)} byte(s) of text ({_short(repr(text))})"
    return "a text file, not a cProfile dump"


def decode(data: bytes) -> dict[Any, Any]:
    """The pstats dict in ``data``; BadProfile with a reason otherwise."""
    if not data:
        raise BadProfile("empty file")
    reason = _sniff_binary(data)
    if reason:
        raise BadProfile(reason)
    if data[0] not in _MARSHAL_DICT:
        reason = _sniff_text(data)
        if reason:
            raise BadProfile(reason)
    hazard, at, count = _cdecode.marshal_check(data) if _cdecode is not None else _marshal_walk(data)
    if hazard == 1:
        raise BadProfile(
            f"corrupt marshal data: at byte {at} a tuple refers to itself before it is complete "
            "(Python's marshal would crash on it: CPython gh-148653)"
        )
    if hazard == 2:
        what = "truncated or corrupt" if data[0] in _MARSHAL_DICT else "corrupt marshal data"
        raise BadProfile(f"{what}: the length {count} at byte {at} runs past the end of the data")
    if hazard == 3:
        raise BadProfile(f"corrupt marshal data: nested more than {_MC_DEPTH} levels deep at byte {at}")
    try:
        obj = marshal.loads(data)
    except EOFError:
        if data[0] in _MARSHAL_DICT:
            raise BadProfile("truncated: the marshal data ends early (file cut short or still being written)") from None
        raise BadProfile(_binary(data)) from None
    except (ValueError, TypeError) as e:
        reason = _sniff_text(data)
        if reason:
            raise BadProfile(reason) from None
        if data[:2] == b"{(":
            # Python 2's marshal: a dict of plain 4-byte-counted tuples, no reference flags, str as bytes
            raise BadProfile(_PY2) from None
        if data[0] in _MARSHAL_DICT and "unknown type code" in str(e):
            raise BadProfile(
                f"a marshal dump this Python ({sys.version_info.major}.{sys.version_info.minor}) cannot read: "
                "written by a newer Python (re-read it with that version's pstats), or corrupt"
            ) from None
        raise BadProfile(_binary(data)) from None
    except MemoryError:
        raise BadProfile("corrupt marshal data: it asks for more memory than is available") from None
    if not isinstance(obj, dict):
        raise BadProfile(
            f"not a cProfile dump: a marshal dump of {_a(type(obj).__name__)}, not the dict cProfile writes"
        )
    if not obj:
        raise BadProfile("profile has no functions")
    return obj


# What marshal.loads must not be given: see marshal_check in _cdecode.c, which this walk mirrors (the C walk runs
# whenever the extension is built; this one otherwise).  Codes: 0 marshal.loads may read the bytes (or raises on
# its own), 1 a tuple refers to itself before it is complete (CPython gh-148653: marshal.loads crashes with SIGSEGV
# when it hashes one), 2 a length longer than the bytes that follow (marshal allocates it before reading), 3
# nesting deeper than marshal's limit.
_MS_DONE, _MS_OPEN_TUPLE, _MS_RESERVED = 0, 1, 2
_K_SEQ, _K_DICT, _K_CODE, _K_SLICE = 0, 1, 2, 3
_MC_DEPTH = 2000
# what each type code is to the walk: (action, size)
(_A_REF, _A_FIXED, _A_SHORT, _A_LEN, _A_SEQ, _A_SINGLE, _A_NULL, _A_LONG, _A_DICT, _A_CODE, _A_SLICE,
 _A_COMPLEX) = range(12)  # fmt: skip
_ACTIONS: dict[int, tuple[int, int]] = {
    **{ord(c): (_A_FIXED, n) for c, n in (("i", 4), ("g", 8), ("y", 16))},
    **{ord(c): (_A_SHORT, 0) for c in "fzZ"},
    **{ord(c): (_A_LEN, 0) for c in "stuaA"},
    **{ord(c): (_A_SEQ, 0) for c in ")([<>"},
    **{ord(c): (_A_SINGLE, 0) for c in "NS.FT"},
    ord("r"): (_A_REF, 0), ord("0"): (_A_NULL, 0), ord("l"): (_A_LONG, 0), ord("{"): (_A_DICT, 0),
    ord("c"): (_A_CODE, 0), ord(":"): (_A_SLICE, 0), ord("x"): (_A_COMPLEX, 0),
}  # fmt: skip
_I32 = struct.Struct("<i").unpack_from


def _marshal_walk(data: bytes) -> tuple[int, int, int]:
    """(code, offset, count) as ``_cdecode.marshal_check`` returns them, in Python."""
    end = len(data)
    refs = bytearray()
    stack: list[list[int]] = []  # [kind, left, slot]
    actions = _ACTIONS
    i32 = _I32
    p = 0
    while True:
        obj = p
        if p >= end:
            return 0, p, 0
        code = data[p]
        p += 1
        flag = code & 0x80
        t = code & 0x7F
        act, size = actions.get(t, (-1, 0))
        kind = -1
        n = 0
        slot = -1
        if act == _A_REF:
            if end - p < 4:
                return 0, p, 0
            n = i32(data, p)[0]
            p += 4
            if n < 0 or n >= len(refs) or refs[n] == _MS_RESERVED:
                return 0, p, 0
            if refs[n] == _MS_OPEN_TUPLE:
                return 1, obj, 0
        elif act == _A_FIXED:
            if end - p < size:
                return 0, p, 0
            p += size
            if flag:
                refs.append(_MS_DONE)
        elif act in (_A_SHORT, _A_COMPLEX):
            for _ in range(2 if act == _A_COMPLEX else 1):
                if end - p < 1 or end - p - 1 < data[p]:
                    return 0, p, 0
                p += 1 + data[p]
            if flag:
                refs.append(_MS_DONE)
        elif act == _A_SEQ:
            if t == 0x29:  # ')'
                if end - p < 1:
                    return 0, p, 0
                n = data[p]
                p += 1
            else:
                if end - p < 4:
                    return 0, p, 0
                n = i32(data, p)[0]
                p += 4
                if n < 0:
                    return 0, p, 0
            if n > end - p:
                return 2, obj, n
            if flag:
                if t == 0x28 or t == 0x29:  # '(' ')'
                    refs.append(_MS_OPEN_TUPLE if n else _MS_DONE)
                    slot = len(refs) - 1
                elif t == 0x3E and n:  # '>'
                    refs.append(_MS_RESERVED)
                    slot = len(refs) - 1
                else:
                    refs.append(_MS_DONE)
            if n:
                kind = _K_SEQ
        elif act == _A_LEN:
            if end - p < 4:
                return 0, p, 0
            n = i32(data, p)[0]
            p += 4
            if n < 0 or n > end - p:
                return 0, p, 0
            p += n
            if flag:
                refs.append(_MS_DONE)
        elif act == _A_DICT:
            if flag:
                refs.append(_MS_DONE)
            kind = _K_DICT
        elif act == _A_NULL:
            if not stack or stack[-1][0] != _K_DICT:
                return 0, p, 0
            stack.pop()
        elif act == _A_SINGLE:
            pass
        elif act == _A_LONG:
            if end - p < 4:
                return 0, p, 0
            n = i32(data, p)[0]
            p += 4
            if n == -(1 << 31):
                return 0, p, 0
            n = abs(n)
            if n * 2 > end - p:
                return 2, obj, n
            p += n * 2
            if flag:
                refs.append(_MS_DONE)
        elif act == _A_CODE:
            if flag:
                refs.append(_MS_RESERVED)
                slot = len(refs) - 1
            if end - p < 20:
                return 0, p, 0
            p += 20
            kind, n = _K_CODE, 11
        elif act == _A_SLICE:
            if flag:
                refs.append(_MS_RESERVED)
                slot = len(refs) - 1
            kind, n = _K_SLICE, 3
        else:
            return 0, p, 0
        if kind >= 0:
            if len(stack) >= _MC_DEPTH:
                return 3, obj, 0
            stack.append([kind, 0 if kind == _K_DICT else n, slot])
            continue
        while stack:
            f = stack[-1]
            if f[0] == _K_DICT:
                f[1] ^= 1
                break
            f[1] -= 1
            if f[0] == _K_CODE and f[1] == 3:
                if end - p < 4:
                    return 0, p, 0
                p += 4
                f[1] -= 1
            if f[1] > 0:
                break
            if f[2] >= 0:
                refs[f[2]] = _MS_DONE
            stack.pop()
        if not stack:
            return 0, p, 0


def _binary(data: bytes) -> str:
    return f"binary data of no known format (first bytes {data[:8].hex(' ')}), not a cProfile dump"


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


class _OddKey(Exception):
    """A function key pstats accepts but whose name is not a str (``profile``'s ``('profile', 0, <code>)``)."""


def _check_key(key: Any) -> FuncKey:
    if type(key) is tuple and len(key) == 3 and type(key[0]) is str and type(key[1]) is int and type(key[2]) is str:
        return key
    if type(key) is tuple and len(key) == 3 and isinstance(key[0], bytes):
        raise BadProfile(_PY2)
    if type(key) is tuple and len(key) == 3 and type(key[0]) is str and type(key[1]) is int:
        raise _OddKey
    raise BadProfile(f"wrong shape: function key {_short(repr(key))} is not (file, line, name)")


def key_text(name: Any) -> str:
    """The text of a function name that is not a str, as pstats prints it (``%s``) minus the object's address,
    so that it is the same in every file: ``python -m profile`` keys its root ``('profile', 0, <code object>)``."""
    return _ADDRESS.sub("", str(name))


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def normalize_keys(stats: dict[Any, Any]) -> dict[Any, Any]:
    """``stats`` with every (file, line, non-str name) key, as function and as caller, named by :func:`key_text`."""

    def norm(k: Any) -> Any:
        if type(k) is tuple and len(k) == 3 and type(k[2]) is not str and type(k[0]) is str and type(k[1]) is int:
            return (k[0], k[1], key_text(k[2]))
        return k

    out: dict[Any, Any] = {}
    for k, v in stats.items():
        if type(v) is tuple and len(v) == 5 and type(v[4]) is dict:
            v = (*v[:4], {norm(c): x for c, x in v[4].items()})
        nk = norm(k)
        if nk in out:
            raise BadProfile(f"two functions with the same name {_short(nk[2])!r} at {nk[0]}:{nk[1]}")
        out[nk] = v
    return out


def _short(text: str, limit: int = 80) -> str:
    """``text`` cut to about ``limit`` characters at a word boundary, with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut + "…"


def _numbers(values: Iterable[Any], what: str, integer: bool) -> np.ndarray:
    try:
        arr = np.array(values if isinstance(values, tuple | list) else list(values))
    except (ValueError, TypeError):  # a tuple among the numbers (corrupt data): numpy refuses the ragged shape
        raise BadProfile(f"wrong shape: {what} holds non-numbers") from None
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise BadProfile(f"wrong shape: {what} holds non-numbers")
    if integer:
        if arr.dtype.kind == "f":
            raise BadProfile(f"wrong shape: {what} holds non-integer call counts")
        # negative counts are unknown counts (pyinstrument writes -1): kept as written, never summed (UNKNOWN_COUNT)
        return arr.astype(np.int64, copy=False)
    arr = arr.astype(np.float64, copy=False)
    # negative times are valid: profile.Profile(bias=...) subtracts its calibration from every time
    if arr.size and not np.isfinite(arr).all():
        raise BadProfile(f"invalid numbers: {what} holds NaN or infinity")
    return arr


def add_dict(chunk: Chunk, slot: int, stats: dict[Any, Any]) -> tuple[int, int, float, str]:
    """Append one decoded pstats dict to ``chunk`` as profile ``slot``; returns (n_stats, n_edges, total_tt,
    profiler).  Files as cProfile writes them take :func:`_add_fast`; anything else (the ``profile`` module's bare
    caller counts, a merged file, bad numbers or shapes) the general path below, which also words the errors."""
    n_funcs = len(chunk.funcs)
    fast = _add_fast(chunk, slot, stats)
    if fast is not None:
        return fast
    chunk.forget(n_funcs)  # keys the fast path interned before it gave up
    return _add_general(chunk, slot, stats)


def _add_fast(chunk: Chunk, slot: int, stats: dict[Any, Any]) -> tuple[int, int, float, str] | None:
    """The common case in C-level passes only (no Python code per row): every entry a 5-tuple, every callers
    value a 4-tuple ``(nc, cc, tt, ct)``, every caller a function of the file, counts ints, times finite.  Numbers
    go through ``array`` (which refuses a float among counts and a non-number among times) straight into numpy;
    callers are resolved against a per-file index (their key tuples share their strings with the file's keys, so
    each comparison is by identity), and only the file's own keys are looked up in the chunk's index.  Returns
    None, having added no rows, when the file is anything else."""
    keys = list(stats)
    vals = list(stats.values())
    n = len(keys)
    try:
        if set(map(len, vals)) != {5}:
            return None
    except TypeError:
        return None
    cc, nc, tt, ct, callers = zip(*vals)
    if set(map(type, callers)) != {dict}:
        return None
    try:
        s_pc = np.frombuffer(array("q", cc), dtype=np.int64)
        s_nc = np.frombuffer(array("q", nc), dtype=np.int64)
        s_tt = np.frombuffer(array("d", tt), dtype=np.float64)
        s_ct = np.frombuffer(array("d", ct), dtype=np.float64)
    except (TypeError, OverflowError):
        return None
    del cc, nc, tt, ct
    ckeys = list(chain.from_iterable(callers))
    n_edges = len(ckeys)
    if n_edges:
        cvals = list(chain.from_iterable(map(dict.values, callers)))
        if set(map(type, cvals)) != {tuple} or set(map(len, cvals)) != {4}:
            return None
        local = dict(zip(keys, range(n)))
        try:
            caller_pos = np.fromiter(map(local.__getitem__, ckeys), dtype=np.intp, count=n_edges)
        except KeyError:  # a caller that is not a function of the file: the general path interns it
            return None
        ef = list(chain.from_iterable(cvals))
        del cvals
        try:
            e_nc = np.frombuffer(array("q", ef[0::4]), dtype=np.int64)
            e_cc = np.frombuffer(array("q", ef[1::4]), dtype=np.int64)
            e_tt = np.frombuffer(array("d", ef[2::4]), dtype=np.float64)
            e_ct = np.frombuffer(array("d", ef[3::4]), dtype=np.float64)
        except (TypeError, OverflowError):
            return None
        del ef
        if not (np.isfinite(e_tt).all() and np.isfinite(e_ct).all()):
            return None
    if not (np.isfinite(s_tt).all() and np.isfinite(s_ct).all()):
        return None
    index = chunk.index
    ids = list(map(index.get, keys))
    if None in ids:
        funcs = chunk.funcs
        for i, k in enumerate(ids):
            if k is None:
                key = keys[i]
                ids[i] = index[_check_key(key)] = len(funcs)
                funcs.append(key)
    id_arr = np.array(ids, dtype=np.int32)
    if n_edges:
        lens = np.fromiter(map(len, callers), dtype=np.intp, count=n)
        chunk.e_prof.append(np.full(n_edges, slot, dtype=np.int32))
        chunk.e_cols.append((id_arr[caller_pos], np.repeat(id_arr, lens), e_nc, e_cc, e_tt, e_ct))
    chunk.s_prof.append(np.full(n, slot, dtype=np.int32))
    chunk.s_cols.append((id_arr, s_nc, s_pc, s_tt, s_ct))
    # pstats.Stats.get_top_level_stats: a plain left-to-right sum (cumsum adds in order; sum() is pairwise)
    total_tt = float(np.cumsum(s_tt)[-1]) if n else 0.0
    return n, n_edges, total_tt, detect_profiler(stats, s_nc, s_pc, False)


def _add_general(chunk: Chunk, slot: int, stats: dict[Any, Any]) -> tuple[int, int, float, str]:
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
    # no check of pcalls <= ncalls: yappi writes (ncall, nactualcall) the other way round, and pstats adds them as
    # they are

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
    caller_format = "none"
    if n_edges:
        caller = [get(k, -1) for k in caller_keys]
        if -1 in caller:
            caller = [fid(k) for k in caller_keys]
        caller_ids = np.array(caller, dtype=np.int32)
        callee_ids = np.array(callee, dtype=np.int32)
        try:
            tuples = set(map(len, caller_vals)) == {4} and all(type(v) is tuple for v in caller_vals[:1])
        except TypeError:  # a bare count among them
            tuples = False
        if tuples:
            e_nc, e_cc, e_tt, e_ct = zip(*caller_vals)
            e = (
                caller_ids,
                callee_ids,
                _numbers(e_nc, "caller call counts", True),
                _numbers(e_cc, "caller primitive call counts", True),
                _numbers(e_tt, "caller tottime", False),
                _numbers(e_ct, "caller cumtime", False),
            )
            caller_format = "tuple"
        elif not any(type(v) is tuple for v in caller_vals):
            # pure-Python `profile` module: callers map to a bare call count; times unknown (NaN)
            counts = _numbers(caller_vals, "caller call counts", True)
            nan = np.full(n_edges, np.nan)
            e = (caller_ids, callee_ids, counts, counts.copy(), nan, nan)
            caller_format = "bare"
        else:
            # both (a file pstats merged from `profile` and cProfile files that share no call): per entry
            bare = np.array([type(v) is not tuple for v in caller_vals])
            if any(len(v) != 4 for v in caller_vals if type(v) is tuple):
                raise BadProfile("wrong shape: a caller entry is not (nc, cc, tt, ct)")
            parts = [v if type(v) is tuple else (v, v, 0.0, 0.0) for v in caller_vals]
            e_nc, e_cc, e_tt, e_ct = zip(*parts)
            e_tt_a = _numbers(e_tt, "caller tottime", False)
            e_ct_a = _numbers(e_ct, "caller cumtime", False)
            e_tt_a[bare] = np.nan
            e_ct_a[bare] = np.nan
            e = (
                caller_ids,
                callee_ids,
                _numbers(e_nc, "caller call counts", True),
                _numbers(e_cc, "caller primitive call counts", True),
                e_tt_a,
                e_ct_a,
            )
            caller_format = "mixed"
        chunk.e_prof.append(np.full(n_edges, slot, dtype=np.int32))
        chunk.e_cols.append(e)

    n = len(ids)
    chunk.s_prof.append(np.full(n, slot, dtype=np.int32))
    chunk.s_cols.append((np.array(ids, dtype=np.int32), s_nc, s_pc, s_tt, s_ct))
    # pstats.Stats.get_top_level_stats: a plain left-to-right sum
    total_tt = 0.0
    for x in tt:
        total_tt += x
    if caller_format == "mixed":
        return n, n_edges, float(total_tt), "unknown"  # a merge of several tools' files
    return n, n_edges, float(total_tt), detect_profiler(stats, s_nc, s_pc, caller_format == "bare")


#: The tools whose files :func:`detect_profiler` tells apart (the ``profiler`` column of ``ps.profiles``).
PROFILERS = ("cprofile", "profile", "yappi", "pyinstrument", "unknown")


def detect_profiler(keys: dict[Any, Any] | list[Any], nc: np.ndarray, pc: np.ndarray, bare_callers: bool) -> str:
    """Which tool wrote a profile, from its content alone (see docs/loading.md, "Which tool wrote a file"):

    * ``profile`` — the pure-Python ``profile`` module: callers map to bare counts, or its ``('profile', 0,
      'profiler')`` root;
    * ``pyinstrument`` — a sampling profiler: call counts unknown, written as -1;
    * ``yappi`` — writes (ncall, nactualcall) where pstats expects (primitive, total): primitive > total under
      recursion;
    * ``cprofile`` — cProfile/``_lsprof``: C functions keyed ``('~', 0, '<built-in …>')``/``"<method '…"``;
    * ``unknown`` — none of these signs (e.g. a yappi profile without recursion, or a merged file).
    """
    root = ("profile", 0, "profiler") in keys  # a dict: one lookup
    negative = bool(len(nc)) and (nc.min() < 0 or pc.min() < 0)
    builtin = any(k[0] == "~" and k[1] == 0 and k[2].startswith(("<built-in", "<method ")) for k in keys)
    return profiler_of(bare_callers or root, negative, bool((pc > nc).any()), builtin)


def profiler_of(profile_module: bool, negative_counts: bool, primitive_above_total: bool, builtin: bool) -> str:
    """:func:`detect_profiler`'s rule, from its signs (the compiled decoder reports them as flags)."""
    if profile_module:
        return "profile"
    if negative_counts:
        return "pyinstrument"
    if primitive_above_total:
        return "yappi"
    return "cprofile" if builtin else "unknown"


def _profiler_of_flags(flags: int) -> str:
    c = _cdecode
    return profiler_of(
        bool(flags & c.FLAG_PROFILE_ROOT),
        bool(flags & c.FLAG_NEGATIVE),
        bool(flags & c.FLAG_PC_GT_NC),
        bool(flags & c.FLAG_BUILTIN),
    )


class Keys:
    """Function keys interned across the chunks one thread parses in turn: a key met in an earlier chunk is not
    sent (or re-mapped by the merge) again.  Each packed chunk carries the keys new since the thread's previous
    chunk, from local id ``funcs_base`` on; the merge must take one thread's chunks in the order they were parsed."""

    _ids = itertools.count()

    def __init__(self) -> None:
        self.id = next(Keys._ids)
        self.funcs: list[FuncKey] = []
        self.index: dict[FuncKey, int] = {}
        self.interner = _cdecode.Interner(self.funcs, self.index) if _cdecode is not None else None
        self.sent = 0


def stat_sigs(paths: list[str], sidecars: list[str | None]) -> np.ndarray:
    """(size, mtime_ns) of each of ``paths`` and of its sidecar as an ``(n, 4)`` int64 array, -1 where a file is
    missing or its sidecar is None (known absent); stat'ed in C where the decoder is built."""
    raw = _cdecode.stat_sigs(paths, sidecars) if _cdecode is not None else None
    if raw is not None:
        return np.frombuffer(raw, dtype=np.int64).reshape(len(paths), 4)
    return np.array([_stat(p) + _stat(s) for p, s in zip(paths, sidecars)], dtype=np.int64).reshape(len(paths), 4)


def stat_sigs_started(paths: list[str], sidecars: list[str | None]) -> Callable[[], np.ndarray]:
    """:func:`stat_sigs`, started now in threads of their own where the decoder is built (``_cdecode.stat_start``:
    the system calls run while the caller goes on with Python); call the result for the array."""
    start = getattr(_cdecode, "stat_start", None)
    if start is None:
        return lambda: stat_sigs(paths, sidecars)
    job = start(paths, sidecars)
    return lambda: np.frombuffer(job.wait(), dtype=np.int64).reshape(len(paths), 4)


def names_blob(paths: list[str], sidecars: list[str | None]) -> bytes:
    """The names of ``paths`` and of their sidecars as one bytes object, as :func:`stat_names_started` takes them:
    each file's name then its sidecar's, encoded as ``os.stat`` encodes a str, each ended by a NUL; a sidecar of
    None as an empty name."""
    return b"".join(
        os.fsencode(p) + b"\0" + (b"" if s is None else os.fsencode(s)) + b"\0" for p, s in zip(paths, sidecars)
    )


def stat_names_started(names: bytes, n: int) -> Callable[[], np.ndarray]:
    """:func:`stat_sigs_started` of the ``n`` files named in ``names`` (:func:`names_blob`): a kept walk hands
    the stat calls its files' names without a Python string for each of them."""
    start = getattr(_cdecode, "stat_start", None)
    if start is None:
        parts = names.split(b"\0")
        paths = [os.fsdecode(p) for p in parts[0 : 2 * n : 2]]
        sides = [os.fsdecode(s) if s else None for s in parts[1 : 2 * n : 2]]
        return lambda: stat_sigs(paths, sides)
    job = start(names, n)
    return lambda: np.frombuffer(job.wait(), dtype=np.int64).reshape(n, 4)


def _stat(path: str | None) -> tuple[int, int]:
    if path is None:
        return -1, -1
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1
    return st.st_size, st.st_mtime_ns


def file_sizes(paths: list[str]) -> np.ndarray:
    """The size in bytes of each of ``paths`` (-1 where it cannot be stat'ed): what sizes the columns of a load
    before the files are read."""
    return stat_sigs(paths, [None] * len(paths))[:, 0].copy()


def fits_int32(values: np.ndarray) -> bool:
    """Whether integer ``values`` (call counts) fit in int32: such columns are kept at half the bytes (exact sums
    use int64)."""
    return values.dtype == np.int32 or not len(values) or (values.max() <= _INT32_MAX and values.min() >= _INT32_MIN)


def parse_files(paths: list[str], opener: Opener = open, keys: Keys | None = None) -> dict[str, Any]:
    """Parse ``paths`` into one packed chunk. Never raises for a bad file: its reason goes in ``outcomes``.
    ``opener`` opens a path (default: local files; the scale-out ingest passes an fsspec opener); ``keys``
    carries the function keys of the chunks this thread parsed before (default: this chunk's own)."""
    own = keys if keys is not None else Keys()
    chunk = Chunk(funcs=own.funcs, index=own.index, interner=own.interner)
    # marshal builds only acyclic containers (dicts of tuples): the cyclic collector has nothing to find in them,
    # yet its passes over the millions it allocates cost ~15% of a parse
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        _parse_into(chunk, paths, opener)
    finally:
        if was_enabled:
            gc.enable()
    packed = chunk.packed()
    first = keys.sent if keys is not None else 0
    # the name, label, line and file of each function sent, as Arrow buffers made in C (None: made by the merge from the
    # keys, e.g. where a name holds a surrogate)
    packed["texts"] = own.interner.texts(first, len(own.funcs)) if own.interner is not None else None
    if keys is not None:
        packed["funcs"] = keys.funcs[keys.sent :]
        packed["funcs_base"], packed["keys_id"] = keys.sent, keys.id
        keys.sent = len(keys.funcs)
    return packed


_NOT_IN_RUNS = (*TEMP_SUFFIXES, ".gz")


def _parse_into(chunk: Chunk, paths: list[str], opener: Opener) -> None:
    fast = (
        opener is open
        and chunk.interner is not None
        and hasattr(chunk.interner, "add_paths")
        and not os.environ.get(CRASH_ENV)  # the test hook stops at a file by name: the per-file path below
    )
    i = 0
    while i < len(paths):
        if fast:
            # the compiled decoder reads and decodes a run of files without the GIL, up to one it leaves to the
            # path below (compressed, not cProfile's shape, unreadable: that path words why); files named as
            # temporary or gzip-compressed are not handed to it at all (it would read them only to stop there)
            j = i
            while j < len(paths) and not paths[j].endswith(_NOT_IN_RUNS):
                j += 1
            if j > i:
                slot = len(chunk.outcomes)
                got = chunk.interner.add_paths(tuple(map(os.fsencode, paths[i:j])), 0, slot)
                for path, (n, ne, total_tt, flags) in zip(paths[i:], got):
                    chunk.outcomes.append((path, None, n, ne, total_tt, _profiler_of_flags(flags)))
                i += len(got)
                if i >= len(paths):
                    break
        _parse_one(chunk, paths[i], opener)
        i += 1


def _parse_one(chunk: Chunk, path: str, opener: Opener) -> None:
    """One file by the Python path (the compiled decoder for its bytes where it can take them)."""
    slot = len(chunk.outcomes)
    snapshot: tuple[int, int, int] | None = None
    try:
        if path.endswith(TEMP_SUFFIXES):
            raise BadProfile("temporary file, still being written (skipped)")
        _test_hook(path)
        data, compressed = _read(path, opener)
        if chunk.interner is not None and data[:1] in (b"{", b"\xfb"):
            got = chunk.interner.add(data, slot)
            if got is not None:
                n, ne, total_tt, flags = got
                chunk.outcomes.append((path, None, n, ne, total_tt, _profiler_of_flags(flags)))
                return
        chunk.flush()
        # so that a file failing half-way leaves no rows behind
        snapshot = (len(chunk.funcs), len(chunk.s_cols), len(chunk.e_cols))
        stats = _decode_read(data, compressed)
        try:
            n, ne, total_tt, profiler = add_dict(chunk, slot, stats)
        except _OddKey:
            _rollback(chunk, *snapshot)
            n, ne, total_tt, profiler = add_dict(chunk, slot, normalize_keys(stats))
        if chunk.interner is not None:
            chunk.interner.register(snapshot[0])  # its new keys, for the compiled decoder to find
        chunk.outcomes.append((path, None, n, ne, total_tt, profiler))
    except (BadProfile, OSError, RecursionError, MemoryError) as e:
        if snapshot is not None:
            _rollback(chunk, *snapshot)
        chunk.outcomes.append((path, describe_error(e), 0, 0, math.nan, ""))


def _rollback(chunk: Chunk, n_funcs: int, n_s: int, n_e: int) -> None:
    chunk.forget(n_funcs)
    del chunk.s_cols[n_s:], chunk.s_prof[n_s:]
    del chunk.e_cols[n_e:], chunk.e_prof[n_e:]


#: Test hook: a parser process whose environment names a file in this variable dies when it reaches that file
#: (as a marshal bug or an OOM kill would); tests prove that the loader names it and loses nothing else.
CRASH_ENV = "CELERYLAB_TEST_CRASH_ON"


def _test_hook(path: str) -> None:
    target = os.environ.get(CRASH_ENV)
    if target and path == target and os.environ.get("CELERYLAB_PARSER_PROCESS") == "1":
        os._exit(70)


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
