"""Times and durations as people read them: local time in Europe/London with the zone shown
("2026-01-01 09:00:00 GMT", "2026-07-01 10:00:00 BST"), and durations in words ("4.2 s",
"3 min 5 s", "2 h 10 min", "3 d 4 h") instead of timedelta reprs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

LOCAL = ZoneInfo("Europe/London")


def local(value: datetime | None, *, seconds: bool = True) -> str:
    """`value` (UTC) in Europe/London, with the zone's abbreviation; '' for None."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    shown = value.astimezone(LOCAL)
    return shown.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def duration(value: timedelta | float | None) -> str:
    """A duration in words: "0.8 s", "4.2 s", "3 min 5 s", "2 h 10 min", "3 d 4 h"."""
    if value is None:
        return ""
    total = value.total_seconds() if isinstance(value, timedelta) else float(value)
    sign = "-" if total < 0 else ""
    total = abs(total)
    if total < 60:
        return f"{sign}{total:.1f} s" if total < 10 else f"{sign}{total:.0f} s"
    whole = int(total)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days} d {hours} h" if hours else f"{sign}{days} d"
    if hours:
        return f"{sign}{hours} h {minutes} min" if minutes else f"{sign}{hours} h"
    return f"{sign}{minutes} min {secs} s" if secs else f"{sign}{minutes} min"


def milliseconds(ms: int | None) -> str:
    """An attempt's duration in milliseconds, in words."""
    return "" if ms is None else (f"{ms} ms" if ms < 1000 else duration(ms / 1000))
