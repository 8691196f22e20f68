"""Retention's cost is bounded by what it prunes, not by the history kept (migration 0014)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.store.pruning import _eligible
from engine.store.schema import metadata
from tests.store.plans import sqlite_plan

pytestmark = pytest.mark.integration


async def test_sqlite_reads_only_the_messages_older_than_the_cut_off(tmp_path: Path) -> None:
    """A range of ix_messages_received_at in its order: no read of every accepted message by
    status, and no sort (the plan before: a multi-index OR over ix_messages_status_id and a
    temp b-tree, the whole log at every call)."""
    plan = await sqlite_plan(tmp_path, _eligible(datetime(2025, 1, 1, tzinfo=UTC), 1000))
    assert plan[0] == "SEARCH messages USING INDEX ix_messages_received_at (received_at<?)", plan
    assert not any("TEMP B-TREE" in line or "ix_messages_status_id" in line for line in plan)


def test_every_foreign_key_leads_an_index() -> None:
    """Deleting a referenced row (retention) makes SQLite and PostgreSQL look up the rows that
    reference it: without an index on the referencing columns, each deleted row reads the whole
    referencing table (events.message_id had none: 20 s to prune 1,000 of 200,000 messages)."""
    unindexed = []
    for table in metadata.tables.values():
        leads = {tuple(c.name for c in index.columns)[:1] for index in table.indexes}
        leads |= {tuple(c.name for c in table.primary_key.columns)[:1]}
        leads |= {
            tuple(c.name for c in constraint.columns)[:1]
            for constraint in table.constraints
            if isinstance(constraint, sa.UniqueConstraint)
        }
        for fk in table.foreign_keys:
            if (fk.parent.name,) not in leads:
                unindexed.append(f"{table.name}.{fk.parent.name}")
    assert unindexed == []
