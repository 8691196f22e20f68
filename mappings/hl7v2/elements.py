"""The HL7 v2 element tree the reader gives: `Hl7Message`, `Segment`, `Field`, `Repetition`,
`Component`, `Subcomponent`, the `Encoding` they split by, and `unescape`.

This is the hot path, so nothing is split before it is asked for: fields only when a segment
is first read, and repetitions, components and escape sequences only when a value is asked
for. Numbering follows HL7: fields, repetitions, components and subcomponents count from 1,
and for MSH, MSH-1 is the field separator itself and MSH-2 the encoding characters (both read
literally). Asking past the end gives an empty element, never an IndexError. ``""`` is HL7's
explicit null, told apart from an empty value by `Element.is_null`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Component",
    "Element",
    "Encoding",
    "Field",
    "Hl7Message",
    "Repetition",
    "Segment",
    "Subcomponent",
    "unescape",
]

_HL7_NULL = '""'


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


def _is_plain(raw: str, enc: Encoding) -> bool:
    """True when `raw` has no subcomponent separator, no escape character and no ``""``: then
    every component of it is its own decoded first subcomponent, with nothing to undo."""
    sub, esc = enc.subcomponent, enc.escape
    return not ((sub and sub in raw) or (esc and esc in raw) or _HL7_NULL in raw)


def _subleaf(raw: str, subcomponent: int, enc: Encoding) -> str:
    """The decoded text of one subcomponent of one component's text: the last step of every
    value read (`Segment.value`, `Repetition.value`)."""
    sep = enc.subcomponent
    if sep and sep in raw:
        parts = raw.split(sep, subcomponent)
        raw = parts[subcomponent - 1] if 0 < subcomponent <= len(parts) else ""
    elif subcomponent != 1:
        return ""
    if raw == _HL7_NULL:
        return ""
    esc = enc.escape
    return unescape(raw, enc) if esc and esc in raw else raw


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
    def is_plain(self) -> bool:
        """True when there is nothing below it to split or decode: no subcomponent separator,
        escape character or ``""`` in it."""
        return _is_plain(self.raw, self._enc)

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
    """One occurrence of a (possibly repeating) field. Its components are split once, on the
    first `value()`: a mapping reads several components of the same repetition."""

    __slots__ = ("_parts", "_plain")

    def __init__(self, raw: str, encoding: Encoding) -> None:
        self.raw = raw
        self._enc = encoding
        self._parts: list[str] | None = None
        self._plain = False

    def _first_raw(self) -> str:
        return self.raw

    def _split_components(self) -> list[str]:
        first = self._first_raw()
        parts = self._parts = _split(first, self._enc.component)
        self._plain = _is_plain(first, self._enc)
        return parts

    def values(self, count: int) -> list[str]:
        """``[value(1), ..., value(count)]`` in one call (a name's, an address's components)."""
        parts = self._parts if self._parts is not None else self._split_components()
        texts = parts[:count] if self._plain else [_subleaf(p, 1, self._enc) for p in parts[:count]]
        return texts + [""] * (count - len(texts))

    def component(self, n: int) -> Component:
        """Component `n` (from 1)."""
        return Component(_nth(_split(self.raw, self._enc.component), n), self._enc)

    def components(self) -> list[Component]:
        """Every component, in order."""
        return [Component(c, self._enc) for c in _split(self.raw, self._enc.component)]

    def value(self, component: int = 1, subcomponent: int = 1) -> str:
        """The decoded text of one subcomponent of one component: the usual way to read."""
        parts = self._parts
        if parts is None:
            parts = self._split_components()
        if not 0 < component <= len(parts):
            return ""
        if self._plain and subcomponent == 1:
            return parts[component - 1]
        return _subleaf(parts[component - 1], subcomponent, self._enc)


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

    def _first_raw(self) -> str:
        raw, sep = self.raw, self._enc.repetition
        return raw[: raw.index(sep)] if sep and sep in raw else raw


class Segment:
    """One segment. Its fields are split on first access."""

    __slots__ = ("_enc", "_fields", "_plain", "name", "raw")

    def __init__(self, raw: str, encoding: Encoding) -> None:
        self.raw = raw
        self.name = raw[:3]
        self._enc = encoding
        self._fields: list[str] | None = None
        self._plain = False

    def _split_fields(self) -> list[str]:
        if self._fields is None:
            fields = self.raw.split(self._enc.field)
            if self.name == "MSH":
                # MSH-1 is the separator the split just consumed: put it back so that
                # list index == HL7 field number for every segment.
                fields.insert(1, self._enc.field)
                # MSH-2 holds the escape and subcomponent characters themselves, literally.
                self._plain = _is_plain(self.raw[5 + len(fields[2]) :], self._enc)
            else:
                self._plain = _is_plain(self.raw, self._enc)
            self._fields = fields
        return self._fields

    def field(self, n: int) -> Field:
        """Field `n` (from 1); MSH-1 and MSH-2 come back literally."""
        if n < 1:
            raise ValueError(f"HL7 fields are numbered from 1, not {n}")
        fields = self._fields
        if fields is None:
            fields = self._split_fields()
        raw = fields[n] if n < len(fields) else ""
        if self.name == "MSH" and n <= 2:
            return Field(raw, _LITERAL)
        return Field(raw, self._enc)

    def value(self, n: int, component: int = 1, subcomponent: int = 1) -> str:
        """Decoded text of field `n`, first repetition, given component and subcomponent."""
        if n <= 2 and (n < 1 or self.name == "MSH"):
            return self.field(n).value(component, subcomponent)
        fields = self._fields
        if fields is None:
            fields = self._split_fields()
        raw = fields[n] if n < len(fields) else ""
        if not raw:
            return ""
        # First repetition, then the component (inline: every value a mapping reads of a
        # segment comes here), then `_subleaf`.
        enc = self._enc
        sep = enc.repetition
        if sep and sep in raw:
            raw = raw[: raw.index(sep)]
        sep = enc.component
        if sep and sep in raw:
            parts = raw.split(sep, component)
            raw = parts[component - 1] if 0 < component <= len(parts) else ""
        elif component != 1:
            return ""
        if self._plain and subcomponent == 1:
            return raw  # the usual case: nothing to split or decode (`_is_plain`)
        return _subleaf(raw, subcomponent, enc)

    def __len__(self) -> int:
        """The number of the last field present."""
        return len(self._split_fields()) - 1

    def __repr__(self) -> str:
        return f"Segment({self.name})"


class Hl7Message:
    """A parsed message: its segments in order, its encoding, and the reader's warnings.

    Built from the segments' text: a `Segment` is made when first asked for (most messages
    are mapped from a few of their segments, or refused on their header alone), and then
    kept, so each segment is one object however it is reached.
    """

    __slots__ = ("_made", "encoding", "names", "texts", "warnings")

    def __init__(self, texts: list[str], encoding: Encoding, warnings: tuple[str, ...]) -> None:
        self.texts = tuple(texts)
        """Each segment's text, in order (its first three characters are its name)."""
        self.names = tuple([text[:3] for text in texts])
        """Each segment's name, in order."""
        self.encoding = encoding
        self.warnings = warnings
        self._made: dict[int, Segment] = {}

    def _at(self, index: int) -> Segment:
        segment = self._made.get(index)
        if segment is None:
            segment = self._made[index] = Segment(self.texts[index], self.encoding)
        return segment

    @property
    def segments_all(self) -> tuple[Segment, ...]:
        """Every segment, in order."""
        return tuple([self._at(index) for index in range(len(self.texts))])

    @property
    def msh(self) -> Segment:
        """The message header (always present in a parsed message)."""
        return self._at(0)

    def segment(self, name: str) -> Segment | None:
        """The first segment called `name`, or None."""
        names = self.names
        return self._at(names.index(name)) if name in names else None

    def segments(self, name: str) -> list[Segment]:
        """Every segment called `name`, in order."""
        return [self._at(index) for index, each in enumerate(self.names) if each == name]


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
        return "\n" * _line_count(seq[3:].strip())
    if seq[:1] == "." or seq in ("H", "N") or seq[:1] in ("C", "M", "Z"):
        # Display hints (indent, centre, highlight), character-set switches and local
        # escapes: nothing of the value itself.
        return ""
    return None


def _line_count(count: str) -> int:
    """``\\.spN\\``'s N, capped at 20: a line count is layout, not a reason to allocate
    without limit. Only ASCII digits count (``str.isdigit`` also takes ``²``, which `int`
    refuses), and a long run of them is the cap (`int` refuses over 4,300 digits)."""
    if not (count.isascii() and count.isdigit()):
        return 1
    digits = count.lstrip("0")
    return 20 if len(digits) > 2 else min(int(digits or "0"), 20)
