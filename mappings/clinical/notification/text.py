"""The notification as the short text a clinician reads: a discharge, a transfer or a
withdrawal, in that order of facts, with times in Europe/London wall-clock time.

Never an address; no GP when the record is location-hidden (ZU8); legal status as sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from mappings.clinical.follow_up.rules import LONDON, age_on
from mappings.clinical.notification.facts import (
    Facts,
    display_name,
    legal_status_at_discharge,
    s117_section,
)
from mappings.codes import (
    DISCHARGE_DESTINATIONS,
    DISCHARGE_METHODS,
    LEGAL_STATUS_ENGLAND,
    LEGAL_STATUSES,
    NHS_NUMBER_STATUSES,
    is_local_system,
)
from mappings.model import (
    Clinician,
    Coding,
    EventKind,
    Instant,
    LegalStatus,
    LegalStatusContext,
    Location,
    Precision,
    Stay,
    TransitionKind,
)

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


def render_text(facts: Facts) -> str:
    """The text of the notification, ending with its links (acknowledge, follow-up done)."""
    if facts.kind == "withdrawal":
        lines = _withdrawal_lines(facts)
    elif facts.kind == "transfer":
        lines = _transfer_lines(facts)
    else:
        lines = _discharge_lines(facts)
    links = facts.links
    lines.append(f"Acknowledge: {links.ack}" if links.ack else "Acknowledge: no link")
    if links.done:
        lines.append(f"Record follow-up done: {links.done}")
    if links.expire_at and (links.ack or links.done):
        lines.append(f"Links work once each, until {_local(links.expire_at)}")
    return "\n".join(lines) + "\n"


def _discharge_lines(facts: Facts) -> list[str]:
    stay, event = facts.stay, facts.event
    destination = stay.discharge_destination
    head = f"DISCHARGE from {_setting(stay)} inpatient care"
    if event.trigger == "A07":  # the inpatient stay ended; the patient continues as outpatient
        head += " (inpatient stay ended: now an outpatient, A07)"
    if facts.corrects:  # a changed discharge: it replaces the earlier notification
        head = f"CORRECTED {head} (replaces notification {facts.corrects})"
    lines = [
        head,
        f"Patient: {_who(facts)}",
        f"From: {_place(event.location_from or stay.location)}, "
        f"provider {stay.provider_ods or 'not recorded'}",
        f"Discharged: {_when(stay.discharged_at or event.occurred_at)}",
        f"To: {_coded(destination, DISCHARGE_DESTINATIONS) if destination else 'not recorded'}",
    ]
    lines.extend(_transition_lines(facts))
    if stay.discharge_method:
        lines.append(f"Discharge method: {_coded(stay.discharge_method, DISCHARGE_METHODS)}")
    lines.append(f"Legal status at discharge: {_legal_status_text(stay)}")
    if s117 := s117_section(stay):
        lines.append(f"Section 117 aftercare: likely (detained under {s117}): confirm")
    lines.append(f"Responsible clinician: {_clinician(stay.responsible_clinician)}")
    lines.extend(_follow_up_lines(facts))
    lines.append(f"Risk flags: {_flags(stay)}")
    lines.extend(_gp_lines(facts))
    return lines


_TRANSITION_LABELS: Final = {
    TransitionKind.TO_ADULT_SERVICES: "TRANSITION to adult services",
    TransitionKind.OUT_OF_AREA: "OUT OF AREA",
}


def _transition_lines(facts: Facts) -> list[str]:
    return [f"{_TRANSITION_LABELS[t.kind]}: {t.reason}" for t in facts.event.transitions]


def _transfer_lines(facts: Facts) -> list[str]:
    stay, event = facts.stay, facts.event
    return [
        f"TRANSFER to another site ({_setting(stay)} inpatient care)",
        f"Patient: {_who(facts)}",
        f"From: {_place(event.location_from)}, provider {stay.provider_ods or 'not recorded'}",
        f"To: {_place(event.location_to)}",
        f"Transferred: {_when(event.occurred_at)}",
        f"Legal status: {_legal_status_text(stay)}",
        f"Responsible clinician: {_clinician(stay.responsible_clinician)}",
        f"Risk flags: {_flags(stay)}",
        *_gp_lines(facts),
    ]


def _withdrawal_lines(facts: Facts) -> list[str]:
    event = facts.event
    what = "discharge" if event.kind is EventKind.CANCEL_DISCHARGE else "transfer"
    if facts.corrects:
        head = f"WITHDRAWN: the {what} notified as {facts.corrects} was cancelled"
    else:
        head = (
            f"WITHDRAWN: a {what} was cancelled whose original notification is unknown "
            "(the engine never received it)"
        )
    where = _place(event.location_to or facts.stay.location)
    lines = [
        head,
        f"Patient: {_who(facts)}",
        f"Cancelled: {_when(event.occurred_at)}, "
        f"provider {facts.stay.provider_ods or 'not recorded'}",
    ]
    if what == "discharge":
        lines.append(f"The patient has not been discharged and remains on {where}.")
        follow_up = facts.follow_up
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


def _follow_up_lines(facts: Facts) -> list[str]:
    follow_up = facts.follow_up
    if follow_up is None:
        # Never worded as "no follow-up needed": only that no rule here started a clock.
        why = facts.no_follow_up or "no rule applies"
        lines = [
            f"Follow-up: no clock started by Carebridge's rules ({why}): not a decision that no "
            "follow-up is needed; confirm the plan with the discharging team"
        ]
        age = _age_at_discharge(facts)
        if age is not None and age < 18:
            lines.append(
                f"Young person aged {age}: follow-up after discharge still applies (NICE NG53, "
                "QS159): confirm it with the CAMHS team"
            )
        return lines
    due = f"follow-up due by {_local(follow_up.due_at)}"
    if follow_up.due_at <= facts.now:
        due += " (OVERDUE: arrange now)"
    return [
        f"Follow-up ({follow_up.standard}): {due}",
        f"Why: {follow_up.reason}",
    ]


def _gp_lines(facts: Facts) -> list[str]:
    patient = facts.event.patient
    if patient.location_hidden:
        return ["Location hidden (ZU8): contact details and GP withheld"]
    if patient.gp_practice_ods:
        return [f"GP practice: {patient.gp_practice_ods}"]
    return ["GP practice: not recorded"]


def _who(facts: Facts) -> str:
    patient = facts.event.patient
    parts = [display_name(patient)]
    if patient.nhs_number and (not_real := patient.nhs_number_not_real):
        parts.append(
            f"NHS number {_nhs_format(patient.nhs_number)} (NOT A REAL PATIENT'S NUMBER: "
            f"{not_real}; confirm who this is before acting)"
        )
    elif patient.nhs_number:
        parts.append(f"NHS number {_nhs_format(patient.nhs_number)}")
    else:
        status = patient.nhs_number_status
        missing = "no verified NHS number" + (
            f" (status {status.value}: {NHS_NUMBER_STATUSES[status.value]})" if status else ""
        )
        local = patient.local_identifier()
        if local:
            missing += f", local id {local.value}"
            missing += f" ({local.assigner_ods or local.system})" if local.system else ""
        parts.append(missing)
    parts.append(_born(facts))
    return ", ".join(parts)


def _age_at_discharge(facts: Facts) -> int | None:
    born = facts.event.patient.birth_date
    instant = facts.stay.discharged_at or facts.event.occurred_at
    if born is None or instant is None:
        return None
    return age_on(born, instant.utc.astimezone(LONDON).date())


def _born(facts: Facts) -> str:
    patient = facts.event.patient
    if patient.birth_date is not None:
        born = patient.birth_date
        text = f"born {born.day} {_MONTHS[born.month - 1]} {born.year}"
        age = _age_at_discharge(facts)
        if age is not None:
            text += f" (aged {age})"
        return text
    if patient.birth_date_original:
        return f"born {patient.birth_date_original} (as sent)"
    return "date of birth not recorded"


def _legal_status_text(stay: Stay) -> str:
    status = legal_status_at_discharge(stay)
    if status is not None:
        return _legal_status(status)
    on_admission = [s for s in stay.legal_status if s.context is LegalStatusContext.ADMISSION]
    if on_admission:
        return f"not recorded (on admission: {_legal_status(on_admission[-1])})"
    return "not recorded"


def local_time(moment: datetime) -> str:
    """``Tue 3 Mar 2026 14:05 GMT``: Europe/London wall-clock time with its zone."""
    return _local(moment)


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
    if is_local_system(coding.system):  # a code outside the national list, as sent
        about = f"{coding.code}, the sender's code: not an NHS code"
        return f"{label} ({about}): check with the sender" if label else f"code {about}"
    return f"{label} ({coding.code})" if label else f"code {coding.code} (no description)"


def _legal_status(status: LegalStatus) -> str:
    code = status.code
    if code.system == LEGAL_STATUS_ENGLAND:
        label = code.display or LEGAL_STATUSES.get(code.code, "unlisted code")
        return f"{label} ({code.code})"
    return f"{code.display or 'local code'} ({code.code}, sender's own code)"


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
