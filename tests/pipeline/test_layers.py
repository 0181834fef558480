"""The package layering of pipeline/, as docs/architecture.md draws it, checked on the source.

Every import (function-level ones included) of a pipeline module may only name modules of its
own row or of rows below; and the package map of docs/architecture.md lists exactly the modules
the packages hold.
"""

from __future__ import annotations

import ast
import re

from tests.helpers import ROOT

# Rows from the bottom up; a module imports only from its own row and the rows below it.
LAYERS = [
    ["core"],
    ["pipeline.compat", "pipeline.errors", "pipeline.names", "pipeline.quiet"],
    ["pipeline.redaction"],
    ["pipeline.config", "pipeline.data", "pipeline.model"],
    ["pipeline.folds"],
    ["pipeline.search"],
    ["pipeline.tracking"],
    ["pipeline.results"],
    ["pipeline.phases"],
    [
        "pipeline.sweep",
        "pipeline.train",
        "pipeline.multirun",
        "pipeline.fitted_model",
        "pipeline.storage_proxy",
    ],
]


def layer_of(module: str) -> int | None:
    for index, row in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in row):
            return index
    return None


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in ("core", "pipeline")}


def pipeline_modules():
    return sorted((ROOT / "pipeline").rglob("*.py"))


def test_every_pipeline_module_has_a_row():
    assert [module_name(p) for p in pipeline_modules() if layer_of(module_name(p)) is None] == [
        "pipeline"
    ]


def test_imports_only_point_down():
    upward = []
    for path in pipeline_modules():
        module = module_name(path)
        own = layer_of(module)
        if own is None:
            continue
        for name in project_imports(path):
            target = layer_of(name)
            if target is not None and target > own:
                upward.append(f"{module} imports {name}")
    assert upward == []


def test_the_layer_check_sees_an_upward_import(tmp_path):
    """The check above can fail: a search module that imported tracking would be caught."""
    fake = tmp_path / "objective.py"
    fake.write_text("def f():\n    from pipeline.tracking.runs import TrialRun\n")
    assert "pipeline.tracking.runs" in project_imports(fake)
    assert layer_of("pipeline.tracking.runs") > layer_of("pipeline.search.objective")


def documented_map() -> dict[str, set[str]]:
    """``pkg/  a, b, c`` lines of the package map in docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text[text.index("## Package map") :].split("```")[1]
    found, package = {}, None
    for line in block.splitlines():
        match = re.match(r"\s+(\w+)/\s{2,}(.*)$", line)
        if match:
            package = match.group(1)
            found[package] = {name.strip() for name in match.group(2).split(",") if name.strip()}
        elif package and re.fullmatch(r"\s{10,}[\w, ]+", line):  # a package's next line
            found[package] |= {name.strip() for name in line.split(",") if name.strip()}
        else:
            package = None
    return found


def test_the_documented_package_map_matches_the_packages():
    documented = documented_map()
    actual = {
        folder.name: {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
        for folder in (ROOT / "pipeline").iterdir()
        if (folder / "__init__.py").exists()
    }
    assert documented == actual
