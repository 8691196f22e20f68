"""What operators read of follow-ups: their list, and the original event of a withdrawal.

The recipients' acknowledgements and follow-ups done are recorded through their links'
tokens (`ack_links`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from engine.store.base import StoreBase, utc_now
from engine.store.schema import events, follow_ups
from engine.store.statuses import OPEN_FOLLOW_UPS, FollowUpStatus

ListedState = Literal["overdue", "unacknowledged", "open"]


@dataclass(frozen=True, slots=True)
class ListedFollowUp:
    """One follow-up as the operators' list shows it: identifiers only."""

    event_id: str
    standard: str
    due_at: datetime
    status: str


async def record_follow_up(store: StoreBase, event_id: str, action: Literal["ack", "done"],
                           by: str) -> bool:  # fmt: skip
    """An acknowledgement (`ack`) or a follow-up done (`done`) recorded directly, without a
    link's token (tools and tests; recipients go through `ack_links.use_link`). Every UPDATE
    names the states it expects, so an acknowledgement never reopens a follow-up that is done,
    and a second call changes nothing. False if nothing was open."""
    now = utc_now()
    if action == "ack":
        change = (
            sa.update(follow_ups)
            .where(follow_ups.c.event_id == event_id, follow_ups.c.status == FollowUpStatus.OPEN)
            .values(status=FollowUpStatus.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=by)
        )
    else:
        change = (
            sa.update(follow_ups)
            .where(follow_ups.c.event_id == event_id, follow_ups.c.status.in_(OPEN_FOLLOW_UPS))
            .values(status=FollowUpStatus.DONE, done_at=now, done_by=by)
        )
    async with store.writing() as conn:
        result = await conn.execute(change)
        await conn.commit()
    return bool(result.rowcount)


async def listed_follow_ups(store: StoreBase, state: ListedState, now: datetime,
                            unacknowledged_after: timedelta) -> list[ListedFollowUp]:  # fmt: skip
    """Open follow-ups by state (overdue, unacknowledged, open), soonest due first, at most 500."""
    where: list[Any] = [follow_ups.c.status.in_(OPEN_FOLLOW_UPS)]
    if state == "overdue":
        where.append(follow_ups.c.due_at <= now)
    elif state == "unacknowledged":
        where += [follow_ups.c.status == FollowUpStatus.OPEN,
                  follow_ups.c.created_at <= now - unacknowledged_after]  # fmt: skip
    query = (
        sa.select(
            follow_ups.c.event_id, follow_ups.c.standard, follow_ups.c.due_at, follow_ups.c.status
        )
        .where(*where)
        .order_by(follow_ups.c.due_at)
        .limit(500)
    )
    async with store.reading() as conn:
        rows = (await conn.execute(query)).all()
    return [ListedFollowUp(r.event_id, r.standard, r.due_at, str(r.status)) for r in rows]


async def event_body(store: StoreBase, event_id: str) -> str | None:
    """The stored care event JSON of `event_id`, or None if there is no such event."""
    query = sa.select(events.c.body).where(events.c.event_id == event_id)
    async with store.reading() as conn:
        body = (await conn.execute(query)).scalar()
    return None if body is None else str(body)
