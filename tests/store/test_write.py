"""`StoreBase.write`: a hot write transaction run whole as one call (on SQLite, on the store's
writer thread), on both backends: its result only after the commit, nothing of it when the
commit fails, and a cancelled caller that still waits for the transaction to end."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.config import StoreConfig
from engine.store import History, IntakeRecord, Original, Store, StoreRefused
from engine.store.schema import messages
from tests.store.test_store import T0, record

pytestmark = pytest.mark.integration


async def fail_every_commit(store: Store) -> None:
    """Make every commit that wrote a message row fail at COMMIT itself (not before): each new
    row adds one to a deferred foreign key that no row satisfies, and a deferred key is checked
    only when the transaction commits."""
    async with store.engine.begin() as conn:
        if store.engine.dialect.name == "sqlite":
            await conn.exec_driver_sql(
                "CREATE TABLE commit_guard (m INTEGER REFERENCES messages(id)"
                " DEFERRABLE INITIALLY DEFERRED)"
            )
            await conn.exec_driver_sql(
                "CREATE TRIGGER commit_guard_t AFTER INSERT ON messages"
                " BEGIN INSERT INTO commit_guard VALUES (-1); END"
            )
            return
        await conn.exec_driver_sql(
            "CREATE TABLE commit_guard (m BIGINT REFERENCES messages(id)"
            " DEFERRABLE INITIALLY DEFERRED)"
        )
        await conn.exec_driver_sql(
            "CREATE FUNCTION commit_guard_f() RETURNS trigger AS $$"
            " BEGIN INSERT INTO commit_guard VALUES (-1); RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        await conn.exec_driver_sql(
            "CREATE TRIGGER commit_guard_t AFTER INSERT ON messages"
            " FOR EACH ROW EXECUTE FUNCTION commit_guard_f()"
        )


async def write_a_row(store: Store, key: str | None) -> None:
    """A message row written through `writing` (every write but the hot ones)."""
    async with store.writing() as conn:
        await conn.execute(sa.insert(messages).values(
            source="mh-trust", message_key=key, format="hl7v2", payload=b"x",
            payload_sha256="0" * 64, received_at=T0, committed_at=T0, status="rejected",
            reason="test"))  # fmt: skip
        await conn.commit()


async def let_commits_through(store: Store) -> None:
    async with store.engine.begin() as conn:
        await conn.exec_driver_sql("DROP TRIGGER commit_guard_t" + (
            "" if store.engine.dialect.name == "sqlite" else " ON messages"))  # fmt: skip


async def test_an_intake_batch_whose_commit_fails_returns_nothing_and_leaves_nothing(
    store: Store,
) -> None:
    await fail_every_commit(store)
    with pytest.raises(StoreRefused) as raised:
        await store.record_intake([record("m1"), record("m2")])
    assert raised.value.cause_name == "IntegrityError"
    assert await store.counts() == {}
    # The failed transaction is over: the next write begins afresh and commits.
    await let_commits_through(store)
    results = await store.record_intake([record("m1"), record("m2")])
    assert [r.status for r in results] == ["accepted", "accepted"]
    assert await store.counts() == {"messages.accepted": 2, "deliveries.pending": 4}


async def test_a_write_returns_its_result_after_the_commit_and_a_failure_leaves_nothing(
    store: Store,
) -> None:
    [written] = await store.record_intake([record("m1")])

    def rename_then(conn: sa.Connection, fail: bool) -> int:
        changed = conn.execute(
            sa.update(messages).where(messages.c.id == written.message_id).values(source="other")
        ).rowcount
        if fail:
            raise RuntimeError("half way")
        return int(changed)

    with pytest.raises(RuntimeError, match="half way"):
        await store.write(lambda conn: rename_then(conn, fail=True))
    async with store.engine.connect() as conn:
        assert (await conn.execute(sa.select(messages.c.source))).scalar_one() == "mh-trust"
    assert await store.write(lambda conn: rename_then(conn, fail=False)) == 1
    async with store.engine.connect() as conn:  # committed: another connection sees it
        assert (await conn.execute(sa.select(messages.c.source))).scalar_one() == "other"


async def test_a_cancelled_write_waits_for_its_transaction_and_the_next_writer_after_it(
    tmp_path: Path,
) -> None:
    """SQLite's writer thread: cancelling the caller cannot stop a transaction under way on
    that thread. The caller waits until it has ended (here, committed), so the write lock is
    not let go meanwhile; the cancellation then reaches it."""
    store = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'cb.db'}"))
    started, release = threading.Event(), threading.Event()

    def slow(conn: sa.Connection) -> None:
        conn.execute(sa.insert(messages).values(
            source="mh-trust", format="hl7v2", payload=b"x", payload_sha256="0" * 64,
            received_at=T0, committed_at=T0, status="rejected", reason="test"))  # fmt: skip
        started.set()
        if not release.wait(30):
            raise TimeoutError("never released")

    try:
        task = asyncio.create_task(store.write(slow))
        assert await asyncio.to_thread(started.wait, 30)
        task.cancel()
        follower = asyncio.create_task(store.record_intake([record("m1")]))
        await asyncio.sleep(0.3)  # neither may end while the transaction is under way
        task.cancel()  # nor after a second cancel
        await asyncio.sleep(0.3)
        assert not task.done()
        assert not follower.done()
        assert store._write_lock.locked()  # the lock itself, not only the thread, holds it
        release.set()
        await asyncio.wait({task}, timeout=30)
        assert task.cancelled()
        [result] = await asyncio.wait_for(follower, 30)
        assert result.status == "accepted"
        assert await store.counts() == {
            "messages.accepted": 1, "messages.rejected": 1, "deliveries.pending": 2}  # fmt: skip
    finally:
        release.set()
        await store.close()


async def test_a_commit_that_fails_leaves_no_transaction_open_on_the_connection(
    store: Store,
) -> None:
    """The same through `writing` (every write but the hot ones): SQLite keeps a transaction
    whose COMMIT failed open; the connection must not go back to the pool like that, where the
    next writer would fail to begin, or would commit the failed rows with its own."""
    await fail_every_commit(store)
    with pytest.raises(StoreRefused):
        await write_a_row(store, None)
    await let_commits_through(store)
    for key in ("m1", "m2", "m3", "m4", "m5"):  # more than the pool's connections
        await write_a_row(store, key)
    assert await store.counts() == {"messages.rejected": 5}


async def test_a_write_that_waited_while_the_store_closed_is_still_written(
    tmp_path: Path,
) -> None:
    """A write queued behind `close` (a delivery cancelled at shutdown recording its attempts)
    is written as on a store without the writer thread, not lost to an AttributeError."""
    store = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'cb.db'}"))
    started, release = threading.Event(), threading.Event()

    def slow(conn: sa.Connection) -> None:
        started.set()
        if not release.wait(30):
            raise TimeoutError("never released")

    try:
        holder = asyncio.create_task(store.write(slow))
        assert await asyncio.to_thread(started.wait, 30)
        closing = asyncio.create_task(store.close())
        await asyncio.sleep(0.1)
        late = asyncio.create_task(store.record_intake([record("m1")]))
        await asyncio.sleep(0.1)
        release.set()
        await asyncio.wait_for(holder, 30)
        await asyncio.wait_for(closing, 30)
        [result] = await asyncio.wait_for(late, 30)
        assert result.status == "accepted"
        assert await store.counts() == {"messages.accepted": 1, "deliveries.pending": 2}
    finally:
        release.set()
        await store.close()


def _pragmas(conn: sa.Connection) -> tuple[object, ...]:
    return tuple(
        conn.exec_driver_sql(f"PRAGMA {name}").scalar()
        for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
    )


async def test_the_writer_thread_has_the_pragmas_of_every_other_connection(
    tmp_path: Path,
) -> None:
    """WAL, synchronous=FULL (2: a commit is durable before intake acks), the busy timeout
    and foreign keys, on the writer thread's connection as on the pooled ones."""
    store = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'cb.db'}"))
    try:
        assert store._writer is not None
        on_the_writer = await store.write(_pragmas)
        async with store.reading() as conn:
            pooled = await conn.run_sync(_pragmas)
        assert on_the_writer == pooled == ("wal", 2, 10000, 1)
    finally:
        await store.close()


async def test_a_store_named_by_sqlites_uri_form_has_room(tmp_path: Path) -> None:
    """`file:...?uri=true` names a file like any other: its folder's free space is what counts
    (it was looked for in a folder called `file:`, never found, so intake waited forever)."""
    url = f"sqlite+aiosqlite:///file:{tmp_path / 'cb.db'}?uri=true"
    store = await Store.open(StoreConfig(url=url))
    try:
        assert store.has_room()
        [result] = await store.record_intake([record("m1")])
        assert result.status == "accepted"
    finally:
        await store.close()


async def test_link_and_record_asks_the_history_in_its_own_write_transaction(
    store: Store,
) -> None:
    """Corrections' lookups run inside the intake write (`link_and_record`): they see what is
    committed, on the write's own connection (on a SQLite file, on the writer thread), and the
    records `link` returns are the ones written."""
    await store.record_intake([record("m1", "p:a"), record("m2", "p:b")])
    seen: list[object] = []

    def link(history: History) -> list[IntakeRecord]:
        if store.engine.dialect.name == "sqlite":
            seen.append(threading.current_thread().name.startswith("store-writer"))
        seen.append(history.patients_with_discharges(["p:a", "p:b", "p:c"]))
        original = history.find_original("p:a", None, "discharge")
        seen.append(original)
        seen.append(history.standing_discharge("p:b", None))
        seen.append(history.find_original("p:c", None, "discharge"))
        return [record("m3", "p:c")]

    results = await store.link_and_record(link)
    if store.engine.dialect.name == "sqlite":
        assert seen.pop(0) is True  # on the writer thread
    assert seen == [
        {"p:a", "p:b"},
        Original("ev-m1", ("gp", "team")),
        "ev-m2",
        None,
    ]
    assert [r.status for r in results] == ["accepted"]
    assert await store.counts() == {"messages.accepted": 3, "deliveries.pending": 6}
    # The lookups as their own reads give the same answers.
    assert await store.find_original("p:a", None, "discharge") == seen[1]
    assert await store.standing_discharge("p:b", None) == "ev-m2"


async def test_link_and_record_runs_link_again_when_the_write_is_retried(store: Store) -> None:
    """A write whose commit fails leaves nothing, and the next call links afresh (a retry sees
    the history as it is then)."""
    await fail_every_commit(store)
    calls: list[int] = []

    def link(history: History) -> list[IntakeRecord]:
        calls.append(len(history.patients_with_discharges(["nhs:9434765919"])))
        return [record("m1")]

    with pytest.raises(StoreRefused):
        await store.link_and_record(link)
    await let_commits_through(store)
    await store.record_intake([record("m0")])
    results = await store.link_and_record(link)
    assert [r.status for r in results] == ["accepted"]
    assert calls == [0, 1]
