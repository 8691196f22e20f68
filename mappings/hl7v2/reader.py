"""A fast, lenient HL7 v2 reader: split on the declared separators, decode values on access.

This is the hot path (intake and every listener's dry run), so it does no schema work:
segments are split once, fields only when a segment is first read, and repetitions,
components and escape sequences only when a value is asked for. Strict validation against
the standard, where a feed needs it, belongs to hl7apy and stays off this path.

Numbering follows HL7: fields, repetitions, components and subcomponents count from 1, and
for MSH, MSH-1 is the field separator itself and MSH-2 the encoding characters (both read
literally). Asking past the end gives an empty element, never an IndexError.

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
from dataclasses import dataclass

from mappings.errors import MappingError

__all__ = [
    "Component",
    "Encoding",
    "Field",
    "Hl7Message",
    "Repetition",
    "Segment",
    "Subcomponent",
    "parse",
    "unescape",
]

_BOM = "\ufeff"
# Whitespace, MLLP start/end bytes and a BOM may surround a message; none of them is content.
_FRAMING = " \t\r\n\x0b\x1c\ufeff"
_SEGMENT_START = re.compile(r"[A-Z][A-Z0-9]{2}")
_STANDARD_ENCODING = "^~\\&"
_HL7_NULL = '""'

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


@dataclass(frozen=True, slots=True)
class Encoding:
    """The separators a message declared in MSH-1/MSH-2, and its character set (a codec name).

    A separator the sender did not declare is None: that level simply does not split.
    """

    field: str
    component: str | None
    repetition: str | None
    escape: str | None
    subcomponent: str | None
    charset: str = "utf-8"


# MSH-1 and MSH-2 are read literally: nothing in them is a separator or an escape.
_LITERAL = Encoding(field="|", component=None, repetition=None, escape=None, subcomponent=None)


def _split(raw: str, sep: str | None) -> list[str]:
    return raw.split(sep) if sep else [raw]


def _nth(parts: list[str], n: int) -> str:
    return parts[n - 1] if 0 < n <= len(parts) else ""


def _pick(raw: str, sep: str | None, n: int) -> str:
    """Part `n` of `raw`, splitting no further than needed: `value()` is the hot path."""
    if not sep or sep not in raw:
        return raw if n == 1 else ""
    parts = raw.split(sep, n)
    return parts[n - 1] if 0 < n <= len(parts) else ""


def _leaf(raw: str, component: int, subcomponent: int, enc: Encoding) -> str:
    raw = _pick(_pick(raw, enc.component, component), enc.subcomponent, subcomponent)
    if raw == _HL7_NULL:
        return ""
    return unescape(raw, enc)


class Element:
    """One value of a message at any level, as sent (`raw`) and decoded (`text`)."""

    __slots__ = ("_enc", "raw")

    def __init__(self, raw: str, encoding: Encoding) -> None:
        self.raw = raw
        self._enc = encoding

    @property
    def is_null(self) -> bool:
        """True for HL7's explicit null ``""``: the sender means "delete the stored value"."""
        return self.raw == _HL7_NULL

    @property
    def is_empty(self) -> bool:
        """True when nothing was sent: the sender means "unchanged" (ITK)."""
        return not self.raw

    @property
    def text(self) -> str:
        """The value with escape sequences decoded; an explicit null reads as ``""``."""
        if self.raw == _HL7_NULL:
            return ""
        return unescape(self.raw, self._enc)

    def __bool__(self) -> bool:
        return bool(self.raw) and self.raw != _HL7_NULL

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.raw!r})"


class Subcomponent(Element):
    """The smallest part of a value (e.g. HD.1 inside CX.4)."""

    __slots__ = ()


class Component(Element):
    """A component of a repetition (``PID-3.4``)."""

    __slots__ = ()

    def subcomponent(self, n: int) -> Subcomponent:
        """Subcomponent `n` (from 1)."""
        return Subcomponent(_nth(_split(self.raw, self._enc.subcomponent), n), self._enc)

    def subcomponents(self) -> list[Subcomponent]:
        """Every subcomponent, in order."""
        return [Subcomponent(s, self._enc) for s in _split(self.raw, self._enc.subcomponent)]


class Repetition(Element):
    """One occurrence of a (possibly repeating) field."""

    __slots__ = ()

    def component(self, n: int) -> Component:
        """Component `n` (from 1)."""
        return Component(_nth(_split(self.raw, self._enc.component), n), self._enc)

    def components(self) -> list[Component]:
        """Every component, in order."""
        return [Component(c, self._enc) for c in _split(self.raw, self._enc.component)]

    def value(self, component: int = 1, subcomponent: int = 1) -> str:
        """The decoded text of one subcomponent of one component: the usual way to read."""
        return _leaf(self.raw, component, subcomponent, self._enc)


class Field(Repetition):
    """A whole field. Component access reads its first repetition, as ``PID-3.1`` does."""

    __slots__ = ()

    def repetitions(self) -> list[Repetition]:
        """Every repetition, in order (one, for a field that does not repeat)."""
        return [Repetition(r, self._enc) for r in _split(self.raw, self._enc.repetition)]

    def first(self) -> Repetition:
        """The first repetition."""
        return Repetition(_split(self.raw, self._enc.repetition)[0], self._enc)

    def component(self, n: int) -> Component:
        return self.first().component(n)

    def components(self) -> list[Component]:
        return self.first().components()

    def value(self, component: int = 1, subcomponent: int = 1) -> str:
        return _leaf(_pick(self.raw, self._enc.repetition, 1), component, subcomponent, self._enc)


class Segment:
    """One segment. Its fields are split on first access."""

    __slots__ = ("_enc", "_fields", "name", "raw")

    def __init__(self, raw: str, encoding: Encoding) -> None:
        self.raw = raw
        self.name = raw[:3]
        self._enc = encoding
        self._fields: list[str] | None = None

    def _split_fields(self) -> list[str]:
        if self._fields is None:
            fields = self.raw.split(self._enc.field)
            if self.name == "MSH":
                # MSH-1 is the separator the split just consumed: put it back so that
                # list index == HL7 field number for every segment.
                fields.insert(1, self._enc.field)
            self._fields = fields
        return self._fields

    def field(self, n: int) -> Field:
        """Field `n` (from 1); MSH-1 and MSH-2 come back literally."""
        if n < 1:
            raise ValueError(f"HL7 fields are numbered from 1, not {n}")
        fields = self._split_fields()
        raw = fields[n] if n < len(fields) else ""
        if self.name == "MSH" and n <= 2:
            return Field(raw, _LITERAL)
        return Field(raw, self._enc)

    def value(self, n: int, component: int = 1, subcomponent: int = 1) -> str:
        """Decoded text of field `n`, first repetition, given component and subcomponent."""
        if n <= 2 and (n < 1 or self.name == "MSH"):
            return self.field(n).value(component, subcomponent)
        fields = self._split_fields()
        raw = fields[n] if n < len(fields) else ""
        if not raw:
            return ""
        enc = self._enc
        return _leaf(_pick(raw, enc.repetition, 1), component, subcomponent, enc)

    def __len__(self) -> int:
        """The number of the last field present."""
        return len(self._split_fields()) - 1

    def __repr__(self) -> str:
        return f"Segment({self.name})"


class Hl7Message:
    """A parsed message: its segments in order, its encoding, and the reader's warnings."""

    __slots__ = ("_first", "encoding", "segments_all", "warnings")

    def __init__(
        self, segments: list[Segment], encoding: Encoding, warnings: tuple[str, ...]
    ) -> None:
        self.segments_all = tuple(segments)
        self.encoding = encoding
        self.warnings = warnings
        self._first: dict[str, Segment] = {}
        for seg in reversed(segments):
            self._first[seg.name] = seg

    @property
    def msh(self) -> Segment:
        """The message header (always present in a parsed message)."""
        return self.segments_all[0]

    def segment(self, name: str) -> Segment | None:
        """The first segment called `name`, or None."""
        return self._first.get(name)

    def segments(self, name: str) -> list[Segment]:
        """Every segment called `name`, in order."""
        return [s for s in self.segments_all if s.name == name]


def unescape(raw: str, encoding: Encoding) -> str:
    """Decode HL7 escape sequences (``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh\\ \\.br\\`` ...)."""
    esc = encoding.escape
    if not esc or esc not in raw:
        return raw
    out: list[str] = []
    pos = 0
    while True:
        start = raw.find(esc, pos)
        if start < 0:
            out.append(raw[pos:])
            break
        end = raw.find(esc, start + 1)
        if end < 0:
            # Unterminated: keep the rest as written rather than lose it.
            out.append(raw[pos:])
            break
        out.append(raw[pos:start])
        decoded = _escape_sequence(raw[start + 1 : end], encoding)
        if decoded is None:
            # Not an escape we know: keep the opening character as text and carry on
            # from the closing one, which may open a real escape.
            out.append(raw[start:end])
            pos = end
        else:
            out.append(decoded)
            pos = end + 1
    return "".join(out)


def _escape_sequence(seq: str, enc: Encoding) -> str | None:
    if seq == "F":
        return enc.field
    if seq == "S":
        return enc.component or ""
    if seq == "T":
        return enc.subcomponent or ""
    if seq == "R":
        return enc.repetition or ""
    if seq == "E":
        return enc.escape or ""
    if seq[:1] == "X" and len(seq) > 1 and len(seq) % 2 == 1:
        try:
            return bytes.fromhex(seq[1:]).decode(enc.charset, errors="replace")
        except ValueError:
            return None
    if seq == ".br":
        return "\n"
    if seq.startswith(".sp"):
        count = seq[3:].strip()
        # Capped: a line count is layout, not a reason to allocate without limit.
        return "\n" * min(int(count) if count.isdigit() else 1, 20)
    if seq[:1] == "." or seq in ("H", "N") or seq[:1] in ("C", "M", "Z"):
        # Display hints (indent, centre, highlight), character-set switches and local
        # escapes: nothing of the value itself.
        return ""
    return None


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
    lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    encoding = _encoding(lines[0], charset, warnings)
    segments: list[Segment] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip(_FRAMING):
            continue
        if _SEGMENT_START.match(line) and (len(line) == 3 or line[3] == encoding.field):
            if segments and line.startswith("MSH"):
                # Two messages run together: mapping the first would silently lose the second.
                raise MappingError(
                    f"a second MSH at line {number}: one message at a time",
                    location="MSH",
                    code="100",
                )
            segments.append(Segment(line, encoding))
        else:
            previous = segments[-1]
            segments[-1] = Segment(f"{previous.raw}\n{line}", encoding)
            warnings.append(f"line {number}: not a segment; joined to {previous.name}")
    return Hl7Message(segments, encoding, tuple(warnings))


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
    declared = fields[17].strip().upper() if len(fields) > 17 else ""
    declared = re.split(r"[~^]", declared, maxsplit=1)[0].strip()
    if declared in _CHARSETS:
        return _CHARSETS[declared]
    if re.fullmatch(r"8859/[1-9]", declared):
        return "latin-1" if declared == "8859/1" else f"iso8859-{declared[-1]}"
    warnings.append(f"MSH-18: character set {declared!r} is not supported; read as UTF-8")
    return "utf-8"


def _encoding(header: str, charset: str, warnings: list[str]) -> Encoding:
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
    if len(header) < 4 or header[3].isalnum() or header[3].isspace():
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
    if len(set(declared)) != len(declared) or sep in declared or any(c.isalnum() for c in declared):
        raise MappingError("encoding characters are not usable", location="MSH-2", code="102")
    return Encoding(sep, roles[0], roles[1], roles[2], roles[3], charset)


def _keeps_standard_order(chars: str) -> bool:
    positions = [_STANDARD_ENCODING.find(c) for c in chars]
    return all(p >= 0 for p in positions) and positions == sorted(positions)
