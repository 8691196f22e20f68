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
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

import orjson

from mappings.codes import HL7_PATIENT_CLASS, local_system
from mappings.fhir.vocabulary import (
    ACT_CODE_SYSTEM,
    ADMISSION_METHOD_URL,
    CARE_EVENT_SYSTEM,
    CLASS_TO_ACT,
    CONFIDENTIALITY_SYSTEM,
    CURRENT_CONTEXT_SYSTEM,
    DISCHARGE_METHOD_URL,
    ETHNIC_CATEGORY_URL,
    EVENT_CODES,
    EVENT_OCCURRED_URL,
    GMC_NUMBER_SYSTEM,
    GMP_NUMBER_SYSTEM,
    IDENTIFIER_TYPE_SYSTEM,
    LEAVE_EXPECTED_RETURN_URL,
    LEGAL_STATUS_CONTEXT_SYSTEM,
    LEGAL_STATUS_PERIOD_URL,
    LEGAL_STATUS_URL,
    LOCAL_IDENTIFIER_PREFIX,
    NHS_NUMBER_VERIFICATION_SYSTEM,
    NHS_NUMBER_VERIFICATION_URL,
    NULL_FLAVOR_SYSTEM,
    PARTICIPATION_TYPE_SYSTEM,
    PHYSICAL_TYPE_SYSTEM,
    POINT_OF_CARE_SYSTEM,
)
from mappings.model import (
    NHS_NUMBER_SYSTEM,
    ODS_ORGANISATION_SYSTEM,
    ODS_SITE_SYSTEM,
    Address,
    AddressUse,
    CareEvent,
    Clinician,
    Coding,
    EventKind,
    Identifier,
    IdentifierKind,
    Instant,
    LegalStatus,
    LegalStatusContext,
    Location,
    NameUse,
    NhsNumberStatus,
    Patient,
    PersonName,
    Precision,
    Stay,
    StayStatus,
)

__all__ = ["ENCOUNTER_STATUS", "EVENT_DISPLAYS", "fhir_date_time", "render_fhir_message"]

_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://carebridge.nhs.uk/")
_PROFILE: Final = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-"

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

ENCOUNTER_STATUS: Final[dict[EventKind, str]] = {
    EventKind.PRE_ADMISSION: "planned",
    EventKind.ADMISSION: "in-progress",
    EventKind.TRANSFER: "in-progress",
    EventKind.LEAVE_END: "in-progress",
    EventKind.CANCEL_DISCHARGE: "in-progress",
    EventKind.LEAVE_START: "onleave",
    EventKind.DISCHARGE: "finished",
    EventKind.CANCEL_ADMISSION: "entered-in-error",
}
"""Encounter.status by kind; any other kind says what the stay's status says (`_BY_STAY`)."""

_BY_STAY: Final = {
    StayStatus.PLANNED: "planned",
    StayStatus.ACTIVE: "in-progress",
    StayStatus.ON_LEAVE: "onleave",
    StayStatus.FINISHED: "finished",
    StayStatus.CANCELLED: "cancelled",
}
_NAME_USES: Final = {
    NameUse.OFFICIAL: "official",
    NameUse.USUAL: "usual",
    NameUse.ALIAS: "nickname",
    NameUse.OLD: "old",
    NameUse.MAIDEN: "maiden",
}
_ADDRESS_USES: Final = {
    AddressUse.HOME: "home",
    AddressUse.WORK: "work",
    AddressUse.TEMPORARY: "temp",
    AddressUse.OLD: "old",
}
_ORDER: Final = {"patient": 0, "retired-patient": 1, "encounter": 2, "provider": 3}
_LEVELS: Final = (("wa", "Ward"), ("ro", "Room"), ("bd", "Bed"))
_CONSULTANT_CODE: Final = re.compile(r"C(\d{7})")


def render_fhir_message(event: CareEvent, *, now: datetime | None = None) -> dict[str, Any]:
    """The event as a FHIR R4 messaging Bundle (plain, orjson-serialisable dicts).

    `now` is the send time for ``Bundle.timestamp``; it changes nothing else.
    """
    return _Render(event).bundle(now)


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


def _instant_text(instant: Instant | None) -> str | None:
    """A FHIR ``instant`` (seconds and zone required), or None when the source gave less."""
    if instant is None or instant.precision not in (Precision.SECOND, Precision.FRACTION):
        return None
    return fhir_date_time(instant)


class _Render:
    """One render: the event, and the resources gathered for the Bundle."""

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

    def bundle(self, now: datetime | None) -> dict[str, Any]:
        event = self.event
        patient_ref = self.add("patient", self.patient(event.patient))
        if event.merge is not None:
            retired = self.retired(patient_ref)
            self.resources["patient"]["link"] = [{"other": retired, "type": "replaces"}]
        focus = patient_ref
        if event.stay is not None:
            focus = self.add("encounter", self.encounter(event.stay, patient_ref))
        header = self.header(focus)
        bundle_id = self.id("bundle")
        roles = sorted(self.resources, key=lambda role: _ORDER.get(role, len(_ORDER)))
        entries = [header, *(self.resources[role] for role in roles)]
        timestamp = _timestamp(event, now)
        return _compact(
            {
                "resourceType": "Bundle",
                "id": bundle_id,
                "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{bundle_id}"},
                "type": "message",
                "timestamp": timestamp,
                "entry": [{"fullUrl": f"urn:uuid:{e['id']}", "resource": e} for e in entries],
            }
        )

    def header(self, focus: dict[str, str]) -> dict[str, Any]:
        event = self.event
        occurred = event.occurred_at
        provider = self.provider()
        return _compact(
            {
                "resourceType": "MessageHeader",
                "id": self.id("message-header"),
                "meta": {"profile": [_PROFILE + "MessageHeader"]},
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
                    "endpoint": f"urn:carebridge:{quote(self.feed, safe='')}",
                },
                "responsible": provider,
                "focus": [focus],
            }
        )

    def provider(self) -> dict[str, str] | None:
        stay = self.event.stay
        ods = (stay.provider_ods if stay else None) or self.event.source.facility_ods
        if ods is None:
            return None
        return self.add(
            "provider",
            {
                "resourceType": "Organization",
                "meta": {"profile": [_PROFILE + "Organization"]},
                "identifier": [{"system": ODS_ORGANISATION_SYSTEM, "value": ods}],
            },
        )

    # --- the patient ---------------------------------------------------------------------

    def patient(self, patient: Patient) -> dict[str, Any]:
        hidden = patient.location_hidden
        meta: dict[str, Any] = {"profile": [_PROFILE + "Patient"]}
        if self.event.stay is None and (recorded := _instant_text(self.event.recorded_at)):
            meta["lastUpdated"] = recorded  # the focus carries when the event was recorded
        if hidden:
            meta["security"] = [
                {"system": CONFIDENTIALITY_SYSTEM, "code": "R", "display": "restricted"}
            ]
        return _compact(
            {
                "resourceType": "Patient",
                "meta": meta,
                "extension": (
                    [
                        {
                            "url": ETHNIC_CATEGORY_URL,
                            "valueCodeableConcept": _concept(patient.ethnic_category),
                        }
                    ]
                    if patient.ethnic_category
                    else None
                ),
                "identifier": self.identifiers(patient.identifiers),
                "name": [_name(n) for n in patient.names],
                "gender": patient.gender.value if patient.gender else None,
                "birthDate": _birth_date(patient),
                "deceasedDateTime": (
                    fhir_date_time(patient.deceased_at) if patient.deceased_at else None
                ),
                "address": None if hidden else [_address(a) for a in patient.addresses],
                "generalPractitioner": None if hidden else _general_practitioner(patient),
            }
        )

    def identifiers(self, identifiers: Iterable[Identifier]) -> list[dict[str, Any]]:
        """NHS numbers with their verification status, and local identifiers. A number that
        failed the check digit is not sent: nothing downstream may take it for one."""
        rendered: list[dict[str, Any]] = []
        for identifier in identifiers:
            if identifier.kind is IdentifierKind.UNVERIFIED_NHS_NUMBER:
                continue
            item: dict[str, Any] = {}
            if identifier.kind is IdentifierKind.NHS_NUMBER:
                item["system"] = NHS_NUMBER_SYSTEM
                if identifier.verification is not None:
                    item["extension"] = [_verification(identifier.verification)]
            elif identifier.system:
                item["system"] = (
                    identifier.system
                    if ":" in identifier.system
                    else LOCAL_IDENTIFIER_PREFIX + quote(identifier.system, safe="")
                )
            if identifier.type_code:
                item["type"] = {
                    "coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": identifier.type_code}]
                }
            item["value"] = identifier.value
            if identifier.assigner_ods:
                item["assigner"] = {
                    "identifier": {
                        "system": ODS_ORGANISATION_SYSTEM,
                        "value": identifier.assigner_ods,
                    }
                }
            rendered.append(item)
        return rendered

    def retired(self, survivor: dict[str, str]) -> dict[str, str]:
        """The retired record of a merge: inactive, replaced by the survivor."""
        merge = self.event.merge
        assert merge is not None
        return self.add(
            "retired-patient",
            {
                "resourceType": "Patient",
                "meta": {"profile": [_PROFILE + "Patient"]},
                "identifier": self.identifiers(merge.retired),
                "active": False,
                "link": [{"other": survivor, "type": "replaced-by"}],
            },
        )

    # --- the stay ---------------------------------------------------------------------------

    def encounter(self, stay: Stay, patient: dict[str, str]) -> dict[str, Any]:
        event = self.event
        by_stay = _BY_STAY.get(stay.status, "unknown") if stay.status else "unknown"
        status = ENCOUNTER_STATUS.get(event.kind, by_stay)
        extensions = [self.legal_status(s) for s in stay.legal_status]
        if stay.discharge_method:
            extensions.append(
                {
                    "url": DISCHARGE_METHOD_URL,
                    "valueCodeableConcept": _concept(stay.discharge_method),
                }
            )
        if stay.leave_expected_return:
            expected = fhir_date_time(stay.leave_expected_return)
            extensions.append({"url": LEAVE_EXPECTED_RETURN_URL, "valueDateTime": expected})
        hospitalization = _compact(
            {
                "extension": (
                    [
                        {
                            "url": ADMISSION_METHOD_URL,
                            "valueCodeableConcept": _concept(stay.admission_method),
                        }
                    ]
                    if stay.admission_method
                    else None
                ),
                "admitSource": _concept(stay.admission_source),
                "dischargeDisposition": _concept(stay.discharge_destination),
            }
        )
        recorded = _instant_text(event.recorded_at)
        return _compact(
            {
                "resourceType": "Encounter",
                "meta": _compact({"profile": [_PROFILE + "Encounter"], "lastUpdated": recorded}),
                "extension": extensions,
                "identifier": _spell(stay, self.feed),
                "status": status,
                "class": _class(stay.patient_class),
                "type": [_concept(stay.specialty)] if stay.specialty else None,
                "subject": patient,
                "participant": self.participants(stay.responsible_clinician),
                "period": _compact(
                    {
                        "start": fhir_date_time(stay.admitted_at) if stay.admitted_at else None,
                        "end": fhir_date_time(stay.discharged_at) if stay.discharged_at else None,
                    }
                ),
                "hospitalization": hospitalization,
                "location": self.locations(stay, status),
                "serviceProvider": self.provider() if stay.provider_ods else None,
            }
        )

    def legal_status(self, status: LegalStatus) -> dict[str, Any]:
        if status.context is LegalStatusContext.CURRENT:
            context = {"system": CURRENT_CONTEXT_SYSTEM, "code": "current", "display": "Current"}
        else:
            context = {
                "system": LEGAL_STATUS_CONTEXT_SYSTEM,
                "code": status.context.value,
                "display": status.context.value.capitalize(),
            }
        parts: list[dict[str, Any]] = [
            {"url": "legalStatusContext", "valueCodeableConcept": {"coding": [context]}},
            {"url": "legalStatusClassification", "valueCodeableConcept": _concept(status.code)},
        ]
        period = _compact(
            {
                "start": fhir_date_time(status.start) if status.start else None,
                "end": fhir_date_time(status.end) if status.end else None,
            }
        )
        if period:
            parts.append({"url": LEGAL_STATUS_PERIOD_URL, "valuePeriod": period})
        return {"url": LEGAL_STATUS_URL, "extension": parts}

    def participants(self, clinician: Clinician | None) -> list[dict[str, Any]] | None:
        if clinician is None:
            return None
        identifier: dict[str, str] | None = None
        if clinician.code:
            consultant = _CONSULTANT_CODE.fullmatch(clinician.code)
            identifier = (
                {"system": GMC_NUMBER_SYSTEM, "value": consultant[1]}
                if consultant
                else {"system": local_system(self.feed, "clinician"), "value": clinician.code}
            )
        name = _compact(
            {
                "family": clinician.family,
                "given": [clinician.given] if clinician.given else None,
                "prefix": [clinician.prefix] if clinician.prefix else None,
            }
        )
        practitioner = self.add(
            "practitioner",
            _compact(
                {
                    "resourceType": "Practitioner",
                    "meta": {"profile": [_PROFILE + "Practitioner"]},
                    "identifier": [identifier] if identifier else None,
                    "name": [name] if name else None,
                }
            ),
        )
        role = {"system": PARTICIPATION_TYPE_SYSTEM, "code": "PPRF", "display": "primary performer"}
        return [{"type": [{"coding": [role]}], "individual": practitioner}]

    def locations(self, stay: Stay, status: str) -> list[dict[str, Any]]:
        """The location history: where the patient came from (completed), then where they are
        (or were, for a finished stay)."""
        event = self.event
        present = event.location_to or stay.location
        present = present if present != Location() else None
        rendered: list[dict[str, Any]] = []
        if event.location_from not in (None, Location(), present):
            assert event.location_from is not None
            rendered.append({"location": self.place(event.location_from), "status": "completed"})
        if present is not None:
            present_status = {"finished": "completed", "planned": "planned"}.get(status, "active")
            rendered.append({"location": self.place(present), "status": present_status})
        return rendered

    def place(self, location: Location) -> dict[str, str]:
        """A Location per level (site, ward, room, bed), each part of the one above, so two
        places on one site share its Location; the most specific one carries the description
        and the HL7 point of care."""
        key = "location"
        parent: dict[str, str] | None = None
        if location.facility:
            key += "/" + quote(location.facility, safe="")
            site = [{"system": ODS_SITE_SYSTEM, "value": location.facility}]
            parent = self.add(key, _location(location.facility, ("si", "Site"), identifier=site))
        levels = [
            (level, value)
            for level, value in zip(
                _LEVELS, (location.ward, location.room, location.bed), strict=True
            )
            if value
        ]
        extra = _compact(
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
                parent = self.add(key, _location(value, level, parent=parent))
        last_level, last_value = levels[-1] if levels else (None, None)
        if extra:
            key += "#" + quote(orjson.dumps(extra).decode(), safe="")
        return self.add(key, _location(last_value, last_level, parent=parent, **extra))


def _location(
    name: str | None,
    level: tuple[str, str] | None,
    *,
    parent: dict[str, str] | None = None,
    identifier: list[dict[str, str]] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    return _compact(
        {
            "resourceType": "Location",
            "meta": {"profile": [_PROFILE + "Location"]},
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


def _timestamp(event: CareEvent, now: datetime | None) -> str | None:
    if now is not None:
        return now.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if event.received_at is not None:
        return event.received_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    for instant in (event.recorded_at, event.occurred_at):
        if instant is not None:
            return instant.utc.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return None


def _verification(status: NhsNumberStatus) -> dict[str, Any]:
    return {
        "url": NHS_NUMBER_VERIFICATION_URL,
        "valueCodeableConcept": {
            "coding": [{"system": NHS_NUMBER_VERIFICATION_SYSTEM, "code": status.value}]
        },
    }


def _name(name: PersonName) -> dict[str, Any]:
    return _compact(
        {
            "use": _NAME_USES.get(name.use),
            "family": name.family,
            "given": list(name.given),
            "prefix": [name.prefix] if name.prefix else None,
            "suffix": [name.suffix] if name.suffix else None,
        }
    )


def _address(address: Address) -> dict[str, Any]:
    return _compact(
        {
            "use": _ADDRESS_USES.get(address.use),
            "type": "postal" if address.use is AddressUse.POSTAL else None,
            "line": list(address.lines),
            "city": address.city,
            "district": address.district,
            "postalCode": address.postcode,
            "country": address.country,
        }
    )


def _birth_date(patient: Patient) -> str | None:
    if patient.birth_date is not None:
        return patient.birth_date.isoformat()
    original = re.sub(r"\D", "", patient.birth_date_original or "")
    if len(original) in (4, 6):
        return "-".join(p for p in (original[:4], original[4:6]) if p)
    return None


def _general_practitioner(patient: Patient) -> list[dict[str, Any]]:
    """Logical references (as NHS England's PDS sends them): the practice by ODS code, the GP
    by GMP code."""
    references = []
    if patient.gp_practice_ods:
        references.append(
            {
                "type": "Organization",
                "identifier": {"system": ODS_ORGANISATION_SYSTEM, "value": patient.gp_practice_ods},
            }
        )
    if patient.gp_code:
        references.append(
            {
                "type": "Practitioner",
                "identifier": {"system": GMP_NUMBER_SYSTEM, "value": patient.gp_code},
            }
        )
    return references


def _spell(stay: Stay, feed: str) -> list[dict[str, Any]]:
    system = local_system(feed, "spell")
    identifiers = []
    if stay.id:
        identifiers.append(
            {
                "use": "official",
                "type": {"coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": "VN"}]},
                "system": system,
                "value": stay.id,
            }
        )
    if stay.episode_id:
        identifiers.append(
            {"use": "secondary", "system": local_system(feed, "episode"), "value": stay.episode_id}
        )
    return identifiers


def _class(patient_class: Coding | None) -> dict[str, str]:
    """Encounter.class is required: v3 ActCode where HL7's table 0004 code has one, the table
    0004 code itself otherwise, and the null flavour UNK when the class is not known."""
    if patient_class is None:
        return {"system": NULL_FLAVOR_SYSTEM, "code": "UNK", "display": "unknown"}
    if patient_class.system == HL7_PATIENT_CLASS and patient_class.code in CLASS_TO_ACT:
        code, display = CLASS_TO_ACT[patient_class.code]
        return {"system": ACT_CODE_SYSTEM, "code": code, "display": display}
    return _coding(patient_class)


def _coding(coding: Coding) -> dict[str, str]:
    return _compact({"system": coding.system, "code": coding.code, "display": coding.display})


def _concept(coding: Coding | None) -> dict[str, Any] | None:
    """A CodeableConcept. A code outside the national list travels under the system the model
    holds it in (the feed's local system): labelled for what it is, never as national."""
    if coding is None:
        return None
    return {"coding": [_coding(coding)]}


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    """The dict without empty values: FHIR forbids empty elements."""
    return {k: v for k, v in data.items() if v is not None and v != [] and v != {} and v != ""}
