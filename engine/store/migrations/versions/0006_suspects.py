"""Suspects: a redelivered message is marked before it is processed alone, so one that kills the
engine is recognised on its next redelivery and set aside.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.schema import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suspects",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("payload_sha256", sa.String(64), primary_key=True),
        sa.Column("marked_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("suspects")
