"""The engine imports nothing above it: no service, bootstrap, connector, store or SDK module
(ARCHITECTURE.md, "Layers"; issue 15). Read from the source, so that a lazy import inside a
function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "shared" / "spokesync" / "engine"
ALLOWED = ("spokesync.engine", "spokesync.model", "spokesync.ports")


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_the_engine_imports_only_the_model_the_ports_and_the_standard_library() -> None:
    import sys

    modules = sorted(ENGINE.glob("*.py"))
    assert {m.name for m in modules} >= {"planner.py", "runner.py", "rules.py", "kinds.py"}
    for module in modules:
        for name in _imports(module):
            top = name.split(".")[0]
            if top == "spokesync":
                assert name.startswith(ALLOWED), f"{module.name} imports {name}"
            else:
                assert top in sys.stdlib_module_names or top == "__future__", f"{module.name} imports {name}"
