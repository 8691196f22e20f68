"""The intake write: a batch of received messages, each with its message-log row, its event
and its outbox rows, in one transaction; and the suspects of a redelivery."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.store.base import Batched, StoreBase, bounded_text, utc_now
from engine.store.lookups import History, one_of_keys
from engine.store.records import AcceptedEvent, IntakeRecord, IntakeResult, idempotency_key
from engine.store.schema import deliveries, events, follow_ups, messages, suspects
from engine.store.statuses import (
    OPEN_FOLLOW_UPS,
    DeliveryStatus,
    FollowUpStatus,
    MessageStatus,
)

_MESSAGE_COLUMNS = tuple(  # what intake writes (an operator's resolution comes later)
    c.name for c in messages.c if c.name not in ("id", "resolved_at", "resolved_by", "resolution")
)
_INSERT_MESSAGES = Batched(sa.insert(messages), ("id", *_MESSAGE_COLUMNS))
_INSERT_MESSAGES_RETURNING = sa.insert(messages).returning(
    messages.c.id, sort_by_parameter_order=True
)
_LAST_MESSAGE_ID = sa.select(sa.func.coalesce(sa.func.max(messages.c.id), 0))
# The columns each row of `_PendingRows.add` gives (every other is NULL).
_INSERT_EVENTS = Batched(sa.insert(events), (
    "event_id", "stay_id", "corrects", "message_id", "source", "kind", "care_setting",
    "patient_key", "occurred_at", "received_at", "body"))  # fmt: skip
_INSERT_DELIVERIES = Batched(sa.insert(deliveries), (
    "event_id", "destination", "patient_key", "status", "idempotency_key", "attempts",
    "created_at", "next_attempt_at", "hold"))  # fmt: skip
_INSERT_FOLLOW_UPS = Batched(sa.insert(follow_ups), (
    "event_id", "patient_key", "rule", "standard", "discharged_at", "due_at", "created_at",
    "status", "alerted_unacknowledged", "alerted_overdue"))  # fmt: skip


def insert_messages(
    conn: sa.Connection, rows: Sequence[dict[str, Any]], *, postgres: bool
) -> list[int]:
    """Insert message-log rows with one statement (executemany); their ids, in order.

    PostgreSQL: one multi-row INSERT ... RETURNING, sorted by parameter order. SQLite cannot
    promise the order of RETURNING rows (SQLAlchemy then falls back to one statement, one
    thread hop, per row), so the ids are given here: the writer holds SQLite's write lock
    (BEGIN IMMEDIATE), and each id is the largest so far plus one, as SQLite itself would give.
    """
    full = [{c: row.get(c) for c in _MESSAGE_COLUMNS} for row in rows]
    if postgres:
        return [int(r.id) for r in conn.execute(_INSERT_MESSAGES_RETURNING, full)]
    first = int(conn.execute(_LAST_MESSAGE_ID).scalar_one()) + 1
    ids = list(range(first, first + len(full)))
    for row, message_id in zip(full, ids, strict=True):
        row["id"] = message_id
    _INSERT_MESSAGES.run(conn, full)
    return ids


@dataclass
class _PendingRows:
    """The rows of an intake batch, inserted together (one executemany a table) in order: the
    message rows first (each then hands its id on: `then`), then events, deliveries and
    follow-ups."""

    postgres: bool
    messages: list[tuple[dict[str, Any], Callable[[int], None]]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    follow_ups: list[dict[str, Any]] = field(default_factory=list)

    def message(self, row: dict[str, Any], then: Callable[[int], None]) -> None:
        self.messages.append((row, then))

    def flush(self, conn: sa.Connection) -> None:
        if self.messages:
            queued, self.messages = self.messages, []
            ids = insert_messages(conn, [row for row, _ in queued], postgres=self.postgres)
            for (_row, then), message_id in zip(queued, ids, strict=True):
                then(message_id)  # may add event, delivery and follow-up rows
        _INSERT_EVENTS.run(conn, self.events)
        _INSERT_DELIVERIES.run(conn, self.deliveries)
        _INSERT_FOLLOW_UPS.run(conn, self.follow_ups)
        self.events, self.deliveries, self.follow_ups = [], [], []

    def add(self, record: IntakeRecord, message_id: int, committed_at: datetime) -> None:
        """The rows of an accepted message: its event, its follow-up clock, its deliveries."""
        accepted = record.accepted
        assert accepted is not None
        self.events.append({
            "event_id": accepted.event_id, "stay_id": accepted.stay_id,
            "corrects": accepted.corrects, "message_id": message_id, "source": record.source,
            "kind": accepted.kind, "care_setting": accepted.care_setting,
            "patient_key": accepted.patient_key, "occurred_at": accepted.occurred_at,
            "received_at": record.received_at, "body": accepted.body,
        })  # fmt: skip
        if accepted.follow_up is not None:
            fu = accepted.follow_up
            self.follow_ups.append({
                "event_id": accepted.event_id, "patient_key": accepted.patient_key,
                "rule": fu.rule, "standard": fu.standard, "discharged_at": fu.discharged_at,
                "due_at": fu.due_at, "created_at": committed_at, "status": FollowUpStatus.OPEN,
                "alerted_unacknowledged": False, "alerted_overdue": False,
            })  # fmt: skip
        self.deliveries += [
            {"event_id": accepted.event_id, "destination": destination,
             "patient_key": accepted.patient_key, "status": DeliveryStatus.PENDING,
             "idempotency_key": idempotency_key(accepted.event_id, destination), "attempts": 0,
             "created_at": committed_at, "next_attempt_at": committed_at, "hold": False}
            for destination, _hold in accepted.destinations
        ]  # fmt: skip


_Seen = dict[tuple[str, str], tuple[int | None, str]]
"""(source, message key) -> (message id, payload digest) of the accepted message with that key;
the id is None while its row waits in `_PendingRows`."""


@dataclass(frozen=True, slots=True)
class _Result:
    """The slot of one message's result in the batch's list, filled once its row has an id."""

    results: list[IntakeResult | None]
    index: int

    def set(self, result: IntakeResult) -> None:
        self.results[self.index] = result

    def then(self, status: MessageStatus, reason: str | None = None) -> Callable[[int], None]:
        return lambda message_id: self.set(IntakeResult(message_id, status, reason=reason))


def _accepted_keys(postgres: bool) -> sa.Select[Any]:
    """The accepted messages of the "source" parameter with one of the "keys", found through
    ix_messages_message_key whatever the length of the message log.

    Source and status are compared as expressions (``|| ''``) so that no planner can read them
    from an index: SQLite without statistics otherwise chose ix_messages_status_id and read every
    accepted message ever kept (bench/history.py: 76 ms a batch at 100,000 messages, growing with
    the log); one index lookup per key is bounded by the batch. Built once for each kind of
    store (`one_of_keys`).
    """
    return sa.select(messages.c.id, messages.c.message_key, messages.c.payload_sha256).where(
        one_of_keys(messages.c.message_key, postgres),
        (messages.c.source + "") == sa.bindparam("source"),
        (messages.c.status + "") == MessageStatus.ACCEPTED.value,
    )


_ACCEPTED_KEYS = (_accepted_keys(False), _accepted_keys(True))  # by `postgres`


def accepted_keys_query(source: str, keys: Sequence[str]) -> sa.Select[Any]:
    """The statement intake asks on SQLite, with these values (bench/history.py times it)."""
    return _ACCEPTED_KEYS[False].params(source=source, keys=list(keys))


class IntakeWrites(StoreBase):
    """`record_intake` and the suspects of a redelivery."""

    async def record_intake(
        self, records: Sequence[IntakeRecord], *, clear_suspects: Sequence[tuple[str, str]] = ()
    ) -> list[IntakeResult]:
        """Write a batch of received messages in one transaction; return what became of each.

        A message whose (source, message key) was already accepted with the same bytes is a
        duplicate (a sender retry or a broker redelivery) and creates no deliveries. The same key
        with *different* bytes is rejected, never silently dropped: an operator must look.

        The transaction runs whole as one call (`write`); nothing is returned, so nothing is
        acked, unless it committed.
        """
        return await self.link_and_record(lambda _history: records, clear_suspects=clear_suspects)

    async def link_and_record(
        self,
        link: Callable[[History], Sequence[IntakeRecord]],
        *,
        clear_suspects: Sequence[tuple[str, str]] = (),
    ) -> list[IntakeResult]:
        """`record_intake` of the records `link` returns, made in the same transaction: `link`
        may ask the history (corrections' lookups) first, and its answers and the batch's rows
        are then of one moment, at no cost of a connection, thread hand-off or round trip of
        their own.

        `link` runs inside the write transaction, on the store's writer thread on a SQLite file:
        it must be plain synchronous work, and it runs again if the write is retried.
        """
        committed_at = utc_now()
        outcome: list[list[IntakeResult | None]] = []

        def transaction(conn: sa.Connection) -> None:
            records = link(History(conn))
            results: list[IntakeResult | None] = [None] * len(records)
            outcome[:] = [results]
            digests = [hashlib.sha256(r.payload).hexdigest() for r in records]
            seen = self._accepted_keys(conn, records)
            pending = _PendingRows(self._is_postgres)
            for index, (record, digest) in enumerate(zip(records, digests, strict=True)):
                self._record_one(
                    conn, record, digest, committed_at, seen, pending, _Result(results, index)
                )
            pending.flush(conn)
            for source, digest in clear_suspects:  # processed: no longer a suspect
                conn.execute(sa.delete(suspects).where(
                    suspects.c.source == source, suspects.c.payload_sha256 == digest))  # fmt: skip

        await self.write(transaction)
        [results] = outcome
        written = [r for r in results if r is not None]
        if len(written) != len(results):  # a bug, never the content: stop, nothing acked
            raise RuntimeError("an intake batch left a message without its row")
        return written

    async def is_suspect(self, source: str, digest: str) -> bool:
        """Was this message marked as being processed when the engine last died?"""
        async with self.reading() as conn:
            found = await conn.execute(sa.select(suspects.c.source).where(
                suspects.c.source == source, suspects.c.payload_sha256 == digest))  # fmt: skip
            return found.first() is not None

    async def mark_suspect(self, source: str, digest: str) -> None:
        """Mark a redelivered message as in hand before processing it (committed at once)."""
        async with self.writing() as conn:
            await conn.execute(sa.delete(suspects).where(
                suspects.c.source == source, suspects.c.payload_sha256 == digest))  # fmt: skip
            await conn.execute(sa.insert(suspects).values(
                source=source, payload_sha256=digest, marked_at=utc_now()))  # fmt: skip
            await conn.commit()

    def _accepted_keys(self, conn: sa.Connection, records: Sequence[IntakeRecord]) -> _Seen:
        keys = {(r.source, r.message_key) for r in records if r.accepted and r.message_key}
        found: _Seen = {}
        query = _ACCEPTED_KEYS[self._is_postgres]
        for source in {s for s, _ in keys}:
            wanted = sorted(k for s, k in keys if s == source)
            rows = conn.execute(query, {"source": source, "keys": wanted})
            for row in rows:
                found[(source, row.message_key)] = (row.id, row.payload_sha256)
        return found

    def _record_one(
        self,
        conn: sa.Connection,
        record: IntakeRecord,
        digest: str,
        committed_at: datetime,
        seen: _Seen,
        pending: _PendingRows,
        result: _Result,
    ) -> None:
        """Queue the message's row (and, once it has its id, its event, deliveries and
        follow-up); `result` is filled in when the row is written."""
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
                status=MessageStatus.REJECTED,
                reason=bounded_text(record.reason),
                error_location=record.error_location,
                error_code=record.error_code,
            )
            pending.message(row, result.then(MessageStatus.REJECTED, reason=record.reason))
            return
        assert record.message_key is not None
        key = (record.source, record.message_key)
        row.update(
            event_id=accepted.event_id, event_kind=accepted.kind, patient_key=accepted.patient_key
        )
        if key in seen:
            first = seen[key]
            if first[0] is None:  # accepted earlier in this batch: its id is needed now
                pending.flush(conn)
                first = seen[key]
            assert first[0] is not None
            self._repeated(pending, row, first[0], first[1], digest, result)
            return
        row["status"] = MessageStatus.ACCEPTED
        seen[key] = (None, digest)
        deliveries_made = len(accepted.destinations)

        def written(message_id: int) -> None:
            seen[key] = (message_id, digest)
            pending.add(record, message_id, committed_at)
            result.set(IntakeResult(message_id, MessageStatus.ACCEPTED, deliveries=deliveries_made))

        self._correct_earlier_rows(conn, accepted, pending)
        pending.message(row, written)

    @staticmethod
    def _correct_earlier_rows(
        conn: sa.Connection, accepted: AcceptedEvent, pending: _PendingRows
    ) -> None:
        """Execute what engine.corrections decided this event does to earlier rows."""
        if not (accepted.withdraws_follow_up_of or accepted.links_cancel or accepted.retired_keys):
            return
        pending.flush(conn)  # the updates below must see this batch's rows too
        if accepted.withdraws_follow_up_of:
            conn.execute(
                sa.update(follow_ups)
                .where(
                    follow_ups.c.event_id == accepted.withdraws_follow_up_of,
                    follow_ups.c.status.in_(OPEN_FOLLOW_UPS),
                )
                .values(status=FollowUpStatus.WITHDRAWN, withdrawn_by=accepted.event_id)
            )
        if accepted.retired_keys:
            for table in (messages, events, deliveries, follow_ups):
                conn.execute(
                    sa.update(table)
                    .where(table.c.patient_key.in_(list(accepted.retired_keys)))
                    .values(patient_key=accepted.patient_key)
                )
        if accepted.links_cancel:
            conn.execute(
                sa.update(events)
                .where(events.c.event_id == accepted.links_cancel)
                .values(corrects=accepted.event_id)
            )

    @staticmethod
    def _repeated(
        pending: _PendingRows,
        row: dict[str, Any],
        first_id: int,
        first_digest: str,
        digest: str,
        result: _Result,
    ) -> None:
        """A message key already accepted: a duplicate if the bytes are the same, else refused."""
        if first_digest == digest:
            row.update(status=MessageStatus.DUPLICATE, message_key=None, duplicate_of=first_id)
            pending.message(row, result.then(MessageStatus.DUPLICATE))
            return
        reason = (
            f"message id already used by message #{first_id} with different content; "
            "not processed, an operator must decide"
        )
        row.update(
            status=MessageStatus.REJECTED,
            message_key=None,
            duplicate_of=first_id,
            reason=reason,
            error_location="MSH-10",
            error_code="205",
            event_id=None,
        )
        pending.message(row, result.then(MessageStatus.REJECTED, reason=reason))
