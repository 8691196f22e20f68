"""Console sessions kept server-side (so sign-out and an admin can end one), and failed
sign-ins counted per user and per address (so guessing is throttled).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.schema import Id, UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("key_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("user_name", sa.String(80), nullable=False),
        sa.Column("address", sa.String(64)),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("last_seen_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("revoked_at", UtcDateTime),
        sa.Column("revoked_by", sa.String(80)),
    )
    op.create_index("ix_console_sessions_live", "console_sessions", ["revoked_at", "expires_at"])
    op.create_table(
        "sign_in_failures",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_failure_at", UtcDateTime, nullable=False),
        sa.Column("locked_until", UtcDateTime),
    )


def downgrade() -> None:
    op.drop_table("sign_in_failures")
    op.drop_table("console_sessions")
