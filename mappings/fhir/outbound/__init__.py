"""FHIR R4 out: a care event rendered as a UK Core-shaped messaging Bundle, as plain dicts.

`render_fhir_message` builds the Bundle from dicts and lists only: no fhir.resources model is
built at run time (validating through the models costs milliseconds, orjson.dumps of the dict
microseconds). Tests validate every rendered Bundle, and each resource in it, against the R4B
models instead.

The Bundle (type ``message``) holds, in this order: the MessageHeader (event from
`CARE_EVENT_SYSTEM`, focus on the Encounter, or on the Patient for a person update or merge),
the Patient (and, for a merge, the retired Patient), the Encounter when the event has a stay,
the provider Organization, the responsible clinician's Practitioner and the Locations the
Encounter's location history names (bed, room and ward, each ``partOf`` the next, up to the
ODS site).

Every id is a version-5 UUID of the event id and the resource's role, and the Bundle identifier
is ``urn:uuid:`` of the Bundle's id: rendering the same event again gives the same resources,
so a replay is recognisably the same message. Only ``Bundle.timestamp`` comes from ``now``;
without it, it is the event's own time (received, else recorded, else occurred), so that two
renders of one event are byte-identical.

Location hiding (ZU8, `Patient.location_hidden`) leaves the patient's address and GP out and
marks the Patient ``meta.security`` restricted (``R``), which `mappings.fhir.inbound` reads back.
docs/mapping.md (FHIR part) has the tables and the choices.

This module writes the Bundle and the MessageHeader; each other resource has its writer
(`patient`, `encounter`, `location`), and `resources` holds what they share.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from mappings.fhir.outbound.encounter import ENCOUNTER_STATUS as ENCOUNTER_STATUS
from mappings.fhir.outbound.encounter import encounter_resource
from mappings.fhir.outbound.patient import patient_resource, retired_reference
from mappings.fhir.outbound.resources import PROFILE, Resources, compact, provider
from mappings.fhir.outbound.resources import fhir_date_time as fhir_date_time
from mappings.fhir.vocabulary import CARE_EVENT_SYSTEM, EVENT_CODES, EVENT_OCCURRED_URL
from mappings.model import CareEvent, EventKind

__all__ = ["ENCOUNTER_STATUS", "EVENT_DISPLAYS", "fhir_date_time", "render_fhir_message"]

EVENT_DISPLAYS: Final[dict[EventKind, str]] = {
    EventKind.ADMISSION: "Admission",
    EventKind.TRANSFER: "Transfer",
    EventKind.DISCHARGE: "Discharge",
    EventKind.REGISTRATION: "Registration (attendance)",
    EventKind.PRE_ADMISSION: "Pre-admission",
    EventKind.LEAVE_START: "Leave of absence starts",
    EventKind.LEAVE_END: "Leave of absence ends",
    EventKind.UPDATE: "Stay update",
    EventKind.PERSON_UPDATE: "Person update",
    EventKind.CANCEL_ADMISSION: "Cancel admission",
    EventKind.CANCEL_TRANSFER: "Cancel transfer",
    EventKind.CANCEL_DISCHARGE: "Cancel discharge",
    EventKind.CANCEL_PRE_ADMISSION: "Cancel pre-admission",
    EventKind.CANCEL_LEAVE_START: "Cancel leave of absence",
    EventKind.CANCEL_LEAVE_END: "Cancel return from leave of absence",
    EventKind.MERGE: "Merge patient records",
}
"""Display of each `CARE_EVENT_SYSTEM` code."""

_ORDER: Final = {"patient": 0, "retired-patient": 1, "encounter": 2, "provider": 3}


def render_fhir_message(event: CareEvent, *, now: datetime | None = None) -> dict[str, Any]:
    """The event as a FHIR R4 messaging Bundle (plain, orjson-serialisable dicts).

    `now` is the send time for ``Bundle.timestamp``; it changes nothing else.
    """
    out = Resources(event)
    patient_ref = out.add("patient", patient_resource(out, event.patient))
    if event.merge is not None:
        retired = retired_reference(out, patient_ref)
        out.resources["patient"]["link"] = [{"other": retired, "type": "replaces"}]
    focus = patient_ref
    if event.stay is not None:
        focus = out.add("encounter", encounter_resource(out, event.stay, patient_ref))
    header = _header(out, focus)
    bundle_id = out.id("bundle")
    roles = sorted(out.resources, key=lambda role: _ORDER.get(role, len(_ORDER)))
    entries = [header, *(out.resources[role] for role in roles)]
    timestamp = _timestamp(event, now)
    return compact(
        {
            "resourceType": "Bundle",
            "id": bundle_id,
            "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{bundle_id}"},
            "type": "message",
            "timestamp": timestamp,
            "entry": [{"fullUrl": f"urn:uuid:{e['id']}", "resource": e} for e in entries],
        }
    )


def _header(out: Resources, focus: dict[str, str]) -> dict[str, Any]:
    event = out.event
    occurred = event.occurred_at
    responsible = provider(out)
    return compact(
        {
            "resourceType": "MessageHeader",
            "id": out.id("message-header"),
            "meta": {"profile": [PROFILE + "MessageHeader"]},
            "extension": (
                [{"url": EVENT_OCCURRED_URL, "valueDateTime": fhir_date_time(occurred)}]
                if occurred
                else None
            ),
            "eventCoding": {
                "system": CARE_EVENT_SYSTEM,
                "code": EVENT_CODES[event.kind],
                "display": EVENT_DISPLAYS[event.kind],
            },
            "source": {
                "name": "Carebridge",
                "endpoint": f"urn:carebridge:{quote(out.feed, safe='')}",
            },
            "responsible": responsible,
            "focus": [focus],
        }
    )


def _timestamp(event: CareEvent, now: datetime | None) -> str | None:
    if now is not None:
        return now.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if event.received_at is not None:
        return event.received_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    for instant in (event.recorded_at, event.occurred_at):
        if instant is not None:
            return instant.utc.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return None
