"""Writing HL7 v2 ER7 text: escaping a value so it reads back as itself and cannot split
anything, timestamps in UTC at the source's precision, components, segments and codes.

Shared by the outbound ADT (`mappings.hl7v2.outbound`) and the ACKs (`mappings.hl7v2.ack`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final

from mappings.hl7v2.elements import Encoding
from mappings.model import Coding, Instant, Precision

__all__ = [
    "STANDARD_ENCODING",
    "code",
    "components",
    "escape",
    "format_utc",
    "join",
    "segment",
    "timestamp",
]

STANDARD_ENCODING = Encoding(
    field="|", component="^", repetition="~", escape="\\", subcomponent="&"
)
_DATE_DIGITS: Final = {Precision.YEAR: 4, Precision.MONTH: 6, Precision.DAY: 8}
NON_DIGIT: Final = re.compile(r"\D")


@lru_cache(maxsize=8)
def _escape_table(encoding: Encoding) -> dict[int, str]:
    esc = encoding.escape
    if esc is None:
        raise ValueError("text cannot be escaped: the encoding has no escape character")
    # Every C0 control, not only CR and LF: 0x0B and 0x1C would end an MLLP frame.
    table = {code: f"{esc}X{code:02X}{esc}" for code in range(0x20)}
    for char, name in (
        (esc, "E"),
        (encoding.field, "F"),
        (encoding.component, "S"),
        (encoding.subcomponent, "T"),
        (encoding.repetition, "R"),
    ):
        if char:
            table[ord(char)] = f"{esc}{name}{esc}"
    return table


def escape(text: str, encoding: Encoding = STANDARD_ENCODING) -> str:
    """`text` as an HL7 value that reads back as exactly `text` and cannot split anything."""
    escaped = text.translate(_escape_table(encoding))
    if escaped == '""':
        # Literally two double quotes would read as HL7's null: "delete the stored value".
        quote = f"{encoding.escape}X22{encoding.escape}"
        return quote + quote
    return escaped


def format_utc(moment: datetime) -> str:
    """An aware datetime as an HL7 timestamp in UTC to the second: ``YYYYMMDDHHMMSS+0000``."""
    if moment.utcoffset() is None:
        raise ValueError("a timestamp to send needs a time zone")
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S") + "+0000"


def timestamp(instant: Instant | None) -> str:
    """An instant at the precision the source gave: UTC with ``+0000``, or a bare date."""
    if instant is None:
        return ""
    digits = _DATE_DIGITS.get(instant.precision)
    if digits is not None:
        written = NON_DIGIT.sub("", instant.original)[:digits]
        return written if len(written) == digits else instant.utc.strftime("%Y%m%d")[:digits]
    utc = instant.utc.astimezone(UTC)
    if instant.precision is Precision.FRACTION:
        text = utc.strftime("%Y%m%d%H%M%S") + f".{utc.microsecond // 100:04d}"
    elif instant.precision is Precision.SECOND:
        text = utc.strftime("%Y%m%d%H%M%S")
    else:
        text = utc.strftime("%Y%m%d%H%M")
    return text + "+0000"


def join(sep: str, parts: Iterable[str]) -> str:
    """Already-escaped parts joined, without trailing empty ones."""
    return sep.join(parts).rstrip(sep)


def components(*values: str | None) -> str:
    """Text values escaped and joined as components."""
    return join("^", (escape(v) if v else "" for v in values))


def segment(name: str, fields: dict[int, str]) -> str:
    """A segment from already-escaped field values by field number."""
    first = 2 if name == "MSH" else 1  # MSH-1 is the separator after the name
    last = max((n for n, value in fields.items() if value), default=first - 1)
    return "|".join([name, *(fields.get(n, "") for n in range(first, last + 1))])


def code(coding: Coding | None, system: str) -> str:
    """The escaped code when it is under `system` (the national vocabulary), else empty."""
    return escape(coding.code) if coding is not None and coding.system == system else ""
