"""The outbox: claiming the deliveries due, recording their attempts and outcomes, releasing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from engine.store.base import Batched, StoreBase, T, bounded_text, utc_now
from engine.store.errors import StoreRefused, translated
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


_FINISH_IN_ONE = """\
WITH tried AS (
    INSERT INTO attempts (delivery_id, started_at, duration_ms, outcome, status_code, detail)
    SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::integer[], $4::varchar[],
                         $5::integer[], $6::text[])
)
UPDATE deliveries AS d SET
    lease_until = NULL, lease_owner = NULL, attempts = d.attempts + v.n, status = v.status,
    delivered_at = CASE WHEN v.status = 'delivered' THEN v.at ELSE d.delivered_at END,
    next_attempt_at = CASE WHEN v.status = 'pending' THEN v.at ELSE d.next_attempt_at END,
    last_error = v.error,
    hold = CASE WHEN v.status = 'dead' THEN v.hold ELSE d.hold END
FROM unnest($7::bigint[], $8::integer[], $9::varchar[], $10::timestamptz[], $11::text[],
            $12::boolean[]) AS v (id, n, status, at, error, hold)
WHERE d.id = v.id AND d.status = 'pending'"""
"""PostgreSQL: `finish_deliveries` as one statement, so one round trip in autocommit: the
attempts inserted and the outcomes set, each delivery's row only while it is pending, as
`_INSERT_ATTEMPTS` and `_OUTCOME_UPDATES` do in three (the values as arrays, row by row)."""


_utc = UtcDateTime().process_bind_param
"""The check and conversion a UtcDateTime column makes of a value it is given."""


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
        events.c.body,
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
                   deliveries.c.attempts, deliveries.c.created_at)
        .cte("leased")
    )  # fmt: skip
    return (
        sa.select(leased, events.c.kind, events.c.care_setting, events.c.source, events.c.body)
        .join(events, events.c.event_id == leased.c.event_id)
        .order_by(leased.c.id)
    )


_CLAIM_IN_ONE = _claim_in_one()


def _due(destination: str, limit: int, now: datetime) -> sa.Select[int]:
    """The due query with its values bound (tests and bench/history.py compile it)."""
    return _DUE.params(for_destination=destination, limit=limit, now=now)


_Finished = Sequence[tuple[int, Sequence[AttemptRecord], DeliveryOutcome]]


def _unique_runs(finished: _Finished) -> list[_Finished]:
    """`finished` cut, in order, into runs that name each delivery once: a delivery named twice
    in a batch (re-claimed after its lease ran out while an earlier send still ran) is recorded
    by two statements, in order (one UPDATE ... FROM unnest applies one row per delivery)."""
    runs: list[_Finished] = []
    start, seen = 0, set[int]()
    for at, (delivery_id, _tries, _outcome) in enumerate(finished):
        if delivery_id in seen:
            runs.append(finished[start:at])
            start, seen = at, set[int]()
        seen.add(delivery_id)
    if start < len(finished):
        runs.append(finished[start:])
    return runs


class Outbox(StoreBase):
    """`claim_due`, `renew_leases`, `finish_deliveries` and `release`."""

    async def _write_one(self, work: Callable[[sa.Connection], T]) -> T:
        """`write` for a `work` of ONE statement (atomic by itself): on PostgreSQL in
        autocommit, without the BEGIN and COMMIT round trips (the same durable commit)."""
        if self._autocommit is None:
            return await self.write(work)
        with translated():
            async with self._autocommit.connect() as conn:
                return await conn.run_sync(work)

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
        if self._is_postgres:
            for run in _unique_runs(finished):
                await self._finish_postgres(run)
            return
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

    async def _finish_postgres(self, finished: _Finished) -> None:
        """`finish_deliveries` on PostgreSQL: `_FINISH_IN_ONE`, in autocommit. The values go to
        the driver as arrays, past the columns' types: each datetime is checked here as
        `UtcDateTime` would (a naive one refused, not read as the host's local time)."""
        tries_of = [(delivery_id, t) for delivery_id, tries, _ in finished for t in tries]
        tried = (
            [delivery_id for delivery_id, _ in tries_of],
            [self._aware(t.started_at) for _, t in tries_of],
            [t.duration_ms for _, t in tries_of],
            [t.outcome for _, t in tries_of],
            [t.status_code for _, t in tries_of],
            [bounded_text(t.detail) for _, t in tries_of],
        )
        outcomes: list[tuple[int, int, str, datetime | None, str | None, bool | None]] = []
        for delivery_id, tries, outcome in finished:
            match outcome:
                case Delivered(at=at):
                    outcomes.append((delivery_id, len(tries), DeliveryStatus.DELIVERED.value,
                                     self._aware(at), None, None))  # fmt: skip
                case Rescheduled(next_attempt_at=at, error=error):
                    outcomes.append((delivery_id, len(tries), DeliveryStatus.PENDING.value,
                                     self._aware(at), bounded_text(error), None))  # fmt: skip
                case DeadLettered(reason=reason, hold=hold):
                    outcomes.append((delivery_id, len(tries), DeliveryStatus.DEAD.value,
                                     None, bounded_text(reason), hold))  # fmt: skip
        params = (*tried, *(list(column) for column in zip(*outcomes, strict=True)))
        if not outcomes:
            params = (*tried, [], [], [], [], [], [])

        def statement(conn: sa.Connection) -> None:
            conn.exec_driver_sql(_FINISH_IN_ONE, params)

        await self._write_one(statement)

    def _aware(self, value: datetime) -> datetime | None:
        try:
            return _utc(value, self.engine.dialect)
        except ValueError as exc:
            raise StoreRefused(exc) from exc

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
