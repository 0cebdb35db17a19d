"""House rules checked on the source itself: small modules, and no import circles among cellcall's modules.

Both are static (file sizes and `ast` of each module), so they run in well under a second.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cellcall"
MAX_LINES = 500

# Modules other engineers are splitting right now; each leaves this set when its split lands.
BEING_SPLIT: set[str] = set()


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its __init__)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: not inside functions, not under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            test = node.test
            type_checking = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
            )
            pending.extend(node.orelse if type_checking else [*node.body, *node.orelse])
        elif isinstance(node, ast.Try):
            pending.extend([*node.body, *node.orelse, *node.finalbody])
            for handler in node.handlers:
                pending.extend(handler.body)
        elif isinstance(node, ast.With | ast.ClassDef):
            pending.extend(node.body)
    return found


def imported(name: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The cellcall modules `node` (in module `name`) names directly; parent packages are not edges."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    base = node.module or ""
    if node.level:
        anchor = name.split(".") if is_package else name.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    targets = {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known}
    if base in known and len(targets) < len(node.names):
        targets.add(base)  # some names are attributes of `base`, so `base` itself is imported
    return targets


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        edges: set[str] = set()
        for node in module_level_imports(tree):
            edges |= imported(name, path.name == "__init__.py", node, known)
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_every_module_is_at_most_500_lines() -> None:
    too_long = {}
    for path in modules().values():
        rel = path.relative_to(PACKAGE.parent).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and rel not in BEING_SPLIT:
            too_long[rel] = lines
    assert not too_long, f"modules over {MAX_LINES} lines (split them by job): {too_long}"


def test_no_import_cycles_among_cellcall_modules() -> None:
    found = cycles(import_graph())
    assert not found, "import circles (module-level imports): " + "; ".join(" <-> ".join(g) for g in found)


def test_the_cycle_finder_sees_a_cycle_and_ignores_type_checking_and_function_imports() -> None:
    """The two checks above must be able to fail: a known circle is found, the exempt imports are not edges."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "import cellcall.goal\n"
        "if TYPE_CHECKING:\n    from cellcall.line import Line\n"
        "try:\n    from cellcall.line.at import ATChannel\nexcept ImportError:\n    pass\n"
        "def f():\n    import cellcall.call\n"
    )
    known = {"cellcall.goal", "cellcall.line", "cellcall.line.at", "cellcall.call"}
    edges = set().union(*(imported("cellcall.x", False, n, known) for n in module_level_imports(tree)))
    assert edges == {"cellcall.goal", "cellcall.line.at"}
    sibling, attribute = ast.parse("from . import at\nfrom .framing import Reframer\n").body
    assert isinstance(sibling, ast.ImportFrom) and isinstance(attribute, ast.ImportFrom)
    known = {"cellcall.line", "cellcall.line.at", "cellcall.line.framing"}
    assert imported("cellcall.line.sim7600", False, sibling, known) == {"cellcall.line.at"}
    assert imported("cellcall.line.sim7600", False, attribute, known) == {"cellcall.line.framing"}


def test_every_package_is_in_the_wheel() -> None:
    """pyproject.toml lists packages by hand: a package left out breaks a non-editable install."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(PACKAGE.parent).parts)
        for init in PACKAGE.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found <= listed, f"missing from [tool.setuptools] packages: {sorted(found - listed)}"
