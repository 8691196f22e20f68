"""ix_events_message_id: the events of a message, by `events.message_id`.

`events.message_id` references `messages.id` and had no index. Retention deletes a batch of
settled messages with their events: each of its deletes that named the events by message read
the whole events table, and so did the foreign key's check for every message row deleted (SQLite
and PostgreSQL both look up the referencing rows when a referenced row goes). Pruning 1,000
messages from a store of 200,000 took 20 s on SQLite, under the write lock, so intake stood
still meanwhile, and it grew with the history kept. With the index: milliseconds.

IF NOT EXISTS: on a large PostgreSQL store, an operator may build it beforehand without blocking
writes (`CREATE INDEX CONCURRENTLY`, docs/deploy.md), and this migration then finds it
(and refuses it if that build left it invalid).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
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
    _refuse_an_invalid("ix_events_message_id")
    op.create_index("ix_events_message_id", "events", ["message_id"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_events_message_id", "events")
