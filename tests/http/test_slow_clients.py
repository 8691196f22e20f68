"""Slow and idle clients on every HTTP listener, over real sockets: 300 connections trickling
their request heads do not keep a well-behaved client waiting (with the default limits), a
trickle is closed at `header_timeout`, an idle keep-alive at `idle_timeout`, a slow body gets
408, and `max_connections` is held (the longest-waiting trickle makes way; when every
connection is busy a newcomer gets 503)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.http.fhir import AUTHORISED
from tests.http.listeners import LISTENERS, Listening, limits, listening
from tests.http.wire import Reader, Writer, ask, closed_by_server, connect, head, read_answer

SLOW = 300


@contextlib.asynccontextmanager
async def trickling(writers: list[Writer]) -> AsyncIterator[None]:
    """One more byte of a header every half second on each connection, while in the block."""
    stop = asyncio.Event()

    async def trickle() -> None:
        while not stop.is_set():
            for writer in writers:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    writer.write(b"X")
            await asyncio.sleep(0.5)

    task = asyncio.create_task(trickle())
    try:
        yield
    finally:
        stop.set()
        await task


async def slow_connections(door: Listening, count: int) -> list[tuple[Reader, Writer]]:
    opened = []
    for _ in range(count):
        reader, writer = await connect(door.port, door.tls)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        opened.append((reader, writer))
    return opened


@pytest.mark.parametrize("name", LISTENERS)
async def test_300_slow_clients_do_not_keep_a_well_behaved_one_waiting(
    tmp_path: Path, name: str
) -> None:
    async with listening(name, tmp_path) as door:  # the default limits
        warm = await ask(door.port, door.good, door.tls)  # first use (imports) is not timed
        assert warm.status == door.good_status
        slow = await slow_connections(door, SLOW)
        async with trickling([w for _, w in slow]):
            await asyncio.sleep(1.0)  # the trickle is under way on every connection
            loop = asyncio.get_running_loop()
            for attempt in range(5):
                began = loop.time()
                reader, writer = await connect(door.port, door.tls)
                writer.write(door.good)
                answer = await read_answer(reader, within=5.0)  # the test's deadline
                took = loop.time() - began
                writer.close()
                print(f"{name}: answer {attempt + 1} ({answer.status}) in {took * 1000:.0f} ms "
                      f"beside {SLOW} slow connections")  # fmt: skip
                assert answer.status == door.good_status
        for _, writer in slow:
            writer.close()


@pytest.mark.parametrize("name", LISTENERS)
async def test_a_request_head_trickled_slower_than_the_header_timeout_is_cut_off(
    tmp_path: Path, name: str
) -> None:
    async with listening(name, tmp_path, limits=limits(header_timeout=0.5)) as door:
        [(reader, writer)] = await slow_connections(door, 1)
        async with trickling([writer]):
            assert await closed_by_server(reader, within=5.0), "the trickle was not cut off"
        writer.close()
        assert (await ask(door.port, door.good, door.tls)).status == door.good_status


@pytest.mark.parametrize("name", LISTENERS)
async def test_an_idle_kept_alive_connection_is_closed_after_the_idle_timeout(
    tmp_path: Path, name: str
) -> None:
    async with listening(name, tmp_path, limits=limits(idle_timeout=0.5)) as door:
        reader, writer = await connect(door.port, door.tls)
        writer.write(door.good)
        answer = await read_answer(reader)
        assert answer.status == door.good_status
        assert answer.headers.get("connection", "").lower() != "close"
        assert await closed_by_server(reader, within=5.0), "the idle connection stayed open"
        writer.close()


@pytest.mark.parametrize("name", ["console", "fhir"])
async def test_a_body_slower_than_the_body_timeout_is_408(tmp_path: Path, name: str) -> None:
    path, headers = {
        "console": ("/login", {"Content-Type": "application/x-www-form-urlencoded"}),
        "fhir": ("/fhir/mh", AUTHORISED),
    }[name]
    async with listening(name, tmp_path, limits=limits(body_timeout=0.5)) as door:
        reader, writer = await connect(door.port, door.tls)
        writer.write(head("POST", path, {**headers, "Content-Length": "1000"}) + b"name=x")
        answer = await read_answer(reader, within=5.0)
        writer.close()
    assert answer.status == 408
    assert door.published.bodies == []


@pytest.mark.parametrize("name", LISTENERS)
async def test_when_full_the_longest_waiting_trickle_makes_way(tmp_path: Path, name: str) -> None:
    async with listening(name, tmp_path, limits=limits(max_connections=3)) as door:
        slow = await slow_connections(door, 3)
        await asyncio.sleep(0.2)  # all three accepted
        answer = await ask(door.port, door.good, door.tls)
        assert answer.status == door.good_status
        assert await closed_by_server(slow[0][0], within=5.0), "the oldest trickle was kept"
        for _, writer in slow:
            writer.close()


@pytest.mark.parametrize("name", LISTENERS)
async def test_when_every_connection_is_busy_a_newcomer_gets_503(tmp_path: Path, name: str) -> None:
    async with listening(name, tmp_path, limits=limits(max_connections=3)) as door:
        busy = []
        for _ in range(3):  # requests answered, connections kept alive: not waiting for a head
            reader, writer = await connect(door.port, door.tls)
            writer.write(door.good)
            assert (await read_answer(reader)).status == door.good_status
            busy.append(writer)
        refused = await ask(door.port, door.good, door.tls)
        assert refused.status == 503
        assert refused.headers["retry-after"] == "5"
        assert refused.headers["x-content-type-options"] == "nosniff"
        busy.pop().close()
        answered = None
        for _ in range(100):  # the freed place is taken up once the server sees the close
            answered = await ask(door.port, door.good, door.tls)
            if answered.status != 503:
                break
            await asyncio.sleep(0.05)
        assert answered is not None
        assert answered.status == door.good_status
        for writer in busy:
            writer.close()


@pytest.mark.parametrize("name", LISTENERS)
async def test_a_second_request_trickled_on_a_kept_alive_connection_is_cut_off(
    tmp_path: Path, name: str
) -> None:
    async with listening(name, tmp_path, limits=limits(idle_timeout=0.5)) as door:
        reader, writer = await connect(door.port, door.tls)
        writer.write(door.good)
        assert (await read_answer(reader)).status == door.good_status
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        async with trickling([writer]):
            assert await closed_by_server(reader, within=5.0), "the trickle was not cut off"
        writer.close()


@pytest.mark.parametrize("name", ["console", "fhir"])
async def test_a_tls_handshake_that_never_comes_is_cut_off(tmp_path: Path, name: str) -> None:
    async with listening(name, tmp_path, tls=True, limits=limits(header_timeout=0.5)) as door:
        reader, writer = await connect(door.port)  # plain TCP: no ClientHello is ever sent
        assert await closed_by_server(reader, within=5.0), "the silent connection stayed open"
        writer.close()
        assert (await ask(door.port, door.good, door.tls)).status == door.good_status
