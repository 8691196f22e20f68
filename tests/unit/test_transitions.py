"""Transition flags (issue 13 point 6): a young person moving to adult services and an
out-of-area discharge, as structured fields on the care event, in the notification's text and
JSON, and in FHIR (the outbound Encounter and the notification's Communication).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.encounter import Encounter

from engine.config import ConfigError, parse_config
from engine.delivery.preview import preview
from engine.preparation import prepare
from mappings.clinical.follow_up import DEFAULT_RULES, follow_up_for
from mappings.clinical.notification import render_notification
from mappings.clinical.transitions import (
    DEFAULT_TRANSITIONS,
    TransitionSettings,
    with_transitions,
)
from mappings.fhir.outbound import render_fhir_message
from mappings.fhir.vocabulary import TRANSITION_SYSTEM, TRANSITION_URL
from mappings.hl7v2.inbound import map_hl7v2
from mappings.model import (
    Address,
    CareEvent,
    Coding,
    EventKind,
    TransitionKind,
)
from mappings.profile import FeedProfile
from tests.golden_util import assert_golden, assert_text_golden

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures/hl7v2"
GOLDEN = TESTS / "golden/notification"
PROFILES = {
    name: FeedProfile.from_mapping(data)
    for name, data in yaml.safe_load((FIXTURES / "profiles.yaml").read_text()).items()
}


def fixture(name: str) -> CareEvent:
    return map_hl7v2((FIXTURES / f"{name}.hl7").read_bytes(), PROFILES["mh"])


ADULT = fixture("mh_a03_discharge")  # born 1980, 710, GP Y99901, home TE1 1ST, provider RXT
CAMHS = fixture("mh_a03_camhs_discharge")  # 15, 711, GP Y99901, home TE2 2ND
MOVING = fixture("mh_a03_transition_out_of_area")  # 17, 711, GP Y12345, home ZZ9 9ZZ
AREAS = TransitionSettings.model_validate(
    {
        "provider_areas": {
            "RXT": {"postcode_districts": ["TE1", "TE2"], "gp_practices": ["Y99901"]},
        }
    }
)
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def kinds(event: CareEvent) -> list[TransitionKind]:
    return [t.kind for t in event.transitions]


def born(on: date, event: CareEvent = CAMHS) -> CareEvent:
    return event.model_copy(update={"patient": event.patient.model_copy(
        update={"birth_date": on})})  # fmt: skip


def with_stay(event: CareEvent, **stay: Any) -> CareEvent:
    assert event.stay is not None
    return event.model_copy(update={"stay": event.stay.model_copy(update=stay)})


def with_patient(event: CareEvent, **patient: Any) -> CareEvent:
    return event.model_copy(update={"patient": event.patient.model_copy(update=patient)})


# --- to adult services ------------------------------------------------------------------------


def test_an_adult_and_a_15_year_old_are_no_transition() -> None:
    assert with_transitions(ADULT, AREAS).transitions == ()
    assert with_transitions(CAMHS, AREAS).transitions == ()


def test_a_17_year_old_is_moving_to_adult_services() -> None:
    [flag] = with_transitions(MOVING, DEFAULT_TRANSITIONS).transitions
    assert flag.kind is TransitionKind.TO_ADULT_SERVICES
    assert flag.reason == (
        "aged 17 at discharge: adult services from 18 (CAMHS spell (treatment function 711)); "
        "plan the transition"
    )


def test_turning_18_during_the_stay_is_a_transition() -> None:
    # admitted 20 Feb 2026 aged 17, discharged 9 Mar 2026 aged 18
    [flag] = with_transitions(born(date(2008, 3, 1)), DEFAULT_TRANSITIONS).transitions
    assert flag.reason.startswith("turned 18 during the stay")


def test_a_camhs_spell_ending_at_18_or_over_is_a_transition() -> None:
    late = with_stay(born(date(2007, 1, 1)), admitted_at=None)
    [flag] = with_transitions(late, DEFAULT_TRANSITIONS).transitions
    assert flag.reason == (
        "aged 19 at the end of a CAMHS spell (treatment function 711): adult services now "
        "responsible"
    )
    specialty = Coding(system=CAMHS.stay.specialty.system, code="712")  # type: ignore[union-attr]
    assert kinds(with_transitions(with_stay(late, specialty=specialty), DEFAULT_TRANSITIONS)) == [
        TransitionKind.TO_ADULT_SERVICES
    ]


def test_the_age_threshold_is_configurable() -> None:
    sixteen = born(date(2009, 6, 1))  # 16 on 9 Mar 2026
    assert with_transitions(sixteen, DEFAULT_TRANSITIONS).transitions == ()
    younger = TransitionSettings(adult_services_from_age=16)
    assert kinds(with_transitions(sixteen, younger)) == [TransitionKind.TO_ADULT_SERVICES]


def test_only_a_discharge_is_flagged() -> None:
    admission = MOVING.model_copy(update={"kind": EventKind.ADMISSION})
    assert with_transitions(admission, AREAS).transitions == ()


def test_an_unknown_age_is_no_flag() -> None:
    unknown = with_patient(MOVING, birth_date=None)
    assert TransitionKind.TO_ADULT_SERVICES not in kinds(with_transitions(unknown, AREAS))


# --- out of area ------------------------------------------------------------------------------


def test_a_gp_practice_and_home_outside_the_providers_area_are_out_of_area() -> None:
    flags = with_transitions(MOVING, AREAS).transitions
    assert [f.kind for f in flags] == [TransitionKind.TO_ADULT_SERVICES, TransitionKind.OUT_OF_AREA]
    assert flags[1].reason == (
        "GP practice Y12345 and home postcode district outside provider RXT's area: tell the "
        "home team and GP"
    )


def test_in_area_by_gp_and_home_is_no_flag() -> None:
    assert with_transitions(ADULT, AREAS).transitions == ()


def test_a_home_outside_the_area_with_a_gp_inside_is_out_of_area() -> None:
    away = with_patient(ADULT, addresses=(Address(postcode="ZZ9 9ZZ"),))
    [flag] = with_transitions(away, AREAS).transitions
    assert flag.reason.startswith("home postcode district outside provider RXT's area")
    assert "ZZ9" not in flag.reason


def test_an_area_given_as_icbs_uses_the_practice_table() -> None:
    by_icb = TransitionSettings.model_validate(
        {"provider_areas": {"RXT": {"icbs": ["QWE"]}}, "practice_icbs": {"Y12345": "QWE"}}
    )
    adult = Coding(system=CAMHS.stay.specialty.system, code="710")  # type: ignore[union-attr]
    moved = with_stay(with_patient(MOVING, birth_date=date(1990, 1, 1)), specialty=adult)
    assert with_transitions(moved, by_icb).transitions == ()
    elsewhere = with_patient(moved, gp_practice_ods="Y54321")
    assert kinds(with_transitions(elsewhere, by_icb)) == [TransitionKind.OUT_OF_AREA]


def test_no_table_for_the_provider_is_no_flag() -> None:
    other = TransitionSettings.model_validate(
        {"provider_areas": {"RYY": {"gp_practices": ["Y00001"]}}}
    )
    assert with_transitions(with_patient(MOVING, birth_date=date(1990, 1, 1)), other).transitions
    assert TransitionKind.OUT_OF_AREA not in kinds(with_transitions(MOVING, other))


def test_nothing_to_check_against_the_area_is_a_warning() -> None:
    unknown = with_patient(ADULT, addresses=(), gp_practice_ods=None)
    flagged = with_transitions(unknown, AREAS)
    assert flagged.transitions == ()
    assert flagged.warnings[-1] == (
        "transitions: neither a GP practice nor a home postcode to check against provider RXT's "
        "area; out of area not known"
    )


CONFIG = """
sources: [{name: mh-trust, care_setting: mental_health}]
destinations: [{name: events, type: amqp, exchange: carebridge.events}]
routes: [{name: all, to: [events]}]
transitions:
  provider_areas:
    RXT: {postcode_districts: [te1, TE2], gp_practices: [Y99901]}
"""


def test_intake_stores_the_flags_and_a_hidden_location_keeps_them_without_details() -> None:
    config = parse_config(CONFIG, env={})
    raw = (FIXTURES / "mh_a03_transition_out_of_area.hl7").read_bytes()
    hidden = raw.replace(b"PV1|1|I|", b"ZU8||||Y\rPV1|1|I|")
    for payload, detail in ((raw, "GP practice Y12345"), (hidden, "details withheld")):
        prepared = prepare("mh-trust", payload, config=config, profiles=config.feed_profiles,
                           received_at=NOW)  # fmt: skip
        assert prepared.event is not None
        assert prepared.record.accepted is not None
        stored = orjson.loads(prepared.record.accepted.body)
        assert [t["kind"] for t in stored["transitions"]] == ["to_adult_services", "out_of_area"]
        assert detail in stored["transitions"][1]["reason"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("transitions: {adult_services_from_age: 18}", "transitions.adult_services_from_age:"),
        (
            "transitions: {provider_areas: {RXT: {postcode_districts: ['not a district']}}}",
            "transitions.provider_areas.RXT.postcode_districts",
        ),
        ("transitions: {provider_areas: {RXT: {wards: [A]}}}", "transitions.provider_areas.RXT"),
    ],
)
def test_the_table_is_validated_at_its_path(text: str, problem: str) -> None:
    base = CONFIG.split("transitions:")[0]
    with pytest.raises(ConfigError) as caught:
        parse_config(base + text + "\n", env={})
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


# --- in the notification and in FHIR -----------------------------------------------------------


def flagged() -> CareEvent:
    return with_transitions(MOVING, AREAS)


def test_the_notification_says_both_transitions() -> None:
    event = flagged()
    found = follow_up_for(event, DEFAULT_RULES)
    note = render_notification(event, found, recipient="ADULT CMHT", ack_url=None, now=NOW)
    assert "TRANSITION to adult services: aged 17 at discharge" in note.text
    assert "OUT OF AREA: GP practice Y12345 and home postcode district outside" in note.text
    assert [t["kind"] for t in note.payload["transitions"]] == ["to_adult_services", "out_of_area"]


def test_the_notification_golden() -> None:
    event = flagged()
    note = render_notification(event, follow_up_for(event, DEFAULT_RULES), recipient="ADULT CMHT",
                               ack_url=None, now=NOW)  # fmt: skip
    assert_text_golden(note.text, GOLDEN / "mh_a03_transition_out_of_area.txt")
    assert_golden(note.payload, GOLDEN / "mh_a03_transition_out_of_area.json")
    Bundle.model_validate(note.fhir)
    communication = note.fhir["entry"][0]["resource"]
    Communication.model_validate(communication)
    codes = [c["coding"][0]["code"] for c in communication["reasonCode"]]
    assert codes == ["to_adult_services", "out_of_area"]
    assert communication["reasonCode"][0]["coding"][0]["system"] == TRANSITION_SYSTEM


def test_the_outbound_fhir_encounter_carries_the_flags() -> None:
    bundle = render_fhir_message(flagged())
    Bundle.model_validate(bundle)
    [encounter] = [e["resource"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Encounter"]  # fmt: skip
    Encounter.model_validate(encounter)
    extensions = [e for e in encounter["extension"] if e["url"] == TRANSITION_URL]
    assert [e["valueCodeableConcept"]["coding"][0]["code"] for e in extensions] == [
        "to_adult_services",
        "out_of_area",
    ]
    assert extensions[1]["valueCodeableConcept"]["text"].startswith("GP practice Y12345")


def test_no_flags_means_no_extension_and_no_reason_code() -> None:
    bundle = render_fhir_message(ADULT)
    assert TRANSITION_URL not in orjson.dumps(bundle).decode()
    note = render_notification(ADULT, None, recipient="X", ack_url=None, now=NOW)
    assert "reasonCode" not in note.fhir["entry"][0]["resource"]
    assert note.payload["transitions"] == []


def test_the_flags_change_nothing_the_mapping_read() -> None:
    event = flagged()
    assert event.model_copy(update={"transitions": ()}) == MOVING


ADULT_TEAM = """
sources: [{name: mh-trust, care_setting: mental_health}]
destinations:
  - name: notify
    type: notification
    ack_base_url: https://carebridge.example.nhs.uk
    ack_secret: ${ACK}
    recipients:
      - {name: adult-cmht, url: "https://cmht.example.nhs.uk/in", adult_services: true}
routes: [{name: all, to: [notify]}]
"""


def test_a_camhs_spell_notified_to_an_adult_team_is_a_transition_at_any_age() -> None:
    config = parse_config(ADULT_TEAM, env={"ACK": "x" * 40})
    shown = preview(config, "notify", CAMHS, now=NOW)  # aged 15: no flag of its own
    assert CAMHS.transitions == ()
    assert shown.text is not None
    assert (
        "TRANSITION to adult services: a CAMHS spell (treatment function 711) discharged to an "
        "adult team (adult-cmht)" in shown.text
    )
    payload = orjson.loads(shown.payload)["notification"]
    assert [t["kind"] for t in payload["transitions"]] == ["to_adult_services"]
    adult = preview(config, "notify", ADULT, now=NOW)  # not a CAMHS spell: nothing added
    assert adult.text is not None
    assert "TRANSITION" not in adult.text
