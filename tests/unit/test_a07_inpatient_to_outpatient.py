"""A07 (inpatient becomes outpatient) ends the inpatient spell (issue 13 point 2): notified as
the end of an inpatient stay, its follow-up counted from the moment the spell ended (EVN-6),
and the new patient class in PV1-2 never takes it out of the cohort."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.config import feed_profiles, parse_config
from engine.preparation import prepare
from mappings.clinical.follow_up import DEFAULT_RULES, follow_up_for
from mappings.clinical.notification import Links, is_notifiable, render_notification
from mappings.hl7v2.inbound import map_hl7v2
from mappings.hl7v2.outbound import render_adt
from mappings.hl7v2.reader import parse
from mappings.model import CareEvent, EventKind, StayStatus
from mappings.profile import FeedProfile
from tests.golden_util import UPDATE_ENV, assert_golden

TESTS = Path(__file__).resolve().parents[1]
FIXTURE = TESTS / "fixtures" / "hl7v2" / "mh_a07_inpatient_to_outpatient.hl7"
GOLDEN = TESTS / "golden" / "notification"
MH = FeedProfile(feed="mh-trust")
ENDED = datetime(2026, 3, 5, 11, 30, tzinfo=UTC)  # EVN-6 of the fixture, GMT
NOW = datetime(2026, 3, 5, 12, 10, tzinfo=UTC)


def a07(**replace: str) -> CareEvent:
    raw = FIXTURE.read_text()
    for old, new in replace.items():
        raw = raw.replace(old, new)
    return map_hl7v2(raw, MH)


def test_an_a07_is_a_discharge_of_the_inpatient_stay_on_its_ward() -> None:
    event = a07()
    assert event.kind is EventKind.DISCHARGE
    assert event.stay is not None
    assert event.stay.status is StayStatus.FINISHED
    assert event.stay.patient_class is not None
    assert event.stay.patient_class.code == "I"  # the stay that ended, not the new class
    assert event.stay.location is not None
    assert event.stay.location.ward == "WARD9"  # PV1-6, where the inpatient stay was
    assert event.location_from == event.stay.location  # the patient leaves the ward
    assert event.location_to is None  # the outpatient clinic (PV1-3) is not part of the stay
    assert (
        "PV1-3: the outpatient location after the A07 is not part of the inpatient stay;"
        " not mapped" in event.warnings
    )
    assert (
        "PV1-2: new patient class 'O' after the A07; the stay that ended is the inpatient one"
        in (event.warnings)
    )


def test_the_clock_starts_when_the_spell_ended() -> None:
    event = a07()
    assert event.stay is not None
    assert event.stay.discharged_at is not None
    assert event.stay.discharged_at.utc == ENDED
    follow_up = follow_up_for(event, DEFAULT_RULES)
    assert follow_up is not None
    assert follow_up.discharged_at == ENDED
    assert follow_up.due_at == ENDED + timedelta(hours=72)
    assert "A07" in follow_up.reason
    assert "not recorded" not in follow_up.reason.split(";")[0]


def test_without_a_prior_location_pv1_3_is_taken_as_the_ward() -> None:
    event = a07(**{"|||RXT^WARD9^BED1^RXT01|": "||||"})
    assert event.stay is not None
    assert event.stay.location is not None
    assert event.stay.location.ward == "OPD1"
    assert "PV1-6: prior location missing on an A07; PV1-3 is taken as the ward" in event.warnings


def test_evn_6_wins_over_a_different_pv1_45_and_says_so() -> None:
    event = a07(**{"||||||EP-0007": "|20260305150000|||||EP-0007"})
    assert event.stay is not None
    assert event.stay.discharged_at is not None
    assert event.stay.discharged_at.utc == ENDED
    assert "PV1-45: differs from EVN-6; the inpatient spell ends when the A07 occurred" in (
        event.warnings
    )


def test_without_evn_6_the_spell_ends_at_the_fallback_with_a_warning() -> None:
    event = a07(**{"||||20260305113000": "||||", "||||||EP-0007": "|20260305111500|||||EP-0007"})
    assert event.stay is not None
    assert event.stay.discharged_at is not None
    assert event.stay.discharged_at.utc == datetime(2026, 3, 5, 11, 15, tzinfo=UTC)
    assert "EVN-6: event date/time missing; taken from PV1-45" in event.warnings


def test_the_outpatient_class_does_not_take_it_out_of_the_cohort_or_the_notification() -> None:
    event = a07()
    assert is_notifiable(event)
    notification = render_notification(
        event,
        follow_up_for(event, DEFAULT_RULES),
        recipient="North CMHT (RXT)",
        links=Links(ack="https://carebridge.example.nhs.uk/ack/a07"),
        now=NOW,
    )
    assert notification.kind == "discharge"
    path = GOLDEN / "mh_a07_inpatient_to_outpatient.txt"
    if __import__("os").environ.get(UPDATE_ENV) == "1":
        path.write_text(notification.text, encoding="utf-8")
    assert notification.text == path.read_text(encoding="utf-8")
    assert_golden(notification.payload, GOLDEN / "mh_a07_inpatient_to_outpatient.json")
    text = notification.text
    assert text.startswith("DISCHARGE from mental health inpatient care (inpatient stay ended")
    assert "From: ward WARD9, bed BED1 (site RXT01)" in text
    assert "Discharged: Thu 5 Mar 2026 11:30 GMT" in text
    assert "follow-up due by Sun 8 Mar 2026 11:30 GMT" in text


def test_sent_on_as_an_inpatient_discharge() -> None:
    event = a07()
    sent = parse(
        render_adt(
            event,
            control_id="OUT-1",
            sending_app="CB",
            sending_facility="RXT",
            receiving_app="PAS",
            receiving_facility="RX1",
            now=NOW,
        )
    )
    pv1 = sent.segment("PV1")
    assert pv1 is not None
    assert sent.msh.value(9, 2) == "A03"
    assert pv1.value(2) == "I"
    assert pv1.value(3, 2) == "WARD9"


def test_through_intake_it_starts_a_follow_up() -> None:
    config = parse_config(
        """
sources: [{name: mh-trust, care_setting: mental_health}]
destinations: [{name: team, type: webhook, url: "https://team.example/x"}]
routes: [{name: mh, match: {kinds: [discharge], care_settings: [mental_health]}, to: [team]}]
""",
        env={},
    )
    prepared = prepare("mh-trust", FIXTURE.read_bytes(), config=config,
                       profiles=feed_profiles(config), received_at=NOW,
                       follow_up_rules=DEFAULT_RULES)  # fmt: skip
    accepted = prepared.record.accepted
    assert accepted is not None
    assert accepted.destinations == (("team", False),)
    assert accepted.follow_up is not None
    assert accepted.follow_up.due_at == ENDED + timedelta(hours=72)
