"""Local wall-clock times without an offset, read in a feed's zone (Europe/London by default).

Twice a year the clock makes such a time uncertain, and both cases resolve the same way, to
the **earlier** of the two instants the text could mean:

- clocks go back (last Sunday of October, 02:00 BST → 01:00 GMT): 01:00-01:59 happens twice;
  01:30 is read as its first occurrence, 01:30 BST = 00:30 UTC;
- clocks go forward (last Sunday of March, 01:00 GMT → 02:00 BST): 01:00-01:59 never happens;
  01:30 is read with the offset of the hour that follows, 01:30 BST = 00:30 UTC (the clock
  showed 00:30 GMT), not with the offset before it (01:30 UTC, an hour later).

The earlier instant gives the earlier follow-up due time, so an uncertain discharge time never
shortens the time a clinician thinks they have. Either case is noted (`ClockNote`) and the
readers add a warning to the care event. Pure: no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo

__all__ = ["CLOCK_WARNINGS", "ClockNote", "resolve_local"]

ClockNote = Literal["nonexistent", "ambiguous"]

CLOCK_WARNINGS: dict[ClockNote, str] = {
    "ambiguous": "local time happens twice (clocks go back): the earlier instant is used",
    "nonexistent": "local time does not exist (clocks go forward): the earlier instant is used",
}


_combine = datetime.combine


def _fold_1(naive: datetime) -> datetime:
    """`naive` (fold 0, no tzinfo) with fold 1: ``naive.replace(fold=1)``."""
    return datetime(
        naive.year, naive.month, naive.day, naive.hour, naive.minute, naive.second,
        naive.microsecond, fold=1,
    )  # fmt: skip


def resolve_local(naive: datetime, zone: ZoneInfo) -> tuple[datetime, ClockNote | None]:
    """`naive` wall-clock time in `zone` as an aware UTC datetime, and what was uncertain.

    Raises `OverflowError` for times pushed past the calendar by the offset (year 1 or 9999).
    """
    if naive.fold:
        naive = naive.replace(fold=0)
    offset = zone.utcoffset(naive)
    # The other fold made by the constructor and the UTC instant by `combine`: the same values
    # as ``naive.replace(fold=1)`` and ``(...).replace(tzinfo=UTC)``, in a third of the time
    # (`datetime.replace` parses its keywords in Python on 3.11); every timestamp comes here.
    if offset is not None and offset == zone.utcoffset(_fold_1(naive)):
        # The usual case, away from a clock change: one offset, whichever fold. (The same
        # instant as ``naive.replace(tzinfo=zone).astimezone(UTC)``, with two fewer datetimes.)
        utc = naive - offset
        return _combine(utc, utc.time(), UTC), None
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    first_utc, second_utc = first.astimezone(UTC), second.astimezone(UTC)
    if first_utc == second_utc:  # not reached for a ZoneInfo: kept for any other tzinfo
        return first_utc, None
    # The two folds differ only around a change: a gap when neither round-trips to `naive`.
    exists = first_utc.astimezone(zone).replace(tzinfo=None) == naive
    return min(first_utc, second_utc), "ambiguous" if exists else "nonexistent"
