"""Re-map a whole message with today's config: the console's answer to "the mapping (or a
route) was wrong, it is fixed now, send this message again as it should have been".

    stored payload ─► engine.preparation.prepare(today's config) ─► same event?
        ─► events.body (and care setting, stay, time) updated
        ─► per today's routes: a new pending delivery where the event has none; a dead
           letter put back to pending; a pending delivery simply sends the new body;
           a delivered one is left alone (replay it explicitly to send it again)
        ─► audited in the same transaction

Rules, each for a reason:

- Only a message that became an event (accepted) can be re-mapped: the event id, the
  deliveries and their idempotency keys ``<event_id>.<destination>`` hang off it. The stored
  event id is kept even if today's mapping would derive another.
- Today's mapping must give the same event kind and the same patient key. Otherwise it is a
  different event, not a corrected one: re-keying a patient or turning an admission into a
  discharge belongs to the source's correction messages (merge, cancel), not to a replay.
- A destination the event has no delivery for gets one only if no *later* message of the same
  patient has a delivery to it: per-patient order is by delivery id, so an old event queued now
  would arrive after newer ones (an admission after the discharge). Such destinations are
  reported as skipped, never silently out of order.
- Deliveries are inserted with ``ON CONFLICT DO NOTHING`` on the idempotency key, so two
  operators re-mapping at once create each delivery once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.config import Config, feed_profiles, follow_up_rules
from engine.console import audit
from engine.console.auth import Principal
from engine.preparation import prepare
from engine.store import Store
from engine.store.schema import deliveries, events, messages


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


async def remap_message(
    store: Store,
    principal: Principal,
    message_id: int,
    config: Config,
    reason: str | None = None,
    *,
    now: datetime | None = None,
) -> Remapped:
    """Re-run today's mapping and routes on a stored message; see the module docstring."""
    now = now or datetime.now(UTC)
    async with store.engine.connect() as conn:
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
        return Remapped("missing", "no such message")
    if row.status != "accepted" or not row.event_id:
        return Remapped("refused", "only an accepted message (one that became an event) can be "
                        "re-mapped")  # fmt: skip
    if config.source(row.source) is None:
        return Remapped("refused", f"source {row.source!r} is no longer in the config")
    prepared = prepare(
        row.source,
        bytes(row.payload),
        config=config,
        profiles=feed_profiles(config),
        received_at=row.received_at,
        transport_id=row.transport_id,
        follow_up_rules=follow_up_rules(config),
    )
    record = prepared.record
    async with store.writing() as conn:
        stored = (
            await conn.execute(
                sa.select(events.c.kind, events.c.patient_key).where(
                    events.c.event_id == row.event_id
                )
            )
        ).first()
        if stored is None:
            await conn.rollback()
            return Remapped("refused", "the message's event is gone (pruned?)")
        accepted = record.accepted
        if accepted is None or prepared.event is None:
            where = " ".join(p for p in (record.error_location, record.error_code) if p)
            detail = f"does not map with today's config ({where or 'rejected'})"
            await audit.write(conn, principal, [audit.AuditEntry(
                "remap", message_id=message_id, patient_key=stored.patient_key,
                reason=reason, detail=detail)], now)  # fmt: skip
            await conn.commit()
            return Remapped("not_mapped", detail)
        if accepted.kind != stored.kind or accepted.patient_key != stored.patient_key:
            what = "event kind" if accepted.kind != stored.kind else "patient"
            await conn.rollback()
            return Remapped("refused", f"today's mapping gives another {what}: that is a "
                            "correction for the source to send, not a re-map")  # fmt: skip
        event = prepared.event.model_copy(update={"event_id": row.event_id})
        await conn.execute(
            sa.update(events)
            .where(events.c.event_id == row.event_id)
            .values(
                body=event.model_dump_json(exclude_none=True),
                care_setting=accepted.care_setting,
                stay_id=accepted.stay_id,
                occurred_at=accepted.occurred_at,
            )
        )
        result = await _route(conn, row.event_id, stored.patient_key, message_id, accepted, now)
        audit_rows = [
            audit.AuditEntry("remap", message_id=message_id, patient_key=stored.patient_key,
                             reason=reason, detail=_summary(result))
        ] + [
            audit.AuditEntry("remap", message_id=message_id, delivery_id=d,
                             patient_key=stored.patient_key, reason=reason)
            for d in result.delivery_ids
        ]  # fmt: skip
        await audit.write(conn, principal, audit_rows, now)
        await conn.commit()
    return result


async def _route(
    conn: AsyncConnection,
    event_id: str,
    patient_key: str,
    message_id: int,
    accepted: Any,
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
    created: list[str] = []
    requeued: list[str] = []
    updated: list[str] = []
    delivered: list[str] = []
    skipped: list[str] = []
    ids: list[int] = []
    for destination in wanted:
        have = existing.get(destination)
        if have is None:
            if await _later_delivery_exists(conn, destination, patient_key, message_id):
                skipped.append(destination)
                continue
            new_id = (
                await conn.execute(
                    _insert_ignoring_duplicates(conn)
                    .values(
                        event_id=event_id, destination=destination, patient_key=patient_key,
                        status="pending", idempotency_key=f"{event_id}.{destination}",
                        attempts=0, created_at=now, next_attempt_at=now, hold=False,
                    )
                    .returning(deliveries.c.id)
                )
            ).scalar()  # fmt: skip
            if new_id is not None:
                created.append(destination)
                ids.append(int(new_id))
        elif have.status == "dead":
            changed = (
                await conn.execute(
                    sa.update(deliveries)
                    .where(deliveries.c.id == have.id, deliveries.c.status == "dead")
                    .values(
                        status="pending", next_attempt_at=now, lease_until=None,
                        lease_owner=None, hold=False, held_at=None, held_by=None,
                        resolved_at=None, resolved_by=None, resolution=None,
                    )
                    .returning(deliveries.c.id)
                )
            ).scalar()  # fmt: skip
            if changed is not None:
                requeued.append(destination)
                ids.append(int(changed))
        elif have.status == "pending":
            updated.append(destination)
        else:
            delivered.append(destination)
    unrouted = tuple(sorted(set(existing) - set(wanted)))
    return Remapped(
        "remapped",
        None,
        tuple(created),
        tuple(requeued),
        tuple(updated),
        tuple(delivered),
        tuple(skipped),
        unrouted,
        tuple(ids),
    )


def _summary(r: Remapped) -> str:
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


def notice(r: Remapped) -> str:
    """What the operator is told (no patient data)."""
    if r.outcome != "remapped":
        return f"Not re-mapped: {r.problem}."
    return _summary(r).capitalize() + "."
