"""Every crash or hang the fuzz targets found, as a plain test with its minimised input.

Each test names the target that found it; docs/reliability.md ("Fuzzing") lists them with the
commit that fixed the product.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.mllp.framing import MllpDecoder, frame
from engine.config.base import ConfigError
from engine.config.load import MAX_DEPTH, MAX_NODES, parse_config
from mappings.errors import MappingError
from mappings.fhir.inbound import map_fhir
from mappings.hl7v2.ack import build_ack, parse_ack
from mappings.hl7v2.inbound import map_hl7v2
from mappings.hl7v2.reader import parse
from mappings.inbound import map_message
from mappings.profile import FeedProfile

FIXTURES = Path(__file__).parents[1] / "fixtures" / "hl7v2"

# --- mllp_decoder -----------------------------------------------------------------------------


def test_mllp_discarded_count_does_not_depend_on_how_the_stream_is_read() -> None:
    """An abandoned frame longer than the limit was counted whole when it came in one read
    but only up to the limit when it came in several (found: mllp_decoder, limit 3)."""
    stream = b"\x0bpartial\x0bMSH|whole\x1c\r"
    whole, bytewise = MllpDecoder(3), MllpDecoder(3)
    frames = whole.feed(stream)
    for i in range(len(stream)):
        frames += bytewise.feed(stream[i : i + 1])
    assert whole.discarded == bytewise.discarded == len(b"\x0bpartial")
    assert [(f.payload, f.oversized) for f in frames] == [(b"MSH", True)] * 2


# --- hl7v2_reader -----------------------------------------------------------------------------


def test_hl7_line_feed_escape_with_a_superscript_count() -> None:
    """``\\.sp²\\``: `str.isdigit` took ``²`` and `int` refused it with ValueError, so reading
    the value (mapping, the ACK's echo) crashed (found: hl7v2_reader)."""
    message = parse(b"MSH|^~\\&|A\\.sp\xc2\xb2\\B|F\r")
    assert message.msh.field(3).text == "A\nB"


def test_hl7_line_feed_escape_with_a_huge_count() -> None:
    """``\\.sp`` with thousands of digits: `int` refuses over 4,300 digits (ValueError); the
    count is capped at 20 lines whatever its length."""
    message = parse(b"MSH|^~\\&|\\.sp" + b"9" * 5000 + b"\\|F\r")
    assert message.msh.field(3).text == "\n" * 20


def test_hl7_control_character_as_a_separator_is_refused() -> None:
    """MSH-2 ``^~<FS>&`` declared the MLLP end byte as the escape character, and the ACK,
    written with the message's own separators, held it: the listener could not frame its
    answer (found: hl7_ack). A separator must be a printable character."""
    for header in (b"MSH|^~\x1c&|", b"MSH|^~\\\x0b|", b"MSH|^\x01\\&|", b"MSH\x05^~\\&\x05"):
        with pytest.raises(MappingError) as caught:
            parse(header + b"A|B\r")
        assert (caught.value.location, caught.value.code) in {("MSH-2", "102"), ("MSH-1", "102")}


def test_hl7_ack_of_a_message_declaring_the_end_byte_can_be_framed() -> None:
    raw = b"MSH|^~\x1c&|EPR|RXT|R|R|20260202104500||ADT^A03|FZ1|P|2.4\rPID|1||x\r"
    ack = build_ack(raw, "AE", now=datetime(2026, 12, 4, tzinfo=UTC), control_id="CB1")
    assert frame(ack).count(b"\x1c") == 1
    assert parse_ack(ack).code == "AE"


def test_hl7_ack_keeps_its_fields_when_the_charset_cannot_write_a_character() -> None:
    """CP1252 has no character for byte 0x81: the reader decodes it as U+FFFD, and the ACK,
    encoded back to CP1252 with errors="replace", wrote it as ``?``; with ``?`` as the field
    separator that split MSH-5 and shifted every later field (MSH-9 no longer ACK, MSA-2 off
    by one). Found: hl7_ack."""
    fields = ["MSH", "^~\\&", "A\x81B", "F", "R", "F", "2026", "", "ADT^A01", "X1", "P", "2.4"]
    raw = "?".join([*fields, "", "", "", "", "", "CP1252"]).encode("latin-1") + b"\r"
    ack = build_ack(raw, "AA", now=datetime(2026, 12, 4, tzinfo=UTC), control_id="CB1")
    read = parse(ack)
    assert (read.msh.value(5), read.msh.value(9), read.msh.value(10)) == ("A?B", "ACK", "CB1")
    assert parse_ack(ack).control_id == "X1"


def test_hl7_ack_timestamp_when_plus_is_the_field_separator() -> None:
    """MSH-1 ``+``: the ACK's MSH-7 (``...+0000``) was written unescaped, its ``+`` split it
    and every later field moved one place (MSH-9 read as ``0000``). Found: hl7_ack, from
    ``MSH+$%\\*#EPR...``, a header with no further field."""
    ack = build_ack(b"MSH+$%\\*#EPR", "AA", now=datetime(2026, 12, 4, tzinfo=UTC), control_id="C")
    read = parse(ack)
    assert (read.msh.value(7), read.msh.value(9), read.msh.value(10)) == (
        "20261204000000+0000",
        "ACK",
        "C",
    )


def test_hl7_ack_declares_the_charset_it_is_written_in() -> None:
    """A line break inside the header left MSH-18 (8859/2) off its first line: the reader read
    the message as UTF-8, the ACK was written in UTF-8 but echoed ``8859/2``, so a reader
    of the ACK decoded it wrongly (found: hl7_ack, as an ACK our reader refused)."""
    raw = "MSH|^~\\&|Aé|F\ncont" + "|x" * 13 + "|8859/2\rEVN|A01\r"
    original = parse(raw.encode("utf-8"))
    assert (original.encoding.charset, original.msh.value(18)) == ("utf-8", "8859/2")
    ack = build_ack(
        raw.encode("utf-8"), "AA", now=datetime(2026, 12, 4, tzinfo=UTC), control_id="C"
    )
    read = parse(ack)
    assert (read.encoding.charset, read.msh.value(5)) == ("utf-8", "Aé")


# --- hl7v2_mapping ----------------------------------------------------------------------------


def test_map_message_reads_hl7_after_any_number_of_blank_bytes() -> None:
    """A BOM and 73 spaces before MSH: the reader skipped them, but `detect_format` looked
    only at the first 64 bytes and refused the message as "empty" (found: hl7v2_mapping)."""
    raw = b"\xef\xbb\xbf" + b" " * 73 + (FIXTURES / "mh_a03_discharge.hl7").read_bytes()
    profile = FeedProfile(feed="fuzz")
    assert map_message(raw, profile) == map_hl7v2(raw, profile)
    with pytest.raises(MappingError, match="empty message"):
        map_message(b"\r\n" * 100, profile)


# --- fhir_mapping -----------------------------------------------------------------------------


def test_fhir_contained_resource_of_an_unknown_type_is_a_content_error() -> None:
    """fhir.resources looked up a contained resource's type in its table without checking it
    was there: KeyError, which map_message reported as a 207 internal error instead of
    naming the element (found: fhir_mapping)."""
    doc = (
        b'{"resourceType": "Encounter", "status": "finished", "class": {"code": "IMP"},'
        b' "contained": [{"resourceType": "Locat.on"}]}'
    )
    profile = FeedProfile(feed="fuzz")
    with pytest.raises(MappingError) as caught:
        map_fhir(doc, profile)
    assert (caught.value.location, caught.value.code) == (
        "Encounter.contained[0].resourceType",
        "103",
    )
    assert caught.value.reason == "not a FHIR R4 resource type: Locat.on"
    with pytest.raises(MappingError) as again:
        map_message(doc, profile)
    assert again.value.code == "103"


# --- config_loader ----------------------------------------------------------------------------


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env={})
    return caught.value.problems


def test_config_alias_inside_its_own_anchor_is_a_precise_error() -> None:
    """``&a [*a]`` is a list holding itself: the environment substitution recursed until
    RecursionError (found: config_loader)."""
    assert _problems("sources: &s [{name: x, profile: *s}]\n") == [
        f"(top level): settings nested deeper than {MAX_DEPTH} levels (or a YAML alias used"
        " inside its own anchor)"
    ]


def test_config_nested_too_deep_is_a_precise_error() -> None:
    """Thousands of nested flow lists: PyYAML's composer itself raised RecursionError."""
    assert _problems("a: " + "[" * 3000 + "]" * 3000) == [
        f"(top level): settings nested deeper than {MAX_DEPTH} levels"
    ]


def test_config_alias_bomb_is_refused_at_once() -> None:
    """Nine aliases of nine aliases, eight levels deep, stand for 43 million values: the
    loader walked them all (about 50 s here) before refusing the file (found: config_loader,
    as a -timeout hang)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    problems = _problems("\n".join(lines) + "\n")  # refused before the walk: no hang
    assert problems == [
        f"(top level): more than {MAX_NODES:,} values (a YAML alias counts each time it is used)"
    ]


def test_config_aliases_within_the_limits_still_work() -> None:
    text = (
        "amqp: {url: 'amqp://localhost/'}\n"
        "retry_policies:\n  default: &quick {quick_attempts: 2, quick_wait: 100ms}\n"
        "  also-quick: *quick\n"
        "sources: [{name: a}]\ndestinations: [{name: e, type: amqp, exchange: x}]\n"
        "routes: [{name: r, to: [e]}]\n"
    )
    config = parse_config(text, env={})
    assert config.retry_policies["also-quick"] == config.retry_policies["default"]


@pytest.mark.parametrize(
    "lease", ["99999999999999999999999d", "1.0e+400", ".inf", "-.inf", "100001d"]
)
def test_config_duration_too_long_is_a_precise_error(lease: str) -> None:
    """A duration beyond what Python's timedelta holds raised OverflowError out of the loader
    (found: config_loader, the seeded short run)."""
    text = (
        "amqp: {url: 'amqp://localhost/'}\n"
        f"delivery: {{lease: {lease}}}\n"
        "sources: [{name: a}]\ndestinations: [{name: e, type: amqp, exchange: x}]\n"
        "routes: [{name: r, to: [e]}]\n"
    )
    assert _problems(text) == ["delivery.lease: a duration of at most 100000d"]
