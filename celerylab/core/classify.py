"""Which module a profiled function belongs to, and what kind of code it is.

``kind`` is one of ``builtin`` (C functions, file ``~``), ``stdlib``, ``third-party`` (site-/dist-packages) or
``app``.  Paths are judged against the worker's recorded ``sys_prefixes`` (from the sidecars) where there are
any, so a profile taken on another machine is classified as it was there, and against this interpreter's
otherwise.
"""

from __future__ import annotations

import functools
import re
import sys
import sysconfig
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

KINDS = ("builtin", "stdlib", "third-party", "app")
#: this package: its frames are named ``celerylab.…`` even when the profile comes from another machine
OWN_PACKAGE = "celerylab"

_SITE = re.compile(r"[/\\](?:site|dist)-packages[/\\]")
_PYLIB = re.compile(r"[/\\]lib(?:64)?[/\\]python\d+(?:\.\d+)*t?[/\\]")
# "<built-in method time.sleep>", "<built-in method _sqlite3.connect>", "<method 'execute' of 'sqlite3.Cursor' objects>"
_BUILTIN_MOD = re.compile(r"<built-in (?:method|function) (?P<mod>[\w.]+?)\.\w+>")
_METHOD_OF = re.compile(r"<method '\w+' of '(?P<cls>[\w.]+)' objects>")
# a Python function that cProfile saw called from C, e.g. the cursor() of capture's sqlite3 hook, which sqlite3's
# C methods call: "<function _hook_sqlite3.<locals>.TracedMixin.cursor at 0x7f…>" is the library it wraps
_CAPTURE_HOOK = re.compile(r"<function _hook_(?P<lib>\w+)\.<locals>\.")


@functools.cache
def default_prefixes() -> tuple[str, ...]:
    """This interpreter's prefixes and stdlib folders (fixed for the process; ``sysconfig.get_paths`` takes 0.1 ms)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for key in ("stdlib", "platstdlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            paths.add(p)
    return tuple(sorted(paths))


def _module_from_path(path: str, roots: Iterable[str]) -> str:
    p = path.replace("\\", "/")
    m = _SITE.search(p)
    if m:
        rel = p[m.end() :]
    else:
        m = _PYLIB.search(p)
        if m:
            rel = p[m.end() :]
        else:
            rel = ""
            for root in roots:
                r = root.rstrip("/") + "/"
                if p.startswith(r) and len(r) > 1:
                    rel = p[len(r) :]
                    break
            if not rel:
                # a path from another machine: celerylab's own frames (the capture's wrappers, the demo) keep their
                # package, so the capture is known as instrumentation wherever the profile was taken
                i = p.rfind(f"/{OWN_PACKAGE}/")
                rel = p[i + 1 :] if i >= 0 else p.rsplit("/", 1)[-1]
    if rel.endswith(".py"):
        rel = rel[:-3]
    parts = [x for x in rel.split("/") if x]
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.lru_cache(maxsize=1 << 16)
def _builtin_module(name: str) -> str:
    m = _BUILTIN_MOD.match(name)
    if m:
        mod = m.group("mod")
        return mod.lstrip("_") if mod.startswith("_") and mod[1:] in {"sqlite3", "json", "pickle", "socket"} else mod
    m = _METHOD_OF.match(name)
    if m:
        cls = m.group("cls")
        return cls.rsplit(".", 1)[0] if "." in cls else "builtins"
    m = _CAPTURE_HOOK.match(name)
    if m:
        return m.group("lib")
    return "builtins"


def classify(files: Sequence[str] | pd.Series, names: Sequence[str] | pd.Series, prefixes: Iterable[str] = ()
             ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``(module, kind)`` arrays for functions given by ``files``/``names``."""
    c = classify_factorized(files, names, prefixes)
    return np.array(c.modules, dtype=object)[c.module_codes], np.array(KINDS, dtype=object)[c.kind_codes]


class Classified(NamedTuple):
    """Each function's file, module and kind, factorized: ``files[file_codes[i]]`` is function i's file,
    ``modules[module_codes[i]]`` its module, ``KINDS[kind_codes[i]]`` its kind."""

    file_codes: np.ndarray
    files: list[str]
    module_codes: np.ndarray
    modules: list[str]
    kind_codes: np.ndarray


def classify_factorized(files: Sequence[str] | pd.Series, names: Sequence[str] | pd.Series,
                        prefixes: Iterable[str] = ()) -> Classified:  # fmt: skip
    """Module and kind of each function.  Each distinct source file is judged once (a file's module and kind do not
    depend on the function), and each distinct builtin name once."""
    distinct: dict[str, int] = {}  # each file's position among the distinct files (what pd.factorize gives, faster)
    file_codes = np.fromiter((distinct.setdefault(f, len(distinct)) for f in files), dtype=np.int32, count=len(files))
    name_list = names if isinstance(names, list) else np.asarray(names, dtype=object)
    return classify_codes(list(distinct), file_codes, lambda rows: [name_list[i] for i in rows.tolist()], prefixes)


def classify_codes(
    files: list[str], file_codes: np.ndarray, names_at: Callable[[np.ndarray], list[str]], prefixes: Iterable[str] = ()
) -> Classified:
    """:func:`classify_factorized` of functions whose files are factorized already: function i's file is
    ``files[file_codes[i]]`` (distinct files, in order of first appearance); ``names_at(rows)`` gives the names of
    the functions at ``rows`` (only builtins' names are asked for)."""
    prefixes = sorted({p for p in prefixes if p} or default_prefixes(), key=len, reverse=True)
    roots = sorted({p for p in sys.path if p}, key=len, reverse=True)
    memo = _judgments(tuple(prefixes), tuple(roots))
    if len(memo) > _MEMO_FILES:
        memo.clear()
    judged = [
        ("", "builtin") if f == "~" else memo.get(f) or memo.setdefault(f, _classify_file(f, prefixes, roots))
        for f in files
    ]
    module_of: dict[str, int] = {}  # each distinct module's code
    file_module = np.array([module_of.setdefault(m, len(module_of)) for m, _ in judged] or [0], dtype=np.int32)
    module_codes = file_module[file_codes]
    kind_codes = np.array([KINDS.index(k) for _, k in judged] or [0], dtype=np.int8)[file_codes]
    if "~" in files:  # builtins: the module is in the name
        builtin = np.flatnonzero(file_codes == files.index("~"))
        seen: dict[str, int] = {}
        module_codes[builtin] = [
            seen[n] if n in seen else seen.setdefault(n, module_of.setdefault(_builtin_module(n), len(module_of)))
            for n in names_at(builtin)
        ]
    return Classified(file_codes, files, module_codes, list(module_of), kind_codes)


_MEMO_FILES = 200_000  # files whose judgment a process keeps, per (prefixes, sys.path)


@functools.lru_cache(maxsize=8)
def _judgments(prefixes: tuple[str, ...], roots: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """The ``(module, kind)`` of each source file judged so far against these prefixes and ``sys.path`` roots: a
    file's judgment depends on nothing else, and loading the same folder again (a notebook re-run) judges its
    files again otherwise (the regular expressions: ≈ 2 ms for 550 files)."""
    return {}


def label(file: str, line: int, name: str) -> str:
    """A function's label, as pstats prints it (``pstats.func_std_string``): ``file:line(name)``, and a builtin
    (file ``~``, line 0) by its name, ``{name}`` where the name is in angle brackets."""
    if file == "~" and line == 0:
        return f"{{{name[1:-1]}}}" if name.startswith("<") and name.endswith(">") else name
    return f"{file}:{line}({name})"


def _classify_file(f: str, prefixes: list[str], roots: list[str]) -> tuple[str, str]:
    """``(module, kind)`` of the functions of the source file ``f``."""
    p = f.replace("\\", "/")
    if _SITE.search(p):
        kind = "third-party"
    elif _PYLIB.search(p) and any(p.startswith(x.rstrip("/") + "/") for x in prefixes):
        kind = "stdlib"
    elif p.startswith("<frozen "):
        return p[len("<frozen ") : -1], "stdlib"
    else:
        kind = "app"
    return _module_from_path(p, roots), kind
