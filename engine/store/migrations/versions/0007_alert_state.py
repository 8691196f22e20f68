"""Alert state: what is raised, and the claims that let one replica post each raise or clear,
so a restart neither raises a standing alert again nor loses a "cleared".

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.schema import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_state",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("condition", sa.String(32), nullable=False),
        sa.Column("episode", sa.String(64), nullable=False),
        sa.Column("facts", sa.Text, nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("claim", sa.String(32)),
        sa.Column("claimed_at", UtcDateTime),
        sa.Column("raised_at", UtcDateTime),
    )


def downgrade() -> None:
    op.drop_table("alert_state")
