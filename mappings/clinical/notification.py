"""The notification a clinician acts on when a patient leaves inpatient care.

`is_notifiable` says which events get one; `render_notification` builds it three ways from one
event: a short `text` a person reads, a structured `payload` (JSON) and a FHIR R4 `fhir`
Bundle (a ``collection`` holding a ``Communication`` and, for a follow-up, a ``Task``).

What is notifiable (domain brief 4, 5 and 7):

- a **discharge** (A03) from inpatient care. An A03 whose patient class is outpatient,
  emergency, pre-admit or recurring (HL7 table 0004 ``O``, ``E``, ``P``, ``R``) ends an
  attendance, not an inpatient stay, and is not notified; a missing or local class is notified
  (the safer reading). A discharge to another provider (destinations 49, 50, 53, 84...) is a
  discharge here: it is notified, with no follow-up started (`mappings.clinical.follow_up`);
- a **transfer** (A02) to another *site*: both locations name an ODS site (PV1-3.4 / PV1-6.4)
  and they differ. A ward or bed move within one site is not notified. A move to another
  provider arrives as a discharge (A03) by the sending provider, so is covered above;
- a **withdrawal**: a cancelled discharge (A13) always (the discharge may have been notified,
  and a live follow-up task must be cancelled); a cancelled transfer (A12) when it moves the
  patient back across sites. The engine sends a withdrawal only to the recipients that had the
  original, as it does for every correction;
- never a leave of absence (A21/A22, or their cancels): leave is not discharge.

The texts never hold an address, in any case, and leave out the GP when the record is
location-hidden (ZU8); the payload holds no address at all (only what a recipient acts on).
Legal status is reported as sent: "not recorded" when absent, never "informal" by default.

Every id is a version-5 UUID: rendering the same event twice, with the same `now`, gives
identical output, and a withdrawal's Task has the id (and identifier) of the Task the original
discharge created, so a receiver can cancel it. Plain dicts; tests validate them against the
fhir.resources R4B models. Pure: no I/O, no logging.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import quote

from mappings.clinical.follow_up import (
    DEFAULT_RULES,
    LONDON,
    FollowUp,
    FollowUpRule,
    age_on,
    describe_duration,
    no_follow_up_reason,
)
from mappings.codes import (
    DISCHARGE_DESTINATIONS,
    DISCHARGE_METHODS,
    HL7_PATIENT_CLASS,
    LEGAL_STATUS_ENGLAND,
    LEGAL_STATUSES,
    local_system,
)
from mappings.fhir.vocabulary import LOCAL_IDENTIFIER_PREFIX
from mappings.model import (
    NHS_NUMBER_SYSTEM,
    ODS_ORGANISATION_SYSTEM,
    CareEvent,
    Clinician,
    Coding,
    EventKind,
    IdentifierKind,
    Instant,
    LegalStatus,
    LegalStatusContext,
    Location,
    NameUse,
    Patient,
    PersonName,
    Precision,
    Stay,
)

__all__ = [
    "FOLLOW_UP_SYSTEM",
    "NOTIFICATION_SYSTEM",
    "Notification",
    "is_notifiable",
    "notification_id",
    "render_notification",
]

NOTIFICATION_SYSTEM: Final = "urn:carebridge:notification"
"""Identifier system of a notification (Communication.identifier): the notification id."""
FOLLOW_UP_SYSTEM: Final = "urn:carebridge:follow-up"
"""Identifier system of a follow-up Task: the notification id of the discharge that started it."""

_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://carebridge.nhs.uk/notification/")
_NOT_INPATIENT: Final = frozenset({"O", "E", "P", "R"})
_S117_CODES: Final = frozenset({"03", "09", "10", "15", "16", "17", "18", "37", "38"})
"""Sections whose detention brings s117 aftercare: 3, 37 (with or without 41), 45A, 47 and 48
(with or without 49)."""
_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)

Kind = Literal["discharge", "transfer", "withdrawal"]


@dataclass(frozen=True)
class Notification:
    notification_id: str
    kind: Kind
    text: str
    payload: dict[str, Any]
    fhir: dict[str, Any]


def notification_id(event_id: str) -> str:
    """The notification id of an event: a version-5 UUID of its event id, the same every time."""
    return str(uuid.uuid5(_NAMESPACE, event_id))


def is_notifiable(event: CareEvent) -> bool:
    """Whether the event is a discharge or transfer out of inpatient care, or the withdrawal of
    one (see the module notes). Never a leave of absence."""
    return _kind(event) is not None


def _kind(event: CareEvent) -> Kind | None:
    if event.kind is EventKind.DISCHARGE:
        return "discharge" if _inpatient(event.stay) else None
    if event.kind is EventKind.TRANSFER:
        return "transfer" if _inpatient(event.stay) and _changes_site(event) else None
    if event.kind is EventKind.CANCEL_DISCHARGE:
        return "withdrawal"
    if event.kind is EventKind.CANCEL_TRANSFER:
        return "withdrawal" if _changes_site(event) else None
    return None


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


def render_notification(
    event: CareEvent,
    follow_up: FollowUp | None,
    *,
    recipient: str,
    ack_url: str | None,
    now: datetime,
    rules: Sequence[FollowUpRule] = DEFAULT_RULES,
) -> Notification:
    """The notification of a notifiable event for one recipient.

    `follow_up` is what `follow_up_for` gave the discharge (for a withdrawal: what it gave the
    discharge being withdrawn, if known). `rules` are only used to say why there is no
    follow-up: pass the rules `follow_up` came from. `now` (timezone-aware) is the send time.
    Raises ValueError for an event that is not notifiable or a naive `now`.
    """
    kind = _kind(event)
    if kind is None:
        raise ValueError(f"a {event.kind.value} event is not notifiable")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return _Render(event, kind, follow_up, recipient, ack_url, now, rules).notification()


class _Render:
    def __init__(
        self,
        event: CareEvent,
        kind: Kind,
        follow_up: FollowUp | None,
        recipient: str,
        ack_url: str | None,
        now: datetime,
        rules: Sequence[FollowUpRule],
    ) -> None:
        self.event = event
        self.kind: Kind = kind
        self.follow_up = follow_up
        self.recipient = recipient
        self.ack_url = ack_url
        self.now = now.astimezone(UTC)
        self.id = notification_id(event.event_id)
        self.corrects = (
            notification_id(event.corrects_event_id) if event.corrects_event_id else None
        )
        self.stay = event.stay or Stay()
        self.no_follow_up = (
            no_follow_up_reason(event, rules) if kind == "discharge" and follow_up is None else None
        )

    def notification(self) -> Notification:
        text = self.text()
        return Notification(
            notification_id=self.id,
            kind=self.kind,
            text=text,
            payload=self.payload(),
            fhir=self.bundle(text),
        )

    # --- the text --------------------------------------------------------------------------

    def text(self) -> str:
        if self.kind == "withdrawal":
            lines = self.withdrawal_lines()
        elif self.kind == "transfer":
            lines = self.transfer_lines()
        else:
            lines = self.discharge_lines()
        lines.append(f"Acknowledge: {self.ack_url}" if self.ack_url else "Acknowledge: no link")
        return "\n".join(lines) + "\n"

    def discharge_lines(self) -> list[str]:
        stay, event = self.stay, self.event
        destination = stay.discharge_destination
        head = f"DISCHARGE from {_setting(stay)} inpatient care"
        if self.corrects:  # a changed discharge: it replaces the earlier notification
            head = f"CORRECTED {head} (replaces notification {self.corrects})"
        lines = [
            head,
            f"Patient: {self.who()}",
            f"From: {_place(stay.location)}, provider {stay.provider_ods or 'not recorded'}",
            f"Discharged: {_when(stay.discharged_at or event.occurred_at)}",
            f"To: {_coded(destination, DISCHARGE_DESTINATIONS) if destination else 'not recorded'}",
        ]
        if stay.discharge_method:
            lines.append(f"Discharge method: {_coded(stay.discharge_method, DISCHARGE_METHODS)}")
        lines.append(f"Legal status at discharge: {self.legal_status_text()}")
        if s117 := _s117(stay):
            lines.append(f"Section 117 aftercare: likely (detained under {s117}): confirm")
        lines.append(f"Responsible clinician: {_clinician(stay.responsible_clinician)}")
        lines.extend(self.follow_up_lines())
        lines.append(f"Risk flags: {_flags(stay)}")
        lines.extend(self.gp_lines())
        return lines

    def transfer_lines(self) -> list[str]:
        stay, event = self.stay, self.event
        return [
            f"TRANSFER to another site ({_setting(stay)} inpatient care)",
            f"Patient: {self.who()}",
            f"From: {_place(event.location_from)}, provider {stay.provider_ods or 'not recorded'}",
            f"To: {_place(event.location_to)}",
            f"Transferred: {_when(event.occurred_at)}",
            f"Legal status: {self.legal_status_text()}",
            f"Responsible clinician: {_clinician(stay.responsible_clinician)}",
            f"Risk flags: {_flags(stay)}",
            *self.gp_lines(),
        ]

    def withdrawal_lines(self) -> list[str]:
        event = self.event
        what = "discharge" if event.kind is EventKind.CANCEL_DISCHARGE else "transfer"
        if self.corrects:
            head = f"WITHDRAWN: the {what} notified as {self.corrects} was cancelled"
        else:
            head = (
                f"WITHDRAWN: a {what} was cancelled whose original notification is unknown "
                "(the engine never received it)"
            )
        where = _place(event.location_to or self.stay.location)
        lines = [
            head,
            f"Patient: {self.who()}",
            f"Cancelled: {_when(event.occurred_at)}, "
            f"provider {self.stay.provider_ods or 'not recorded'}",
        ]
        if what == "discharge":
            lines.append(f"The patient has not been discharged and remains on {where}.")
            follow_up = self.follow_up
            if follow_up is not None:
                lines.append(f"Withdrawn discharge time: {_local(follow_up.discharged_at)}")
                lines.append(
                    f"Follow-up ({follow_up.standard}) due by {_local(follow_up.due_at)}: "
                    "cancelled, do not follow up as a discharge"
                )
            else:
                lines.append("Follow-up: any follow-up task for that discharge is cancelled")
        else:
            lines.append(f"The transfer did not happen: the patient remains on {where}.")
        return lines

    def follow_up_lines(self) -> list[str]:
        follow_up = self.follow_up
        if follow_up is None:
            return [f"Follow-up: no 72-hour follow-up: {self.no_follow_up or 'no rule applies'}"]
        due = f"follow-up due by {_local(follow_up.due_at)}"
        if follow_up.due_at <= self.now:
            due += " (OVERDUE: arrange now)"
        return [
            f"Follow-up ({follow_up.standard}): {due}",
            f"Why: {follow_up.reason}",
        ]

    def gp_lines(self) -> list[str]:
        patient = self.event.patient
        if patient.location_hidden:
            return ["Location hidden (ZU8): contact details and GP withheld"]
        if patient.gp_practice_ods:
            return [f"GP practice: {patient.gp_practice_ods}"]
        return ["GP practice: not recorded"]

    def who(self) -> str:
        patient = self.event.patient
        parts = [_name(patient)]
        if patient.nhs_number:
            parts.append(f"NHS number {_nhs_format(patient.nhs_number)}")
        else:
            status = patient.nhs_number_status
            missing = "no verified NHS number" + (f" (status {status.value})" if status else "")
            local = patient.local_identifier()
            if local:
                missing += f", local id {local.value}"
                missing += f" ({local.assigner_ods or local.system})" if local.system else ""
            parts.append(missing)
        parts.append(self.born())
        return ", ".join(parts)

    def born(self) -> str:
        patient = self.event.patient
        if patient.birth_date is not None:
            born = patient.birth_date
            text = f"born {born.day} {_MONTHS[born.month - 1]} {born.year}"
            instant = self.stay.discharged_at or self.event.occurred_at
            if instant is not None:
                text += f" (aged {age_on(born, instant.utc.astimezone(LONDON).date())})"
            return text
        if patient.birth_date_original:
            return f"born {patient.birth_date_original} (as sent)"
        return "date of birth not recorded"

    def legal_status_text(self) -> str:
        status = _legal_status_at_discharge(self.stay)
        if status is not None:
            return _legal_status(status)
        on_admission = [
            s for s in self.stay.legal_status if s.context is LegalStatusContext.ADMISSION
        ]
        if on_admission:
            return f"not recorded (on admission: {_legal_status(on_admission[-1])})"
        return "not recorded"

    # --- the payload -----------------------------------------------------------------------

    def payload(self) -> dict[str, Any]:
        event = self.event
        return {
            "notification_id": self.id,
            "kind": self.kind,
            "recipient": self.recipient,
            "sent_at": _iso(self.now),
            "patient": self.patient_block(event.patient),
            "stay": self.stay_block(),
            "follow_up": self.follow_up_block(),
            "ack_url": self.ack_url,
            "references": {
                "event_id": event.event_id,
                "corrects_event_id": event.corrects_event_id,
                "corrects_notification_id": self.corrects,
            },
        }

    def patient_block(self, patient: Patient) -> dict[str, Any]:
        name = _official(patient)
        return {
            "nhs_number": patient.nhs_number,
            "nhs_number_status": (
                patient.nhs_number_status.value if patient.nhs_number_status else None
            ),
            "local_identifiers": [
                {"value": i.value, "system": i.system, "assigner_ods": i.assigner_ods}
                for i in patient.identifiers
                if i.kind is IdentifierKind.LOCAL
            ],
            "name": (
                {"family": name.family, "given": list(name.given)} if name is not None else None
            ),
            "birth_date": patient.birth_date.isoformat() if patient.birth_date else None,
            "birth_date_original": patient.birth_date_original,
            "gender": patient.gender.value if patient.gender else None,
            "gp_practice_ods": None if patient.location_hidden else patient.gp_practice_ods,
            "gp_code": None if patient.location_hidden else patient.gp_code,
            "location_hidden": patient.location_hidden,
        }

    def stay_block(self) -> dict[str, Any]:
        stay, event = self.stay, self.event
        status = _legal_status_at_discharge(stay)
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
            "s117_aftercare_likely": _s117(stay) is not None,
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

    def follow_up_block(self) -> dict[str, Any]:
        follow_up = self.follow_up
        if self.kind == "withdrawal":
            block: dict[str, Any] = {"status": "cancelled"}
        elif follow_up is None:
            return {"status": "none", "reason": self.no_follow_up}
        else:
            block = {"status": "due", "overdue": follow_up.due_at <= self.now}
        if follow_up is not None:
            block.update(
                {
                    "rule": follow_up.rule,
                    "standard": follow_up.standard,
                    "discharged_at": _iso(follow_up.discharged_at),
                    "due_at": _iso(follow_up.due_at),
                    "reason": follow_up.reason,
                }
            )
        return block

    # --- FHIR --------------------------------------------------------------------------------

    def uuid(self, key: str, role: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"{key}/{role}"))

    def bundle(self, text: str) -> dict[str, Any]:
        communication = self.communication(text)
        resources = [communication]
        withdrawn_discharge = self.event.kind is EventKind.CANCEL_DISCHARGE
        if self.follow_up is not None or withdrawn_discharge:
            resources.append(self.task(communication["id"]))
        bundle_id = self.uuid(self.id, "bundle")
        return {
            "resourceType": "Bundle",
            "id": bundle_id,
            "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{bundle_id}"},
            "type": "collection",
            "timestamp": _iso(self.now),
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
        }

    def subject(self) -> dict[str, Any]:
        patient = self.event.patient
        reference: dict[str, Any] = {"type": "Patient"}
        local = patient.local_identifier()
        if patient.nhs_number:
            reference["identifier"] = {"system": NHS_NUMBER_SYSTEM, "value": patient.nhs_number}
        elif local is not None:
            identifier = {"value": local.value}
            if local.system:
                identifier["system"] = (
                    local.system
                    if ":" in local.system
                    else LOCAL_IDENTIFIER_PREFIX + quote(local.system, safe="")
                )
            reference["identifier"] = identifier
        reference["display"] = _name(patient)
        return reference

    def encounter(self) -> dict[str, Any] | None:
        if not self.stay.id:
            return None
        system = local_system(self.event.source.feed, "spell")
        return {"type": "Encounter", "identifier": {"system": system, "value": self.stay.id}}

    def provider(self) -> dict[str, Any] | None:
        ods = self.stay.provider_ods or self.event.source.facility_ods
        if not ods:
            return None
        return {
            "type": "Organization",
            "identifier": {"system": ODS_ORGANISATION_SYSTEM, "value": ods},
        }

    def communication(self, text: str) -> dict[str, Any]:
        about = [r for r in (self.encounter(),) if r is not None]
        if self.corrects:
            about.append(
                {
                    "type": "Communication",
                    "identifier": {"system": NOTIFICATION_SYSTEM, "value": self.corrects},
                }
            )
        category = {
            "discharge": "Discharge notification",
            "transfer": "Transfer notification",
            "withdrawal": "Withdrawal of a notification",
        }[self.kind]
        return _compact(
            {
                "resourceType": "Communication",
                "id": self.uuid(self.id, "communication"),
                "identifier": [{"system": NOTIFICATION_SYSTEM, "value": self.id}],
                "status": "completed",
                "category": [{"text": category}],
                "priority": "urgent" if self.kind == "withdrawal" or self.overdue() else None,
                "subject": self.subject(),
                "about": about,
                "sent": _iso(self.now),
                "recipient": [{"display": self.recipient}],
                "sender": self.provider(),
                "payload": [{"contentString": text}],
            }
        )

    def overdue(self) -> bool:
        return self.follow_up is not None and self.follow_up.due_at <= self.now

    def task(self, communication_id: str) -> dict[str, Any]:
        follow_up = self.follow_up
        cancelled = self.kind == "withdrawal"
        # The Task belongs to the discharge that started the follow-up: a withdrawal carries the
        # same id and identifier, cancelled.
        owner_id = self.corrects if cancelled and self.corrects else self.id
        if follow_up is not None:
            within = describe_duration(follow_up.due_at - follow_up.discharged_at)
            code = f"Follow up within {within} of discharge"
            description = f"{code} ({follow_up.standard}): {follow_up.reason}"
            period: dict[str, str] | None = {
                "start": _iso(follow_up.discharged_at),
                "end": _iso(follow_up.due_at),
            }
        else:
            code = "Follow up after discharge"
            description = code
            period = None
        priority = None
        if not cancelled and follow_up is not None:
            urgent = follow_up.due_at - follow_up.discharged_at <= timedelta(hours=48)
            priority = "asap" if self.overdue() else "urgent" if urgent else "routine"
        return _compact(
            {
                "resourceType": "Task",
                "id": self.uuid(owner_id, "follow-up-task"),
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
                "for": self.subject(),
                "encounter": self.encounter(),
                "executionPeriod": period,
                "authoredOn": _iso(self.now),
                "requester": self.provider(),
                "owner": {"display": self.recipient},
            }
        )


# --- helpers ---------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _instant(instant: Instant | None) -> str | None:
    if instant is None:
        return None
    if instant.precision in (Precision.YEAR, Precision.MONTH, Precision.DAY):
        return instant.utc.astimezone(LONDON).date().isoformat()
    return _iso(instant.utc)


def _local(moment: datetime) -> str:
    """``Tue 3 Mar 2026 14:05 GMT``: Europe/London wall-clock time with its zone."""
    local = moment.astimezone(LONDON)
    day = f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local.year}"
    return f"{day} {local:%H:%M} {local.tzname()}"


def _when(instant: Instant | None) -> str:
    if instant is None:
        return "time not recorded"
    if instant.precision in (Precision.YEAR, Precision.MONTH, Precision.DAY):
        local = instant.utc.astimezone(LONDON)
        day = f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local.year}"
        return f"{day} (time not recorded)"
    return _local(instant.utc)


def _official(patient: Patient) -> PersonName | None:
    names = patient.names
    return next((n for n in names if n.use is NameUse.OFFICIAL), names[0] if names else None)


def _name(patient: Patient) -> str:
    name = _official(patient)
    if name is None or not (name.family or name.given):
        return "name not recorded"
    given = " ".join(name.given)
    return f"{name.family}, {given}" if name.family and given else name.family or given


def _nhs_format(number: str) -> str:
    return f"{number[:3]} {number[3:6]} {number[6:]}"


def _setting(stay: Stay) -> str:
    return {"mental_health": "mental health", "unknown": "hospital"}.get(
        stay.care_setting.value, stay.care_setting.value
    )


def _place(location: Location | None) -> str:
    if location is None or location == Location():
        return "location not recorded"
    ward = location.ward or location.point_of_care or location.description
    parts = [f"ward {ward}" if ward else "ward not recorded"]
    if location.bed:
        parts.append(f"bed {location.bed}")
    text = ", ".join(parts)
    return f"{text} (site {location.facility})" if location.facility else text


def _coded(coding: Coding, national: dict[str, str]) -> str:
    label = coding.display or national.get(coding.code)
    return f"{label} ({coding.code})" if label else f"code {coding.code} (no description)"


def _legal_status_at_discharge(stay: Stay) -> LegalStatus | None:
    """The status recorded for discharge, else the current one (the newest by start)."""
    for context in (LegalStatusContext.DISCHARGE, LegalStatusContext.CURRENT):
        found = [s for s in stay.legal_status if s.context is context]
        if found:
            return max(
                found,
                key=lambda s: s.start.utc.timestamp() if s.start else float("-inf"),
            )
    return None


def _legal_status(status: LegalStatus) -> str:
    code = status.code
    if code.system == LEGAL_STATUS_ENGLAND:
        label = code.display or LEGAL_STATUSES.get(code.code, "unlisted code")
        return f"{label} ({code.code})"
    return f"{code.display or 'local code'} ({code.code}, sender's own code)"


def _s117(stay: Stay) -> str | None:
    """The section of this stay that brings s117 aftercare, if any (any context: s117 applies
    after detention under these sections even when the patient was informal at discharge)."""
    for status in stay.legal_status:
        if status.code.system == LEGAL_STATUS_ENGLAND and status.code.code in _S117_CODES:
            label = LEGAL_STATUSES[status.code.code]
            return label.removeprefix("Detained: ")
    return None


def _clinician(clinician: Clinician | None) -> str:
    if clinician is None:
        return "not recorded"
    name = " ".join(p for p in (clinician.prefix, clinician.given, clinician.family) if p)
    if name and clinician.code:
        return f"{name} ({clinician.code})"
    return name or clinician.code or "not recorded"


def _flags(stay: Stay) -> str:
    if not stay.risk_flags:
        return "none recorded"
    return ", ".join(f.display or f.code for f in stay.risk_flags)


def _coding(coding: Coding | None) -> dict[str, Any] | None:
    if coding is None:
        return None
    return {"system": coding.system, "code": coding.code, "display": coding.display}


def _location(location: Location | None) -> dict[str, Any] | None:
    if location is None or location == Location():
        return None
    return location.model_dump()


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None and v != [] and v != {}}
