"""Where a FHIR Encounter's patient is: a `Location` read from a Location and the Locations it
is ``partOf`` (bed, room, ward, site: physicalType bd, ro, wa, si/bu).
"""

from __future__ import annotations

from typing import Final

from mappings.fhir.message import Message, Resource
from mappings.fhir.values import (
    JsonObject,
    as_object,
    as_objects,
    as_text,
    first_code,
    identifier_value,
)
from mappings.fhir.vocabulary import PHYSICAL_TYPE_SYSTEM, POINT_OF_CARE_SYSTEM
from mappings.model import ODS_ORGANISATION_SYSTEM, ODS_SITE_SYSTEM, Location

_OURS: Final = frozenset({POINT_OF_CARE_SYSTEM, ODS_SITE_SYSTEM, ODS_ORGANISATION_SYSTEM})


def read_place(message: Message, encounter: Resource, entry: JsonObject) -> Location | None:
    """A location from a Location and the Locations it is part of (bed, room, ward, site:
    physicalType bd, ro, wa, si/bu). A Location without physicalType is not taken for a
    ward: its name becomes the description. A reference with only a display is the
    description too."""
    reference = as_object(entry.get("location")) or {}
    resolved = message.resolve(reference, encounter, "Location")
    if resolved is None:
        display = as_text(reference.get("display"))
        return Location(description=display) if display else None
    levels: dict[str, str] = {}
    description = point_of_care = facility = None
    seen: set[int] = set()
    current: Resource | None = resolved
    while current is not None and id(current.data) not in seen and len(seen) < 8:
        seen.add(id(current.data))
        data = current.data
        identifiers = as_objects(data.get("identifier"))
        level = first_code(data.get("physicalType"), PHYSICAL_TYPE_SYSTEM)
        point_of_care = point_of_care or identifier_value(identifiers, POINT_OF_CARE_SYSTEM)
        facility = facility or identifier_value(identifiers, ODS_SITE_SYSTEM)
        if level in ("si", "bu"):
            facility = facility or identifier_value(identifiers, ODS_ORGANISATION_SYSTEM)
        elif level in ("bd", "ro", "wa"):
            codes = (as_text(i.get("value")) for i in identifiers if i.get("system") not in _OURS)
            value = next((c for c in codes if c), None) or as_text(data.get("name"))
            if value:
                levels.setdefault(level, value)
        if description is None:
            description = as_text(data.get("description"))
            if description is None and level is None and current is resolved:
                description = as_text(data.get("name"))
        current = message.resolve(data.get("partOf"), current, "Location")
    location = Location(
        ward=levels.get("wa"),
        room=levels.get("ro"),
        bed=levels.get("bd"),
        facility=facility,
        point_of_care=point_of_care,
        description=description,
    )
    return location if location != Location() else None
