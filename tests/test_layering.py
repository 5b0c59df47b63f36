"""Layers point down: every project module's imports (read with ``ast``, function-local and ``TYPE_CHECKING``
ones included) go to its own layer or a lower one, and no two modules (by the imports that run), nor two
packages, import each other.

The layers, low to high: the plain components (``lit_models/components``, no Lightning) < ``core`` (what
several layers need) < ``lit_models``, ``datamodules``, ``callbacks`` < ``cli`` < ``train.py``, ``scripts``,
``studies``, ``bench``. A new top-level package fails here until it is given a layer.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

from tests.cli_helpers import ROOT

LAYERS = {
    "lit_models.components": 0,
    "core": 1,
    "lit_models": 2, "datamodules": 2, "callbacks": 2,
    "cli": 3,
    "train": 4, "scripts": 4, "studies": 4, "bench": 4,
}
NOT_SOURCE = {"tests", "build", "dist"}  # tests may import anything


def _source_files() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*.py")):
        top = path.relative_to(ROOT).parts[0]
        if top not in NOT_SOURCE and not top.startswith(".") and not top.endswith(".egg-info"):
            yield path


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in _source_files()}


def _project_module(name: str) -> str | None:
    """The project module an import of ``name`` loads (its longest project prefix), or None (third party)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in MODULES:
            return ".".join(parts[:end])
    return None


def _import_nodes(nodes: Iterable[ast.AST], type_checking: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement below ``nodes``, and whether it sits under ``if TYPE_CHECKING:`` (never run)."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, type_checking
        elif isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            yield from _import_nodes(node.body, True)
            yield from _import_nodes(node.orelse, type_checking)
        else:
            yield from _import_nodes(ast.iter_child_nodes(node), type_checking)


def _imports(module: str, *, with_type_checking: bool = True) -> Iterator[tuple[int, str]]:
    """(line, project module) for every import in ``module``; ``from pkg import sub`` counts as ``pkg.sub``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node, type_checking in _import_nodes([ast.parse(path.read_text(), str(path))]):
        if type_checking and not with_type_checking:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = _absolute(node, package)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for target in targets:
            if (found := _project_module(target)) and found != module:
                yield node.lineno, found


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """``from ..x import y`` inside ``package`` -> the absolute name of ``..x``."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def _layer_key(module: str) -> str:
    """The most specific LAYERS entry that ``module`` belongs to."""
    return max((key for key in LAYERS if module == key or module.startswith(key + ".")), key=len)


def _edges(*, with_type_checking: bool = True) -> dict[str, dict[str, int]]:
    return {m: {target: line for line, target in _imports(m, with_type_checking=with_type_checking)} for m in MODULES}


def test_every_top_level_package_has_a_layer() -> None:
    unplaced = sorted({m.split(".")[0] for m in MODULES} - set(LAYERS))
    assert not unplaced, f"give these a layer in LAYERS: {unplaced}"


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{MODULES[m].relative_to(ROOT)}:{line} ({_layer_key(m)}, layer {LAYERS[_layer_key(m)]}) imports {t} ({_layer_key(t)}, layer {LAYERS[_layer_key(t)]})"
        for m, targets in _edges().items() for t, line in targets.items()
        if LAYERS[_layer_key(t)] > LAYERS[_layer_key(m)]
    ]
    assert not upward, "imports pointing up:\n" + "\n".join(upward)


def test_no_two_modules_import_each_other() -> None:
    """Imports that run, at the top or in a function. One under ``if TYPE_CHECKING:`` (an annotation's type) never
    runs, so it is the way out for a module that needs another's type while that one imports it; it still
    counts for layers."""
    edges = _edges(with_type_checking=False)
    mutual = sorted(
        f"{MODULES[a].relative_to(ROOT)}:{edges[a][b]} <-> {MODULES[b].relative_to(ROOT)}:{edges[b][a]}"
        for a in edges for b in edges[a] if a < b and a in edges.get(b, {})
    )
    assert not mutual, "modules importing each other:\n" + "\n".join(mutual)


def test_no_two_packages_import_each_other() -> None:
    """Peers of one layer may lean on each other one way only (callbacks on datamodules, say), never both."""
    between: dict[tuple[str, str], str] = {}
    for m, targets in _edges().items():
        for t, line in targets.items():
            if _layer_key(m) != _layer_key(t):
                between.setdefault((_layer_key(m), _layer_key(t)), f"{MODULES[m].relative_to(ROOT)}:{line} imports {t}")
    both = sorted(f"{between[(a, b)]} | {between[(b, a)]}" for a, b in between if a < b and (b, a) in between)
    assert not both, "packages importing each other:\n" + "\n".join(both)
