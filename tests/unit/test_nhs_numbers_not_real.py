"""NHS numbers that pass modulus 11 but cannot be a real patient's (issue 13 point 3):
repeated-digit placeholders, the 999 test range, numbers outside the issued ranges. They are
read and key the patient's history, but are never sent on as a verified NHS number (FHIR, the
notification's FHIR, HL7 v2 PID-32), and the clinician's text says so plainly. A test
environment's feed (profile ``nhs_numbers: test``) takes test-range and unissued numbers as
real; a placeholder is never real. NHS Number Status Indicator codes read as the NHS Data
Dictionary words them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from mappings.clinical.follow_up import DEFAULT_RULES, follow_up_for
from mappings.clinical.notification import Links, render_notification
from mappings.codes import NHS_NUMBER_STATUSES
from mappings.fhir.inbound import map_fhir
from mappings.fhir.outbound import render_fhir_message
from mappings.fhir.transaction import to_transaction
from mappings.hl7v2.inbound import map_hl7v2
from mappings.hl7v2.outbound import render_adt
from mappings.hl7v2.reader import parse
from mappings.model import NHS_NUMBER_SYSTEM, CareEvent, IdentifierKind
from mappings.nhs_number import is_valid, not_real_reason
from mappings.profile import FeedProfile, ProfileError
from tests.golden_util import UPDATE_ENV

TESTS = Path(__file__).resolve().parents[1]
A03 = (TESTS / "fixtures" / "hl7v2" / "mh_a03_discharge.hl7").read_text()
FHIR = (TESTS / "fixtures" / "fhir" / "mh_discharge_message.json").read_text()
GOLDEN = TESTS / "golden" / "notification"
PRODUCTION = FeedProfile(feed="mh-trust")
TEST_ENV = FeedProfile(feed="mh-trust", nhs_numbers="test")
NOT_REAL_SYSTEM = "https://carebridge.nhs.uk/Id/nhs-number-not-real"
VERIFICATION_URL = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
)
NOW = datetime(2026, 2, 2, 10, 40, tzinfo=UTC)
REAL = "4010232137"  # in the issued 400-499 range

NOT_REAL = [
    ("0000000000", "a repeated-digit placeholder"),
    ("1111111111", "a repeated-digit placeholder"),
    ("3333333333", "a repeated-digit placeholder"),
    ("9999999999", "a repeated-digit placeholder"),
    ("9990000018", "in the 999 range reserved for testing"),
    ("9990000026", "in the 999 range reserved for testing"),
    ("9434765919", "outside the ranges issued to patients"),
    ("9449305552", "outside the ranges issued to patients"),
]


def hl7(number: str, profile: FeedProfile = PRODUCTION) -> CareEvent:
    return map_hl7v2(A03.replace("9434765919", number), profile)


def fhir(number: str, profile: FeedProfile = PRODUCTION) -> CareEvent:
    return map_fhir(FHIR.replace("9434765919", number).encode(), profile)


def patient_identifiers(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    [patient] = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    identifiers: list[dict[str, Any]] = patient["identifier"]
    return identifiers


@pytest.mark.parametrize(("number", "reason"), NOT_REAL)
def test_valid_numbers_that_cannot_be_a_real_patients(number: str, reason: str) -> None:
    assert is_valid(number)
    assert not_real_reason(number) == reason
    expected_in_test = reason if reason == "a repeated-digit placeholder" else None
    assert not_real_reason(number, test_environment=True) == expected_in_test


@pytest.mark.parametrize("number", [REAL, "9434765918"])
def test_a_real_range_or_invalid_number_is_not_flagged(number: str) -> None:
    assert not_real_reason(number) is None


@pytest.mark.parametrize("read", [hl7, fhir], ids=["hl7v2", "fhir"])
@pytest.mark.parametrize(("number", "reason"), NOT_REAL)
def test_never_sent_on_as_a_verified_nhs_number(read: Any, number: str, reason: str) -> None:
    event = read(number)
    assert event.patient.nhs_number == number  # still the patient's key, for ordering
    assert event.patient.nhs_number_not_real == reason
    bundle = render_fhir_message(event)
    [nhs] = [i for i in patient_identifiers(bundle) if i["value"] == number]
    assert nhs["system"] == NOT_REAL_SYSTEM
    assert "extension" not in nhs  # no verification status, least of all 01
    assert "type" not in nhs  # not typed NH either
    assert NHS_NUMBER_SYSTEM not in orjson.dumps(bundle).decode()
    transaction = to_transaction(bundle)
    assert NHS_NUMBER_SYSTEM not in orjson.dumps(transaction).decode()


@pytest.mark.parametrize("read", [hl7, fhir], ids=["hl7v2", "fhir"])
def test_a_real_number_keeps_its_verification_worded_as_the_data_dictionary(read: Any) -> None:
    event = read(REAL)
    assert event.patient.nhs_number_not_real is None
    [nhs] = [i for i in patient_identifiers(render_fhir_message(event)) if i["value"] == REAL]
    assert nhs["system"] == NHS_NUMBER_SYSTEM
    [extension] = nhs["extension"]
    assert extension["url"] == VERIFICATION_URL
    assert extension["valueCodeableConcept"]["coding"][0]["code"] == "01"
    assert extension["valueCodeableConcept"]["coding"][0]["display"] == (
        "Number present and verified"
    )


def test_a_test_environment_sends_its_test_numbers_as_nhs_numbers() -> None:
    event = hl7("9990000018", TEST_ENV)
    assert event.patient.nhs_number_not_real is None
    [nhs] = [
        i for i in patient_identifiers(render_fhir_message(event)) if i["value"] == "9990000018"
    ]
    assert nhs["system"] == NHS_NUMBER_SYSTEM
    assert nhs["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "01"
    placeholder = hl7("3333333333", TEST_ENV)
    assert placeholder.patient.nhs_number_not_real == "a repeated-digit placeholder"


def test_the_clinician_is_told_plainly_and_reviewed() -> None:
    raw = (TESTS / "fixtures" / "hl7v2" / "mh_a03_placeholder_nhs_number.hl7").read_bytes()
    event = map_hl7v2(raw, PRODUCTION)
    notification = render_notification(
        event,
        follow_up_for(event, DEFAULT_RULES),
        recipient="North CMHT (RXT)",
        links=Links(ack="https://carebridge.example.nhs.uk/ack/placeholder"),
        now=NOW,
    )
    assert (
        "NHS number 333 333 3333 (NOT A REAL PATIENT'S NUMBER: a repeated-digit placeholder;"
        " confirm who this is before acting)" in notification.text
    )
    assert notification.payload["patient"]["nhs_number_not_real"] == (
        "a repeated-digit placeholder"
    )
    subjects = [
        e["resource"]["for" if e["resource"]["resourceType"] == "Task" else "subject"]
        for e in notification.fhir["entry"]
        if e["resource"]["resourceType"] in ("Communication", "Task")
    ]
    assert subjects
    for subject in subjects:
        assert subject["identifier"]["system"] == NOT_REAL_SYSTEM
    path = GOLDEN / "mh_a03_placeholder_nhs_number.txt"
    if __import__("os").environ.get(UPDATE_ENV) == "1":
        path.write_text(notification.text, encoding="utf-8")
    assert notification.text == path.read_text(encoding="utf-8")


def test_hl7v2_out_never_says_verified_for_it() -> None:
    for number, verified in (("3333333333", False), (REAL, True)):
        sent = parse(
            render_adt(
                hl7(number),
                control_id="OUT-1",
                sending_app="CB",
                sending_facility="RXT",
                receiving_app="PAS",
                receiving_facility="RX1",
                now=NOW,
            )
        )
        pid = sent.segment("PID")
        assert pid is not None
        assert (pid.value(32) == "NSTS01") is verified


@pytest.mark.parametrize(("code", "words"), sorted(NHS_NUMBER_STATUSES.items()))
def test_status_codes_are_worded_as_the_data_dictionary_defines_them(code: str, words: str) -> None:
    raw = A03.replace("9434765919^^^NHS^NH~", "").replace("NSTS01", f"NSTS{code}")
    event = map_hl7v2(raw, PRODUCTION)
    notification = render_notification(event, None, recipient="X", now=NOW)
    assert f"no verified NHS number (status {code}: {words})" in notification.text


def test_the_data_dictionary_wording() -> None:
    assert NHS_NUMBER_STATUSES["01"] == "Number present and verified"
    assert NHS_NUMBER_STATUSES["02"] == "Number present but not traced"
    assert NHS_NUMBER_STATUSES["07"] == "Number not present and trace not required"


def test_the_policy_is_a_profile_setting() -> None:
    assert FeedProfile.from_mapping({"feed": "x", "nhs_numbers": "test"}).nhs_numbers == "test"
    assert FeedProfile.from_mapping({"feed": "x"}).nhs_numbers == "production"
    with pytest.raises(ProfileError) as caught:
        FeedProfile.from_mapping({"feed": "x", "nhs_numbers": "staging"})
    assert any(p.startswith("nhs_numbers") for p in caught.value.problems)


def test_the_number_still_keys_the_patient_and_is_not_a_local_identifier() -> None:
    event = hl7("9990000018")
    kinds = {i.kind for i in event.patient.identifiers if i.value == "9990000018"}
    assert kinds == {IdentifierKind.NHS_NUMBER}
