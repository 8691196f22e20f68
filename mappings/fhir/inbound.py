"""FHIR R4 (UK Core) in: a message, transaction or batch Bundle, or one Encounter, as a care event.

`map_fhir` takes the raw JSON bytes and, in this order:

1. refuses hostile input before any model sees it: more than `MAX_BYTES`, not JSON (the
   reason names the line and column), nested deeper than `MAX_DEPTH`, more than `MAX_NODES`
   objects and arrays, or a Bundle of more than `MAX_ENTRIES` entries;
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
event. ``person-update`` and ``merge`` need no Encounter.

docs/mapping.md (FHIR part) has the field-by-field tables and the reasons for each choice.
"""

from __future__ import annotations

from mappings.fhir.event import _encounter_status, _kind, _person_kind
from mappings.fhir.message import _Message
from mappings.fhir.patient import _PatientReader
from mappings.fhir.read import MAX_BYTES as MAX_BYTES
from mappings.fhir.read import MAX_DEPTH as MAX_DEPTH
from mappings.fhir.read import MAX_ENTRIES as MAX_ENTRIES
from mappings.fhir.read import MAX_NODES as MAX_NODES
from mappings.fhir.read import _load
from mappings.fhir.source import _History, _occurred_at, _source
from mappings.fhir.stay import _StayReader
from mappings.fhir.values import _instant, _obj, _zone
from mappings.fhir.vocabulary import ACT_CODE_SYSTEM as ACT_CODE_SYSTEM
from mappings.fhir.vocabulary import ADMISSION_METHOD_URL as ADMISSION_METHOD_URL
from mappings.fhir.vocabulary import CARE_EVENT_SYSTEM as CARE_EVENT_SYSTEM
from mappings.fhir.vocabulary import CLASS_TO_ACT as CLASS_TO_ACT
from mappings.fhir.vocabulary import CONFIDENTIALITY_SYSTEM as CONFIDENTIALITY_SYSTEM
from mappings.fhir.vocabulary import CURRENT_CONTEXT_SYSTEM as CURRENT_CONTEXT_SYSTEM
from mappings.fhir.vocabulary import DISCHARGE_METHOD_URL as DISCHARGE_METHOD_URL
from mappings.fhir.vocabulary import ETHNIC_CATEGORY_URL as ETHNIC_CATEGORY_URL
from mappings.fhir.vocabulary import EVENT_CODES as EVENT_CODES
from mappings.fhir.vocabulary import EVENT_OCCURRED_URL as EVENT_OCCURRED_URL
from mappings.fhir.vocabulary import GMC_NUMBER_SYSTEM as GMC_NUMBER_SYSTEM
from mappings.fhir.vocabulary import GMP_NUMBER_SYSTEM as GMP_NUMBER_SYSTEM
from mappings.fhir.vocabulary import IDENTIFIER_TYPE_SYSTEM as IDENTIFIER_TYPE_SYSTEM
from mappings.fhir.vocabulary import LEAVE_EXPECTED_RETURN_URL as LEAVE_EXPECTED_RETURN_URL
from mappings.fhir.vocabulary import LEGAL_STATUS_CONTEXT_SYSTEM as LEGAL_STATUS_CONTEXT_SYSTEM
from mappings.fhir.vocabulary import LEGAL_STATUS_PERIOD_URL as LEGAL_STATUS_PERIOD_URL
from mappings.fhir.vocabulary import LEGAL_STATUS_URL as LEGAL_STATUS_URL
from mappings.fhir.vocabulary import LEGAL_STATUS_WALES as LEGAL_STATUS_WALES
from mappings.fhir.vocabulary import LOCAL_IDENTIFIER_PREFIX as LOCAL_IDENTIFIER_PREFIX
from mappings.fhir.vocabulary import (
    NHS_NUMBER_VERIFICATION_SYSTEM as NHS_NUMBER_VERIFICATION_SYSTEM,
)
from mappings.fhir.vocabulary import NHS_NUMBER_VERIFICATION_URL as NHS_NUMBER_VERIFICATION_URL
from mappings.fhir.vocabulary import NULL_FLAVOR_SYSTEM as NULL_FLAVOR_SYSTEM
from mappings.fhir.vocabulary import PARTICIPATION_TYPE_SYSTEM as PARTICIPATION_TYPE_SYSTEM
from mappings.fhir.vocabulary import PHYSICAL_TYPE_SYSTEM as PHYSICAL_TYPE_SYSTEM
from mappings.fhir.vocabulary import POINT_OF_CARE_SYSTEM as POINT_OF_CARE_SYSTEM
from mappings.hl7v2.types import Reading
from mappings.model import CANCELS, CareEvent, EventKind
from mappings.profile import FeedProfile, event_id

__all__ = [
    "ADMISSION_METHOD_URL",
    "CARE_EVENT_SYSTEM",
    "DISCHARGE_METHOD_URL",
    "ETHNIC_CATEGORY_URL",
    "EVENT_CODES",
    "EVENT_OCCURRED_URL",
    "LEAVE_EXPECTED_RETURN_URL",
    "LEGAL_STATUS_PERIOD_URL",
    "LEGAL_STATUS_URL",
    "LOCAL_IDENTIFIER_PREFIX",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_ENTRIES",
    "MAX_NODES",
    "NHS_NUMBER_VERIFICATION_URL",
    "POINT_OF_CARE_SYSTEM",
    "map_fhir",
]


def map_fhir(raw: bytes, profile: FeedProfile) -> CareEvent:
    """Map one FHIR R4 message to a care event, or raise `MappingError` saying why not."""
    message = _Message.open(_load(raw))
    reading = Reading(feed=profile.feed, zone=_zone(profile.timezone))
    header_kind, trigger = message.header_event()
    person_event = header_kind in (EventKind.PERSON_UPDATE, EventKind.MERGE)
    encounter = None if person_event else message.encounter()
    history = _History(encounter, reading) if encounter is not None else None
    if encounter is None or history is None:
        kind = _person_kind(header_kind, trigger, message)
    else:
        status = _encounter_status(encounter)
        kind = _kind(header_kind, status, history)
        trigger = trigger or status
    patients = _PatientReader(message, reading)
    patient_resource, patient = patients.subject(encounter)
    stay = location_from = location_to = None
    if encounter is not None and history is not None:
        stays = _StayReader(message, encounter, history, kind, profile, reading)
        stay = stays.stay()
        location_from, location_to = stays.movement()
    source = _source(message, profile, reading, stay)
    focus = encounter or patient_resource
    recorded_at = None
    if focus is not None:
        meta = _obj(focus.data.get("meta")) or {}
        recorded_at = _instant(meta.get("lastUpdated"), f"{focus.path}.meta.lastUpdated", reading)
    return CareEvent(
        event_id=event_id(profile.feed, source.message_id),
        kind=kind,
        trigger=trigger,
        occurred_at=_occurred_at(message, history, kind, stay, source, reading),
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
