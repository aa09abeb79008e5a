"""No import circle: the modules of `proxy` and `alignment` form a directed acyclic graph.

Read statically (ast), so imports inside functions count too: a circle hidden in a function body
still means two modules that cannot be understood, or tested, one without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.processes import ROOT

PACKAGES = ("proxy", "alignment")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    """The absolute module an ImportFrom names (relative imports resolved against `current`)."""
    if node.level == 0:
        return node.module or ""
    parts = current.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules that module `name` imports (an `from a import b` names `a.b` when that
    is a module, else `a`)."""
    found = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node, name, path.name == "__init__.py")
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        for target in targets:
            # `import a.b.c` loads a, a.b and a.b.c; the deepest project module is the edge.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in sorted(graph):
        if state.get(root):
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_no_import_circle_between_project_modules():
    graph = import_graph()
    assert len(graph) > 50  # the walk really saw both packages
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_proxy_never_imports_alignment():
    graph = import_graph()
    offenders = {
        name: sorted(t for t in targets if t.split(".")[0] == "alignment")
        for name, targets in graph.items()
        if name.split(".")[0] == "proxy"
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_cycle_finder_finds_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_walk_reads_relative_and_function_level_imports(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "b.py").write_text("")
    (pkg / "a.py").write_text("from . import b\ndef f():\n    from pkg.b import x\n")
    known = {"pkg", "pkg.a", "pkg.b"}
    assert imports_of("pkg.a", pkg / "a.py", known) == {"pkg.b"}
