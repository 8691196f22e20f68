"""The store's connection: opening (pragmas, TLS, migrations), closing, and the write
transaction every write of the store goes through."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self, TypeVar

import sqlalchemy as sa
import structlog
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from engine.store import migrate, pool
from engine.store.errors import StoreError, StoreFull, translated
from engine.store.roles import Migrated, RoleProblem, audit_exposure, engine_role, grant_engine
from engine.store.sole_engine import sqlite_file

if TYPE_CHECKING:  # the store package does not import the config at run time (no cycle)
    from engine.config import StoreConfig, TlsConfig

log = structlog.get_logger("carebridge.store")

T = TypeVar("T")


def ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


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
    _space: tuple[str, int] | None = field(init=False, default=None)
    """SQLite: the database's folder and the free bytes it must keep (`min_free_bytes`)."""
    _room: tuple[float, bool] = field(init=False, default=(0.0, True))
    _writer: _WriterThread | None = field(init=False, default=None)
    """SQLite file: the thread the hot write transactions run on, each as one call (`write`)."""
    _autocommit: AsyncEngine | None = field(init=False, default=None)
    """PostgreSQL: the same pool, each statement its own transaction (`Outbox._write_one`)."""

    def __post_init__(self) -> None:
        self._is_postgres = self.engine.dialect.name == "postgresql"
        if self._is_postgres:
            self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._write_lock = asyncio.Lock()
        database = sqlite_file(self.engine.url)
        if database is not None:
            self._space = (os.path.dirname(database), 0)
            if not self.engine.url.query.get("uri"):  # a URI may name a shared in-memory one
                self._writer = _WriterThread(self.engine.url)

    def has_room(self) -> bool:
        """False while the SQLite database's filesystem has less than `min_free_bytes` free
        (looked at most every half second); always True on PostgreSQL."""
        if self._space is None:
            return True
        checked_at, room = self._room
        now = time.monotonic()
        if now - checked_at < 0.5:
            return room
        folder, needed = self._space
        try:
            stat = os.statvfs(folder)
            room = stat.f_bavail * stat.f_frsize >= needed
        except OSError:
            room = False
        self._room = (now, room)
        return room

    def check_room(self) -> None:
        """Raise `StoreFull` (a `StoreUnavailable`: wait and retry) if `has_room` is False."""
        if not self.has_room():
            raise StoreFull()

    @classmethod
    async def open(cls, config: StoreConfig) -> Self:
        """Connect and bring the schema up to date (migrations run once, under a lock).

        A failure here is raised as the driver raised it (a certificate refused, a role
        unknown), or as `migrate.MigrationRefused` when the schema is behind and this role may
        not migrate it: it stops the engine at start, for a person to read, and nothing retries
        it. On PostgreSQL, a role that could erase the audit log is logged as a warning.
        """
        kwargs: dict[str, Any] = {}
        if config.url.startswith("postgresql"):
            kwargs["pool_size"] = config.pool_size
            # No pool_pre_ping: `pool` replaces at checkout a connection closed by the server
            # or dropped while idle; one failing in use invalidates the pool, and the caller's
            # retry gets a fresh one.
            if config.tls is not None:
                kwargs["connect_args"] = {"ssl": ssl_context(config.tls)}
        else:
            # Writes are serialised by the store's own lock; a few connections serve reads.
            kwargs["pool_size"] = 4
            kwargs["max_overflow"] = 0
        engine = create_async_engine(config.url, **kwargs)
        pool.watch(engine)
        store = cls(engine)
        if store._space is not None:
            store._space = (store._space[0], config.min_free_bytes)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(migrate.upgrade)
                exposure = await conn.run_sync(audit_exposure)
        except BaseException:
            await engine.dispose()
            raise
        if exposure:
            log.warning("store.audit_log_not_guarded", role_can=exposure, see="docs/deploy.md")
        return store

    async def close(self) -> None:
        if self._writer is not None:
            async with self._write_lock:  # a transaction under way finishes first
                writer, self._writer = self._writer, None
                await writer.close()
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
                try:
                    yield conn
                except BaseException:
                    await _end_async_transaction(conn)
                    raise

    async def write(self, work: Callable[[sa.Connection], T]) -> T:
        """Run `work` in one write transaction (as `writing`) and commit; its result.

        `work` is plain synchronous SQLAlchemy. On a SQLite file it runs whole on the store's
        writer thread: one thread hand-off for the transaction, where `writing` makes several
        per statement (cursor, execute, fetch, close) and SQLAlchemy's greenlet hops besides.
        The same asyncio lock serialises it with every other writer; the commit is the same
        synchronous=FULL commit, and the result comes back only once it is durable. Elsewhere
        (PostgreSQL, an in-memory SQLite) it runs through `writing` with `run_sync`.

        A caller cancelled while its transaction runs on the thread does not stop it: the
        transaction ends as it would have (committed, or rolled back on an error) and the
        caller, holding the lock until then, sees the cancellation. So a claim cancelled at
        shutdown may leave leases that run out (SQLite frees them at the next start), and an
        intake batch may be committed and not acked: the broker redelivers it and the
        message keys make the second arrival a duplicate, not a second event.
        """
        if self._writer is not None:
            with translated():
                async with self._write_lock:
                    if (writer := self._writer) is not None:
                        return await writer.run(work)
            # The store was closed while this waited (a delivery cancelled at shutdown
            # recording its attempts): write as a store without the thread does.
        async with self.writing() as conn:
            result = await conn.run_sync(work)
            await conn.commit()
        return result


async def _end_async_transaction(conn: AsyncConnection) -> None:
    """`_end_transaction` for a connection of the async engine (aiosqlite)."""
    try:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        if driver is not None and driver.in_transaction:
            await driver.rollback()
    except Exception:  # noqa: BLE001 - a connection that cannot roll back is not used again
        await conn.invalidate()


def _end_transaction(conn: sa.Connection) -> None:
    """Roll back what a failed transaction left open. A COMMIT that SQLite refuses (a deferred
    constraint) leaves the transaction open, and SQLAlchemy, whose commit was tried, does not
    roll it back when the connection goes back to its pool: the connection would keep the
    write lock and every later writer would wait for it in vain."""
    driver = conn.connection.dbapi_connection
    try:
        if driver is not None and driver.in_transaction:
            driver.rollback()
    except Exception:  # noqa: BLE001 - a connection that cannot roll back is not used again
        conn.invalidate()


class _WriterThread:
    """One thread with one synchronous SQLite connection (same file, same pragmas) for `write`.

    Only `StoreBase.write` uses it, under the store's write lock, so it never waits for a
    writer of its own process; its BEGIN IMMEDIATE waits in SQLite's busy handler only for
    another process (the console, a command-line tool).
    """

    def __init__(self, url: sa.URL) -> None:
        self._engine = sa.create_engine(url.set(drivername="sqlite"), pool_size=1, max_overflow=0)
        sa_event.listen(self._engine, "connect", pool.sqlite_pragmas)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="store-writer")

    async def run(self, work: Callable[[sa.Connection], T]) -> T:
        done = asyncio.get_running_loop().run_in_executor(self._thread, self._transaction, work)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            # The transaction goes on on its thread (it may yet commit): hold the caller, and so
            # the write lock, until it has ended, whatever cancels come meanwhile, then let the
            # cancellation through.
            while not done.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([done])
            raise

    def _transaction(self, work: Callable[[sa.Connection], T]) -> T:
        with self._engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.commit()
            except BaseException:
                _end_transaction(conn)
                raise
        return result

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._engine.dispose)
        self._thread.shutdown(wait=False)


async def migrate_as_owner(config: StoreConfig, owner_url: str | None = None) -> Migrated:
    """`carebridge migrate`: every pending migration as the schema's owner (`owner_url`, else
    store.url), then on PostgreSQL the grants to the engine's role, the user of store.url
    (`roles`), in one transaction."""
    if not config.url.startswith("postgresql"):
        if owner_url is not None:
            raise RoleProblem("an owner's URL is for PostgreSQL: SQLite has no roles")
        store = await StoreBase.open(config)  # SQLite: its own pragmas, then the migrations
        try:
            async with store.engine.connect() as conn:
                return Migrated(await conn.run_sync(migrate.current_revision), None)
        finally:
            await store.close()
    if owner_url is not None and not owner_url.startswith("postgresql+asyncpg://"):
        raise RoleProblem("the owner's URL must start with postgresql+asyncpg://")
    role = engine_role(config.url, owner_url)
    kwargs: dict[str, Any] = {}
    if config.tls is not None:
        kwargs["connect_args"] = {"ssl": ssl_context(config.tls)}
    engine = create_async_engine(owner_url or config.url, **kwargs)
    tables: tuple[str, ...] = ()
    try:
        with translated():
            async with engine.begin() as conn:
                await conn.run_sync(migrate.upgrade)
                if role is not None:
                    tables = await conn.run_sync(grant_engine, role)
                revision = await conn.run_sync(migrate.current_revision)
    finally:
        await engine.dispose()
    return Migrated(revision, role, tables)


_FROM_ROW = object()


class Batched:
    """An INSERT or UPDATE run over many rows as one executemany with less of SQLAlchemy per
    row than `Connection.execute(statement, rows)`, which builds every row's parameters anew
    (construct_params) before converting them: here the statement is compiled once per dialect,
    and each row's values are put in the compiled order and converted by the same bind
    processors SQLAlchemy would use (UTC datetimes, booleans, bytes), then handed to the driver
    with `exec_driver_sql`, whose errors are SQLAlchemy's as from any statement (`errors`).

    Every row must hold a value for each bound parameter the statement leaves to its rows (an
    INSERT's `columns`, an UPDATE's `bindparam`s); values written into the statement itself
    (`status == 'pending'`) are taken from it. No column defaults are filled in.
    """

    def __init__(self, statement: sa.Insert | sa.Update, columns: Sequence[str] = ()) -> None:
        self._statement = statement
        self._columns = list(columns)
        self._by_dialect: dict[tuple[str, str], _Plan] = {}

    def run(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run over `rows`; the rows matched (the driver's count for the executemany)."""
        if not rows:
            return 0
        dialect = conn.dialect
        plan = self._by_dialect.get((dialect.name, dialect.driver))
        if plan is None:
            plan = self._by_dialect[(dialect.name, dialect.driver)] = self._plan(dialect)
        sql, slots = plan
        try:
            params = [
                tuple([(fixed if fixed is not _FROM_ROW else
                        convert(row[name]) if convert is not None else row[name])
                       for name, fixed, convert in slots])
                for row in rows
            ]  # fmt: skip
        except Exception as exc:  # a value the store cannot take, raised as SQLAlchemy does
            raise sa.exc.StatementError(
                f"({type(exc).__module__}.{type(exc).__name__}) {exc}", sql, None, exc
            ) from exc
        return int(conn.exec_driver_sql(sql, params).rowcount)

    def _plan(self, dialect: sa.Dialect) -> _Plan:
        compiled = self._statement.compile(
            dialect=dialect, column_keys=self._columns or None, for_executemany=True
        )
        if not compiled.positional or compiled.positiontup is None:
            raise TypeError(f"{dialect.name}: only a positional paramstyle is supported here")
        slots: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if isinstance(self._statement, sa.Insert) and name not in self._columns:
                raise TypeError(f"{name}: a column with a default must be given in every row")
            if bind.required or name in self._columns:
                slots.append((name, _FROM_ROW, convert))
            else:  # a value written into the statement
                value = bind.effective_value
                slots.append((name, convert(value) if convert is not None else value, None))
        return compiled.string, slots


_Plan = tuple[str, list[tuple[str, Any, "Callable[[Any], Any] | None"]]]
