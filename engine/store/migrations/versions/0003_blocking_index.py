"""An index of only the deliveries that hold a patient's later ones back, for claims.

The claim's "is an earlier delivery of this patient still in the way?" check otherwise reads
every earlier delivery of the patient, delivered ones included, and slows as history grows.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    blocking = sa.text("status = 'pending' OR (status = 'dead' AND hold)")
    op.create_index(
        "ix_deliveries_blocking",
        "deliveries",
        ["destination", "patient_key", "id"],
        sqlite_where=blocking,
        postgresql_where=blocking,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_blocking", "deliveries")
