"""The intake write: a batch of received messages, each with its message-log row, its event
and its outbox rows, in one transaction; and the suspects of a redelivery."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.store.base import StoreBase, bounded_text, utc_now
from engine.store.records import AcceptedEvent, IntakeRecord, IntakeResult, idempotency_key
from engine.store.schema import deliveries, events, follow_ups, messages, suspects
from engine.store.statuses import (
    OPEN_FOLLOW_UPS,
    DeliveryStatus,
    FollowUpStatus,
    MessageStatus,
)

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


def accepted_keys_query(source: str, keys: Sequence[str]) -> sa.Select[Any]:
    """The accepted messages of `source` with these keys, found through ix_messages_message_key
    whatever the length of the message log.

    Source and status are compared as expressions (``|| ''``) so that no planner can read them
    from an index: SQLite without statistics otherwise chose ix_messages_status_id and read every
    accepted message ever kept (bench/history.py: 76 ms a batch at 100,000 messages, growing with
    the log); one index lookup per key is bounded by the batch.
    """
    return sa.select(messages.c.id, messages.c.message_key, messages.c.payload_sha256).where(
        messages.c.message_key.in_(list(keys)),
        (messages.c.source + "") == source,
        (messages.c.status + "") == MessageStatus.ACCEPTED.value,
    )


class IntakeWrites(StoreBase):
    """`record_intake` and the suspects of a redelivery."""

    async def record_intake(
        self, records: Sequence[IntakeRecord], *, clear_suspects: Sequence[tuple[str, str]] = ()
    ) -> list[IntakeResult]:
        """Write a batch of received messages in one transaction; return what became of each.

        A message whose (source, message key) was already accepted with the same bytes is a
        duplicate (a sender retry or a broker redelivery) and creates no deliveries. The same key
        with *different* bytes is rejected, never silently dropped: an operator must look.
        """
        committed_at = utc_now()
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

    async def _accepted_keys(
        self, conn: AsyncConnection, records: Sequence[IntakeRecord]
    ) -> dict[tuple[str, str], tuple[int, str]]:
        keys = {(r.source, r.message_key) for r in records if r.accepted and r.message_key}
        found: dict[tuple[str, str], tuple[int, str]] = {}
        for source in {s for s, _ in keys}:
            wanted = [k for s, k in keys if s == source]
            rows = await conn.execute(accepted_keys_query(source, wanted))
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
                status=MessageStatus.REJECTED,
                reason=bounded_text(record.reason),
                error_location=record.error_location,
                error_code=record.error_code,
            )
            return IntakeResult(
                await self._insert_message(conn, row), MessageStatus.REJECTED, reason=record.reason
            )
        assert record.message_key is not None
        key = (record.source, record.message_key)
        row.update(
            event_id=accepted.event_id, event_kind=accepted.kind, patient_key=accepted.patient_key
        )
        if key in seen:
            return await self._repeated(conn, row, *seen[key], digest)
        row["status"] = MessageStatus.ACCEPTED
        message_id = await self._insert_message(conn, row)
        seen[key] = (message_id, digest)
        await self._correct_earlier_rows(conn, accepted, pending)
        pending.add(record, message_id, committed_at)
        return IntakeResult(
            message_id, MessageStatus.ACCEPTED, deliveries=len(accepted.destinations)
        )

    @staticmethod
    async def _correct_earlier_rows(
        conn: AsyncConnection, accepted: AcceptedEvent, pending: _PendingRows
    ) -> None:
        """Execute what engine.corrections decided this event does to earlier rows."""
        if not (accepted.withdraws_follow_up_of or accepted.links_cancel or accepted.retired_keys):
            return
        await pending.flush(conn)  # the updates below must see this batch's rows too
        if accepted.withdraws_follow_up_of:
            await conn.execute(
                sa.update(follow_ups)
                .where(
                    follow_ups.c.event_id == accepted.withdraws_follow_up_of,
                    follow_ups.c.status.in_(OPEN_FOLLOW_UPS),
                )
                .values(status=FollowUpStatus.WITHDRAWN, withdrawn_by=accepted.event_id)
            )
        if accepted.retired_keys:
            for table in (messages, events, deliveries, follow_ups):
                await conn.execute(
                    sa.update(table)
                    .where(table.c.patient_key.in_(list(accepted.retired_keys)))
                    .values(patient_key=accepted.patient_key)
                )
        if accepted.links_cancel:
            await conn.execute(
                sa.update(events)
                .where(events.c.event_id == accepted.links_cancel)
                .values(corrects=accepted.event_id)
            )

    async def _repeated(
        self,
        conn: AsyncConnection,
        row: dict[str, Any],
        first_id: int,
        first_digest: str,
        digest: str,
    ) -> IntakeResult:
        """A message key already accepted: a duplicate if the bytes are the same, else refused."""
        if first_digest == digest:
            row.update(status=MessageStatus.DUPLICATE, message_key=None, duplicate_of=first_id)
            return IntakeResult(await self._insert_message(conn, row), MessageStatus.DUPLICATE)
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
        return IntakeResult(
            await self._insert_message(conn, row), MessageStatus.REJECTED, reason=reason
        )

    async def _insert_message(self, conn: AsyncConnection, row: dict[str, Any]) -> int:
        return int((await conn.execute(_INSERT_MESSAGE, row)).scalar_one())
