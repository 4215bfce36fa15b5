"""The package's import graph: the clinical layer never imports the web app, and no module cycle.

Every module under src/neurotriage is parsed (not imported), and both module-level and
function-level imports count: a deferred import still ties the two modules together.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "neurotriage"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The neurotriage modules an import statement names (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    """Each neurotriage module and the neurotriage modules it imports."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {module: set() for module in files}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for target in _imported(node, module, path.name == "__init__.py"):
                # `from pkg import name` names a module only when pkg/name.py exists.
                if target in files and target != module:
                    graph[module].add(target)
    return graph


def test_the_graph_sees_function_level_imports() -> None:
    assert "neurotriage.web.app" in import_graph()["neurotriage.web.commands"]  # inside _serve


def test_clinical_never_imports_web() -> None:
    leaks = [
        (module, target)
        for module, targets in import_graph().items()
        if module.startswith("neurotriage.clinical.")
        for target in targets
        if target.startswith("neurotriage.web")
    ]
    assert leaks == []


def test_no_import_cycles() -> None:
    try:
        TopologicalSorter(import_graph()).prepare()
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None
