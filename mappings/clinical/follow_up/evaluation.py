"""Applying the follow-up rules to a care event: `follow_up_for` (the first rule that
matches, with the reasons it applies), `no_follow_up_reason` and `discharge_instant`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mappings.clinical.follow_up.rules import (
    EXCLUDED_DESTINATIONS,
    LONDON,
    FollowUp,
    FollowUpRule,
    age_on,
    describe_duration,
)
from mappings.codes import (
    DISCHARGE_DESTINATION_ENGLAND,
    DISCHARGE_DESTINATIONS,
    DISCHARGE_METHOD_ENGLAND,
    HL7_PATIENT_CLASS,
)
from mappings.model import CareEvent, CareSetting, EventKind, Instant, Precision, Stay


def follow_up_for(event: CareEvent, rules: Sequence[FollowUpRule]) -> FollowUp | None:
    """The follow-up the first matching rule gives this event, or None when none applies.

    Only a ``discharge`` event can start one. The due time may already be past (a backdated
    discharge): it is still returned, for the engine to escalate.
    """
    if event.kind is not EventKind.DISCHARGE:
        return None  # what `_check` says of every rule, without wording why for each
    for rule in rules:
        outcome = _check(event, rule)
        if isinstance(outcome, _Match):
            return FollowUp(
                rule=rule.name,
                standard=rule.standard,
                due_at=outcome.discharged_at + rule.due_after,
                discharged_at=outcome.discharged_at,
                reason="; ".join(outcome.notes),
            )
    return None


def no_follow_up_reason(event: CareEvent, rules: Sequence[FollowUpRule]) -> str:
    """Why no rule gives this event a follow-up (for the notification's text).

    Each rule's first failing criterion, without repeats; ``""`` when a rule does apply.
    """
    if not rules:
        return "no follow-up rules are configured"
    reasons: list[str] = []
    for rule in rules:
        outcome = _check(event, rule)
        if isinstance(outcome, _Match):
            return ""
        if outcome not in reasons:
            reasons.append(outcome)
    return "; ".join(reasons)


def discharge_instant(event: CareEvent) -> tuple[datetime, str | None] | None:
    """When the patient left (UTC), and a note when it is not the stay's discharge time.

    The stay's discharge time (PV1-45), else the event's occurred time (EVN-6), else when it
    was recorded, sent or received; None only when the event carries no time at all.
    """
    stay = event.stay
    candidates: tuple[tuple[Instant | None, str | None], ...] = (
        (stay.discharged_at if stay else None, None),
        (event.occurred_at, "discharge time not recorded: counted from when the event occurred"),
        (event.recorded_at, "discharge time not recorded: counted from when it was recorded"),
        (event.source.sent_at, "discharge time not recorded: counted from when it was sent"),
    )
    for instant, note in candidates:
        if instant is not None:
            if instant.precision in (Precision.YEAR, Precision.MONTH, Precision.DAY):
                note = "discharge known only by its date: counted from the start of that day"
            return instant.utc.astimezone(UTC), note
    if event.received_at is not None:
        return event.received_at.astimezone(UTC), (
            "discharge time not recorded: counted from when the engine received it"
        )
    return None


@dataclass(frozen=True)
class _Match:
    discharged_at: datetime
    notes: list[str]


def _check(event: CareEvent, rule: FollowUpRule) -> _Match | str:
    """The match (with the reasons it applies), or the first reason it does not."""
    if event.kind is not EventKind.DISCHARGE:
        if event.kind is EventKind.LEAVE_START:
            return "a leave of absence is not a discharge"
        return f"not a discharge (the event is a {event.kind.value.replace('_', ' ')})"
    stay = event.stay
    if stay is None:
        return "the discharge names no stay"
    if stay.care_setting not in rule.care_settings:
        return f"not a {' or '.join(_setting(s) for s in rule.care_settings)} stay"
    notes: list[str] = [f"{_setting(stay.care_setting)} discharge"]
    if rule.inpatient_only and (refused := _patient_class(stay, notes)):
        return refused
    if event.trigger == "A07":  # the class after it is outpatient; the spell it ends is not
        notes[0] += " (the inpatient stay ended by a change to outpatient, A07)"
    instant = discharge_instant(event)
    if instant is None:
        return "the discharge carries no time at all"
    discharged_at, time_note = instant
    if rule.min_age_years is not None or rule.max_age_years is not None:
        in_range, age_note = _age(event, rule, discharged_at)
        if not in_range:
            return age_note
        notes.append(age_note)
    if refused := _destination_check(event, rule, stay, notes):
        return refused
    flags = stay.risk_flags
    if rule.high_risk is True and not flags:
        return "no risk flag recorded"
    if rule.high_risk is False and flags:
        return "a risk flag is recorded"
    if flags:
        notes.append("risk flag: " + ", ".join(f.display or f.code for f in flags))
    if time_note:
        notes.append(time_note)
    notes.append(f"follow-up within {describe_duration(rule.due_after)} ({rule.standard})")
    return _Match(discharged_at, notes)


def _patient_class(stay: Stay, notes: list[str]) -> str | None:
    """Why the stay is not an inpatient one, or None (noting what was assumed)."""
    patient_class = stay.patient_class
    if patient_class is None:
        notes.append("patient class not recorded: treated as inpatient (safer)")
    elif patient_class.system != HL7_PATIENT_CLASS:
        notes.append(
            f"patient class {patient_class.code!r} is not an HL7 code: treated as inpatient (safer)"
        )
    elif patient_class.code != "I":
        label = patient_class.display or patient_class.code
        return f"not an inpatient stay (patient class {label}): outside the pathway"
    else:
        notes[0] = f"{_setting(stay.care_setting)} inpatient discharge"
    return None


def _destination_check(
    event: CareEvent, rule: FollowUpRule, stay: Stay, notes: list[str]
) -> str | None:
    """Why the discharge destination is outside the cohort, or None (noting what it is)."""
    destination = stay.discharge_destination
    if destination is None:
        notes.append("discharge destination not recorded: kept in the cohort (safer)")
    elif destination.system != DISCHARGE_DESTINATION_ENGLAND:
        notes.append(
            f"discharge destination {destination.code!r} is not an NHS code: "
            "kept in the cohort (safer)"
        )
    elif destination.code in rule.excluded_destinations:
        why = EXCLUDED_DESTINATIONS.get(destination.code, "excluded by the rule")
        return f"discharged to {_destination(destination.code, destination.display)}: {why}"
    elif destination.code in ("98", "99"):
        notes.append(
            f"discharge destination {_destination(destination.code, destination.display)}: "
            "kept in the cohort (safer)"
        )
    else:
        notes.append(f"discharged to {_destination(destination.code, destination.display)}")
    died = _died_elsewhere(event)
    if died and not (destination and destination.code == "79"):
        notes.append(f"{died} but the destination is not 79 (died): kept in the cohort, check")
    return None


def _age(event: CareEvent, rule: FollowUpRule, discharged_at: datetime) -> tuple[bool, str]:
    """Whether the patient's age is in the rule's range (an unknown age is), and a note why."""
    born = event.patient.birth_date
    specialty = event.stay.specialty if event.stay else None
    function = specialty.code if specialty else None
    if born is None:
        if rule.min_age_years is None:
            return True, "age not recorded: applied (safer)"
        if function and function in rule.adult_treatment_functions:
            return True, f"age not recorded; treatment function {function} is an adult service"
        where = f"treatment function {function} is not" if function else "no treatment function"
        return True, f"age not recorded and {where} listed as adult: applied (safer)"
    age = age_on(born, discharged_at.astimezone(LONDON).date())
    if rule.min_age_years is not None and age < rule.min_age_years:
        return False, f"aged {age} at discharge: under {rule.min_age_years}, not an adult"
    if rule.max_age_years is not None and age >= rule.max_age_years:
        return False, f"aged {age} at discharge: not under {rule.max_age_years}"
    if rule.max_age_years is not None:
        return True, f"aged {age} at discharge: a child or young person"
    return True, f"aged {age} at discharge"


def _died_elsewhere(event: CareEvent) -> str | None:
    method = event.stay.discharge_method if event.stay else None
    if method and method.system == DISCHARGE_METHOD_ENGLAND and method.code in ("4", "5"):
        return "the discharge method says the patient died"
    if event.patient.deceased_at is not None:
        return "the patient record has a date of death"
    return None


def _setting(setting: CareSetting) -> str:
    return setting.value.replace("_", " ")


def _destination(code: str, display: str | None) -> str:
    label = display or DISCHARGE_DESTINATIONS.get(code)
    return f"{label} ({code})" if label else code
