"""The import graph runs one way (ARCHITECTURE.md): no cycle between the project's modules,
and nothing below the command layer (``harness.cli``, ``harness.commands``) imports it.

The graph is read from the source, every ``import`` statement counted wherever it stands
(module level, inside a function, under ``if TYPE_CHECKING:``), so a cycle hidden in a lazy
import is caught too; one subprocess then imports every module below the command layer and
checks what actually loaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agents", "baselines", "harness", "reports", "studies")
COMMAND_LAYER = ("harness.cli", "harness.commands")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    return {_module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module that ``name`` (a module, or a module's attribute) lives in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that ``module``'s source imports, anywhere in the file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # ``from pkg import sub`` imports the submodule pkg.sub when there is one
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = _resolve(target, modules)
            if resolved and resolved != module:
                found.add(resolved)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _in_command_layer(module: str) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in COMMAND_LAYER)


def test_cycle_finder_sees_a_cycle_and_a_lazy_import(tmp_path: Path) -> None:
    """The checks below could fail: a two-module cycle closed by an import inside a function
    and one under TYPE_CHECKING is found."""
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from pkg.b import g\n")
    b = tmp_path / "b.py"
    b.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    modules = {"pkg.a": a, "pkg.b": b}
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
    assert cycles({"x": {"y"}, "y": set()}) == []


def test_the_graph_is_read_whole() -> None:
    graph = import_graph()
    assert {"harness.cli", "harness.commands.run", "agents.agent", "reports.load", "studies.table2"} <= set(graph)
    assert "harness.commands.run" in graph["harness.cli"]
    assert "reports.runs" in graph["reports.load"]


def test_no_import_cycle_between_modules() -> None:
    assert cycles(import_graph()) == []


def test_nothing_below_the_command_layer_imports_it() -> None:
    graph = import_graph()
    offenders = {
        module: sorted(m for m in targets if _in_command_layer(m))
        for module, targets in graph.items()
        if not _in_command_layer(module)
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_harness_below_the_command_layer_imports_neither_studies_nor_reports() -> None:
    graph = import_graph()
    offenders = {
        module: sorted(t for t in targets if t.split(".")[0] in ("studies", "reports"))
        for module, targets in graph.items()
        if module.split(".")[0] == "harness" and not _in_command_layer(module)
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_importing_every_module_below_the_command_layer_loads_none_of_it() -> None:
    """What Python actually loads, not what the source says: one fresh interpreter imports
    every module of agents/, baselines/, harness/ (below the command layer), reports/ and
    studies/."""
    below = sorted(m for m in project_modules() if not _in_command_layer(m))
    probe = (
        "import importlib, json, sys\n"
        f"for name in {below!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"importing the modules failed:\n{result.stderr[-2000:]}")
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert [m for m in loaded if _in_command_layer(m)] == []


def test_help_of_every_command_loads_no_torch() -> None:
    """``harness --help`` once took 3.7 s because the command layer imported torch at start-up:
    every command's help is printed by a process that never loads torch, studies' Optuna or
    the reports' plotting."""
    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from harness.cli import cli\n"
        "runner = CliRunner()\n"
        "def walk(group, path):\n"
        "    yield path\n"
        "    for name, command in getattr(group, 'commands', {}).items():\n"
        "        yield from walk(command, path + [name])\n"
        "for path in walk(cli, []):\n"
        "    result = runner.invoke(cli, path + ['--help'])\n"
        "    assert result.exit_code == 0, (path, result.output)\n"
        "print(sorted({'torch', 'optuna', 'matplotlib', 'rliable'} & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
