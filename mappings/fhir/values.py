"""Small readers of FHIR JSON values: objects, lists, strings, codings, extensions,
identifiers, ODS codes, and FHIR dates and times as `Instant`s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo

from mappings.hl7v2.types import Reading
from mappings.model import ODS_ORGANISATION_SYSTEM, ODS_SITE_SYSTEM, Instant, Precision
from mappings.wallclock import CLOCK_WARNINGS, ClockNote, resolve_local

JsonObject = dict[str, Any]


_DATE_TIME = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?"
)


@lru_cache(maxsize=16)
def feed_zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def as_object(value: Any) -> JsonObject | None:
    return value if isinstance(value, dict) else None


def as_objects(value: Any) -> list[JsonObject]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def as_text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


def as_texts(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [t for t in (as_text(v) for v in value) if t]


def codings_of(concept: Any) -> list[JsonObject]:
    return as_objects(concept.get("coding")) if isinstance(concept, dict) else []


def first_code(concept: Any, system: str | None = None) -> str | None:
    for coding in codings_of(concept):
        if system is None or coding.get("system") == system:
            code = as_text(coding.get("code"))
            if code:
                return code
    return None


def extensions_of(holder: JsonObject, url: str) -> Iterable[JsonObject]:
    return [e for e in as_objects(holder.get("extension")) if e.get("url") == url]


def identifier_value(identifiers: list[JsonObject], system: str) -> str | None:
    return next(
        (
            as_text(i.get("value"))
            for i in identifiers
            if i.get("system") == system and as_text(i.get("value"))
        ),
        None,
    )


def ods_of(data: JsonObject, system: str) -> str | None:
    return identifier_value(as_objects(data.get("identifier")), system)


def logical_ods(reference: Any) -> str | None:
    """The ODS code of a logical reference (``{"identifier": {system, value}}``)."""
    identifier = as_object(reference.get("identifier")) if isinstance(reference, dict) else None
    if identifier is None:
        return None
    return identifier_value([identifier], ODS_ORGANISATION_SYSTEM) or identifier_value(
        [identifier], ODS_SITE_SYSTEM
    )


_PRECISION_BY_GROUP: Final = (
    Precision.YEAR,
    Precision.MONTH,
    Precision.DAY,
    Precision.HOUR,
    Precision.MINUTE,
    Precision.SECOND,
    Precision.FRACTION,
)


def fhir_instant(value: Any, path: str, reading: Reading) -> Instant | None:
    """A FHIR date, dateTime or instant as an `Instant`; None when absent or unreadable.

    An explicit offset wins; a date (or, against the FHIR rules, a time without offset) is read
    in the feed's zone and marked ``zone_assumed``: a date is its local midnight.
    """
    text = as_text(value)
    if text is None:
        return None
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        reading.warn(path or "dateTime", "not a FHIR date/time; ignored")
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    given = sum(1 for g in (year, month, day, hour, minute, second, fraction) if g is not None)
    precision = _PRECISION_BY_GROUP[given - 1]
    try:
        naive = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
        )
        note: ClockNote | None = None
        if offset is None:
            utc, note = resolve_local(naive, reading.zone)
        elif offset == "Z":
            utc = naive.replace(tzinfo=UTC)
        else:
            sign = -1 if offset[0] == "-" else 1
            delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
            utc = naive.replace(tzinfo=timezone(sign * delta)).astimezone(UTC)
    except (ValueError, OverflowError):
        reading.warn(path or "dateTime", "not a valid date/time; ignored")
        return None
    if offset is None and hour is not None:
        reading.warn(path or "dateTime", "a time without an offset: read as local wall-clock time")
    if note is not None:
        reading.warn(path or "dateTime", CLOCK_WARNINGS[note])
    return Instant(utc=utc, original=text, precision=precision, zone_assumed=offset is None)
