"""Fuzz target: the HL7 v2 ACK builder (`mappings.hl7v2.ack.build_ack`) and `ack_mode`.

Input: one byte of options (the code AA/AE/AR/CA/CE/CR, whether there is a `MappingError`
and which 0357 code it carries, whether there is a text), then the original message, then,
after NUL bytes, the control id, the error's location and the text.

Crash: any exception (an ACK is owed for any bytes a sender sends); an ACK that holds an MLLP
start or end byte, that our reader cannot parse, or that holds anything but MSH, MSA and (for a
negative code, only then) ERR: a forged segment; MSA-1 not the code; MSH-10 not the control
id; or MSA-2 not the original's MSH-10 (empty when the original's header cannot be read).
"""

from __future__ import annotations

from datetime import UTC, datetime

from tests.fuzz.targets._support import check, instrumented, run

with instrumented(__name__ == "__main__"):
    from adapters.mllp.framing import frame
    from mappings.errors import MappingError
    from mappings.hl7v2.ack import AckCode, ack_code, ack_mode, build_ack, parse_ack
    from mappings.hl7v2.elements import Hl7Message
    from mappings.hl7v2.reader import parse

_CODES: tuple[AckCode, ...] = ("AA", "AE", "AR", "CA", "CE", "CR")
_ERROR_CODES = ("100", "101", "102", "103", "200", "207", "", "X|^~\\&\r")
_NOW = datetime(2026, 12, 4, 15, 45, tzinfo=UTC)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    options, parts = data[0], data[1:].split(b"\x00", 3)
    parts += [b""] * (4 - len(parts))
    message, control_id = parts[0], _text(parts[1]) or "CB1"
    code = _CODES[options % 6]
    error = None
    if options & 0x08:
        error = MappingError(
            _text(parts[3]) or "bad", location=_text(parts[2]) or None,
            code=_ERROR_CODES[options >> 5],
        )  # fmt: skip
    text = _text(parts[3]) if options & 0x10 else None
    mode = ack_mode(message)
    for outcome in ("accepted", "error", "rejected"):
        ack_code(mode, outcome)
    ack = build_ack(message, code, now=_NOW, control_id=control_id, error=error, text=text)
    _check_ack(ack, message, code, control_id)


def _original(message: bytes) -> Hl7Message | None:
    try:
        return parse(message)
    except MappingError:
        return None


def _check_ack(ack: bytes, message: bytes, code: AckCode, control_id: str) -> None:
    frame(ack)  # raises ValueError if a start or end byte is in it
    read = parse(ack)
    names = [segment.name for segment in read.segments_all]
    negative = code in ("AE", "AR", "CE", "CR")
    check(names == (["MSH", "MSA", "ERR"] if negative else ["MSH", "MSA"]), f"segments {names}")
    check(not read.warnings or all("MSH-18" in w for w in read.warnings), "ACK read with warnings")
    parsed = parse_ack(ack)
    check(parsed.code == code, "MSA-1 is not the code")
    original = _original(message)
    charset = read.encoding.charset
    check(read.msh.value(9) == "ACK", "MSH-9 is not ACK")
    if _fits(control_id, charset):
        check(read.msh.value(10) == control_id, "MSH-10 is not the control id")
    if original is None:
        check(parsed.control_id == "", "MSA-2 is not empty for an unreadable original")
        return
    echoed = original.msh.value(10).strip()
    if _fits(echoed, charset):
        check(parsed.control_id == echoed, "MSA-2 does not echo the original MSH-10")


def _fits(text: str, charset: str) -> bool:
    try:
        text.encode(charset)
    except UnicodeEncodeError:
        return False
    return "\ufffd" not in text


if __name__ == "__main__":
    run(TestOneInput)
