"""The outbox: claiming the deliveries due, recording their attempts and outcomes, releasing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from engine.store.base import Batched, StoreBase, bounded_text, utc_now
from engine.store.records import (
    AttemptRecord,
    ClaimedDelivery,
    DeadLettered,
    Delivered,
    DeliveryOutcome,
    Rescheduled,
)
from engine.store.schema import UtcDateTime, attempts, blocking, deliveries, events
from engine.store.statuses import DeliveryStatus


def _outcome_update(**values: Any) -> sa.Update:
    """An UPDATE of one pending delivery by `d_id`, adding `n` attempts; run with executemany."""
    return (
        sa.update(deliveries)
        .where(deliveries.c.id == sa.bindparam("d_id"),
               deliveries.c.status == DeliveryStatus.PENDING)
        .values(lease_until=None, lease_owner=None,
                attempts=deliveries.c.attempts + sa.bindparam("n"), **values)
    )  # fmt: skip


_INSERT_ATTEMPTS = Batched(sa.insert(attempts), (
    "delivery_id", "started_at", "duration_ms", "outcome", "status_code", "detail"))  # fmt: skip
_OUTCOME_UPDATES = {
    "delivered": Batched(_outcome_update(
        status=DeliveryStatus.DELIVERED, delivered_at=sa.bindparam("at"), last_error=None)),
    "rescheduled": Batched(_outcome_update(
        next_attempt_at=sa.bindparam("at"), last_error=sa.bindparam("error"))),
    "dead": Batched(_outcome_update(
        status=DeliveryStatus.DEAD, last_error=sa.bindparam("error"), hold=sa.bindparam("hold"))),
}  # fmt: skip


def _due_statement() -> sa.Select[int]:
    """The ids of a destination's pending deliveries due now that nothing earlier holds back,
    oldest first: at most `limit` (bound parameters `destination`, `limit`, `now`).

    Its cost is bounded by the batch it returns, not by history nor by the backlog: the outer
    rows are read in id order straight from ix_deliveries_status_destination (status,
    destination, id), so there is no sort and the LIMIT stops the walk; each row read costs one
    seek in the partial index ix_deliveries_blocking, which holds only the deliveries that hold
    others back (pending, or dead with `hold`), never the delivered past. The rows walked past
    are those at the front of the destination's queue that cannot go now: in flight (leased),
    waiting for a retry or held, and the later deliveries of those patients.

    The blocking test is written, word for word, as the partial index's predicate with its
    values inline (`schema.blocking`), so both SQLite and PostgreSQL may answer it from that
    index. bench/history.py shows the plans and measures it with a million past messages.

    Built once (`_DUE`): building the statement and its cache key for every claim cost more
    than running it (about 0.8 ms a claim, on the store's writer thread, holding the GIL).
    """
    earlier = deliveries.alias("earlier")
    now = sa.bindparam("now", type_=UtcDateTime())
    first_blocking_before = (
        sa.select(earlier.c.id)
        .where(
            earlier.c.destination == deliveries.c.destination,
            earlier.c.patient_key == deliveries.c.patient_key,
            earlier.c.id < deliveries.c.id,
            sa.text(blocking("earlier")),
        )
        .limit(1)
        .scalar_subquery()
    )
    return (
        sa.select(deliveries.c.id)
        .where(
            deliveries.c.status == DeliveryStatus.PENDING,
            deliveries.c.destination == sa.bindparam("destination"),
            deliveries.c.next_attempt_at <= now,
            sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
            first_blocking_before.is_(None),
        )
        .order_by(deliveries.c.id)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
    )


_DUE = _due_statement()
_DUE_SKIP_LOCKED = _DUE.with_for_update(skip_locked=True, of=deliveries)
"""PostgreSQL: no more locked than claimed; other engines skip the locked rows."""
_LEASE = (
    sa.update(deliveries)
    .where(deliveries.c.id.in_(sa.bindparam("ids", expanding=True)))
    .values(lease_until=sa.bindparam("until"), lease_owner=sa.bindparam("owner"))
)
_CLAIMED = (  # the columns of ClaimedDelivery, in its order
    sa.select(
        deliveries.c.id, deliveries.c.event_id, deliveries.c.destination,
        deliveries.c.patient_key, deliveries.c.idempotency_key, deliveries.c.attempts,
        deliveries.c.created_at, events.c.kind, events.c.care_setting, events.c.source,
        events.c.body,
    )
    .join(events, events.c.event_id == deliveries.c.event_id)
    .where(deliveries.c.id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(deliveries.c.id)
)  # fmt: skip


def _due(destination: str, limit: int, now: datetime) -> sa.Select[int]:
    """The due query with its values bound (tests and bench/history.py compile it)."""
    return _DUE.params(destination=destination, limit=limit, now=now)


class Outbox(StoreBase):
    """`claim_due`, `renew_leases`, `finish_deliveries` and `release`."""

    async def claim_due(
        self,
        destinations: Sequence[str],
        *,
        limit: int,
        lease: timedelta,
        owner: str,
        now: datetime | None = None,
    ) -> list[ClaimedDelivery]:
        """Lease the deliveries that may be sent now, in order, one per (destination, patient):
        up to `limit`, destination by destination in the order given (the delivery loop asks for
        one at a time), each destination's oldest first.

        A delivery may go only when no earlier delivery of the same patient to the same
        destination is still pending (or dead-lettered with `hold`): this is what keeps each
        patient's events in order while other patients' deliveries flow past a failing one.
        """
        if not destinations:
            return []
        at = now or utc_now()

        def transaction(conn: sa.Connection) -> list[ClaimedDelivery]:
            ids: list[int] = []
            due = _DUE_SKIP_LOCKED if self._is_postgres else _DUE
            for destination in dict.fromkeys(destinations):  # each its own walk of its queue
                if len(ids) >= limit:
                    break
                found = conn.execute(
                    due, {"destination": destination, "limit": limit - len(ids), "now": at}
                )
                ids += found.scalars()
            if not ids:  # nothing written: the commit that follows writes nothing either
                return []
            conn.execute(_LEASE, {"ids": ids, "until": at + lease, "owner": owner})
            return [ClaimedDelivery(*row) for row in conn.execute(_CLAIMED, {"ids": ids})]

        return await self.write(transaction)

    async def finish_delivery(
        self, delivery_id: int, tries: Sequence[AttemptRecord], outcome: DeliveryOutcome
    ) -> None:
        """Record the attempts made under a lease and what follows from them, atomically."""
        await self.finish_deliveries([(delivery_id, tries, outcome)])

    async def finish_deliveries(
        self, finished: Sequence[tuple[int, Sequence[AttemptRecord], DeliveryOutcome]]
    ) -> None:
        """Record several deliveries' attempts and outcomes in one transaction (one commit, one
        fsync for all of them). Only a pending delivery changes: one another worker already
        finished (after this worker's lease ran out) keeps its outcome; the attempts are still
        recorded."""
        rows = [
            {"delivery_id": delivery_id, "started_at": t.started_at,
             "duration_ms": t.duration_ms, "outcome": t.outcome,
             "status_code": t.status_code, "detail": bounded_text(t.detail)}
            for delivery_id, tries, _ in finished for t in tries
        ]  # fmt: skip
        by_kind: dict[str, list[dict[str, Any]]] = {"delivered": [], "rescheduled": [], "dead": []}
        for delivery_id, tries, outcome in finished:
            params: dict[str, Any] = {"d_id": delivery_id, "n": len(tries)}
            match outcome:
                case Delivered(at=at):
                    by_kind["delivered"].append({**params, "at": at})
                case Rescheduled(next_attempt_at=at, error=error):
                    by_kind["rescheduled"].append(
                        {**params, "at": at, "error": bounded_text(error)}
                    )
                case DeadLettered(reason=reason, hold=hold):
                    by_kind["dead"].append({**params, "error": bounded_text(reason), "hold": hold})

        def transaction(conn: sa.Connection) -> None:
            _INSERT_ATTEMPTS.run(conn, rows)
            for kind, params_list in by_kind.items():
                _OUTCOME_UPDATES[kind].run(conn, params_list)

        await self.write(transaction)

    async def renew_leases(
        self, delivery_ids: Sequence[int], *, lease: timedelta, owner: str
    ) -> int:
        """Extend `owner`'s leases on deliveries it is still sending; returns how many it still
        held (a lease that ran out and was taken by another worker is not taken back)."""
        if not delivery_ids:
            return 0

        def transaction(conn: sa.Connection) -> int:
            result = conn.execute(
                sa.update(deliveries)
                .where(
                    deliveries.c.id.in_(list(delivery_ids)),
                    deliveries.c.lease_owner == owner,
                    deliveries.c.status == DeliveryStatus.PENDING,
                )
                .values(lease_until=utc_now() + lease)
            )
            return int(result.rowcount)

        return await self.write(transaction)

    async def release_leases_at_start(self) -> int:
        """On SQLite, free every lease: one engine only can use the file, so a lease found at
        start was its dead predecessor's, and its deliveries may go at once. On PostgreSQL,
        nothing (a lease may be a live replica's). Returns how many were freed."""
        if self._is_postgres:
            return 0
        async with self.writing() as conn:
            result = await conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.lease_owner.is_not(None),
                       deliveries.c.status == DeliveryStatus.PENDING)
                .values(lease_until=None, lease_owner=None)
            )  # fmt: skip
            await conn.commit()
        return int(result.rowcount)

    async def release(self, delivery_ids: Sequence[int]) -> None:
        """Give up leases without an attempt (shutdown), so the deliveries can go at once."""
        if not delivery_ids:
            return

        def transaction(conn: sa.Connection) -> None:
            conn.execute(
                sa.update(deliveries)
                .where(
                    deliveries.c.id.in_(list(delivery_ids)),
                    deliveries.c.status == DeliveryStatus.PENDING,
                )
                .values(lease_until=None, lease_owner=None)
            )

        await self.write(transaction)
