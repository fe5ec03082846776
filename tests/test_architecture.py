"""The shape of the package: the import graph of promptkit/ has no cycles, imports made inside
functions are few and each says why (start-up time), and importing promptkit loads no model library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "promptkit"  # the checkout's own package, not an installed one
MAX_FUNCTION_LEVEL = 8  # today 7: hf_fast (torch) x3 in hf and x2 in tune.lora, the view app (starlette), the CLI root command


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The promptkit modules an import statement loads (a `from pkg import sub` loads pkg.sub too)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in MODULES]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
    targets = [base] + [f"{base}.{a.name}" for a in node.names]
    return [t for t in targets if t in MODULES]


def import_graph() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """Edges from every import statement (module level, TYPE_CHECKING blocks and inside functions),
    and the function-level ones as (module, line, source line)."""
    graph: dict[str, set[str]] = {}
    inner: list[tuple[str, int, str]] = []
    for module, path in MODULES.items():
        source = path.read_text()
        tree = ast.parse(source)
        is_package = path.name == "__init__.py"
        graph[module] = {t for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                         for t in imported(node, module, is_package) if t != module}
        lines = source.splitlines()
        for function in ast.walk(tree):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(function):
                    if isinstance(node, (ast.Import, ast.ImportFrom)) and imported(node, module, is_package):
                        inner.append((module, node.lineno, lines[node.end_lineno - 1]))
    return graph, sorted(set(inner))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_import_graph_has_no_cycles() -> None:
    graph, _ = import_graph()
    assert "promptkit.results" in graph and graph["promptkit.results"] == set(), "results.py sits at the bottom"
    assert cycles(graph) == []


def test_function_level_imports_are_few_and_say_why() -> None:
    _, inner = import_graph()
    assert len(inner) <= MAX_FUNCTION_LEVEL, "\n".join(f"{m}:{n}: {line.strip()}" for m, n, line in inner)
    unexplained = [f"{m}:{n}" for m, n, line in inner if "#" not in line]
    assert not unexplained, f"a function-level import needs a comment saying why it is not at the top: {unexplained}"


def test_import_loads_no_model_library() -> None:
    # `promptkit.cli` is what `promptkit --help` loads.
    code = ("import promptkit, promptkit.cli, sys; "
            "print([m for m in ('torch', 'transformers', 'openai') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent)
    assert out.stdout.strip() == "[]"
