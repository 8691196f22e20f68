"""Follow-up after a mental health inpatient discharge: which standard applies, and when it is due.

Section 5 of the UK ADT and discharge domain brief:

- **72 hours**: NHS Standard Contract, Schedule 4A (since April 2020) — everyone discharged from
  an adult mental health inpatient bed to their residence, a care home, residential
  accommodation or non-psychiatric care is followed up within 72 hours;
- **48 hours**: NICE QS159 — within 48 hours when a suicide risk has been identified (here: the
  stay carries a risk flag);
- **7 days**: still used locally for some rehabilitation beds (configure a rule for it).

`follow_up_for` applies the first matching `FollowUpRule` (so `DEFAULT_RULES` checks 48 h
high-risk before 72 h) to a *discharge* event and says, in `FollowUp.reason`, why it applied.
Only ``discharge`` events start the clock: a leave of absence (A21) is never a discharge (the
patient is still an inpatient, the responsible clinician can recall them).

Choices, each in the safer direction (a spurious follow-up task costs a phone call; a missed one
can cost a life — NCISH: post-discharge suicides peak on day 3):

- no discharge destination (or a code outside the NHS list) → still in the cohort, said so;
- age unknown → the rule applies, said so (an adult treatment function only changes the words);
- patient class missing or not an HL7 table 0004 code → treated as inpatient, said so;
- records that say the patient died but a destination that does not (79) → still in the
  cohort, said so: only the destination excludes;
- a backdated discharge gets a due time that may already be past: it is returned all the same,
  for the engine to escalate at once (domain brief 7.10);
- the due time is the discharge instant plus `due_after` in elapsed UTC time, so a clock change
  inside the window neither adds nor removes an hour (7.8); a discharge known only by its date
  counts from the start of that day (the earlier, safer deadline).

Pure: no I/O, no logging.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from mappings.codes import (
    DISCHARGE_DESTINATION_ENGLAND,
    DISCHARGE_DESTINATIONS,
    DISCHARGE_METHOD_ENGLAND,
    HL7_PATIENT_CLASS,
)
from mappings.model import CareEvent, CareSetting, EventKind, Instant, Precision

__all__ = [
    "ADULT_TREATMENT_FUNCTIONS",
    "DEFAULT_RULES",
    "EXCLUDED_DESTINATIONS",
    "FollowUp",
    "FollowUpRule",
    "RuleError",
    "age_on",
    "describe_duration",
    "discharge_instant",
    "follow_up_for",
    "no_follow_up_reason",
    "rules_from_mapping",
]

LONDON: Final = ZoneInfo("Europe/London")

EXCLUDED_DESTINATIONS: Final[dict[str, str]] = {
    "30": "a move between secure psychiatric services, not to the community",
    "37": "the court and the receiving service take over",
    "38": "prison or police healthcare takes over",
    "48": "still an inpatient: the receiving hospital takes over",
    "49": "still an inpatient: the receiving hospital takes over",
    "50": "still an inpatient: the receiving unit takes over",
    "53": "still an inpatient: the receiving ward takes over",
    "79": "the patient died",
    "84": "still an inpatient: the receiving unit takes over",
}
"""NHS DD discharge destinations outside the follow-up cohort, each with why (domain brief 5 and
7.12: the cohort is residence, care home, residential accommodation or non-psychiatric care).

Deliberately *in* the cohort: 19/29 residence, 51/52 another provider's general or maternity
ward (non-psychiatric care), 54/65/85 care homes and residential care, 66 foster care, 88
hospice, 87 "non-NHS run hospital" (it may be a general hospital: kept in, the safer reading of
an ambiguous code), 98 "spell not finished" and 99 "not known" (no real destination: kept in).
"""

ADULT_TREATMENT_FUNCTIONS: Final = ("710", "712", "713", "715", "722", "723", "724", "725")
"""NHS DD treatment functions of adult mental health services: adult mental illness, forensic,
medical psychotherapy, old age, liaison, psychiatric intensive care, perinatal, rehabilitation.
711 (child and adolescent psychiatry) is not one; 720/721 (eating disorders, addiction) serve
all ages and are left out."""

_HOURS = 3600


@dataclass(frozen=True)
class FollowUpRule:
    """Which discharges a follow-up standard covers, and how soon the follow-up is due."""

    name: str
    standard: str
    """The standard's short name, e.g. ``48h-high-risk``, ``72h``, ``7d``."""
    due_after: timedelta
    care_settings: tuple[CareSetting, ...] = (CareSetting.MENTAL_HEALTH,)
    inpatient_only: bool = True
    """Only stays whose patient class (PV1-2) is ``I``; a missing class counts as inpatient."""
    min_age_years: int | None = 18
    """Age at discharge (Europe/London date) from the birth date; None: any age."""
    adult_treatment_functions: tuple[str, ...] = ()
    """Treatment functions that count as adult when the age is unknown (the rule applies to an
    unknown age anyway, as the safer default: these only make the reason more certain)."""
    high_risk: bool | None = None
    """True: only stays with a risk flag; False: only without; None: either."""
    excluded_destinations: tuple[str, ...] = tuple(EXCLUDED_DESTINATIONS)
    """NHS DD discharge destination codes outside the cohort (see `EXCLUDED_DESTINATIONS`)."""


@dataclass(frozen=True)
class FollowUp:
    """A follow-up the discharge starts: which rule, which standard, due when, and why."""

    rule: str
    standard: str
    due_at: datetime
    """UTC: `discharged_at` plus the rule's `due_after`, in elapsed time."""
    discharged_at: datetime
    """UTC: the discharge instant the clock starts from."""
    reason: str


DEFAULT_RULES: Final[tuple[FollowUpRule, ...]] = (
    FollowUpRule(
        name="mh-adult-inpatient-48h-high-risk",
        standard="48h-high-risk",
        due_after=timedelta(hours=48),
        adult_treatment_functions=ADULT_TREATMENT_FUNCTIONS,
        high_risk=True,
    ),
    FollowUpRule(
        name="mh-adult-inpatient-72h",
        standard="72h",
        due_after=timedelta(hours=72),
        adult_treatment_functions=ADULT_TREATMENT_FUNCTIONS,
    ),
)
"""NICE QS159 48 h for an adult MH inpatient discharge to the community with a risk flag,
then the NHS Standard Contract 72 h for every other one. Order matters: the first match wins."""


# --- applying the rules ------------------------------------------------------------------------


def follow_up_for(event: CareEvent, rules: Sequence[FollowUpRule]) -> FollowUp | None:
    """The follow-up the first matching rule gives this event, or None when none applies.

    Only a ``discharge`` event can start one. The due time may already be past (a backdated
    discharge): it is still returned, for the engine to escalate.
    """
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

    if rule.inpatient_only:
        patient_class = stay.patient_class
        if patient_class is None:
            notes.append("patient class not recorded: treated as inpatient (safer)")
        elif patient_class.system != HL7_PATIENT_CLASS:
            notes.append(
                f"patient class {patient_class.code!r} is not an HL7 code: "
                "treated as inpatient (safer)"
            )
        elif patient_class.code != "I":
            label = patient_class.display or patient_class.code
            return f"not an inpatient stay (patient class {label}): outside the pathway"
        else:
            notes[0] = f"{_setting(stay.care_setting)} inpatient discharge"

    instant = discharge_instant(event)
    if instant is None:
        return "the discharge carries no time at all"
    discharged_at, time_note = instant

    if rule.min_age_years is not None:
        old_enough, age_note = _age(event, rule, discharged_at)
        if not old_enough:
            return age_note
        notes.append(age_note)

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


def _age(event: CareEvent, rule: FollowUpRule, discharged_at: datetime) -> tuple[bool, str]:
    """Whether the patient is old enough for the rule (an unknown age is), and a note why."""
    assert rule.min_age_years is not None
    born = event.patient.birth_date
    specialty = event.stay.specialty if event.stay else None
    function = specialty.code if specialty else None
    if born is None:
        if function and function in rule.adult_treatment_functions:
            return True, f"age not recorded; treatment function {function} is an adult service"
        where = f"treatment function {function} is not" if function else "no treatment function"
        return True, f"age not recorded and {where} listed as adult: applied (safer)"
    age = age_on(born, discharged_at.astimezone(LONDON).date())
    if age < rule.min_age_years:
        return False, f"aged {age} at discharge: under {rule.min_age_years}, not an adult"
    return True, f"aged {age} at discharge"


def age_on(born: date, on: date) -> int:
    """Whole years from `born` to `on` (a 29 February birthday comes on 1 March)."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


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


def describe_duration(duration: timedelta) -> str:
    """``72 hours``, ``48 hours``, ``7 days``, ``90 minutes``."""
    seconds = int(duration.total_seconds())
    if seconds % (24 * _HOURS) == 0 and seconds > 72 * _HOURS:
        days = seconds // (24 * _HOURS)
        return f"{days} day" + ("s" if days != 1 else "")
    if seconds % _HOURS == 0:
        hours = seconds // _HOURS
        return f"{hours} hour" + ("s" if hours != 1 else "")
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"


# --- rules from configuration ------------------------------------------------------------------


class RuleError(ValueError):
    """Follow-up rules in the configuration are invalid; `problems` holds ``path: reason`` each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS: Final = {"s": 1, "m": 60, "h": _HOURS, "d": 24 * _HOURS, None: 1}
_KEYS: Final = (
    "name",
    "standard",
    "due_after",
    "care_settings",
    "inpatient_only",
    "min_age_years",
    "adult_treatment_functions",
    "high_risk",
    "excluded_destinations",
)


def rules_from_mapping(data: Sequence[Mapping[str, Any]]) -> tuple[FollowUpRule, ...]:
    """Rules from plain data (YAML config), in order; raises `RuleError` listing every problem.

    ``name``, ``standard`` and ``due_after`` are required; the rest default as `FollowUpRule`::

        - name: mh-adult-inpatient-48h-high-risk
          standard: 48h-high-risk
          due_after: 48h                 # 72h, 48h, 7d, 90m, or seconds
          care_settings: [mental_health]
          inpatient_only: true
          min_age_years: 18              # null: any age
          adult_treatment_functions: ["710", "712", "715", "723"]
          high_risk: true                # true | false | null
          excluded_destinations: ["30", "37", "38", "48", "49", "50", "53", "79", "84"]

    Codes must be quoted strings: a YAML number would silently lose a leading zero.
    """
    problems: list[str] = []
    if isinstance(data, str | bytes | Mapping) or not isinstance(data, Sequence):
        raise RuleError(["rules: must be a list of rules"])
    if not data:
        raise RuleError(["rules: at least one rule is required (none would follow up nobody)"])
    rules: list[FollowUpRule] = []
    names: set[str] = set()
    for index, item in enumerate(data):
        rule = _RuleReader(f"[{index}]", item, problems).rule()
        if rule is None:
            continue
        if rule.name in names:
            problems.append(f"[{index}].name: {rule.name!r} is used by an earlier rule")
        names.add(rule.name)
        rules.append(rule)
    if problems:
        raise RuleError(problems)
    return tuple(rules)


class _RuleReader:
    def __init__(self, path: str, data: Any, problems: list[str]) -> None:
        self.path = path
        self.data = data
        self.problems = problems

    def problem(self, key: str, reason: str) -> None:
        self.problems.append(f"{self.path}.{key}: {reason}" if key else f"{self.path}: {reason}")

    def rule(self) -> FollowUpRule | None:
        if not isinstance(self.data, Mapping):
            self.problem("", "must be a mapping with name, standard and due_after")
            return None
        before = len(self.problems)
        for key in sorted(set(map(str, self.data)) - set(_KEYS)):
            self.problem(key, f"unknown setting; expected one of {', '.join(_KEYS)}")
        rule = FollowUpRule(
            name=self._text("name"),
            standard=self._text("standard"),
            due_after=self._duration(),
            care_settings=self._care_settings(),
            inpatient_only=self._flag("inpatient_only", default=True),
            min_age_years=self._age(),
            adult_treatment_functions=self._codes("adult_treatment_functions", ()),
            high_risk=self._high_risk(),
            excluded_destinations=self._destinations(),
        )
        return rule if len(self.problems) == before else None

    def _text(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str) or not value.strip():
            self.problem(key, "required: a non-empty text")
            return ""
        return value.strip()

    def _duration(self) -> timedelta:
        value = self.data.get("due_after")
        seconds: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str) and (match := _DURATION.match(value)):
            seconds = float(match[1]) * _UNITS[match[2]]
        if seconds is None:
            self.problem("due_after", "required: a duration such as 72h, 48h, 7d or seconds")
            return timedelta()
        if seconds <= 0:
            self.problem("due_after", "must be longer than zero")
        return timedelta(seconds=seconds)

    def _care_settings(self) -> tuple[CareSetting, ...]:
        value = self.data.get("care_settings", [CareSetting.MENTAL_HEALTH.value])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not value:
            self.problem("care_settings", "must be a non-empty list of care settings")
            return ()
        settings: list[CareSetting] = []
        for index, item in enumerate(value):
            try:
                settings.append(CareSetting(item))
            except ValueError:
                expected = ", ".join(s.value for s in CareSetting)
                self.problem(f"care_settings[{index}]", f"{item!r}: expected one of {expected}")
        return tuple(settings)

    def _flag(self, key: str, *, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.problem(key, "must be true or false")
            return default
        return value

    def _age(self) -> int | None:
        value = self.data.get("min_age_years", 18)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 150:
            self.problem("min_age_years", "must be a whole number of years (0-150) or null")
            return 18
        return value

    def _high_risk(self) -> bool | None:
        value = self.data.get("high_risk")
        if value is not None and not isinstance(value, bool):
            self.problem("high_risk", "must be true (only with a risk flag), false or null")
            return None
        return value

    def _codes(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.data.get(key, list(default))
        if not isinstance(value, list | tuple):
            self.problem(key, "must be a list of quoted codes")
            return default
        codes: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.problem(
                    f"{key}[{index}]",
                    f"{item!r}: must be a quoted code such as '19' "
                    "(a YAML number loses leading zeros)",
                )
                continue
            codes.append(item.strip())
        return tuple(codes)

    def _destinations(self) -> tuple[str, ...]:
        before = len(self.problems)
        codes = self._codes("excluded_destinations", tuple(EXCLUDED_DESTINATIONS))
        if len(self.problems) != before:
            return codes
        raw = self.data.get("excluded_destinations", list(EXCLUDED_DESTINATIONS))
        for index, code in enumerate(raw):
            if code.strip() not in DISCHARGE_DESTINATIONS:
                self.problem(
                    f"excluded_destinations[{index}]",
                    f"{code!r} is not an NHS Data Dictionary discharge destination code",
                )
        return codes
