"""Code tables: a feed's local codes translated to a national list, kept as data.

A table belongs to one coded element (discharge destination, legal status...) and maps the
sender's code to a code of that element's national list, e.g. ZU5's single-digit legal status
``2`` to the NHS Data Dictionary's ``02``. Packaged tables are YAML files in
``mappings/tables/`` (read with `importlib.resources`, nothing else is read); a feed's profile
may also carry a table of its own inline (see `mappings.profile.FeedProfile.from_mapping`).

A packaged table file::

    element: legal_status       # one of CODED_ELEMENTS
    codes:
      "2": "02"                 # local code: national code (quote both: YAML reads 02 as 2)
    labels:                     # optional: the sender's list's own wording of its codes
      "2": "Section 2"

Every target must be in the element's national list, so a typo fails when the table is
loaded, not when a patient's message is mapped.

Like `mappings.codes`, this sits at the top of `mappings`: a feed profile carries its tables
whatever the wire format, and both the HL7 v2 and the FHIR readers apply them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from types import MappingProxyType

import yaml

from mappings.codes import (
    ADMISSION_METHOD_ENGLAND,
    ADMISSION_METHODS,
    DISCHARGE_DESTINATION_ENGLAND,
    DISCHARGE_DESTINATIONS,
    DISCHARGE_METHOD_ENGLAND,
    DISCHARGE_METHODS,
    LEGAL_STATUS_ENGLAND,
    LEGAL_STATUSES,
    SOURCE_OF_ADMISSION_ENGLAND,
    SOURCES_OF_ADMISSION,
)

__all__ = [
    "CODED_ELEMENTS",
    "CodedElement",
    "check_codes",
    "load_code_labels",
    "load_code_table",
    "packaged_tables",
    "table_element",
]

_TABLE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


@dataclass(frozen=True, slots=True)
class CodedElement:
    """A coded element a code table may translate into: its national system and list."""

    name: str
    system: str
    known: Mapping[str, str]
    what: str
    """How warnings name it ("discharge destination")."""


CODED_ELEMENTS: Mapping[str, CodedElement] = MappingProxyType(
    {
        element.name: element
        for element in (
            CodedElement(
                "admission_method", ADMISSION_METHOD_ENGLAND, ADMISSION_METHODS, "admission method"
            ),
            CodedElement(
                "admission_source",
                SOURCE_OF_ADMISSION_ENGLAND,
                SOURCES_OF_ADMISSION,
                "source of admission",
            ),
            CodedElement(
                "discharge_method", DISCHARGE_METHOD_ENGLAND, DISCHARGE_METHODS, "discharge method"
            ),
            CodedElement(
                "discharge_destination",
                DISCHARGE_DESTINATION_ENGLAND,
                DISCHARGE_DESTINATIONS,
                "discharge destination",
            ),
            CodedElement("legal_status", LEGAL_STATUS_ENGLAND, LEGAL_STATUSES, "legal status"),
        )
    }
)


def check_codes(
    element: CodedElement, codes: object, path: str
) -> tuple[dict[str, str], list[str]]:
    """Validate a table's codes for `element`: the usable codes, and ``path: reason`` problems.

    Keys and values must be strings (a bare ``01`` in YAML is the number 1, which would
    silently become ``"1"``), and every value must be in the element's national list.
    """
    if not isinstance(codes, Mapping):
        return {}, [f"{path}: must be a mapping of local code to national code"]
    table: dict[str, str] = {}
    problems: list[str] = []
    for key, value in codes.items():
        if not isinstance(key, str) or not key.strip():
            problems.append(f"{path}.{key}: local codes must be quoted strings")
        elif not isinstance(value, str):
            problems.append(f"{path}.{key}: the national code must be a quoted string")
        elif value not in element.known:
            problems.append(f"{path}.{key}: {value!r} is not in the national {element.what} list")
        else:
            table[key.strip()] = value
    return table, problems


def load_code_table(name: str) -> dict[str, str]:
    """The codes of packaged table `name` (``mappings/tables/<name>.yaml``): local → national.

    Raises `ValueError` when there is no such table or it is invalid.
    """
    return dict(_packaged(name)[1])


def load_code_labels(name: str) -> dict[str, str]:
    """The sender's own wording of each code of packaged table `name` (its optional
    ``labels:``), so a code with no national equivalent still reads as the sender meant it."""
    data = yaml.safe_load(_entry(name).read_text(encoding="utf-8"))
    labels = data.get("labels") or {}
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise ValueError(f"tables/{name}.yaml: labels: quoted code to quoted text")
    return dict(labels)


def table_element(name: str) -> str:
    """The coded element packaged table `name` translates into (``legal_status``...)."""
    return _packaged(name)[0]


def packaged_tables() -> list[str]:
    """The names of every packaged table."""
    folder = resources.files("mappings") / "tables"
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )


def _entry(name: str) -> Traversable:
    if not _TABLE_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a code table name (lower-case letters, digits, - and _)")
    entry = resources.files("mappings") / "tables" / f"{name}.yaml"
    if not entry.is_file():
        raise ValueError(f"no packaged code table {name!r}; known: {', '.join(packaged_tables())}")
    return entry


@lru_cache(maxsize=32)
def _packaged(name: str) -> tuple[str, Mapping[str, str]]:
    data = yaml.safe_load(_entry(name).read_text(encoding="utf-8"))
    if not isinstance(data, Mapping) or set(data) - {"element", "codes", "labels"}:
        raise ValueError(
            f"tables/{name}.yaml: expected only the keys 'element', 'codes' and 'labels'"
        )
    element = CODED_ELEMENTS.get(str(data.get("element")))
    if element is None:
        raise ValueError(
            f"tables/{name}.yaml: element: expected one of {', '.join(CODED_ELEMENTS)}"
        )
    codes, problems = check_codes(element, data.get("codes"), f"tables/{name}.yaml: codes")
    if problems:
        raise ValueError("\n".join(problems))
    return element.name, MappingProxyType(codes)
