"""ix_events_corrects: the events that correct another (cancels, late originals linked to their
cancel), by the event they name, for corrections' "has this discharge been cancelled?"
(`History.standing_discharge`).

Without it that test read every event ever kept for each of the patient's discharges in the
stay (a correlated scan of events): about 6 ms a changed discharge at 10,000 events, growing
with the history. Partial (``corrects IS NOT NULL``): the events that correct nothing, nearly
all of them, cost no index write; ``corrects = ...`` lets both planners use it.

IF NOT EXISTS: on a large PostgreSQL store, an operator may build the index beforehand without
blocking writes (`CREATE INDEX CONCURRENTLY`, docs/deploy.md), and this migration then finds it.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_events_corrects",
        "events",
        ["corrects"],
        if_not_exists=True,
        sqlite_where=sa.text("corrects IS NOT NULL"),
        postgresql_where=sa.text("corrects IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_events_corrects", "events")
