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


class Pruning(StoreBase):
    async def prune(self, older_than: datetime, *, limit: int = 1000) -> int:
        """Delete up to `limit` settled messages received before `older_than`; return how many.

        Settled: a duplicate, or an accepted message every delivery of which was delivered.
        Never touched: pending deliveries, dead letters, rejected messages (unresolved errors).
        A pruned message's id no longer de-duplicates: the dedupe window is the retention.
        """
        unsettled = sa.exists().where(
            deliveries.c.event_id == messages.c.event_id,
            deliveries.c.status != DeliveryStatus.DELIVERED,
        )
        following = sa.exists().where(
            follow_ups.c.event_id == messages.c.event_id,
            follow_ups.c.status.in_(OPEN_FOLLOW_UPS),
        )
        eligible = (
            sa.select(messages.c.id)
            .where(
                messages.c.received_at < older_than,
                sa.or_(
                    messages.c.status == MessageStatus.DUPLICATE,
                    sa.and_(messages.c.status == MessageStatus.ACCEPTED, ~unsettled, ~following),
                ),
            )
            .order_by(messages.c.id)
            .limit(limit)
        )
        async with self.writing() as conn:
            ids = [row.id for row in await conn.execute(eligible)]
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
