"""No function in r2cli/ is longer than a screen can hold at a time (#23): a long one is split into named steps.

Every function and method under ``r2cli/`` is parsed with ``ast``; its length counts from its ``def`` line
(decorators aside) to its last line, docstring and comments included.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "r2cli"
MAX_LINES = 100

# (module path under r2cli/, qualified function name) allowed over the limit: none. An entry here must
# name a function that really is over it (the test below fails on a stale entry).
ALLOWED: set[tuple[str, str]] = set()


def function_lengths(root: Path = PACKAGE_ROOT) -> dict[tuple[str, str], int]:
    """(module path relative to ``root``, qualified name) -> lines, for every function and method."""
    lengths: dict[tuple[str, str], int] = {}
    for path in sorted(root.rglob("*.py")):
        module = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        stack: list[tuple[ast.AST, str]] = [(tree, "")]
        while stack:
            node, prefix = stack.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    name = f"{prefix}{child.name}"
                    if not isinstance(child, ast.ClassDef):
                        lengths[(module, name)] = child.end_lineno - child.lineno + 1
                    stack.append((child, name + "."))
                else:
                    stack.append((child, prefix))
    return lengths


def test_no_function_is_longer_than_a_screen():
    too_long = sorted(f"  r2cli/{module}: {name} has {lines} lines"
                      for (module, name), lines in function_lengths().items()
                      if lines > MAX_LINES and (module, name) not in ALLOWED)
    assert not too_long, f"functions over {MAX_LINES} lines (split them into named steps):\n" + "\n".join(too_long)


def test_the_allow_list_names_only_long_functions():
    lengths = function_lengths()
    stale = sorted(key for key in ALLOWED if lengths.get(key, 0) <= MAX_LINES)
    assert not stale, f"these are {MAX_LINES} lines or fewer now (or gone); drop them from ALLOWED: {stale}"


def test_the_counter_sees_methods_and_nested_functions(tmp_path):
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(
        f"class A:\n    def short(self):\n        return 1\n\n\ndef outer():\n    def inner():\n{body}\n    return inner\n",
        encoding="utf-8")
    lengths = function_lengths(tmp_path)
    assert lengths[("m.py", "A.short")] == 2
    assert lengths[("m.py", "outer.inner")] == MAX_LINES + 1
    assert lengths[("m.py", "outer")] == MAX_LINES + 3
