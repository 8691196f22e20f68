"""FHIR out: the Encounter (status, spell identifiers, class, legal status, hospitalization)
and the responsible clinician's Practitioner.
"""

from __future__ import annotations

import re
from typing import Any, Final

from mappings.codes import HL7_PATIENT_CLASS, local_system
from mappings.fhir.outbound.location import locations
from mappings.fhir.outbound.resources import (
    PROFILE,
    Resources,
    as_coding,
    as_concept,
    compact,
    fhir_date_time,
    instant_text,
    provider,
)
from mappings.fhir.outbound.transitions import transition_extensions
from mappings.fhir.vocabulary import (
    ACT_CODE_SYSTEM,
    ADMISSION_METHOD_URL,
    CLASS_TO_ACT,
    CURRENT_CONTEXT_SYSTEM,
    DISCHARGE_METHOD_URL,
    GMC_NUMBER_SYSTEM,
    IDENTIFIER_TYPE_SYSTEM,
    LEAVE_EXPECTED_RETURN_URL,
    LEGAL_STATUS_CONTEXT_SYSTEM,
    LEGAL_STATUS_PERIOD_URL,
    LEGAL_STATUS_URL,
    NULL_FLAVOR_SYSTEM,
    PARTICIPATION_TYPE_SYSTEM,
)
from mappings.model import (
    Clinician,
    Coding,
    EventKind,
    LegalStatus,
    LegalStatusContext,
    Stay,
    StayStatus,
)

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
_CONSULTANT_CODE: Final = re.compile(r"C(\d{7})")


def encounter_resource(out: Resources, stay: Stay, patient: dict[str, str]) -> dict[str, Any]:
    event = out.event
    by_stay = _BY_STAY.get(stay.status, "unknown") if stay.status else "unknown"
    status = ENCOUNTER_STATUS.get(event.kind, by_stay)
    extensions = [_legal_status(s) for s in stay.legal_status]
    if stay.discharge_method:
        extensions.append(
            {
                "url": DISCHARGE_METHOD_URL,
                "valueCodeableConcept": as_concept(stay.discharge_method),
            }
        )
    if stay.leave_expected_return:
        expected = fhir_date_time(stay.leave_expected_return)
        extensions.append({"url": LEAVE_EXPECTED_RETURN_URL, "valueDateTime": expected})
    extensions.extend(transition_extensions(event))
    hospitalization = compact(
        {
            "extension": (
                [
                    {
                        "url": ADMISSION_METHOD_URL,
                        "valueCodeableConcept": as_concept(stay.admission_method),
                    }
                ]
                if stay.admission_method
                else None
            ),
            "admitSource": as_concept(stay.admission_source),
            "dischargeDisposition": as_concept(stay.discharge_destination),
        }
    )
    recorded = instant_text(event.recorded_at)
    return compact(
        {
            "resourceType": "Encounter",
            "meta": compact({"profile": [PROFILE + "Encounter"], "lastUpdated": recorded}),
            "extension": extensions,
            "identifier": _spell(stay, out.feed),
            "status": status,
            "class": _class(stay.patient_class),
            "type": [as_concept(stay.specialty)] if stay.specialty else None,
            "subject": patient,
            "participant": _participants(out, stay.responsible_clinician),
            "period": compact(
                {
                    "start": fhir_date_time(stay.admitted_at) if stay.admitted_at else None,
                    "end": fhir_date_time(stay.discharged_at) if stay.discharged_at else None,
                }
            ),
            "hospitalization": hospitalization,
            "location": locations(out, stay, status),
            "serviceProvider": provider(out) if stay.provider_ods else None,
        }
    )


def _legal_status(status: LegalStatus) -> dict[str, Any]:
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
        {"url": "legalStatusClassification", "valueCodeableConcept": as_concept(status.code)},
    ]
    period = compact(
        {
            "start": fhir_date_time(status.start) if status.start else None,
            "end": fhir_date_time(status.end) if status.end else None,
        }
    )
    if period:
        parts.append({"url": LEGAL_STATUS_PERIOD_URL, "valuePeriod": period})
    return {"url": LEGAL_STATUS_URL, "extension": parts}


def _participants(out: Resources, clinician: Clinician | None) -> list[dict[str, Any]] | None:
    if clinician is None:
        return None
    identifier: dict[str, str] | None = None
    if clinician.code:
        consultant = _CONSULTANT_CODE.fullmatch(clinician.code)
        identifier = (
            {"system": GMC_NUMBER_SYSTEM, "value": consultant[1]}
            if consultant
            else {"system": local_system(out.feed, "clinician"), "value": clinician.code}
        )
    name = compact(
        {
            "family": clinician.family,
            "given": [clinician.given] if clinician.given else None,
            "prefix": [clinician.prefix] if clinician.prefix else None,
        }
    )
    practitioner = out.add(
        "practitioner",
        compact(
            {
                "resourceType": "Practitioner",
                "meta": {"profile": [PROFILE + "Practitioner"]},
                "identifier": [identifier] if identifier else None,
                "name": [name] if name else None,
            }
        ),
    )
    role = {"system": PARTICIPATION_TYPE_SYSTEM, "code": "PPRF", "display": "primary performer"}
    return [{"type": [{"coding": [role]}], "individual": practitioner}]


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
    return as_coding(patient_class)
