"""The unresolved dead letters grouped by error, for the console: each destination's dead
letters whose normalised reason is the same (`normalised`), with how many, the newest and
oldest, and their delivery ids (for a bulk replay of one group).

Reasons hold numbers that differ between otherwise equal failures (attempt counts, durations,
addresses, ids); `normalised` puts ``N`` for each number except an HTTP status code, so "gave up
after 6 attempts: HTTP 503" and "gave up after 7 attempts: HTTP 503" are one group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from engine.store.base import StoreBase
from engine.store.console_reads import delivery_state_is
from engine.store.schema import deliveries

SCAN = 5000
"""At most this many unresolved dead letters (the newest) are grouped."""
_HEX = re.compile(r"\b[0-9a-fA-F-]{16,}\b")
_NUMBER = re.compile(r"(?<!HTTP )\b\d+(?:[.:]\d+)*\b")
_SPACE = re.compile(r"\s+")


def normalised(reason: str | None) -> str:
    """The reason with its varying numbers and ids replaced, at most 160 characters."""
    text = _HEX.sub("…", reason or "no reason recorded")
    text = _SPACE.sub(" ", _NUMBER.sub("N", text)).strip()
    return text[:160]


@dataclass(frozen=True, slots=True)
class DeadLetterGroup:
    destination: str
    reason: str
    """The normalised reason (`normalised`)."""
    delivery_ids: tuple[int, ...]
    """Newest first."""
    newest: datetime
    oldest: datetime

    @property
    def count(self) -> int:
        return len(self.delivery_ids)


@dataclass(frozen=True, slots=True)
class DeadLetterGroups:
    groups: tuple[DeadLetterGroup, ...]
    """Largest first."""
    cut: bool
    """True when there were more than `SCAN` dead letters (only the newest are grouped)."""


async def dead_letter_groups(
    store: StoreBase, *, destination: str | None = None, up_to: int | None = None
) -> DeadLetterGroups:
    """Unresolved dead letters (one destination's, if given; none newer than `up_to`), grouped
    by destination and normalised reason."""
    query = sa.select(
        deliveries.c.id, deliveries.c.destination, deliveries.c.last_error, deliveries.c.created_at
    ).where(delivery_state_is("dead"))
    if destination:
        query = query.where(deliveries.c.destination == destination)
    if up_to is not None:
        query = query.where(deliveries.c.id <= up_to)
    query = query.order_by(deliveries.c.id.desc()).limit(SCAN + 1)
    async with store.reading() as conn:
        rows = (await conn.execute(query)).all()
    found: dict[tuple[str, str], list[tuple[int, datetime]]] = {}
    for r in rows[:SCAN]:
        found.setdefault((r.destination, normalised(r.last_error)), []).append((r.id, r.created_at))
    groups = [
        DeadLetterGroup(
            dest,
            reason,
            tuple(i for i, _ in items),
            max(t for _, t in items),
            min(t for _, t in items),
        )
        for (dest, reason), items in found.items()
    ]
    groups.sort(key=lambda g: (-g.count, g.destination, g.reason))
    return DeadLetterGroups(tuple(groups), len(rows) > SCAN)
