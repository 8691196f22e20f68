"""The store's own errors, against the real backends: a store that does not answer, or that
stops answering half way, is `StoreUnavailable`; content it cannot hold is `StoreRefused`."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import create_async_engine
from structlog.testing import capture_logs

from engine.store import (
    AcceptedEvent,
    IntakeRecord,
    Store,
    StoreRefused,
    StoreUnavailable,
    until_the_store_answers,
)
from tests.conftest import PG_ADMIN_DSN
from tests.store.test_store import T0, record

pytestmark = pytest.mark.integration


def _unreachable_postgres() -> Store:
    """A store whose server is not there: nothing listens on port 1."""
    host = PG_ADMIN_DSN.split("@", 1)[1].split("/", 1)[0].split(":", 1)[0]
    url = f"postgresql+asyncpg://postgres@{host}:1/postgres"
    return Store(create_async_engine(url, connect_args={"timeout": 5}))


def _unopenable_sqlite(tmp_path: Path) -> Store:
    """A SQLite file in a directory that does not exist."""
    return Store(create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'cb.db'}"))


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_a_store_that_cannot_be_reached_is_unavailable(backend: str, tmp_path: Path) -> None:
    store = _unreachable_postgres() if backend == "postgresql" else _unopenable_sqlite(tmp_path)
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await store.record_intake([record("m1")])
        assert isinstance(raised.value.__cause__, sa.exc.SQLAlchemyError | OSError)
        with pytest.raises(StoreUnavailable):
            await store.counts()
        with pytest.raises(StoreUnavailable):
            await store.find_original("nhs:9434765919", None, "discharge")
        assert not await store.ping()
    finally:
        await store.close()


async def test_a_connection_dropped_half_way_is_unavailable(store: Store) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("a server-side disconnect needs the PostgreSQL server")
    with pytest.raises(StoreUnavailable):
        async with store.writing() as conn:
            await conn.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))
    # The store answers again afterwards: the pool replaces the dropped connection.
    [result] = await store.record_intake([record("m1")])
    assert result.status == "accepted"


async def test_an_event_id_used_twice_is_refused(store: Store) -> None:
    first = record("m1")
    assert first.accepted is not None
    second = dataclasses.replace(record("m2"), accepted=first.accepted)
    with pytest.raises(StoreRefused) as raised:
        await store.record_intake([first, second])
    assert raised.value.cause_name == "IntegrityError"
    assert await store.counts() == {}  # the transaction is whole or nothing


async def test_a_time_without_a_zone_is_refused(store: Store) -> None:
    naive = dataclasses.replace(record("m1"), received_at=datetime(2026, 1, 1))
    with pytest.raises(StoreRefused):
        await store.record_intake([naive])


async def test_a_nul_character_postgresql_cannot_hold_is_refused(store: Store) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite holds NUL characters")
    accepted = AcceptedEvent(
        event_id="ev-nul",
        kind="discharge",
        care_setting="mental_health",
        patient_key="nhs:9434765919",
        occurred_at=T0,
        body='{"x": "\x00"}',
        destinations=(("gp", False),),
    )
    nul = IntakeRecord(
        source="mh-trust", payload=b"MSH|nul", received_at=T0, message_key="nul", accepted=accepted
    )
    with pytest.raises(StoreRefused):
        await store.record_intake([nul])
    assert await store.ping()


async def _no_sleep(_seconds: float) -> None:
    return None


async def test_the_wait_retries_an_unavailable_store_until_it_answers() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise StoreUnavailable(ConnectionRefusedError())
        return "answered"

    assert await until_the_store_answers(sleep=_no_sleep)(flaky) == "answered"
    assert len(calls) == 4


async def test_the_wait_tells_an_engine_fault_from_an_outage() -> None:
    """Both are retried (the message is safe at the broker), but an error that is not the
    store's is logged as critical and `unexpected`, so an operator does not read a bug as an
    outage of the store."""
    calls: list[int] = []

    async def buggy() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise StoreUnavailable(ConnectionRefusedError())
        if len(calls) == 2:
            raise AttributeError("a bug")
        return "answered"

    log = structlog.get_logger("test")
    with capture_logs() as logs:
        answered: str = await until_the_store_answers(log=log, event="x.store_unavailable",
                                                 sleep=_no_sleep)(buggy)  # fmt: skip
    assert answered == "answered"
    assert [(e["log_level"], e["error"], e.get("unexpected")) for e in logs] == [
        ("error", "ConnectionRefusedError", None),
        ("critical", "AttributeError", True),
    ]


async def test_a_cancelled_wait_is_cancelled_not_retried() -> None:
    """Shutdown cancels intake and the outcome writer in the middle of a write: the
    cancellation goes through at once (tenacity caught it as any BaseException, and the write
    was retried, logged as an unexpected store error)."""
    calls: list[int] = []
    started = asyncio.Event()

    async def write() -> None:
        log = structlog.get_logger("test")
        async for attempt in until_the_store_answers(log=log, event="x.store_unavailable"):
            with attempt:
                calls.append(1)
                started.set()
                await asyncio.sleep(60)

    with capture_logs() as logs:
        task = asyncio.create_task(write())
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
    assert task.cancelled()
    assert calls == [1]
    assert logs == []


async def test_the_wait_raises_refused_content_at_once() -> None:
    calls: list[int] = []

    async def refused() -> None:
        calls.append(1)
        raise StoreRefused(ValueError("naive datetime"))

    with pytest.raises(StoreRefused):
        await until_the_store_answers(sleep=_no_sleep)(refused)
    assert len(calls) == 1
