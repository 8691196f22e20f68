"""FHIR out: the Encounter's location history, and a Location per level (site, ward, room,
bed), each ``partOf`` the one above, so two places on one site share its Location.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

import orjson

from mappings.fhir.outbound.resources import PROFILE, Resources, compact
from mappings.fhir.vocabulary import PHYSICAL_TYPE_SYSTEM, POINT_OF_CARE_SYSTEM
from mappings.model import ODS_SITE_SYSTEM, Location, Stay

_LEVELS: Final = (("wa", "Ward"), ("ro", "Room"), ("bd", "Bed"))


def locations(out: Resources, stay: Stay, status: str) -> list[dict[str, Any]]:
    """The location history: where the patient came from (completed), then where they are
    (or were, for a finished stay)."""
    event = out.event
    present = event.location_to or stay.location
    present = present if present != Location() else None
    rendered: list[dict[str, Any]] = []
    if event.location_from not in (None, Location(), present):
        assert event.location_from is not None
        rendered.append({"location": place(out, event.location_from), "status": "completed"})
    if present is not None:
        present_status = {"finished": "completed", "planned": "planned"}.get(status, "active")
        rendered.append({"location": place(out, present), "status": present_status})
    return rendered


def place(out: Resources, location: Location) -> dict[str, str]:
    """A Location per level (site, ward, room, bed), each part of the one above, so two
    places on one site share its Location; the most specific one carries the description
    and the HL7 point of care."""
    key = "location"
    parent: dict[str, str] | None = None
    if location.facility:
        key += "/" + quote(location.facility, safe="")
        site = [{"system": ODS_SITE_SYSTEM, "value": location.facility}]
        parent = out.add(key, _location(location.facility, ("si", "Site"), identifier=site))
    levels = [
        (level, value)
        for level, value in zip(_LEVELS, (location.ward, location.room, location.bed), strict=True)
        if value
    ]
    extra = compact(
        {
            "description": location.description,
            "identifier": (
                [{"system": POINT_OF_CARE_SYSTEM, "value": location.point_of_care}]
                if location.point_of_care
                else None
            ),
        }
    )
    if not levels and not extra and parent is not None:
        return parent
    for index, (level, value) in enumerate(levels):
        key += f"/{level[0]}:{quote(value, safe='')}"
        if index < len(levels) - 1:
            parent = out.add(key, _location(value, level, parent=parent))
    last_level, last_value = levels[-1] if levels else (None, None)
    if extra:
        key += "#" + quote(orjson.dumps(extra).decode(), safe="")
    return out.add(key, _location(last_value, last_level, parent=parent, **extra))


def _location(
    name: str | None,
    level: tuple[str, str] | None,
    *,
    parent: dict[str, str] | None = None,
    identifier: list[dict[str, str]] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    return compact(
        {
            "resourceType": "Location",
            "meta": {"profile": [PROFILE + "Location"]},
            "identifier": identifier,
            "name": name,
            "description": description,
            "mode": "instance",
            "physicalType": (
                {
                    "coding": [
                        {"system": PHYSICAL_TYPE_SYSTEM, "code": level[0], "display": level[1]}
                    ]
                }
                if level
                else None
            ),
            "partOf": parent,
        }
    )
