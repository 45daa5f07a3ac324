# tests/repo/test_layers.py
#
# Packages depend one way (docs/design.md §1): the services know nothing of
# the load tools; loadtest/toolbox sits below the comparison and capacity
# runners, which are siblings; and no module imports itself back through
# others. Read from the code's own import statements (ast), so a new import
# that closes a circle fails here.

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("services", "loadtest")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def imported(path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The project modules that `path` imports (a package's __init__ counts
    as the package), relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` names a module; otherwise the name
            # is defined in `base` itself.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target in modules and target != name:
                yield target


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: set(imported(path, modules)) for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_back_through_others():
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    ("importer", "imported_package"),
    [
        ("loadtest.capacity", "loadtest.compare"),
        ("loadtest.compare", "loadtest.capacity"),
        ("loadtest.toolbox", "loadtest.compare"),
        ("loadtest.toolbox", "loadtest.capacity"),
        ("loadtest.swarm", "loadtest.compare"),
        ("loadtest.swarm", "loadtest.capacity"),
        ("services", "loadtest"),
        ("loadtest.switchinterval", "loadtest.capacity"),
        ("loadtest.timeline", "loadtest.compare"),
        ("loadtest.timeline", "loadtest.capacity"),
        ("loadtest.toolbox", "loadtest.timeline"),
        ("loadtest.profile", "loadtest.capacity"),
        ("loadtest.profile", "loadtest.switchinterval"),
        ("loadtest.profile", "loadtest.timeline"),
        # the check judges a server from outside; it knows the lab's variant
        # names (--like) and its comparison engine (--behaviours), no more
        ("loadtest.check", "loadtest.capacity"),
        ("loadtest.check", "loadtest.timeline"),
        ("loadtest.check", "loadtest.switchinterval"),
        ("loadtest.check", "loadtest.profile"),
    ],
)
def test_packages_depend_one_way(importer: str, imported_package: str):
    crossing = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if module == importer or module.startswith(importer + ".")
        for target in targets
        if target == imported_package or target.startswith(imported_package + ".")
    )
    assert crossing == []


@pytest.mark.parametrize(
    "package", ["loadtest.switchinterval", "loadtest.profile", "loadtest.check"]
)
def test_nothing_imports_the_runners_on_top(package: str):
    # each stands on compare and toolbox (docs/design.md §1); nothing stands on it
    crossing = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if not module.startswith(package)
        for target in targets
        if target.startswith(package)
    )
    assert crossing == []
