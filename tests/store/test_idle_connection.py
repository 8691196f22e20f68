"""A pooled PostgreSQL connection dropped while idle by a firewall or NAT (no FIN, no RST: it
looks open) is found out at checkout and replaced; the read that checked it out never sees it.

Between the store and PostgreSQL, a TCP proxy that can black-hole the connections open at the
time: it goes on reading what either side sends and forwards nothing, and closes nothing.
Connections opened after it flow as usual, as through a firewall that forgot an idle flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.config import StoreConfig
from engine.store import Store, pool
from tests.conftest import PG_ADMIN_DSN, create_pg_database, drop_pg_database, pg_url

pytestmark = pytest.mark.integration


class BlackHoleProxy:
    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._links: list[tuple[list[bool], list[asyncio.StreamWriter]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.swallowed = asyncio.Event()
        """Set once bytes sent on a black-holed connection have been read and dropped."""

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def black_hole(self) -> None:
        """From now on nothing flows on the connections open now, and none of them closes."""
        for flowing, _ in self._links:
            flowing[0] = False

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for _, writers in self._links:
            for writer in writers:
                writer.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        flowing = [True]
        self._links.append((flowing, [writer, up_writer]))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink, flowing))
            self._tasks.add(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: list[bool]
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if flowing[0]:
                    writer.write(data)
                    await writer.drain()
                else:
                    self.swallowed.set()
        if flowing[0]:
            writer.close()


@pytest.fixture
async def proxied_url() -> AsyncIterator[tuple[str, BlackHoleProxy]]:
    host_port = PG_ADMIN_DSN.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    proxy = BlackHoleProxy(host, int(port or 5432))
    listening = await proxy.start()
    database = await create_pg_database()
    try:
        yield pg_url(database).replace(host_port, f"127.0.0.1:{listening}", 1), proxy
    finally:
        await proxy.close()
        await drop_pg_database(database)


async def backend(store: Store) -> int:
    """A read: the process id of the server's backend that answered it."""
    async with store.reading() as conn:
        return int((await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


async def read_one(store: Store) -> int:
    async with store.reading() as conn:
        return int((await conn.execute(sa.text("SELECT 1"))).scalar_one())


async def test_a_connection_dropped_while_idle_is_replaced_before_a_read_uses_it(
    proxied_url: tuple[str, BlackHoleProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, proxy = proxied_url
    monkeypatch.setattr(pool, "IDLE_BEFORE_PING", 0.0)  # every connection back in the pool
    monkeypatch.setattr(pool, "PING_TIMEOUT", 1.0)
    store = await Store.open(StoreConfig(url=url, pool_size=1))
    try:
        first = await backend(store)  # one connection, back in the pool
        assert await backend(store) == first  # and the same one lent again
        proxy.black_hole()
        async with asyncio.timeout(20):  # without the ping it waits here for TCP to give up
            replaced = await backend(store)
        assert replaced != first
        assert await backend(store) == replaced
    finally:
        await store.close()


async def test_a_checkout_cancelled_during_the_ping_aborts_the_connection_at_once(
    proxied_url: tuple[str, BlackHoleProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancelled ping leaves the connection half way through a statement: it is aborted there
    and then (not closed politely, which waits up to 2 s for a goodbye from a silent peer) and
    never lent again; the next checkout gets a new connection that works."""
    url, proxy = proxied_url
    monkeypatch.setattr(pool, "IDLE_BEFORE_PING", 0.0)
    monkeypatch.setattr(pool, "PING_TIMEOUT", 60.0)  # only the cancellation ends this ping
    store = await Store.open(StoreConfig(url=url, pool_size=1))
    try:
        first = await backend(store)
        proxy.black_hole()
        checkout = asyncio.create_task(backend(store))
        async with asyncio.timeout(20):
            await proxy.swallowed.wait()  # the ping is on its way to nowhere
        assert not checkout.done()
        cancelled_at = time.monotonic()
        checkout.cancel()
        with pytest.raises(asyncio.CancelledError):
            await checkout
        # Without the abort, SQLAlchemy's own close waits 2 s for the silent peer.
        assert time.monotonic() - cancelled_at < 1.0
        async with asyncio.timeout(20):
            replaced = await backend(store)
        assert replaced != first
        assert await backend(store) == replaced
    finally:
        await store.close()


async def test_sqlite_is_left_alone_by_the_checkout_ping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "IDLE_BEFORE_PING", 0.0)
    store = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'cb.db'}"))
    try:
        for _ in range(3):
            assert await read_one(store) == 1
    finally:
        await store.close()
