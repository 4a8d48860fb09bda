"""The package's promise: numpy and scipy at run time, nothing else outside the standard library."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import bastion.stats

ALLOWED = {"numpy", "scipy", "bastion"}


def test_stats_imports_only_numpy_scipy_and_itself() -> None:
    package = Path(bastion.stats.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in ALLOWED, f"{path.name} imports {name}"
                if top == "bastion":
                    assert name.startswith("bastion.stats"), f"{path.name} imports {name}"
