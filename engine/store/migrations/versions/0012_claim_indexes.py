"""The claim's indexes: ix_deliveries_blocking gets a predicate both planners can use for the
claim's "is an earlier delivery of this patient in the way?" seek, and ix_deliveries_due goes.

The old predicate (``status = 'pending' OR (status = 'dead' AND hold)``) is an OR, which
SQLite splits into a multi-index OR over the destination's pending and dead deliveries instead
of using the partial index; the same test written as one CASE expression is matched as a whole.
ix_deliveries_due (status, next_attempt_at) served only the claim, which now walks
ix_deliveries_status_destination in id order; keeping it cost a write on every insert,
reschedule and outcome, and tempted SQLite into reading every due delivery and sorting them.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_BLOCKING = (
    "(CASE WHEN status = 'pending' THEN 1 WHEN status = 'dead' AND hold THEN 1 ELSE 0 END) = 1"
)
"""schema.blocking() as it was at this revision (a migration never follows later code)."""


def upgrade() -> None:
    op.drop_index("ix_deliveries_due", "deliveries")
    op.drop_index("ix_deliveries_blocking", "deliveries")
    op.create_index(
        "ix_deliveries_blocking",
        "deliveries",
        ["destination", "patient_key", "id"],
        sqlite_where=sa.text(_BLOCKING),
        postgresql_where=sa.text(_BLOCKING),
    )


def downgrade() -> None:
    old = sa.text("status = 'pending' OR (status = 'dead' AND hold)")
    op.drop_index("ix_deliveries_blocking", "deliveries")
    op.create_index(
        "ix_deliveries_blocking",
        "deliveries",
        ["destination", "patient_key", "id"],
        sqlite_where=old,
        postgresql_where=old,
    )
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_attempt_at"])
