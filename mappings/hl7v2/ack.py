"""HL7 v2 acknowledgements: the ACK a listener answers with, and reading the one a destination
sends back.

`build_ack` is a plain string builder, not hl7apy: one hl7apy ACK took about 2.9 ms here (about
350 a second per core, the whole budget of a stop-and-wait MLLP link), and hl7apy's ``to_er7``
lets a CR inside a value through (text ``"a\\rPID|..."`` becomes a forged segment) and leaves a
``^`` in a text field unescaped. Here every value goes through
`mappings.hl7v2.er7.escape`; the tests parse every kind of ACK built with hl7apy's parser.

The ACK (`build_ack`):

- MSH: the original's separators (the standard ``|^~\\&`` when the original did not declare all
  four encoding characters, since text cannot be escaped without them, or its character set
  cannot write one of them); sender and receiver swapped (MSH-3/4 from the original MSH-5/6
  and the other way round); MSH-7 now in UTC; MSH-9 ``ACK^<trigger>^ACK`` (``ACK^<trigger>``
  before v2.3.1, ``ACK`` in v2.1); MSH-10 the caller's control id; MSH-11 and MSH-12 as the
  original's (``P`` and ``2.4`` when absent); MSH-18 the original's when it names the
  character set the ACK is written in (the one the message was read in), else that set's
  HL7 name; MSH-15/16 ``NE`` when the original is in enhanced mode, so nobody acknowledges
  an acknowledgement. A character the set cannot write is written ``?``.
- MSA-1 the code, MSA-2 the original MSH-10, MSA-3 the text (up to v2.6; withdrawn in v2.7).
- ERR, on every negative code (AE, AR, CE, CR), carrying the HL7 table 0357 code of the
  `MappingError` (207 "application internal error" without one) and where it was found:
  v2.5 and later: ERR-2 location ``segment^1^field[^repetition^component^subcomponent]``,
  ERR-3 ``code^text^HL70357``, ERR-4 severity ``E``, ERR-8 the reason;
  v2.4 and earlier: ERR-1 ``segment^1^field^code&text&HL70357``, the reason in MSA-3.
- A message too broken to have a readable MSH gets a minimal ACK: standard separators, no
  sender or receiver, ``ACK``, v2.4, an empty MSA-2 (there is no control id to echo), the
  caller's code (the engine sends AR: the sender cannot fix the content of a message nobody
  could read), and an ERR (100 "segment sequence error" unless an error says otherwise).
  MSH-9 is ``ACK^^ACK``; MSA-2 is required by the standard, so a strict validator flags it.

Enhanced acknowledgement mode (MSH-15 accept / MSH-16 application acknowledgement; ITK
marks both "not supported", so NHS feeds leave them empty):

- MSH-15 empty: original mode. One answer per message, AA/AE/AR, always sent.
- MSH-15 valued: the answer is a commit acknowledgement, CA/CE/CR, sent as MSH-15 asks (AL
  always, NE never, ER only CE/CR, SU only CA; an unknown value is read as AL: answering is
  safer than leaving a sender waiting). CA means committed to the broker, CE that the content
  check failed and nothing was kept, CR that the message was refused or could not be committed.
- MSH-16: Carebridge originates no application acknowledgement. It has no return channel to a
  sender other than the connection's reply, and the commit acknowledgement is its last word.

`ack_mode` reads MSH-15/16 and `ack_code` turns an outcome into the code to send, or None for
"send nothing" (the listener then answers with no bytes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Literal, NamedTuple, cast

from mappings.errors import MappingError
from mappings.hl7v2.elements import Encoding, Field, Hl7Message, Segment
from mappings.hl7v2.er7 import STANDARD_ENCODING, escape, format_utc
from mappings.hl7v2.reader import charset_name, codec_of, parse

__all__ = [
    "AckCode",
    "AckRequirement",
    "Outcome",
    "ParsedAck",
    "ack_code",
    "ack_mode",
    "build_ack",
    "parse_ack",
]

AckCode = Literal["AA", "AE", "AR", "CA", "CE", "CR"]
AckRequirement = Literal["AL", "NE", "ER", "SU"]
Outcome = Literal["accepted", "error", "rejected"]
"""accepted: committed; error: the content check failed; rejected: refused or not committed."""

_CODES: frozenset[str] = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})
_REQUIREMENTS: dict[str, AckRequirement] = {"AL": "AL", "NE": "NE", "ER": "ER", "SU": "SU"}
_NEGATIVE = frozenset({"AE", "AR", "CE", "CR"})
_ORIGINAL: dict[Outcome, AckCode] = {"accepted": "AA", "error": "AE", "rejected": "AR"}
_COMMIT: dict[Outcome, AckCode] = {"accepted": "CA", "error": "CE", "rejected": "CR"}

# HL7 table 0357, message error condition codes.
_ERROR_TEXT = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "104": "Value too long",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}
_LOCATION = re.compile(r"([A-Z][A-Z0-9]{2})(?:-(\d+)(?:\[(\d+)\])?(?:\.(\d+)(?:\.(\d+))?)?)?")
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
_DEFAULT_VERSION = "2.4"


class ParsedAck(NamedTuple):
    """What a destination answered: MSA-1, MSA-2 and any human-readable text (MSA-3, ERR).

    `text` is the destination's own words and may quote patient data: store it, don't log it.
    """

    code: AckCode
    control_id: str
    text: str | None


def build_ack(
    message: bytes | Hl7Message,
    code: AckCode,
    *,
    now: datetime,
    control_id: str,
    error: MappingError | None = None,
    text: str | None = None,
) -> bytes:
    """The acknowledgement of `message` (see the module docstring for its layout).

    `text` is the human-readable reason (default: the error's reason); `now` must be aware.
    The bytes are in the original's character set, with CR after every segment, unframed.
    """
    if code not in _CODES:
        raise ValueError(f"{code!r} is not an acknowledgement code")
    original = _readable(message)
    reason = text if text is not None else error.reason if error is not None else None
    if original is None:
        error = error or MappingError("the message header (MSH) cannot be read", code="100")
        return _minimal(code, now, control_id, error, reason or error.reason)
    msh = original.msh
    enc = _ack_encoding(original.encoding)
    version = msh.value(12).strip() or _DEFAULT_VERSION
    numbers = _version_numbers(version)
    enhanced = bool(msh.field(15).raw.strip() or msh.field(16).raw.strip())
    trigger = msh.value(9, 2).strip()
    comp = enc.component or "^"
    if numbers >= (2, 3, 1):
        message_type = _join(comp, ("ACK", escape(trigger, enc), "ACK"))
    elif numbers >= (2, 2, 0):
        message_type = _join(comp, ("ACK", escape(trigger, enc)))
    else:
        message_type = "ACK"
    header = {
        2: _encoding_characters(enc),
        3: _echo(msh.field(5), enc),
        4: _echo(msh.field(6), enc),
        5: _echo(msh.field(3), enc),
        6: _echo(msh.field(4), enc),
        7: escape(format_utc(now), enc),  # "+0000": "+" may be a separator of the original
        9: message_type,
        10: escape(control_id, enc),
        11: _echo(msh.field(11), enc) or "P",
        12: escape(version, enc),
        15: "NE" if enhanced else "",
        16: "NE" if enhanced else "",
        18: _charset_field(_echo(msh.field(18), enc), enc.charset),
    }
    segments = [
        _segment("MSH", header, enc),
        _msa(code, _echo(msh.field(10), enc), reason, numbers, enc),
    ]
    if code in _NEGATIVE:
        segments.append(_err(error, reason, numbers, enc))
    return _encode("\r".join(segments) + "\r", enc)


def _charset_field(echo: str, charset: str) -> str:
    """The ACK's MSH-18: the original's, unless a reader would take it for another charset
    than the one the ACK is written in (the reader takes the charset from the header's first
    line, and a line break in the header can leave MSH-18 on a later one); then the name of
    the charset the ACK is written in."""
    return echo if (codec_of(echo) or "utf-8") == charset else charset_name(charset)


def _encode(text: str, enc: Encoding) -> bytes:
    """The ACK in the original's character set. A character the set cannot hold (the reader's
    U+FFFD for undecodable bytes, or a ``\\Xhh\\`` escape that decoded to one) becomes ``?``,
    escaped when ``?`` is a separator: the codec's own ``?`` would split a field and shift
    every field after it. The separators themselves always fit (`_ack_encoding`)."""
    try:
        return text.encode(enc.charset)
    except UnicodeEncodeError:
        question = escape("?", enc)
        return "".join(c if _fits(c, enc.charset) else question for c in text).encode(enc.charset)


def _fits(char: str, charset: str) -> bool:
    try:
        char.encode(charset)
    except UnicodeEncodeError:
        return False
    return True


def _readable(message: bytes | Hl7Message) -> Hl7Message | None:
    if isinstance(message, Hl7Message):
        return message
    try:
        return parse(message)
    except MappingError:
        return None


def _minimal(
    code: AckCode, now: datetime, control_id: str, error: MappingError, reason: str | None
) -> bytes:
    enc = STANDARD_ENCODING
    numbers = _version_numbers(_DEFAULT_VERSION)
    header = {
        2: _encoding_characters(enc),
        7: format_utc(now),
        9: "ACK^^ACK",
        10: escape(control_id, enc),
        11: "P",
        12: _DEFAULT_VERSION,
    }
    segments = [_segment("MSH", header, enc), _msa(code, "", reason, numbers, enc)]
    if code in _NEGATIVE:
        segments.append(_err(error, reason, numbers, enc))
    return ("\r".join(segments) + "\r").encode("utf-8")


def _ack_encoding(original: Encoding) -> Encoding:
    """The original's separators if it declared all four encoding characters and its character
    set can write them all, else standard."""
    chars = (original.component, original.repetition, original.escape, original.subcomponent)
    if all(chars) and all(_fits(c, original.charset) for c in (original.field, *chars) if c):
        return original
    return Encoding(
        field=STANDARD_ENCODING.field,
        component=STANDARD_ENCODING.component,
        repetition=STANDARD_ENCODING.repetition,
        escape=STANDARD_ENCODING.escape,
        subcomponent=STANDARD_ENCODING.subcomponent,
        charset=original.charset,
    )


def _encoding_characters(enc: Encoding) -> str:
    return f"{enc.component}{enc.repetition}{enc.escape}{enc.subcomponent}"


def _echo(field: Field, enc: Encoding) -> str:
    """A field of the original rewritten for the ACK: each value decoded, then escaped again.

    Never copied raw: the reader joins a stray line into the previous segment with an LF, and
    an LF copied into the ACK would start a segment of the sender's choosing.
    """
    return _join(
        enc.repetition or "~",
        (
            _join(
                enc.component or "^",
                (
                    _join(enc.subcomponent or "&", (escape(s.text, enc) for s in c.subcomponents()))
                    for c in rep.components()
                ),
            )
            for rep in field.repetitions()
        ),
    )


def _join(sep: str, parts: Iterable[str]) -> str:
    return sep.join(parts).rstrip(sep)


def _segment(name: str, fields: dict[int, str], enc: Encoding) -> str:
    first = 2 if name == "MSH" else 1
    last = max((n for n, value in fields.items() if value), default=first - 1)
    return enc.field.join([name, *(fields.get(n, "") for n in range(first, last + 1))])


def _version_numbers(version: str) -> tuple[int, int, int]:
    """``2.5.1`` as (2, 5, 1); anything unreadable is treated as v2.4."""
    match = _VERSION.match(version)
    if match is None:
        return (2, 4, 0)
    major, minor, patch = match.groups()
    return (int(major), int(minor), int(patch or 0))


def _msa(
    code: AckCode,
    original_id: str,
    reason: str | None,
    numbers: tuple[int, int, int],
    enc: Encoding,
) -> str:
    text = escape(reason, enc) if reason and numbers < (2, 7, 0) else ""
    return _segment("MSA", {1: code, 2: original_id, 3: text}, enc)


def _err(
    error: MappingError | None, reason: str | None, numbers: tuple[int, int, int], enc: Encoding
) -> str:
    condition = error.code if error is not None else "207"
    condition_text = _ERROR_TEXT.get(condition, "")
    location = _LOCATION.fullmatch(error.location or "") if error is not None else None
    comp = enc.component or "^"
    sub = enc.subcomponent or "&"
    if numbers >= (2, 5, 0):
        erl = ""
        if location is not None:
            segment, number, repetition, component, subcomponent = location.groups()
            if component and not repetition:
                repetition = "1"
            erl = _join(comp, (segment, "1", number or "", repetition or "", component or ""))
            if subcomponent:
                erl = f"{erl}{comp}{subcomponent}"
        cwe = _join(comp, (escape(condition, enc), escape(condition_text, enc), "HL70357"))
        user_message = escape(reason, enc) if reason else ""
        return _segment("ERR", {2: erl, 3: cwe, 4: "E", 8: user_message}, enc)
    # ERR-1 (ELD): where, then the 0357 code as a CE in subcomponents.
    ce = _join(sub, (escape(condition, enc), escape(condition_text, enc), "HL70357"))
    segment, number = (location.group(1), location.group(2) or "") if location else ("", "")
    eld = comp.join((segment, "1" if segment else "", number, ce))
    return _segment("ERR", {1: eld}, enc)


def ack_mode(message: bytes | Hl7Message) -> tuple[AckRequirement | None, AckRequirement | None]:
    """MSH-15 (accept) and MSH-16 (application) acknowledgement types; None where empty.

    A message whose header cannot be read is in original mode: (None, None).
    """
    original = _readable(message)
    if original is None:
        return None, None
    return _requirement(original.msh, 15), _requirement(original.msh, 16)


def _requirement(msh: Segment, number: int) -> AckRequirement | None:
    value = msh.value(number).strip().upper()
    if not value:
        return None
    return _REQUIREMENTS.get(value, "AL")


def ack_code(
    mode: tuple[AckRequirement | None, AckRequirement | None], outcome: Outcome
) -> AckCode | None:
    """The code to answer with for `outcome` under `mode` (`ack_mode`); None: send nothing."""
    accept, _application = mode
    if accept is None:
        return _ORIGINAL[outcome]
    if accept == "NE" or (accept == "ER" and outcome == "accepted"):
        return None
    if accept == "SU" and outcome != "accepted":
        return None
    return _COMMIT[outcome]


def parse_ack(raw: bytes | str) -> ParsedAck:
    """Read an acknowledgement: MSA-1 code, MSA-2 control id, and any text (MSA-3, ERR-8,
    ERR-7, ERR-3.2 or ERR-1.4.2, with their 0357 codes). Raises `MappingError` when it is not
    an acknowledgement."""
    message = parse(raw)
    msa = message.segment("MSA")
    if msa is None:
        raise MappingError("no MSA segment in the answer", location="MSA", code="100")
    code = msa.value(1).strip().upper()
    if code not in _CODES:
        raise MappingError("MSA-1 is not an acknowledgement code", location="MSA-1", code="103")
    texts: list[str] = []
    candidates = [msa.value(3)]
    for err in message.segments("ERR"):
        condition = err.value(3) or err.value(1, 4)
        condition_text = err.value(3, 2) or err.value(1, 4, 2)
        candidates += [err.value(8), err.value(7), f"{condition} {condition_text}"]
    for text in (candidate.strip() for candidate in candidates):
        if text and text not in texts:
            texts.append(text)
    return ParsedAck(cast(AckCode, code), msa.value(2).strip(), "; ".join(texts) or None)
