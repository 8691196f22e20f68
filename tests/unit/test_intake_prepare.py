"""Intake's pure step: parse, map, route; bad content becomes a rejection, never an exception."""

from datetime import UTC, datetime

from engine.config import feed_profiles, parse_config
from engine.preparation import Prepared, bounded_key, prepare
from tests.adt_factory import adt, patients

CONFIG = parse_config(
    """
intake: {max_message_bytes: 2048}
sources: [{name: mh-trust, care_setting: mental_health}, {name: acute, care_setting: acute}]
destinations:
  - {name: team, type: webhook, url: "https://team.example/x", hold_on_dead_letter: true}
  - {name: gp, type: webhook, url: "https://gp.example/x"}
routes:
  - {name: mh, match: {kinds: [discharge], care_settings: [mental_health]}, to: [team, gp]}
  - {name: all-discharges, match: {kinds: [discharge]}, to: [gp]}
""",
    env={},
)
NOW = datetime(2026, 4, 1, 12, tzinfo=UTC)


def run(source: str, payload: bytes) -> Prepared:
    return prepare(source, payload, config=CONFIG, profiles=feed_profiles(CONFIG), received_at=NOW)


def test_discharge_from_mental_health_goes_to_every_routed_destination_once() -> None:
    [patient] = patients(1)
    prepared = run("mh-trust", adt("A03", patient, "C1", NOW))
    accepted = prepared.record.accepted
    assert accepted is not None
    assert accepted.destinations == (("team", True), ("gp", False))
    assert accepted.patient_key == f"nhs:{patient.nhs_number}"
    assert prepared.record.message_key == "C1"
    assert prepared.event is not None
    assert prepared.event.received_at == NOW


def test_admission_matches_no_route_and_creates_no_delivery() -> None:
    [patient] = patients(1)
    accepted = run("acute", adt("A01", patient, "C2", NOW)).record.accepted
    assert accepted is not None
    assert accepted.destinations == ()


def test_unmappable_input_is_a_rejection_with_location_and_code() -> None:
    record = run("mh-trust", b"MSH|^~\\&|A|B|C|D|20260101||ADT^A17|X|P|2.4\r").record
    assert record.accepted is None
    assert record.error_code == "201"
    assert record.error_location == "MSH-9.2"


def test_oversized_message_is_rejected_before_parsing() -> None:
    record = run("mh-trust", b"MSH|" + b"x" * 4096).record
    assert record.accepted is None
    assert record.reason == "message is 4100 bytes, over the 2048-byte limit"


def test_overlong_message_id_is_rejected() -> None:
    [patient] = patients(1)
    record = run("mh-trust", adt("A03", patient, "C" * 201, NOW)).record
    assert record.accepted is None
    assert record.error_location == "MSH-10"


def test_long_patient_keys_are_bounded() -> None:
    assert bounded_key("k" * 10) == "k" * 10
    long = bounded_key("k" * 500)
    assert long.startswith("sha256:")
    assert len(long) == 71


def test_location_hiding_withholds_address_and_gp_from_every_destination() -> None:
    [patient] = patients(1)
    hidden = adt("A03", patient, "C9", NOW) + b"ZU8|||Y|Y\r"
    prepared = run("mh-trust", hidden)
    assert prepared.event is not None
    assert prepared.event.patient.location_hidden
    assert prepared.event.patient.addresses == ()
    assert prepared.event.patient.gp_practice_ods is None
    accepted = prepared.record.accepted
    assert accepted is not None
    assert "Test Street" not in accepted.body
    assert "B12345" not in accepted.body
    shown = run("mh-trust", adt("A03", patient, "C8", NOW)).record.accepted
    assert shown is not None
    assert "Test Street" in shown.body


def test_an_internal_mapping_fault_on_strange_input_is_a_rejection_not_a_crash() -> None:
    strange = (b'{"resourceType": "Encounter", "id": "e1", "status": "finished",'
               b' "class": {"code": "IMP"}, "contained": [{"resourceType": "Foo"}]}')  # fmt: skip
    record = run("mh-trust", strange).record
    assert record.accepted is None
    # the models raise KeyError on it: the rejection still names the element, precisely
    assert (record.error_code, record.error_location, record.reason) == (
        "103",
        "Encounter.contained[0].resourceType",
        "not a FHIR R4 resource type: Foo",
    )


def test_error_locations_are_bounded_for_the_store() -> None:
    long_key = "x" * 300
    record = run("mh-trust", f'{{"resourceType": "Bundle", "{long_key}": 1}}'.encode()).record
    assert record.accepted is None
    assert len(record.error_location or "") <= 64
