"""The network between the engine and the broker fails (a TCP proxy the test controls): every
connection reset, a blackhole past the 2 s heartbeat, and added latency. The sender publishes
straight to the broker, so its messages pile up while the engine is cut off."""

from __future__ import annotations

import asyncio

import pytest

from tests.adt_factory import patients, stream
from tests.e2e.harness import wait_until
from tests.faults.conftest import MakeEngine
from tests.faults.kit import SteadySender, TimedReceiver, Window, new_source, verify
from tests.faults.rabbit_node import RabbitNode
from tests.faults.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


async def _through_proxy(
    case: str, rabbit: RabbitNode, proxy: TcpProxy, receiver: TimedReceiver,
    make_engine: MakeEngine, fault: str,
) -> None:  # fmt: skip
    source = new_source("net")
    engine = await make_engine([source], amqp_url=rabbit.url_via(proxy.port))
    sender = SteadySender(rabbit.url, source, stream(patients(30), 10, run="N"), gap=0.8)
    traffic = asyncio.create_task(sender.run())
    try:
        await wait_until(lambda: len(receiver.applied) >= 60, deadline=60, what="stream flowing")
        accepted = proxy.accepted
        window = Window()
        if fault == "reset":
            for _ in range(3):
                assert proxy.reset() >= 1
                await asyncio.sleep(1.5)
        elif fault == "blackhole":
            proxy.blackhole()
            # pika checks heartbeats every heartbeat + 5 s and needs one whole silent check
            # interval: with a 2 s heartbeat only a partition over 14 s is sure to be noticed
            await asyncio.sleep(15.0)
            proxy.pass_through()
        else:
            proxy.latency = 0.15
            await asyncio.sleep(6.0)
            proxy.pass_through()
        window.close()
        await asyncio.wait_for(traffic, 150)
        reconnects = proxy.accepted - accepted
        if fault != "latency":
            assert proxy.accepted > accepted, "the engine reconnected"
        await verify(case, engine, receiver, [sender], window,
                     store_url=f"sqlite+aiosqlite:///{engine.config.parent / 'carebridge.db'}",
                     engine_reconnects=reconnects)  # fmt: skip
    finally:
        traffic.cancel()
        await asyncio.gather(traffic, return_exceptions=True)


async def test_connections_reset_mid_stream(
    rabbit: RabbitNode, proxy: TcpProxy, receiver: TimedReceiver, make_engine: MakeEngine
) -> None:
    await _through_proxy("proxy RST x3", rabbit, proxy, receiver, make_engine, "reset")


async def test_blackhole_past_the_heartbeat(
    rabbit: RabbitNode, proxy: TcpProxy, receiver: TimedReceiver, make_engine: MakeEngine
) -> None:
    await _through_proxy("proxy blackhole 15s", rabbit, proxy, receiver, make_engine, "blackhole")


async def test_added_latency(
    rabbit: RabbitNode, proxy: TcpProxy, receiver: TimedReceiver, make_engine: MakeEngine
) -> None:
    await _through_proxy("proxy latency 150ms 6s", rabbit, proxy, receiver, make_engine,
                         "latency")  # fmt: skip
