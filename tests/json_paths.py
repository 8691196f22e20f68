"""Every path into a parsed JSON document, for the fuzzers and mutators that pick a place in one
to change (tests/fuzz/test_structured.py, tests/unit/test_fhir_plain.py, bench/fhir_mapping.py)."""

from __future__ import annotations

from typing import Any


def json_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """`path` and the path of every value below `node`: object keys and list indexes, in
    document order."""
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += json_paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += json_paths(value, (*path, index))
    return found
