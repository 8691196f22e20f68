"""Follow-ups for the console's team view: every open or acknowledged follow-up, and those done
recently, each with its discharge event and what its notification deliveries recorded.

The recipient a notification went to is not a column: the sender records it in the delivered
attempt's detail (``to <recipient> by recipients[<n>] <recipient> (why): …``,
`engine.delivery.notification`). This read returns those details; the console reads the
recipient from them, or derives it from the stored event with today's config.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from engine.store.base import StoreBase
from engine.store.console_reads import row_view
from engine.store.schema import attempts, deliveries, events, follow_ups
from engine.store.statuses import OPEN_FOLLOW_UPS, FollowUpStatus

LIMIT = 2000
"""At most this many follow-ups are listed (soonest due first); the page says when it cut."""


@dataclass(frozen=True, slots=True)
class FollowUpRow:
    """One follow-up, its discharge event, and the recipients its notifications recorded."""

    event_id: str
    message_id: int
    source: str
    patient_key: str
    standard: str
    discharged_at: datetime
    due_at: datetime
    status: str
    acknowledged_at: datetime | None
    done_at: datetime | None
    body: str
    """The discharge event's JSON (to derive its recipient when none was recorded)."""
    recorded: tuple[tuple[str, str], ...] = ()
    """(destination, detail) of each delivered attempt that names a recipient."""
    destinations: tuple[str, ...] = ()
    """Every destination the discharge was routed to."""


@dataclass(frozen=True, slots=True)
class FollowUpList:
    rows: tuple[FollowUpRow, ...]
    cut: bool


async def team_follow_ups(store: StoreBase, now: datetime, done_within: timedelta) -> FollowUpList:
    """Open and acknowledged follow-ups, and those done since ``now - done_within``."""
    query = (
        sa.select(
            follow_ups.c.event_id, events.c.message_id, events.c.source, follow_ups.c.patient_key,
            follow_ups.c.standard, follow_ups.c.discharged_at, follow_ups.c.due_at,
            follow_ups.c.status, follow_ups.c.acknowledged_at, follow_ups.c.done_at, events.c.body,
        )
        .join(events, events.c.event_id == follow_ups.c.event_id)
        .where(
            sa.or_(
                follow_ups.c.status.in_(OPEN_FOLLOW_UPS),
                sa.and_(follow_ups.c.status == FollowUpStatus.DONE,
                        follow_ups.c.done_at >= now - done_within),
            )
        )
        .order_by(follow_ups.c.due_at, follow_ups.c.event_id)
        .limit(LIMIT + 1)
    )  # fmt: skip
    async with store.reading() as conn:
        found = (await conn.execute(query)).all()
        ids = [r.event_id for r in found[:LIMIT]]
        recorded: dict[str, list[tuple[str, str]]] = {}
        routed: dict[str, list[str]] = {}
        for d in await conn.execute(
            sa.select(deliveries.c.event_id, deliveries.c.destination)
            .where(deliveries.c.event_id.in_(ids))
            .order_by(deliveries.c.id)
        ):
            routed.setdefault(d.event_id, []).append(d.destination)
        for a in await conn.execute(
            sa.select(deliveries.c.event_id, deliveries.c.destination, attempts.c.detail)
            .join(deliveries, deliveries.c.id == attempts.c.delivery_id)
            .where(
                deliveries.c.event_id.in_(ids),
                attempts.c.outcome == "delivered",
                attempts.c.detail.like("to %"),
            )
            .order_by(attempts.c.id)
        ):
            recorded.setdefault(a.event_id, []).append((a.destination, a.detail))
    rows = tuple(
        row_view(
            FollowUpRow,
            r,
            recorded=tuple(recorded.get(r.event_id, ())),
            destinations=tuple(routed.get(r.event_id, ())),
        )
        for r in found[:LIMIT]
    )
    return FollowUpList(rows, len(found) > LIMIT)
