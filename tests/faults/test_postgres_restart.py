"""The engine's PostgreSQL (a private cluster) is restarted (`pg_ctl restart -m fast`) under a
steady stream: intake holds messages unacked and retries, delivery retries recording its
outcomes; nothing confirmed is lost, order holds, the logs stay clean."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.adt_factory import patients, stream
from tests.e2e.harness import wait_until
from tests.faults.conftest import MakeEngine
from tests.faults.kit import SteadySender, TimedReceiver, Window, in_thread, new_source, verify
from tests.faults.pg_cluster import PgCluster
from tests.faults.rabbit_node import RabbitNode

pytestmark = pytest.mark.integration


@pytest.fixture
def pg() -> Iterator[PgCluster]:
    cluster = PgCluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


async def test_postgresql_restarted_under_load(
    rabbit: RabbitNode, pg: PgCluster, receiver: TimedReceiver, make_engine: MakeEngine
) -> None:
    source = new_source("pg")
    engine = await make_engine([source], amqp_url=rabbit.url, store_url=pg.url)
    sender = SteadySender(rabbit.url, source, stream(patients(30), 10, run="P"), gap=0.8)
    task = asyncio.create_task(sender.run())
    try:
        await wait_until(lambda: len(receiver.applied) >= 60, deadline=60, what="stream flowing")
        window = Window()
        await in_thread(pg.pg_ctl, "restart", "-m", "fast")
        window.close()
        await asyncio.sleep(3.0)
        window2 = Window()  # and once more, with the engine's pool just reconnected
        await in_thread(pg.pg_ctl, "restart", "-m", "fast")
        window2.close()
        window.end = window2.end
        await asyncio.wait_for(task, 150)
        await verify("postgresql restart -m fast x2", engine, receiver, [sender], window,
                     store_url=pg.url)  # fmt: skip
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
