import contextlib
import random
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from mappings.codes import (
    DISCHARGE_DESTINATION_ENGLAND,
    DISCHARGE_METHOD_ENGLAND,
    ETHNIC_CATEGORY_ENGLAND,
    LEGAL_STATUS_ENGLAND,
    RISK_FLAG,
    TREATMENT_FUNCTION,
    local_system,
)
from mappings.errors import MappingError
from mappings.hl7v2.inbound import SUPPORTED_TRIGGERS, map_hl7v2
from mappings.model import (
    NHS_NUMBER_SYSTEM,
    CareEvent,
    CareSetting,
    EventKind,
    Gender,
    IdentifierKind,
    LegalStatusContext,
    NameUse,
    NhsNumberStatus,
    Precision,
    StayStatus,
)
from mappings.profile import FeedProfile, event_id
from tests.golden_util import assert_golden

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures" / "hl7v2"
GOLDEN = TESTS / "golden" / "hl7v2"

MH = FeedProfile(feed="mh-trust")
ACUTE = FeedProfile(feed="acute-trust", care_setting=CareSetting.ACUTE)

# One synthetic ITK-style message as field lists: tests override single fields by name.
BASE: dict[str, dict[int, str]] = {
    "MSH": {
        2: "^~\\&",
        3: "RIO",
        4: "RXT",
        5: "ROUTE",
        6: "ROUTE",
        7: "20260114093000",
        9: "ADT^A01^ADT_A01",
        10: "MSG-0001",
        11: "P",
        12: "2.4",
        13: "42",
        21: "ITKv1.0",
    },
    "EVN": {1: "A01", 2: "20260114093000", 6: "20260114091500"},
    "PID": {
        1: "1",
        3: "RXT1234567^^^RXT^MR~4010232137^^^NHS^NH",
        5: "SYNTHETIC^ALPHA^^^MX^^L",
        7: "19800101",
        8: "2",
        11: "1 Example Street^^Testtown^^TE1 1ST^GBR^H",
        32: "NSTS01",
    },
    "PD1": {3: "EXAMPLE SURGERY^^Y99901", 4: "G9999998^GPNAME^TEST"},
    "PV1": {
        1: "1",
        2: "I",
        3: "RXT^WARD7^BED3^RXT01",
        4: "25",
        9: "C1234567^RESPONSIBLE^CLINICIAN^^^DR",
        10: "710",
        14: "19",
        19: "SPELL-1",
        44: "20260114091500",
    },
}
PATIENT_DATA = (
    "4010232137",
    "9434765918",
    "9449305552",
    "RXT1234567",
    "SYNTHETIC",
    "ALPHA",
    "19800101",
    "TE1 1ST",
)


def hl7(
    fields: Mapping[str, str] | None = None,
    *,
    drop: tuple[str, ...] = (),
    add: tuple[str, ...] = (),
) -> str:
    """The base message with fields replaced: ``{"PID_3": "...", "MSH_9": "ADT^A02"}``."""
    segments = {name: dict(values) for name, values in BASE.items() if name not in drop}
    for key, value in (fields or {}).items():
        name, number = key.split("_")
        segments[name][int(number)] = value
    lines = []
    for name, values in segments.items():
        first = 2 if name == "MSH" else 1
        lines.append("|".join([name, *(values.get(n, "") for n in range(first, max(values) + 1))]))
    return "\r".join([*lines, *add]) + "\r"


def mapped(
    profile: FeedProfile = MH,
    *,
    drop: tuple[str, ...] = (),
    add: tuple[str, ...] = (),
    **fields: str,
) -> CareEvent:
    return map_hl7v2(hl7(fields, drop=drop, add=add), profile)


def rejection(*, drop: tuple[str, ...] = (), **fields: str) -> MappingError:
    with pytest.raises(MappingError) as caught:
        map_hl7v2(hl7(fields, drop=drop), MH)
    return caught.value


# --- golden files ---------------------------------------------------------------------------


FIXTURE_PROFILES = {
    name: FeedProfile.from_mapping(data)
    for name, data in yaml.safe_load((FIXTURES / "profiles.yaml").read_text()).items()
}


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.hl7")), ids=lambda p: p.stem)
def test_fixture_maps_to_its_golden_care_event(fixture: Path) -> None:
    profile = FIXTURE_PROFILES[fixture.stem.split("_", 1)[0]]
    event = map_hl7v2(fixture.read_bytes(), profile)
    assert_golden(event.model_dump(mode="json"), GOLDEN / f"{fixture.stem}.json")


def test_there_are_golden_fixtures_for_the_triggers_mh_feeds_send() -> None:
    triggers = {p.stem.split("_")[1].upper() for p in FIXTURES.glob("*.hl7")}
    expected = {"A01", "A02", "A03", "A08", "A11", "A12", "A13", "A21", "A22", "A28", "A31", "A40"}
    assert expected <= triggers


def test_garbled_messages_only_ever_raise_mapping_error() -> None:
    seeds = [p.read_bytes() for p in sorted(FIXTURES.glob("*.hl7"))]
    rng = random.Random(20260114)
    alphabet = b'|^~\\&"\r\n0123456789AZ .+-\x00\xff\xc3'
    for _ in range(1500):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(len(data) + 1)
            if rng.random() < 0.5:
                data[pos:pos] = bytes([rng.choice(alphabet)])
            else:
                del data[pos : pos + rng.randint(1, 12)]
        with contextlib.suppress(MappingError):  # anything else fails the test
            map_hl7v2(bytes(data), MH)
            map_hl7v2(bytes(data), FIXTURE_PROFILES["mhlocal"])


# --- what the event is ----------------------------------------------------------------------


def test_an_admission_maps_to_an_admission_event_with_its_source() -> None:
    event = mapped()
    assert event.kind is EventKind.ADMISSION
    assert event.trigger == "A01"
    assert event.event_id == event_id("mh-trust", "MSG-0001")
    assert event.received_at is None
    source = event.source
    assert (source.feed, source.format.value, source.message_id) == (
        "mh-trust",
        "hl7v2",
        "MSG-0001",
    )
    assert (source.system, source.facility_ods, source.message_type) == ("RIO", "RXT", "ADT^A01")
    assert (source.version, source.profile, source.sequence) == ("2.4", "ITKv1.0", "42")
    assert source.sent_at is not None
    assert source.sent_at.original == "20260114093000"
    assert event.warnings == ()


def test_the_same_message_maps_to_the_same_event() -> None:
    assert mapped() == mapped()


@pytest.mark.parametrize(
    ("trigger", "kind", "status", "cancels"),
    [
        ("A01", EventKind.ADMISSION, StayStatus.ACTIVE, None),
        ("A02", EventKind.TRANSFER, StayStatus.ACTIVE, None),
        ("A03", EventKind.DISCHARGE, StayStatus.FINISHED, None),
        ("A04", EventKind.REGISTRATION, StayStatus.ACTIVE, None),
        ("A05", EventKind.PRE_ADMISSION, StayStatus.PLANNED, None),
        ("A06", EventKind.ADMISSION, StayStatus.ACTIVE, None),
        ("A07", EventKind.DISCHARGE, StayStatus.FINISHED, None),
        ("A08", EventKind.UPDATE, None, None),
        ("A11", EventKind.CANCEL_ADMISSION, StayStatus.CANCELLED, EventKind.ADMISSION),
        ("A12", EventKind.CANCEL_TRANSFER, StayStatus.ACTIVE, EventKind.TRANSFER),
        ("A13", EventKind.CANCEL_DISCHARGE, StayStatus.ACTIVE, EventKind.DISCHARGE),
        ("A21", EventKind.LEAVE_START, StayStatus.ON_LEAVE, None),
        ("A22", EventKind.LEAVE_END, StayStatus.ACTIVE, None),
        ("A38", EventKind.CANCEL_PRE_ADMISSION, StayStatus.CANCELLED, EventKind.PRE_ADMISSION),
        ("A52", EventKind.CANCEL_LEAVE_START, StayStatus.ACTIVE, EventKind.LEAVE_START),
        ("A53", EventKind.CANCEL_LEAVE_END, StayStatus.ON_LEAVE, EventKind.LEAVE_END),
    ],
)
def test_stay_triggers(
    trigger: str, kind: EventKind, status: StayStatus | None, cancels: EventKind | None
) -> None:
    event = mapped(MSH_9=f"ADT^{trigger}", PV1_6="RXT^WARD1^BED1^RXT01", PV1_45="20260120100000")
    assert (event.kind, event.cancels, event.trigger) == (kind, cancels, trigger)
    assert event.stay is not None
    assert event.stay.status is status
    assert event.merge is None


@pytest.mark.parametrize(
    ("trigger", "name"),
    [
        ("A09", "patient departing - tracking"),
        ("A14", "pending admit"),
        ("A17", "swap patients"),
        ("A29", "delete person information"),
        ("A47", "change patient identifier list"),
        ("A60", "update allergy information"),
    ],
)
def test_other_adt_triggers_are_rejected_naming_the_trigger(trigger: str, name: str) -> None:
    error = rejection(MSH_9=f"ADT^{trigger}^ADT_A01")
    assert (error.location, error.code) == ("MSH-9.2", "201")
    assert str(error) == f"MSH-9.2: trigger event {trigger} ({name}) is not supported"


def test_an_unknown_trigger_is_rejected_as_sent() -> None:
    assert rejection(MSH_9="ADT^O01").reason == "trigger event O01 is not supported"


@pytest.mark.parametrize(
    ("msh_9", "reason"),
    [
        ("AD\nT^A01", "message type (unreadable) is not supported"),
        ("ADT^A0 1", "trigger event (unreadable) is not supported"),
        ("ADT^A0\x0b1", "trigger event (unreadable) is not supported"),
    ],
)
def test_a_code_with_a_line_break_or_a_control_is_not_echoed(msh_9: str, reason: str) -> None:
    """A stray line break the reader joined into MSH-9 (or a control character) never goes
    into the reason kept in the message log and sent back in the ACK."""
    assert rejection(MSH_9=msh_9).reason == reason


def test_evn_1_disagreeing_with_msh_9_is_noted_and_msh_9_wins() -> None:
    event = mapped(MSH_9="ADT^A08", EVN_1="A01")
    assert event.kind is EventKind.UPDATE
    assert "EVN-1: event type differs from MSH-9.2; MSH-9.2 is used" in event.warnings


@pytest.mark.parametrize("trigger", ["A28", "A31"])
def test_person_triggers_carry_demographics_only(trigger: str) -> None:
    event = mapped(MSH_9=f"ADT^{trigger}^ADT_A05")
    assert event.kind is EventKind.PERSON_UPDATE
    assert (event.stay, event.location_from, event.location_to) == (None, None, None)
    assert event.patient.nhs_number == "4010232137"
    assert mapped(drop=("PV1",), MSH_9=f"ADT^{trigger}").kind is EventKind.PERSON_UPDATE


def test_a_leave_of_absence_is_never_a_discharge() -> None:
    pv2 = "PV2" + "|" * 47 + "20260122180000"
    event = mapped(MSH_9="ADT^A21^ADT_A21", PV1_45="20260120100000", add=(pv2,))
    assert event.kind is EventKind.LEAVE_START
    assert event.stay is not None
    assert event.stay.status is StayStatus.ON_LEAVE
    assert event.stay.leave_expected_return is not None
    assert event.stay.leave_expected_return.original == "20260122180000"
    assert event.location_from is not None
    assert event.location_from.ward == "WARD7"
    assert event.location_to is None
    assert "PV1-45: discharge date/time on an A21, which does not end the stay" in event.warnings


@pytest.mark.parametrize(
    ("trigger", "moves_from", "moves_to"),
    [
        ("A01", None, "WARD7"),
        ("A02", "WARD9", "WARD7"),
        ("A03", "WARD7", None),
        ("A04", None, "WARD7"),
        ("A05", None, None),
        ("A06", "WARD9", "WARD7"),
        ("A07", "WARD9", None),  # the inpatient stay ends on PV1-6; PV1-3 is not part of it
        ("A08", None, None),
        ("A11", None, None),
        ("A12", "WARD9", "WARD7"),  # from the cancelled destination back to PV1-3
        ("A13", None, "WARD7"),
        ("A21", "WARD7", None),
        ("A22", None, "WARD7"),
        ("A38", None, None),
        ("A52", None, None),
        ("A53", None, None),
    ],
)
def test_where_each_trigger_moves_the_patient(
    trigger: str, moves_from: str | None, moves_to: str | None
) -> None:
    event = mapped(MSH_9=f"ADT^{trigger}", PV1_6="RXT^WARD9^BED1^RXT01")
    assert (event.location_from.ward if event.location_from else None) == moves_from
    assert (event.location_to.ward if event.location_to else None) == moves_to


def test_every_cancel_names_what_it_cancels() -> None:
    for trigger, event in SUPPORTED_TRIGGERS.items():
        assert event.kind.value.startswith("cancel_") == (event.cancels is not None), trigger
        if event.cancels is not None:
            assert event.kind.value == f"cancel_{event.cancels.value}", trigger


def test_a_cancelled_discharge_does_not_carry_the_discharge_it_cancels() -> None:
    event = mapped(MSH_9="ADT^A13", EVN_1="A13", PV1_36="1", PV1_37="19", PV1_45="20260120100000")
    stay = event.stay
    assert stay is not None
    assert (stay.discharge_method, stay.discharge_destination, stay.discharged_at) == (
        None,
        None,
        None,
    )
    assert stay.status is StayStatus.ACTIVE
    assert event.warnings == ()


def test_a_cancelled_transfer_puts_the_patient_back_in_pv1_3() -> None:
    event = mapped(MSH_9="ADT^A12", PV1_3="RXT^WARD7^BED3^RXT01", PV1_6="RXT^WARD9^BED1^RXT01")
    assert event.stay is not None
    assert event.stay.location is not None
    assert event.stay.location.ward == "WARD7"
    assert event.location_to == event.stay.location


def test_a_merge_retires_mrg_1_into_the_pid_3_survivor() -> None:
    event = mapped(
        drop=("PV1",),
        MSH_9="ADT^A40^ADT_A39",
        add=("MRG|RXT7654321^^^RXT^MR~9449305552^^^NHS^NH",),
    )
    assert event.kind is EventKind.MERGE
    assert event.stay is None
    assert event.merge is not None
    assert event.merge.survivor == event.patient.identifiers
    assert [(i.kind, i.value) for i in event.merge.retired] == [
        (IdentifierKind.LOCAL, "RXT7654321"),
        (IdentifierKind.NHS_NUMBER, "9449305552"),
    ]


def test_a_v2_3_merge_may_name_the_retired_id_in_mrg_4() -> None:
    event = mapped(drop=("PV1",), MSH_9="ADT^A34", MSH_12="2.3", add=("MRG||||RXT7654321^^^RXT",))
    assert event.merge is not None
    assert [i.value for i in event.merge.retired] == ["RXT7654321"]


@pytest.mark.parametrize(
    ("add", "location", "code", "reason"),
    [
        ((), "MRG", "100", "MRG segment missing from a merge"),
        (("MRG|",), "MRG-1", "101", "prior patient identifier missing"),
        (
            ("MRG|X1^^^RXT", "PID|2||X9^^^RXT", "MRG|X2^^^RXT"),
            "MRG",
            "100",
            "more than one PID/MRG pair; send one merge per message",
        ),
    ],
)
def test_a_merge_needs_exactly_one_prior_identifier_list(
    add: tuple[str, ...], location: str, code: str, reason: str
) -> None:
    with pytest.raises(MappingError) as caught:
        map_hl7v2(hl7({"MSH_9": "ADT^A40"}, drop=("PV1",), add=add), MH)
    assert (caught.value.location, caught.value.code, caught.value.reason) == (
        location,
        code,
        reason,
    )


@pytest.mark.parametrize("message_type", ["ORU^R01", "RDE^O01", "ACK^A01"])
def test_other_message_types_are_rejected(message_type: str) -> None:
    error = rejection(MSH_9=message_type)
    assert (error.location, error.code) == ("MSH-9.1", "200")
    assert error.reason == f"message type {message_type.split('^')[0]} is not supported"


def test_the_trigger_comes_from_evn_1_only_when_msh_9_2_is_empty() -> None:
    assert mapped(MSH_9="ADT", EVN_1="A03", PV1_45="20260120100000").kind is EventKind.DISCHARGE
    assert mapped(MSH_9="ADT^A01", EVN_1="A03").kind is EventKind.ADMISSION
    error = rejection(MSH_9="ADT", EVN_1="A17")
    assert (error.location, error.code) == ("EVN-1", "201")


def test_a_missing_message_control_id_is_rejected() -> None:
    error = rejection(MSH_10="")
    assert (error.location, error.code) == ("MSH-10", "101")


@pytest.mark.parametrize("version", ["2.1", "2.3", "2.3.1", "2.4", "2.5.1", "2.8"])
def test_versions_2_1_to_2_8_map(version: str) -> None:
    assert mapped(MSH_12=version).source.version == version


@pytest.mark.parametrize("version", ["2.9", "3.0", "2.0", "V2"])
def test_other_versions_are_rejected(version: str) -> None:
    error = rejection(MSH_12=version)
    assert (error.location, error.code) == ("MSH-12", "203")


@pytest.mark.parametrize("segment", ["PID", "PV1"])
def test_a_missing_pid_or_pv1_is_a_segment_error(segment: str) -> None:
    error = rejection(drop=(segment,))
    assert (error.location, error.code) == (segment, "100")


# --- the NHS number -------------------------------------------------------------------------


def test_the_nhs_number_is_found_in_the_second_repetition() -> None:
    patient = mapped().patient
    assert patient.nhs_number == "4010232137"
    local, nhs = patient.identifiers
    assert (local.kind, local.value, local.system, local.type_code) == (
        IdentifierKind.LOCAL,
        "RXT1234567",
        "RXT",
        "MR",
    )
    assert local.assigner_ods == "RXT"
    assert (nhs.kind, nhs.system, nhs.verification) == (
        IdentifierKind.NHS_NUMBER,
        NHS_NUMBER_SYSTEM,
        NhsNumberStatus.VERIFIED,
    )
    assert patient.local_identifier() == local


@pytest.mark.parametrize(
    "rep",
    [
        "9434765919^^^NHS",  # ITK: CX.4 only
        "9434765919^^^^NH",  # CX.5 only
        "9434765919^^^NHSNBR^NHSNMBR",  # Cerner / Simulated Hospital
        "9434765919^^^NHS&2.16.840.1.113883.2.1.4.1&ISO^NH",
        "943 476 5919^^^NHS^NH",  # displayed with spaces
    ],
)
def test_the_nhs_number_variants_seen_in_real_feeds(rep: str) -> None:
    assert mapped(PID_3=f"X1^^^RXT^MR~{rep}").patient.nhs_number == "9434765919"


def test_an_invalid_nhs_number_is_kept_unverified_and_the_message_still_maps() -> None:
    event = mapped(PID_3="RXT1^^^RXT^MR~9434765918^^^NHS^NH")
    assert event.patient.nhs_number is None
    unverified = event.patient.identifiers[1]
    assert unverified.kind is IdentifierKind.UNVERIFIED_NHS_NUMBER
    assert unverified.value == "9434765918"
    assert unverified.system == "NHS"  # never the NHS number system
    assert event.warnings == ("PID-3[2]: NHS number fails the modulus-11 check",)


def test_two_different_valid_nhs_numbers_are_both_kept_and_neither_is_used() -> None:
    event = mapped(PID_3="9434765919^^^NHS^NH~9449305552^^^NHS^NH")
    assert event.patient.nhs_number is None
    assert [i.value for i in event.patient.identifiers] == ["9434765919", "9449305552"]
    assert "PID-3: more than one valid NHS number; none is used as the NHS number" in event.warnings


def test_the_same_nhs_number_twice_is_one_identifier() -> None:
    event = mapped(PID_3="9434765919^^^NHS^NH~943 476 5919^^^NHS")
    assert len(event.patient.identifiers) == 1
    assert event.patient.nhs_number == "9434765919"


def test_placeholder_and_test_range_numbers_are_valid_but_flagged() -> None:
    event = mapped(PID_3="9990000018^^^NHS^NH")
    assert event.patient.nhs_number == "9990000018"
    assert event.patient.identifiers[0].warnings == (
        "NHS number is in the reserved test range 999",
    )
    assert event.warnings == ("PID-3[1]: NHS number is in the reserved test range 999",)


def test_pid_2_fills_in_a_local_id_only_when_pid_3_has_none() -> None:
    only_nhs = mapped(PID_2="EXT1^^^RXT", PID_3="9434765919^^^NHS^NH").patient
    assert only_nhs.local_identifier() is not None
    assert only_nhs.local_identifier().value == "EXT1"  # type: ignore[union-attr]
    with_local = mapped(PID_2="EXT1^^^RXT").patient
    assert [i.value for i in with_local.identifiers] == ["RXT1234567", "4010232137"]


def test_an_nhs_number_in_pid_2_counts() -> None:
    assert mapped(PID_2="9434765919^^^NHS", PID_3="X1^^^RXT^MR").patient.nhs_number


def test_nhs_number_status_comes_from_pid_32() -> None:
    identifier = mapped(PID_32="NSTS03").patient.identifiers[1]
    assert identifier.verification is NhsNumberStatus.TRACE_REQUIRED
    assert mapped(PID_32="").patient.identifiers[1].verification is None


def test_warnings_never_carry_patient_data() -> None:
    event = mapped(
        PID_3="RXT1234567^^^RXT^MR~9434765918^^^NHS^NH~9449305552^^^NHS^NH~4010232137^^^NHS",
        PID_7="198013",
        PID_8="Q",
        PID_22="X^Unlisted",
        PID_29="not a date",
        PID_5="SYNTHETIC^ALPHA^^^MX^^WEIRD",
        PV1_36="2",
    )
    assert len(event.warnings) >= 6
    for warning in event.warnings:
        assert not any(item in warning for item in PATIENT_DATA), warning


# --- timestamps -----------------------------------------------------------------------------


def test_occurred_at_is_evn_6_and_recorded_at_evn_2() -> None:
    event = mapped(EVN_2="20260114093000", EVN_6="20260114091500")
    assert event.occurred_at is not None
    assert event.occurred_at.original == "20260114091500"
    assert event.recorded_at is not None
    assert event.recorded_at.original == "20260114093000"


@pytest.mark.parametrize(
    ("trigger", "source"),
    [("A03", "PV1-45"), ("A01", "PV1-44"), ("A02", "EVN-2")],
)
def test_without_evn_6_occurred_at_falls_back(trigger: str, source: str) -> None:
    event = mapped(MSH_9=f"ADT^{trigger}", EVN_6="", PV1_45="20260120100000")
    expected = {"PV1-45": "20260120100000", "PV1-44": "20260114091500"}.get(
        source, "20260114093000"
    )
    assert event.occurred_at is not None
    assert event.occurred_at.original == expected
    assert f"EVN-6: event date/time missing; taken from {source}" in event.warnings


def test_without_evn_occurred_at_is_msh_7() -> None:
    event = mapped(drop=("EVN",), PV1_44="")
    assert event.occurred_at == event.source.sent_at
    assert event.recorded_at is None
    assert "EVN: segment missing" in event.warnings


def test_winter_wall_clock_time_is_gmt() -> None:
    instant = mapped(EVN_6="20260114091500").occurred_at
    assert instant is not None
    assert instant.utc == datetime(2026, 1, 14, 9, 15, tzinfo=UTC)
    assert instant.zone_assumed
    assert instant.precision is Precision.SECOND


def test_summer_wall_clock_time_is_bst() -> None:
    instant = mapped(EVN_6="20260715223000").occurred_at
    assert instant is not None
    assert instant.utc == datetime(2026, 7, 15, 21, 30, tzinfo=UTC)


def test_the_nonexistent_spring_hour_is_read_as_the_earlier_instant() -> None:
    # 01:30 on 29 March 2026 never shows on a London clock: read as 01:30 BST = 00:30 UTC,
    # the earlier of the two readings (issue 13 point 8; tests/unit/test_clock_changes.py).
    event = mapped(EVN_6="20260329013000")
    assert event.occurred_at is not None
    assert event.occurred_at.utc == datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert (
        "EVN-6: local time does not exist (clocks go forward): the earlier instant is used"
        in event.warnings
    )


def test_the_ambiguous_autumn_hour_is_read_as_its_first_occurrence() -> None:
    # 01:30 on 25 October 2026 happens twice: the first time is 01:30 BST = 00:30 UTC.
    event = mapped(EVN_6="20261025013000")
    assert event.occurred_at is not None
    assert event.occurred_at.utc == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert (
        "EVN-6: local time happens twice (clocks go back): the earlier instant is used"
        in event.warnings
    )


def test_an_explicit_offset_always_wins() -> None:
    event = mapped(EVN_6="20261025013000+0000", MSH_7="20260715223500-0500")
    assert event.occurred_at is not None
    assert event.source.sent_at is not None
    assert event.occurred_at.utc == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert not event.occurred_at.zone_assumed
    assert event.source.sent_at.utc == datetime(2026, 7, 16, 3, 35, tzinfo=UTC)
    assert event.warnings == ()


@pytest.mark.parametrize(
    ("text", "precision", "utc"),
    [
        ("20260329", Precision.DAY, datetime(2026, 3, 29, tzinfo=UTC)),
        ("20260715", Precision.DAY, datetime(2026, 7, 14, 23, tzinfo=UTC)),  # BST midnight
        ("202607", Precision.MONTH, datetime(2026, 6, 30, 23, tzinfo=UTC)),
        ("2026071522", Precision.HOUR, datetime(2026, 7, 15, 21, tzinfo=UTC)),
        ("202607152230", Precision.MINUTE, datetime(2026, 7, 15, 21, 30, tzinfo=UTC)),
        ("20260715223015.25", Precision.FRACTION, datetime(2026, 7, 15, 21, 30, 15, 250000, UTC)),
        ("20260715+0200", Precision.DAY, datetime(2026, 7, 14, 22, tzinfo=UTC)),
    ],
)
def test_timestamps_keep_their_precision(text: str, precision: Precision, utc: datetime) -> None:
    instant = mapped(EVN_6=text).occurred_at
    assert instant is not None
    assert (instant.precision, instant.utc, instant.original) == (precision, utc, text)


@pytest.mark.parametrize(
    "text",
    [
        "20261301",
        "20260230",
        "2026011425",
        "yesterday",
        "2026-01-14",
        "20260114+2500",
        "99991231235959-1400",
    ],
)
def test_an_invalid_required_timestamp_is_rejected(text: str) -> None:
    error = rejection(EVN_6=text)
    assert (error.location, error.code, error.reason) == (
        "EVN-6",
        "102",
        "not a valid HL7 date/time",
    )


@pytest.mark.parametrize(
    ("field", "location"), [("MSH_7", "MSH-7"), ("EVN_2", "EVN-2"), ("PV1_44", "PV1-44")]
)
def test_other_required_timestamps_are_checked(field: str, location: str) -> None:
    with pytest.raises(MappingError) as caught:
        map_hl7v2(hl7({field: "20261301"}), MH)
    assert caught.value.location == location


def test_an_invalid_discharge_time_on_a_discharge_is_rejected() -> None:
    assert rejection(MSH_9="ADT^A03", PV1_45="2026xx").location == "PV1-45"


def test_invalid_optional_timestamps_are_dropped_with_a_warning() -> None:
    event = mapped(PID_7="19801301", PID_29="bad")
    assert event.patient.birth_date is None
    assert event.patient.deceased_at is None
    assert "PID-7: not a valid HL7 date; ignored" in event.warnings
    assert "PID-29: not a valid HL7 date/time; ignored" in event.warnings


def test_the_birth_date_is_the_date_as_written() -> None:
    patient = mapped(PID_7="198001010130+1400").patient
    assert patient.birth_date == date(1980, 1, 1)
    assert patient.birth_date_original == "198001010130+1400"


# --- the stay -------------------------------------------------------------------------------


def test_the_stay_from_pv1() -> None:
    stay = mapped(PV1_50="EP-9", PV1_36="1", PV1_37="19").stay
    assert stay is not None
    assert (stay.id, stay.episode_id, stay.provider_ods, stay.site_ods) == (
        "SPELL-1",
        "EP-9",
        "RXT",
        "RXT01",
    )
    assert stay.patient_class is not None
    assert stay.patient_class.code == "I"
    assert stay.specialty is not None
    assert (stay.specialty.system, stay.specialty.code) == (TREATMENT_FUNCTION, "710")
    assert stay.admission_method is not None
    assert stay.admission_method.code == "25"
    assert stay.admission_source is not None
    assert stay.admission_source.code == "19"
    assert stay.discharge_method is not None
    assert (stay.discharge_method.system, stay.discharge_method.code) == (
        DISCHARGE_METHOD_ENGLAND,
        "1",
    )
    assert stay.discharge_destination is not None
    assert (stay.discharge_destination.system, stay.discharge_destination.code) == (
        DISCHARGE_DESTINATION_ENGLAND,
        "19",
    )
    assert stay.legal_status == ()


def test_the_itk_location_puts_the_ward_in_pl_2_and_the_site_in_pl_4() -> None:
    location = mapped().stay.location  # type: ignore[union-attr]
    assert location is not None
    assert (location.point_of_care, location.ward, location.bed, location.facility) == (
        "RXT",
        "WARD7",
        "BED3",
        "RXT01",
    )


def test_without_pl_2_the_ward_is_pl_1() -> None:
    location = mapped(PV1_3="AMU^^12^R0A09").stay.location  # type: ignore[union-attr]
    assert location is not None
    assert (location.ward, location.bed) == ("AMU", "12")


def test_a_transfer_moves_from_pv1_6_to_pv1_3() -> None:
    event = mapped(MSH_9="ADT^A02", PV1_3="RXT^WARD9^BED1^RXT01", PV1_6="RXT^WARD7^BED3^RXT01")
    assert event.location_from is not None
    assert event.location_from.ward == "WARD7"
    assert event.location_to is not None
    assert event.location_to.ward == "WARD9"


def test_a_transfer_without_a_prior_location_is_flagged() -> None:
    event = mapped(MSH_9="ADT^A02")
    assert event.location_from is None
    assert "PV1-6: prior location missing on a transfer" in event.warnings


def test_a_discharge_leaves_pv1_3_and_an_admission_arrives_there() -> None:
    discharge = mapped(MSH_9="ADT^A03", PV1_45="20260120100000")
    assert discharge.location_from is not None
    assert discharge.location_from.ward == "WARD7"
    assert discharge.location_to is None
    admission = mapped()
    assert admission.location_to is not None
    assert admission.location_from is None


def test_a_discharge_without_a_discharge_time_is_flagged() -> None:
    assert "PV1-45: discharge date/time missing on a discharge" in mapped(MSH_9="ADT^A03").warnings


@pytest.mark.parametrize(
    ("profile", "function", "setting"),
    [
        (MH, "710", CareSetting.MENTAL_HEALTH),
        (MH, "729", CareSetting.MENTAL_HEALTH),
        (MH, "730", CareSetting.UNKNOWN),
        (MH, "300", CareSetting.UNKNOWN),
        (MH, "PSY", CareSetting.UNKNOWN),
        (ACUTE, "710", CareSetting.ACUTE),
    ],
)
def test_care_setting_is_the_feeds_unless_unknown_and_a_7xx_function(
    profile: FeedProfile, function: str, setting: CareSetting
) -> None:
    assert mapped(profile, PV1_10=function).stay.care_setting is setting  # type: ignore[union-attr]


def test_codes_outside_the_national_list_are_kept_under_the_feeds_local_system() -> None:
    event = mapped(PV1_36="2", PV1_37="22")
    stay = event.stay
    assert stay is not None
    assert stay.discharge_method is not None
    assert stay.discharge_method.system == local_system("mh-trust", "PV1-36")
    assert stay.discharge_method.code == "2"
    assert (
        "PV1-36: discharge method '2' is not in the national list; kept as a local code"
        in event.warnings
    )


def test_the_responsible_clinician_is_pv1_9_else_pv1_7() -> None:
    clinician = mapped().stay.responsible_clinician  # type: ignore[union-attr]
    assert clinician is not None
    assert (clinician.code, clinician.family, clinician.given, clinician.prefix) == (
        "C1234567",
        "RESPONSIBLE",
        "CLINICIAN",
        "DR",
    )
    attending = mapped(PV1_7="C7654321^ATTENDING^TEST", PV1_9="").stay.responsible_clinician  # type: ignore[union-attr]
    assert attending is not None
    assert attending.code == "C7654321"


def test_explicit_nulls_map_to_absent_and_are_listed_as_cleared() -> None:
    event = mapped(MSH_9="ADT^A08", PV1_36='""', PV1_45='""', PD1_4='""', PID_8='""')
    stay = event.stay
    assert stay is not None
    assert (stay.discharge_method, stay.discharged_at) == (None, None)
    assert (event.patient.gp_code, event.patient.gender) == (None, None)
    assert event.cleared == (
        "patient.gender",
        "patient.gp_code",
        "stay.discharge_method",
        "stay.discharged_at",
    )


def test_empty_fields_are_unchanged_not_cleared() -> None:
    event = mapped(MSH_9="ADT^A31", PID_8="", PD1_4="", PID_22="")
    assert event.cleared == ()


def test_a_null_clinician_is_cleared_only_when_no_other_field_names_one() -> None:
    assert mapped(PV1_9='""', PV1_7="").cleared == ("stay.responsible_clinician",)
    assert mapped(PV1_9='""', PV1_7="C7654321^ATTENDING").cleared == ()


# --- the patient ----------------------------------------------------------------------------


def test_demographics_from_pid_and_pd1() -> None:
    patient = mapped(PID_22="A", PID_31="Y").patient
    (name,) = patient.names
    assert (name.use, name.family, name.given, name.prefix) == (
        NameUse.OFFICIAL,
        "SYNTHETIC",
        ("ALPHA",),
        "MX",
    )
    assert patient.birth_date == date(1980, 1, 1)
    assert (patient.gender, patient.gender_original) == (Gender.FEMALE, "2")
    (address,) = patient.addresses
    assert (address.lines, address.city, address.postcode) == (
        ("1 Example Street",),
        "Testtown",
        "TE1 1ST",
    )
    assert patient.ethnic_category is not None
    assert (patient.ethnic_category.system, patient.ethnic_category.code) == (
        ETHNIC_CATEGORY_ENGLAND,
        "A",
    )
    assert (patient.gp_practice_ods, patient.gp_code) == ("Y99901", "G9999998")
    assert patient.identity_unknown
    assert not patient.location_hidden


@pytest.mark.parametrize(
    ("code", "gender"),
    [
        ("0", Gender.UNKNOWN),
        ("1", Gender.MALE),
        ("2", Gender.FEMALE),
        ("9", Gender.OTHER),
        ("M", Gender.MALE),
        ("F", Gender.FEMALE),
        ("U", Gender.UNKNOWN),
        ("O", Gender.OTHER),
        ("A", Gender.OTHER),
        ("N", Gender.OTHER),
    ],
)
def test_nhs_and_hl7_sex_codes(code: str, gender: Gender) -> None:
    assert mapped(PID_8=code).patient.gender is gender


def test_an_unknown_sex_code_is_kept_as_sent_with_a_warning() -> None:
    event = mapped(PID_8="M-")
    assert event.patient.gender is None
    assert event.patient.gender_original == "M-"
    assert "PID-8: sex code not recognised" in event.warnings


@pytest.mark.parametrize(
    ("type_code", "use"),
    [
        ("L", NameUse.OFFICIAL),
        ("", NameUse.OFFICIAL),
        ("A", NameUse.ALIAS),
        ("PREFERRED", NameUse.USUAL),
        ("PREVIOUS-MAIDEN", NameUse.MAIDEN),
        ("PREVIOUS-BIRTH", NameUse.OLD),
        ("M", NameUse.MAIDEN),
    ],
)
def test_name_types(type_code: str, use: NameUse) -> None:
    assert mapped(PID_5=f"SYNTHETIC^ALPHA^^^^^{type_code}").patient.names[0].use is use


def test_a_us_ethnic_group_is_not_read_as_an_nhs_ethnic_category() -> None:
    category = mapped(PID_22="N^NOT HISPANIC OR LATINO^HL70189").patient.ethnic_category
    assert category is not None
    assert category.system == local_system("mh-trust", "PID-22")


@pytest.mark.parametrize(
    ("pd1_3", "practice"),
    [
        ("EXAMPLE SURGERY^^Y99901", "Y99901"),
        ("EXAMPLE SURGERY^^^^^^^^^Y99902", "Y99902"),
        ("Y99903", "Y99903"),
        ("EXAMPLE SURGERY", None),
    ],
)
def test_the_gp_practice_is_xon_3_then_xon_10_then_a_code_in_xon_1(
    pd1_3: str, practice: str | None
) -> None:
    assert mapped(PD1_3=pd1_3).patient.gp_practice_ods == practice


@pytest.mark.parametrize(("flag", "hidden"), [("Y", True), ("N", False), ("", False), ("?", True)])
def test_zu8_4_hides_the_location_and_an_unknown_value_hides(flag: str, hidden: bool) -> None:
    assert mapped(add=(f"ZU8||||{flag}",)).patient.location_hidden is hidden


def test_the_nhs_number_status_is_kept_when_no_nhs_number_is_sent() -> None:
    patient = mapped(PID_3="RXT1234567^^^RXT^MR", PID_32="NSTS03").patient
    assert patient.nhs_number is None
    assert patient.nhs_number_status is NhsNumberStatus.TRACE_REQUIRED


# --- the feed's profile ---------------------------------------------------------------------

LOCAL = FeedProfile.from_mapping(
    {
        "feed": "mh-local",
        "care_setting": "mental_health",
        "ward_component": 1,
        "code_tables": {
            "discharge_destination": {"HOME": "19", "PRISON": "38"},
            "legal_status": "mha-section-labels",
        },
        "legal_status": [{"field": "ZMH-2", "start": "ZMH-3"}],
        "risk_flags": [{"field": "OBX-5", "observation": "RISK"}, "ZMH-5"],
    }
)
ZU5 = FeedProfile.from_mapping(
    {
        "feed": "mh-zu5",
        "code_tables": {"legal_status": "zu5-legal-status"},
        "legal_status": {"field": "ZU5-2", "context": "admission"},
    }
)


def test_a_feed_may_put_the_ward_in_pl_1() -> None:
    location = mapped(LOCAL, PV1_3="OAK^ROOM2^BED4^RXT01").stay.location  # type: ignore[union-attr]
    assert location is not None
    assert (location.ward, location.room, location.bed, location.facility) == (
        "OAK",
        "ROOM2",
        "BED4",
        "RXT01",
    )


def test_a_feed_code_table_translates_local_codes_to_the_national_list() -> None:
    event = mapped(LOCAL, MSH_9="ADT^A03", PV1_37="PRISON", PV1_45="20260120100000")
    destination = event.stay.discharge_destination  # type: ignore[union-attr]
    assert destination is not None
    assert (destination.system, destination.code) == (DISCHARGE_DESTINATION_ENGLAND, "38")
    assert not any("PV1-37" in w for w in event.warnings)


def test_codes_in_neither_the_table_nor_the_national_list_stay_local() -> None:
    event = mapped(LOCAL, PV1_37="BOAT")
    destination = event.stay.discharge_destination  # type: ignore[union-attr]
    assert destination is not None
    assert destination.system == local_system("mh-local", "PV1-37")
    assert (
        "PV1-37: discharge destination 'BOAT' is not in the national list; kept as a local code"
        in (event.warnings)
    )
    national = mapped(LOCAL, PV1_37="54").stay.discharge_destination  # type: ignore[union-attr]
    assert national is not None
    assert national.code == "54"


def test_legal_status_from_a_local_z_segment_takes_the_events_context() -> None:
    zmh = "ZMH|1|S3^Section 3^LOCAL|20260105"
    for trigger, context in (
        ("A01", LegalStatusContext.ADMISSION),
        ("A03", LegalStatusContext.DISCHARGE),
        ("A08", LegalStatusContext.CURRENT),
    ):
        event = mapped(LOCAL, MSH_9=f"ADT^{trigger}", PV1_45="20260120100000", add=(zmh,))
        (status,) = event.stay.legal_status  # type: ignore[union-attr]
        assert (status.code.system, status.code.code) == (LEGAL_STATUS_ENGLAND, "03")
        assert status.context is context
        assert status.start is not None
        assert status.start.original == "20260105"


def test_zu5_legacy_single_digit_codes_become_two_digit_codes() -> None:
    event = mapped(ZU5, MSH_9="ADT^A03", PV1_45="20260120100000", add=("ZU5|1|2",))
    (status,) = event.stay.legal_status  # type: ignore[union-attr]
    assert (status.code.code, status.context) == ("02", LegalStatusContext.ADMISSION)


def test_a_legal_status_outside_the_england_list_is_kept_local() -> None:
    event = mapped(LOCAL, add=("ZMH|1|CTO^Community treatment order",))
    (status,) = event.stay.legal_status  # type: ignore[union-attr]
    assert (status.code.system, status.code.code, status.code.display) == (
        local_system("mh-local", "legal_status"),
        "CTO",
        "Community treatment order",
    )
    assert "ZMH-2: legal status is not in the national list; kept as a local code" in (
        event.warnings
    )


def test_legal_status_is_never_inferred_from_its_absence() -> None:
    assert mapped(LOCAL).stay.legal_status == ()  # type: ignore[union-attr]
    assert mapped(LOCAL, add=("ZMH|1|",)).stay.legal_status == ()  # type: ignore[union-attr]
    # A feed whose profile names no source: even a ZU5 is not read.
    assert mapped(add=("ZU5|1|01",)).stay.legal_status == ()  # type: ignore[union-attr]


def test_a_deleted_legal_status_is_listed_as_cleared() -> None:
    event = mapped(LOCAL, MSH_9="ADT^A08", add=('ZMH|1|""',))
    assert event.stay.legal_status == ()  # type: ignore[union-attr]
    assert event.cleared == ("stay.legal_status",)


def test_legal_status_from_an_observation() -> None:
    profile = FeedProfile.from_mapping(
        {
            "feed": "mh-obx",
            "code_tables": {"legal_status": "mha-section-labels"},
            "legal_status": {"field": "OBX-5", "observation": "LEGAL", "start": "OBX-14"},
        }
    )
    obx = "OBX|1|CE|LEGAL^Legal status^L||S136^Section 136||||||F|||20260114080000"
    other = "OBX|2|CE|OTHER^Something else^L||S3"
    (status,) = mapped(profile, add=(other, obx)).stay.legal_status  # type: ignore[union-attr]
    assert status.code.code == "20"
    assert status.start is not None
    assert status.start.original == "20260114080000"


@pytest.mark.parametrize(
    ("obx_5", "zmh_5", "flags"),
    [
        ("Y", "", [(RISK_FLAG, "high-risk")]),
        ("N", "", []),
        ("", "", []),
        ("", "SELF^Risk to self~OTHERS", [("local", "SELF"), ("local", "OTHERS")]),
        ("?", "", [("local", "?")]),  # unrecognised: shown, not lost
        ("YES", "Y", [(RISK_FLAG, "high-risk")]),
    ],
)
def test_risk_flags_from_the_profiles_sources(
    obx_5: str, zmh_5: str, flags: list[tuple[str, str]]
) -> None:
    add = (f"OBX|1|ST|RISK^High risk^L||{obx_5}", f"ZMH|1||||{zmh_5}")
    event = mapped(LOCAL, add=add)
    local = local_system("mh-local", "risk_flag")
    expected = [(local if system == "local" else system, code) for system, code in flags]
    assert [(f.system, f.code) for f in event.stay.risk_flags] == expected  # type: ignore[union-attr]
