"""HL7 v2 data types read into model values: DTM, coded values, XCN, PL, HD.

Shared by the segment mappings (`mappings.hl7v2.patient`, `.stay`, `.inbound`). Everything
here is lenient about what it cannot use (a warning, then None) except where the caller says a
value is required, and then a bad value is a `MappingError` naming the element.

Timestamps: ``YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]``.

- An explicit offset always wins.
- Without one the value is wall-clock time in the feed's zone (Europe/London by default).
  At a clock change both uncertain cases resolve to the *earlier* instant
  (`mappings.wallclock`): the autumn hour that happens twice is its first occurrence (01:30
  on 25 Oct 2026 is 01:30 BST = 00:30 UTC) and the spring hour that never happens is read
  with the offset after the change (01:30 on 29 Mar 2026 is 01:30 BST = 00:30 UTC). Both add
  a warning, since the sender's meaning is uncertain.
- A value keeps its precision: a date is a DAY whose `utc` is local midnight.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from mappings import nhs_number
from mappings.codes import local_system
from mappings.errors import MappingError
from mappings.hl7v2.elements import Repetition
from mappings.model import Clinician, Coding, Instant, Location, Precision
from mappings.wallclock import CLOCK_WARNINGS, ClockNote, resolve_local

__all__ = [
    "InvalidTimestamp",
    "Reading",
    "clean",
    "local_coding",
    "looks_like_ods",
    "model_factory",
    "national_coding",
    "parse_dtm",
    "read_clinician",
    "read_code",
    "read_date",
    "read_instant",
    "read_location",
]

_DTM = re.compile(
    r"(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6})\d*)?)?)?)?)?)?"
    r"(?:([+-])(\d{2})(\d{2}))?"
)
_PRECISIONS = (
    Precision.YEAR,
    Precision.MONTH,
    Precision.DAY,
    Precision.HOUR,
    Precision.MINUTE,
    Precision.SECOND,
    Precision.FRACTION,
)
# Trust and site codes (R/T + 2, optionally + 2 site digits) and GP practices (letter + 5
# digits): the shapes a PID-3 assigning authority takes when it is an organisation's ODS code.
_PLAIN_PRECISIONS = {4 + 2 * n: p for n, p in enumerate(_PRECISIONS[:6])}
"""Digits of a plain DTM (no fraction) by length: 4 a YEAR ... 14 a SECOND."""
_combine = datetime.combine
_ODS = re.compile(r"[RT][A-Z0-9]{2}(?:[A-Z0-9]{2})?|[A-Z]\d{5}")


_M = TypeVar("_M", bound=BaseModel)


def model_factory(model: type[_M]) -> Callable[[dict[str, Any]], _M]:
    """`model`'s own pydantic-core validator: ``model_factory(M)(data)`` is ``M(**data)`` (the
    same checks: types, ``extra="forbid"``, the same fields set) without the Python-level
    ``BaseModel.__init__`` around it, about a quarter of a small model's cost. Every model of
    a mapped message is made here or through a model's constructor, never unvalidated."""
    return cast(Callable[[dict[str, Any]], _M], model.__pydantic_validator__.validate_python)


_INSTANT = model_factory(Instant)
_CODING = model_factory(Coding)
_CLINICIAN = model_factory(Clinician)
_LOCATION = model_factory(Location)


@dataclass(slots=True)
class Reading:
    """What mapping one message needs besides the message itself, and what it has noticed."""

    feed: str
    zone: ZoneInfo
    warnings: list[str] = field(default_factory=list)
    test_nhs_numbers: bool = False
    """The feed is a test environment's: test-range and unissued NHS numbers count as real."""
    pid_2_nhs_number: bool = True
    """A valid number alone in PID-2 (v2.3 style) is the NHS number, unless the profile says
    the feed's PID-2 is a local id."""
    instants: dict[str, tuple[Instant, ClockNote | None]] = field(default_factory=dict)
    """The timestamps read so far (`read_instant`), by text: each is read once per message."""

    def warn(self, location: str, text: str) -> None:
        """Note a non-fatal oddity. Never put patient data (numbers, names, dates) in `text`."""
        self.warnings.append(f"{location}: {text}")

    def not_real(self, number: str) -> str | None:
        """Why a valid NHS number cannot be a real patient's under this feed's policy."""
        return nhs_number.not_real_reason(number, test_environment=self.test_nhs_numbers)


class InvalidTimestamp(ValueError):
    """The text is not an HL7 DTM."""


def clean(value: str) -> str | None:
    """The value without surrounding spaces, or None when nothing is left."""
    value = value.strip()
    return value or None


def looks_like_ods(code: str | None) -> bool:
    """True when `code` has the shape of an NHS trust, site or GP practice ODS code."""
    return bool(code) and _ODS.fullmatch(code or "") is not None


def _parts(text: str) -> tuple[datetime, Precision, timezone | None]:
    fast = _plain_parts(text)
    if fast is not None:
        return fast
    match = _DTM.fullmatch(text)
    if match is None:
        raise InvalidTimestamp(text)
    groups = match.groups()
    given = sum(1 for g in groups[:7] if g is not None)
    # Absent parts are the start of the period the text names (a month is its 1st, 00:00).
    year, month, day, hour, minute, second = (
        int(g) if g is not None else default
        for g, default in zip(groups[:6], (0, 1, 1, 0, 0, 0), strict=True)
    )
    micro = int((groups[6] or "0").ljust(6, "0"))
    try:
        naive = datetime(year, month, day, hour, minute, second, micro)
    except ValueError as exc:  # month 13, 30 February, hour 24...
        raise InvalidTimestamp(text) from exc
    offset = _offset(groups[7], groups[8], groups[9], text) if groups[7] else None
    return naive, _PRECISIONS[given - 1], offset


def _plain_parts(text: str) -> tuple[datetime, Precision, timezone | None] | None:
    """The common shapes (digits to the year...second, optional +/-ZZZZ) without the regex;
    None for anything else (fractions, odd lengths, stray characters), which `_DTM` reads."""
    body, sign = text, ""
    if len(text) >= 9 and text[-5] in "+-":
        body, sign = text[:-5], text[-5]
    digits = len(body)
    if not (body.isascii() and body.isdecimal()) or digits not in _PLAIN_PRECISIONS:
        return None
    if sign and not text[-4:].isdecimal():
        return None
    try:
        if digits >= 8:
            # ISO 8601's basic format is these digits with a T: read in C, same checks.
            naive = datetime.fromisoformat(f"{body[:8]}T{body[8:]}" if digits > 8 else body)
        else:
            naive = datetime(int(body[:4]), int(body[4:6]) if digits > 4 else 1, 1)
    except ValueError as exc:  # month 13, 30 February, hour 24...
        raise InvalidTimestamp(text) from exc
    offset = _offset(sign, text[-4:-2], text[-2:], text) if sign else None
    return naive, _PLAIN_PRECISIONS[digits], offset


def _offset(sign: str, hh: str, mm: str, text: str) -> timezone:
    hours, minutes = int(hh), int(mm)
    if hours > 14 or minutes > 59:
        raise InvalidTimestamp(text)
    return _zone_offset(sign == "-", hours, minutes)


@lru_cache(maxsize=64)
def _zone_offset(negative: bool, hours: int, minutes: int) -> timezone:
    """A fixed offset; the few a feed uses are made once (+0000, +0100, ...)."""
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if negative else delta)


def parse_dtm(text: str, zone: ZoneInfo) -> tuple[Instant, ClockNote | None]:
    """Read an HL7 DTM; the second value names a clock-change problem (ambiguous/nonexistent).

    Raises `InvalidTimestamp` when the text is not a valid date/time.
    """
    naive, precision, offset = _parts(text)
    note: ClockNote | None = None
    try:
        if offset is not None:
            # ``naive.replace(tzinfo=offset).astimezone(UTC)``, the same instant without the
            # slow `datetime.replace` (keywords parsed in Python on 3.11).
            utc = _combine(naive, naive.time(), UTC) - offset.utcoffset(None)
        else:
            utc, note = resolve_local(naive, zone)
    except OverflowError as exc:  # year 1 or 9999 pushed past the calendar by the offset
        raise InvalidTimestamp(text) from exc
    instant = _INSTANT(
        {"utc": utc, "original": text, "precision": precision, "zone_assumed": offset is None}
    )
    return instant, note


def read_instant(
    reading: Reading, value: str, location: str, *, required: bool = False
) -> Instant | None:
    """An instant from a DTM value; None when empty. Invalid: an error if required, else a
    warning."""
    text = value.strip()
    if not text:
        return None
    read = reading.instants.get(text)  # MSH-7, EVN-2 and EVN-6 are often the same text
    try:
        instant, note = read or reading.instants.setdefault(text, parse_dtm(text, reading.zone))
    except InvalidTimestamp:
        if required:
            raise MappingError("not a valid HL7 date/time", location=location, code="102") from None
        reading.warn(location, "not a valid HL7 date/time; ignored")
        return None
    if note is not None:
        reading.warn(location, CLOCK_WARNINGS[note])
    return instant


def read_date(reading: Reading, value: str, location: str) -> tuple[date | None, str | None]:
    """A calendar date as written (no zone conversion) and the original text."""
    text = value.strip()
    if not text:
        return None, None
    try:
        naive, precision, _ = _parts(text)
    except InvalidTimestamp:
        reading.warn(location, "not a valid HL7 date; ignored")
        return None, None
    if precision in (Precision.YEAR, Precision.MONTH):
        reading.warn(location, "date has no day; only the original text is kept")
        return None, text
    return naive.date(), text


def read_code(
    reading: Reading,
    value: str,
    location: str,
    *,
    system: str,
    known: Mapping[str, str],
    what: str,
    quote: bool = True,
    table: Mapping[str, str] | None = None,
    element: str | None = None,
    display: str | None = None,
) -> Coding | None:
    """A code under `system` when it is in `known`, else under the feed's local system.

    A feed's code `table` (local code to national code) is tried first. `element` names the
    local system when it is not the HL7 `location` (a profile-configured field); `display` is
    the sender's own text, kept for a local code. `quote=False` keeps the code out of the
    warning (for codes that describe the person).
    """
    code = value.strip()
    if not code:
        return None
    if table:
        national = table.get(code)
        if national is not None and national in known:
            return national_coding(system, national, known[national])
    if code in known:
        return national_coding(system, code, known[code])
    # Short codes only: a long "code" is free text, and free text may say anything.
    shown = f" {code!r}" if quote and len(code) <= 12 else ""
    reading.warn(location, f"{what}{shown} is not in the national list; kept as a local code")
    return local_coding(local_system(reading.feed, element or location), code, display)


_NATIONAL_CODINGS: dict[tuple[str, str, str | None], Coding] = {}


def national_coding(system: str, code: str, display: str | None = None) -> Coding:
    """The `Coding` of a code from a national list (the lists in `mappings.codes`, the treatment
    functions), made once and shared: codings are frozen, and each list is a few hundred codes
    at most. Never for a sender's local code, which could be anything."""
    key = (system, code, display)
    coding = _NATIONAL_CODINGS.get(key)
    if coding is None:
        coding = _NATIONAL_CODINGS[key] = Coding(system=system, code=code, display=display)
    return coding


# A trust's wards, beds, consultants and a feed's local codes are a few thousand at most, and
# every message names some: their models are frozen, so each is made once and shared (up to
# `_SHARED_MAX` of each, then the cache starts again: a feed sending ever new values costs no
# more than without it).
_SHARED_MAX = 4096
_SHARED_CHARS = 200
"""The most characters (all of a key's texts together) of a value that is shared: a ward, bed,
consultant or local code is short. A longer one is free text (a sender may put anything in a
description or a name), made for its message alone, so no cache can hold a sender's long
texts: 4,096 of them at a message's size each would be gigabytes."""
_LOCATIONS: dict[tuple[str | None, ...], Location] = {}
_CLINICIANS: dict[tuple[str | None, ...], Clinician] = {}
_LOCAL_CODINGS: dict[tuple[str | None, ...], Coding] = {}


def _keep(cache: dict[tuple[str | None, ...], _M], key: tuple[str | None, ...], model: _M) -> _M:
    """`model`, kept in `cache` under `key` (the cache emptied first when full), unless the
    key's texts are longer than `_SHARED_CHARS` together."""
    if sum(len(text) for text in key if text) > _SHARED_CHARS:
        return model
    if len(cache) >= _SHARED_MAX:
        cache.clear()
    cache[key] = model
    return model


def local_coding(system: str, code: str, display: str | None = None) -> Coding:
    """The `Coding` of a sender's own code (a feed's local system), shared like a ward: a
    feed's local codes are a bounded vocabulary too."""
    key = (system, code, display)
    coding = _LOCAL_CODINGS.get(key)
    if coding is None:
        data = {"system": system, "code": code, "display": display}
        coding = _keep(_LOCAL_CODINGS, key, _CODING(data))
    return coding


def read_clinician(rep: Repetition) -> Clinician | None:
    """A clinician from an XCN: code (consultant 'C' + 7 digits), family, given, prefix."""
    code_text, family_text, given_text, _, _, prefix_text = rep.values(6)
    code, family = clean(code_text), clean(family_text)
    given, prefix = clean(given_text), clean(prefix_text)
    if code is None and family is None and given is None and prefix is None:
        return None
    key = (code, family, given, prefix)
    clinician = _CLINICIANS.get(key)
    if clinician is None:
        data = {"code": code, "family": family, "given": given, "prefix": prefix}
        clinician = _keep(_CLINICIANS, key, _CLINICIAN(data))
    return clinician


def read_location(pl: Repetition, ward_component: int = 2) -> Location | None:
    """A location from a PL, read the NHS ITK way unless the feed says its ward is in PL.1.

    ITK (``ward_component=2``) puts the point of care in PL.1, the NHS ward code in PL.2
    ("room"), the bed in PL.3 and the ODS site in PL.4; a feed that leaves PL.2 empty is read
    with PL.1 as the ward, and `room` stays empty (under ITK the room component is the ward).
    With ``ward_component=1`` the PL is read as base HL7 has it: PL.1 the ward (point of
    care), PL.2 the room.
    """
    if not pl:
        return None
    texts = pl.values(9)
    point_of_care = clean(texts[0])
    if ward_component == 1:
        ward, room = point_of_care, clean(texts[1])
    else:
        ward, room = clean(texts[1]) or point_of_care, None
    bed, facility, description = clean(texts[2]), clean(texts[3]), clean(texts[8])
    if ward is None and room is None and bed is None and facility is None and description is None:
        return None  # point_of_care is set only when ward is
    key = (ward, room, bed, facility, point_of_care, description)
    location = _LOCATIONS.get(key)
    if location is None:
        data = {
            "ward": ward,
            "room": room,
            "bed": bed,
            "facility": facility,
            "point_of_care": point_of_care,
            "description": description,
        }
        location = _keep(_LOCATIONS, key, _LOCATION(data))
    return location
