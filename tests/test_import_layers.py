"""Layers point down and the import graph has no cycles (#23; STYLE.md rule 9).

Every module under ``r2cli/`` is parsed with ``ast``; every import it runs counts, at module level and
inside functions alike (a lazy import still runs upward). Imports under ``if TYPE_CHECKING:`` do not
run and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "r2cli"

# Top-level parts of r2cli at or above the application layer; everything else sits below it.
ABOVE_DOMAIN = {"app", "cli", "__main__", "__init__"}
UPPER_LAYERS = ("r2cli.app", "r2cli.cli")

# Edges (importer, imported) that still close a cycle, kept until they can go; add one only with a
# comment naming its issue. Nothing runs upward any more.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Yield the import nodes that run (everything but ``if TYPE_CHECKING:`` bodies)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _targets(name: str, path: Path, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name.split(".")[0] == "r2cli"}
    if node.level:
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    if base.split(".")[0] != "r2cli":
        return set()
    found = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        found.add(sub if sub in known else base)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges = set()
        for node in _imports(tree):
            edges |= {t for t in _targets(name, path, node, known) if t in known and t != name}
        # a module named in a string (``importlib.import_module("r2cli.x")``, a table of lazy names)
        # is imported too, when that code runs
        edges |= {n.value for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in known and n.value != name}
        graph[name] = edges
    return graph


def _layer_below_app(module: str) -> bool:
    parts = module.split(".")
    return len(parts) > 1 and parts[1] not in ABOVE_DOMAIN


def test_the_graph_sees_lazy_and_module_level_imports():
    graph = import_graph()
    assert "r2cli.app.options" in graph["r2cli.app.index"]  # module level
    assert "r2cli.features.extract" in graph["r2cli.app.index"]  # inside a function


def test_no_module_below_app_imports_app_or_cli():
    upward = sorted(
        (importer, imported)
        for importer, targets in import_graph().items() if _layer_below_app(importer)
        for imported in targets
        if imported.startswith(UPPER_LAYERS) and (importer, imported) not in KNOWN_EXCEPTIONS
    )
    assert not upward, "imports that run upward:\n" + "\n".join(f"  {a} -> {b}" for a, b in upward)


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if (node, nxt) in KNOWN_EXCEPTIONS:
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_import_graph_has_no_cycles():
    cycle = _find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_known_exceptions_are_still_real():
    graph = import_graph()
    stale = sorted(edge for edge in KNOWN_EXCEPTIONS if edge[1] not in graph.get(edge[0], ()))
    assert not stale, f"these edges are gone; drop them from KNOWN_EXCEPTIONS: {stale}"


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
