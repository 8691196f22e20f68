"""MESH: each delivery's MESH message (local id, ITK3 message id, recipient, MESH message id),
the ITK3 acknowledgements matched to deliveries, and every inbox message kept raw.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.schema import Id, UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mesh_messages",
        sa.Column("delivery_id", Id, sa.ForeignKey("deliveries.id"), primary_key=True),
        sa.Column("destination", sa.String(64), nullable=False),
        sa.Column("local_id", sa.String(300), nullable=False),
        sa.Column("itk_message_id", sa.String(64), nullable=False),
        sa.Column("workflow_id", sa.String(64), nullable=False),
        sa.Column("recipient", sa.String(20), nullable=False),
        sa.Column("recipient_ods", sa.String(10)),
        sa.Column("message_id", sa.String(64)),
        sa.Column("uploaded_at", UtcDateTime),
        sa.Column("alerted", sa.Boolean, nullable=False),
    )
    op.create_index("ix_mesh_messages_itk", "mesh_messages", ["itk_message_id"])
    op.create_index("ix_mesh_messages_uploaded", "mesh_messages", ["uploaded_at"])
    op.create_table(
        "mesh_acks",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", Id, sa.ForeignKey("deliveries.id"), nullable=False),
        sa.Column("inbox_message_id", sa.String(64), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("code", sa.String(8), nullable=False),
        sa.Column("positive", sa.Boolean, nullable=False),
        sa.Column("text", sa.Text),
        sa.Column("received_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_mesh_acks_delivery", "mesh_acks", ["delivery_id"])
    op.create_table(
        "mesh_inbox",
        sa.Column("message_id", sa.String(64), primary_key=True),
        sa.Column("destination", sa.String(64), nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("sender", sa.String(20)),
        sa.Column("workflow_id", sa.String(64)),
        sa.Column("local_id", sa.String(300)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("delivery_id", Id),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_mesh_inbox_status", "mesh_inbox", ["status", "received_at"])


def downgrade() -> None:
    op.drop_table("mesh_inbox")
    op.drop_table("mesh_acks")
    op.drop_table("mesh_messages")
