"""core's imports: no cycle among its modules, and ``import core`` loads NumPy only.

The graph is read from the source, so an import hidden inside a function counts as much as one
at the top of a module: a lazy import is still a dependency, and a cycle through it is still a
cycle (it only fails later, at the first call that takes that path).
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "core"
HEAVY = ("sklearn", "scipy", "pandas", "optuna", "mlflow", "hydra")


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node, module, is_package, modules):
    """The modules of ``modules`` that one ``import`` / ``from ... import`` node names."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    if node.level:  # relative: from . import x, from .x import y
        base = module.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module
    found = set()
    for alias in node.names:
        # from core import validation names a submodule; from core import MLPClassifier, the
        # package's __init__ (which imports every submodule).
        submodule = f"{source}.{alias.name}"
        if submodule in modules:
            found.add(submodule)
        elif source in modules:
            found.add(source)
    return found


def import_graph():
    """{module: set of core modules it imports anywhere in its source}, for every core module."""
    paths = {_module_name(path): path for path in (ROOT / PACKAGE).rglob("*.py")}
    graph = {}
    for module, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        graph[module] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[module] |= _imported(node, module, is_package, set(paths))
        graph[module].discard(module)
    return graph


def find_cycle(graph):
    """One cycle as a list of modules [a, b, ..., a], or None; depth-first search."""
    state, stack = {}, []  # state: 1 while on the stack, 2 when done

    def visit(module):
        state[module] = 1
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_the_graph_sees_function_level_imports():
    # The lazy import in __sklearn_tags__ must be an edge, or a cycle through it would hide.
    assert "core.sklearn_compat" in import_graph()["core.estimators"]


def test_find_cycle_reports_the_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_core_modules_import_each_other_without_a_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in core: " + " -> ".join(cycle)


def test_import_core_loads_none_of_the_heavy_libraries():
    code = f"import core, sys; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"import core imported: {result.stdout.strip()}"
