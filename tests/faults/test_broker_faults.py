"""The private broker fails under a steady stream: stop_app/start_app, every connection closed,
and the node frozen (SIGSTOP) past the heartbeat. Nothing confirmed is lost, nothing applied
twice, per-patient order holds, the logs stay clean, and the engine catches up within 30 s."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.adt_factory import patients, stream
from tests.e2e.harness import wait_until
from tests.faults.conftest import MakeEngine
from tests.faults.kit import SteadySender, TimedReceiver, Window, in_thread, new_source, verify
from tests.faults.rabbit_node import RabbitNode

pytestmark = pytest.mark.integration


async def _stream_with_fault(
    case: str, rabbit: RabbitNode, receiver: TimedReceiver, make_engine: MakeEngine,
    fault: str, outage: float,
) -> None:  # fmt: skip
    source = new_source("brk")
    engine = await make_engine([source], amqp_url=rabbit.url)
    sender = SteadySender(rabbit.url, source, stream(patients(30), 10, run="B"), gap=0.8)
    traffic = asyncio.create_task(sender.run())
    try:
        await wait_until(lambda: len(receiver.applied) >= 60, deadline=60, what="stream flowing")
        window = Window()
        if fault == "stop_app":
            await in_thread(rabbit.ctl, "stop_app")
            await asyncio.sleep(outage)
            await in_thread(rabbit.ctl, "start_app")
        elif fault == "close_all_connections":
            for _ in range(3):  # three times, so reconnects are hit mid-recovery too
                await in_thread(rabbit.ctl, "close_all_connections", "fault test")
                await asyncio.sleep(outage)
        else:
            rabbit.freeze()
            try:
                await asyncio.sleep(outage)
            finally:
                rabbit.thaw()
        window.close()
        await asyncio.wait_for(traffic, 150)
        assert engine.process is not None
        assert engine.process.returncode is None
        await verify(case, engine, receiver, [sender], window, store_url=_store(engine.config))
    finally:
        traffic.cancel()
        await asyncio.gather(traffic, return_exceptions=True)


def _store(config: Path) -> str:
    return f"sqlite+aiosqlite:///{config.parent / 'carebridge.db'}"


async def test_stop_app_and_start_app_mid_stream(
    rabbit: RabbitNode, receiver: TimedReceiver, make_engine: MakeEngine
) -> None:
    await _stream_with_fault("broker stop_app 5s", rabbit, receiver, make_engine,
                             "stop_app", 5.0)  # fmt: skip


async def test_close_all_connections_mid_stream(
    rabbit: RabbitNode, receiver: TimedReceiver, make_engine: MakeEngine
) -> None:
    await _stream_with_fault("close_all_connections x3", rabbit, receiver, make_engine,
                             "close_all_connections", 1.0)  # fmt: skip


async def test_broker_frozen_past_the_heartbeat(
    rabbit: RabbitNode, receiver: TimedReceiver, make_engine: MakeEngine
) -> None:
    """SIGSTOP of the node's beam for 3x the 2 s heartbeat, then SIGCONT."""
    await _stream_with_fault("broker frozen (SIGSTOP) 7s", rabbit, receiver, make_engine,
                             "freeze", 7.0)  # fmt: skip
