"""Initial store: message log, canonical events, deliveries (the outbox) and attempts.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.schema import Id, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    accepted = sa.text("status = 'accepted'")
    op.create_table(
        "messages",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("message_key", sa.String(200)),
        sa.Column("format", sa.String(16)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("error_location", sa.String(64)),
        sa.Column("error_code", sa.String(8)),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("committed_at", UtcDateTime, nullable=False),
        sa.Column("transport_id", sa.String(200)),
        sa.Column("duplicate_of", Id),
        sa.Column("event_id", sa.String(40)),
        sa.Column("event_kind", sa.String(32)),
        sa.Column("patient_key", sa.String(200)),
    )
    op.create_index(
        "ux_messages_source_key_accepted",
        "messages",
        ["source", "message_key"],
        unique=True,
        sqlite_where=accepted,
        postgresql_where=accepted,
    )
    op.create_index("ix_messages_received_at", "messages", ["received_at"])
    op.create_index("ix_messages_patient_key", "messages", ["patient_key"])
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(40), primary_key=True),
        sa.Column("message_id", Id, sa.ForeignKey("messages.id"), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("care_setting", sa.String(32), nullable=False),
        sa.Column("patient_key", sa.String(200), nullable=False),
        sa.Column("occurred_at", UtcDateTime),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_events_patient_key", "events", ["patient_key"])
    op.create_table(
        "deliveries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(40), sa.ForeignKey("events.event_id"), nullable=False),
        sa.Column("destination", sa.String(64), nullable=False),
        sa.Column("patient_key", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(120), nullable=False, unique=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=False),
        sa.Column("lease_until", UtcDateTime),
        sa.Column("lease_owner", sa.String(80)),
        sa.Column("delivered_at", UtcDateTime),
        sa.Column("last_error", sa.Text),
        sa.Column("hold", sa.Boolean, nullable=False),
    )
    op.create_index("ix_deliveries_order", "deliveries", ["destination", "patient_key", "id"])
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_attempt_at"])
    op.create_table(
        "attempts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", Id, sa.ForeignKey("deliveries.id"), nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_attempts_delivery", "attempts", ["delivery_id"])


def downgrade() -> None:
    for table in ("attempts", "deliveries", "events", "messages"):
        op.drop_table(table)
