"""The notification as a FHIR R4 ``collection`` Bundle: a ``Communication`` holding the text
and, for a follow-up (or the withdrawal of a discharge), a ``Task``.

A withdrawal's Task has the id and identifier of the Task the original discharge created,
cancelled, so a receiver can cancel it. Plain dicts, never models.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

from mappings.clinical.follow_up.rules import describe_duration
from mappings.clinical.notification.facts import (
    FOLLOW_UP_SYSTEM,
    NOTIFICATION_SYSTEM,
    Facts,
    display_name,
    iso,
    resource_id,
)
from mappings.codes import local_system
from mappings.fhir.outbound.transitions import transition_concepts
from mappings.fhir.vocabulary import LOCAL_IDENTIFIER_PREFIX, NOT_REAL_NHS_NUMBER_SYSTEM
from mappings.model import NHS_NUMBER_SYSTEM, ODS_ORGANISATION_SYSTEM, EventKind

_CATEGORY = {
    "discharge": "Discharge notification",
    "transfer": "Transfer notification",
    "withdrawal": "Withdrawal of a notification",
}


def render_bundle(facts: Facts, text: str) -> dict[str, Any]:
    """The Bundle of the notification whose text is `text`."""
    communication = _communication(facts, text)
    resources = [communication]
    withdrawn_discharge = facts.event.kind is EventKind.CANCEL_DISCHARGE
    if facts.follow_up is not None or withdrawn_discharge:
        resources.append(_task(facts, communication["id"]))
    bundle_id = resource_id(facts.id, "bundle")
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{bundle_id}"},
        "type": "collection",
        "timestamp": iso(facts.now),
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }


def _subject(facts: Facts) -> dict[str, Any]:
    patient = facts.event.patient
    reference: dict[str, Any] = {"type": "Patient"}
    local = patient.local_identifier()
    if patient.nhs_number:
        # a number that cannot be a real patient's is never given as an NHS number
        system = NOT_REAL_NHS_NUMBER_SYSTEM if patient.nhs_number_not_real else NHS_NUMBER_SYSTEM
        reference["identifier"] = {"system": system, "value": patient.nhs_number}
    elif local is not None:
        identifier = {"value": local.value}
        if local.system:
            identifier["system"] = (
                local.system
                if ":" in local.system
                else LOCAL_IDENTIFIER_PREFIX + quote(local.system, safe="")
            )
        reference["identifier"] = identifier
    reference["display"] = display_name(patient)
    return reference


def _encounter(facts: Facts) -> dict[str, Any] | None:
    if not facts.stay.id:
        return None
    system = local_system(facts.event.source.feed, "spell")
    return {"type": "Encounter", "identifier": {"system": system, "value": facts.stay.id}}


def _provider(facts: Facts) -> dict[str, Any] | None:
    ods = facts.stay.provider_ods or facts.event.source.facility_ods
    if not ods:
        return None
    return {
        "type": "Organization",
        "identifier": {"system": ODS_ORGANISATION_SYSTEM, "value": ods},
    }


def _communication(facts: Facts, text: str) -> dict[str, Any]:
    about = [r for r in (_encounter(facts),) if r is not None]
    if facts.corrects:
        about.append(
            {
                "type": "Communication",
                "identifier": {"system": NOTIFICATION_SYSTEM, "value": facts.corrects},
            }
        )
    return _compact(
        {
            "resourceType": "Communication",
            "id": resource_id(facts.id, "communication"),
            "identifier": [{"system": NOTIFICATION_SYSTEM, "value": facts.id}],
            "status": "completed",
            "category": [{"text": _CATEGORY[facts.kind]}],
            "priority": "urgent" if facts.kind == "withdrawal" or facts.overdue() else None,
            "subject": _subject(facts),
            "about": about,
            "sent": iso(facts.now),
            "recipient": [{"display": facts.recipient}],
            "sender": _provider(facts),
            "reasonCode": transition_concepts(facts.event) or None,
            "payload": [{"contentString": text}],
        }
    )


def _task(facts: Facts, communication_id: str) -> dict[str, Any]:
    cancelled = facts.kind == "withdrawal"
    # The Task belongs to the discharge that started the follow-up: a withdrawal carries the
    # same id and identifier, cancelled.
    owner_id = facts.corrects if cancelled and facts.corrects else facts.id
    code, description, period, priority = _task_terms(facts, cancelled)
    return _compact(
        {
            "resourceType": "Task",
            "id": resource_id(owner_id, "follow-up-task"),
            "identifier": [{"system": FOLLOW_UP_SYSTEM, "value": owner_id}],
            "status": "cancelled" if cancelled else "requested",
            "statusReason": (
                {"text": "The discharge was cancelled: the patient was not discharged"}
                if cancelled
                else None
            ),
            "intent": "order",
            "priority": priority,
            "code": {"text": code},
            "description": description,
            "focus": {"reference": f"urn:uuid:{communication_id}"},
            "for": _subject(facts),
            "encounter": _encounter(facts),
            "executionPeriod": period,
            "authoredOn": iso(facts.now),
            "requester": _provider(facts),
            "owner": {"display": facts.recipient},
        }
    )


def _task_terms(
    facts: Facts, cancelled: bool
) -> tuple[str, str, dict[str, str] | None, str | None]:
    """The Task's code text, description, execution period and priority."""
    follow_up = facts.follow_up
    if follow_up is None:
        code = "Follow up after discharge"
        return code, code, None, None
    within = describe_duration(follow_up.due_at - follow_up.discharged_at)
    code = f"Follow up within {within} of discharge"
    description = f"{code} ({follow_up.standard}): {follow_up.reason}"
    period = {"start": iso(follow_up.discharged_at), "end": iso(follow_up.due_at)}
    priority = None
    if not cancelled:
        urgent = follow_up.due_at - follow_up.discharged_at <= timedelta(hours=48)
        priority = "asap" if facts.overdue() else "urgent" if urgent else "routine"
    return code, description, period, priority


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None and v != [] and v != {}}
