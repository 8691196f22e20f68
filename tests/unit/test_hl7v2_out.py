from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from adapters.mllp import frame
from mappings.codes import DISCHARGE_METHOD_ENGLAND, local_system
from mappings.errors import MappingError
from mappings.hl7v2.er7 import escape, format_utc
from mappings.hl7v2.inbound import map_hl7v2
from mappings.hl7v2.outbound import TRIGGERS, render_adt
from mappings.hl7v2.reader import parse
from mappings.model import (
    NHS_NUMBER_SYSTEM,
    Address,
    AddressUse,
    CareEvent,
    Clinician,
    Coding,
    EventKind,
    Gender,
    Identifier,
    IdentifierKind,
    Instant,
    Location,
    Merge,
    NameUse,
    PersonName,
    Precision,
)
from mappings.profile import FeedProfile

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hl7v2"
PROFILES = {
    name: FeedProfile.from_mapping(data)
    for name, data in yaml.safe_load((FIXTURES / "profiles.yaml").read_text()).items()
}
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
HEADER = {
    "control_id": "CB-0001",
    "sending_app": "CAREBRIDGE",
    "sending_facility": "RXT",
    "receiving_app": "EPR",
    "receiving_facility": "R0A",
    "now": NOW,
}


def fixture_event(name: str) -> CareEvent:
    return map_hl7v2((FIXTURES / name).read_bytes(), PROFILES[name.split("_", 1)[0]])


DISCHARGE = fixture_event("mh_a03_discharge.hl7")


def render(event: CareEvent, **overrides: object) -> bytes:
    return render_adt(event, **{**HEADER, **overrides})  # type: ignore[arg-type]


def with_patient(event: CareEvent, **changes: object) -> CareEvent:
    return event.model_copy(update={"patient": event.patient.model_copy(update=changes)})


def with_stay(event: CareEvent, **changes: object) -> CareEvent:
    assert event.stay is not None
    return event.model_copy(update={"stay": event.stay.model_copy(update=changes)})


def of_kind(kind: EventKind) -> CareEvent:
    merge = None
    if kind is EventKind.MERGE:
        merge = Merge(
            survivor=DISCHARGE.patient.identifiers,
            retired=(Identifier(kind=IdentifierKind.LOCAL, value="OLD1", system="RXT"),),
        )
    return DISCHARGE.model_copy(update={"kind": kind, "merge": merge})


def segment_names(message: bytes) -> list[str]:
    return [s.name for s in parse(message).segments_all]


def no_room(location: Location | None) -> Location | None:
    return location.model_copy(update={"room": None}) if location else None


# --- golden ---------------------------------------------------------------------------------

GOLDEN_A03 = (
    "MSH|^~\\&|CAREBRIDGE|RXT|EPR|R0A|20260301120000+0000||ADT^A03^ADT_A03|CB-0001|P|2.4"
    "||||||UNICODE UTF-8\r"
    "EVN|A03|20260202104500+0000||||20260202103000+0000\r"
    "PID|1||9434765919^^^NHS^NH~RXT1234567^^^RXT^MR||SYNTHETIC^ALPHA^TESTCASE^^MX^^L"
    "~SYNTHETIC^AL^^^^^PREFERRED||19800101|2|||1 Example Street^Testville^Testtown^Testshire"
    "^TE1 1ST^GBR^H|||||||||||Z\r"  # no NSTS01: 943 476 5919 is not a real patient's number
    "PD1|||^^Y99901|G9999998\r"
    "PV1|1|I|RXT^WARD9^BED1^RXT01|25|||||C1234567^RESPONSIBLE^CLINICIAN^^^DR|710||||19|||||"
    "SPELL-0001|||||||||||||||||1|19|||||||20260114091500+0000|20260202103000+0000|||||EP-0002\r"
)


def test_an_itk_discharge_renders_exactly_as_reviewed() -> None:
    assert render(DISCHARGE).decode() == GOLDEN_A03


def test_the_same_control_id_gives_the_same_message_on_every_attempt() -> None:
    assert render(DISCHARGE) == render(DISCHARGE)
    assert parse(render(DISCHARGE, control_id="DLV-42")).msh.value(10) == "DLV-42"


# --- round trip through the inbound mapping ---------------------------------------------


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.hl7")), ids=lambda p: p.stem)
def test_a_rendered_fixture_maps_back_to_the_same_event(fixture: Path) -> None:
    original = fixture_event(fixture.name)
    profile = PROFILES[fixture.stem.split("_", 1)[0]]
    # What we send is ITK-shaped, whatever the source's own layout was.
    itk = FeedProfile(feed=profile.feed, care_setting=profile.care_setting)
    back = map_hl7v2(render(original), itk)

    assert back.kind is original.kind
    assert back.patient.identifiers == as_sent(original.patient.identifiers)
    assert back.patient.names == original.patient.names
    assert back.patient.birth_date == original.patient.birth_date
    assert back.patient.gender is original.patient.gender
    assert back.patient.addresses == original.patient.addresses
    assert back.patient.gp_practice_ods == original.patient.gp_practice_ods
    # never "verified" (PID-32 NSTS01) for a number that is not a real patient's
    not_real = original.patient.nhs_number_not_real
    assert back.patient.nhs_number_status == (
        None if not_real else original.patient.nhs_number_status
    )
    assert no_room(back.location_from) == no_room(original.location_from)
    assert no_room(back.location_to) == no_room(original.location_to)
    if original.merge is not None:
        assert back.merge is not None
        assert back.merge.retired == original.merge.retired
        assert back.merge.survivor == as_sent(original.merge.survivor)
    else:
        assert back.merge is None
    assert back.cleared == original.cleared
    assert (back.stay is None) == (original.stay is None)
    if original.stay is not None and back.stay is not None:
        assert no_room(back.stay.location) == no_room(original.stay.location)
        method = original.stay.discharge_method  # HL7 out sends national codes only
        national = method is not None and method.system == DISCHARGE_METHOD_ENGLAND
        assert back.stay.discharge_method == (method if national else None)
        assert back.stay.discharge_destination == original.stay.discharge_destination
        assert back.stay.id == original.stay.id
        assert back.stay.responsible_clinician == original.stay.responsible_clinician
        for instant in ("admitted_at", "discharged_at", "leave_expected_return"):
            theirs, ours = getattr(original.stay, instant), getattr(back.stay, instant)
            assert (ours and ours.utc) == (theirs and theirs.utc), instant
    for instant in ("occurred_at", "recorded_at"):
        theirs, ours = getattr(original, instant), getattr(back, instant)
        assert (ours and ours.utc) == (theirs and theirs.utc), instant


def as_sent(identifiers: tuple[Identifier, ...]) -> tuple[Identifier, ...]:
    """Identifiers as HL7 v2 carries them: an unverified NHS number is not sent, an NHS number
    goes in PID-3 the ITK way (``^^^NHS^NH``, even one read from a bare v2.3 PID-2), and one
    that is not a real patient's is sent without a verified status (PID-32)."""
    sent = []
    for i in identifiers:
        if i.kind is IdentifierKind.UNVERIFIED_NHS_NUMBER:
            continue
        if i.kind is IdentifierKind.NHS_NUMBER:
            i = i.model_copy(update={"type_code": "NH"})
        sent.append(i.model_copy(update={"verification": None}) if i.not_real else i)
    return tuple(sent)


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_kind_of_event_maps_back_to_its_kind(kind: EventKind) -> None:
    back = map_hl7v2(render(of_kind(kind)), PROFILES["mh"])
    assert back.kind is kind
    assert back.trigger == TRIGGERS[kind]


# --- structure ------------------------------------------------------------------------------

STRUCTURES = {
    EventKind.ADMISSION: "ADT^A01^ADT_A01",
    EventKind.TRANSFER: "ADT^A02^ADT_A02",
    EventKind.DISCHARGE: "ADT^A03^ADT_A03",
    EventKind.REGISTRATION: "ADT^A04^ADT_A01",
    EventKind.PRE_ADMISSION: "ADT^A05^ADT_A05",
    EventKind.UPDATE: "ADT^A08^ADT_A01",
    EventKind.CANCEL_ADMISSION: "ADT^A11^ADT_A09",
    EventKind.CANCEL_TRANSFER: "ADT^A12^ADT_A09",
    EventKind.CANCEL_DISCHARGE: "ADT^A13^ADT_A01",
    EventKind.LEAVE_START: "ADT^A21^ADT_A21",
    EventKind.LEAVE_END: "ADT^A22^ADT_A21",
    EventKind.PERSON_UPDATE: "ADT^A31^ADT_A05",
    EventKind.CANCEL_PRE_ADMISSION: "ADT^A38^ADT_A38",
    EventKind.MERGE: "ADT^A40^ADT_A39",
    EventKind.CANCEL_LEAVE_START: "ADT^A52^ADT_A52",
    EventKind.CANCEL_LEAVE_END: "ADT^A53^ADT_A52",
}


@pytest.mark.parametrize(("kind", "message_type"), STRUCTURES.items())
def test_each_kind_is_sent_as_its_itk_trigger_and_structure(
    kind: EventKind, message_type: str
) -> None:
    message = parse(render(of_kind(kind)))
    assert message.msh.field(9).raw == message_type
    assert message.msh.value(12) == "2.4"
    assert message.segment("EVN").value(1) == message_type.split("^")[1]  # type: ignore[union-attr]


def test_a12_uses_its_own_structure_from_v2_5() -> None:
    message = parse(render(of_kind(EventKind.CANCEL_TRANSFER), version="2.5.1"))
    assert message.msh.field(9).raw == "ADT^A12^ADT_A12"


def test_a_merge_has_mrg_with_the_retired_ids_and_no_pv1() -> None:
    message = render(of_kind(EventKind.MERGE))
    assert segment_names(message) == ["MSH", "EVN", "PID", "PD1", "MRG"]
    assert parse(message).segment("MRG").field(1).raw == "OLD1^^^RXT^MR"  # type: ignore[union-attr]


def test_a_person_update_has_a_not_applicable_visit() -> None:
    message = parse(render(of_kind(EventKind.PERSON_UPDATE)))
    assert message.segment("PV1").raw == "PV1|1|N"  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_kind_passes_hl7apy_strict_validation_in_v2_5_1(kind: EventKind) -> None:
    message = parse_message(
        render(of_kind(kind), version="2.5.1").decode(),
        validation_level=VALIDATION_LEVEL.STRICT,
        find_groups=True,
    )
    message.validate()


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_kind_passes_hl7apy_strict_validation_in_v2_4_apart_from_itk_pd1(
    kind: EventKind,
) -> None:
    # ITK puts the practice code in XON.3, which base v2.4 types as a number.
    event = with_patient(of_kind(kind), gp_practice_ods=None)
    message = parse_message(
        render(event).decode(), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True
    )
    message.validate()


# --- escaping -------------------------------------------------------------------------------

HOSTILE = 'O|Brien^X~Y\\Z&W\x0b\x1c""\rMSH|^~\\&|EVIL|\nPID|1||666^^^NHS^NH'


def test_hostile_text_cannot_forge_a_field_segment_or_frame_and_reads_back_exactly() -> None:
    event = with_patient(
        DISCHARGE,
        names=(PersonName(family=HOSTILE, given=(HOSTILE, "B")),),
        addresses=(Address(lines=(HOSTILE,), city=HOSTILE, postcode="TE1 1ST"),),
        identifiers=(
            *DISCHARGE.patient.identifiers,
            Identifier(kind=IdentifierKind.LOCAL, value=HOSTILE, system=HOSTILE),
        ),
    )
    event = with_stay(
        event,
        location=Location(ward=HOSTILE, bed="B1", facility="RXT01", description=HOSTILE),
        responsible_clinician=Clinician(code="C1234567", family=HOSTILE),
        id=HOSTILE,
    )
    raw = render(event, sending_app=HOSTILE, control_id=HOSTILE)

    frame(raw)  # no MLLP framing byte inside
    assert raw.count(b"\r") == 5  # one terminator per segment, none from the content
    assert b"\n" not in raw
    message = parse(raw)
    assert [s.name for s in message.segments_all] == ["MSH", "EVN", "PID", "PD1", "PV1"]
    assert message.warnings == ()
    pid = message.segment("PID")
    pv1 = message.segment("PV1")
    assert pid is not None
    assert pv1 is not None
    assert message.msh.value(3) == HOSTILE
    assert message.msh.value(10) == HOSTILE
    assert message.msh.value(9, 2) == "A03"
    assert pid.value(5, 1) == HOSTILE
    assert pid.value(5, 2) == HOSTILE
    assert pid.value(5, 3) == "B"
    assert pid.value(11, 1) == HOSTILE
    assert pid.value(11, 3) == HOSTILE
    assert [r.value(1) for r in pid.field(3).repetitions()] == ["9434765919", "RXT1234567", HOSTILE]
    assert pid.field(3).repetitions()[2].value(4) == HOSTILE
    assert pv1.value(3, 2) == HOSTILE
    assert pv1.value(3, 9) == HOSTILE
    assert pv1.value(9, 2) == HOSTILE
    assert pv1.value(19) == HOSTILE
    assert pv1.value(36) == "1"  # the fields after the hostile ones are where they belong

    back = map_hl7v2(raw, PROFILES["mh"])
    assert back.patient.names[0].family == HOSTILE


def test_a_value_of_two_double_quotes_is_not_sent_as_the_delete_null() -> None:
    event = with_patient(DISCHARGE, names=(PersonName(family='""', given=("A",)),))
    pid = parse(render(event)).segment("PID")
    assert pid is not None
    assert not pid.field(5).is_null
    assert pid.value(5) == '""'


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain", "plain"),
        ("a|b", "a\\F\\b"),
        ("a^b", "a\\S\\b"),
        ("a&b", "a\\T\\b"),
        ("a~b", "a\\R\\b"),
        ("a\\b", "a\\E\\b"),
        ("a\rb\nc", "a\\X0D\\b\\X0A\\c"),
        ("\x0b\x1c", "\\X0B\\\\X1C\\"),
        ('""', "\\X22\\\\X22\\"),
        ('say ""', 'say ""'),
    ],
)
def test_escape(text: str, escaped: str) -> None:
    assert escape(text) == escaped


# --- content rules --------------------------------------------------------------------------


def test_location_hiding_leaves_out_address_and_gp() -> None:
    raw = render(with_patient(DISCHARGE, location_hidden=True))
    message = parse(raw)
    assert segment_names(raw) == ["MSH", "EVN", "PID", "PV1"]
    pid = message.segment("PID")
    assert pid is not None
    assert not pid.field(11)
    assert b"Example Street" not in raw
    assert b"Y99901" not in raw
    assert b"G9999998" not in raw
    assert pid.value(5) == "SYNTHETIC"  # the rest is still there
    assert message.segment("PV1").value(3, 2) == "WARD9"  # type: ignore[union-attr]


def test_a_deleted_address_of_a_hidden_patient_is_not_deleted_downstream() -> None:
    event = with_patient(DISCHARGE, location_hidden=True, addresses=())
    event = event.model_copy(update={"cleared": ("patient.addresses",)})
    assert not parse(render(event)).segment("PID").field(11)  # type: ignore[union-attr]


def test_an_nhs_number_that_fails_its_check_is_not_sent() -> None:
    event = fixture_event("mh_a03_escapes_latin1.hl7")
    assert any(i.kind is IdentifierKind.UNVERIFIED_NHS_NUMBER for i in event.patient.identifiers)
    raw = render(event)
    assert b"9434765918" not in raw
    pid = parse(raw).segment("PID")
    assert pid is not None
    assert pid.field(3).raw == "RXT7654321^^^RXT^MR"
    assert pid.value(32) == "NSTS03"  # why there is no NHS number still goes


def test_an_identifier_system_that_is_a_uri_or_oid_goes_in_the_universal_id() -> None:
    event = with_patient(
        DISCHARGE,
        identifiers=(
            Identifier(
                kind=IdentifierKind.NHS_NUMBER, value="9434765919", system=NHS_NUMBER_SYSTEM
            ),
            Identifier(kind=IdentifierKind.LOCAL, value="E1", system="urn:oid:1.2.3"),
            Identifier(kind=IdentifierKind.OTHER, value="X9", system="2.16.840.1.1"),
        ),
    )
    pid3 = parse(render(event)).segment("PID").field(3).raw  # type: ignore[union-attr]
    assert pid3 == "9434765919^^^NHS^NH~E1^^^&urn:oid:1.2.3&URI^MR~X9^^^&2.16.840.1.1&ISO"


def test_a_patient_without_any_identifier_to_send_cannot_be_rendered() -> None:
    with pytest.raises(MappingError) as caught:
        render(with_patient(DISCHARGE, identifiers=()))
    assert caught.value.location == "PID-3"


def test_a_merge_without_retired_identifiers_cannot_be_rendered() -> None:
    with pytest.raises(MappingError) as caught:
        render(DISCHARGE.model_copy(update={"kind": EventKind.MERGE, "merge": None}))
    assert caught.value.location == "MRG-1"


@pytest.mark.parametrize(
    ("gender", "code"),
    [(Gender.MALE, "1"), (Gender.FEMALE, "2"), (Gender.OTHER, "9"), (Gender.UNKNOWN, "0")],
)
def test_sex_is_sent_as_the_nhs_code(gender: Gender, code: str) -> None:
    pid = parse(render(with_patient(DISCHARGE, gender=gender))).segment("PID")
    assert pid is not None
    assert pid.value(8) == code
    assert (
        map_hl7v2(render(with_patient(DISCHARGE, gender=gender)), PROFILES["mh"]).patient.gender
        is gender
    )


@pytest.mark.parametrize(
    ("use", "code"),
    [
        (NameUse.OFFICIAL, "L"),
        (NameUse.USUAL, "PREFERRED"),
        (NameUse.ALIAS, "A"),
        (NameUse.MAIDEN, "M"),
        (NameUse.OLD, "PREVIOUS"),
    ],
)
def test_name_types(use: NameUse, code: str) -> None:
    event = with_patient(DISCHARGE, names=(PersonName(use=use, family="F", given=("G",)),))
    assert parse(render(event)).segment("PID").value(5, 7) == code  # type: ignore[union-attr]
    assert map_hl7v2(render(event), PROFILES["mh"]).patient.names[0].use is use


def test_address_types_and_extra_lines() -> None:
    event = with_patient(
        DISCHARGE,
        addresses=(
            Address(use=AddressUse.TEMPORARY, lines=("Flat 1", "Block B", "Estate"), city="T"),
            Address(use=AddressUse.UNKNOWN, lines=("Somewhere",)),
        ),
    )
    pid11 = parse(render(event)).segment("PID").field(11).raw  # type: ignore[union-attr]
    assert pid11 == "Flat 1^Block B, Estate^T^^^^TMP~Somewhere"


def test_codes_outside_the_national_list_are_left_out_not_mislabelled() -> None:
    local = Coding(system=local_system("mh-trust", "PV1-36"), code="2")
    event = with_stay(DISCHARGE, discharge_method=local, patient_class=None)
    pv1 = parse(render(event)).segment("PV1")
    assert pv1 is not None
    assert pv1.value(36) == ""
    assert pv1.value(37) == "19"
    assert pv1.value(2) == "U"  # PV1-2 is required: "unknown" rather than nothing
    national = with_stay(
        DISCHARGE, discharge_method=Coding(system=DISCHARGE_METHOD_ENGLAND, code="6")
    )
    assert parse(render(national)).segment("PV1").value(36) == "6"  # type: ignore[union-attr]


def test_explicit_deletions_are_passed_on_as_the_hl7_null() -> None:
    event = with_stay(DISCHARGE, discharge_destination=None)
    event = with_patient(event, gp_code=None).model_copy(
        update={"cleared": ("stay.discharge_destination", "patient.gp_code")}
    )
    message = parse(render(event))
    assert message.segment("PV1").field(37).is_null  # type: ignore[union-attr]
    assert message.segment("PD1").field(4).is_null  # type: ignore[union-attr]
    assert not message.segment("PV1").field(36).is_null  # type: ignore[union-attr]


def test_values_merely_missing_are_sent_empty_meaning_unchanged() -> None:
    pv1 = parse(render(with_stay(DISCHARGE, discharge_destination=None))).segment("PV1")
    assert pv1 is not None
    assert pv1.field(37).is_empty


def test_leave_expected_return_goes_in_pv2_47() -> None:
    event = fixture_event("mh_a21_leave_start.hl7")
    pv2 = parse(render(event)).segment("PV2")
    assert pv2 is not None
    assert pv2.value(47) == "20260127180000+0000"
    assert parse(render(DISCHARGE)).segment("PV2") is None


# --- timestamps -----------------------------------------------------------------------------


def instant(utc: datetime, original: str, precision: Precision) -> Instant:
    return Instant(utc=utc, original=original, precision=precision, zone_assumed=True)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        # 10:30 BST is 09:30 UTC
        (
            instant(
                datetime(2026, 7, 15, 9, 30, 15, tzinfo=UTC), "20260715103015", Precision.SECOND
            ),
            "20260715093015+0000",
        ),
        (
            instant(datetime(2026, 7, 15, 9, 30, tzinfo=UTC), "202607151030", Precision.MINUTE),
            "202607150930+0000",
        ),
        (
            instant(datetime(2026, 7, 15, 9, 0, tzinfo=UTC), "2026071510", Precision.HOUR),
            "202607150900+0000",
        ),
        (
            instant(
                datetime(2026, 7, 15, 9, 30, 15, 123456, tzinfo=UTC),
                "20260715103015.123456",
                Precision.FRACTION,
            ),
            "20260715093015.1234+0000",
        ),
        # a date stays the date it was: its UTC instant is the evening before
        (instant(datetime(2026, 7, 14, 23, 0, tzinfo=UTC), "20260715", Precision.DAY), "20260715"),
        (instant(datetime(2026, 6, 30, 23, 0, tzinfo=UTC), "202607", Precision.MONTH), "202607"),
        (
            instant(datetime(2026, 7, 14, 23, 0, tzinfo=UTC), "2026-07-15", Precision.DAY),
            "20260715",
        ),
    ],
)
def test_instants_are_written_in_utc_at_their_precision(value: Instant, written: str) -> None:
    event = DISCHARGE.model_copy(update={"occurred_at": value})
    assert parse(render(event)).segment("EVN").value(6) == written  # type: ignore[union-attr]


def test_the_message_time_is_now_in_utc() -> None:
    bst = timezone(timedelta(hours=1))
    msh = parse(render(DISCHARGE, now=datetime(2026, 7, 15, 10, 30, tzinfo=bst))).msh
    assert msh.value(7) == "20260715093000+0000"


def test_evn_2_falls_back_to_when_the_engine_received_the_event() -> None:
    received = datetime(2026, 2, 2, 10, 46, tzinfo=UTC)
    event = DISCHARGE.model_copy(update={"recorded_at": None, "received_at": received})
    assert parse(render(event)).segment("EVN").value(2) == "20260202104600+0000"  # type: ignore[union-attr]


def test_a_partial_birth_date_is_sent_as_the_sender_wrote_it() -> None:
    event = with_patient(DISCHARGE, birth_date=None, birth_date_original="1980")
    assert parse(render(event)).segment("PID").value(7) == "1980"  # type: ignore[union-attr]
    event = with_patient(DISCHARGE, birth_date=date(1980, 2, 29))
    assert parse(render(event)).segment("PID").value(7) == "19800229"  # type: ignore[union-attr]


def test_format_utc_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="time zone"):
        format_utc(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"version": "2.3"}, "version"),
        ({"control_id": " "}, "control id"),
        ({"now": datetime(2026, 1, 1)}, "time zone"),
    ],
)
def test_bad_arguments_are_refused(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        render(DISCHARGE, **overrides)
