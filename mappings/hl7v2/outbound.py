"""HL7 v2 out: a care event rendered as an NHS ITK-style ADT message (v2.4 by default).

`render_adt` writes plain ER7 text, segment by segment, with the standard separators
(``|^~\\&``), CR segment terminators and UTF-8 bytes declared in MSH-18. hl7apy is not used
to build: it costs milliseconds per message and lets a CR in a value through unescaped, which
would let patient text forge a segment. Tests parse the output with hl7apy instead.

What goes where (ITK v1.0.15 conventions):

- MSH-9 ``ADT^<trigger>^<structure>``, MSH-10 the caller's control id (stable across retries:
  the receiver's duplicate key), MSH-12 the version, MSH-18 ``UNICODE UTF-8``.
- EVN-1 trigger, EVN-2 recorded (else received, else now), EVN-6 occurred.
- PID-3: the NHS number as ``<nhs>^^^NHS^NH`` and local ids as ``<id>^^^<authority>^MR``. A
  number that failed the modulus-11 check is *not* sent: another system must not take it for
  an NHS number, and the local ids still identify the patient. PID-5 names (type L, PREFERRED,
  A, M, PREVIOUS, U), PID-7 birth date, PID-8 sex as NHS codes (male 1, female 2, other 9
  "not specified", unknown 0), PID-11 addresses (H, TMP, PST, B, BA), PID-29/30 death,
  PID-32 NHS number status ``NSTSnn`` (none for a number that is not a real patient's:
  never ``NSTS01`` for a placeholder or test number, see `mappings.nhs_number`).
- PD1-3 GP practice ODS code (XON.3 in v2.4 as ITK has it, XON.10 from v2.5), PD1-4 GP code.
- PV1-2 class, PV1-3 location ``<point of care>^<ward>^<bed>^<site>`` (PL.9 description;
  a room, which base-HL7 feeds send in PL.2, has no place in the ITK PL and is not sent),
  PV1-4 admission method, PV1-6 prior location (transfers), PV1-9 responsible clinician,
  PV1-10 treatment function, PV1-14 source of admission, PV1-19 spell, PV1-36/37 discharge
  method/destination, PV1-44/45 admitted/discharged, PV1-50 consultant episode; PV2-47
  expected return from leave, when known.
- A40: PID is the surviving patient, MRG-1 the retired identifiers; there is no PV1.

Rules that hold for every message:

- Every text value is escaped (``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\``; CR, LF and every other control
  character as ``\\Xhh\\``; a value that is literally ``""`` as ``\\X22\\\\X22\\``), so no content
  can end a field, a segment or an MLLP frame, or turn into HL7's delete-this-value null.
- Codes are only written under their national vocabulary. A code the sender used outside the
  national list is kept under that feed's local system in the model; it is left out here, since
  writing it into the national field would mislabel it (a per-destination code map is where it
  would be translated). PV1-2 is required: without a national class it is ``U`` (``N`` on A31).
- An empty field means "unchanged" under ITK and ``""`` "delete the stored value": ``""`` is
  sent only for a value the event lists as deleted (`CareEvent.cleared`) and has no new value
  for, never because the model simply lacks something.
- Location hiding (ZU8): address, telephone, next of kin and the whole PD1 (GP) are left out.
- Instants are written in UTC with an explicit ``+0000`` offset, at the precision the source
  gave (hour precision as minutes: v2.4 TS has no hour-only form). A value the source gave only
  as a date, month or year is written as those digits with no offset: converting a date to UTC
  would move it to the evening before.
"""

from __future__ import annotations

import re
from datetime import datetime

from mappings.codes import (
    ADMISSION_METHOD_ENGLAND,
    DISCHARGE_DESTINATION_ENGLAND,
    DISCHARGE_METHOD_ENGLAND,
    ETHNIC_CATEGORY_ENGLAND,
    HL7_PATIENT_CLASS,
    SOURCE_OF_ADMISSION_ENGLAND,
    TREATMENT_FUNCTION,
)
from mappings.errors import MappingError
from mappings.hl7v2.er7 import (
    NON_DIGIT,
    code,
    components,
    escape,
    format_utc,
    join,
    segment,
    timestamp,
)
from mappings.model import (
    AddressUse,
    CareEvent,
    Clinician,
    EventKind,
    Gender,
    Identifier,
    IdentifierKind,
    Location,
    NameUse,
    Patient,
    Stay,
)

__all__ = ["SUPPORTED_VERSIONS", "TRIGGERS", "render_adt"]

SUPPORTED_VERSIONS = ("2.4", "2.5", "2.5.1")
_CHARSET = "UNICODE UTF-8"

TRIGGERS: dict[EventKind, str] = {
    EventKind.ADMISSION: "A01",
    EventKind.TRANSFER: "A02",
    EventKind.DISCHARGE: "A03",
    EventKind.REGISTRATION: "A04",
    EventKind.PRE_ADMISSION: "A05",
    EventKind.UPDATE: "A08",
    EventKind.CANCEL_ADMISSION: "A11",
    EventKind.CANCEL_TRANSFER: "A12",
    EventKind.CANCEL_DISCHARGE: "A13",
    EventKind.LEAVE_START: "A21",
    EventKind.LEAVE_END: "A22",
    EventKind.PERSON_UPDATE: "A31",
    EventKind.CANCEL_PRE_ADMISSION: "A38",
    EventKind.MERGE: "A40",
    EventKind.CANCEL_LEAVE_START: "A52",
    EventKind.CANCEL_LEAVE_END: "A53",
}
"""The ADT trigger event each kind of care event is sent as."""

# Message structures (HL7 table 0354). v2.4 has no ADT_A12: A12 shares ADT_A09 with A11.
_STRUCTURES = {
    "A01": "ADT_A01",
    "A02": "ADT_A02",
    "A03": "ADT_A03",
    "A04": "ADT_A01",
    "A05": "ADT_A05",
    "A08": "ADT_A01",
    "A11": "ADT_A09",
    "A12": "ADT_A09",
    "A13": "ADT_A01",
    "A21": "ADT_A21",
    "A22": "ADT_A21",
    "A31": "ADT_A05",
    "A38": "ADT_A38",
    "A40": "ADT_A39",
    "A52": "ADT_A52",
    "A53": "ADT_A52",
}

_GENDERS = {Gender.MALE: "1", Gender.FEMALE: "2", Gender.OTHER: "9", Gender.UNKNOWN: "0"}
_NAME_TYPES = {
    NameUse.OFFICIAL: "L",
    NameUse.USUAL: "PREFERRED",
    NameUse.ALIAS: "A",
    NameUse.MAIDEN: "M",
    NameUse.OLD: "PREVIOUS",
    NameUse.UNKNOWN: "U",
}
# An unknown use is sent without a type rather than with one that reads back as "home".
_ADDRESS_TYPES = {
    AddressUse.HOME: "H",
    AddressUse.TEMPORARY: "TMP",
    AddressUse.POSTAL: "PST",
    AddressUse.WORK: "B",
    AddressUse.OLD: "BA",
    AddressUse.UNKNOWN: "",
}
_OID = re.compile(r"\d+(?:\.\d+)+")


def render_adt(
    event: CareEvent,
    *,
    control_id: str,
    sending_app: str,
    sending_facility: str,
    receiving_app: str,
    receiving_facility: str,
    now: datetime,
    version: str = "2.4",
    processing_id: str = "P",
) -> bytes:
    """The event as one HL7 v2 ADT message (UTF-8 bytes, CR after every segment).

    `control_id` becomes MSH-10: pass the same one for every attempt of one delivery so the
    receiver can drop a repeat. Raises `MappingError` when the event cannot make a valid
    message (no identifier for PID-3, a merge without its retired identifiers).
    """
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"HL7 version {version!r} is not one of {SUPPORTED_VERSIONS}")
    if not control_id.strip():
        raise ValueError("a message control id (MSH-10) is required")
    trigger = TRIGGERS[event.kind]
    structure = "ADT_A12" if trigger == "A12" and version != "2.4" else _STRUCTURES[trigger]
    msh = {
        2: "^~\\&",
        3: escape(sending_app),
        4: escape(sending_facility),
        5: escape(receiving_app),
        6: escape(receiving_facility),
        7: format_utc(now),
        9: join("^", ("ADT", trigger, structure)),
        10: escape(control_id),
        11: escape(processing_id),
        12: version,
        18: _CHARSET,
    }
    evn = {
        1: trigger,
        2: timestamp(event.recorded_at) or format_utc(event.received_at or now),
        6: timestamp(event.occurred_at),
    }
    segments = [("MSH", msh), ("EVN", evn), ("PID", _pid(event.patient))]
    if not event.patient.location_hidden:
        segments.append(("PD1", _pd1(event.patient, version)))
    if event.kind is EventKind.MERGE:
        segments.append(("MRG", _mrg(event)))
    else:
        segments.append(("PV1", _pv1(event)))
        stay = event.stay or Stay()
        segments.append(("PV2", {47: timestamp(stay.leave_expected_return)}))
    lines = []
    for name, fields in segments:
        sent = _with_deletions(name, fields, event)
        if name in _REQUIRED or any(sent.values()):
            lines.append(segment(name, sent))
    return ("\r".join(lines) + "\r").encode("utf-8")


_REQUIRED = frozenset({"MSH", "EVN", "PID", "PV1", "MRG"})
# The fields whose explicit deletion (CareEvent.cleared) is passed on as HL7's null "".
_DELETABLE: dict[str, dict[int, str]] = {
    "PID": {
        5: "patient.names",
        7: "patient.birth_date",
        8: "patient.gender",
        11: "patient.addresses",
        22: "patient.ethnic_category",
        29: "patient.deceased_at",
    },
    "PD1": {3: "patient.gp_practice_ods", 4: "patient.gp_code"},
    "PV1": {
        3: "stay.location",
        4: "stay.admission_method",
        9: "stay.responsible_clinician",
        10: "stay.specialty",
        14: "stay.admission_source",
        36: "stay.discharge_method",
        37: "stay.discharge_destination",
        44: "stay.admitted_at",
        45: "stay.discharged_at",
        50: "stay.episode_id",
    },
    "PV2": {47: "stay.leave_expected_return"},
}


def _with_deletions(name: str, fields: dict[int, str], event: CareEvent) -> dict[int, str]:
    """`fields` with ``""`` where the sender deleted a value we have nothing to send for."""
    deletable = _DELETABLE.get(name)
    if not deletable or not event.cleared:
        return fields
    hidden = event.patient.location_hidden and name == "PID"
    deleted = {
        number: '""'
        for number, path in deletable.items()
        if path in event.cleared and not fields.get(number) and not (hidden and number == 11)
    }
    return {**fields, **deleted}


def _pid(patient: Patient) -> dict[int, str]:
    identifiers = [cx for cx in map(_cx, patient.identifiers) if cx]
    if not identifiers:
        raise MappingError("the patient has no identifier to send", location="PID-3", code="101")
    nhs = next((i for i in patient.identifiers if i.kind is IdentifierKind.NHS_NUMBER), None)
    status = patient.nhs_number_status or (nhs.verification if nhs else None)
    if patient.nhs_number_not_real:
        status = None  # never "verified" (NSTS01) for a number that is not a real patient's
    fields = {
        1: "1",
        3: "~".join(identifiers),
        5: "~".join(
            components(
                name.family,
                name.given[0] if name.given else None,
                " ".join(name.given[1:]),
                name.suffix,
                name.prefix,
                None,
                _NAME_TYPES[name.use],
            )
            for name in patient.names
        ),
        7: _birth_date(patient),
        8: _GENDERS[patient.gender] if patient.gender else "",
        22: code(patient.ethnic_category, ETHNIC_CATEGORY_ENGLAND),
        29: timestamp(patient.deceased_at),
        30: "Y" if patient.deceased_at else "",
        32: f"NSTS{status.value}" if status else "",
    }
    if not patient.location_hidden:
        fields[11] = "~".join(
            components(
                address.lines[0] if address.lines else None,
                ", ".join(address.lines[1:]),
                address.city,
                address.district,
                address.postcode,
                address.country,
                _ADDRESS_TYPES[address.use],
            )
            for address in patient.addresses
        )
    return fields


def _pd1(patient: Patient, version: str) -> dict[int, str]:
    # ITK puts the practice code in XON.3 (a number in base v2.4); v2.5 moved it to XON.10.
    component = 3 if version == "2.4" else 10
    practice = [None] * (component - 1) + [patient.gp_practice_ods]
    return {3: components(*practice), 4: components(patient.gp_code)}


def _cx(identifier: Identifier) -> str | None:
    if identifier.kind is IdentifierKind.NHS_NUMBER:
        return f"{escape(identifier.value)}^^^NHS^NH"
    if identifier.kind is IdentifierKind.UNVERIFIED_NHS_NUMBER:
        return None
    authority = identifier.assigner_ods or identifier.system or ""
    if ":" in authority:
        assigner = f"&{escape(authority)}&URI"  # HD.2 universal id, HD.3 its type
    elif _OID.fullmatch(authority):
        assigner = f"&{escape(authority)}&ISO"
    else:
        assigner = escape(authority)
    type_code = identifier.type_code or ("MR" if identifier.kind is IdentifierKind.LOCAL else "")
    return join("^", (escape(identifier.value), "", "", assigner, escape(type_code)))


def _birth_date(patient: Patient) -> str:
    if patient.birth_date is not None:
        return patient.birth_date.strftime("%Y%m%d")
    # Only a year or a month was sent: keep what was said rather than invent a day.
    digits = NON_DIGIT.sub("", patient.birth_date_original or "")
    return digits if len(digits) in (4, 6) else ""


def _pl(location: Location | None) -> str:
    if location is None:
        return ""
    return components(
        location.point_of_care,
        location.ward,
        location.bed,
        location.facility,
        None,
        None,
        None,
        None,
        location.description,
    )


def _xcn(clinician: Clinician | None) -> str:
    if clinician is None:
        return ""
    return components(
        clinician.code, clinician.family, clinician.given, None, None, clinician.prefix
    )


def _pv1(event: CareEvent) -> dict[int, str]:
    if event.kind is EventKind.PERSON_UPDATE:
        return {1: "1", 2: "N"}  # ADT_A05 needs a PV1; there is no visit
    stay = event.stay or Stay()
    moved = event.kind in (EventKind.TRANSFER, EventKind.CANCEL_TRANSFER)
    return {
        1: "1",
        2: code(stay.patient_class, HL7_PATIENT_CLASS) or "U",
        3: _pl(stay.location or event.location_to or event.location_from),
        4: code(stay.admission_method, ADMISSION_METHOD_ENGLAND),
        6: _pl(event.location_from) if moved else "",
        9: _xcn(stay.responsible_clinician),
        10: code(stay.specialty, TREATMENT_FUNCTION),
        14: code(stay.admission_source, SOURCE_OF_ADMISSION_ENGLAND),
        19: components(stay.id),
        36: code(stay.discharge_method, DISCHARGE_METHOD_ENGLAND),
        37: code(stay.discharge_destination, DISCHARGE_DESTINATION_ENGLAND),
        44: timestamp(stay.admitted_at),
        45: timestamp(stay.discharged_at),
        50: components(stay.episode_id),
    }


def _mrg(event: CareEvent) -> dict[int, str]:
    retired = [cx for cx in map(_cx, event.merge.retired if event.merge else ()) if cx]
    if not retired:
        raise MappingError("a merge needs the retired identifiers", location="MRG-1", code="101")
    return {1: "~".join(retired)}
