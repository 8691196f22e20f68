"""What one notification says before it is written three ways: which kind it is (or none),
its ids, the follow-up it reports, and the readings of the stay that the text, the payload
and the FHIR Bundle share (name, legal status at discharge, s117).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from mappings.clinical.follow_up.evaluation import no_follow_up_reason
from mappings.clinical.follow_up.rules import FollowUp, FollowUpRule
from mappings.codes import HL7_PATIENT_CLASS, LEGAL_STATUS_ENGLAND, LEGAL_STATUSES
from mappings.model import (
    CareEvent,
    EventKind,
    LegalStatus,
    LegalStatusContext,
    NameUse,
    Patient,
    PersonName,
    Stay,
)

NOTIFICATION_SYSTEM: Final = "urn:carebridge:notification"
"""Identifier system of a notification (Communication.identifier): the notification id."""
FOLLOW_UP_SYSTEM: Final = "urn:carebridge:follow-up"
"""Identifier system of a follow-up Task: the notification id of the discharge that started it."""

_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://carebridge.nhs.uk/notification/")
_NOT_INPATIENT: Final = frozenset({"O", "E", "P", "R"})
_S117_CODES: Final = frozenset({"03", "09", "10", "15", "16", "17", "18", "37", "38"})
"""Sections whose detention brings s117 aftercare: 3, 37 (with or without 41), 45A, 47 and 48
(with or without 49)."""

Kind = Literal["discharge", "transfer", "withdrawal"]


def notification_id(event_id: str) -> str:
    """The notification id of an event: a version-5 UUID of its event id, the same every time."""
    return str(uuid.uuid5(_NAMESPACE, event_id))


def resource_id(key: str, role: str) -> str:
    """The version-5 UUID of one resource (``bundle``, ``communication``...) of a notification."""
    return str(uuid.uuid5(_NAMESPACE, f"{key}/{role}"))


def notification_kind(event: CareEvent) -> Kind | None:
    """The kind of notification the event gets, or None when it is not notifiable."""
    if event.kind is EventKind.DISCHARGE:
        return "discharge" if _inpatient(event.stay) else None
    if event.kind is EventKind.TRANSFER:
        return "transfer" if _inpatient(event.stay) and _changes_site(event) else None
    if event.kind is EventKind.CANCEL_DISCHARGE:
        return "withdrawal"
    if event.kind is EventKind.CANCEL_TRANSFER:
        return "withdrawal" if _changes_site(event) else None
    return None


def not_notifiable_reason(event: CareEvent) -> str:
    """Why the event gets no notification, in words; ``""`` when it does get one."""
    if notification_kind(event) is not None:
        return ""
    kind = event.kind
    if kind in (EventKind.LEAVE_START, EventKind.LEAVE_END) or kind in (
        EventKind.CANCEL_LEAVE_START,
        EventKind.CANCEL_LEAVE_END,
    ):
        return "a leave of absence (or its cancel) is never notified: leave is not a discharge"
    patient_class = event.stay.patient_class if event.stay else None
    if kind is EventKind.DISCHARGE and patient_class is not None:
        label = patient_class.display or patient_class.code
        return f"the discharge ends an attendance (patient class {label}), not an inpatient stay"
    if kind in (EventKind.TRANSFER, EventKind.CANCEL_TRANSFER):
        if not _inpatient(event.stay):
            return "a transfer outside inpatient care is not notified"
        return "a move within one site (or without both sites known) is not notified"
    what = kind.value.replace("_", " ")
    return f"{'an' if what[0] in 'aeiou' else 'a'} {what} event is not notified"


def _inpatient(stay: Stay | None) -> bool:
    patient_class = stay.patient_class if stay else None
    return not (
        patient_class is not None
        and patient_class.system == HL7_PATIENT_CLASS
        and patient_class.code in _NOT_INPATIENT
    )


def _changes_site(event: CareEvent) -> bool:
    before = event.location_from.facility if event.location_from else None
    after = event.location_to.facility if event.location_to else None
    return before is not None and after is not None and before != after


@dataclass(frozen=True, slots=True)
class Links:
    """The recipient's links: one to acknowledge, one to record the follow-up done (only for a
    discharge with a follow-up), each with a token of its own, and when they stop working."""

    ack: str | None = None
    done: str | None = None
    expire_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    """One notification of one event for one recipient, before it is written."""

    event: CareEvent
    kind: Kind
    follow_up: FollowUp | None
    recipient: str
    links: Links
    now: datetime
    """The send time, in UTC."""
    id: str
    corrects: str | None
    """The notification id of the event this one corrects, if it corrects one."""
    stay: Stay
    no_follow_up: str | None
    """Why a discharge has no follow-up (None for other kinds, or when it has one)."""

    @classmethod
    def of(
        cls,
        event: CareEvent,
        kind: Kind,
        follow_up: FollowUp | None,
        recipient: str,
        links: Links,
        now: datetime,
        rules: Sequence[FollowUpRule],
    ) -> Facts:
        return cls(
            event=event,
            kind=kind,
            follow_up=follow_up,
            recipient=recipient,
            links=links,
            now=now.astimezone(UTC),
            id=notification_id(event.event_id),
            corrects=(
                notification_id(event.corrects_event_id) if event.corrects_event_id else None
            ),
            stay=event.stay or Stay(),
            no_follow_up=(
                no_follow_up_reason(event, rules)
                if kind == "discharge" and follow_up is None
                else None
            ),
        )

    def overdue(self) -> bool:
        return self.follow_up is not None and self.follow_up.due_at <= self.now


# --- readings the three renderings share -------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def official_name(patient: Patient) -> PersonName | None:
    names = patient.names
    return next((n for n in names if n.use is NameUse.OFFICIAL), names[0] if names else None)


def display_name(patient: Patient) -> str:
    name = official_name(patient)
    if name is None or not (name.family or name.given):
        return "name not recorded"
    given = " ".join(name.given)
    return f"{name.family}, {given}" if name.family and given else name.family or given


def legal_status_at_discharge(stay: Stay) -> LegalStatus | None:
    """The status recorded for discharge, else the current one (the newest by start)."""
    for context in (LegalStatusContext.DISCHARGE, LegalStatusContext.CURRENT):
        found = [s for s in stay.legal_status if s.context is context]
        if found:
            return max(
                found,
                key=lambda s: s.start.utc.timestamp() if s.start else float("-inf"),
            )
    return None


def s117_section(stay: Stay) -> str | None:
    """The section of this stay that brings s117 aftercare, if any (any context: s117 applies
    after detention under these sections even when the patient was informal at discharge)."""
    for status in stay.legal_status:
        if status.code.system == LEGAL_STATUS_ENGLAND and status.code.code in _S117_CODES:
            label = LEGAL_STATUSES[status.code.code]
            return label.removeprefix("Detained: ")
    return None
