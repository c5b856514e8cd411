"""The import graph of the package, read from the source (every import, at any depth: module level, inside
functions, under ``TYPE_CHECKING``): imports only go down the layers of docs/architecture.md, and no two modules
import each other, directly or through others."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "celerylab"

#: Layers, lowest first.  A module may import modules of a strictly lower layer, and modules of its own package
#: (``celerylab.core.*`` among themselves) — but never in a cycle.  Keys are module names or package prefixes.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("celerylab._version", "celerylab.errors"),
    ("celerylab._files", "celerylab._sqltext", "celerylab._io"),
    ("celerylab.capture", "celerylab.core", "celerylab.fmt", "celerylab.testing"),
    ("celerylab.analysis",),
    ("celerylab.charts", "celerylab.callgraph", "celerylab.scale"),
    ("celerylab.report", "celerylab.widgets"),
    ("celerylab.profileset",),
    ("celerylab",),
    ("celerylab.demo",),
    ("celerylab.cli",),
)  # fmt: skip

#: Third-party packages a layer must never import (the light sides stay light).
FORBIDDEN: Mapping[str, tuple[str, ...]] = {
    "celerylab.capture": ("pandas", "numpy", "pyarrow", "scipy", "plotly", "ipywidgets"),
    "celerylab._files": ("pandas", "numpy", "celery", "plotly", "ipywidgets"),
    "celerylab.errors": ("pandas", "numpy", "celery", "plotly", "ipywidgets"),
    "celerylab._io": ("pandas", "numpy", "celery", "plotly", "ipywidgets"),
    "celerylab._sqltext": ("pandas", "numpy", "celery", "plotly", "ipywidgets"),
    "celerylab.core": ("plotly", "ipywidgets", "celery", "kombu", "dask", "distributed", "fsspec", "s3fs"),
    "celerylab.analysis": ("plotly", "ipywidgets", "celery", "kombu", "dask", "distributed", "fsspec", "s3fs"),
    "celerylab.scale": ("plotly", "ipywidgets", "celery", "kombu"),
    "celerylab.fmt": ("plotly", "ipywidgets", "celery", "dask", "distributed", "fsspec", "s3fs"),
    "celerylab.charts": ("ipywidgets", "celery"),
    "celerylab.report": ("ipywidgets", "celery"),
}


# ---------------------------------------------------------------------------------------------- the checker
def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under ``root``: dotted name -> file."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """``(imported module, line)`` for every import in the file, resolved to a known module where the import
    names one (``from . import db`` is the module ``….db``), else to the named package or a third-party name."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                sub = f"{target}.{a.name}"
                yield (sub if sub in known else target), node.lineno


def layer_of(module: str, layers: tuple[tuple[str, ...], ...]) -> tuple[int, str]:
    """``(rank, the layer key that matched)``: the longest key that is the module or a package above it."""
    best = (-1, "")
    for rank, keys in enumerate(layers):
        for k in keys:
            if (module == k or module.startswith(k + ".")) and len(k) > len(best[1]):
                best = (rank, k)
    return best


def violations(
    root: Path, package: str, layers: tuple[tuple[str, ...], ...], forbidden: Mapping[str, tuple[str, ...]]
) -> list[str]:
    """Every import that goes up or sideways across the layers, every forbidden third-party import, every module
    outside the layer map, and every import cycle (as the list of modules in it)."""
    mods = modules(root, package)
    known = set(mods)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    problems = []
    for m, path in mods.items():
        rank, key = layer_of(m, layers)
        if rank < 0:
            problems.append(f"{m}: not in any layer")
            continue
        for target, line in imports(m, path, known):
            top = target.split(".")[0]
            if top != package:
                for k, bad in forbidden.items():
                    if (m == k or m.startswith(k + ".")) and top in bad:
                        problems.append(f"{path.name}:{line}: {m} imports {target} (forbidden in {k})")
                continue
            if target not in known:
                problems.append(f"{path.name}:{line}: {m} imports {target}, which does not exist")
                continue
            graph[m].add(target)
            t_rank, t_key = layer_of(target, layers)
            same_package = t_key == key and key != package
            if not (t_rank < rank or same_package):
                problems.append(f"{path.name}:{line}: {m} (layer {rank}) imports {target} (layer {t_rank})")
    problems += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return problems


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# -------------------------------------------------------------------------------------------------- tests
def test_the_package_imports_only_down_the_layers_and_has_no_cycle():
    assert violations(PACKAGE, "celerylab", LAYERS, FORBIDDEN) == []


def test_every_module_is_in_a_layer_and_the_map_names_real_modules():
    mods = modules(PACKAGE, "celerylab")
    assert all(layer_of(m, LAYERS)[0] >= 0 for m in mods)
    keys = [k for layer in LAYERS for k in layer]
    assert [k for k in keys if not any(m == k or m.startswith(k + ".") for m in mods)] == []


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A small package laid out like celerylab, with one upward import, one cycle and one forbidden import."""
    root = tmp_path / "pkg"
    files = {
        "__init__.py": "",
        "errors.py": "",
        "core/__init__.py": "",
        "core/a.py": "from . import b\n",
        "core/b.py": "def f():\n    from .a import x  # a function-level import closes the cycle\n",
        "core/c.py": "def g():\n    from ..analysis import top  # upward\n",
        "analysis/__init__.py": "from ..core import a\ntop = 1\n",
        "capture/__init__.py": "import pandas\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_checker_catches_a_planted_upward_import_a_cycle_and_a_forbidden_import(planted):
    layers = (("pkg.errors",), ("pkg.core", "pkg.capture"), ("pkg.analysis",), ("pkg",))  # core is layer 1
    found = violations(planted, "pkg", layers, {"pkg.capture": ("pandas",)})
    assert "c.py:2: pkg.core.c (layer 1) imports pkg.analysis (layer 2)" in found
    assert "import cycle: pkg.core.a -> pkg.core.b" in found
    assert "__init__.py:1: pkg.capture imports pandas (forbidden in pkg.capture)" in found
    assert len(found) == 3, found


def test_the_embedded_default_never_imports_the_scale_out_stack():
    """``import celerylab``, the loader and ProfileSet stay free of dask/distributed/fsspec/s3fs (only
    ``celerylab.scale`` and the commands that use it import them, when called)."""
    import subprocess

    code = (
        "import sys, celerylab, celerylab.core, celerylab.core.load, celerylab.profileset, celerylab.analysis, "
        "celerylab.cli; celerylab.load; celerylab.open_dataset; "
        "print(sorted(m for m in ('dask', 'distributed', 'fsspec', 's3fs') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
