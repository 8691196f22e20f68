"""What operators change: replay, resolve, hold and release, each audited in its own transaction.

Every UPDATE names the state it expects (``WHERE status = 'dead'`` and so on), so a concurrent
delivery worker or a second operator can never be overridden: the later writer simply changes
nothing.

A **replay** ("resend as it was") puts a delivery back to pending, due now, keeping its
attempts and its idempotency key: a destination that already applied it can drop the repeat.

A **hold** keeps the delivery pending but due at the end of time, so no worker claims it while
it still holds back the same patient's later deliveries to that destination, exactly as a
pending delivery does: per-patient order survives a hold and its release. A delivery in flight
(leased) cannot be held; try again when its attempt has been recorded.

A **resolve** closes a dead letter with a comment; it stops holding later deliveries back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.store.audit import Actor, AuditEntry, write_audit
from engine.store.base import StoreBase, utc_now
from engine.store.console_reads import dead_letter_condition
from engine.store.schema import deliveries, events, messages
from engine.store.statuses import DeliveryStatus, MessageStatus

HELD_UNTIL = datetime(9999, 1, 1, tzinfo=UTC)
"""The due time of a held delivery: never, until released."""


@dataclass(frozen=True, slots=True)
class Changed:
    count: int
    delivery_ids: tuple[int, ...] = ()


_RETURNING = (deliveries.c.id, deliveries.c.event_id, deliveries.c.patient_key)


def _comment(text: str | None) -> str | None:
    return None if text is None else text.replace("\x00", "").strip()[:2000] or None


def _required(comment: str) -> str:
    text = _comment(comment)
    if not text:
        raise ValueError("a resolution needs a comment")
    return text


async def _message_ids(conn: AsyncConnection, event_ids: Sequence[str]) -> dict[str, int]:
    if not event_ids:
        return {}
    rows = await conn.execute(
        sa.select(events.c.event_id, events.c.message_id).where(
            events.c.event_id.in_(sorted(set(event_ids)))
        )
    )
    return {r.event_id: int(r.message_id) for r in rows}


async def _update_deliveries(
    store: StoreBase,
    actor: Actor,
    action: str,
    where: sa.ColumnElement[bool],
    values: dict[str, Any],
    reason: str | None,
) -> Changed:
    """One UPDATE of the deliveries matching `where`, one audit row per delivery changed."""
    async with store.writing() as conn:
        rows = (
            await conn.execute(
                sa.update(deliveries).where(where).values(**values).returning(*_RETURNING)
            )
        ).all()
        owners = await _message_ids(conn, [r.event_id for r in rows])
        entries = [
            AuditEntry(action, message_id=owners.get(r.event_id), delivery_id=r.id,
                       patient_key=r.patient_key, reason=reason)
            for r in rows
        ]  # fmt: skip
        await write_audit(conn, actor, entries)
        await conn.commit()
    return Changed(len(rows), tuple(sorted(r.id for r in rows)))


def requeued(now: datetime) -> dict[str, Any]:
    """The values that put a dead or delivered delivery back to pending, due at `now`."""
    return {
        "status": DeliveryStatus.PENDING,
        "next_attempt_at": now,
        "lease_until": None,
        "lease_owner": None,
        "hold": False,
        "held_at": None,
        "held_by": None,
        "resolved_at": None,
        "resolved_by": None,
        "resolution": None,
    }


_REPLAYABLE = deliveries.c.status.in_([DeliveryStatus.DEAD, DeliveryStatus.DELIVERED])


async def replay_delivery(
    store: StoreBase, actor: Actor, delivery_id: int, reason: str | None = None
) -> Changed:
    """Send a dead-lettered or delivered delivery again, as it was."""
    where = sa.and_(deliveries.c.id == delivery_id, _REPLAYABLE)
    return await _update_deliveries(
        store, actor, "replay", where, requeued(utc_now()), _comment(reason)
    )


async def replay_message(
    store: StoreBase, actor: Actor, message_id: int, reason: str | None = None
) -> Changed:
    """Send every dead-lettered or delivered delivery of a message's event again, as it was."""
    event_id = sa.select(messages.c.event_id).where(messages.c.id == message_id)
    where = sa.and_(deliveries.c.event_id == event_id.scalar_subquery(), _REPLAYABLE)
    return await _update_deliveries(
        store, actor, "replay", where, requeued(utc_now()), _comment(reason)
    )


async def replay_dead_letters(
    store: StoreBase,
    actor: Actor,
    *,
    destination: str | None,
    source: str | None,
    up_to: int | None,
    limit: int,
    reason: str | None = None,
    only: Sequence[int] | None = None,
) -> Changed:
    """Replay up to `limit` unresolved dead letters matching the filter, oldest first; with
    `only`, just those of these delivery ids (one group of `console_dead_letters`)."""
    chosen = (
        sa.select(deliveries.c.id)
        .where(dead_letter_condition(destination, source, up_to))
        .order_by(deliveries.c.id)
        .limit(limit)
    )
    if only is not None:
        chosen = chosen.where(deliveries.c.id.in_(list(only)))
    where = sa.and_(
        deliveries.c.id.in_(chosen.scalar_subquery()), deliveries.c.status == DeliveryStatus.DEAD
    )
    return await _update_deliveries(
        store, actor, "replay_bulk", where, requeued(utc_now()), _comment(reason)
    )


async def resolve_delivery(
    store: StoreBase, actor: Actor, delivery_id: int, comment: str
) -> Changed:
    """Close an unresolved dead letter with the operator's comment (required)."""
    text = _required(comment)
    where = sa.and_(
        deliveries.c.id == delivery_id,
        deliveries.c.status == DeliveryStatus.DEAD,
        deliveries.c.resolved_at.is_(None),
    )
    values = {"resolved_at": utc_now(), "resolved_by": actor.name, "resolution": text,
              "hold": False}  # fmt: skip
    return await _update_deliveries(store, actor, "resolve", where, values, text)


async def hold_delivery(
    store: StoreBase, actor: Actor, delivery_id: int, reason: str | None = None
) -> Changed:
    now = utc_now()
    where = sa.and_(
        deliveries.c.id == delivery_id,
        deliveries.c.status == DeliveryStatus.PENDING,
        deliveries.c.held_at.is_(None),
        sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
    )
    # The lapsed lease goes with the hold: its claim's late retry or dead letter is then refused
    # (engine/store/outcomes.py) and its renewer cannot take the row back.
    values = {"held_at": now, "held_by": actor.name, "next_attempt_at": HELD_UNTIL,
              "lease_owner": None, "lease_until": None}  # fmt: skip
    return await _update_deliveries(store, actor, "hold", where, values, _comment(reason))


async def release_delivery(
    store: StoreBase, actor: Actor, delivery_id: int, reason: str | None = None
) -> Changed:
    where = sa.and_(
        deliveries.c.id == delivery_id,
        deliveries.c.status == DeliveryStatus.PENDING,
        deliveries.c.held_at.is_not(None),
    )
    values = {"held_at": None, "held_by": None, "next_attempt_at": utc_now()}
    return await _update_deliveries(store, actor, "release", where, values, _comment(reason))


async def resolve_message(store: StoreBase, actor: Actor, message_id: int, comment: str) -> Changed:
    """Close a rejected message with the operator's comment (required)."""
    text = _required(comment)
    async with store.writing() as conn:
        row = (
            await conn.execute(
                sa.update(messages)
                .where(
                    messages.c.id == message_id,
                    messages.c.status == MessageStatus.REJECTED,
                    messages.c.resolved_at.is_(None),
                )
                .values(resolved_at=utc_now(), resolved_by=actor.name, resolution=text)
                .returning(messages.c.id, messages.c.patient_key)
            )
        ).first()
        if row is not None:
            entry = AuditEntry("resolve", message_id=row.id, patient_key=row.patient_key,
                               reason=text)  # fmt: skip
            await write_audit(conn, actor, [entry])
        await conn.commit()
    return Changed(0 if row is None else 1)
