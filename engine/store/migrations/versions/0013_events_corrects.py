"""ix_events_corrects: the events that correct another (cancels, late originals linked to their
cancel), by the event they name, for corrections' "has this discharge been cancelled?"
(`History.standing_discharge`).

Without it that test read every event ever kept for each of the patient's discharges in the
stay (a correlated scan of events): about 6 ms a changed discharge at 10,000 events, growing
with the history. Partial (``corrects IS NOT NULL``): the events that correct nothing, nearly
all of them, cost no index write; ``corrects = ...`` lets both planners use it.

IF NOT EXISTS: on a large PostgreSQL store, an operator may build the index beforehand without
blocking writes (`CREATE INDEX CONCURRENTLY`, docs/deploy.md), and this migration then finds it
(and refuses it if that build left it invalid).

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


def _refuse_an_invalid(name: str) -> None:
    """PostgreSQL: an index of this name built beforehand by a CREATE INDEX CONCURRENTLY that
    failed (or is still running) is invalid: refuse to go on rather than take it as built."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    valid = bind.execute(
        sa.text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"),
        {"name": name},
    ).scalar()
    if valid is False:
        raise RuntimeError(
            f"index {name} exists but is not valid (a CREATE INDEX CONCURRENTLY that failed or"
            f" is still running): DROP INDEX {name}, or let the build finish, then migrate again"
        )


def upgrade() -> None:
    _refuse_an_invalid("ix_events_corrects")
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
