"""Reading a value out of a payload by path, and holding it against what a test expects.

- JSON (the care event, webhook and FHIR bodies): dotted keys with list indexes,
  ``patient.identifiers[0].value``, ``entry[1].resource.resourceType``.
- HL7v2: ``SEG-F``, ``SEG-F.C``, ``SEG-F.C.S``, with a segment occurrence ``OBX[2]-5`` and a
  field repetition ``PID-3[2].1`` (all counted from 1), read as the engine's own reader reads
  them (escapes decoded).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from mappings.hl7v2.elements import Hl7Message
from mappings.hl7v2.reader import parse

MISSING: Any = object()
_JSON_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_JSON_PATH = re.compile(r"(?:[^.\[\]]+|\[\d+\])(?:\[\d+\])*(?:\.[^.\[\]]+(?:\[\d+\])*)*")
_HL7_PATH = re.compile(
    r"([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?-(\d+)(?:\[(\d+)\])?(?:\.(\d+)(?:\.(\d+))?)?"
)


class PathError(ValueError):
    """The path itself is malformed (a broken test file, not a failed expectation)."""


def json_value(document: Any, path: str) -> Any:
    """The value at `path`, or MISSING."""
    if not _JSON_PATH.fullmatch(path):
        raise PathError(f"{path!r} is not a JSON path such as a.b[0].c")
    current = document
    for match in _JSON_STEP.finditer(path):
        key, index = match.group(1), match.group(2)
        if key is not None:
            if not isinstance(current, dict) or key not in current:
                return MISSING
            current = current[key]
        elif not isinstance(current, list) or int(index) >= len(current):
            return MISSING
        else:
            current = current[int(index)]
    return current


def hl7_value(message: Hl7Message | bytes, path: str) -> Any:
    """The decoded text at `path` in an HL7v2 message, or MISSING when the segment is absent."""
    match = _HL7_PATH.fullmatch(path.strip())
    if match is None:
        raise PathError(f"{path!r} is not an HL7v2 position such as PID-3[2].1 or OBX[2]-5")
    name, occurrence, field, repetition, component, sub = match.groups()
    parsed = message if isinstance(message, Hl7Message) else parse(message)
    segments = parsed.segments(name)
    index = int(occurrence or 1) - 1
    if index >= len(segments):
        return MISSING
    whole = segments[index].field(int(field))
    reps = whole.repetitions()
    rep_index = int(repetition or 1) - 1
    if rep_index >= len(reps):
        return ""
    rep = reps[rep_index]
    if component is None:
        return rep.text
    return rep.value(int(component), int(sub or 1))


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else None
    if isinstance(value, str) and len(value) >= 16 and value[4:5] == "-" and "T" in value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else None
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def mismatch(actual: Any, expected: Any) -> str | None:
    """None when `actual` meets `expected`; else what is wrong, in a phrase."""
    found = "absent" if actual is MISSING or actual is None else repr(actual)
    if isinstance(expected, dict):
        return _operator(actual, expected, found)
    if expected is None:
        return None if actual is MISSING or actual is None else f"expected absent, got {found}"
    if actual is MISSING or actual is None:
        return f"expected {expected!r}, got absent"
    want, got = _instant(expected), _instant(actual)
    if want is not None and got is not None:
        return None if want == got else f"expected {expected!r}, got {found}"
    if _text(actual) == _text(expected):
        return None
    return f"expected {expected!r}, got {found}"


def _operator(actual: Any, expected: dict[str, Any], found: str) -> str | None:
    if len(expected) != 1:
        raise PathError("give one of contains, matches, present")
    ((op, arg),) = expected.items()
    present = actual is not MISSING and actual is not None
    if op == "present":
        return None if present == bool(arg) else f"expected present: {arg}, got {found}"
    if not present:
        return f"expected {op} {arg!r}, got absent"
    if op == "contains":
        return None if str(arg) in _text(actual) else f"expected to contain {arg!r}, got {found}"
    if op == "matches":
        try:
            hit = re.search(str(arg), _text(actual))
        except re.error as exc:
            raise PathError(f"{arg!r} is not a regular expression ({exc})") from None
        return None if hit else f"expected to match {arg!r}, got {found}"
    raise PathError(f"{op!r} is not one of contains, matches, present")
