"""The store's tables (SQLAlchemy Core). Migrations in `migrations/` create and change them.

messages    every message received, accepted or not (the message log), with its raw bytes
events      the canonical care event each accepted message became
deliveries  one row per (event, destination): the outbox the delivery loop drains
attempts    every try of every delivery, with the destination's answer or the error
audit_log   what operators did and saw in the console (append-only)
follow_ups  the follow-up clock each discharge in a cohort started, and what became of it
suspects    redelivered messages in hand: one left behind killed the engine
alert_state every alert raised and not yet cleared, and the claims of the replica posting one
console_sessions  console sign-ins (hashed session ids), revocable; sign_in_failures throttles
            failed sign-ins per user and per address
mesh_messages  the MESH side of a delivery to a `mesh` destination: local id, ITK3 message id,
               recipient mailbox, MESH's message id
mesh_acks      every ITK3 acknowledgement matched to a delivery
mesh_inbox     every message read from the engine's own MESH inbox, raw, and what became of it
ack_links   the single-use, expiring tokens of the links in clinician notifications (hashed)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)

from engine.store.statuses import DeliveryStatus, MessageStatus


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Id = BigInteger().with_variant(Integer(), "sqlite")


def blocking(table: str = "") -> str:
    """SQL true for a delivery that holds back the same patient's later deliveries to its
    destination (pending, or dead with `hold`): the predicate of the partial index
    ix_deliveries_blocking, word for word as the claim's subquery writes it.

    One CASE expression rather than an OR: SQLite would split an OR into a multi-index OR over
    the destination's pending and dead deliveries instead of seeking the partial index."""
    p = f"{table}." if table else ""
    pending, dead = DeliveryStatus.PENDING.value, DeliveryStatus.DEAD.value
    return (
        f"(CASE WHEN {p}status = '{pending}' THEN 1 "
        f"WHEN {p}status = '{dead}' AND {p}hold THEN 1 ELSE 0 END) = 1"
    )


metadata = MetaData()

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("message_key", String(200)),
    Column("format", String(16)),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("error_location", String(64)),
    Column("error_code", String(8)),
    Column("payload", LargeBinary, nullable=False),
    Column("payload_sha256", String(64), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("committed_at", UtcDateTime, nullable=False),
    Column("transport_id", String(200)),
    Column("duplicate_of", Id),
    Column("event_id", String(40)),
    Column("event_kind", String(32)),
    Column("patient_key", String(200)),
    Index(
        "ux_messages_source_key_accepted",
        "source",
        "message_key",
        unique=True,
        sqlite_where=Column("status") == MessageStatus.ACCEPTED.value,
        postgresql_where=Column("status") == MessageStatus.ACCEPTED.value,
    ),
    Index("ix_messages_received_at", "received_at"),
    Index("ix_messages_patient_key", "patient_key"),
    # Console: an operator's resolution of a rejected message, and the search indexes (each
    # filter with the id, so a page of the newest matches is read straight from the index).
    Column("resolved_at", UtcDateTime),
    Column("resolved_by", String(80)),
    Column("resolution", Text),
    Index("ix_messages_message_key", "message_key"),
    Index("ix_messages_source_id", "source", "id"),
    Index("ix_messages_status_id", "status", "id"),
    Index("ix_messages_event_kind_id", "event_kind", "id"),
)

events = Table(
    "events",
    metadata,
    Column("event_id", String(40), primary_key=True),
    Column("message_id", Id, ForeignKey("messages.id"), nullable=False),
    Column("source", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("care_setting", String(32), nullable=False),
    Column("patient_key", String(200), nullable=False),
    Column("occurred_at", UtcDateTime),
    Column("received_at", UtcDateTime, nullable=False),
    Column("body", Text, nullable=False),
    Column("stay_id", String(200)),
    Column("corrects", String(40)),
    Index("ix_events_patient_key", "patient_key"),
    Index("ix_events_patient_stay_kind", "patient_key", "stay_id", "kind"),
    # The events of a message: retention's deletes, and the foreign key's check when a message
    # row is deleted (without it, each deleted message scanned every event: migration 0014).
    Index("ix_events_message_id", "message_id"),
    # The corrections of an event, for "has this discharge been cancelled?" (migration 0013).
    Index(
        "ix_events_corrects",
        "corrects",
        sqlite_where=text("corrects IS NOT NULL"),
        postgresql_where=text("corrects IS NOT NULL"),
    ),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", String(40), ForeignKey("events.event_id"), nullable=False),
    Column("destination", String(64), nullable=False),
    Column("patient_key", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("idempotency_key", String(120), nullable=False, unique=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("lease_until", UtcDateTime),
    Column("lease_owner", String(80)),
    Column("delivered_at", UtcDateTime),
    Column("last_error", Text),
    Column("hold", Boolean, nullable=False, default=False),
    Index("ix_deliveries_order", "destination", "patient_key", "id"),
    Index(
        "ix_deliveries_blocking",
        "destination",
        "patient_key",
        "id",
        sqlite_where=text(blocking()),
        postgresql_where=text(blocking()),
    ),
    # Console: a dead letter resolved by an operator, a delivery held back by one.
    Column("resolved_at", UtcDateTime),
    Column("resolved_by", String(80)),
    Column("resolution", Text),
    Column("held_at", UtcDateTime),
    Column("held_by", String(80)),
    Index("ix_deliveries_event", "event_id"),
    Index("ix_deliveries_status_destination", "status", "destination", "id"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("delivery_id", Id, ForeignKey("deliveries.id"), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("status_code", Integer),
    Column("detail", Text),
    Index("ix_attempts_delivery", "delivery_id"),
    Index("ix_attempts_started_at", "started_at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(80), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(32), nullable=False),
    Column("message_id", Id),
    Column("delivery_id", Id),
    Column("patient_key", String(200)),
    Column("reason", Text),
    Column("detail", Text),
    Index("ix_audit_log_patient_key", "patient_key"),
    Index("ix_audit_log_message_id", "message_id"),
)

follow_ups = Table(
    "follow_ups",
    metadata,
    Column("event_id", String(40), ForeignKey("events.event_id"), primary_key=True),
    Column("patient_key", String(200), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("standard", String(32), nullable=False),
    Column("discharged_at", UtcDateTime, nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("acknowledged_at", UtcDateTime),
    Column("acknowledged_by", String(120)),
    Column("done_at", UtcDateTime),
    Column("done_by", String(120)),
    Column("withdrawn_by", String(40)),
    Column("alerted_unacknowledged", Boolean, nullable=False, default=False),
    Column("alerted_overdue", Boolean, nullable=False, default=False),
    Column("done_from", String(200)),
    Column("acknowledged_from", String(200)),
    Index("ix_follow_ups_open_due", "status", "due_at"),
)

suspects = Table(
    "suspects",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("payload_sha256", String(64), primary_key=True),
    Column("marked_at", UtcDateTime, nullable=False),
)
"""Redelivered messages in hand: a row left behind means the engine died processing it."""

alert_state = Table(
    "alert_state",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("condition", String(32), nullable=False),
    Column("episode", String(64), nullable=False),
    Column("facts", Text, nullable=False),
    Column("phase", String(16), nullable=False),
    Column("claim", String(32)),
    Column("claimed_at", UtcDateTime),
    Column("raised_at", UtcDateTime),
)
"""One row per alert from its claimed raise until its "cleared" is taken: phase raising, raised
or clearing; `claim` is the token of the replica posting it, since `claimed_at`."""

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key_sha256", String(64), nullable=False, unique=True),
    Column("user_name", String(80), nullable=False),
    Column("address", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
    Column("revoked_by", String(80)),
    Index("ix_console_sessions_live", "revoked_at", "expires_at"),
)
"""Console sign-ins: the SHA-256 of the session cookie (never the cookie), who, from where,
and when it ends: `expires_at` (absolute), idle since `last_seen_at`, or revoked."""

sign_in_failures = Table(
    "sign_in_failures",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", UtcDateTime, nullable=False),
    Column("locked_until", UtcDateTime),
)
"""Failed console sign-ins in a row, per user name (``user:<name>``) and per address
(``address:<ip>``), and until when each is locked out."""
mesh_messages = Table(
    "mesh_messages",
    metadata,
    Column("delivery_id", Id, ForeignKey("deliveries.id"), primary_key=True),
    Column("destination", String(64), nullable=False),
    Column("local_id", String(300), nullable=False),
    Column("itk_message_id", String(64), nullable=False),
    Column("workflow_id", String(64), nullable=False),
    Column("recipient", String(20), nullable=False),
    Column("recipient_ods", String(10)),
    Column("message_id", String(64)),
    Column("uploaded_at", UtcDateTime),
    Column("alerted", Boolean, nullable=False, default=False),
    Index("ix_mesh_messages_itk", "itk_message_id"),
    Index("ix_mesh_messages_uploaded", "uploaded_at"),
)
"""One row per delivery to a MESH destination, written before the upload (the local id) and
completed after it (MESH's message id)."""

mesh_acks = Table(
    "mesh_acks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("delivery_id", Id, ForeignKey("deliveries.id"), nullable=False),
    Column("inbox_message_id", String(64), nullable=False),
    Column("level", String(16), nullable=False),
    Column("code", String(8), nullable=False),
    Column("positive", Boolean, nullable=False),
    Column("text", Text),
    Column("received_at", UtcDateTime, nullable=False),
    Index("ix_mesh_acks_delivery", "delivery_id"),
)

mesh_inbox = Table(
    "mesh_inbox",
    metadata,
    Column("message_id", String(64), primary_key=True),
    Column("destination", String(64), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("sender", String(20)),
    Column("workflow_id", String(64)),
    Column("local_id", String(300)),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("delivery_id", Id),
    Column("payload", LargeBinary, nullable=False),
    Index("ix_mesh_inbox_status", "status", "received_at"),
)
"""Every message read from a MESH destination's own inbox, kept raw before it is acknowledged
on MESH: `status` matched (an ITK3 acknowledgement of a delivery), unmatched (an ITK3 response
naming no delivery of ours) or unreadable (anything else), with the reason."""

ack_links = Table(
    "ack_links",
    metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("destination", String(64), nullable=False),
    Column("event_id", String(40), nullable=False),
    Column("action", String(8), nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime),
    Column("used_by", String(120)),
    Column("used_from", String(200)),
    Index("ix_ack_links_event", "event_id"),
    Index("ix_ack_links_expires", "expires_at"),
)
"""One row per acknowledgement link sent: the SHA-256 of its token (never the token), the
notification and action (``ack`` or ``done``) it is good for, until when, and its one use."""
