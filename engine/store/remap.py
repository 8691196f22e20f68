"""The re-map write: a stored event given today's mapping, and its deliveries today's routes.

The console (`engine.console.remap`) maps the stored payload again; this writes the result, in
one transaction with its audit rows:

- the event's body (and care setting, stay, time) are replaced; the event id is kept;
- per today's routes: a new pending delivery where the event has none; a dead letter put back
  to pending; a pending delivery simply sends the new body; a delivered one is left alone;
- a destination the event has no delivery for gets one only if no *later* message of the same
  patient has a delivery to it: per-patient order is by delivery id, so an old event queued now
  would arrive after newer ones. Such destinations are reported as skipped;
- deliveries are inserted with ``ON CONFLICT DO NOTHING`` on the idempotency key, so two
  operators re-mapping at once create each delivery once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.store.audit import Actor, AuditEntry, write_audit
from engine.store.base import StoreBase
from engine.store.operator import requeued
from engine.store.records import AcceptedEvent, idempotency_key
from engine.store.schema import deliveries, events, messages
from engine.store.statuses import DeliveryStatus


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """What a re-map reads of a logged message."""

    source: str
    payload: bytes
    received_at: datetime
    transport_id: str | None
    status: str
    event_id: str | None


@dataclass(frozen=True, slots=True)
class Remapping:
    """What today's mapping made of a stored message's payload."""

    message_id: int
    event_id: str
    accepted: AcceptedEvent | None
    """None: today's config rejects it (see `not_mapped`)."""
    body: str | None = None
    """The event as JSON, with the stored event id."""
    not_mapped: str | None = None
    """Why today's config rejects it, safe to show an operator."""


@dataclass(frozen=True, slots=True)
class Remapped:
    outcome: str
    """remapped, not_mapped (today's config rejects it), refused (see `problem`), missing."""
    problem: str | None = None
    """Why nothing changed, safe to show an operator (no patient data)."""
    created: tuple[str, ...] = ()
    """Destinations given a new delivery."""
    requeued: tuple[str, ...] = ()
    """Destinations whose dead letter was put back to pending."""
    updated: tuple[str, ...] = ()
    """Destinations with a pending delivery that will now send the new body."""
    delivered: tuple[str, ...] = ()
    """Destinations that already have it (not sent again)."""
    skipped: tuple[str, ...] = ()
    """Destinations not given a delivery: a later message of the patient already went there."""
    unrouted: tuple[str, ...] = ()
    """Destinations the event has a delivery for that today's routes no longer name (left)."""
    delivery_ids: tuple[int, ...] = field(default=())
    """Deliveries created or put back to pending."""

    @property
    def count(self) -> int:
        return len(self.delivery_ids)


def summary(r: Remapped) -> str:
    """What a re-map did, per destination (no patient data): for the audit log and the page."""
    parts = [
        f"{label}: {', '.join(names)}"
        for label, names in (
            ("new", r.created),
            ("requeued", r.requeued),
            ("pending", r.updated),
            ("already delivered", r.delivered),
            ("skipped (a later message went there)", r.skipped),
            ("no longer routed", r.unrouted),
        )
        if names
    ]
    return "re-mapped with today's config; " + ("; ".join(parts) or "no destinations")


async def stored_message(store: StoreBase, message_id: int) -> StoredMessage | None:
    """The logged message a re-map starts from, or None."""
    async with store.reading() as conn:
        row = (
            await conn.execute(
                sa.select(
                    messages.c.source,
                    messages.c.payload,
                    messages.c.received_at,
                    messages.c.transport_id,
                    messages.c.status,
                    messages.c.event_id,
                ).where(messages.c.id == message_id)
            )
        ).first()
    if row is None:
        return None
    return StoredMessage(row.source, bytes(row.payload), row.received_at, row.transport_id,
                         row.status, row.event_id)  # fmt: skip


async def apply_remap(
    store: StoreBase, actor: Actor, remapping: Remapping, reason: str | None, now: datetime
) -> Remapped:
    """Write what today's mapping made of a stored message; see the module docstring."""
    message_id, event_id, accepted = remapping.message_id, remapping.event_id, remapping.accepted
    async with store.writing() as conn:
        stored = (await conn.execute(
            sa.select(events.c.kind, events.c.patient_key).where(events.c.event_id == event_id)
        )).first()  # fmt: skip
        if stored is None:
            await conn.rollback()
            return Remapped("refused", "the message's event is gone (pruned?)")
        if accepted is None or remapping.body is None:
            detail = remapping.not_mapped or "does not map with today's config"
            await write_audit(conn, actor, [AuditEntry(
                "remap", message_id=message_id, patient_key=stored.patient_key,
                reason=reason, detail=detail)], now)  # fmt: skip
            await conn.commit()
            return Remapped("not_mapped", detail)
        if accepted.kind != stored.kind or accepted.patient_key != stored.patient_key:
            what = "event kind" if accepted.kind != stored.kind else "patient"
            await conn.rollback()
            return Remapped("refused", f"today's mapping gives another {what}: that is a "
                            "correction for the source to send, not a re-map")  # fmt: skip
        await conn.execute(
            sa.update(events)
            .where(events.c.event_id == event_id)
            .values(body=remapping.body, care_setting=accepted.care_setting,
                    stay_id=accepted.stay_id, occurred_at=accepted.occurred_at)
        )  # fmt: skip
        result = await _route(conn, event_id, stored.patient_key, message_id, accepted, now)
        audit_rows = [
            AuditEntry("remap", message_id=message_id, patient_key=stored.patient_key,
                       reason=reason, detail=summary(result))
        ] + [
            AuditEntry("remap", message_id=message_id, delivery_id=d,
                       patient_key=stored.patient_key, reason=reason)
            for d in result.delivery_ids
        ]  # fmt: skip
        await write_audit(conn, actor, audit_rows, now)
        await conn.commit()
    return result


def _insert_ignoring_duplicates(conn: AsyncConnection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(deliveries).on_conflict_do_nothing(index_elements=["idempotency_key"])


async def _later_delivery_exists(
    conn: AsyncConnection, destination: str, patient_key: str, message_id: int
) -> bool:
    later = (
        sa.select(deliveries.c.id)
        .join(events, events.c.event_id == deliveries.c.event_id)
        .where(
            deliveries.c.destination == destination,
            deliveries.c.patient_key == patient_key,
            events.c.message_id > message_id,
        )
        .limit(1)
    )
    return (await conn.execute(later)).first() is not None


async def _create(
    conn: AsyncConnection, event_id: str, destination: str, patient_key: str, now: datetime
) -> int | None:
    """A new pending delivery, unless another operator's re-map just made it."""
    new_id = (await conn.execute(
        _insert_ignoring_duplicates(conn)
        .values(event_id=event_id, destination=destination, patient_key=patient_key,
                status=DeliveryStatus.PENDING,
                idempotency_key=idempotency_key(event_id, destination),
                attempts=0, created_at=now, next_attempt_at=now, hold=False)
        .returning(deliveries.c.id)
    )).scalar()  # fmt: skip
    return None if new_id is None else int(new_id)


async def _requeue(conn: AsyncConnection, delivery_id: int, now: datetime) -> int | None:
    """A dead letter back to pending, unless it changed meanwhile."""
    changed = (await conn.execute(
        sa.update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.status == DeliveryStatus.DEAD)
        .values(**requeued(now))
        .returning(deliveries.c.id)
    )).scalar()  # fmt: skip
    return None if changed is None else int(changed)


async def _route(
    conn: AsyncConnection,
    event_id: str,
    patient_key: str,
    message_id: int,
    accepted: AcceptedEvent,
    now: datetime,
) -> Remapped:
    existing = {
        r.destination: r
        for r in await conn.execute(
            sa.select(deliveries.c.id, deliveries.c.destination, deliveries.c.status).where(
                deliveries.c.event_id == event_id
            )
        )
    }
    wanted = [name for name, _hold in accepted.destinations]
    found: dict[str, list[str]] = {
        k: [] for k in ("created", "requeued", "updated", "delivered", "skipped")
    }
    ids: list[int] = []
    for destination in wanted:
        have = existing.get(destination)
        if have is None:
            if await _later_delivery_exists(conn, destination, patient_key, message_id):
                found["skipped"].append(destination)
            elif (
                new_id := await _create(conn, event_id, destination, patient_key, now)
            ) is not None:
                found["created"].append(destination)
                ids.append(new_id)
        elif have.status == DeliveryStatus.DEAD:
            if (changed := await _requeue(conn, have.id, now)) is not None:
                found["requeued"].append(destination)
                ids.append(changed)
        elif have.status == DeliveryStatus.PENDING:
            found["updated"].append(destination)
        else:
            found["delivered"].append(destination)
    unrouted = tuple(sorted(set(existing) - set(wanted)))
    return Remapped(
        "remapped",
        created=tuple(found["created"]),
        requeued=tuple(found["requeued"]),
        updated=tuple(found["updated"]),
        delivered=tuple(found["delivered"]),
        skipped=tuple(found["skipped"]),
        unrouted=unrouted,
        delivery_ids=tuple(ids),
    )
