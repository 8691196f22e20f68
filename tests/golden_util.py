"""Golden files: compare a mapping's output with a reviewed JSON file beside the tests.

Set ``CAREBRIDGE_UPDATE_GOLDEN=1`` to (re)write the files instead of comparing, then review
the diff in version control like any other change.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

UPDATE_ENV = "CAREBRIDGE_UPDATE_GOLDEN"


def render(data: Any) -> str:
    """The golden text for JSON-able data: pretty, keys sorted, UTF-8, newline-terminated."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def assert_golden(data: Any, path: Path) -> None:
    """Fail with a unified diff unless `data` renders exactly as the golden file at `path`."""
    actual = render(data)
    if os.environ.get(UPDATE_ENV) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        raise AssertionError(f"golden file {path} is missing; run with {UPDATE_ENV}=1")
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"{path.name} (golden)",
                tofile=f"{path.name} (actual)",
            )
        )
        raise AssertionError(
            f"output differs from {path}; if intended, rerun with {UPDATE_ENV}=1\n{diff}"
        )


def assert_text_golden(text: str, path: Path) -> None:
    """Fail unless `text` equals the reviewed plain-text golden file (readable in a diff)."""
    if os.environ.get(UPDATE_ENV) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        raise AssertionError(f"golden file {path} is missing; run with {UPDATE_ENV}=1")
    assert text == path.read_text(encoding="utf-8"), f"text differs from {path}"
