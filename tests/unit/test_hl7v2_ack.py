from datetime import UTC, datetime
from pathlib import Path

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import ValidationError
from hl7apy.parser import parse_message

from adapters.mllp import frame
from mappings.errors import MappingError
from mappings.hl7v2.ack import (
    AckCode,
    AckRequirement,
    Outcome,
    ParsedAck,
    ack_code,
    ack_mode,
    build_ack,
    parse_ack,
)
from mappings.hl7v2.elements import Hl7Message
from mappings.hl7v2.reader import parse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hl7v2"
NOW = datetime(2026, 1, 14, 9, 30, 5, tzinfo=UTC)
ITK = (FIXTURES / "mh_a01_admission.hl7").read_bytes()  # v2.4
V251 = (FIXTURES / "acute_a01_lf.hl7").read_bytes()  # v2.5.1, LF separators


def message(version: str = "2.4", *, msh15: str = "", msh16: str = "", msh3: str = "RIO") -> bytes:
    return (
        f"MSH|^~\\&|{msh3}|RXT|ROUTE|RXTEPR|20260114093000||ADT^A01^ADT_A01|MSG-1|P|{version}"
        f"|||{msh15}|{msh16}\rEVN|A01|20260114093000\rPID|1||9434765919^^^NHS^NH\r"
    ).encode()


def ack(
    original: bytes | Hl7Message,
    code: AckCode = "AA",
    *,
    error: MappingError | None = None,
    text: str | None = None,
) -> Hl7Message:
    return parse(build_ack(original, code, now=NOW, control_id="CB-1", error=error, text=text))


def strict(raw: bytes) -> object:
    parsed = parse_message(
        raw.decode("latin-1"), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True
    )
    parsed.validate()
    return parsed


# --- MSH and MSA ----------------------------------------------------------------------------


def test_an_aa_swaps_sender_and_receiver_and_echoes_the_control_id() -> None:
    reply = ack(ITK)
    msh = reply.msh
    assert [msh.value(n) for n in (3, 4, 5, 6)] == ["ROUTE", "ROUTE", "RIO", "RXT"]
    assert msh.field(2).raw == "^~\\&"
    assert msh.value(7) == "20260114093005+0000"
    assert msh.field(9).raw == "ACK^A01^ACK"
    assert msh.value(10) == "CB-1"
    assert msh.value(11) == "P"
    assert msh.value(12) == "2.4"
    msa = reply.segment("MSA")
    assert msa is not None
    assert msa.raw == "MSA|AA|MH-A01-0001"
    assert [s.name for s in reply.segments_all] == ["MSH", "MSA"]


def test_an_already_parsed_message_is_acknowledged_the_same_way() -> None:
    assert build_ack(parse(ITK), "AA", now=NOW, control_id="CB-1") == build_ack(
        ITK, "AA", now=NOW, control_id="CB-1"
    )


def test_the_ack_uses_the_original_version_and_character_set() -> None:
    latin = (FIXTURES / "mh_a03_escapes_latin1.hl7").read_bytes()
    raw = build_ack(latin, "AA", now=NOW, control_id="CB-1")
    assert parse(raw).msh.value(18) == "8859/1"
    assert ack(V251).msh.value(12) == "2.5.1"


@pytest.mark.parametrize(
    ("version", "message_type"),
    [("2.8", "ACK^A01^ACK"), ("2.3.1", "ACK^A01^ACK"), ("2.3", "ACK^A01"), ("2.1", "ACK")],
)
def test_the_ack_message_type_follows_the_version(version: str, message_type: str) -> None:
    assert ack(message(version)).msh.field(9).raw == message_type


def test_custom_separators_are_kept_and_used_for_escaping() -> None:
    original = b"MSH#$%@*#A$1#F#B#G#20260101##ADT$A01#ID$X#P#2.4\rPID#1\r"
    raw = build_ack(original, "AE", now=NOW, control_id="CB#1", text="bad # $ @ value")
    assert raw.startswith(b"MSH#$%@*#B#G#A$1#F#")
    reply = parse(raw)
    assert reply.msh.value(10) == "CB#1"
    assert reply.segment("MSA").value(2) == "ID"  # type: ignore[union-attr]
    assert reply.segment("MSA").field(2).raw == "ID$X"  # type: ignore[union-attr]
    assert reply.segment("MSA").value(3) == "bad # $ @ value"  # type: ignore[union-attr]


def test_an_original_without_an_escape_character_gets_standard_separators() -> None:
    original = b"MSH|^~|APP|FAC|||20260101||ADT^A01|X\\1&2|P|2.4\rPID|1\r"
    reply = ack(original, "AE", text="a|b")
    assert reply.msh.field(2).raw == "^~\\&"
    assert reply.segment("MSA").value(2) == "X\\1&2"  # type: ignore[union-attr]
    assert reply.segment("MSA").value(3) == "a|b"  # type: ignore[union-attr]


# --- ERR ------------------------------------------------------------------------------------


def test_an_ae_in_v2_4_has_err_1_and_the_reason_in_msa_3() -> None:
    error = MappingError("PID segment missing", location="PID", code="100")
    reply = ack(ITK, "AE", error=error)
    assert reply.segment("MSA").raw == "MSA|AE|MH-A01-0001|PID segment missing"  # type: ignore[union-attr]
    assert reply.segment("ERR").raw == "ERR|PID^1^^100&Segment sequence error&HL70357"  # type: ignore[union-attr]


def test_an_ae_in_v2_5_has_location_code_severity_and_message() -> None:
    error = MappingError("trigger event A99 is not supported", location="MSH-9.2", code="201")
    reply = ack(V251, "AE", error=error)
    err = reply.segment("ERR")
    assert err is not None
    assert err.field(1).is_empty
    assert err.field(2).raw == "MSH^1^9^1^2"
    assert err.field(3).raw == "201^Unsupported event code^HL70357"
    assert err.value(4) == "E"
    assert err.value(8) == "trigger event A99 is not supported"
    assert reply.segment("MSA").value(3) == "trigger event A99 is not supported"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("location", "erl", "eld"),
    [
        ("PID-3[2]", "PID^1^3^2", "PID^1^3^101&Required field missing&HL70357"),
        ("PV1-3.4.1", "PV1^1^3^1^4^1", "PV1^1^3^101&Required field missing&HL70357"),
        ("PV1", "PV1^1", "PV1^1^^101&Required field missing&HL70357"),
        ("Encounter.status", "", "^^^101&Required field missing&HL70357"),
        (None, "", "^^^101&Required field missing&HL70357"),
    ],
)
def test_error_locations(location: str | None, erl: str, eld: str) -> None:
    error = MappingError("missing", location=location, code="101")
    assert ack(message("2.5"), "AE", error=error).segment("ERR").field(2).raw == erl  # type: ignore[union-attr]
    assert ack(message("2.4"), "AE", error=error).segment("ERR").field(1).raw == eld  # type: ignore[union-attr]


def test_v2_7_has_no_msa_3_and_keeps_the_reason_in_err_8() -> None:
    reply = ack(message("2.7"), "AR", text="service unavailable")
    assert reply.segment("MSA").raw == "MSA|AR|MSG-1"  # type: ignore[union-attr]
    assert reply.segment("ERR").value(8) == "service unavailable"  # type: ignore[union-attr]
    assert reply.segment("ERR").value(3) == "207"  # type: ignore[union-attr]


@pytest.mark.parametrize("code", ["AE", "AR", "CE", "CR"])
def test_every_negative_code_carries_an_err(code: AckCode) -> None:
    assert ack(ITK, code).segment("ERR") is not None


def test_text_given_overrides_the_error_reason() -> None:
    error = MappingError("internal detail", location="PID-3", code="101")
    reply = ack(ITK, "AE", error=error, text="say this")
    assert reply.segment("MSA").value(3) == "say this"  # type: ignore[union-attr]
    assert reply.segment("ERR").value(1, 4) == "101"  # type: ignore[union-attr]


# --- escaping -------------------------------------------------------------------------------

HOSTILE = "bad|value^x~y\\z&w\x0b\x1c\rMSH|^~\\&|FORGED\nERR|x"


@pytest.mark.parametrize("original", [ITK, V251, message("2.7")], ids=["2.4", "2.5.1", "2.7"])
def test_text_cannot_forge_a_field_segment_or_frame(original: bytes) -> None:
    raw = build_ack(
        original, "AE", now=NOW, control_id=HOSTILE, error=MappingError(HOSTILE, code="102")
    )
    frame(raw)  # no framing byte inside
    assert raw.count(b"\r") == 3
    reply = parse(raw)
    assert [s.name for s in reply.segments_all] == ["MSH", "MSA", "ERR"]
    assert reply.msh.value(10) == HOSTILE
    assert parse_ack(raw).text is not None
    assert HOSTILE in parse_ack(raw).text  # type: ignore[operator]


def test_header_values_of_the_original_are_re_escaped_not_copied() -> None:
    reply = ack(message(msh3="A\\F\\B\\E\\C"))
    assert reply.msh.value(5) == "A|B\\C"
    assert reply.msh.field(5).raw == "A\\F\\B\\E\\C"


def test_a_stray_line_joined_into_the_header_cannot_become_a_segment_of_the_ack() -> None:
    original = b"MSH|^~\\&|APP|FAC|R|F|20260101||ADT^A01|ID1\nnot a segment|P|2.4\rPID|1\r"
    assert [s.name for s in parse(original).segments_all] == ["MSH", "PID"]
    raw = build_ack(original, "AA", now=NOW, control_id="CB-1")
    assert [s.name for s in parse(raw).segments_all] == ["MSH", "MSA"]
    assert b"\n" not in raw


# --- a message without a readable header ----------------------------------------------------


@pytest.mark.parametrize("garbage", [b"", b"hello", b"PID|1||X\r", b"MSH", b"MSHabc"])
def test_an_unreadable_message_gets_a_minimal_ack_with_empty_msa_2(garbage: bytes) -> None:
    raw = build_ack(garbage, "AR", now=NOW, control_id="CB-9")
    reply = parse(raw)
    assert reply.msh.field(9).raw == "ACK^^ACK"
    assert reply.msh.value(10) == "CB-9"
    assert reply.msh.value(12) == "2.4"
    assert reply.segment("MSA").raw.startswith("MSA|AR||")  # type: ignore[union-attr]
    assert reply.segment("ERR").value(1, 4) == "100"  # type: ignore[union-attr]
    assert parse_ack(raw) == ParsedAck("AR", "", parse_ack(raw).text)


def test_a_minimal_ack_carries_the_error_given() -> None:
    error = MappingError("no usable field separator", location="MSH-1", code="102")
    reply = parse(build_ack(b"MSH^x", "AR", now=NOW, control_id="CB-9", error=error))
    assert reply.segment("ERR").field(1).raw == "MSH^1^1^102&Data type error&HL70357"  # type: ignore[union-attr]
    assert reply.segment("MSA").value(3) == "no usable field separator"  # type: ignore[union-attr]


def test_a_minimal_ack_is_strictly_valid_but_for_the_empty_msa_2() -> None:
    raw = build_ack(b"garbage", "AR", now=NOW, control_id="CB-9")
    with pytest.raises(ValidationError, match="MSA_2"):
        strict(raw)


# --- hl7apy reads what we build -------------------------------------------------------------


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.hl7")), ids=lambda p: p.stem)
@pytest.mark.parametrize("code", ["AA", "AE", "AR", "CA", "CE", "CR"])
def test_hl7apy_parses_and_strictly_validates_every_ack(fixture: Path, code: AckCode) -> None:
    error = MappingError("PID-3 has no identifier", location="PID-3[1]", code="101")
    raw = build_ack(fixture.read_bytes(), code, now=NOW, control_id="CB-1", error=error)
    parsed = strict(raw)
    original = parse(fixture.read_bytes())
    assert parsed.msa.msa_1.value == code  # type: ignore[attr-defined]
    assert parsed.msa.msa_2.value == original.msh.value(10)  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", ["2.5", "2.6", "2.7", "2.8"])
def test_hl7apy_strictly_validates_acks_of_later_versions(version: str) -> None:
    error = MappingError("missing", location="PID-3", code="101")
    strict(build_ack(message(version), "AE", now=NOW, control_id="CB-1", error=error))


# --- enhanced mode --------------------------------------------------------------------------


def test_itk_messages_are_in_original_mode() -> None:
    assert ack_mode(ITK) == (None, None)
    assert ack_mode(b"garbage") == (None, None)


@pytest.mark.parametrize(
    ("msh15", "msh16", "mode"),
    [
        ("AL", "NE", ("AL", "NE")),
        ("er", "", ("ER", None)),
        ("", "AL", (None, "AL")),
        ("SU", "XX", ("SU", "AL")),  # an unknown value is answered, not ignored
    ],
)
def test_ack_mode_reads_msh_15_and_16(
    msh15: str, msh16: str, mode: tuple[AckRequirement | None, AckRequirement | None]
) -> None:
    assert ack_mode(message(msh15=msh15, msh16=msh16)) == mode
    assert ack_mode(parse(message(msh15=msh15, msh16=msh16))) == mode


@pytest.mark.parametrize(
    ("accept", "outcome", "code"),
    [
        (None, "accepted", "AA"),
        (None, "error", "AE"),
        (None, "rejected", "AR"),
        ("AL", "accepted", "CA"),
        ("AL", "error", "CE"),
        ("AL", "rejected", "CR"),
        ("NE", "accepted", None),
        ("NE", "rejected", None),
        ("ER", "accepted", None),
        ("ER", "error", "CE"),
        ("ER", "rejected", "CR"),
        ("SU", "accepted", "CA"),
        ("SU", "error", None),
        ("SU", "rejected", None),
    ],
)
def test_ack_code_follows_the_accept_acknowledgement_rules(
    accept: AckRequirement | None, outcome: Outcome, code: AckCode | None
) -> None:
    assert ack_code((accept, "AL"), outcome) == code


def test_an_ack_of_an_enhanced_mode_message_asks_for_no_acknowledgement_itself() -> None:
    reply = ack(message(msh15="AL", msh16="AL"), "CA")
    assert (reply.msh.value(15), reply.msh.value(16)) == ("NE", "NE")
    assert ack(ITK).msh.field(15).is_empty


# --- reading answers ------------------------------------------------------------------------


def test_parse_ack_reads_our_own_acks_back() -> None:
    error = MappingError("PID segment missing", location="PID", code="100")
    assert parse_ack(build_ack(ITK, "AA", now=NOW, control_id="X")) == ParsedAck(
        "AA", "MH-A01-0001", None
    )
    assert parse_ack(build_ack(V251, "AE", now=NOW, control_id="X", error=error)) == ParsedAck(
        "AE", "ACUTE-A01-7781", "PID segment missing; 100 Segment sequence error"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"MSH|^~\\&|A|B|C|D|1||ACK|9|P|2.3\rMSA|AA|MSG1\r", ("AA", "MSG1", None)),
        (b"MSH|^~\\&|A|B|C|D|1||ACK|9|P|2.3\rMSA|ae|MSG1|Bad PID\r", ("AE", "MSG1", "Bad PID")),
        (
            b"\x0bMSH|^~\\&|A|B|C|D|1||ACK|9|P|2.5\rMSA|AR|MSG1\r"
            b"ERR||PID^1^3|101^Required field missing^HL70357|E|||Check PID-3\x1c\r",
            ("AR", "MSG1", "Check PID-3; 101 Required field missing"),
        ),
        (b"MSH|^~\\&|A|B|C|D|1||ACK|9|P|2.4\nMSA|CA|MSG1\n", ("CA", "MSG1", None)),
    ],
)
def test_parse_ack_reads_other_systems_acks(raw: bytes, expected: tuple[str, str, str]) -> None:
    assert parse_ack(raw) == expected


@pytest.mark.parametrize(
    ("raw", "location"),
    [
        (b"MSH|^~\\&|A|B|C|D|1||ACK|9|P|2.4\r", "MSA"),
        (b"MSH|^~\\&|A|B|C|D|1||ACK|9|P|2.4\rMSA|OK|1\r", "MSA-1"),
        (b"HTTP/1.1 400 Bad Request\r\n", "MSH"),
    ],
)
def test_parse_ack_refuses_what_is_not_an_ack(raw: bytes, location: str) -> None:
    with pytest.raises(MappingError) as caught:
        parse_ack(raw)
    assert caught.value.location == location


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="acknowledgement code"):
        build_ack(ITK, "OK", now=NOW, control_id="X")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="time zone"):
        build_ack(ITK, "AA", now=datetime(2026, 1, 1), control_id="X")
