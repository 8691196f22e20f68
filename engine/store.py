"""The durable store: the message log, canonical events and the delivery outbox.

SQLite (WAL, synchronous=FULL) is the embedded default; PostgreSQL by URL for several replicas,
where claims use ``FOR UPDATE SKIP LOCKED``. Every write the engine's guarantees rest on is one
transaction here:

- `record_intake`: a batch of received messages, each with its message-log row, its event and
  one delivery row per routed destination, then the caller acks the AMQP deliveries;
- `claim_due`: the oldest pending delivery per (destination, patient) whose time has come,
  leased so no other worker or replica takes it meanwhile;
- `finish_delivery`: the attempts made and the outcome (delivered, rescheduled, dead-lettered).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from engine import migrate
from engine.config import StoreConfig, TlsConfig
from engine.schema import (
    attempts,
    blocking,
    deliveries,
    events,
    follow_ups,
    messages,
    suspects,
)

MessageStatus = Literal["accepted", "rejected", "duplicate"]


@dataclass(frozen=True, slots=True)
class AcceptedEvent:
    """What intake derived from a message that mapped: the event and where it must go."""

    event_id: str
    kind: str
    care_setting: str
    patient_key: str
    occurred_at: datetime | None
    body: str
    destinations: tuple[tuple[str, bool], ...]
    """(destination name, hold_on_dead_letter) for each routed destination, in route order."""
    stay_id: str | None = None
    corrects: str | None = None
    """For a cancel: the event it cancels. For an event whose cancel arrived first: that cancel."""
    retired_keys: tuple[str, ...] = ()
    """For a merge: the patient keys that now become `patient_key`."""
    follow_up: FollowUpRecord | None = None
    """For a discharge in a follow-up cohort: the clock it starts."""
    replaces: str | None = None
    """For a changed discharge: the earlier discharge of the same stay that it replaces."""


@dataclass(frozen=True, slots=True)
class FollowUpRecord:
    rule: str
    standard: str
    discharged_at: datetime
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Original:
    """An earlier event a cancel refers to, and the destinations that have or will have it."""

    event_id: str
    destinations: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IntakeRecord:
    source: str
    payload: bytes
    received_at: datetime
    transport_id: str | None = None
    format: str | None = None
    message_key: str | None = None
    accepted: AcceptedEvent | None = None
    reason: str | None = None
    error_location: str | None = None
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class IntakeResult:
    message_id: int
    status: MessageStatus
    deliveries: int = 0
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    event_id: str
    destination: str
    patient_key: str
    idempotency_key: str
    attempts: int
    created_at: datetime
    kind: str
    care_setting: str
    source: str
    body: str


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    started_at: datetime
    duration_ms: int
    outcome: Literal["delivered", "transient", "permanent"]
    status_code: int | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Delivered:
    at: datetime


@dataclass(frozen=True, slots=True)
class Rescheduled:
    next_attempt_at: datetime
    error: str


@dataclass(frozen=True, slots=True)
class DeadLettered:
    reason: str
    hold: bool = False


DeliveryOutcome = Delivered | Rescheduled | DeadLettered


def _ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (console, health) run beside the writer; FULL makes every commit durable
    # before intake acks the broker, so a power cut cannot lose an acknowledged message.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def refused_content(exc: BaseException) -> bool:
    """True when the store refused what was written (a constraint, a value it cannot hold).

    Anything else (connection refused or dropped, a server starting up, a lock timeout) is the
    store being unavailable: worth waiting for, never a reason to set a message aside. asyncpg's
    data and constraint errors reach SQLAlchemy as plain DBAPIErrors, so their SQLSTATE class
    (22 data exception, 23 integrity constraint violation) is read too.
    """
    if isinstance(exc, sa.exc.IntegrityError | sa.exc.DataError):
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
        return sqlstate.startswith(("22", "23"))
    return isinstance(exc, sa.exc.StatementError)


def _text(value: str | None, limit: int = 4000) -> str | None:
    """Free text bound for the store: PostgreSQL refuses NUL characters; keep it bounded."""
    return None if value is None else value.replace("\x00", "")[:limit]


_INSERT_MESSAGE = sa.insert(messages).returning(messages.c.id)


@dataclass
class _PendingRows:
    """Event and delivery rows of an intake batch, inserted together (executemany) in order."""

    events: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    follow_ups: list[dict[str, Any]] = field(default_factory=list)

    async def flush(self, conn: AsyncConnection) -> None:
        if self.events:
            await conn.execute(sa.insert(events), self.events)
        if self.deliveries:
            await conn.execute(sa.insert(deliveries), self.deliveries)
        if self.follow_ups:
            await conn.execute(sa.insert(follow_ups), self.follow_ups)
        self.events, self.deliveries, self.follow_ups = [], [], []


def _outcome_update(**values: Any) -> sa.Update:
    """An UPDATE of one pending delivery by `d_id`, adding `n` attempts; run with executemany."""
    return (
        sa.update(deliveries)
        .where(deliveries.c.id == sa.bindparam("d_id"), deliveries.c.status == "pending")
        .values(lease_until=None, lease_owner=None,
                attempts=deliveries.c.attempts + sa.bindparam("n"), **values)
    )  # fmt: skip


_OUTCOME_UPDATES = {
    "delivered": _outcome_update(
        status="delivered", delivered_at=sa.bindparam("at"), last_error=None
    ),
    "rescheduled": _outcome_update(
        next_attempt_at=sa.bindparam("at"), last_error=sa.bindparam("error")
    ),
    "dead": _outcome_update(
        status="dead", last_error=sa.bindparam("error"), hold=sa.bindparam("hold")
    ),
}


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Store:
    engine: AsyncEngine
    _is_postgres: bool = field(init=False)
    _write_lock: asyncio.Lock = field(init=False)

    def __post_init__(self) -> None:
        self._is_postgres = self.engine.dialect.name == "postgresql"
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, config: StoreConfig) -> Store:
        """Connect and bring the schema up to date (migrations run once, under a lock)."""
        kwargs: dict[str, Any] = {}
        if config.url.startswith("postgresql"):
            kwargs["pool_size"] = config.pool_size
            kwargs["pool_pre_ping"] = True
            if config.tls is not None:
                kwargs["connect_args"] = {"ssl": _ssl_context(config.tls)}
        else:
            # Writes are serialised by the store's own lock; a few connections serve reads.
            kwargs["pool_size"] = 4
            kwargs["max_overflow"] = 0
        engine = create_async_engine(config.url, **kwargs)
        if engine.dialect.name == "sqlite":
            sa_event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(migrate.upgrade)
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except (sa.exc.SQLAlchemyError, OSError):
            return False
        return True

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction; the caller commits.

        SQLite has one writer at a time. Its own lock makes waiters sleep and poll (up to
        100 ms each), so under load the lock sits free while writers sleep: writers queue on an
        asyncio lock here instead, and take SQLite's lock up front (BEGIN IMMEDIATE) so a
        transaction that reads then writes cannot fail half way with "database is locked".
        PostgreSQL needs neither.
        """
        if self._is_postgres:
            async with self.engine.connect() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.connect() as conn:
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    # ---- intake -------------------------------------------------------------------------

    async def record_intake(
        self, records: Sequence[IntakeRecord], *, clear_suspects: Sequence[tuple[str, str]] = ()
    ) -> list[IntakeResult]:
        """Write a batch of received messages in one transaction; return what became of each.

        A message whose (source, message key) was already accepted with the same bytes is a
        duplicate (a sender retry or a broker redelivery) and creates no deliveries. The same key
        with *different* bytes is rejected, never silently dropped: an operator must look.
        """
        committed_at = _now()
        results: list[IntakeResult] = []
        async with self.writing() as conn:
            seen = await self._accepted_keys(conn, records)
            pending = _PendingRows()
            for record in records:
                digest = hashlib.sha256(record.payload).hexdigest()
                results.append(
                    await self._record_one(conn, record, digest, committed_at, seen, pending)
                )
            await pending.flush(conn)
            for source, digest in clear_suspects:  # processed: no longer a suspect
                await conn.execute(sa.delete(suspects).where(
                    suspects.c.source == source, suspects.c.payload_sha256 == digest))  # fmt: skip
            await conn.commit()
        return results

    async def is_suspect(self, source: str, digest: str) -> bool:
        """Was this message marked as being processed when the engine last died?"""
        async with self.engine.connect() as conn:
            found = await conn.execute(sa.select(suspects.c.source).where(
                suspects.c.source == source, suspects.c.payload_sha256 == digest))  # fmt: skip
            return found.first() is not None

    async def mark_suspect(self, source: str, digest: str) -> None:
        """Mark a redelivered message as in hand before processing it (committed at once)."""
        async with self.writing() as conn:
            await conn.execute(sa.delete(suspects).where(
                suspects.c.source == source, suspects.c.payload_sha256 == digest))  # fmt: skip
            await conn.execute(sa.insert(suspects).values(
                source=source, payload_sha256=digest, marked_at=_now()))  # fmt: skip
            await conn.commit()

    async def _accepted_keys(
        self, conn: AsyncConnection, records: Sequence[IntakeRecord]
    ) -> dict[tuple[str, str], tuple[int, str]]:
        keys = {(r.source, r.message_key) for r in records if r.accepted and r.message_key}
        found: dict[tuple[str, str], tuple[int, str]] = {}
        for source in {s for s, _ in keys}:
            wanted = [k for s, k in keys if s == source]
            rows = await conn.execute(
                sa.select(messages.c.id, messages.c.message_key, messages.c.payload_sha256).where(
                    messages.c.source == source,
                    messages.c.status == "accepted",
                    messages.c.message_key.in_(wanted),
                )
            )
            for row in rows:
                found[(source, row.message_key)] = (row.id, row.payload_sha256)
        return found

    async def _record_one(
        self,
        conn: AsyncConnection,
        record: IntakeRecord,
        digest: str,
        committed_at: datetime,
        seen: dict[tuple[str, str], tuple[int, str]],
        pending: _PendingRows,
    ) -> IntakeResult:
        row: dict[str, Any] = {
            "source": record.source,
            "message_key": record.message_key,
            "format": record.format,
            "payload": record.payload,
            "payload_sha256": digest,
            "received_at": record.received_at,
            "committed_at": committed_at,
            "transport_id": record.transport_id,
        }
        accepted = record.accepted
        if accepted is None:
            row.update(
                status="rejected",
                reason=_text(record.reason),
                error_location=record.error_location,
                error_code=record.error_code,
            )
            return IntakeResult(
                await self._insert_message(conn, row), "rejected", reason=record.reason
            )
        assert record.message_key is not None
        key = (record.source, record.message_key)
        row.update(
            event_id=accepted.event_id, event_kind=accepted.kind, patient_key=accepted.patient_key
        )
        if key in seen:
            first_id, first_digest = seen[key]
            if first_digest == digest:
                row.update(status="duplicate", message_key=None, duplicate_of=first_id)
                return IntakeResult(await self._insert_message(conn, row), "duplicate")
            reason = (
                f"message id already used by message #{first_id} with different content; "
                "not processed, an operator must decide"
            )
            row.update(
                status="rejected",
                message_key=None,
                duplicate_of=first_id,
                reason=reason,
                error_location="MSH-10",
                error_code="205",
                event_id=None,
            )
            return IntakeResult(await self._insert_message(conn, row), "rejected", reason=reason)
        row["status"] = "accepted"
        message_id = await self._insert_message(conn, row)
        seen[key] = (message_id, digest)
        if accepted.retired_keys or accepted.corrects:
            await pending.flush(conn)  # the updates below must see this batch's rows too
        stopped = accepted.corrects if accepted.kind == "cancel_discharge" else accepted.replaces
        if stopped:
            # The discharge was cancelled, or a changed discharge replaces it: its follow-up
            # clock stops (a replacing discharge starts its own).
            await pending.flush(conn)
            await conn.execute(
                sa.update(follow_ups)
                .where(
                    follow_ups.c.event_id == stopped,
                    follow_ups.c.status.in_(["open", "acknowledged"]),
                )
                .values(status="withdrawn", withdrawn_by=accepted.event_id)
            )
        if accepted.retired_keys:
            await self._rekey(conn, accepted.retired_keys, accepted.patient_key)
        if accepted.corrects and not accepted.kind.startswith("cancel_"):
            # This event arrived after its own cancel: link the cancel back to it.
            await conn.execute(
                sa.update(events)
                .where(events.c.event_id == accepted.corrects)
                .values(corrects=accepted.event_id)
            )
        pending.events.append({
            "event_id": accepted.event_id, "stay_id": accepted.stay_id,
            "corrects": accepted.corrects, "message_id": message_id, "source": record.source,
            "kind": accepted.kind, "care_setting": accepted.care_setting,
            "patient_key": accepted.patient_key, "occurred_at": accepted.occurred_at,
            "received_at": record.received_at, "body": accepted.body,
        })  # fmt: skip
        if accepted.follow_up is not None:
            fu = accepted.follow_up
            pending.follow_ups.append({
                "event_id": accepted.event_id, "patient_key": accepted.patient_key,
                "rule": fu.rule, "standard": fu.standard, "discharged_at": fu.discharged_at,
                "due_at": fu.due_at, "created_at": committed_at, "status": "open",
                "alerted_unacknowledged": False, "alerted_overdue": False,
            })  # fmt: skip
        pending.deliveries += [
            {"event_id": accepted.event_id, "destination": destination,
             "patient_key": accepted.patient_key, "status": "pending",
             "idempotency_key": f"{accepted.event_id}.{destination}", "attempts": 0,
             "created_at": committed_at, "next_attempt_at": committed_at, "hold": False}
            for destination, _hold in accepted.destinations
        ]  # fmt: skip
        return IntakeResult(message_id, "accepted", deliveries=len(accepted.destinations))

    @staticmethod
    async def _rekey(conn: AsyncConnection, retired: Sequence[str], survivor: str) -> None:
        """A merge: the retired identities' history and pending deliveries follow the survivor,
        so ordering and search use one key from now on."""
        for table in (messages, events, deliveries, follow_ups):
            await conn.execute(
                sa.update(table)
                .where(table.c.patient_key.in_(list(retired)))
                .values(patient_key=survivor)
            )

    async def find_original(
        self, patient_key: str, stay_id: str | None, kind: str
    ) -> Original | None:
        """The newest accepted event of `kind` for this patient and stay, with the destinations
        that received it or are still to (not those where it was dead-lettered)."""
        same_stay = (events.c.stay_id.is_(None) if stay_id is None
                     else events.c.stay_id == stay_id)  # fmt: skip
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                sa.select(events.c.event_id)
                .where(events.c.patient_key == patient_key, events.c.kind == kind, same_stay)
                .order_by(events.c.message_id.desc())
                .limit(1)
            )).first()  # fmt: skip
            if row is None:
                return None
            sent = await conn.execute(
                sa.select(deliveries.c.destination)
                .where(deliveries.c.event_id == row.event_id,
                       deliveries.c.status.in_(["pending", "delivered"]))
                .order_by(deliveries.c.id)
            )  # fmt: skip
            return Original(row.event_id, tuple(r.destination for r in sent))

    async def patients_with_unmatched_cancels(self, patient_keys: Sequence[str]) -> set[str]:
        """Which of these patients have a cancel on record that found nothing to cancel: only
        their events need `find_early_cancel` (one query per intake batch, not per message)."""
        if not patient_keys:
            return set()
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(events.c.patient_key)
                .where(events.c.patient_key.in_(sorted(set(patient_keys))),
                       events.c.kind.like("cancel_%"), events.c.corrects.is_(None))
                .distinct()
            )  # fmt: skip
            return {row.patient_key for row in rows}

    async def patients_with_discharges(self, patient_keys: Sequence[str]) -> set[str]:
        """Which of these patients have a discharge on record (one query per intake batch)."""
        if not patient_keys:
            return set()
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(events.c.patient_key)
                .where(events.c.patient_key.in_(sorted(set(patient_keys))),
                       events.c.kind == "discharge")
                .distinct()
            )  # fmt: skip
            return {row.patient_key for row in rows}

    async def standing_discharge(self, patient_key: str, stay_id: str | None) -> str | None:
        """The newest discharge of this patient and stay that still stands: not cancelled, and
        not itself superseded by a cancel that arrived before it."""
        same_stay = (events.c.stay_id.is_(None) if stay_id is None
                     else events.c.stay_id == stay_id)  # fmt: skip
        cancel = events.alias("cancel")
        cancelled = sa.exists().where(cancel.c.kind == "cancel_discharge",
                                      cancel.c.corrects == events.c.event_id)  # fmt: skip
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                sa.select(events.c.event_id)
                .where(events.c.patient_key == patient_key, events.c.kind == "discharge",
                       events.c.corrects.is_(None), same_stay, ~cancelled)
                .order_by(events.c.message_id.desc())
                .limit(1)
            )).first()  # fmt: skip
            return None if row is None else str(row.event_id)

    async def find_early_cancel(
        self, patient_key: str, stay_id: str | None, cancel_kind: str, occurred_at: datetime | None
    ) -> str | None:
        """A cancel of `cancel_kind` for this patient and stay that found nothing to cancel when
        it arrived and happened no earlier than `occurred_at` (so it cancels an event that came
        late, out of order, not a newer one): its event id, or None."""
        same_stay = (events.c.stay_id.is_(None) if stay_id is None
                     else events.c.stay_id == stay_id)  # fmt: skip
        not_before = (sa.true() if occurred_at is None
                      else sa.or_(events.c.occurred_at.is_(None),
                                  events.c.occurred_at >= occurred_at))  # fmt: skip
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                sa.select(events.c.event_id)
                .where(events.c.patient_key == patient_key, events.c.kind == cancel_kind,
                       events.c.corrects.is_(None), same_stay, not_before)
                .order_by(events.c.message_id)
                .limit(1)
            )).first()  # fmt: skip
            return None if row is None else str(row.event_id)

    async def _insert_message(self, conn: AsyncConnection, row: dict[str, Any]) -> int:
        return int((await conn.execute(_INSERT_MESSAGE, row)).scalar_one())

    # ---- delivery -----------------------------------------------------------------------

    async def claim_due(
        self,
        destinations: Sequence[str],
        *,
        limit: int,
        lease: timedelta,
        owner: str,
        now: datetime | None = None,
    ) -> list[ClaimedDelivery]:
        """Lease the deliveries that may be sent now, in order, one per (destination, patient).

        A delivery may go only when no earlier delivery of the same patient to the same
        destination is still pending (or dead-lettered with `hold`): this is what keeps each
        patient's events in order while other patients' deliveries flow past a failing one.
        """
        if not destinations:
            return []
        now = now or _now()
        earlier = deliveries.alias("earlier")
        # The same predicate, word for word, as the partial index ix_deliveries_blocking, so
        # SQLite and PostgreSQL can both answer from the index alone.
        blocked = sa.exists().where(
            earlier.c.destination == deliveries.c.destination,
            earlier.c.patient_key == deliveries.c.patient_key,
            earlier.c.id < deliveries.c.id,
            sa.text(blocking("earlier")),
        )
        query = (
            sa.select(deliveries.c.id)
            .where(
                deliveries.c.status == "pending",
                deliveries.c.next_attempt_at <= now,
                deliveries.c.destination.in_(list(destinations)),
                sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
                ~blocked,
            )
            .order_by(deliveries.c.id)
            .limit(limit)
        )
        if self._is_postgres:
            query = query.with_for_update(skip_locked=True, of=deliveries)
        async with self.writing() as conn:
            ids = [row.id for row in await conn.execute(query)]
            if not ids:
                await conn.rollback()
                return []
            await conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.id.in_(ids))
                .values(lease_until=now + lease, lease_owner=owner)
            )
            rows = await conn.execute(
                sa.select(
                    deliveries, events.c.kind, events.c.care_setting, events.c.source, events.c.body
                )
                .join(events, events.c.event_id == deliveries.c.event_id)
                .where(deliveries.c.id.in_(ids))
                .order_by(deliveries.c.id)
            )
            claimed = [
                ClaimedDelivery(
                    id=r.id,
                    event_id=r.event_id,
                    destination=r.destination,
                    patient_key=r.patient_key,
                    idempotency_key=r.idempotency_key,
                    attempts=r.attempts,
                    created_at=r.created_at,
                    kind=r.kind,
                    care_setting=r.care_setting,
                    source=r.source,
                    body=r.body,
                )
                for r in rows
            ]
            await conn.commit()
        return claimed

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
             "status_code": t.status_code, "detail": _text(t.detail)}
            for delivery_id, tries, _ in finished for t in tries
        ]  # fmt: skip
        by_kind: dict[str, list[dict[str, Any]]] = {"delivered": [], "rescheduled": [], "dead": []}
        for delivery_id, tries, outcome in finished:
            params: dict[str, Any] = {"d_id": delivery_id, "n": len(tries)}
            match outcome:
                case Delivered(at=at):
                    by_kind["delivered"].append({**params, "at": at})
                case Rescheduled(next_attempt_at=at, error=error):
                    by_kind["rescheduled"].append({**params, "at": at, "error": _text(error)})
                case DeadLettered(reason=reason, hold=hold):
                    by_kind["dead"].append({**params, "error": _text(reason), "hold": hold})
        async with self.writing() as conn:
            if rows:
                await conn.execute(sa.insert(attempts), rows)
            for kind, params_list in by_kind.items():
                if params_list:
                    await conn.execute(_OUTCOME_UPDATES[kind], params_list)
            await conn.commit()

    async def release(self, delivery_ids: Sequence[int]) -> None:
        """Give up leases without an attempt (shutdown), so the deliveries can go at once."""
        if not delivery_ids:
            return
        async with self.writing() as conn:
            await conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.id.in_(list(delivery_ids)), deliveries.c.status == "pending")
                .values(lease_until=None, lease_owner=None)
            )
            await conn.commit()

    # ---- retention ----------------------------------------------------------------------

    async def prune(self, older_than: datetime, *, limit: int = 1000) -> int:
        """Delete up to `limit` settled messages received before `older_than`; return how many.

        Settled: a duplicate, or an accepted message every delivery of which was delivered.
        Never touched: pending deliveries, dead letters, rejected messages (unresolved errors).
        A pruned message's id no longer de-duplicates: the dedupe window is the retention.
        """
        unsettled = sa.exists().where(
            deliveries.c.event_id == messages.c.event_id, deliveries.c.status != "delivered"
        )
        following = sa.exists().where(
            follow_ups.c.event_id == messages.c.event_id,
            follow_ups.c.status.in_(["open", "acknowledged"]),
        )
        eligible = (
            sa.select(messages.c.id)
            .where(
                messages.c.received_at < older_than,
                sa.or_(
                    messages.c.status == "duplicate",
                    sa.and_(messages.c.status == "accepted", ~unsettled, ~following),
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
            await conn.execute(sa.delete(deliveries).where(deliveries.c.event_id.in_(event_ids)))
            await conn.execute(sa.delete(follow_ups).where(follow_ups.c.event_id.in_(event_ids)))
            await conn.execute(sa.delete(events).where(events.c.message_id.in_(ids)))
            await conn.execute(sa.delete(messages).where(messages.c.id.in_(ids)))
            await conn.commit()
        return len(ids)

    # ---- queries for operators and tests ----------------------------------------------------

    async def counts(self) -> dict[str, int]:
        """Messages by status and deliveries by status, for health and tests."""
        async with self.engine.connect() as conn:
            out: dict[str, int] = {}
            for table, prefix in ((messages, "messages"), (deliveries, "deliveries")):
                rows = await conn.execute(
                    sa.select(table.c.status, sa.func.count()).group_by(table.c.status)
                )
                out.update({f"{prefix}.{status}": n for status, n in rows})
            return out

    async def message_log(self, *, limit: int = 50) -> list[dict[str, Any]]:
        """The newest message-log rows without payloads."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(
                    messages.c.id,
                    messages.c.source,
                    messages.c.message_key,
                    messages.c.status,
                    messages.c.reason,
                    messages.c.error_location,
                    messages.c.event_kind,
                    messages.c.received_at,
                )
                .order_by(messages.c.id.desc())
                .limit(limit)
            )
            return [dict(r._mapping) for r in rows]
