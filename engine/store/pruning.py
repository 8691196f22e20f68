"""Retention: deleting settled messages and all that hangs off them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from engine.store.base import StoreBase
from engine.store.schema import (
    attempts,
    deliveries,
    events,
    follow_ups,
    mesh_acks,
    mesh_messages,
    messages,
)
from engine.store.statuses import OPEN_FOLLOW_UPS, DeliveryStatus, MessageStatus

_PRUNABLE = (MessageStatus.DUPLICATE.value, MessageStatus.ACCEPTED.value)


def _eligible(older_than: datetime, limit: int) -> sa.Select[tuple[int]]:
    """The ids of up to `limit` settled messages received before `older_than`, oldest first."""
    unsettled = sa.exists().where(
        deliveries.c.event_id == messages.c.event_id,
        deliveries.c.status != DeliveryStatus.DELIVERED,
    )
    following = sa.exists().where(
        follow_ups.c.event_id == messages.c.event_id,
        follow_ups.c.status.in_(OPEN_FOLLOW_UPS),
    )
    # Oldest first, read straight from ix_messages_received_at: the walk covers only the
    # messages older than the cut-off (those kept for good reason, and the `limit` pruned),
    # never the whole log; each is tested by index seeks (PostgreSQL: nested-loop anti-joins).
    # A duplicate has no deliveries or follow-ups of its own: its event id is either one never
    # stored, or its original's, and then it stays until the original is settled and goes
    # with it. So "a duplicate, or accepted with nothing unsettled" is one AND; as an OR of
    # the two statuses, SQLite read every accepted message by ix_messages_status_id and sorted them,
    # at every call, under the write lock, and as a CASE, PostgreSQL misjudged it and compiled
    # it (JIT) at every call.
    # `status || ''`: an expression no index serves, so that SQLite (without statistics) does
    # not take ix_messages_status_id for it over the range of received_at (as intake's
    # accepted-keys query does, `store/intake.py`).
    settled = sa.and_(
        (messages.c.status + "").in_(_PRUNABLE),
        ~unsettled,
        ~following,
    )
    return (
        sa.select(messages.c.id)
        .where(messages.c.received_at < older_than, settled)
        .order_by(messages.c.received_at, messages.c.id)
        .limit(limit)
    )


class Pruning(StoreBase):
    async def prune(self, older_than: datetime, *, limit: int = 1000) -> int:
        """Delete up to `limit` settled messages received before `older_than`; return how many.

        Settled: a duplicate, or an accepted message every delivery of which was delivered.
        Never touched: pending deliveries, dead letters, rejected messages (unresolved errors).
        A pruned message's id no longer de-duplicates: the dedupe window is the retention.
        """
        async with self.writing() as conn:
            ids = [row.id for row in await conn.execute(_eligible(older_than, limit))]
            if not ids:
                await conn.rollback()
                return 0
            event_ids = sa.select(events.c.event_id).where(events.c.message_id.in_(ids))
            delivery_ids = sa.select(deliveries.c.id).where(deliveries.c.event_id.in_(event_ids))
            await conn.execute(sa.delete(attempts).where(attempts.c.delivery_id.in_(delivery_ids)))
            for mesh in (mesh_acks, mesh_messages):
                await conn.execute(sa.delete(mesh).where(mesh.c.delivery_id.in_(delivery_ids)))
            await conn.execute(sa.delete(deliveries).where(deliveries.c.event_id.in_(event_ids)))
            await conn.execute(sa.delete(follow_ups).where(follow_ups.c.event_id.in_(event_ids)))
            await conn.execute(sa.delete(events).where(events.c.message_id.in_(ids)))
            await conn.execute(sa.delete(messages).where(messages.c.id.in_(ids)))
            await conn.commit()
        return len(ids)
