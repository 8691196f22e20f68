"""Acknowledgement links with a token per action, each expiring and good once: the tokens'
SHA-256 in `ack_links`; and where an acknowledgement or a follow-up done came from.

Links sent before this revision (an HMAC in the query string, never expiring) are no longer
accepted.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.schema import UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ack_links",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("destination", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("issued_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("used_at", UtcDateTime),
        sa.Column("used_by", sa.String(120)),
        sa.Column("used_from", sa.String(200)),
    )
    op.create_index("ix_ack_links_event", "ack_links", ["event_id"])
    op.create_index("ix_ack_links_expires", "ack_links", ["expires_at"])
    with op.batch_alter_table("follow_ups") as batch:
        batch.add_column(sa.Column("done_from", sa.String(200)))
        batch.add_column(sa.Column("acknowledged_from", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("follow_ups") as batch:
        batch.drop_column("acknowledged_from")
        batch.drop_column("done_from")
    op.drop_table("ack_links")
