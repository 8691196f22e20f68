from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from mappings.clinical.follow_up import (
    DEFAULT_RULES,
    EXCLUDED_DESTINATIONS,
    FollowUpRule,
    RuleError,
    age_on,
    follow_up_for,
    no_follow_up_reason,
    rules_from_mapping,
)
from mappings.codes import (
    DISCHARGE_DESTINATION_ENGLAND,
    DISCHARGE_DESTINATIONS,
    DISCHARGE_METHOD_ENGLAND,
    HL7_PATIENT_CLASS,
    RISK_FLAG,
    TREATMENT_FUNCTION,
    local_system,
)
from mappings.hl7v2.inbound import map_hl7v2
from mappings.model import CareEvent, CareSetting, Coding, EventKind, Instant, Precision
from mappings.profile import FeedProfile

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hl7v2"
PROFILES = {
    name: FeedProfile.from_mapping(data)
    for name, data in yaml.safe_load((FIXTURES / "profiles.yaml").read_text()).items()
}
HIGH_RISK = Coding(system=RISK_FLAG, code="high-risk", display="High risk")


def fixture(name: str) -> CareEvent:
    return map_hl7v2((FIXTURES / name).read_bytes(), PROFILES[name.split("_", 1)[0]])


DISCHARGE = fixture("mh_a03_discharge.hl7")  # adult (b. 1980), MH inpatient, home (19), 710


def changed(event: CareEvent = DISCHARGE, **stay: Any) -> CareEvent:
    assert event.stay is not None
    return event.model_copy(update={"stay": event.stay.model_copy(update=stay)})


def born(on: date | None, event: CareEvent = DISCHARGE) -> CareEvent:
    patient = event.patient.model_copy(update={"birth_date": on, "birth_date_original": None})
    return event.model_copy(update={"patient": patient})


def instant(utc: datetime, precision: Precision = Precision.SECOND) -> Instant:
    return Instant(utc=utc, original=utc.strftime("%Y%m%d%H%M%S"), precision=precision)


def destination(code: str) -> Coding:
    return Coding(
        system=DISCHARGE_DESTINATION_ENGLAND, code=code, display=DISCHARGE_DESTINATIONS[code]
    )


# --- who is in the cohort ----------------------------------------------------------------------


def test_an_adult_mh_inpatient_discharged_home_is_followed_up_within_72_hours() -> None:
    follow_up = follow_up_for(DISCHARGE, DEFAULT_RULES)
    assert follow_up is not None
    assert (follow_up.rule, follow_up.standard) == ("mh-adult-inpatient-72h", "72h")
    assert follow_up.discharged_at == datetime(2026, 2, 2, 10, 30, tzinfo=UTC)  # PV1-45
    assert follow_up.due_at == datetime(2026, 2, 5, 10, 30, tzinfo=UTC)
    assert "aged 46 at discharge" in follow_up.reason
    assert "Usual place of residence (19)" in follow_up.reason
    assert no_follow_up_reason(DISCHARGE, DEFAULT_RULES) == ""


def test_a_risk_flag_makes_it_48_hours() -> None:
    follow_up = follow_up_for(changed(risk_flags=(HIGH_RISK,)), DEFAULT_RULES)
    assert follow_up is not None
    assert (follow_up.rule, follow_up.standard) == (
        "mh-adult-inpatient-48h-high-risk",
        "48h-high-risk",
    )
    assert follow_up.due_at - follow_up.discharged_at == timedelta(hours=48)
    assert "risk flag: High risk" in follow_up.reason


def test_a_risk_flag_from_the_feeds_obx_gives_48_hours() -> None:
    follow_up = follow_up_for(fixture("mhlocal_a03_discharge.hl7"), DEFAULT_RULES)
    assert follow_up is not None
    assert follow_up.standard == "48h-high-risk"
    assert follow_up.due_at == datetime(2026, 3, 3, 16, 30, tzinfo=UTC)


def test_the_first_matching_rule_wins() -> None:
    flagged = changed(risk_flags=(HIGH_RISK,))
    reordered = tuple(reversed(DEFAULT_RULES))
    follow_up = follow_up_for(flagged, reordered)
    assert follow_up is not None
    assert follow_up.standard == "72h"


@pytest.mark.parametrize("code", sorted(EXCLUDED_DESTINATIONS))
def test_each_excluded_destination_starts_no_follow_up(code: str) -> None:
    event = changed(discharge_destination=destination(code), risk_flags=(HIGH_RISK,))
    assert follow_up_for(event, DEFAULT_RULES) is None
    reason = no_follow_up_reason(event, DEFAULT_RULES)
    assert f"({code})" in reason
    assert EXCLUDED_DESTINATIONS[code] in reason


def test_the_excluded_destinations_are_psychiatric_court_prison_and_death() -> None:
    assert set(EXCLUDED_DESTINATIONS) == {"30", "37", "38", "48", "49", "50", "53", "79", "84"}
    for rule in DEFAULT_RULES:
        assert set(rule.excluded_destinations) == set(EXCLUDED_DESTINATIONS)


@pytest.mark.parametrize("code", ["19", "29", "51", "52", "54", "65", "66", "85", "87", "88"])
def test_community_care_homes_and_non_psychiatric_care_are_in_the_cohort(code: str) -> None:
    follow_up = follow_up_for(changed(discharge_destination=destination(code)), DEFAULT_RULES)
    assert follow_up is not None
    assert follow_up.standard == "72h"


@pytest.mark.parametrize(
    ("coding", "said"),
    [
        (None, "discharge destination not recorded: kept in the cohort (safer)"),
        (destination("99"), "Not known (99): kept in the cohort (safer)"),
        (destination("98"), "(98): kept in the cohort (safer)"),
        (
            Coding(system=local_system("mh-trust", "PV1-37"), code="HOSTEL"),
            "discharge destination 'HOSTEL' is not an NHS code: kept in the cohort (safer)",
        ),
    ],
)
def test_an_unknown_destination_stays_in_the_cohort_and_says_so(
    coding: Coding | None, said: str
) -> None:
    follow_up = follow_up_for(changed(discharge_destination=coding), DEFAULT_RULES)
    assert follow_up is not None
    assert follow_up.standard == "72h"
    assert said in follow_up.reason


def test_records_that_say_died_without_destination_79_keep_the_follow_up() -> None:
    died = Coding(system=DISCHARGE_METHOD_ENGLAND, code="4", display="Patient died")
    follow_up = follow_up_for(changed(discharge_method=died), DEFAULT_RULES)
    assert follow_up is not None
    assert "the discharge method says the patient died" in follow_up.reason


def test_a_leave_of_absence_is_never_a_discharge() -> None:
    leave = fixture("mh_a21_leave_start.hl7")
    assert follow_up_for(leave, DEFAULT_RULES) is None
    assert no_follow_up_reason(leave, DEFAULT_RULES) == "a leave of absence is not a discharge"
    # even when a feed puts discharge-like fields on the leave
    assert follow_up_for(changed(leave, discharged_at=DISCHARGE.occurred_at), DEFAULT_RULES) is None


@pytest.mark.parametrize("kind", [k for k in EventKind if k is not EventKind.DISCHARGE])
def test_only_a_discharge_starts_a_follow_up(kind: EventKind) -> None:
    assert follow_up_for(DISCHARGE.model_copy(update={"kind": kind}), DEFAULT_RULES) is None


@pytest.mark.parametrize(("code", "label"), [("O", "Outpatient"), ("E", "Emergency")])
def test_an_outpatient_or_ed_a03_is_not_in_the_pathway(code: str, label: str) -> None:
    event = changed(patient_class=Coding(system=HL7_PATIENT_CLASS, code=code, display=label))
    assert follow_up_for(event, DEFAULT_RULES) is None
    assert f"not an inpatient stay (patient class {label})" in no_follow_up_reason(
        event, DEFAULT_RULES
    )


def test_a_missing_patient_class_counts_as_inpatient_and_says_so() -> None:
    follow_up = follow_up_for(changed(patient_class=None), DEFAULT_RULES)
    assert follow_up is not None
    assert "patient class not recorded: treated as inpatient (safer)" in follow_up.reason


@pytest.mark.parametrize("setting", [CareSetting.ACUTE, CareSetting.COMMUNITY, CareSetting.UNKNOWN])
def test_only_mental_health_stays_by_default(setting: CareSetting) -> None:
    assert follow_up_for(changed(care_setting=setting), DEFAULT_RULES) is None


def test_a_child_is_outside_the_adult_rules() -> None:
    child = born(date(2010, 6, 1))  # 15 on 2 Feb 2026
    adult_rules = tuple(r for r in DEFAULT_RULES if r.max_age_years is None)
    assert follow_up_for(child, adult_rules) is None
    assert "aged 15 at discharge: under 18" in no_follow_up_reason(child, adult_rules)
    found = follow_up_for(child, DEFAULT_RULES)  # the defaults have a rule of their own for it
    assert found is not None
    assert found.rule == "mh-cyp-inpatient-72h"


def test_age_is_taken_on_the_day_of_discharge_so_a_young_person_who_turned_18_is_an_adult() -> None:
    # CYP -> adult: admitted at 17, 18 on the (London) day of discharge
    adult = follow_up_for(born(date(2008, 2, 2)), DEFAULT_RULES)
    young = follow_up_for(born(date(2008, 2, 3)), DEFAULT_RULES)
    assert adult is not None
    assert adult.rule == "mh-adult-inpatient-72h"
    assert young is not None
    assert young.rule == "mh-cyp-inpatient-72h"


def test_a_29_february_birthday_comes_on_1_march() -> None:
    assert age_on(date(2008, 2, 29), date(2026, 2, 28)) == 17
    assert age_on(date(2008, 2, 29), date(2026, 3, 1)) == 18


def test_an_unknown_age_with_an_adult_treatment_function_is_followed_up() -> None:
    follow_up = follow_up_for(born(None), DEFAULT_RULES)  # treatment function 710
    assert follow_up is not None
    assert follow_up.standard == "72h"
    assert "age not recorded; treatment function 710 is an adult service" in follow_up.reason


def test_an_unknown_age_without_an_adult_treatment_function_is_followed_up_as_safer() -> None:
    camhs = Coding(system=TREATMENT_FUNCTION, code="711")
    follow_up = follow_up_for(changed(born(None), specialty=camhs), DEFAULT_RULES)
    assert follow_up is not None
    assert "treatment function 711 is not listed as adult: applied (safer)" in follow_up.reason
    follow_up = follow_up_for(changed(born(None), specialty=None), DEFAULT_RULES)
    assert follow_up is not None
    assert "no treatment function listed as adult: applied (safer)" in follow_up.reason


# --- when it is due ------------------------------------------------------------------------------


def test_a_window_across_the_spring_clock_change_is_72_elapsed_hours() -> None:
    # BST starts 01:00 GMT on Sun 29 March 2026: the wall clock gains an hour, the deadline not
    left = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)  # 12:00 GMT
    follow_up = follow_up_for(changed(discharged_at=instant(left)), DEFAULT_RULES)
    assert follow_up is not None
    assert follow_up.due_at == datetime(2026, 3, 31, 12, 0, tzinfo=UTC)  # 13:00 BST
    assert (follow_up.due_at - follow_up.discharged_at).total_seconds() == 72 * 3600


def test_a_window_across_the_autumn_clock_change_is_72_elapsed_hours() -> None:
    left = datetime(2026, 10, 24, 11, 0, tzinfo=UTC)  # 12:00 BST; GMT from Sun 25 Oct
    follow_up = follow_up_for(changed(discharged_at=instant(left)), DEFAULT_RULES)
    assert follow_up is not None
    assert follow_up.due_at == datetime(2026, 10, 27, 11, 0, tzinfo=UTC)  # 11:00 GMT


def test_a_backdated_discharge_is_returned_already_due() -> None:
    # A03 received on 10 Feb for a discharge on 2 Feb (during leave): the engine escalates
    follow_up = follow_up_for(
        DISCHARGE.model_copy(update={"received_at": datetime(2026, 2, 10, tzinfo=UTC)}),
        DEFAULT_RULES,
    )
    assert follow_up is not None
    assert follow_up.due_at < datetime(2026, 2, 10, tzinfo=UTC)


def test_without_a_discharge_time_the_event_time_is_used_and_said() -> None:
    occurred = instant(datetime(2026, 2, 2, 9, 0, tzinfo=UTC))
    event = changed(discharged_at=None).model_copy(update={"occurred_at": occurred})
    follow_up = follow_up_for(event, DEFAULT_RULES)
    assert follow_up is not None
    assert follow_up.discharged_at == occurred.utc
    assert "discharge time not recorded: counted from when the event occurred" in follow_up.reason


def test_a_discharge_known_by_its_date_counts_from_the_start_of_that_day() -> None:
    day = Instant(
        utc=datetime(2026, 2, 2, 0, 0, tzinfo=UTC), original="20260202", precision=Precision.DAY
    )
    follow_up = follow_up_for(changed(discharged_at=day), DEFAULT_RULES)
    assert follow_up is not None
    assert follow_up.due_at == datetime(2026, 2, 5, 0, 0, tzinfo=UTC)
    assert "known only by its date" in follow_up.reason


# --- rules from configuration -----------------------------------------------------------------


DEFAULTS_YAML = """
- name: mh-adult-inpatient-48h-high-risk
  standard: 48h-high-risk
  due_after: 48h
  adult_treatment_functions: ["710", "712", "713", "715", "722", "723", "724", "725"]
  high_risk: true
- name: mh-cyp-inpatient-48h-high-risk
  standard: 48h-high-risk-cyp
  due_after: 48h
  min_age_years: null
  max_age_years: 18
  high_risk: true
- name: mh-adult-inpatient-72h
  standard: 72h
  due_after: 72h
  care_settings: [mental_health]
  inpatient_only: true
  min_age_years: 18
  adult_treatment_functions: ["710", "712", "713", "715", "722", "723", "724", "725"]
  high_risk: null
  excluded_destinations: ["30", "37", "38", "48", "49", "50", "53", "79", "84"]
- name: mh-cyp-inpatient-72h
  standard: 72h-cyp
  due_after: 72h
  min_age_years: null
  max_age_years: 18
"""


def test_the_default_rules_written_in_yaml_read_back_as_the_defaults() -> None:
    assert rules_from_mapping(yaml.safe_load(DEFAULTS_YAML)) == DEFAULT_RULES


def test_durations_in_units_or_seconds() -> None:
    rules = rules_from_mapping(
        [
            {"name": "rehab", "standard": "7d", "due_after": "7d"},
            {"name": "hourly", "standard": "1h", "due_after": 3600},
            {"name": "brief", "standard": "90m", "due_after": "90m"},
        ]
    )
    assert [r.due_after for r in rules] == [
        timedelta(days=7),
        timedelta(hours=1),
        timedelta(minutes=90),
    ]
    assert rules[0] == FollowUpRule(name="rehab", standard="7d", due_after=timedelta(days=7))


def test_a_7_day_rehab_rule_applies_when_configured() -> None:
    (rule,) = rules_from_mapping(
        [{"name": "rehab-7d", "standard": "7d", "due_after": "7d", "min_age_years": None}]
    )
    follow_up = follow_up_for(born(date(2010, 1, 1)), (rule,))
    assert follow_up is not None
    assert follow_up.due_at == datetime(2026, 2, 9, 10, 30, tzinfo=UTC)
    assert "follow-up within 7 days (7d)" in follow_up.reason


def test_every_problem_is_reported_with_its_path() -> None:
    data: list[Any] = [
        {"name": "ok", "standard": "72h", "due_after": "72h"},
        {
            "name": "",
            "due_after": "soon",
            "care_settings": ["mental_health", "hospice"],
            "inpatient_only": "yes",
            "min_age_years": -1,
            "adult_treatment_functions": [710],
            "high_risk": "maybe",
            "excluded_destinations": ["53", "77"],
            "colour": "red",
        },
        "not a rule",
        {"name": "ok", "standard": "72h", "due_after": 0},
    ]
    with pytest.raises(RuleError) as caught:
        rules_from_mapping(data)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value) == "\n".join(caught.value.problems)
    paths = [p.split(": ", 1)[0] for p in caught.value.problems]
    assert paths == [
        "rules[1].name",
        "rules[1].standard",
        "rules[1].due_after",
        "rules[1].care_settings[1]",
        "rules[1].inpatient_only",
        "rules[1].min_age_years",
        "rules[1].adult_treatment_functions[0]",
        "rules[1].high_risk",
        "rules[1].excluded_destinations[1]",
        "rules[1].colour",
        "rules[2]",
        "rules[3].due_after",
    ]
    assert "'77' is not an NHS Data Dictionary discharge destination code" in str(caught.value)
    assert "a YAML number loses leading zeros" in str(caught.value)


def test_a_duplicate_name_is_a_problem() -> None:
    rule = {"name": "same", "standard": "72h", "due_after": "72h"}
    with pytest.raises(RuleError) as caught:
        rules_from_mapping([rule, rule])
    assert caught.value.problems == ["rules[1].name: 'same' is used by an earlier rule"]


@pytest.mark.parametrize("data", [[], {"name": "x"}, "72h", None])
def test_the_rules_must_be_a_non_empty_list(data: Any) -> None:
    with pytest.raises(RuleError) as caught:
        rules_from_mapping(data)
    assert caught.value.problems[0].startswith("rules: ")
