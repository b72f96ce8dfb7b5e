"""The shape of the package, from its source: no import cycles (imports inside functions and under
``if TYPE_CHECKING:`` count), the layers of pyproject.toml's import-linter contract, at most 10 modules
at the root, none over 400 lines, and a CLI that starts without the heavy libraries (torch, open_clip,
faiss, PIL, numpy), whatever the module layout.

For what ``mmcli --help`` loads, only imports run at import time count: module level, including inside
``if``/``try``/``with`` blocks and class bodies, but not inside functions and not under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mmcli"
HEAVY = ("torch", "torchvision", "open_clip", "faiss", "PIL", "numpy")


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_nodes(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of ``body`` that run when the module is imported."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue  # runs when called, not when imported
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_time_nodes(node.orelse)
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):  # class, if, try, with, ...
                yield from _import_time_nodes(getattr(node, field, []))


def _all_import_nodes(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of ``body``: inside functions and under TYPE_CHECKING too."""
    for node in body:
        yield from (n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom)))


def _imported_names(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """Absolute names of what ``node`` imports: modules, and ``package.name`` for each from-import."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([node.module] if node.module else []))
    yield base
    yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


class Graph:
    """mmcli's modules, their import-time imports of each other, and of everything else."""

    def __init__(self, package: Path = PACKAGE, every_import: bool = False) -> None:
        """``every_import``: imports inside functions and under TYPE_CHECKING count too."""
        self.files = {_module_name(p, package): p for p in sorted(package.rglob("*.py"))}
        nodes = _all_import_nodes if every_import else _import_time_nodes
        self.internal: dict[str, set[str]] = {}
        self.external: dict[str, set[str]] = {}
        for module, path in self.files.items():
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            is_package = path.name == "__init__.py"
            internal, external = set(), set()
            for node in nodes(tree.body):
                for name in _imported_names(module, is_package, node):
                    if name.split(".")[0] != "mmcli":
                        external.add(name.split(".")[0])
                        continue
                    # importing a.b.c runs a and a.b first; the importer's own parents already ran
                    for target in self._with_parents(name):
                        if target != module and not module.startswith(target + "."):
                            internal.add(target)
            self.internal[module], self.external[module] = internal, external

    def _with_parents(self, name: str) -> Iterator[str]:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            if candidate in self.files:  # ``from pkg import function`` names no module: skipped
                yield candidate

    def cycles(self) -> list[list[str]]:
        """One cycle per strongly connected component of more than one module (Tarjan)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        found: list[list[str]] = []

        def visit(v: str) -> None:
            index[v] = low[v] = len(index)
            stack.append(v)
            for w in sorted(self.internal[v]):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in stack:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(self._cycle_within(set(component)))

        for v in sorted(self.internal):
            if v not in index:
                visit(v)
        return found

    def _cycle_within(self, component: set[str]) -> list[str]:
        """A concrete cycle through the component's first module: start -> ... -> start."""
        start = min(component)
        path = self.path(start, start, within=component)
        assert path is not None
        return path

    def path(self, source: str, target: str, within: set[str] | None = None) -> list[str] | None:
        """A shortest import chain source -> ... -> target (breadth first); None if there is none."""
        previous: dict[str, str] = {}
        frontier = [source]
        while frontier:
            following = []
            for v in frontier:
                for w in sorted(self.internal[v]):
                    if within is not None and w not in within:
                        continue
                    if w == target:
                        chain = [w, v]
                        while chain[-1] != source:
                            chain.append(previous[chain[-1]])
                        return chain[::-1]
                    if w not in previous and w != source:
                        previous[w] = v
                        following.append(w)
            frontier = following
        return None

    def imported_by(self, module: str) -> set[str]:
        """``module``, its parent packages and everything they import at import time, transitively."""
        seen: set[str] = set()
        todo = [*self._with_parents(module)]
        while todo:
            v = todo.pop()
            if v not in seen:
                seen.add(v)
                todo.extend(self.internal[v])
        return seen


@pytest.fixture(scope="module")
def graph() -> Graph:
    return Graph()


def test_the_graph_covers_the_package(graph: Graph) -> None:
    assert {"mmcli", "mmcli.cli", "mmcli.errors"} <= set(graph.files)
    assert len(graph.imported_by("mmcli.cli.app")) > 3  # mmcli, mmcli.cli, its app and what the app imports


def test_graph_rules_on_a_made_up_package(tmp_path: Path) -> None:
    pkg = tmp_path / "mmcli"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from mmcli.sub import b\n"
        "if TYPE_CHECKING:\n    from mmcli import c\n"
        "def later():\n    import mmcli.c\n    import torch\n"
        "try:\n    import numpy\nexcept ImportError:\n    numpy = None\n"
    )
    (pkg / "sub" / "b.py").write_text("from ..c import thing\n")
    (pkg / "c.py").write_text("class K:\n    from mmcli import a\nthing = 1\n")
    g = Graph(pkg)
    assert g.internal["mmcli.a"] == {"mmcli.sub", "mmcli.sub.b"}
    assert g.external["mmcli.a"] == {"typing", "numpy"}
    assert g.internal["mmcli.sub"] == {"mmcli.sub.b"}  # its own parent (mmcli) is not an edge
    assert g.internal["mmcli.sub.b"] == {"mmcli.c"}
    assert g.cycles() == [["mmcli.a", "mmcli.sub.b", "mmcli.c", "mmcli.a"]]  # the shortest, named
    assert g.imported_by("mmcli.sub.b") == {"mmcli", "mmcli.sub", "mmcli.sub.b", "mmcli.c", "mmcli.a"}
    every = Graph(pkg, every_import=True)  # the deferred and type-only imports count here
    assert every.internal["mmcli.a"] == {"mmcli.sub", "mmcli.sub.b", "mmcli.c"}
    assert every.external["mmcli.a"] == {"typing", "numpy", "torch"}


def test_no_import_cycles(graph: Graph) -> None:
    cycles = graph.cycles()
    assert not cycles, "import cycles at import time:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_import_cycles_counting_every_import() -> None:
    """Not even through imports inside functions or for type checking: each would be a layer climbing
    back up (the contract below says which way is down)."""
    cycles = Graph(every_import=True).cycles()
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_layers_contract_holds() -> None:
    """pyproject.toml declares the layers (import-linter); `lint-imports` checks every import against them."""
    import tomllib

    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = config["contracts"]
    assert contract["type"] == "layers" and contract["layers"][0].startswith("mmcli.cli")
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    named = {part.strip().removeprefix("mmcli.") for layer in contract["layers"] for part in layer.split("|")}
    assert packages <= named, f"sub-packages outside every layer: {packages - named}"
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    out = subprocess.run([lint], cwd=PACKAGE.parent, capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "1 kept, 0 broken" in out.stdout, out.stdout[-3000:]


def test_a_small_root_and_small_modules() -> None:
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= 10, f"{len(root)} modules directly in mmcli/: {root}"
    long = {
        str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, f"modules over 400 lines: {long}"


@pytest.mark.parametrize(
    ("start", "heavy"),
    [
        ("mmcli.cli.app", HEAVY),  # what `mmcli --help` loads
        ("mmcli.cli.fast", (*HEAVY, "onnxruntime", "pydantic", "rich", "typer", "click")),  # a warm search
    ],
)
def test_cli_imports_no_heavy_library_at_import_time(graph: Graph, start: str, heavy: tuple[str, ...]) -> None:
    """What the command line loads, computed from the source: no module in it imports a heavy
    library at module level (they belong inside the functions that need them)."""
    offenders = []
    for module in sorted(graph.imported_by(start)):
        for lib in sorted(set(heavy) & graph.external[module]):
            chain = (module != start and graph.path(start, module)) or [module]
            offenders.append(f"{' -> '.join(chain)} imports {lib}")
    assert not offenders, "\n".join(offenders)


def test_help_imports_no_heavy_modules() -> None:
    """The same, as it happens: `mmcli --help` and every command's --help in a fresh interpreter."""
    code = (
        "import sys, typer\n"
        "from mmcli.cli import app\n"
        "group = typer.main.get_command(app)\n"
        "for args in [['--help']] + [[name, '--help'] for name in group.commands]:\n"
        "    try:\n        app(args)\n    except SystemExit:\n        pass\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('COMMANDS=' + ','.join(sorted(group.commands)))\n"
        "print('HEAVY=' + ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Usage" in out.stdout
    commands = out.stdout.split("COMMANDS=")[1].splitlines()[0].split(",")
    assert {"classify", "index", "search"} <= set(commands)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="
