"""MESH: what a `mesh` destination records of each upload, every message read from its own
inbox, and what an ITK3 acknowledgement does to its delivery and follow-up.

An inbox message is written here (raw, with what became of it) in the same transaction as its
effects, and only then acknowledged on MESH: a crash in between reads it again, finds it
recorded, and acknowledges it without doing anything twice. Nothing read is ever lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.store.base import StoreBase, bounded_text
from engine.store.schema import deliveries, follow_ups, mesh_acks, mesh_inbox, mesh_messages
from engine.store.statuses import DeliveryStatus, FollowUpStatus

InboxStatus = Literal["matched", "unmatched", "unreadable"]
NO_MAILBOX = ""
"""The recipient of a delivery whose GP practice has no MESH mailbox (nothing was uploaded)."""


@dataclass(frozen=True, slots=True)
class MeshUpload:
    """A delivery about to be uploaded: written before the upload, so an acknowledgement can be
    matched whatever happens after it."""

    delivery_id: int
    destination: str
    local_id: str
    itk_message_id: str
    workflow_id: str
    recipient: str
    recipient_ods: str | None


@dataclass(frozen=True, slots=True)
class AckRecord:
    """An ITK3 response as read (`mappings.itk3.read_response`)."""

    responds_to: str
    level: str
    code: str
    positive: bool
    text: str


@dataclass(frozen=True, slots=True)
class InboxRecord:
    message_id: str
    destination: str
    received_at: datetime
    sender: str | None
    workflow_id: str | None
    local_id: str | None
    payload: bytes
    ack: AckRecord | None
    """The ITK3 response the payload is, or None when it could not be read as one."""
    reason: str | None = None
    """Why it could not be read (for an unreadable message)."""


@dataclass(frozen=True, slots=True)
class InboxOutcome:
    status: InboxStatus
    delivery_id: int | None = None
    dead_lettered: bool = False
    follow_up_acknowledged: bool = False
    already_recorded: bool = False


@dataclass(frozen=True, slots=True)
class MeshAlertDue:
    delivery_id: int
    event_id: str
    destination: str
    workflow_id: str
    practice: str | None
    """The GP practice's ODS code."""
    uploaded_at: datetime | None
    no_mailbox: bool
    """True: the practice has no mailbox (dead-lettered); False: no business acknowledgement."""


class MeshRecords(StoreBase):
    """The MESH destination's writes and the reads its watches need."""

    async def mesh_uploading(self, upload: MeshUpload) -> None:
        """Record (or, for a resend, re-record) a delivery's MESH message before its upload."""
        values = {
            "destination": upload.destination, "local_id": upload.local_id,
            "itk_message_id": upload.itk_message_id, "workflow_id": upload.workflow_id,
            "recipient": upload.recipient, "recipient_ods": upload.recipient_ods,
        }  # fmt: skip
        async with self.writing() as conn:
            found = await conn.execute(
                sa.update(mesh_messages)
                .where(mesh_messages.c.delivery_id == upload.delivery_id)
                .values(**values)
            )
            if not found.rowcount:
                await conn.execute(
                    sa.insert(mesh_messages).values(
                        delivery_id=upload.delivery_id, alerted=False, **values
                    )
                )
            await conn.commit()

    async def mesh_uploaded(self, delivery_id: int, message_id: str, at: datetime) -> None:
        """MESH took the upload and gave it `message_id` (a replay's upload: a new wait for its
        business acknowledgement, alerted afresh)."""
        async with self.writing() as conn:
            await conn.execute(
                sa.update(mesh_messages)
                .where(mesh_messages.c.delivery_id == delivery_id)
                .values(message_id=message_id, uploaded_at=at, alerted=False)
            )
            await conn.commit()

    async def mesh_inbox_recorded(self, message_id: str) -> bool:
        query = sa.select(mesh_inbox.c.message_id).where(mesh_inbox.c.message_id == message_id)
        async with self.reading() as conn:
            return (await conn.execute(query)).first() is not None

    async def record_mesh_inbox(self, record: InboxRecord, *, hold: bool) -> InboxOutcome:
        """Keep an inbox message and do what its acknowledgement means, in one transaction: a
        negative one dead-letters the delivery with its reason (holding the patient's later
        deliveries when `hold`), a positive business one acknowledges the follow-up."""
        async with self.writing() as conn:
            seen = await conn.execute(
                sa.select(mesh_inbox.c.status, mesh_inbox.c.delivery_id).where(
                    mesh_inbox.c.message_id == record.message_id
                )
            )
            if (row := seen.first()) is not None:
                await conn.rollback()
                return InboxOutcome(row.status, row.delivery_id, already_recorded=True)
            outcome = await _apply(conn, record, hold)
            await conn.execute(
                sa.insert(mesh_inbox).values(
                    message_id=record.message_id, destination=record.destination,
                    received_at=record.received_at, sender=record.sender,
                    workflow_id=record.workflow_id, local_id=record.local_id,
                    status=outcome.status, reason=bounded_text(_reason(record, outcome)),
                    delivery_id=outcome.delivery_id, payload=record.payload,
                )
            )  # fmt: skip
            await conn.commit()
        return outcome

    async def mesh_to_alert(
        self, destination: str, uploaded_before: datetime | None, limit: int = 100
    ) -> list[MeshAlertDue]:
        """What a MESH destination has to alert and has not: deliveries dead-lettered for want
        of a recipient mailbox, and (when `uploaded_before` is given) uploads older than it
        with no business acknowledgement whose delivery still stands as delivered."""
        acked = sa.exists().where(  # since the last upload (a replay is a new wait)
            mesh_acks.c.delivery_id == mesh_messages.c.delivery_id,
            mesh_acks.c.level == "business",
            mesh_acks.c.received_at >= mesh_messages.c.uploaded_at,
        )
        no_mailbox = sa.and_(mesh_messages.c.recipient == NO_MAILBOX,
                             deliveries.c.status == DeliveryStatus.DEAD)  # fmt: skip
        conditions: list[sa.ColumnElement[bool]] = [no_mailbox]
        if uploaded_before is not None:
            delivered = deliveries.c.status == DeliveryStatus.DELIVERED
            old = mesh_messages.c.uploaded_at < uploaded_before
            conditions.append(sa.and_(old, delivered, ~acked))
        query = (
            sa.select(mesh_messages, deliveries.c.event_id)
            .join(deliveries, deliveries.c.id == mesh_messages.c.delivery_id)
            .where(mesh_messages.c.destination == destination, ~mesh_messages.c.alerted,
                   sa.or_(*conditions))
            .order_by(mesh_messages.c.delivery_id)
            .limit(limit)
        )  # fmt: skip
        async with self.reading() as conn:
            rows = (await conn.execute(query)).all()
        return [
            MeshAlertDue(r.delivery_id, r.event_id, r.destination, r.workflow_id,
                         r.recipient_ods, r.uploaded_at, r.recipient == NO_MAILBOX)
            for r in rows
        ]  # fmt: skip

    async def prune_mesh_inbox(self, older_than: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` inbox messages matched to a delivery and received before
        `older_than` (their acknowledgement stays in `mesh_acks` while the delivery is kept).
        Unreadable and unmatched ones are never pruned: they wait for an operator."""
        ids = (
            sa.select(mesh_inbox.c.message_id)
            .where(mesh_inbox.c.status == "matched", mesh_inbox.c.received_at < older_than)
            .limit(limit)
        )
        async with self.writing() as conn:
            gone = [r.message_id for r in await conn.execute(ids)]
            if gone:
                await conn.execute(sa.delete(mesh_inbox).where(mesh_inbox.c.message_id.in_(gone)))
            await conn.commit()
        return len(gone)

    async def claim_mesh_alert(self, delivery_id: int, *, claimed: bool = True) -> bool:
        """Mark (or, after a failed post, unmark) a MESH delivery's alert as raised; True when
        this call changed it (so one replica posts it)."""
        async with self.writing() as conn:
            result = await conn.execute(
                sa.update(mesh_messages)
                .where(mesh_messages.c.delivery_id == delivery_id,
                       mesh_messages.c.alerted == (not claimed))
                .values(alerted=claimed)
            )  # fmt: skip
            await conn.commit()
        return bool(result.rowcount)


async def _apply(conn: AsyncConnection, record: InboxRecord, hold: bool) -> InboxOutcome:
    ack = record.ack
    if ack is None:
        return InboxOutcome("unreadable")
    found = await conn.execute(
        sa.select(mesh_messages.c.delivery_id, deliveries.c.event_id)
        .join(deliveries, deliveries.c.id == mesh_messages.c.delivery_id)
        .where(mesh_messages.c.itk_message_id == ack.responds_to,
               mesh_messages.c.destination == record.destination)
    )  # fmt: skip
    row = found.first()
    if row is None:
        return InboxOutcome("unmatched")
    await conn.execute(
        sa.insert(mesh_acks).values(
            delivery_id=row.delivery_id, inbox_message_id=record.message_id, level=ack.level,
            code=ack.code, positive=ack.positive, text=bounded_text(ack.text),
            received_at=record.received_at,
        )
    )  # fmt: skip
    if not ack.positive:
        reason = f"ITK3 {ack.level} acknowledgement {ack.code or 'error'}: {ack.text}"
        dead = await conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.id == row.delivery_id, deliveries.c.status != DeliveryStatus.DEAD)
            .values(status=DeliveryStatus.DEAD, last_error=bounded_text(reason), hold=hold,
                    lease_until=None, lease_owner=None)
        )  # fmt: skip
        return InboxOutcome("matched", row.delivery_id, dead_lettered=bool(dead.rowcount))
    if ack.level != "business":
        return InboxOutcome("matched", row.delivery_id)
    by = f"MESH business acknowledgement {ack.code} from {record.sender or 'the recipient'}"
    acknowledged = await conn.execute(
        sa.update(follow_ups)
        .where(follow_ups.c.event_id == row.event_id, follow_ups.c.status == FollowUpStatus.OPEN)
        .values(status=FollowUpStatus.ACKNOWLEDGED, acknowledged_at=record.received_at,
                acknowledged_by=by[:120])
    )  # fmt: skip
    return InboxOutcome("matched", row.delivery_id,
                        follow_up_acknowledged=bool(acknowledged.rowcount))  # fmt: skip


def _reason(record: InboxRecord, outcome: InboxOutcome) -> str | None:
    if outcome.status == "unreadable":
        return record.reason or "not an ITK3 response"
    if outcome.status == "unmatched":
        assert record.ack is not None
        return f"an ITK3 response to message {record.ack.responds_to}, which is not ours"
    return None
