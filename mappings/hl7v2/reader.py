"""A fast, lenient HL7 v2 reader: split on the declared separators, decode values on access.

This is the hot path (intake and every listener's dry run), so it does no schema work:
`parse` finds the character set and the separators and splits the segments once; the element
tree it returns (`mappings.hl7v2.elements`) splits the rest only when a value is asked for.
Strict validation against the standard, where a feed needs it, belongs to hl7apy and stays
off this path.

What real senders do, and what the reader does about it:

- segments end in CR, LF or CRLF, with blank lines, MLLP framing bytes or a UTF-8 byte-order
  mark around them, and the last one may be unterminated: all accepted;
- MSH-18 names the character set of the bytes: ASCII, UTF-8 and an empty MSH-18 are read as
  UTF-8 (a superset of ASCII, and what undeclared senders mostly send), ``8859/n`` as
  ISO 8859-n; bytes that do not decode are replaced and a warning is kept;
- MSH-2 is taken positionally (component, repetition, escape, subcomponent; a v2.7
  truncation character is ignored), except that a doubled backslash (``^~\\\\&``, a quoting
  artefact) is read as one, and two or three characters that keep the standard ``^~\\&``
  order (``^\\&``: a dropped ``~``) keep their standard roles;
- a line that does not start with a segment name is a line break inside the previous
  segment's text and is joined back with LF (with a warning);
- ``""`` is HL7's explicit null ("delete the stored value"), told apart from an empty value
  by `Element.is_null`;
- unknown or unterminated escape sequences are kept as written; formatting escapes
  (``\\.br\\``, ``\\.sp\\``) become line breaks and other display hints are dropped.

Anything that is not recognisably an HL7 v2 message raises `MappingError` with code 100
(segment sequence error) or 102 (data type error) and the element at fault.
"""

from __future__ import annotations

import re

from mappings.errors import MappingError
from mappings.hl7v2.elements import Encoding, Hl7Message

__all__ = ["charset_name", "codec_of", "parse"]

# Whitespace, MLLP start/end bytes and a BOM may surround a message; none of them is content.
_FRAMING = " \t\r\n\x0b\x1c\ufeff"
_SEGMENT_START = re.compile(r"[A-Z][A-Z0-9]{2}")
_SEGMENT_NAMES = re.compile(rf"(?:{_SEGMENT_START.pattern})*")
_STANDARD_ENCODING = "^~\\&"
_REPEAT_OR_COMPONENT = re.compile(r"[~^]")
_ISO_8859 = re.compile(r"8859/[1-9]")
_STANDARD_HEADER = "MSH|^~\\&|"
_STANDARD_ENCODINGS: dict[str, Encoding] = {}
"""The standard separators' `Encoding`, one for each codec (a few: see `codec_of`)."""

_CHARSETS = {
    "": "utf-8",
    "ASCII": "utf-8",
    "UNICODE": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "8859/15": "iso8859-15",
    "CP1252": "cp1252",
    "WINDOWS-1252": "cp1252",
}


def parse(raw: bytes | str) -> Hl7Message:
    """Read one HL7 v2 message. Raises `MappingError` when it is not exactly one.

    Batches (FHS/BHS) and messages run together (a second MSH) are refused rather than
    partly read: splitting them is the listener's job, one message per acknowledgement.
    """
    warnings: list[str] = []
    if isinstance(raw, bytes | bytearray | memoryview):
        data = bytes(raw).lstrip(b" \t\r\n\x0b\x1c")
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        charset = _charset(_first_line(_head(data).decode("latin-1")), warnings)
        try:
            text = data.decode(charset)
        except UnicodeDecodeError:
            text = data.decode(charset, errors="replace")
            warnings.append(f"MSH-18: bytes that are not {charset} were replaced")
    else:
        text = raw
        charset = _charset(_first_line(text), warnings)
    text = text.strip(_FRAMING)
    if not text:
        raise MappingError("the message is empty", location="MSH", code="100")
    end = "\r"
    if "\n" in text:
        if "\r" in text:
            text = text.replace("\r\n", "\r").replace("\n", "\r")
        else:
            end = "\n"  # the same lines, without rewriting the text
    lines = text.split(end)
    encoding = _encoding(lines[0], charset, warnings)
    message = Hl7Message(lines, encoding, tuple(warnings))
    if _only_segments(message.names, lines, encoding.field):
        return message  # nearly every message: nothing to join, skip or refuse
    segments: list[str] = []
    starts_segment, sep = _SEGMENT_START.match, encoding.field
    for number, line in enumerate(lines, start=1):
        if starts_segment(line) and (len(line) == 3 or line[3] == sep):
            if segments and line.startswith("MSH"):
                # Two messages run together: mapping the first would silently lose the second.
                raise MappingError(
                    f"MSH segment repeated at line {number}: a message has one MSH; send one"
                    " message at a time",
                    location="MSH",
                    code="100",
                )
            segments.append(line)
        elif not line.strip(_FRAMING):
            continue
        else:
            segments[-1] = f"{segments[-1]}\n{line}"
            warnings.append(f"line {number}: not a segment; joined to {segments[-1][:3]}")
    return Hl7Message(segments, encoding, tuple(warnings))


def _only_segments(names: tuple[str, ...], lines: list[str], sep: str) -> bool:
    """True when every line is a segment (a name, then the field separator or nothing) and
    only the first is an MSH: what the loop of `parse` would keep as it is."""
    joined = "".join(names)
    return (
        len(joined) == 3 * len(names)  # no line shorter than a name
        and _SEGMENT_NAMES.fullmatch(joined) is not None
        and {line[3:4] for line in lines} <= {sep, ""}
        and names.count("MSH") == 1
    )


def _head(data: bytes) -> bytes:
    # Only the header line is needed to find MSH-18; do not decode the whole message twice.
    ends = [i for i in (data.find(b"\r"), data.find(b"\n")) if i >= 0]
    return data[: min(ends)] if ends else data


def _first_line(text: str) -> str:
    text = text.lstrip(_FRAMING)
    for end in (text.find("\r"), text.find("\n")):
        if end >= 0:
            text = text[:end]
    return text


def _charset(first_line: str, warnings: list[str]) -> str:
    if not first_line.startswith("MSH") or len(first_line) < 4:
        return "utf-8"  # _encoding reports the real problem
    fields = first_line.split(first_line[3])
    declared = fields[17] if len(fields) > 17 else ""
    codec = _CHARSETS.get(declared) or codec_of(declared)  # most say a name as written here
    if codec is None:
        shown = _REPEAT_OR_COMPONENT.split(declared.strip().upper(), maxsplit=1)[0].strip()
        warnings.append(f"MSH-18: character set {shown!r} is not supported; read as UTF-8")
        return "utf-8"
    return codec


def codec_of(msh_18: str) -> str | None:
    """The codec `parse` reads a message with when its header line's MSH-18 is `msh_18` (as
    written: the first repetition's first component counts); None when not supported (then
    `parse` reads UTF-8, with a warning)."""
    declared = _REPEAT_OR_COMPONENT.split(msh_18.strip().upper(), maxsplit=1)[0].strip()
    if declared in _CHARSETS:
        return _CHARSETS[declared]
    if _ISO_8859.fullmatch(declared):
        return "latin-1" if declared == "8859/1" else f"iso8859-{declared[-1]}"
    return None


def charset_name(codec: str) -> str:
    """The HL7 name (MSH-18) of a codec `parse` reads with: ``codec_of(charset_name(c)) == c``."""
    if codec.startswith("iso8859-"):
        return f"8859/{codec.removeprefix('iso8859-')}"
    return {"latin-1": "8859/1", "cp1252": "CP1252"}.get(codec, "UNICODE UTF-8")


def _encoding(header: str, charset: str, warnings: list[str]) -> Encoding:
    if header.startswith(_STANDARD_HEADER):
        # Nearly every message: the standard separators, nothing to check or warn about.
        encoding = _STANDARD_ENCODINGS.get(charset)
        if encoding is None:
            encoding = _STANDARD_ENCODINGS[charset] = Encoding("|", "^", "~", "\\", "&", charset)
        return encoding
    name = header[:3]
    if name in ("BHS", "FHS"):
        raise MappingError(
            "batch and file wrappers (FHS/BHS) are not accepted; send one message at a time",
            location=name,
            code="100",
        )
    if name != "MSH":
        raise MappingError(
            "not an HL7 v2 message: the first segment must be MSH", location="MSH", code="100"
        )
    if len(header) < 4 or header[3].isalnum() or not header[3].isprintable() or header[3] == " ":
        raise MappingError("no usable field separator", location="MSH-1", code="102")
    sep = header[3]
    chars = header[4:].split(sep, 1)[0]
    if "\\\\" in chars:
        chars = chars.replace("\\\\", "\\")
        warnings.append("MSH-2: doubled backslash read as one escape character")
    if 2 <= len(chars) <= 3 and _keeps_standard_order(chars):
        warnings.append(f"MSH-2: only {len(chars)} encoding characters; standard roles kept")
        roles = [c if c in chars else None for c in _STANDARD_ENCODING]
    elif chars:
        roles = [chars[i] if i < len(chars) else None for i in range(4)]
    else:
        raise MappingError("encoding characters missing", location="MSH-2", code="102")
    declared = [c for c in roles if c is not None]
    if (
        len(set(declared)) != len(declared)
        or sep in declared
        or any(c.isalnum() or not c.isprintable() for c in declared)
    ):
        # A control character cannot be a separator: the ACK is written with the message's
        # own separators, and an MLLP end byte (0x1C) there would cut the ACK's frame short.
        raise MappingError("encoding characters are not usable", location="MSH-2", code="102")
    return Encoding(sep, roles[0], roles[1], roles[2], roles[3], charset)


def _keeps_standard_order(chars: str) -> bool:
    positions = [_STANDARD_ENCODING.find(c) for c in chars]
    return all(p >= 0 for p in positions) and positions == sorted(positions)
