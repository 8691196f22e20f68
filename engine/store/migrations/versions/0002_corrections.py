"""Events know their stay and what they correct, so a cancel can find its original.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("stay_id", sa.String(200)))
        batch.add_column(sa.Column("corrects", sa.String(40)))
    op.create_index("ix_events_patient_stay_kind", "events", ["patient_key", "stay_id", "kind"])


def downgrade() -> None:
    op.drop_index("ix_events_patient_stay_kind", "events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("corrects")
        batch.drop_column("stay_id")
