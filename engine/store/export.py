"""What the analytics export reads (`engine.export`): accepted events in commit order after a
watermark, when each event's first notification was delivered, and the follow-ups whose outcome
for the 72-hour indicator became known in a time window. Reads only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from engine.store.base import StoreBase
from engine.store.schema import deliveries, events, follow_ups, messages
from engine.store.statuses import DeliveryStatus, FollowUpStatus


@dataclass(frozen=True, slots=True)
class ExportedEvent:
    sequence: int
    """The message log's id: commit order, the export's watermark."""
    event_id: str
    source: str
    kind: str
    care_setting: str
    patient_key: str
    occurred_at: datetime | None
    received_at: datetime
    corrects: str | None
    body: str


@dataclass(frozen=True, slots=True)
class SettledFollowUp:
    """A follow-up whose outcome is known: done by its due time, or due and not done."""

    event_id: str
    patient_key: str
    rule: str
    standard: str
    discharged_at: datetime
    due_at: datetime
    acknowledged_at: datetime | None
    done_at: datetime | None
    body: str
    """The discharge's care event (JSON)."""


async def settled_watermark(store: StoreBase, watermark: int, before: datetime) -> int:
    """The highest message id after `watermark` committed before `before` (else `watermark`).

    Message ids are handed out at insert, not at commit: with several replicas on PostgreSQL a
    lower id can commit after a higher one. Exporting only up to rows committed a while ago
    (a transaction here lasts well under a second) means no id below the bound is still to
    come, so moving the watermark past it never skips one."""
    query = sa.select(sa.func.max(messages.c.id)).where(
        messages.c.id > watermark, messages.c.committed_at < before
    )
    async with store.reading() as conn:
        found = (await conn.execute(query)).scalar()
    return int(found) if found is not None else watermark


async def events_after(
    store: StoreBase, watermark: int, limit: int, up_to: int
) -> list[ExportedEvent]:
    """Up to `limit` accepted events of messages after `watermark` and up to `up_to`, in id
    order."""
    query = (
        sa.select(
            messages.c.id.label("sequence"),
            events.c.event_id,
            events.c.source,
            events.c.kind,
            events.c.care_setting,
            events.c.patient_key,
            events.c.occurred_at,
            events.c.received_at,
            events.c.corrects,
            events.c.body,
        )
        .join(messages, messages.c.id == events.c.message_id)
        .where(messages.c.id > watermark, messages.c.id <= up_to)
        .order_by(messages.c.id)
        .limit(limit)
    )
    async with store.reading() as conn:
        rows = (await conn.execute(query)).all()
    return [ExportedEvent(**row._mapping) for row in rows]


async def first_deliveries(
    store: StoreBase, event_ids: Sequence[str], destinations: Sequence[str]
) -> dict[str, datetime]:
    """For each event, when its first delivery to one of `destinations` was delivered."""
    if not event_ids or not destinations:
        return {}
    first = sa.func.min(deliveries.c.delivered_at)
    query = (
        sa.select(deliveries.c.event_id, first)
        .where(
            deliveries.c.event_id.in_(list(event_ids)),
            deliveries.c.destination.in_(list(destinations)),
            deliveries.c.status == DeliveryStatus.DELIVERED.value,
        )
        .group_by(deliveries.c.event_id)
    )
    async with store.reading() as conn:
        rows = (await conn.execute(query)).all()
    return {event_id: at for event_id, at in rows if at is not None}


async def follow_ups_settled(
    store: StoreBase, after: datetime, until: datetime
) -> list[SettledFollowUp]:
    """Follow-ups whose outcome became known in (`after`, `until`]: done then (by the due time),
    or due then and not done by it. Withdrawn ones (a cancelled discharge) are left out."""
    f = follow_ups.c
    done_in_time = sa.and_(f.done_at.is_not(None), f.done_at <= f.due_at,
                           f.done_at > after, f.done_at <= until)  # fmt: skip
    missed = sa.and_(f.due_at > after, f.due_at <= until,
                     sa.or_(f.done_at.is_(None), f.done_at > f.due_at))  # fmt: skip
    query = (
        sa.select(
            f.event_id,
            f.patient_key,
            f.rule,
            f.standard,
            f.discharged_at,
            f.due_at,
            f.acknowledged_at,
            f.done_at,
            events.c.body,
        )
        .join(events, events.c.event_id == f.event_id)
        .where(f.status != FollowUpStatus.WITHDRAWN.value, sa.or_(done_in_time, missed))
        .order_by(f.due_at, f.event_id)
    )
    async with store.reading() as conn:
        rows = (await conn.execute(query)).all()
    return [SettledFollowUp(**row._mapping) for row in rows]
