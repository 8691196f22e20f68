"""Retention's cost is bounded by what it prunes, not by the history kept (migration 0014)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.history import T0, seed
from engine.config import StoreConfig
from engine.store import Store
from engine.store.pruning import _eligible
from engine.store.schema import metadata
from tests.conftest import create_pg_database, drop_pg_database, pg_url
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


async def test_postgresql_tests_each_old_message_by_index_seeks() -> None:
    """With statistics (as autovacuum keeps them): the old messages in received_at order, each
    tested by nested-loop anti-joins over ix_deliveries_event, never a scan or a hash of all
    the deliveries, and no JIT compilation (a CASE form was misjudged, and compiled at every
    call: 0.8 s a batch at 200,000 messages)."""
    database = await create_pg_database()
    store = await Store.open(StoreConfig(url=pg_url(database)))
    try:
        await seed(store, 5000, analyze=True)
        statement = _eligible(T0 + timedelta(seconds=2500), 200)
        sql = statement.compile(dialect=store.engine.dialect,
                                compile_kwargs={"literal_binds": True})  # fmt: skip
        async with store.engine.connect() as conn:
            plan = [str(row[0]) for row in await conn.exec_driver_sql(
                f"EXPLAIN (ANALYZE, COSTS OFF) {sql}")]  # fmt: skip
        text = "\n".join(plan)
        assert "Index Scan using ix_messages_received_at on messages" in text, text
        assert "Anti Join" in text, text
        assert "ix_deliveries_event" in text, text
        assert "Seq Scan on deliveries" not in text, text
        assert "hashed SubPlan" not in text, text
        assert "JIT" not in text, text
    finally:
        await store.close()
        await drop_pg_database(database)
