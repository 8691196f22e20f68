"""Sizes that read: no module of the product over 400 lines, no function over 60 lines.

Counted on the source text (docstrings and comments included), outside generated tables. A
module or function that needs to grow past these is a room that wants splitting.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "adapters", "mappings")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
GENERATED: frozenset[str] = frozenset({"engine/store/migrations/versions"})
"""Folders of generated or append-only files (migrations are written once and never edited)."""


def _modules() -> list[Path]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if not any(relative.startswith(folder) for folder in GENERATED):
                found.append(path)
    return found


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def test_the_product_is_found() -> None:
    assert len(_modules()) > 50


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_module_and_function_sizes(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n") + (not text.endswith("\n") and bool(text))
    problems = []
    if lines > MAX_MODULE_LINES:
        problems.append(f"module has {lines} lines (> {MAX_MODULE_LINES})")
    for node in _functions(ast.parse(text)):
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        if length > MAX_FUNCTION_LINES:
            problems.append(f"{node.name} (line {node.lineno}) has {length} lines")
    assert not problems, "; ".join(problems)
