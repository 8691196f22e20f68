"""Reading a FHIR message's JSON safely: the limits on hostile input (`MAX_BYTES`,
`MAX_DEPTH`, `MAX_NODES`, `MAX_ENTRIES`), parsing, and the models' validation errors as
`MappingError`s at the element's path.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson
from pydantic import ValidationError

from mappings.errors import MappingError
from mappings.fhir.plain import plainly_valid
from mappings.fhir.values import JsonObject

# --- limits on hostile input ------------------------------------------------------------------

MAX_BYTES: Final = 8 * 1024 * 1024
"""Twice the engine's default `max_message_bytes`: the transport should have refused it first."""
MAX_DEPTH: Final = 64
"""JSON objects and arrays inside each other; a real Bundle needs about 15."""
MAX_NODES: Final = 500_000
"""JSON objects and arrays in one message."""
MAX_ENTRIES: Final = 1000
"""Entries in one Bundle; an ADT message needs about ten."""

SHOWN_CODE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,39}")
"""A sender's code plain and short enough to echo in an error reason or a warning."""
_BOM = b"\xef\xbb\xbf"
_CONTAINERS: Final = (dict, list)


# --- reading the JSON safely ------------------------------------------------------------------


def load_json(raw: bytes) -> JsonObject:
    """The parsed JSON object, after the size, depth and count limits; MappingError otherwise."""
    if len(raw) > MAX_BYTES:
        raise MappingError(
            f"message is {len(raw):,} bytes; at most {MAX_BYTES:,} are accepted", code="102"
        )
    text = raw[len(_BOM) :] if raw.startswith(_BOM) else raw
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        reason = str(exc.msg).split(":", 1)[0]
        if "depth" in reason:
            raise MappingError(f"JSON nested deeper than {MAX_DEPTH} levels", code="102") from None
        raise MappingError(
            f"not valid JSON: {reason}",
            location=f"line {exc.lineno} column {exc.colno}",
            code="102",
        ) from None
    if not isinstance(document, dict):
        raise MappingError("a FHIR resource is a JSON object", location="resourceType", code="102")
    entries = document.get("entry")
    if isinstance(entries, list) and len(entries) > MAX_ENTRIES:
        raise MappingError(
            f"Bundle has {len(entries):,} entries; at most {MAX_ENTRIES:,} are accepted",
            location="Bundle.entry",
            code="102",
        )
    _check_nesting(document)
    return document


def _check_nesting(document: JsonObject) -> None:
    """Walk the parsed JSON without recursion: refuse deep nesting and too many nodes."""
    if _within_limits(document):
        return
    stack: list[tuple[Any, int]] = [(document, 1)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise MappingError(f"JSON nested deeper than {MAX_DEPTH} levels", code="102")
        if nodes > MAX_NODES:
            raise MappingError(f"more than {MAX_NODES:,} JSON objects and arrays", code="102")
        below = depth + 1
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, _CONTAINERS):
                stack.append((child, below))


def _within_limits(document: JsonObject) -> bool:
    """True when the document is certainly within `MAX_DEPTH` and `MAX_NODES`: counted level by
    level, about twice as fast as the walk above. When it is not, the walk finds which limit and
    says so as it always has (on a document over both, which one is named depends on its order).
    """
    level: list[Any] = [document]
    nodes = 0
    for _ in range(MAX_DEPTH):
        nodes += len(level)
        if nodes > MAX_NODES:
            return False
        values: list[Any] = []
        for value in level:
            values += value.values() if type(value) is dict else value
        level = [value for value in values if isinstance(value, _CONTAINERS)]
        if not level:
            return True
    return False


def shown_code(value: object) -> str:
    """A sender's code for an error reason: short and plain as sent, anything else not echoed."""
    return value if isinstance(value, str) and SHOWN_CODE.fullmatch(value) else "(unreadable)"


def validate(model: Any, data: JsonObject, path: str) -> None:
    """Validate `data` with the fhir.resources `model`; a `MappingError` at the element's path
    when it is not valid.

    The models' own faults on hostile input are content errors too: fhir_core looks up a
    nested resource's type in a table without checking it is there (a ``contained`` resource
    of an unknown ``resourceType`` raised KeyError, found by fuzzing), and such a fault must
    not become an internal error.

    A resource the models certainly accept (`plainly_valid`) does not go to them: they would
    only say yes, at about 30 us an element.
    """
    if plainly_valid(model, data):
        return
    try:
        model.model_validate(data)
    except ValidationError as exc:
        raise invalid_at(exc, path) from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        unknown = _unknown_resource_type(data, path)
        if unknown is not None:
            location, name = unknown
            if not isinstance(name, str):
                raise MappingError(
                    "resourceType must be a string", location=location, code="102"
                ) from None
            raise MappingError(
                f"not a FHIR R4 resource type: {shown_code(name)}", location=location, code="103"
            ) from None
        raise MappingError(
            f"not a valid FHIR R4 {model.__name__} (the validator failed on it:"
            f" {type(exc).__name__})",
            location=path,
            code="102",
        ) from None


def _unknown_resource_type(data: JsonObject, path: str) -> tuple[str, object] | None:
    """The path and value of the first nested ``resourceType`` (a contained resource, an
    entry's) that names no FHIR R4 resource: the fault the models raise on it (KeyError) says
    nothing of where it is. Walked only once validation has failed, so valid messages pay
    nothing; in document order, without recursion."""
    from fhir.resources.R4B import get_fhir_model_class  # the failure path only

    stack: list[tuple[Any, str]] = [(data, path)]
    while stack:
        value, at = stack.pop()
        if isinstance(value, dict):
            name = value.get("resourceType")
            if at != path and name is not None:
                if not isinstance(name, str):
                    return f"{at}.resourceType", name
                try:
                    get_fhir_model_class(name)
                except (KeyError, ValueError):
                    return f"{at}.resourceType", name
            stack.extend((child, f"{at}.{key}") for key, child in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((child, f"{at}[{i}]") for i, child in reversed(list(enumerate(value))))
    return None


def invalid_at(exc: ValidationError, path: str) -> MappingError:
    """The first problem the models found, at its element path, HL7 0357 coded."""
    error = exc.errors()[0]
    location = path
    for part in error["loc"]:
        if isinstance(part, int):
            location += f"[{part}]"
        else:
            location += "." + ("resourceType" if part == "resource_type" else str(part))
    if error["type"] == "missing":
        reason, code = "required element missing", "101"
    elif error["type"] == "extra_forbidden":
        reason, code = "not an element of this FHIR R4 type", "102"
    else:
        reason, code = " ".join(str(error["msg"]).split()), "102"
    more = exc.error_count() - 1
    if more:
        reason += f" (and {more} more problem{'s' if more > 1 else ''})"
    return MappingError(reason, location=location, code=code)
