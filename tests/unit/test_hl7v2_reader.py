import os
from pathlib import Path

import pytest

from mappings.errors import MappingError
from mappings.hl7v2.reader import parse

MSH = "MSH|^~\\&|SENDER|RXT|ROUTE|ROUTE|20260114093000||ADT^A01^ADT_A01|MSG1|P|2.4"
PID = "PID|1||RXT1^^^RXT^MR~9434765919^^^NHS^NH||TESTER^ONE^^^MX||19800101|2"
PV1 = "PV1|1|I|RXT^WARD7^BED3^RXT01"


def segments(text: str | bytes) -> list[str]:
    return [s.name for s in parse(text).segments_all]


@pytest.mark.parametrize("separator", ["\r", "\n", "\r\n"])
def test_cr_lf_and_crlf_all_separate_segments(separator: str) -> None:
    message = parse(separator.join([MSH, PID, PV1]) + separator)
    assert [s.name for s in message.segments_all] == ["MSH", "PID", "PV1"]
    assert message.segment("PV1") is not None
    assert message.segment("PV1").value(3, 2) == "WARD7"  # type: ignore[union-attr]


def test_blank_lines_and_mllp_framing_bytes_are_ignored() -> None:
    raw = f"\x0b{MSH}\r\r\n\r{PID}\r \r{PV1}\r\x1c\r"
    assert segments(raw) == ["MSH", "PID", "PV1"]


def test_a_missing_final_terminator_is_accepted() -> None:
    assert segments(f"{MSH}\r{PID}") == ["MSH", "PID"]
    assert parse(f"{MSH}\r{PID}").segment("PID").value(8) == "2"  # type: ignore[union-attr]


@pytest.mark.parametrize("raw", [f"\ufeff{MSH}\r{PID}", f"\ufeff{MSH}\r{PID}".encode()])
def test_a_utf8_byte_order_mark_is_skipped(raw: str | bytes) -> None:
    assert segments(raw) == ["MSH", "PID"]


def test_msh_1_is_the_field_separator_and_msh_2_the_encoding_characters() -> None:
    msh = parse(MSH).msh
    assert msh.field(1).text == "|"
    assert msh.field(2).text == "^~\\&"
    assert msh.field(2).component(1).text == "^~\\&"  # read literally, not split
    assert msh.value(3) == "SENDER"
    assert msh.value(9, 2) == "A01"
    assert msh.value(12) == "2.4"


def test_repetitions_components_and_subcomponents_count_from_one() -> None:
    pid = parse(f"{MSH}\rPID|1||A^^^R0A&1.2.3&ISO^MR~B^^^NHS^NH").segment("PID")
    assert pid is not None
    reps = pid.field(3).repetitions()
    assert [r.value(1) for r in reps] == ["A", "B"]
    assert reps[0].component(4).subcomponent(2).text == "1.2.3"
    assert [s.text for s in reps[0].component(4).subcomponents()] == ["R0A", "1.2.3", "ISO"]
    assert reps[0].value(4) == "R0A"  # value() reads the first subcomponent
    assert pid.field(3).component(5).text == "MR"  # field access reads the first repetition


def test_reading_past_the_end_gives_empty_values() -> None:
    pid = parse(f"{MSH}\r{PID}").segment("PID")
    assert pid is not None
    assert pid.field(99).is_empty
    assert pid.value(5, 9, 9) == ""
    assert pid.field(3).repetitions()[1].component(12).text == ""
    assert len(pid) == 8


def test_field_zero_is_not_an_hl7_field() -> None:
    pid = parse(f"{MSH}\r{PID}").segment("PID")
    assert pid is not None
    with pytest.raises(ValueError, match="numbered from 1"):
        pid.field(0)


def test_explicit_null_is_told_apart_from_empty() -> None:
    pv1 = parse(f'{MSH}\rPV1|1||""|X^""^').segment("PV1")
    assert pv1 is not None
    deleted, missing = pv1.field(3), pv1.field(2)
    assert deleted.is_null
    assert not deleted.is_empty
    assert not deleted
    assert missing.is_empty
    assert not missing.is_null
    assert not missing
    assert deleted.text == ""
    assert missing.text == ""
    assert pv1.field(4).component(2).is_null
    assert pv1.field(4).component(3).is_empty
    assert pv1.value(4, 2) == ""


@pytest.mark.parametrize(
    ("escaped", "decoded"),
    [
        ("A\\F\\B", "A|B"),
        ("A\\S\\B", "A^B"),
        ("A\\T\\B", "A&B"),
        ("A\\R\\B", "A~B"),
        ("A\\E\\B", "A\\B"),
        ("O\\X27\\TESTER", "O'TESTER"),
        ("caf\\XC3A9\\", "café"),  # hex bytes decoded in the message's character set
        ("one\\.br\\two", "one\ntwo"),
        ("one\\.sp 2\\two", "one\n\ntwo"),
        ("\\H\\bold\\N\\", "bold"),
        ("\\.in+4\\indented", "indented"),
        ("\\Zlocal\\x", "x"),
        ("C:\\temp\\x", "C:\\temp\\x"),  # unknown escape: kept as written
        ("trailing\\r", "trailing\\r"),  # unterminated: kept as written
        ("\\X4\\", "\\X4\\"),  # half a byte: not hex, kept
    ],
)
def test_escape_sequences_are_decoded_on_access(escaped: str, decoded: str) -> None:
    pid = parse(f"{MSH}\rPID|1||{escaped}").segment("PID")
    assert pid is not None
    assert pid.field(3).raw == escaped
    assert pid.value(3) == decoded


def test_escaped_separators_do_not_split() -> None:
    pid = parse(f"{MSH}\rPID|1||A\\S\\B^C").segment("PID")
    assert pid is not None
    assert pid.value(3, 1) == "A^B"
    assert pid.value(3, 2) == "C"


def test_non_default_encoding_characters_are_used_as_declared() -> None:
    raw = "MSH#@!/+#S#R#####ADT@A01#1#P#2.4\rPID#1##A@@@R0A+1.2@MR!B@@@NHS@NH##O/S/K@ALPHA"
    message = parse(raw)
    pid = message.segment("PID")
    assert pid is not None
    assert message.msh.value(9, 2) == "A01"
    assert [r.value(1) for r in pid.field(3).repetitions()] == ["A", "B"]
    assert pid.field(3).component(4).subcomponent(2).text == "1.2"
    assert pid.value(5, 1) == "O@K"
    assert pid.value(5, 2) == "ALPHA"


def test_three_encoding_characters_in_standard_order_keep_their_standard_roles() -> None:
    # Seen in the wild as "^\&": the "~" dropped, so "\" is still the escape character.
    message = parse("MSH|^\\&|S|F|||20000725||ADT^A01|1|P|2.3\rPID|1||A~B^X\\T\\Y")
    pid = message.segment("PID")
    assert pid is not None
    assert message.encoding.repetition is None
    assert pid.field(3).repetitions()[0].value(1) == "A~B"
    assert pid.value(3, 2) == "X&Y"
    assert any("MSH-2" in w for w in message.warnings)


def test_a_doubled_backslash_in_msh_2_is_one_escape_character() -> None:
    message = parse("MSH|^~\\\\&|S|F|||20120912||ADT^A01|1|T|2.6\rPID|1||A\\T\\B~C")
    pid = message.segment("PID")
    assert pid is not None
    assert message.encoding.escape == "\\"
    assert message.encoding.subcomponent == "&"
    assert pid.value(3) == "A&B"
    assert message.warnings == ("MSH-2: doubled backslash read as one escape character",)


def test_msh_18_latin_1_bytes_are_decoded_as_latin_1() -> None:
    raw = f"{MSH}||||||8859/1\rPID|1||X||ZO\xcb^CAF\\XE9\\".encode("latin-1")
    message = parse(raw)
    pid = message.segment("PID")
    assert pid is not None
    assert message.encoding.charset == "latin-1"
    assert pid.value(5, 1) == "ZOË"
    assert pid.value(5, 2) == "CAFé"
    assert message.warnings == ()


@pytest.mark.parametrize("declared", ["", "ASCII", "UNICODE UTF-8"])
def test_utf8_is_read_for_empty_ascii_and_unicode_charsets(declared: str) -> None:
    raw = f"{MSH}||||||{declared}\rPID|1||X||ZOË".encode()
    pid = parse(raw).segment("PID")
    assert pid is not None
    assert pid.value(5) == "ZOË"


def test_undecodable_bytes_are_replaced_with_a_warning_never_a_crash() -> None:
    raw = f"{MSH}\rPID|1||X||ZO".encode() + b"\xcb\xff"
    message = parse(raw)
    pid = message.segment("PID")
    assert pid is not None
    assert pid.value(5) == "ZO\ufffd\ufffd"
    assert message.warnings == ("MSH-18: bytes that are not utf-8 were replaced",)


def test_an_unsupported_charset_is_read_as_utf8_with_a_warning() -> None:
    message = parse(f"{MSH}||||||ISO IR87\rPID|1")
    assert message.encoding.charset == "utf-8"
    assert message.warnings == ("MSH-18: character set 'ISO IR87' is not supported; read as UTF-8",)


def test_a_line_that_is_not_a_segment_is_joined_to_the_previous_one() -> None:
    message = parse(f"{MSH}\rOBX|1|TX|||first line\nsecond line\r{PV1}")
    obx = message.segment("OBX")
    assert obx is not None
    assert obx.value(5) == "first line\nsecond line"
    assert [s.name for s in message.segments_all] == ["MSH", "OBX", "PV1"]
    assert message.warnings == ("line 3: not a segment; joined to OBX",)


@pytest.mark.parametrize("end", ["\r", "\n", "\r\n"])
def test_line_breaks_joins_and_blank_lines_read_alike_under_every_line_ending(end: str) -> None:
    plain = parse(end.join([MSH, PID, PV1]))
    assert plain.names == ("MSH", "PID", "PV1")
    assert plain.warnings == ()
    broken = parse(end.join([MSH, "OBX|1|TX|||first line", "second line", "", PV1, ""]))
    assert broken.names == ("MSH", "OBX", "PV1")
    assert broken.segment("OBX").value(5) == "first line\nsecond line"  # type: ignore[union-attr]
    assert broken.warnings == ("line 3: not a segment; joined to OBX",)
    with pytest.raises(MappingError, match="MSH segment repeated at line 3"):
        parse(end.join([MSH, PID, MSH]))


def test_a_segment_is_one_object_however_it_is_reached() -> None:
    message = parse(f"{MSH}\rNK1|1|FIRST\rPID|1\rNK1|2|SECOND")
    nk1 = message.segment("NK1")
    assert nk1 is message.segments("NK1")[0] is message.segments_all[1]
    assert message.msh is message.segments_all[0]
    assert message.names == ("MSH", "NK1", "PID", "NK1")


def test_segments_returns_every_occurrence_and_segment_the_first() -> None:
    message = parse(f"{MSH}\rNK1|1|FIRST\rNK1|2|SECOND")
    assert [s.value(2) for s in message.segments("NK1")] == ["FIRST", "SECOND"]
    assert message.segment("NK1").value(2) == "FIRST"  # type: ignore[union-attr]
    assert message.segment("ZU8") is None


@pytest.mark.parametrize(
    ("raw", "location", "code"),
    [
        (b"", "MSH", "100"),
        ("  \r\n\x0b\x1c ", "MSH", "100"),
        ("hello, world", "MSH", "100"),
        ('{"resourceType": "Bundle"}', "MSH", "100"),
        (f"{PID}\r{MSH}", "MSH", "100"),
        ("BHS|^~\\&|S\rMSH|^~\\&|S\rBTS|1", "BHS", "100"),
        ("FHS|^~\\&|S", "FHS", "100"),
        ("MSH", "MSH-1", "102"),
        ("MSHA^~\\&|S", "MSH-1", "102"),
        ("MSH||S|F", "MSH-2", "102"),
        ("MSH|^^\\&|S", "MSH-2", "102"),
        (f"{MSH}\r{PID}\r{MSH}\r{PID}", "MSH", "100"),
        (b"\x00\x01\x02\xff\xfe", "MSH", "100"),
    ],
)
def test_input_that_is_not_one_hl7_message_is_rejected_with_a_location(
    raw: str | bytes, location: str, code: str
) -> None:
    with pytest.raises(MappingError) as caught:
        parse(raw)
    assert caught.value.location == location
    assert caught.value.code == code


def _messages_to_read() -> list[bytes]:
    """The HL7 v2 fixtures and corpus files (when the corpus is there), and messages with
    every kind of value the reader's shortcuts must not misread: escapes, subcomponents,
    explicit nulls and repetitions, in segments read and unread, MSH included."""
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "hl7v2"
    found = [p.read_bytes() for p in sorted(fixtures.glob("*.hl7"))]
    corpus = Path(
        os.environ.get("CAREBRIDGE_CORPUS")
        or Path(__file__).resolve().parents[3] / "shared" / "corpus"
    )
    found += [p.read_bytes() for p in sorted(corpus.rglob("*.hl7"))]
    found += [
        f"{MSH}\r{PID}\r{PV1}".encode(),
        f'{MSH}|||||UNICODE UTF-8\rPID|1||A\\T\\B^^^X&Y&Z^MR~""||""^\\S\\Y||||\r'.encode(),
        b'MSH|^~\\&|S&1|F\\E\\|R|R|20260101||ADT^A01|1|P|2.4\rEVN|A01|""\rPV1|1|I|^W&x^B',
        b"MSH|^~\\&#|S|F|||20260101||ADT^A01|1|P|2.7\rPID|||1^^^&2.16.840.1.113883.2.1.4.1&ISO",
        b"MSH|!@$%|S!a@b|F$c|||2026||ADT!A01|1|P|2.4\rPID|1||X!!!Y@Z$q%Fr!!!NHS",
        b'MSH|^~\\&\rPID|1||\\X41\\^a\\.br\\b~2^""^&""',
    ]
    return found


def test_every_value_read_agrees_with_the_element_tree() -> None:
    # `Segment.value` and `Repetition.value` take shortcuts (a value with nothing to split or
    # decode is returned as is); the element tree (`field`, `component`, `subcomponent`,
    # `text`) takes none. Every field, component and subcomponent of every message must read
    # the same both ways.
    checked = 0
    for raw in _messages_to_read():
        try:
            message = parse(raw)
        except MappingError:
            continue  # batches and the like: nothing to read
        for segment in message.segments_all:
            for n in range(1, len(segment) + 2):
                field = segment.field(n)
                for index, rep in enumerate(field.repetitions()):
                    components = rep.components()
                    for c in range(1, len(components) + 2):
                        parts = (
                            len(components[c - 1].subcomponents()) if c <= len(components) else 0
                        )
                        for s in range(1, parts + 2):
                            expected = rep.component(c).subcomponent(s).text
                            assert rep.value(c, s) == expected, (segment.name, n, c, s)
                            if index == 0:
                                assert segment.value(n, c, s) == expected, (segment.name, n, c, s)
                            checked += 1
    assert checked > 5_000
