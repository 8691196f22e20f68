"""Recording deliveries' outcomes: the attempts made under a claim and what follows from them.

Each outcome is written only while the delivery's row says it may be, and its attempts only
with it, in the same transaction:

- delivered: while the delivery is pending, whoever holds its lease now. A delivery that
  reached its destination is never left pending to go again (its lease ran out during a store
  outage and another claim sent it too, or recorded a retry meanwhile).
- rescheduled, dead: while it is pending, leased to the claim's owner, and its attempts are
  still those of the claim. A stale claim does not undo or overtake a newer one.

So recording is idempotent: a write replayed after its COMMIT's answer was lost finds the row
moved on (no longer pending, or no longer leased, attempts counted) and writes nothing more;
attempts are never inserted or counted twice. The caller learns, outcome by outcome, whether it
was recorded (`OutcomeRefused`: which guard refused it). A replay of an outcome that an earlier
try of the same write recorded is reported recorded: the row shows exactly that outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.store.base import Batched, StoreBase, T, bounded_text
from engine.store.errors import StoreRefused, translated
from engine.store.records import (
    AttemptRecord,
    ClaimedDelivery,
    DeadLettered,
    Delivered,
    DeliveryOutcome,
    OutcomeRefused,
    Rescheduled,
)
from engine.store.schema import UtcDateTime, attempts, deliveries
from engine.store.statuses import DeliveryStatus

_Finished = Sequence[tuple[ClaimedDelivery, Sequence[AttemptRecord], DeliveryOutcome]]


def _outcome_update(*, claim_holds: bool, **values: Any) -> sa.Update:
    """An UPDATE of one pending delivery by `d_id`, adding `n` attempts; run with executemany.
    `claim_holds`: also only while it is leased to `owner` with `claimed` attempts."""
    guard = [deliveries.c.id == sa.bindparam("d_id"),
             deliveries.c.status == DeliveryStatus.PENDING]  # fmt: skip
    if claim_holds:
        guard += [deliveries.c.lease_owner == sa.bindparam("owner"),
                  deliveries.c.attempts == sa.bindparam("claimed"),
                  deliveries.c.held_at.is_(None)]  # fmt: skip
    return (
        sa.update(deliveries)
        .where(*guard)
        .values(lease_until=None, lease_owner=None,
                attempts=deliveries.c.attempts + sa.bindparam("n"), **values)
    )  # fmt: skip


_INSERT_ATTEMPTS = Batched(sa.insert(attempts), (
    "delivery_id", "started_at", "duration_ms", "outcome", "status_code", "detail"))  # fmt: skip
_OUTCOME_UPDATES = {
    "delivered": Batched(_outcome_update(claim_holds=False,
        status=DeliveryStatus.DELIVERED, delivered_at=sa.bindparam("at"), last_error=None,
        held_at=None, held_by=None)),
    "rescheduled": Batched(_outcome_update(claim_holds=True,
        next_attempt_at=sa.bindparam("at"), last_error=sa.bindparam("error"))),
    "dead": Batched(_outcome_update(claim_holds=True,
        status=DeliveryStatus.DEAD, last_error=sa.bindparam("error"), hold=sa.bindparam("hold"))),
}  # fmt: skip
_STATE = (  # what the guards and `_already_recorded` read of each delivery, by primary key
    sa.select(deliveries.c.id, deliveries.c.status, deliveries.c.lease_owner,
              deliveries.c.attempts, deliveries.c.delivered_at, deliveries.c.next_attempt_at,
              deliveries.c.last_error, deliveries.c.held_at)
    .where(deliveries.c.id.in_(sa.bindparam("ids", expanding=True)))
)  # fmt: skip


_Row = Any
"""A row of `_STATE` (SQLAlchemy's Row type of eight columns)."""


_FINISH_IN_ONE = """\
WITH finished AS (
    UPDATE deliveries AS d SET
        lease_until = NULL, lease_owner = NULL, attempts = d.attempts + v.n, status = v.status,
        delivered_at = CASE WHEN v.status = 'delivered' THEN v.at ELSE d.delivered_at END,
        next_attempt_at = CASE WHEN v.status = 'pending' THEN v.at ELSE d.next_attempt_at END,
        last_error = v.error,
        hold = CASE WHEN v.status = 'dead' THEN v.hold ELSE d.hold END,
        held_at = CASE WHEN v.status = 'delivered' THEN NULL ELSE d.held_at END,
        held_by = CASE WHEN v.status = 'delivered' THEN NULL ELSE d.held_by END
    FROM unnest($7::bigint[], $8::integer[], $9::varchar[], $10::timestamptz[], $11::text[],
                $12::boolean[], $13::varchar[], $14::integer[])
         AS v (id, n, status, at, error, hold, owner, claimed)
    WHERE d.id = v.id AND d.status = 'pending'
      AND (v.status = 'delivered'
           OR (d.lease_owner = v.owner AND d.attempts = v.claimed AND d.held_at IS NULL))
    RETURNING d.id
), tried AS (
    INSERT INTO attempts (delivery_id, started_at, duration_ms, outcome, status_code, detail)
    SELECT t.delivery_id, t.started_at, t.duration_ms, t.outcome, t.status_code, t.detail
    FROM unnest($1::bigint[], $2::timestamptz[], $3::integer[], $4::varchar[], $5::integer[],
                $6::text[]) WITH ORDINALITY
         AS t (delivery_id, started_at, duration_ms, outcome, status_code, detail, nth)
    WHERE t.delivery_id IN (SELECT id FROM finished)
    ORDER BY t.nth
)
SELECT array_agg(id) FROM finished"""
"""PostgreSQL: `finish_deliveries` as one statement, so one round trip in autocommit: each
outcome set while its guard holds (as `_OUTCOME_UPDATES`), the attempts inserted of those set
only, and their ids returned as one array (the values as arrays, row by row; one row back
rather than one per delivery costs the engine less CPU)."""


_utc = UtcDateTime().process_bind_param
"""The check and conversion a UtcDateTime column makes of a value it is given."""


def _unique_runs(finished: _Finished) -> list[_Finished]:
    """`finished` cut, in order, into runs that name each delivery once: a delivery named twice
    in a batch (re-claimed after its lease ran out while an earlier send still ran) is recorded
    by two statements, in order (one UPDATE ... FROM unnest applies one row per delivery)."""
    runs: list[_Finished] = []
    start, seen = 0, set[int]()
    for at, (claim, _tries, _outcome) in enumerate(finished):
        if claim.id in seen:
            runs.append(finished[start:at])
            start, seen = at, set[int]()
        seen.add(claim.id)
    if start < len(finished):
        runs.append(finished[start:])
    return runs


def _refusal(
    row: _Row | None, claim: ClaimedDelivery, outcome: DeliveryOutcome
) -> OutcomeRefused | None:
    """Which guard refuses `outcome` for a delivery whose row reads `row` (None: recordable)."""
    if row is None or row.status != DeliveryStatus.PENDING:
        return "finished"
    if isinstance(outcome, Delivered):
        return None
    if row.lease_owner is None or row.lease_owner != claim.lease_owner or row.held_at is not None:
        return "lease_not_held"  # (an operator's hold takes the lease with it)
    if row.attempts != claim.attempts:
        return "attempts_changed"
    return None


def _already_recorded(
    row: _Row | None, claim: ClaimedDelivery, n: int, outcome: DeliveryOutcome
) -> bool:
    """True if the row shows exactly `outcome` recorded for this claim: an earlier try of the
    same write committed, and its answer was lost (the connection dropped after the COMMIT)."""
    if row is None or row.attempts != claim.attempts + n:
        return False
    match outcome:
        case Delivered(at=at):
            return bool(row.status == DeliveryStatus.DELIVERED and row.delivered_at == at)
        case Rescheduled(next_attempt_at=at, error=error):
            return bool(row.status == DeliveryStatus.PENDING and row.next_attempt_at == at
                        and row.last_error == bounded_text(error))  # fmt: skip
        case DeadLettered(reason=reason):
            return bool(row.status == DeliveryStatus.DEAD
                        and row.last_error == bounded_text(reason))  # fmt: skip


def _verdict(
    row: _Row | None, claim: ClaimedDelivery, n: int, outcome: DeliveryOutcome
) -> OutcomeRefused | None:
    """For an outcome a guard refused: None if the row shows it recorded already, else why."""
    if _already_recorded(row, claim, n, outcome):
        return None
    return _refusal(row, claim, outcome) or "finished"  # PostgreSQL: moved on since


class Outcomes(StoreBase):
    """`finish_delivery` and `finish_deliveries`."""

    async def _write_one(self, work: Callable[[sa.Connection], T]) -> T:
        """`write` for a `work` of ONE statement (atomic by itself): on PostgreSQL in
        autocommit, without the BEGIN and COMMIT round trips (the same durable commit)."""
        if self._autocommit is None:
            return await self.write(work)
        with translated():
            async with self._autocommit.connect() as conn:
                return await conn.run_sync(work)

    async def finish_delivery(
        self, claim: ClaimedDelivery, tries: Sequence[AttemptRecord], outcome: DeliveryOutcome
    ) -> OutcomeRefused | None:
        """Record the attempts made under a claim and what follows from them, atomically;
        None if recorded, else the guard that refused it (the module's docstring)."""
        [refused] = await self.finish_deliveries([(claim, tries, outcome)])
        return refused

    async def finish_deliveries(self, finished: _Finished) -> list[OutcomeRefused | None]:
        """Record several claims' attempts and outcomes in one transaction (one commit, one
        fsync for all of them), each under its guard; for each, in order, None if recorded,
        else the guard that refused it (and nothing of it was written)."""
        results: list[OutcomeRefused | None] = []
        if self._is_postgres:
            for run in _unique_runs(finished):
                results += await self._finish_postgres(run)
            return results

        def transaction(conn: sa.Connection) -> list[OutcomeRefused | None]:
            return [refused for run in _unique_runs(finished)
                    for refused in _finish_sqlite(conn, run)]  # fmt: skip

        return await self.write(transaction)

    async def _finish_postgres(self, finished: _Finished) -> list[OutcomeRefused | None]:
        """`finish_deliveries` on PostgreSQL: `_FINISH_IN_ONE`, in autocommit, and only when
        some outcome was refused a read of why. The values go to the driver as arrays, past
        the columns' types: each datetime is checked here as `UtcDateTime` would (a naive one
        refused, not read as the host's local time)."""
        tries_of = [(claim.id, t) for claim, tries, _ in finished for t in tries]
        tried = (
            [delivery_id for delivery_id, _ in tries_of],
            [self._aware(t.started_at) for _, t in tries_of],
            [t.duration_ms for _, t in tries_of],
            [t.outcome for _, t in tries_of],
            [t.status_code for _, t in tries_of],
            [bounded_text(t.detail) for _, t in tries_of],
        )
        outcomes: list[tuple[Any, ...]] = []
        for claim, tries, outcome in finished:
            row = (claim.id, len(tries))
            guard = (claim.lease_owner, claim.attempts)
            values: tuple[str, datetime | None, str | None, bool | None]
            match outcome:
                case Delivered(at=at):
                    values = (DeliveryStatus.DELIVERED.value, self._aware(at), None, None)
                case Rescheduled(next_attempt_at=at, error=error):
                    values = (DeliveryStatus.PENDING.value, self._aware(at),
                              bounded_text(error), None)  # fmt: skip
                case DeadLettered(reason=reason, hold=hold):
                    values = (DeliveryStatus.DEAD.value, None, bounded_text(reason), hold)
            outcomes.append((*row, *values, *guard))
        params = (*tried, *(list(column) for column in zip(*outcomes, strict=True)))
        if not outcomes:
            return []

        def statement(conn: sa.Connection) -> set[int]:
            return set(conn.exec_driver_sql(_FINISH_IN_ONE, params).scalar_one() or ())

        recorded = await self._write_one(statement)
        refused = [item for item in finished if item[0].id not in recorded]
        if not refused:
            return [None] * len(finished)
        async with self.reading() as conn:
            found = await conn.execute(_STATE, {"ids": [c.id for c, _, _ in refused]})
            rows = {row.id: row for row in found}
        return [
            None if claim.id in recorded else _verdict(rows.get(claim.id), claim, len(t), outcome)
            for claim, t, outcome in finished
        ]

    def _aware(self, value: datetime) -> datetime | None:
        try:
            return _utc(value, self.engine.dialect)
        except ValueError as exc:
            raise StoreRefused(exc) from exc


def _finish_sqlite(conn: sa.Connection, finished: _Finished) -> list[OutcomeRefused | None]:
    """`finish_deliveries` on SQLite, in the write transaction (so under the one writer's lock).

    Most often every guard holds: the guarded UPDATEs, under a savepoint, match a row each, and
    the attempts follow; nothing is read (reading first cost the hot path a statement a batch,
    about 15% more of the store's CPU a message). When an UPDATE matches nothing, all is rolled
    back to the savepoint, the rows are read and each outcome judged (`_refusal`), and only
    those whose guard holds are written, with their attempts."""
    conn.exec_driver_sql("SAVEPOINT outcomes")
    if _write_sqlite(conn, finished):
        conn.exec_driver_sql("RELEASE outcomes")
        return [None] * len(finished)
    conn.exec_driver_sql("ROLLBACK TO outcomes")  # (the savepoint stays, for the second pass)
    rows = {row.id: row for row in conn.execute(_STATE, {"ids": [c.id for c, _, _ in finished]})}
    refusals = [_refusal(rows.get(claim.id), claim, outcome) for claim, _, outcome in finished]
    recordable = [item for item, why in zip(finished, refusals, strict=True) if why is None]
    if not _write_sqlite(conn, recordable):  # the writer's lock held: should not happen
        # Never stall the outcome writer (it would retry for ever, every waiting delivery
        # keeping its slot): write nothing of this run and call it refused. The rows stay
        # pending; their leases run out and they go again, under the same idempotency keys.
        conn.exec_driver_sql("ROLLBACK TO outcomes")
        conn.exec_driver_sql("RELEASE outcomes")
        return ["finished"] * len(finished)
    conn.exec_driver_sql("RELEASE outcomes")
    return [
        None if why is None else _verdict(rows.get(claim.id), claim, len(tries), outcome)
        for (claim, tries, outcome), why in zip(finished, refusals, strict=True)
    ]


def _write_sqlite(conn: sa.Connection, finished: _Finished) -> bool:
    """The guarded UPDATEs of `finished`, then, only if each matched its row, their attempts;
    False (the attempts not inserted) if any did not."""
    by_kind: dict[str, list[dict[str, Any]]] = {"delivered": [], "rescheduled": [], "dead": []}
    tried: list[dict[str, Any]] = []
    for claim, tries, outcome in finished:
        params: dict[str, Any] = {"d_id": claim.id, "n": len(tries)}
        guard = {"owner": claim.lease_owner, "claimed": claim.attempts}
        match outcome:
            case Delivered(at=at):
                by_kind["delivered"].append({**params, "at": at})
            case Rescheduled(next_attempt_at=at, error=error):
                by_kind["rescheduled"].append(
                    {**params, **guard, "at": at, "error": bounded_text(error)})  # fmt: skip
            case DeadLettered(reason=reason, hold=hold):
                by_kind["dead"].append(
                    {**params, **guard, "error": bounded_text(reason), "hold": hold})  # fmt: skip
        tried += [
            {"delivery_id": claim.id, "started_at": t.started_at, "duration_ms": t.duration_ms,
             "outcome": t.outcome, "status_code": t.status_code, "detail": bounded_text(t.detail)}
            for t in tries
        ]  # fmt: skip
    matched = sum(_OUTCOME_UPDATES[kind].run(conn, rows) for kind, rows in by_kind.items())
    if matched != len(finished):
        return False
    _INSERT_ATTEMPTS.run(conn, tried)
    return True
