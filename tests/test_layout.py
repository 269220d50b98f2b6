"""The package's layout: imports go one way. No module of assistant/ reaches itself through its imports, and
each package imports only the packages below it (its note in __init__.py says which)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "assistant"

# Each part of assistant/ and the parts it may import: the pipeline read from the top (the surfaces) down
# (what every stage shares). A part not listed here may import nothing of the package.
MAY_IMPORT = {
    "models": set(),
    "config": {"models"},  # the default e5 engine (models.embed.DEFAULT_MODEL)
    "text": set(),
    "document": set(),
    "store": {"models", "document", "text", "config"},
    "ingest": {"store", "models", "document", "text", "config"},
    "answer": {"store", "models", "document", "text", "config"},
    "log": {"store", "models", "document", "text", "config"},
    "core": {"ingest", "answer", "log", "store", "models", "document", "text", "config"},
    "evaluate": {"core", "ingest", "answer", "log", "store", "models", "document", "text", "config"},
    "web": {"core", "ingest", "answer", "log", "store", "models", "document", "text", "config"},
    "cli": {"", "core", "evaluate", "web", "ingest", "answer", "log", "store", "models", "document", "text",
            "config"},
    "": {"core", "ingest", "answer", "log", "store", "models", "document", "text", "config"},  # assistant/__init__
}


def modules(root: Path) -> dict[str, Path]:
    """Every module under `root` (a package folder) by its dotted name."""
    found = {}
    for path in root.rglob("*.py"):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of the package that module `name` imports anywhere in it: at the top, inside functions
    and under `if TYPE_CHECKING:` alike (a circle through a lazy import is still a circle)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    top = name.split(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from . import web`: a module; `from .core import Assistant`: a name of a module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import assistant.web.mcp` names the module itself
                target = target.rpartition(".")[0]
            if target and target.split(".")[0] == top and target != name:
                found.add(target)
    return found


def graph(root: Path) -> dict[str, set[str]]:
    found = modules(root)
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected group of modules (Tarjan), written as a path that returns to its start."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [_path(sorted(group)[0], set(group), edges) for group in groups]


def _path(start: str, group: set[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest way from `start` back to itself inside `group` (breadth first)."""
    previous, frontier = {}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges[v] & group):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
                if w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start]


def part(module: str) -> str:
    """The part of the package a module belongs to: its subpackage, or its own name at the top."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_module_reaches_itself_through_its_imports():
    found = circles(graph(PACKAGE))
    assert not found, "import circles in assistant/:\n" + "\n".join(" -> ".join(c) for c in found)


def test_each_part_imports_only_the_parts_below_it():
    wrong = sorted(f"{module} imports {target}" for module, targets in graph(PACKAGE).items() for target in targets
                   if part(target) != part(module) and part(target) not in MAY_IMPORT.get(part(module), set()))
    assert not wrong, "imports against the layout (tests/test_layout.py MAY_IMPORT):\n" + "\n".join(wrong)


@pytest.mark.parametrize("kind", ["top", "lazy", "type_checking"])
def test_the_check_sees_a_circle(tmp_path, kind):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub.b import B\nimport os\n")
    back = {"top": "from ..a import A\n",
            "lazy": "def f():\n    from .. import a\n",
            "type_checking": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n"}[kind]
    (pkg / "sub" / "b.py").write_text(back + "B = 1\n")
    assert circles(graph(pkg)) == [["pkg.a", "pkg.sub.b", "pkg.a"]]
    (pkg / "sub" / "b.py").write_text("B = 1\n")
    assert circles(graph(pkg)) == []


def test_every_package_has_its_note():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        note = ast.get_docstring(tree) or ""
        assert "May import" in note or init.parent.name in ("web", "static"), f"{init}: no note of what it may import"
