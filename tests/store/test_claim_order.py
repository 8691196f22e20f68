"""The claim with a backlog: only each (destination, patient) head goes, oldest first, whatever
lies behind it; held dead letters and replays keep per-patient order. Both stores."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.runtime.environment import EnvironmentContext
from sqlalchemy.ext.asyncio import create_async_engine

from engine.config import StoreConfig
from engine.console.auth import Principal
from engine.store import (
    AcceptedEvent,
    ClaimedDelivery,
    DeadLettered,
    Delivered,
    IntakeRecord,
    Store,
    migrate,
)
from engine.store import operator as actions
from engine.store.outbox import _due
from engine.store.schema import deliveries
from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.store.plans import sqlite_plan

pytestmark = pytest.mark.integration
LEASE = timedelta(seconds=60)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
OPERATOR = Principal("olive", "operator", "session", "s1")


def record(key: str, patient: str, destinations: tuple[str, ...] = ("gp",)) -> IntakeRecord:
    return IntakeRecord(
        source="mh-trust",
        payload=f"MSH|{key}".encode(),
        received_at=T0,
        format="hl7v2",
        message_key=key,
        accepted=AcceptedEvent(
            event_id=f"ev-{key}", kind="discharge", care_setting="mental_health",
            patient_key=patient, occurred_at=T0, body="{}",
            destinations=tuple((d, False) for d in destinations),
        ),
    )  # fmt: skip


async def claim(
    store: Store, limit: int = 100, destinations: tuple[str, ...] = ("gp",)
) -> list[str]:
    got = await store.claim_due(list(destinations), limit=limit, lease=LEASE, owner="w")
    return [c.event_id for c in got]


async def deliver(store: Store, event_ids: list[str]) -> None:
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(deliveries.c.id).where(deliveries.c.event_id.in_(event_ids))
        )
        ids = [r.id for r in rows]
    # 'delivered' is recorded whoever holds the lease (or none): no claim needed here.
    unclaimed = [ClaimedDelivery(i, "", "gp", "", "", 0, T0, "", "", "", "") for i in ids]
    await store.finish_deliveries([(d, [], Delivered(T0)) for d in unclaimed])


async def test_a_large_backlog_gives_only_the_heads_oldest_first(store: Store) -> None:
    # 40 events for each of 3 patients, interleaved: 120 pending, 3 heads.
    await store.record_intake([record(f"{p}{n:02d}", f"p:{p}") for n in range(40) for p in "abc"])
    assert await claim(store) == ["ev-a00", "ev-b00", "ev-c00"]
    assert await claim(store) == []  # the heads are in flight; nothing behind them may pass
    await deliver(store, ["ev-b00"])
    assert await claim(store) == ["ev-b01"]
    await deliver(store, ["ev-a00", "ev-c00", "ev-b01"])
    # b01 went first, so b02 is now younger than c01: the limit takes the oldest heads.
    assert await claim(store, limit=2) == ["ev-a01", "ev-c01"]
    assert await claim(store, limit=2) == ["ev-b02"]


async def test_several_destinations_are_claimed_in_turn_within_the_limit(store: Store) -> None:
    await store.record_intake(
        [record(f"{p}{n}", f"p:{p}", ("gp", "team")) for n in range(3) for p in "ab"]
    )
    # team's two heads first, then gp's oldest within the limit; returned in id order.
    got = await store.claim_due(["team", "gp"], limit=3, lease=LEASE, owner="w")
    assert [(c.destination, c.event_id) for c in got] == [
        ("gp", "ev-a0"), ("team", "ev-a0"), ("team", "ev-b0")
    ]  # fmt: skip
    assert await claim(store, destinations=("team", "gp")) == ["ev-b0"]  # gp's other head


async def test_a_held_dead_letter_blocks_behind_a_delivered_history(store: Store) -> None:
    # The patient's delivered past (never blocking) before the dead letter, a backlog after it.
    await store.record_intake([record(f"old{n:02d}", "p:a") for n in range(30)])
    await deliver(store, [f"ev-old{n:02d}" for n in range(30)])
    await store.record_intake([record(f"new{n:02d}", "p:a") for n in range(20)])
    await store.record_intake([record("b0", "p:b")])
    [head, other] = await store.claim_due(["gp"], limit=10, lease=LEASE, owner="w")
    assert (head.event_id, other.event_id) == ("ev-new00", "ev-b0")
    await store.finish_deliveries(
        [(head, [], DeadLettered("refused", hold=True)), (other, [], Delivered(T0))]
    )
    assert await claim(store) == []  # 19 pending behind a held dead letter: none goes
    resolved = await actions.resolve_delivery(store, OPERATOR, head.id, "sent by fax")
    assert resolved.count == 1
    assert await claim(store) == ["ev-new01"]


async def test_a_replayed_delivery_goes_before_its_patients_later_ones(store: Store) -> None:
    await store.record_intake([record("a0", "p:a"), record("a1", "p:a")])
    await deliver(store, ["ev-a0", "ev-a1"])
    await store.record_intake([record("a2", "p:a")])
    async with store.engine.connect() as conn:
        first = (
            await conn.execute(sa.select(deliveries.c.id).where(deliveries.c.event_id == "ev-a0"))
        ).scalar_one()
    assert (await actions.replay_delivery(store, OPERATOR, first, "resend")).count == 1
    assert await claim(store) == ["ev-a0"]  # the replay is the head now; a2 waits behind it
    await deliver(store, ["ev-a0"])
    assert await claim(store) == ["ev-a2"]


async def test_sqlite_walks_the_pending_index_in_id_order_without_a_sort(tmp_path: Path) -> None:
    """The plan that bounds a claim by its batch: the destination's pending deliveries in id
    order from ix_deliveries_status_destination (no sort of the backlog), one seek of the
    partial index ix_deliveries_blocking per row (never the patient's delivered history)."""
    plan = await sqlite_plan(tmp_path, _due("gp", 50, datetime.now(UTC)))
    assert plan[0].startswith("SEARCH deliveries USING INDEX ix_deliveries_status_destination")
    assert any("USING INDEX ix_deliveries_blocking" in line for line in plan), plan
    assert not any("TEMP B-TREE" in line or line.startswith("SCAN") for line in plan), plan


def _to(revision: str) -> Callable[[sa.Connection], None]:
    def upgrade(connection: sa.Connection) -> None:
        config, script = migrate._script()
        with EnvironmentContext(
            config, script, fn=lambda rev, _ctx: script._upgrade_revs(revision, rev),
            destination_rev=revision,
        ) as env:  # fmt: skip
            env.configure(connection=connection)
            env.run_migrations()

    return upgrade


def _index_sql(connection: sa.Connection) -> dict[str, str]:
    if connection.dialect.name == "postgresql":
        rows = connection.execute(
            sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'deliveries'")
        )
    else:
        rows = connection.execute(sa.text(
            "SELECT name, coalesce(sql, '') FROM sqlite_master "
            "WHERE type = 'index' AND tbl_name = 'deliveries'"
        ))  # fmt: skip
    return {str(name): str(sql) for name, sql in rows}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_migration_0012_keeps_a_backlog_claimable_in_order(
    backend: str, tmp_path: Path
) -> None:
    """A store at 0011 with a backlog: after 0012 the blocking index has the CASE predicate,
    ix_deliveries_due is gone, and the backlog is claimed head first."""
    database = await create_pg_database() if backend == "postgresql" else ""
    url = pg_url(database) if database else f"sqlite+aiosqlite:///{tmp_path / 'cb.db'}"
    try:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(_to("0011"))
        await engine.dispose()
        store = await Store.open(StoreConfig(url=url))  # migrates to the head
        try:
            await store.record_intake([record("a0", "p:a"), record("a1", "p:a")])
            async with store.engine.connect() as conn:
                indexes = await conn.run_sync(_index_sql)
            assert "ix_deliveries_due" not in indexes
            assert "CASE" in indexes["ix_deliveries_blocking"].upper()  # not the OR of 0003
            assert await claim(store) == ["ev-a0"]
        finally:
            await store.close()
    finally:
        if database:
            await drop_pg_database(database)


@contextlib.asynccontextmanager
async def _database_at(revision: str, *statements: str) -> AsyncIterator[str]:
    """A new PostgreSQL database migrated to `revision`, then `statements` run in autocommit
    (as an operator would, CONCURRENTLY included); its URL, dropped after."""
    database = await create_pg_database()
    try:
        engine = create_async_engine(pg_url(database), isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.run_sync(_to(revision))
            for statement in statements:
                await conn.execute(sa.text(statement))
        await engine.dispose()
        yield pg_url(database)
    finally:
        await drop_pg_database(database)


async def test_migration_0013_takes_an_index_an_operator_built_concurrently() -> None:
    """docs/deploy.md: on a large PostgreSQL store, ix_events_corrects may be built beforehand
    with CREATE INDEX CONCURRENTLY (no write lock on events); the migration then finds it."""
    built = ("CREATE INDEX CONCURRENTLY ix_events_corrects ON events (corrects) "
             "WHERE corrects IS NOT NULL")  # fmt: skip
    async with _database_at("0012", built) as url:
        store = await Store.open(StoreConfig(url=url))  # migrates to the head
        try:
            async with store.engine.connect() as conn:
                assert await conn.run_sync(migrate.current_revision) == migrate.head_revision()
        finally:
            await store.close()


async def test_migration_0014_refuses_an_index_a_failed_concurrent_build_left_invalid() -> None:
    left = (  # what a CREATE INDEX CONCURRENTLY that failed half way leaves behind
        "CREATE INDEX ix_events_message_id ON events (message_id)",
        "UPDATE pg_index SET indisvalid = false "
        "WHERE indexrelid = 'ix_events_message_id'::regclass",
    )
    async with _database_at("0013", *left) as url:
        with pytest.raises(RuntimeError, match="ix_events_message_id exists but is not valid"):
            await Store.open(StoreConfig(url=url))
