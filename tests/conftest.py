"""Shared fixtures: stores on SQLite and on the real PostgreSQL, each fresh per test."""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import structlog

from engine.config import StoreConfig
from engine.store import Store

PG_ADMIN_DSN = os.environ.get("CAREBRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("CAREBRIDGE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")


async def create_pg_database() -> str:
    name = f"cb_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.contextmanager
def logging_as_found() -> Iterator[None]:
    """Put back, on the way out, structlog's configuration and the root logger's handlers and
    level as they were on the way in."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """A test that runs `carebridge` in-process (`engine.cli.main`) configures logging onto the
    stderr pytest captures for that test and closes after it: put the logging set-up back, so
    a later test's log line never writes to a closed file ("I/O operation on closed file", and
    the task that logged it killed)."""
    with logging_as_found():
        yield


def pg_url(database: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated, empty store on each backend."""
    if request.param == "sqlite":
        opened = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'cb.db'}"))
        yield opened
        await opened.close()
        return
    database = await create_pg_database()
    opened = await Store.open(StoreConfig(url=pg_url(database)))
    try:
        yield opened
    finally:
        await opened.close()
        await drop_pg_database(database)
