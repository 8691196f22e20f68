"""PostgreSQL failover under a steady stream: the engine's store URL names a primary and its
synchronous streaming standby (`target_session_attrs=read-write`); the primary is killed
(immediate stop), the standby promoted 3 s later. The engine follows by itself, loses nothing it
acknowledged, keeps every patient's order, and says in its log what happened."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tests.adt_factory import patients, stream
from tests.e2e.harness import wait_until
from tests.faults.conftest import MakeEngine
from tests.faults.kit import SteadySender, TimedReceiver, Window, in_thread, new_source, verify
from tests.faults.pg_cluster import PgPair
from tests.faults.rabbit_node import RabbitNode

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_pair() -> Iterator[PgPair]:
    pair = PgPair.start()
    try:
        yield pair
    finally:
        pair.destroy()


async def test_primary_killed_and_standby_promoted_mid_stream(
    rabbit: RabbitNode, pg_pair: PgPair, receiver: TimedReceiver, make_engine: MakeEngine
) -> None:
    source = new_source("failover")
    engine = await make_engine([source], amqp_url=rabbit.url, store_url=pg_pair.url)
    sender = SteadySender(rabbit.url, source, stream(patients(30), 10, run="F"), gap=0.8)
    task = asyncio.create_task(sender.run())
    try:
        await wait_until(lambda: len(receiver.applied) >= 60, deadline=60, what="stream flowing")
        window = Window()
        await in_thread(pg_pair.fail_over, 3.0)
        window.close()
        await asyncio.wait_for(task, 150)
        records = [json.loads(line) for line in engine.log_lines()]
        waits = [r for r in records if str(r.get("event", "")).endswith("store_unavailable")]
        changed = [r for r in records if r.get("event") == "store.server_changed"]
        await verify("postgresql primary killed, standby promoted", engine, receiver, [sender],
                     window, store_url=pg_pair.standby.url, store_waits_logged=len(waits),
                     server_changes=[(r["previous"], r["server"]) for r in changed])  # fmt: skip
        primary, standby = (f"127.0.0.1:{c.port}" for c in (pg_pair.primary, pg_pair.standby))
        connected = [r["server"] for r in records if r.get("event") == "store.connected"]
        assert connected == [primary], connected
        assert [(r["previous"], r["server"]) for r in changed] == [(primary, standby)]
        assert waits, "the engine said it waited for the store"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
