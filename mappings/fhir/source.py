"""Where the news came from (`MessageSource`), and when it happened: the event's time and
the Encounter's location and status history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mappings.errors import MappingError
from mappings.fhir.values import (
    as_object,
    as_objects,
    as_text,
    as_texts,
    extensions_of,
    fhir_instant,
    logical_ods,
    ods_of,
)
from mappings.fhir.vocabulary import EVENT_OCCURRED_URL
from mappings.hl7v2.types import Reading
from mappings.model import (
    ODS_ORGANISATION_SYSTEM,
    EventKind,
    Instant,
    MessageFormat,
    MessageSource,
    Stay,
)
from mappings.profile import FeedProfile

if TYPE_CHECKING:
    from mappings.fhir.message import Message, Resource


# --- where the news came from, and when it happened --------------------------------------------


def message_source(
    message: Message,
    profile: FeedProfile,
    reading: Reading,
    stay: Stay | None,
) -> MessageSource:
    top, header = message.top, message.header
    bundle = top if top.type == "Bundle" else None
    identifier = as_object(top.data.get("identifier")) if bundle else None
    candidates = [
        (as_text(identifier.get("value")) if identifier else None),
        (as_text(header.data.get("id")) if header else None),
        (as_text(top.data.get("id"))),
    ]
    message_id = next((c for c in candidates if c), None)
    if message_id is None:
        location = "Bundle.identifier" if bundle else "Encounter.id"
        raise MappingError("message id missing", location=location, code="101")
    sent_at = (
        fhir_instant(top.data.get("timestamp"), "Bundle.timestamp", reading) if bundle else None
    )
    if bundle is not None and sent_at is None and top.data.get("type") == "message":
        reading.warn("Bundle.timestamp", "message date/time missing")
    header_source = as_object(header.data.get("source")) if header else None
    facility = None
    if header is not None:
        for role in ("sender", "responsible"):
            org = message.resolve(header.data.get(role), header, "Organization")
            facility = facility or (ods_of(org.data, ODS_ORGANISATION_SYSTEM) if org else None)
            facility = facility or logical_ods(header.data.get(role))
    profiles = as_texts((top.data.get("meta") or {}).get("profile"))
    return MessageSource(
        feed=profile.feed,
        format=MessageFormat.FHIR,
        message_id=message_id,
        system=(
            as_text(header_source.get("name")) or as_text(header_source.get("software"))
            if header_source
            else None
        ),
        facility_ods=facility or (stay.provider_ods if stay else None),
        message_type=f"Bundle/{top.data['type']}" if bundle else "Encounter",
        version="R4",
        profile=profiles[0] if profiles else None,
        sent_at=sent_at,
    )


def event_occurred_at(
    message: Message,
    history: EncounterHistory | None,
    kind: EventKind,
    stay: Stay | None,
    source: MessageSource,
    reading: Reading,
) -> Instant | None:
    """Our own extension; else the time the event has in the Encounter; else the Bundle's."""
    if message.header is not None:
        for extension in extensions_of(message.header.data, EVENT_OCCURRED_URL):
            path = f"{message.header_path}.extension"
            found = fhir_instant(extension.get("valueDateTime"), path, reading)
            if found is not None:
                return found
    if history is not None:
        own: Instant | None = None
        if stay is not None and kind in (EventKind.ADMISSION, EventKind.REGISTRATION):
            own = stay.admitted_at
        elif stay is not None and kind is EventKind.DISCHARGE:
            own = stay.discharged_at
        elif kind in (EventKind.TRANSFER, EventKind.CANCEL_TRANSFER):
            own = history.arrived()
        own = own or history.status_since()
        if own is not None:
            return own
    if source.sent_at is not None:
        reading.warn("Bundle.timestamp", "event date/time not in the Encounter; taken from here")
        return source.sent_at
    reading.warn("Encounter.period", "event date/time missing and nothing to take it from")
    return None


class EncounterHistory:
    """An Encounter's location and status history."""

    def __init__(self, encounter: Resource, reading: Reading) -> None:
        self.encounter = encounter
        self.reading = reading
        self.locations = as_objects(encounter.data.get("location"))
        statuses = [as_text(entry.get("status")) for entry in self.locations]
        active = [i for i, s in enumerate(statuses) if s == "active"]
        current = [i for i, s in enumerate(statuses) if s != "planned"]
        self.present = active[-1] if active else (current[-1] if current else None)
        earlier = [
            i
            for i, s in enumerate(statuses)
            if self.present is not None and i < self.present and s == "completed"
        ]
        self.previous = earlier[-1] if earlier else None
        self.present_active = self.present is not None and bool(active)

    def moved(self) -> bool:
        """An earlier location completed and the present one active: a transfer."""
        return self.present_active and self.previous is not None

    def arrived(self) -> Instant | None:
        if self.present is None:
            return None
        period = as_object(self.locations[self.present].get("period")) or {}
        path = f"{self.encounter.path}.location[{self.present}].period.start"
        return fhir_instant(period.get("start"), path, self.reading)

    def status_since(self) -> Instant | None:
        """When the Encounter took its present status, from statusHistory."""
        status = self.encounter.data.get("status")
        history = as_objects(self.encounter.data.get("statusHistory"))
        for index in range(len(history) - 1, -1, -1):
            if history[index].get("status") == status:
                period = as_object(history[index].get("period")) or {}
                path = f"{self.encounter.path}.statusHistory[{index}].period.start"
                return fhir_instant(period.get("start"), path, self.reading)
        return None
