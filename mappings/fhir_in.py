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

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Final
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import orjson
from fhir.resources.R4B.bundle import Bundle as BundleModel
from fhir.resources.R4B.encounter import Encounter as EncounterModel
from fhir.resources.R4B.location import Location as LocationModel
from fhir.resources.R4B.messageheader import MessageHeader as MessageHeaderModel
from fhir.resources.R4B.organization import Organization as OrganizationModel
from fhir.resources.R4B.patient import Patient as PatientModel
from fhir.resources.R4B.practitioner import Practitioner as PractitionerModel
from pydantic import ValidationError

from mappings import nhs_number
from mappings.code_tables import CODED_ELEMENTS, CodedElement
from mappings.codes import (
    ETHNIC_CATEGORIES,
    ETHNIC_CATEGORY_ENGLAND,
    HL7_PATIENT_CLASS,
    LEGAL_STATUS_ENGLAND,
    PATIENT_CLASSES,
    TREATMENT_FUNCTION,
    local_system,
)
from mappings.errors import MappingError
from mappings.hl7v2_events import SUPPORTED_TRIGGERS
from mappings.hl7v2_types import Reading
from mappings.model import (
    CANCEL_OF,
    CANCELS,
    NHS_NUMBER_SYSTEM,
    ODS_ORGANISATION_SYSTEM,
    ODS_SITE_SYSTEM,
    Address,
    AddressUse,
    CareEvent,
    CareSetting,
    Clinician,
    Coding,
    EventKind,
    Gender,
    Identifier,
    IdentifierKind,
    Instant,
    LegalStatus,
    LegalStatusContext,
    Location,
    Merge,
    MessageFormat,
    MessageSource,
    NameUse,
    NhsNumberStatus,
    Patient,
    PersonName,
    Precision,
    Stay,
    StayStatus,
)
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

# --- the vocabulary shared with fhir_out ----------------------------------------------------

CARE_EVENT_SYSTEM: Final = "https://carebridge.nhs.uk/CodeSystem/care-event"
"""Carebridge's MessageHeader event codes: one per `EventKind` (`EVENT_CODES`)."""
EVENT_OCCURRED_URL: Final = "https://carebridge.nhs.uk/StructureDefinition/Extension-EventOccurred"
"""MessageHeader extension (valueDateTime): when the event happened (HL7 EVN-6)."""
LEAVE_EXPECTED_RETURN_URL: Final = (
    "https://carebridge.nhs.uk/StructureDefinition/Extension-LeaveExpectedReturn"
)
"""Encounter extension (valueDateTime): when a patient on leave is expected back (PV2-47)."""
LEGAL_STATUS_PERIOD_URL: Final = (
    "https://carebridge.nhs.uk/StructureDefinition/Extension-LegalStatusPeriod"
)
"""Sub-extension (valuePeriod) of the UK Core legal status: when that status applied."""
POINT_OF_CARE_SYSTEM: Final = "https://carebridge.nhs.uk/Id/point-of-care"
"""Location identifier for the HL7 point of care (PL.1), which FHIR has no element for."""
LOCAL_IDENTIFIER_PREFIX: Final = "https://carebridge.nhs.uk/Id/assigning-authority/"
"""Identifier system for an identifier whose authority is a name (``RXT``), not a URI."""
LEGAL_STATUS_CONTEXT_SYSTEM: Final = "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusContext"
LEGAL_STATUS_WALES: Final = (
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusClassificationWales"
)
CURRENT_CONTEXT_SYSTEM: Final = "https://carebridge.nhs.uk/CodeSystem/legal-status-context"
"""UK Core's context list has only admission and discharge; ``current`` is ours."""

_UKCORE: Final = "https://fhir.hl7.org.uk/StructureDefinition/"
NHS_NUMBER_VERIFICATION_URL: Final = _UKCORE + "Extension-UKCore-NHSNumberVerificationStatus"
NHS_NUMBER_VERIFICATION_SYSTEM: Final = (
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
)
ADMISSION_METHOD_URL: Final = _UKCORE + "Extension-UKCore-AdmissionMethod"
DISCHARGE_METHOD_URL: Final = _UKCORE + "Extension-UKCore-DischargeMethod"
LEGAL_STATUS_URL: Final = _UKCORE + "Extension-UKCore-LegalStatus"
ETHNIC_CATEGORY_URL: Final = _UKCORE + "Extension-UKCore-EthnicCategory"
GMC_NUMBER_SYSTEM: Final = "https://fhir.hl7.org.uk/Id/gmc-number"
GMP_NUMBER_SYSTEM: Final = "https://fhir.hl7.org.uk/Id/gmp-number"
IDENTIFIER_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"
ACT_CODE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
NULL_FLAVOR_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
PHYSICAL_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/location-physical-type"
CONFIDENTIALITY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
PARTICIPATION_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_DAVINCI_EVENTS: Final = "http://hl7.org/fhir/us/davinci-alerts/CodeSystem/notification-event"
_V2_EVENTS: Final = "http://terminology.hl7.org/CodeSystem/v2-0003"
_NHS_NUMBER_OID: Final = "urn:oid:2.16.840.1.113883.2.1.4.1"

EVENT_CODES: Final[Mapping[EventKind, str]] = {k: k.value.replace("_", "-") for k in EventKind}
"""The `CARE_EVENT_SYSTEM` code of each kind of event (``leave-start``, ``cancel-discharge``)."""

# HL7 v2 patient class (table 0004) <-> FHIR Encounter.class (v3 ActCode), as the HL7 v2-to-FHIR
# IG maps them; other table 0004 codes travel under their own system.
CLASS_TO_ACT: Final[Mapping[str, tuple[str, str]]] = {
    "I": ("IMP", "inpatient encounter"),
    "E": ("EMER", "emergency"),
    "O": ("AMB", "ambulatory"),
    "P": ("PRENC", "pre-admission"),
}
_ACT_TO_CLASS: Final = {"IMP": "I", "ACUTE": "I", "NONAC": "I", "EMER": "E", "AMB": "O"} | {
    "PRENC": "P"
}

# --- limits on hostile input ------------------------------------------------------------------

MAX_BYTES: Final = 8 * 1024 * 1024
"""Twice the engine's default `max_message_bytes`: the transport should have refused it first."""
MAX_DEPTH: Final = 64
"""JSON objects and arrays inside each other; a real Bundle needs about 15."""
MAX_NODES: Final = 500_000
"""JSON objects and arrays in one message."""
MAX_ENTRIES: Final = 1000
"""Entries in one Bundle; an ADT message needs about ten."""

_MODELS: Final[Mapping[str, Any]] = {
    "MessageHeader": MessageHeaderModel,
    "Encounter": EncounterModel,
    "Patient": PatientModel,
    "Location": LocationModel,
    "Organization": OrganizationModel,
    "Practitioner": PractitionerModel,
}
_BUNDLE_TYPES: Final = frozenset({"message", "transaction", "batch"})
_SHOWN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,39}")
_RELATIVE = re.compile(r"(?:.*/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?")
_DATE_TIME = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?"
)
_BOM = b"\xef\xbb\xbf"

JsonObject = dict[str, Any]


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


# --- reading the JSON safely ------------------------------------------------------------------


def _load(raw: bytes) -> JsonObject:
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
    stack: list[tuple[Any, int]] = [(document, 1)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise MappingError(f"JSON nested deeper than {MAX_DEPTH} levels", code="102")
        if nodes > MAX_NODES:
            raise MappingError(f"more than {MAX_NODES:,} JSON objects and arrays", code="102")
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def _shown(value: object) -> str:
    """A sender's code for an error reason: short and plain as sent, anything else not echoed."""
    return value if isinstance(value, str) and _SHOWN.fullmatch(value) else "(unreadable)"


def _invalid(exc: ValidationError, path: str) -> MappingError:
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


# --- the resources of one message ---------------------------------------------------------------


@dataclass(slots=True)
class _Resource:
    """One resource of the message, where it sits, and whether the models have checked it."""

    data: JsonObject
    path: str
    """``Bundle.entry[2].resource``, ``Encounter``, ``Encounter.contained[0]``."""
    container: _Resource | None = None
    checked: bool = False
    full_url: str | None = None

    @property
    def type(self) -> str:
        return str(self.data.get("resourceType"))


class _Message:
    """The top-level resource, its entries by reference, the header and the Encounter."""

    def __init__(self, top: _Resource, entries: list[_Resource], header: _Resource | None) -> None:
        self.top = top
        self.entries = entries
        self.header = header
        self.by_url: dict[str, _Resource] = {}
        self.by_key: dict[tuple[str, str], _Resource] = {}
        for entry in entries:
            if entry.full_url:
                self.by_url.setdefault(entry.full_url, entry)
            if isinstance(entry.data.get("id"), str):
                self.by_key.setdefault((entry.type, entry.data["id"]), entry)

    @classmethod
    def open(cls, document: JsonObject) -> _Message:
        resource_type = document.get("resourceType")
        if resource_type == "Bundle":
            return cls._bundle(document)
        if resource_type == "Encounter":
            top = _Resource(document, "Encounter")
            message = cls(top, [top], None)
            message.checked(top)
            return message
        if not isinstance(resource_type, str):
            raise MappingError("resourceType missing", location="resourceType", code="101")
        raise MappingError(
            f"resource type {_shown(resource_type)} on its own is not a care event: send an "
            "Encounter, or a message, transaction or batch Bundle",
            location="resourceType",
            code="200",
        )

    @classmethod
    def _bundle(cls, document: JsonObject) -> _Message:
        shell = dict(document)
        raw_entries = document.get("entry")
        if isinstance(raw_entries, list):
            shell["entry"] = [
                {k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e
                for e in raw_entries
            ]
        try:
            BundleModel.model_validate(shell)
        except ValidationError as exc:
            raise _invalid(exc, "Bundle") from None
        bundle_type = document.get("type")
        if bundle_type not in _BUNDLE_TYPES:
            raise MappingError(
                f"Bundle type {_shown(bundle_type)} is not supported: send a message, "
                "transaction or batch Bundle",
                location="Bundle.type",
                code="200" if isinstance(bundle_type, str) else "101",
            )
        top = _Resource(document, "Bundle", checked=True)
        entries: list[_Resource] = []
        for index, entry in enumerate(_objs(raw_entries)):
            resource = entry.get("resource")
            path = f"Bundle.entry[{index}].resource"
            if resource is None:
                continue  # a transaction's DELETE, a batch's GET
            if not isinstance(resource, dict):
                raise MappingError("a resource is a JSON object", location=path, code="102")
            if not isinstance(resource.get("resourceType"), str):
                raise MappingError(
                    "resourceType missing", location=f"{path}.resourceType", code="101"
                )
            entries.append(_Resource(resource, path, full_url=_text(entry.get("fullUrl"))))
        header = next((e for e in entries if e.type == "MessageHeader"), None)
        if bundle_type == "message" and (not entries or entries[0].type != "MessageHeader"):
            raise MappingError(
                "a message Bundle starts with its MessageHeader",
                location="Bundle.entry[0].resource",
                code="100",
            )
        message = cls(top, entries, header)
        if header is not None:
            message.checked(header)
        return message

    def checked(self, resource: _Resource) -> _Resource:
        """The resource, once the R4B model of its type has validated it."""
        if resource.checked:
            return resource
        model = _MODELS.get(resource.type)
        if model is not None:
            try:
                model.model_validate(resource.data)
            except ValidationError as exc:
                raise _invalid(exc, resource.path) from None
        resource.checked = True
        return resource

    def resolve(self, reference: Any, holder: _Resource, *types: str) -> _Resource | None:
        """The resource a Reference points to inside this message, validated; None if absent."""
        ref = _text(reference.get("reference")) if isinstance(reference, dict) else None
        if ref is None:
            return None
        found: _Resource | None = None
        if ref.startswith("#"):
            container = holder.container or holder
            for index, item in enumerate(_objs(container.data.get("contained"))):
                if item.get("id") == ref[1:]:
                    path = f"{container.path}.contained[{index}]"
                    found = _Resource(item, path, container, checked=container.checked)
                    break
        else:
            found = self.by_url.get(ref)
            match = _RELATIVE.fullmatch(ref) if found is None else None
            if match is not None:
                found = self.by_key.get((match[1], match[2]))
        if found is None or (types and found.type not in types):
            return None
        return self.checked(found)

    def of_type(self, resource_type: str) -> list[_Resource]:
        return [e for e in self.entries if e.type == resource_type]

    def header_event(self) -> tuple[EventKind | None, str | None]:
        """The event the MessageHeader names, if it is one we know, and its code."""
        if self.header is None:
            return None, None
        coding = _obj(self.header.data.get("eventCoding"))
        if coding is None:
            uri = _text(self.header.data.get("eventUri"))
            return None, uri
        system, code = _text(coding.get("system")), _text(coding.get("code"))
        if code is None:
            return None, None
        kind: EventKind | None = None
        if system == CARE_EVENT_SYSTEM:
            kind = _KIND_BY_CODE.get(code)
        elif system == _DAVINCI_EVENTS:
            kind = _DAVINCI_KINDS.get(code)
        elif system == _V2_EVENTS and code in SUPPORTED_TRIGGERS:
            kind = SUPPORTED_TRIGGERS[code].kind
        return kind, code

    def encounter(self) -> _Resource | None:
        """The Encounter the message is about: the header's focus, else the only one."""
        if self.top.type == "Encounter":
            return self.top
        encounters = self.of_type("Encounter")
        focus = self.focus()
        focused = [f for f in focus if f.type == "Encounter"]
        if focus and not focused and not any(f.type == "Patient" for f in focus):
            raise MappingError(
                f"MessageHeader.focus names {_shown(focus[0].type)}, not an Encounter or a "
                "Patient: only encounter and patient events are mapped",
                location=f"{self.header_path}.focus",
                code="200",
            )
        if focused:
            return self.checked(focused[0])
        if len(encounters) == 1:
            return self.checked(encounters[0])
        if len(encounters) > 1:
            raise MappingError(
                "more than one Encounter and no MessageHeader.focus naming one",
                location="Bundle.entry",
                code="100",
            )
        return None

    def focus(self) -> list[_Resource]:
        if self.header is None:
            return []
        found = (self.resolve(f, self.header) for f in _objs(self.header.data.get("focus")))
        return [f for f in found if f is not None]

    @property
    def header_path(self) -> str:
        return self.header.path if self.header is not None else "Bundle"


def _person_kind(
    header_kind: EventKind | None, trigger: str | None, message: _Message
) -> EventKind:
    """A message without an Encounter maps only as a person update or merge."""
    if header_kind in (EventKind.PERSON_UPDATE, EventKind.MERGE):
        return header_kind
    if message.header is not None and header_kind is None:
        raise MappingError(
            f"MessageHeader event {_shown(trigger)} is not one Carebridge maps, and the message "
            "has no Encounter",
            location=f"{message.header_path}.eventCoding",
            code="201",
        )
    what = header_kind.value if header_kind else "an encounter event"
    raise MappingError(
        f"no Encounter in the message, which {what} needs", location="Bundle.entry", code="101"
    )


# --- what happened ------------------------------------------------------------------------------

_KIND_BY_CODE: Final = {code: kind for kind, code in EVENT_CODES.items()}
_DAVINCI_KINDS: Final = {
    "notification-admit": EventKind.ADMISSION,
    "notification-transfer": EventKind.TRANSFER,
    "notification-discharge": EventKind.DISCHARGE,
}
_KIND_BY_STATUS: Final = {
    "planned": EventKind.PRE_ADMISSION,
    "arrived": EventKind.ADMISSION,
    "triaged": EventKind.ADMISSION,
    "in-progress": EventKind.ADMISSION,
    "onleave": EventKind.LEAVE_START,
    "finished": EventKind.DISCHARGE,
    "cancelled": EventKind.CANCEL_ADMISSION,
    "entered-in-error": EventKind.CANCEL_ADMISSION,
    "unknown": EventKind.UPDATE,
}
_STAY_STATUS: Final[Mapping[str, StayStatus | None]] = {
    "planned": StayStatus.PLANNED,
    "arrived": StayStatus.ACTIVE,
    "triaged": StayStatus.ACTIVE,
    "in-progress": StayStatus.ACTIVE,
    "onleave": StayStatus.ON_LEAVE,
    "finished": StayStatus.FINISHED,
    "cancelled": StayStatus.CANCELLED,
    "entered-in-error": StayStatus.CANCELLED,
    "unknown": None,
}
# An Encounter entered in error undoes the event: the stay is as it was before it.
_AFTER_CANCEL: Final = {
    EventKind.CANCEL_ADMISSION: StayStatus.CANCELLED,
    EventKind.CANCEL_PRE_ADMISSION: StayStatus.CANCELLED,
    EventKind.CANCEL_TRANSFER: StayStatus.ACTIVE,
    EventKind.CANCEL_DISCHARGE: StayStatus.ACTIVE,
    EventKind.CANCEL_LEAVE_START: StayStatus.ACTIVE,
    EventKind.CANCEL_LEAVE_END: StayStatus.ON_LEAVE,
}
# Which location the patient leaves and arrives at: the present one, or the one before it.
_MOVES: Final[Mapping[EventKind, tuple[str | None, str | None]]] = {
    EventKind.ADMISSION: (None, "present"),
    EventKind.REGISTRATION: (None, "present"),
    EventKind.TRANSFER: ("previous", "present"),
    EventKind.CANCEL_TRANSFER: ("previous", "present"),
    EventKind.DISCHARGE: ("present", None),
    EventKind.LEAVE_START: ("present", None),
    EventKind.LEAVE_END: (None, "present"),
    EventKind.CANCEL_DISCHARGE: (None, "present"),
}
_OPEN_STAY: Final = frozenset(
    {
        EventKind.ADMISSION,
        EventKind.TRANSFER,
        EventKind.REGISTRATION,
        EventKind.PRE_ADMISSION,
        EventKind.LEAVE_START,
        EventKind.LEAVE_END,
    }
)


def _encounter_status(encounter: _Resource) -> str:
    status = encounter.data.get("status")
    if status not in _STAY_STATUS:
        raise MappingError(
            f"status {_shown(status)} is not an Encounter status",
            location=f"{encounter.path}.status",
            code="103",
        )
    return str(status)


def _kind(header_kind: EventKind | None, status: str, history: _History) -> EventKind:
    if header_kind is not None:
        if status == "entered-in-error" and header_kind not in CANCELS:
            return CANCEL_OF.get(header_kind, EventKind.CANCEL_ADMISSION)
        return header_kind
    kind = _KIND_BY_STATUS[status]
    if kind is EventKind.ADMISSION and history.moved():
        return EventKind.TRANSFER
    return kind


# --- where the news came from, and when it happened --------------------------------------------


def _source(
    message: _Message,
    profile: FeedProfile,
    reading: Reading,
    stay: Stay | None,
) -> MessageSource:
    top, header = message.top, message.header
    bundle = top if top.type == "Bundle" else None
    identifier = _obj(top.data.get("identifier")) if bundle else None
    candidates = [
        (_text(identifier.get("value")) if identifier else None),
        (_text(header.data.get("id")) if header else None),
        (_text(top.data.get("id"))),
    ]
    message_id = next((c for c in candidates if c), None)
    if message_id is None:
        location = "Bundle.identifier" if bundle else "Encounter.id"
        raise MappingError("message id missing", location=location, code="101")
    sent_at = _instant(top.data.get("timestamp"), "Bundle.timestamp", reading) if bundle else None
    if bundle is not None and sent_at is None and top.data.get("type") == "message":
        reading.warn("Bundle.timestamp", "message date/time missing")
    header_source = _obj(header.data.get("source")) if header else None
    facility = None
    if header is not None:
        for role in ("sender", "responsible"):
            org = message.resolve(header.data.get(role), header, "Organization")
            facility = facility or (_ods(org.data, ODS_ORGANISATION_SYSTEM) if org else None)
            facility = facility or _logical_ods(header.data.get(role))
    profiles = _texts((top.data.get("meta") or {}).get("profile"))
    return MessageSource(
        feed=profile.feed,
        format=MessageFormat.FHIR,
        message_id=message_id,
        system=(
            _text(header_source.get("name")) or _text(header_source.get("software"))
            if header_source
            else None
        ),
        facility_ods=facility or (stay.provider_ods if stay else None),
        message_type=f"Bundle/{top.data['type']}" if bundle else "Encounter",
        version="R4",
        profile=profiles[0] if profiles else None,
        sent_at=sent_at,
    )


def _occurred_at(
    message: _Message,
    history: _History | None,
    kind: EventKind,
    stay: Stay | None,
    source: MessageSource,
    reading: Reading,
) -> Instant | None:
    """Our own extension; else the time the event has in the Encounter; else the Bundle's."""
    if message.header is not None:
        for extension in _extensions(message.header.data, EVENT_OCCURRED_URL):
            path = f"{message.header_path}.extension"
            found = _instant(extension.get("valueDateTime"), path, reading)
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


class _History:
    """An Encounter's location and status history."""

    def __init__(self, encounter: _Resource, reading: Reading) -> None:
        self.encounter = encounter
        self.reading = reading
        self.locations = _objs(encounter.data.get("location"))
        statuses = [_text(entry.get("status")) for entry in self.locations]
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
        period = _obj(self.locations[self.present].get("period")) or {}
        path = f"{self.encounter.path}.location[{self.present}].period.start"
        return _instant(period.get("start"), path, self.reading)

    def status_since(self) -> Instant | None:
        """When the Encounter took its present status, from statusHistory."""
        status = self.encounter.data.get("status")
        history = _objs(self.encounter.data.get("statusHistory"))
        for index in range(len(history) - 1, -1, -1):
            if history[index].get("status") == status:
                period = _obj(history[index].get("period")) or {}
                path = f"{self.encounter.path}.statusHistory[{index}].period.start"
                return _instant(period.get("start"), path, self.reading)
        return None


# --- the patient --------------------------------------------------------------------------------

_NAME_USES: Final = {
    "official": NameUse.OFFICIAL,
    "usual": NameUse.USUAL,
    "nickname": NameUse.ALIAS,
    "anonymous": NameUse.ALIAS,
    "temp": NameUse.ALIAS,
    "old": NameUse.OLD,
    "maiden": NameUse.MAIDEN,
}
_GENDERS: Final = {g.value: g for g in Gender}
_ADDRESS_USES: Final = {
    "home": AddressUse.HOME,
    "work": AddressUse.WORK,
    "temp": AddressUse.TEMPORARY,
    "old": AddressUse.OLD,
    "billing": AddressUse.POSTAL,
}
_HIDDEN: Final = frozenset({"R", "V"})


class _PatientReader:
    def __init__(self, message: _Message, reading: Reading) -> None:
        self.message = message
        self.reading = reading

    def subject(self, encounter: _Resource | None) -> tuple[_Resource | None, Patient]:
        """The patient resource and the mapped patient: the Encounter's subject, which must
        resolve or at least carry an identifier (a care event about an unknown person is
        useless); without an Encounter, the focus Patient (else the one not replaced)."""
        if encounter is not None:
            subject = encounter.data.get("subject")
            path = f"{encounter.path}.subject"
            if not isinstance(subject, dict):
                raise MappingError("the Encounter has no subject", location=path, code="101")
            resource = self.message.resolve(subject, encounter)
            if resource is not None and resource.type != "Patient":
                raise MappingError(
                    f"the subject is a {_shown(resource.type)}, not a Patient",
                    location=path,
                    code="102",
                )
            if resource is None:
                return None, self._logical(subject, path)
            return resource, self.patient(resource)
        resource = self._person()
        return resource, self.patient(resource)

    def _person(self) -> _Resource:
        focused = [f for f in self.message.focus() if f.type == "Patient"]
        patients = focused or [
            p for p in self.message.of_type("Patient") if not _links(p.data, "replaced-by")
        ]
        if not patients:
            raise MappingError("no Patient in the message", location="Bundle.entry", code="101")
        return self.message.checked(patients[0])

    def _logical(self, subject: JsonObject, path: str) -> Patient:
        identifier = _obj(subject.get("identifier"))
        if identifier is None or _text(identifier.get("value")) is None:
            raise MappingError(
                "the patient is not in the message and the reference has no identifier",
                location=path,
                code="101",
            )
        self.reading.warn(path, "patient not in the message; only the reference's identifier used")
        found = self._identifier(identifier, f"{path}.identifier")
        return Patient(identifiers=(found,) if found else ())

    def patient(self, resource: _Resource) -> Patient:
        data, path = resource.data, resource.path
        identifiers = self.identifiers(resource)
        birth_date, birth_text = self._birth_date(data.get("birthDate"), f"{path}.birthDate")
        gender = _text(data.get("gender"))
        gp_practice, gp_code = self._gp(resource)
        security = _objs((data.get("meta") or {}).get("security"))
        return Patient(
            identifiers=identifiers,
            names=tuple(n for n in map(_name, _objs(data.get("name"))) if n is not None),
            birth_date=birth_date,
            birth_date_original=birth_text,
            gender=_GENDERS.get(gender or ""),
            gender_original=gender,
            addresses=tuple(a for a in map(_address, _objs(data.get("address"))) if a),
            ethnic_category=self._ethnic_category(data, path),
            gp_practice_ods=gp_practice,
            gp_code=gp_code,
            deceased_at=_instant(
                data.get("deceasedDateTime"), f"{path}.deceasedDateTime", self.reading
            ),
            nhs_number_status=next(
                (i.verification for i in identifiers if i.verification is not None), None
            ),
            location_hidden=any(
                s.get("system") == CONFIDENTIALITY_SYSTEM and s.get("code") in _HIDDEN
                for s in security
            ),
        )

    def identifiers(self, resource: _Resource) -> tuple[Identifier, ...]:
        found: dict[tuple[IdentifierKind, str, str | None], Identifier] = {}
        for index, item in enumerate(_objs(resource.data.get("identifier"))):
            if item.get("use") == "old":
                continue  # no longer valid: never a key
            identifier = self._identifier(item, f"{resource.path}.identifier[{index}]")
            if identifier is not None:
                found.setdefault((identifier.kind, identifier.value, identifier.system), identifier)
        valid = {i.value for i in found.values() if i.kind is IdentifierKind.NHS_NUMBER}
        if len(valid) > 1:
            self.reading.warn(
                f"{resource.path}.identifier",
                "more than one valid NHS number; none is used as the NHS number",
            )
        return tuple(found.values())

    def _identifier(self, item: JsonObject, path: str) -> Identifier | None:
        value = _text(item.get("value"))
        if value is None:
            return None
        system = _text(item.get("system"))
        type_code = _first_code(item.get("type"), IDENTIFIER_TYPE_SYSTEM)
        if system not in (NHS_NUMBER_SYSTEM, _NHS_NUMBER_OID):
            if system and system.startswith(LOCAL_IDENTIFIER_PREFIX):
                system = unquote(system.removeprefix(LOCAL_IDENTIFIER_PREFIX))
            assigner = _obj(item.get("assigner")) or {}
            return Identifier(
                kind=IdentifierKind.LOCAL,
                value=value,
                system=system,
                type_code=type_code,
                assigner_ods=_logical_ods(assigner),
            )
        number = nhs_number.normalise(value)
        warnings = nhs_number.warnings_for(number)
        for warning in warnings:
            self.reading.warn(path, warning)
        verification = self._verification(item, path)
        valid = nhs_number.is_valid(number)
        return Identifier(
            kind=IdentifierKind.NHS_NUMBER if valid else IdentifierKind.UNVERIFIED_NHS_NUMBER,
            value=number,
            # an invalid number keeps no system: nothing may mistake it for an NHS number
            system=NHS_NUMBER_SYSTEM if valid else None,
            type_code=type_code,
            verification=verification,
            warnings=warnings,
        )

    def _verification(self, item: JsonObject, path: str) -> NhsNumberStatus | None:
        for extension in _extensions(item, NHS_NUMBER_VERIFICATION_URL):
            for coding in _codings(extension.get("valueCodeableConcept")):
                try:
                    return NhsNumberStatus(_text(coding.get("code")) or "")
                except ValueError:
                    continue
            self.reading.warn(f"{path}.extension", "NHS number verification status not recognised")
        return None

    def _birth_date(self, value: Any, path: str) -> tuple[date | None, str | None]:
        text = _text(value)
        if text is None:
            return None, None
        if len(text) < len("YYYY-MM-DD"):
            self.reading.warn(path, "date has no day; only the original text is kept")
            return None, text
        try:
            return date.fromisoformat(text), text
        except ValueError:
            self.reading.warn(path, "not a valid date; ignored")
            return None, None

    def _ethnic_category(self, data: JsonObject, path: str) -> Coding | None:
        for extension in _extensions(data, ETHNIC_CATEGORY_URL):
            concept = extension.get("valueCodeableConcept")
            for coding in _codings(concept):
                code = _text(coding.get("code"))
                if coding.get("system") == ETHNIC_CATEGORY_ENGLAND and code in ETHNIC_CATEGORIES:
                    return Coding(
                        system=ETHNIC_CATEGORY_ENGLAND, code=code, display=ETHNIC_CATEGORIES[code]
                    )
            other = next(iter(_codings(concept)), None)
            if other is not None and _text(other.get("code")):
                self.reading.warn(
                    f"{path}.extension", "ethnic category is not in the national list"
                )
                return Coding(
                    system=_text(other.get("system"))
                    or local_system(self.reading.feed, "ethnic_category"),
                    code=str(other["code"]),
                    display=_text(other.get("display")),
                )
        return None

    def _gp(self, resource: _Resource) -> tuple[str | None, str | None]:
        practice = code = None
        for reference in _objs(resource.data.get("generalPractitioner")):
            target = self.message.resolve(reference, resource, "Organization", "Practitioner")
            kind = target.type if target else _text(reference.get("type"))
            identifiers = (
                _objs(target.data.get("identifier"))
                if target
                else _objs([reference.get("identifier")])
            )
            if kind == "Organization" and practice is None:
                practice = _identifier_value(identifiers, ODS_ORGANISATION_SYSTEM)
            elif kind == "Practitioner" and code is None:
                code = _identifier_value(identifiers, GMP_NUMBER_SYSTEM)
        return practice, code

    def merge(self, survivor: _Resource | None, patient: Patient) -> Merge:
        """A merge: the survivor ``replaces`` the retired record (Patient.link), or the retired
        record in the message says it is ``replaced-by`` the survivor."""
        if survivor is None or not patient.identifiers:
            raise MappingError(
                "the surviving patient has no identifier", location="Patient", code="101"
            )
        records: list[_Resource] = []
        found: list[Identifier] = []
        for index, link in enumerate(_links(survivor.data, "replaces")):
            other = _obj(link.get("other")) or {}
            target = self.message.resolve(other, survivor, "Patient")
            if target is not None:
                records.append(target)
            elif (logical := _obj(other.get("identifier"))) is not None:
                one = self._identifier(logical, f"{survivor.path}.link[{index}].other.identifier")
                found.extend([one] if one else [])
        for candidate in self.message.of_type("Patient"):
            if candidate is survivor or any(r.data is candidate.data for r in records):
                continue
            links = _links(candidate.data, "replaced-by")
            if any(
                self.message.resolve(link.get("other"), candidate) is survivor for link in links
            ):
                records.append(self.message.checked(candidate))
        for record in records:
            found.extend(self.identifiers(record))
        retired: dict[tuple[IdentifierKind, str, str | None], Identifier] = {}
        for identifier in found:
            retired.setdefault((identifier.kind, identifier.value, identifier.system), identifier)
        if not retired:
            raise MappingError(
                "the retired patient is missing (Patient.link replaces)",
                location=f"{survivor.path}.link",
                code="101",
            )
        return Merge(survivor=patient.identifiers, retired=tuple(retired.values()))


def _name(item: JsonObject) -> PersonName | None:
    name = PersonName(
        use=_NAME_USES.get(_text(item.get("use")) or "", NameUse.OFFICIAL),
        family=_text(item.get("family")),
        given=tuple(_texts(item.get("given"))),
        prefix=" ".join(_texts(item.get("prefix"))) or None,
        suffix=" ".join(_texts(item.get("suffix"))) or None,
    )
    return (
        None
        if (name.family, name.given, name.prefix, name.suffix) == (None, (), None, None)
        else name
    )


def _address(item: JsonObject) -> Address | None:
    use = _ADDRESS_USES.get(_text(item.get("use")) or "")
    if use is None:
        use = AddressUse.POSTAL if item.get("type") == "postal" else AddressUse.HOME
    address = Address(
        use=use,
        lines=tuple(_texts(item.get("line"))),
        city=_text(item.get("city")),
        district=_text(item.get("district")),
        postcode=_text(item.get("postalCode")),
        country=_text(item.get("country")),
    )
    return None if address == Address(use=use) else address


def _links(data: JsonObject, link_type: str) -> list[JsonObject]:
    return [link for link in _objs(data.get("link")) if link.get("type") == link_type]


# --- the stay -----------------------------------------------------------------------------------

_PARTICIPANT_ORDER: Final = ("PPRF", "CON", "ATND")
_OURS: Final = frozenset({POINT_OF_CARE_SYSTEM, ODS_SITE_SYSTEM, ODS_ORGANISATION_SYSTEM})
_MENTAL_HEALTH_FUNCTIONS: Final = range(700, 730)
_LEGAL_CONTEXT: Final = {
    EventKind.ADMISSION: LegalStatusContext.ADMISSION,
    EventKind.DISCHARGE: LegalStatusContext.DISCHARGE,
}


class _StayReader:
    def __init__(
        self,
        message: _Message,
        encounter: _Resource,
        history: _History,
        kind: EventKind,
        profile: FeedProfile,
        reading: Reading,
    ) -> None:
        self.message = message
        self.encounter = encounter
        self.data = encounter.data
        self.path = encounter.path
        self.kind = kind
        self.status = str(encounter.data["status"])  # checked by _encounter_status
        self.profile = profile
        self.reading = reading
        self.history = history
        self.places = [self._place(entry) for entry in self.history.locations]

    def stay(self) -> Stay:
        data, path = self.data, self.path
        period = _obj(data.get("period")) or {}
        reads_discharge = self.kind is not EventKind.CANCEL_DISCHARGE
        admitted_at = _instant(period.get("start"), f"{path}.period.start", self.reading)
        discharged_at = (
            _instant(period.get("end"), f"{path}.period.end", self.reading)
            if reads_discharge
            else None
        )
        if self.kind is EventKind.DISCHARGE and discharged_at is None:
            self.reading.warn(f"{path}.period.end", "discharge date/time missing on a discharge")
        elif self.kind in _OPEN_STAY and discharged_at is not None:
            self.reading.warn(
                f"{path}.period.end",
                f"discharge date/time on a {self.kind.value!r} event, which does not end the stay",
            )
        hospitalization = _obj(data.get("hospitalization")) or {}
        hpath = f"{path}.hospitalization"
        specialty = self._specialty()
        location = self.places[self.history.present] if self.history.present is not None else None
        spell, episode = self._spell()
        return Stay(
            id=spell,
            episode_id=episode,
            care_setting=_care_setting(self.profile.care_setting, specialty),
            patient_class=self._patient_class(),
            status=_AFTER_CANCEL.get(self.kind)
            if self.status == "entered-in-error"
            else _STAY_STATUS[self.status],
            provider_ods=self._provider(),
            site_ods=location.facility if location else None,
            location=location,
            specialty=specialty,
            admitted_at=admitted_at,
            discharged_at=discharged_at,
            admission_method=self._extension_code(
                hospitalization, ADMISSION_METHOD_URL, hpath, "admission_method"
            ),
            admission_source=self._coded(
                hospitalization.get("admitSource"), f"{hpath}.admitSource", "admission_source"
            ),
            legal_status=self._legal_status(),
            responsible_clinician=self._clinician(),
            discharge_method=(
                self._extension_code(data, DISCHARGE_METHOD_URL, path, "discharge_method")
                if reads_discharge
                else None
            ),
            leave_expected_return=self._leave_return(),
            discharge_destination=(
                self._coded(
                    hospitalization.get("dischargeDisposition"),
                    f"{hpath}.dischargeDisposition",
                    "discharge_destination",
                )
                if reads_discharge
                else None
            ),
        )

    def _leave_return(self) -> Instant | None:
        for extension in _extensions(self.data, LEAVE_EXPECTED_RETURN_URL):
            return _instant(extension.get("valueDateTime"), f"{self.path}.extension", self.reading)
        return None

    def movement(self) -> tuple[Location | None, Location | None]:
        roles = {"present": self.history.present, "previous": self.history.previous}
        moves_from, moves_to = _MOVES.get(self.kind, (None, None))
        if self.kind is EventKind.TRANSFER and self.history.previous is None:
            self.reading.warn(
                f"{self.path}.location", "no completed earlier location on a transfer"
            )

        def place(role: str | None) -> Location | None:
            index = roles.get(role) if role else None
            return self.places[index] if index is not None else None

        return place(moves_from), place(moves_to)

    def _spell(self) -> tuple[str | None, str | None]:
        """The spell (official or visit-number identifier, else the first) and the episode
        (the secondary identifier)."""
        spell = episode = fallback = None
        for item in _objs(self.data.get("identifier")):
            value = _text(item.get("value"))
            if value is None:
                continue
            if item.get("use") == "secondary":
                episode = episode or value
            elif item.get("use") == "official" or (
                _first_code(item.get("type"), IDENTIFIER_TYPE_SYSTEM) == "VN"
            ):
                spell = spell or value
            else:
                fallback = fallback or value
        return spell or fallback, episode

    def _patient_class(self) -> Coding | None:
        coding = _obj(self.data.get("class")) or {}
        system, code = _text(coding.get("system")), _text(coding.get("code"))
        if code is None or system == NULL_FLAVOR_SYSTEM:
            return None
        if system == ACT_CODE_SYSTEM and code in _ACT_TO_CLASS:
            code = _ACT_TO_CLASS[code]
            return Coding(system=HL7_PATIENT_CLASS, code=code, display=PATIENT_CLASSES[code])
        if system == HL7_PATIENT_CLASS and code in PATIENT_CLASSES:
            return Coding(system=HL7_PATIENT_CLASS, code=code, display=PATIENT_CLASSES[code])
        return Coding(
            system=system or local_system(self.reading.feed, "Encounter.class"),
            code=code,
            display=_text(coding.get("display")),
        )

    def _specialty(self) -> Coding | None:
        for concept in _objs(self.data.get("type")):
            for coding in _codings(concept):
                code = _text(coding.get("code"))
                if coding.get("system") == TREATMENT_FUNCTION and code:
                    return Coding(
                        system=TREATMENT_FUNCTION, code=code, display=_text(coding.get("display"))
                    )
        return None

    def _provider(self) -> str | None:
        reference = self.data.get("serviceProvider")
        org = self.message.resolve(reference, self.encounter, "Organization")
        return (_ods(org.data, ODS_ORGANISATION_SYSTEM) if org else None) or _logical_ods(reference)

    def _extension_code(
        self, holder: JsonObject, url: str, path: str, element: str
    ) -> Coding | None:
        for extension in _extensions(holder, url):
            return self._coded(extension.get("valueCodeableConcept"), f"{path}.extension", element)
        return None

    def _coded(
        self, concept: Any, path: str, element_name: str, *, quote: bool = True
    ) -> Coding | None:
        """A code of a national list when any coding (or the feed's table) gives one; else the
        sender's first coding, under its own system, with a warning."""
        element: CodedElement = CODED_ELEMENTS[element_name]
        codings = [c for c in _codings(concept) if _text(c.get("code"))]
        if not codings:
            return None
        for coding in codings:
            code = str(coding["code"]).strip()
            if coding.get("system") == element.system and code in element.known:
                return Coding(system=element.system, code=code, display=element.known[code])
        table = self.profile.code_tables.get(element.name)
        if table:
            for coding in codings:
                national = table.get(str(coding["code"]).strip())
                if national is not None and national in element.known:
                    return Coding(
                        system=element.system, code=national, display=element.known[national]
                    )
        first = codings[0]
        code = str(first["code"]).strip()
        system = _text(first.get("system"))
        shown = f" {code!r}" if quote and _SHOWN.fullmatch(code) and len(code) <= 12 else ""
        if system is None or system == element.system:
            # A national system with a code it does not have is mislabelled: keep it as local.
            system = local_system(self.reading.feed, path)
        self.reading.warn(
            path, f"{element.what}{shown} is not in the national list; kept under its own system"
        )
        return Coding(system=system, code=code, display=_text(first.get("display")))

    def _legal_status(self) -> tuple[LegalStatus, ...]:
        statuses: list[LegalStatus] = []
        default = _LEGAL_CONTEXT.get(self.kind, LegalStatusContext.CURRENT)
        for index, extension in enumerate(_objs(self.data.get("extension"))):
            if extension.get("url") != LEGAL_STATUS_URL:
                continue
            path = f"{self.path}.extension[{index}]"
            parts = {p.get("url"): p for p in _objs(extension.get("extension"))}
            classification = parts.get("legalStatusClassification") or {}
            code = self._legal_code(classification.get("valueCodeableConcept"), path)
            if code is None:
                self.reading.warn(path, "legal status without a classification; ignored")
                continue
            context_code = _first_code(
                (parts.get("legalStatusContext") or {}).get("valueCodeableConcept")
            )
            try:
                context = LegalStatusContext(context_code) if context_code else default
            except ValueError:
                self.reading.warn(path, "legal status context not recognised; the event's is used")
                context = default
            period = _obj((parts.get(LEGAL_STATUS_PERIOD_URL) or {}).get("valuePeriod")) or {}
            statuses.append(
                LegalStatus(
                    code=code,
                    context=context,
                    start=_instant(period.get("start"), f"{path}.period.start", self.reading),
                    end=_instant(period.get("end"), f"{path}.period.end", self.reading),
                )
            )
        return tuple(statuses)

    def _legal_code(self, concept: Any, path: str) -> Coding | None:
        """England's list (or the feed's table into it); Wales's list keeps its own system."""
        codings = [c for c in _codings(concept) if _text(c.get("code"))]
        wales = [c for c in codings if c.get("system") == LEGAL_STATUS_WALES]
        if wales and not any(c.get("system") == LEGAL_STATUS_ENGLAND for c in codings):
            code = str(wales[0]["code"]).strip()
            return Coding(
                system=LEGAL_STATUS_WALES, code=code, display=_text(wales[0].get("display"))
            )
        return self._coded(concept, path, "legal_status", quote=False)

    def _clinician(self) -> Clinician | None:
        """The primary performer, else the consultant, else the attender, else an untyped
        participant: the clinician responsible for the stay."""

        def rank(item: JsonObject) -> int:
            codes = {c.get("code") for t in _objs(item.get("type")) for c in _codings(t)}
            order = (i for i, code in enumerate(_PARTICIPANT_ORDER) if code in codes)
            return next(
                order, len(_PARTICIPANT_ORDER) if not codes else len(_PARTICIPANT_ORDER) + 1
            )

        for item in sorted(_objs(self.data.get("participant")), key=rank):
            individual = _obj(item.get("individual")) or {}
            practitioner = self.message.resolve(individual, self.encounter, "Practitioner")
            logical = _obj(individual.get("identifier"))
            data = (
                practitioner.data
                if practitioner
                else {"identifier": [logical]}
                if logical
                else None
            )
            clinician = _practitioner(data) if data is not None else None
            if clinician is not None:
                return clinician
        return None

    def _place(self, entry: JsonObject) -> Location | None:
        """A location from a Location and the Locations it is part of (bed, room, ward, site:
        physicalType bd, ro, wa, si/bu). A Location without physicalType is not taken for a
        ward: its name becomes the description. A reference with only a display is the
        description too."""
        reference = _obj(entry.get("location")) or {}
        resolved = self.message.resolve(reference, self.encounter, "Location")
        if resolved is None:
            display = _text(reference.get("display"))
            return Location(description=display) if display else None
        levels: dict[str, str] = {}
        description = point_of_care = facility = None
        seen: set[int] = set()
        current: _Resource | None = resolved
        while current is not None and id(current.data) not in seen and len(seen) < 8:
            seen.add(id(current.data))
            data = current.data
            identifiers = _objs(data.get("identifier"))
            level = _first_code(data.get("physicalType"), PHYSICAL_TYPE_SYSTEM)
            point_of_care = point_of_care or _identifier_value(identifiers, POINT_OF_CARE_SYSTEM)
            facility = facility or _identifier_value(identifiers, ODS_SITE_SYSTEM)
            if level in ("si", "bu"):
                facility = facility or _identifier_value(identifiers, ODS_ORGANISATION_SYSTEM)
            elif level in ("bd", "ro", "wa"):
                codes = (_text(i.get("value")) for i in identifiers if i.get("system") not in _OURS)
                value = next((c for c in codes if c), None) or _text(data.get("name"))
                if value:
                    levels.setdefault(level, value)
            if description is None:
                description = _text(data.get("description"))
                if description is None and level is None and current is resolved:
                    description = _text(data.get("name"))
            current = self.message.resolve(data.get("partOf"), current, "Location")
        location = Location(
            ward=levels.get("wa"),
            room=levels.get("ro"),
            bed=levels.get("bd"),
            facility=facility,
            point_of_care=point_of_care,
            description=description,
        )
        return location if location != Location() else None


def _practitioner(data: JsonObject) -> Clinician | None:
    identifiers = _objs(data.get("identifier"))
    gmc = _identifier_value(identifiers, GMC_NUMBER_SYSTEM)
    code: str | None
    if gmc is not None:
        # The NHS consultant code is the GMC reference number prefixed with C.
        code = gmc if gmc.upper().startswith("C") else f"C{gmc}"
    else:
        code = next((_text(i.get("value")) for i in identifiers if _text(i.get("value"))), None)
    name = next(iter(_objs(data.get("name"))), {})
    given, prefix = _texts(name.get("given")), _texts(name.get("prefix"))
    clinician = Clinician(
        code=code,
        family=_text(name.get("family")),
        given=given[0] if given else None,
        prefix=prefix[0] if prefix else None,
    )
    return clinician if clinician != Clinician() else None


def _care_setting(configured: CareSetting, specialty: Coding | None) -> CareSetting:
    """The feed's care setting; a feed that does not say is mental health for a 7xx function."""
    if configured is not CareSetting.UNKNOWN or specialty is None:
        return configured
    code = specialty.code
    if code.isdigit() and int(code) in _MENTAL_HEALTH_FUNCTIONS:
        return CareSetting.MENTAL_HEALTH
    return configured


# --- small readers --------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _obj(value: Any) -> JsonObject | None:
    return value if isinstance(value, dict) else None


def _objs(value: Any) -> list[JsonObject]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _texts(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [t for t in (_text(v) for v in value) if t]


def _codings(concept: Any) -> list[JsonObject]:
    return _objs(concept.get("coding")) if isinstance(concept, dict) else []


def _first_code(concept: Any, system: str | None = None) -> str | None:
    for coding in _codings(concept):
        if system is None or coding.get("system") == system:
            code = _text(coding.get("code"))
            if code:
                return code
    return None


def _extensions(holder: JsonObject, url: str) -> Iterable[JsonObject]:
    return [e for e in _objs(holder.get("extension")) if e.get("url") == url]


def _identifier_value(identifiers: list[JsonObject], system: str) -> str | None:
    return next(
        (
            _text(i.get("value"))
            for i in identifiers
            if i.get("system") == system and _text(i.get("value"))
        ),
        None,
    )


def _ods(data: JsonObject, system: str) -> str | None:
    return _identifier_value(_objs(data.get("identifier")), system)


def _logical_ods(reference: Any) -> str | None:
    """The ODS code of a logical reference (``{"identifier": {system, value}}``)."""
    identifier = _obj(reference.get("identifier")) if isinstance(reference, dict) else None
    if identifier is None:
        return None
    return _identifier_value([identifier], ODS_ORGANISATION_SYSTEM) or _identifier_value(
        [identifier], ODS_SITE_SYSTEM
    )


_PRECISION_BY_GROUP: Final = (
    Precision.YEAR,
    Precision.MONTH,
    Precision.DAY,
    Precision.HOUR,
    Precision.MINUTE,
    Precision.SECOND,
    Precision.FRACTION,
)


def _instant(value: Any, path: str, reading: Reading) -> Instant | None:
    """A FHIR date, dateTime or instant as an `Instant`; None when absent or unreadable.

    An explicit offset wins; a date (or, against the FHIR rules, a time without offset) is read
    in the feed's zone and marked ``zone_assumed``: a date is its local midnight.
    """
    text = _text(value)
    if text is None:
        return None
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        reading.warn(path or "dateTime", "not a FHIR date/time; ignored")
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    given = sum(1 for g in (year, month, day, hour, minute, second, fraction) if g is not None)
    precision = _PRECISION_BY_GROUP[given - 1]
    try:
        naive = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
        )
        if offset is None:
            utc = naive.replace(tzinfo=reading.zone).astimezone(UTC)
        elif offset == "Z":
            utc = naive.replace(tzinfo=UTC)
        else:
            sign = -1 if offset[0] == "-" else 1
            delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
            utc = naive.replace(tzinfo=timezone(sign * delta)).astimezone(UTC)
    except (ValueError, OverflowError):
        reading.warn(path or "dateTime", "not a valid date/time; ignored")
        return None
    return Instant(utc=utc, original=text, precision=precision, zone_assumed=offset is None)
