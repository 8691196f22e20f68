"""The notification as structured JSON: only what a recipient acts on (no address at all),
dates as ISO 8601 (a date-only instant as its Europe/London date), codes as system/code/display.
"""

from __future__ import annotations

from typing import Any

from mappings.clinical.follow_up.rules import LONDON
from mappings.clinical.notification.facts import (
    Facts,
    iso,
    legal_status_at_discharge,
    official_name,
    s117_section,
)
from mappings.model import Coding, IdentifierKind, Instant, Location, Patient, Precision


def render_payload(facts: Facts) -> dict[str, Any]:
    """The JSON payload of the notification."""
    event = facts.event
    return {
        "notification_id": facts.id,
        "kind": facts.kind,
        "recipient": facts.recipient,
        "sent_at": iso(facts.now),
        "patient": _patient_block(event.patient),
        "stay": _stay_block(facts),
        "follow_up": _follow_up_block(facts),
        "transitions": [{"kind": t.kind.value, "reason": t.reason} for t in event.transitions],
        "ack_url": facts.links.ack,
        "done_url": facts.links.done,
        "links_expire_at": iso(facts.links.expire_at) if facts.links.expire_at else None,
        "references": {
            "event_id": event.event_id,
            "corrects_event_id": event.corrects_event_id,
            "corrects_notification_id": facts.corrects,
        },
    }


def _patient_block(patient: Patient) -> dict[str, Any]:
    name = official_name(patient)
    return {
        "nhs_number": patient.nhs_number,
        "nhs_number_not_real": patient.nhs_number_not_real,
        "nhs_number_status": (
            patient.nhs_number_status.value if patient.nhs_number_status else None
        ),
        "local_identifiers": [
            {"value": i.value, "system": i.system, "assigner_ods": i.assigner_ods}
            for i in patient.identifiers
            if i.kind is IdentifierKind.LOCAL
        ],
        "name": ({"family": name.family, "given": list(name.given)} if name is not None else None),
        "birth_date": patient.birth_date.isoformat() if patient.birth_date else None,
        "birth_date_original": patient.birth_date_original,
        "gender": patient.gender.value if patient.gender else None,
        "gp_practice_ods": None if patient.location_hidden else patient.gp_practice_ods,
        "gp_code": None if patient.location_hidden else patient.gp_code,
        "location_hidden": patient.location_hidden,
    }


def _stay_block(facts: Facts) -> dict[str, Any]:
    stay, event = facts.stay, facts.event
    status = legal_status_at_discharge(stay)
    clinician = stay.responsible_clinician
    return {
        "id": stay.id,
        "episode_id": stay.episode_id,
        "care_setting": stay.care_setting.value,
        "patient_class": _coding(stay.patient_class),
        "treatment_function": _coding(stay.specialty),
        "provider_ods": stay.provider_ods,
        "site_ods": stay.site_ods,
        "location": _location(stay.location),
        "location_from": _location(event.location_from),
        "location_to": _location(event.location_to),
        "admitted_at": _instant(stay.admitted_at),
        "discharged_at": _instant(stay.discharged_at),
        "occurred_at": _instant(event.occurred_at),
        "discharge_method": _coding(stay.discharge_method),
        "discharge_destination": _coding(stay.discharge_destination),
        "legal_status_at_discharge": _coding(status.code) if status else None,
        "s117_aftercare_likely": s117_section(stay) is not None,
        "responsible_clinician": (
            {
                "code": clinician.code,
                "family": clinician.family,
                "given": clinician.given,
                "prefix": clinician.prefix,
            }
            if clinician
            else None
        ),
        "risk_flags": [_coding(f) for f in stay.risk_flags],
    }


def _follow_up_block(facts: Facts) -> dict[str, Any]:
    follow_up = facts.follow_up
    if facts.kind == "withdrawal":
        block: dict[str, Any] = {"status": "cancelled"}
    elif follow_up is None:
        return {
            "status": "none",
            "reason": facts.no_follow_up,
            "note": "no clock started by these rules; not a decision that no follow-up is needed",
        }
    else:
        block = {"status": "due", "overdue": follow_up.due_at <= facts.now}
    if follow_up is not None:
        block.update(
            {
                "rule": follow_up.rule,
                "standard": follow_up.standard,
                "discharged_at": iso(follow_up.discharged_at),
                "due_at": iso(follow_up.due_at),
                "reason": follow_up.reason,
            }
        )
    return block


def _instant(instant: Instant | None) -> str | None:
    if instant is None:
        return None
    if instant.precision in (Precision.YEAR, Precision.MONTH, Precision.DAY):
        return instant.utc.astimezone(LONDON).date().isoformat()
    return iso(instant.utc)


def _coding(coding: Coding | None) -> dict[str, Any] | None:
    if coding is None:
        return None
    return {"system": coding.system, "code": coding.code, "display": coding.display}


def _location(location: Location | None) -> dict[str, Any] | None:
    if location is None or location == Location():
        return None
    return location.model_dump()
