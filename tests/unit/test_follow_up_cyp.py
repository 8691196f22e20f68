"""Children and young people (issue 13 point 5): an under-18 discharge (CAMHS included) has a
follow-up rule of its own in the embedded defaults, configurable like the rest, and the text a
clinician reads never implies that no follow-up is needed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.config import ConfigError, load_config, parse_config
from mappings.clinical.follow_up import DEFAULT_RULES, follow_up_for, no_follow_up_reason
from mappings.clinical.notification import render_notification
from mappings.codes import RISK_FLAG, TREATMENT_FUNCTION
from mappings.hl7v2.inbound import map_hl7v2
from mappings.model import CareEvent, Coding
from mappings.profile import FeedProfile
from tests.golden_util import assert_text_golden

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures/hl7v2"
PROFILES = {
    name: FeedProfile.from_mapping(data)
    for name, data in yaml.safe_load((FIXTURES / "profiles.yaml").read_text()).items()
}
CAMHS = map_hl7v2((FIXTURES / "mh_a03_camhs_discharge.hl7").read_bytes(), PROFILES["mh"])
NOW = datetime(2026, 3, 9, 18, 0, tzinfo=UTC)
HIGH_RISK = Coding(system=RISK_FLAG, code="high-risk", display="High risk")
ADULT_ONLY = tuple(r for r in DEFAULT_RULES if r.max_age_years is None)


def with_stay(event: CareEvent, **stay: Any) -> CareEvent:
    assert event.stay is not None
    return event.model_copy(update={"stay": event.stay.model_copy(update=stay)})


def born(on: date | None, event: CareEvent = CAMHS) -> CareEvent:
    patient = event.patient.model_copy(update={"birth_date": on, "birth_date_original": None})
    return event.model_copy(update={"patient": patient})


def test_the_camhs_fixture_is_a_15_year_old_camhs_inpatient() -> None:
    assert CAMHS.stay is not None
    assert CAMHS.stay.specialty == Coding(system=TREATMENT_FUNCTION, code="711", display=None)
    assert CAMHS.patient.birth_date == date(2010, 11, 20)


def test_an_under_18_discharge_gets_the_cyp_72_hour_rule() -> None:
    found = follow_up_for(CAMHS, DEFAULT_RULES)
    assert found is not None
    assert (found.rule, found.standard) == ("mh-cyp-inpatient-72h", "72h-cyp")
    assert found.due_at - found.discharged_at == timedelta(hours=72)
    assert "aged 15 at discharge: a child or young person" in found.reason


def test_a_risk_flag_makes_it_48_hours_for_a_young_person_too() -> None:
    found = follow_up_for(with_stay(CAMHS, risk_flags=(HIGH_RISK,)), DEFAULT_RULES)
    assert found is not None
    assert (found.rule, found.standard) == ("mh-cyp-inpatient-48h-high-risk", "48h-high-risk-cyp")
    assert found.due_at - found.discharged_at == timedelta(hours=48)


@pytest.mark.parametrize(
    ("birth", "rule"),
    [
        (date(2008, 3, 9), "mh-adult-inpatient-72h"),  # 18 on the day of discharge
        (date(2008, 3, 10), "mh-cyp-inpatient-72h"),  # 18 tomorrow
        (date(2014, 1, 1), "mh-cyp-inpatient-72h"),
        (None, "mh-adult-inpatient-72h"),  # unknown age: a clock all the same
    ],
)
def test_age_on_the_day_of_discharge_picks_the_rule(birth: date | None, rule: str) -> None:
    found = follow_up_for(born(birth), DEFAULT_RULES)
    assert found is not None
    assert found.rule == rule


def test_the_embedded_defaults_yaml_holds_exactly_the_default_rules() -> None:
    assert load_config(None).follow_up_rules == DEFAULT_RULES


def test_the_cyp_rule_is_configurable_like_the_rest() -> None:
    config = parse_config(
        """
sources: [{name: mh, care_setting: mental_health}]
destinations: [{name: events, type: amqp, exchange: x}]
routes: [{name: all, to: [events]}]
follow_up:
  rules:
    - {name: camhs-48h, standard: 48h-camhs, due_after: 48h, min_age_years: null,
       max_age_years: 18}
""",
        env={},
    )
    found = follow_up_for(CAMHS, config.follow_up_rules)
    assert found is not None
    assert found.due_at - found.discharged_at == timedelta(hours=48)


def test_ages_out_of_order_are_refused_at_their_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            """
sources: [{name: mh}]
destinations: [{name: events, type: amqp, exchange: x}]
routes: [{name: all, to: [events]}]
follow_up:
  rules: [{name: odd, standard: x, due_after: 1h, min_age_years: 18, max_age_years: 18}]
""",
            env={},
        )
    assert any(
        p.startswith("follow_up.rules[0].max_age_years: must be more than min_age_years")
        for p in caught.value.problems
    ), caught.value.problems


def render(event: CareEvent, rules: Any = DEFAULT_RULES) -> str:
    found = follow_up_for(event, rules)
    note = render_notification(event, found, recipient="CAMHS TEAM", now=NOW, rules=rules)
    return note.text


def test_the_camhs_notification_text_is_as_reviewed() -> None:
    assert_text_golden(render(CAMHS), TESTS / "golden/notification/mh_a03_camhs_discharge.txt")


def test_without_a_cyp_rule_the_text_never_implies_no_follow_up_is_needed() -> None:
    note = render_notification(CAMHS, None, recipient="T", ack_url=None, now=NOW, rules=ADULT_ONLY)
    assert "not a decision that no follow-up is needed" in note.payload["follow_up"]["note"]
    text = render(CAMHS, ADULT_ONLY)
    assert "aged 15 at discharge: under 18" in no_follow_up_reason(CAMHS, ADULT_ONLY)
    assert "no 72-hour follow-up" not in text
    assert "not a decision that no follow-up is needed" in text
    assert "Young person aged 15: follow-up after discharge still applies" in text


def test_no_clock_for_any_reason_is_never_worded_as_none_needed() -> None:
    moved = with_stay(
        born(date(1980, 1, 1)),
        discharge_destination=Coding(
            system="https://fhir.hl7.org.uk/CodeSystem/UKCore-DischargeDestinationEngland",
            code="49",
        ),
    )
    text = render(moved)
    [line] = [line for line in text.splitlines() if line.startswith("Follow-up")]
    assert line.startswith("Follow-up: no clock started by Carebridge's rules (")
    assert "not a decision that no follow-up is needed" in line
