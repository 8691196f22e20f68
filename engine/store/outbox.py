"""The outbox: claiming the deliveries due, renewing and releasing leases; outcomes.py records
what became of them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from engine.store.base import utc_now
from engine.store.outcomes import Outcomes
from engine.store.records import ClaimedDelivery
from engine.store.schema import UtcDateTime, blocking, deliveries, events
from engine.store.statuses import DeliveryStatus


def _due_statement() -> sa.Select[int]:
    """The ids of a destination's pending deliveries due now that nothing earlier holds back,
    oldest first: at most `limit` (bound parameters `for_destination`, `limit`, `now`; not
    `destination`, which in the UPDATE that embeds it (`_claim_in_one`) SQLAlchemy would take
    for a value to SET).

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
            deliveries.c.destination == sa.bindparam("for_destination"),
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
        events.c.body, deliveries.c.lease_owner,
    )
    .join(events, events.c.event_id == deliveries.c.event_id)
    .where(deliveries.c.id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(deliveries.c.id)
)  # fmt: skip


def _claim_in_one() -> sa.Select[Any]:
    """PostgreSQL: a destination's claim as one statement, so one round trip: the due rows
    locked (SKIP LOCKED, as `_DUE_SKIP_LOCKED`), leased, and returned with their events, in
    id order (bound parameters those of `_DUE` and of `_LEASE` but `ids`)."""
    due = _DUE_SKIP_LOCKED.cte("due")
    leased = (
        sa.update(deliveries)
        .where(deliveries.c.id.in_(sa.select(due.c.id)))
        .values(lease_until=sa.bindparam("until", type_=UtcDateTime()),
                lease_owner=sa.bindparam("owner"))
        .returning(deliveries.c.id, deliveries.c.event_id, deliveries.c.destination,
                   deliveries.c.patient_key, deliveries.c.idempotency_key,
                   deliveries.c.attempts, deliveries.c.created_at, deliveries.c.lease_owner)
        .cte("leased")
    )  # fmt: skip
    c = leased.c
    return (  # the columns of ClaimedDelivery, in its order
        sa.select(
            c.id,
            c.event_id,
            c.destination,
            c.patient_key,
            c.idempotency_key,
            c.attempts,
            c.created_at,
            events.c.kind,
            events.c.care_setting,
            events.c.source,
            events.c.body,
            c.lease_owner,
        )
        .join(events, events.c.event_id == leased.c.event_id)
        .order_by(leased.c.id)
    )


_CLAIM_IN_ONE = _claim_in_one()


def _due(destination: str, limit: int, now: datetime) -> sa.Select[int]:
    """The due query with its values bound (tests and bench/history.py compile it)."""
    return _DUE.params(for_destination=destination, limit=limit, now=now)


class Outbox(Outcomes):
    """`claim_due`, `renew_leases` and `release`; `finish_deliveries` (outcomes.py)."""

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
        if self._is_postgres:
            return await self._claim_postgres(list(dict.fromkeys(destinations)), limit,
                                              at, at + lease, owner)  # fmt: skip

        def transaction(conn: sa.Connection) -> list[ClaimedDelivery]:
            ids: list[int] = []  # SQLite: the one writer, so nothing to skip-lock
            for destination in dict.fromkeys(destinations):  # each its own walk of its queue
                if len(ids) >= limit:
                    break
                found = conn.execute(
                    _DUE, {"for_destination": destination, "limit": limit - len(ids), "now": at}
                )
                ids += found.scalars()
            if not ids:  # nothing written: the commit that follows writes nothing either
                return []
            conn.execute(_LEASE, {"ids": ids, "until": at + lease, "owner": owner})
            return [ClaimedDelivery(*row) for row in conn.execute(_CLAIMED, {"ids": ids})]

        return await self.write(transaction)

    async def _claim_postgres(
        self, destinations: list[str], limit: int, at: datetime, until: datetime, owner: str
    ) -> list[ClaimedDelivery]:
        """`claim_due` on PostgreSQL: one statement per destination (`_CLAIM_IN_ONE`); for one
        destination (the delivery loop's every claim) in autocommit, one round trip in all."""

        def transaction(conn: sa.Connection) -> list[ClaimedDelivery]:
            claimed: list[ClaimedDelivery] = []
            for destination in destinations:
                if len(claimed) >= limit:
                    break
                params = {"for_destination": destination, "limit": limit - len(claimed),
                          "now": at, "until": until, "owner": owner}  # fmt: skip
                claimed += [ClaimedDelivery(*row) for row in conn.execute(_CLAIM_IN_ONE, params)]
            return sorted(claimed, key=lambda c: c.id)  # in id order, as on SQLite

        if len(destinations) == 1:
            return await self._write_one(transaction)
        return await self.write(transaction)

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
                    deliveries.c.held_at.is_(None),  # an operator's hold is not taken back
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

    async def release(self, delivery_ids: Sequence[int], *, owner: str) -> None:
        """Give up `owner`'s leases without an attempt (shutdown), so the deliveries can go at
        once; a lease that ran out and was taken by another worker is left to it."""
        if not delivery_ids:
            return

        def transaction(conn: sa.Connection) -> None:
            conn.execute(
                sa.update(deliveries)
                .where(
                    deliveries.c.id.in_(list(delivery_ids)),
                    deliveries.c.lease_owner == owner,
                    deliveries.c.status == DeliveryStatus.PENDING,
                )
                .values(lease_until=None, lease_owner=None)
            )

        await self.write(transaction)
