"""Fixtures of the fault suite: a private RabbitMQ node, a TCP proxy, a timed receiver, and
engines as subprocesses; everything is torn down even when a case fails."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import EngineProcess, free_port
from tests.faults.kit import TimedReceiver, fault_config, in_thread
from tests.faults.rabbit_node import RabbitNode
from tests.faults.tcp_proxy import TcpProxy

MakeEngine = Callable[..., Awaitable[EngineProcess]]


@pytest.fixture(scope="session")
def rabbit_node() -> Iterator[RabbitNode]:
    node = RabbitNode.start()
    try:
        yield node
    finally:
        node.destroy()


@pytest.fixture
async def rabbit(rabbit_node: RabbitNode) -> AsyncIterator[RabbitNode]:
    """The private node, running and free of alarms before and after the case."""
    await in_thread(rabbit_node.reset_faults)
    try:
        yield rabbit_node
    finally:
        await in_thread(rabbit_node.reset_faults)


@pytest.fixture
async def proxy(rabbit: RabbitNode) -> AsyncIterator[TcpProxy]:
    p = TcpProxy(rabbit.port)
    await p.start()
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def receiver() -> AsyncIterator[TimedReceiver]:
    r = TimedReceiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


@pytest.fixture
async def make_engine(tmp_path: Path, receiver: TimedReceiver) -> AsyncIterator[MakeEngine]:
    """make_engine(sources, amqp_url=..., env=..., **fault_config options): a running engine."""
    engines: list[EngineProcess] = []

    async def make(sources: list[str], *, env: dict[str, str] | None = None,
                   **options: Any) -> EngineProcess:  # fmt: skip
        folder = tmp_path / f"engine{len(engines)}"
        folder.mkdir()
        port = free_port()
        config = fault_config(folder, sources, receiver.url, http_port=port, **options)
        engine = EngineProcess(config, port, folder / "engine.log")
        engines.append(engine)
        await engine.start(env=env)
        return engine

    try:
        yield make
    finally:
        for engine in engines:
            if engine.process is not None and engine.process.returncode is None:
                engine.kill()
                await engine.process.wait()
