"""The follow-up rules as data: `FollowUpRule` (which discharges a standard covers, how soon
it is due), the `FollowUp` a discharge starts, `DEFAULT_RULES` and the NHS code lists they use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from mappings.model import CareSetting

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

CYP_TREATMENT_FUNCTIONS: Final = ("711", "712")
"""Treatment functions of child and adolescent (CAMHS) inpatient services, as the domain brief
(section 9) and issue 13 name them: 711 child and adolescent psychiatry, and 712."""

ADULT_TREATMENT_FUNCTIONS: Final = ("710", "712", "713", "715", "722", "723", "724", "725")
"""NHS DD treatment functions of adult mental health services: adult mental illness, forensic,
medical psychotherapy, old age, liaison, psychiatric intensive care, perinatal, rehabilitation.
711 (child and adolescent psychiatry) is not one; 720/721 (eating disorders, addiction) serve
all ages and are left out."""

HOUR_SECONDS: Final = 3600


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
    max_age_years: int | None = None
    """Only patients *younger* than this at discharge (18: children and young people); None:
    no upper bound. An unknown age matches (the safer reading), said so in the reason."""
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
        name="mh-cyp-inpatient-48h-high-risk",
        standard="48h-high-risk-cyp",
        due_after=timedelta(hours=48),
        min_age_years=None,
        max_age_years=18,
        high_risk=True,
    ),
    FollowUpRule(
        name="mh-adult-inpatient-72h",
        standard="72h",
        due_after=timedelta(hours=72),
        adult_treatment_functions=ADULT_TREATMENT_FUNCTIONS,
    ),
    FollowUpRule(
        name="mh-cyp-inpatient-72h",
        standard="72h-cyp",
        due_after=timedelta(hours=72),
        min_age_years=None,
        max_age_years=18,
    ),
)
"""The defaults, first match wins. Adults (18 or over at discharge, or of unknown age): NICE
QS159 statement 4, 48 h with a risk flag, then the NHS Standard Contract's 72 h. Children and
young people (under 18, CAMHS included) have rules of their own, since the contract's 72 h
covers adult beds only: 48 h with a risk flag (QS159 statement 4, which covers everyone
discharged from an inpatient mental health setting, children and young people included), else
72 h (`72h-cyp`): stricter than NG53's 7-day follow-up (recommendations 1.6.7-1.6.8), because
post-discharge suicide risk peaks on day 3 whatever the age (NCISH), so the adult clock is the
safer default; docs/clinical-safety.md (H10, H14) gives the reasons. Configure other rules if
local CAMHS policy differs."""


def age_on(born: date, on: date) -> int:
    """Whole years from `born` to `on` (a 29 February birthday comes on 1 March)."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def describe_duration(duration: timedelta) -> str:
    """``72 hours``, ``48 hours``, ``7 days``, ``90 minutes``."""
    seconds = int(duration.total_seconds())
    if seconds % (24 * HOUR_SECONDS) == 0 and seconds > 72 * HOUR_SECONDS:
        days = seconds // (24 * HOUR_SECONDS)
        return f"{days} day" + ("s" if days != 1 else "")
    if seconds % HOUR_SECONDS == 0:
        hours = seconds // HOUR_SECONDS
        return f"{hours} hour" + ("s" if hours != 1 else "")
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"
