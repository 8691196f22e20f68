"""FHIR R4 (UK Core) in: a message, transaction or batch Bundle, or one Encounter, as a care event.

`map_fhir` takes the raw JSON bytes and, in this order:

1. refuses hostile input before any model sees it (`mappings.fhir.read` holds the limits):
   more than `MAX_BYTES`, not JSON (the reason names the line and column), nested deeper than
   `MAX_DEPTH`, more than `MAX_NODES` objects and arrays, or a Bundle of more than
   `MAX_ENTRIES` entries;
2. validates, with the fhir.resources R4B models, the Bundle's own elements and each resource
   it reads (MessageHeader, Encounter, Patient, Location, Organization, Practitioner), when it
   first reads it: an invalid one is a `MappingError` whose location is the element's path
   (``Bundle.entry[1].resource.period.start``). Resources it does not read are not validated:
   a sender's broken Condition does not stop its discharge. Codes the models leave unchecked
   and the mapping depends on (``Bundle.type``, ``Encounter.status``) are checked here (103);
3. finds the event: the MessageHeader's focus (else the Bundle's only Encounter), resolving
   references the way FHIR does inside a Bundle (``urn:uuid:`` full URLs, ``Patient/123``
   relative to the entries, ``#id`` contained);
4. maps the Encounter (the stay), its subject (the patient) and the header (the source).

What happened (`EventKind`): the MessageHeader's event when it is Carebridge's own
(`CARE_EVENT_SYSTEM`), a Da Vinci notification or an HL7 v2 trigger; otherwise the
Encounter's status: ``planned`` pre-admission; ``arrived``/``triaged``/``in-progress``
admission, or transfer when the location history shows a move (an earlier location
``completed`` and the last one ``active``); ``onleave`` leave start; ``finished`` discharge;
``cancelled`` and ``entered-in-error`` cancel the admission; ``unknown`` is an update. An
Encounter ``entered-in-error`` under a header event that is not itself a cancel cancels that
event. A header event the Encounter contradicts (a discharge on an Encounter that is ``onleave``,
or ``in-progress`` with no ``period.end``; a leave on a ``finished`` one) is refused, naming
both elements (`check_event_agrees`): leave is never a discharge. ``person-update`` and
``merge`` need no Encounter.

docs/mapping.md (FHIR part) has the field-by-field tables and the reasons for each choice.
"""

from __future__ import annotations

from mappings.fhir.event import (
    check_event_agrees,
    encounter_event_kind,
    encounter_status,
    person_event_kind,
)
from mappings.fhir.message import Message
from mappings.fhir.patient import PatientReader
from mappings.fhir.read import load_json
from mappings.fhir.source import EncounterHistory, event_occurred_at, message_source
from mappings.fhir.stay import StayReader
from mappings.fhir.values import as_object, feed_zone, fhir_instant
from mappings.hl7v2.types import Reading
from mappings.model import CANCELS, CareEvent, EventKind
from mappings.profile import FeedProfile, event_id

__all__ = ["map_fhir"]


def map_fhir(raw: bytes, profile: FeedProfile) -> CareEvent:
    """Map one FHIR R4 message to a care event, or raise `MappingError` saying why not."""
    message = Message.open(load_json(raw))
    reading = Reading(
        feed=profile.feed,
        zone=feed_zone(profile.timezone),
        test_nhs_numbers=profile.nhs_numbers == "test",
    )
    header_kind, trigger = message.header_event()
    person_event = header_kind in (EventKind.PERSON_UPDATE, EventKind.MERGE)
    encounter = None if person_event else message.encounter()
    history = EncounterHistory(encounter, reading) if encounter is not None else None
    if encounter is None or history is None:
        kind = person_event_kind(header_kind, trigger, message)
    else:
        status = encounter_status(encounter)
        check_event_agrees(message, encounter, header_kind, status)
        kind = encounter_event_kind(header_kind, status, history)
        trigger = trigger or status
    patients = PatientReader(message, reading)
    patient_resource, patient = patients.subject(encounter)
    stay = location_from = location_to = None
    if encounter is not None and history is not None:
        stays = StayReader(message, encounter, history, kind, profile, reading)
        stay = stays.stay()
        location_from, location_to = stays.movement()
    source = message_source(message, profile, reading, stay)
    focus = encounter or patient_resource
    recorded_at = None
    if focus is not None:
        meta = as_object(focus.data.get("meta")) or {}
        recorded_at = fhir_instant(
            meta.get("lastUpdated"), f"{focus.path}.meta.lastUpdated", reading
        )
    return CareEvent(
        event_id=event_id(profile.feed, source.message_id),
        kind=kind,
        trigger=trigger,
        occurred_at=event_occurred_at(message, history, kind, stay, source, reading),
        recorded_at=recorded_at,
        source=source,
        patient=patient,
        stay=stay,
        location_from=location_from,
        location_to=location_to,
        cancels=CANCELS.get(kind),
        merge=patients.merge(patient_resource, patient) if kind is EventKind.MERGE else None,
        warnings=tuple(reading.warnings),
    )
