"""What every FHIR-out writer shares: the resources gathered for one Bundle (`Resources`: ids,
references, each resource added once per role), the provider Organization, and the writers of
FHIR dateTimes, codings and concepts.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC
from typing import Any, Final

from mappings.model import ODS_ORGANISATION_SYSTEM, CareEvent, Coding, Instant, Precision

_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://carebridge.nhs.uk/")
PROFILE: Final = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-"
"""The UK Core profile URL prefix (``PROFILE + "Patient"``)."""


class Resources:
    """One render: the event, and the resources gathered for the Bundle, by role."""

    def __init__(self, event: CareEvent) -> None:
        self.event = event
        self.feed = event.source.feed
        self.resources: dict[str, dict[str, Any]] = {}

    def id(self, role: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"{self.event.event_id}/{role}"))

    def add(self, role: str, resource: dict[str, Any]) -> dict[str, str]:
        """Add a resource (once per role) and return a reference to it."""
        resource_id = self.id(role)
        if role not in self.resources:
            self.resources[role] = {"resourceType": resource.pop("resourceType"), "id": resource_id}
            self.resources[role].update(resource)
        return {"reference": f"urn:uuid:{resource_id}"}


def provider(out: Resources) -> dict[str, str] | None:
    stay = out.event.stay
    ods = (stay.provider_ods if stay else None) or out.event.source.facility_ods
    if ods is None:
        return None
    return out.add(
        "provider",
        {
            "resourceType": "Organization",
            "meta": {"profile": [PROFILE + "Organization"]},
            "identifier": [{"system": ODS_ORGANISATION_SYSTEM, "value": ods}],
        },
    )


def fhir_date_time(instant: Instant) -> str:
    """A FHIR dateTime at the precision the source gave.

    A time is written in UTC (``Z``) with seconds, as FHIR requires (an hour or minute precision
    becomes whole seconds). A date, month or year is written as the source's own digits, never
    converted: a date moved to UTC could become the evening before.
    """
    if instant.precision in (Precision.YEAR, Precision.MONTH, Precision.DAY):
        digits = re.sub(r"\D", "", instant.original)
        width = {Precision.YEAR: 4, Precision.MONTH: 6, Precision.DAY: 8}[instant.precision]
        if len(digits) >= width:
            digits = digits[:width]
            return "-".join(p for p in (digits[:4], digits[4:6], digits[6:8]) if p)
        return instant.utc.date().isoformat()
    utc = instant.utc.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if instant.precision is Precision.FRACTION and utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def instant_text(instant: Instant | None) -> str | None:
    """A FHIR ``instant`` (seconds and zone required), or None when the source gave less."""
    if instant is None or instant.precision not in (Precision.SECOND, Precision.FRACTION):
        return None
    return fhir_date_time(instant)


def as_coding(coding: Coding) -> dict[str, str]:
    return compact({"system": coding.system, "code": coding.code, "display": coding.display})


def as_concept(coding: Coding | None) -> dict[str, Any] | None:
    """A CodeableConcept. A code outside the national list travels under the system the model
    holds it in (the feed's local system): labelled for what it is, never as national."""
    if coding is None:
        return None
    return {"coding": [as_coding(coding)]}


def compact(data: dict[str, Any]) -> dict[str, Any]:
    """The dict without empty values: FHIR forbids empty elements."""
    return {k: v for k, v in data.items() if v is not None and v != [] and v != {} and v != ""}
