"""The store's connection: opening (pragmas, TLS, migrations), closing, and the write
transaction every write of the store goes through."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from engine.store import migrate
from engine.store.errors import StoreError, translated

if TYPE_CHECKING:  # the store package does not import the config at run time (no cycle)
    from engine.config import StoreConfig, TlsConfig


def _ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (console, health) run beside the writer; FULL makes every commit durable
    # before intake acks the broker, so a power cut cannot lose an acknowledged message.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def bounded_text(value: str | None, limit: int = 4000) -> str | None:
    """Free text bound for the store: PostgreSQL refuses NUL characters; keep it bounded."""
    return None if value is None else value.replace("\x00", "")[:limit]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class StoreBase:
    engine: AsyncEngine
    _is_postgres: bool = field(init=False)
    _write_lock: asyncio.Lock = field(init=False)

    def __post_init__(self) -> None:
        self._is_postgres = self.engine.dialect.name == "postgresql"
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, config: StoreConfig) -> Self:
        """Connect and bring the schema up to date (migrations run once, under a lock).

        A failure here is raised as the driver raised it (a certificate refused, a role
        unknown): it stops the engine at start, for a person to read, and nothing retries it.
        """
        kwargs: dict[str, Any] = {}
        if config.url.startswith("postgresql"):
            kwargs["pool_size"] = config.pool_size
            kwargs["pool_pre_ping"] = True
            if config.tls is not None:
                kwargs["connect_args"] = {"ssl": _ssl_context(config.tls)}
        else:
            # Writes are serialised by the store's own lock; a few connections serve reads.
            kwargs["pool_size"] = 4
            kwargs["max_overflow"] = 0
        engine = create_async_engine(config.url, **kwargs)
        if engine.dialect.name == "sqlite":
            sa_event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(migrate.upgrade)
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> bool:
        try:
            async with self.reading() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except StoreError:
            return False
        return True

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads; the store's errors are raised as its own (`errors`)."""
        with translated():
            async with self.engine.connect() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction; the caller commits.

        SQLite has one writer at a time. Its own lock makes waiters sleep and poll (up to
        100 ms each), so under load the lock sits free while writers sleep: writers queue on an
        asyncio lock here instead, and take SQLite's lock up front (BEGIN IMMEDIATE) so a
        transaction that reads then writes cannot fail half way with "database is locked".
        PostgreSQL needs neither. The store's errors are raised as its own (`errors`).
        """
        with translated():
            if self._is_postgres:
                async with self.engine.connect() as conn:
                    yield conn
                return
            async with self._write_lock, self.engine.connect() as conn:
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
                yield conn
