"""Fuzz target: the HL7 v2 reader (`mappings.hl7v2.reader.parse`) and value decoding.

Crash: any exception but `MappingError` from `parse`; any exception while reading any value of
a parsed message (every segment, field, repetition, component, subcomponent, decoded); or a
decoded value that `escape` does not write back as itself, or writes with a separator, CR or
LF left in it (the ACK and the outbound ADT write values with `escape`).
"""

from __future__ import annotations

from tests.fuzz.targets._support import check, instrumented, run

with instrumented(__name__ == "__main__"):
    from mappings.errors import MappingError
    from mappings.hl7v2.elements import Encoding, Hl7Message, unescape
    from mappings.hl7v2.er7 import escape
    from mappings.hl7v2.reader import parse

_MAX_VALUES = 2000
"""Values checked per message: enough for any real message, bounded for a hostile one."""


def TestOneInput(data: bytes) -> None:
    try:
        message = parse(data)
    except MappingError:
        return
    check(bool(message.segments_all), "a parsed message has no segment")
    check(message.msh.name == "MSH", "the first segment is not MSH")
    _walk(message)


def _walk(message: Hl7Message) -> None:
    enc = message.encoding
    seen = 0
    for segment in message.segments_all:
        check(message.segment(segment.name) is not None, "a segment cannot be found by name")
        for number in range(1, len(segment) + 1):
            field = segment.field(number)
            field.is_null  # noqa: B018 (reading it is the test)
            for repetition in field.repetitions():
                for component in repetition.components():
                    for sub in component.subcomponents():
                        _round_trip(sub.text, enc)
                        seen += 1
                        if seen > _MAX_VALUES:
                            return
            segment.value(number, 2, 2)


def _round_trip(text: str, enc: Encoding) -> None:
    if enc.escape is None:
        return
    written = escape(text, enc)
    for char in (enc.field, enc.component, enc.repetition, enc.subcomponent, "\r", "\n"):
        check(char is None or char not in written, f"escape left {char!r} in a value")
    check(unescape(written, enc) == text, "escape then unescape does not give the value back")


if __name__ == "__main__":
    run(TestOneInput)
