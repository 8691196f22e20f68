"""Follow-up after discharge: one row per discharge in a follow-up cohort (72 h / 48 h), its
due time, and whether it was acknowledged, done, or withdrawn by a cancelled discharge.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.schema import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "follow_ups",
        sa.Column("event_id", sa.String(40), sa.ForeignKey("events.event_id"), primary_key=True),
        sa.Column("patient_key", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("standard", sa.String(32), nullable=False),
        sa.Column("discharged_at", UtcDateTime, nullable=False),
        sa.Column("due_at", UtcDateTime, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("acknowledged_at", UtcDateTime),
        sa.Column("acknowledged_by", sa.String(120)),
        sa.Column("done_at", UtcDateTime),
        sa.Column("done_by", sa.String(120)),
        sa.Column("withdrawn_by", sa.String(40)),
        sa.Column("alerted_unacknowledged", sa.Boolean, nullable=False),
        sa.Column("alerted_overdue", sa.Boolean, nullable=False),
    )
    op.create_index("ix_follow_ups_open_due", "follow_ups", ["status", "due_at"])


def downgrade() -> None:
    op.drop_table("follow_ups")
