"""A three-node RabbitMQ cluster (private nodes) under a steady stream: the engine is given the
three nodes' URLs; one node is killed (SIGKILL) and restarted, later the node holding the source
queue's quorum leader is stopped (`stop_app`) and started again. Nothing confirmed is lost,
every patient's order holds, and the engine reconnects to a live node by itself."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tests.adt_factory import patients, stream
from tests.e2e.harness import wait_until
from tests.faults.conftest import MakeEngine
from tests.faults.kit import SteadySender, TimedReceiver, Window, in_thread, new_source, verify
from tests.faults.rabbit_cluster import RabbitCluster

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster() -> Iterator[RabbitCluster]:
    started = RabbitCluster.start()
    try:
        yield started
    finally:
        started.destroy()


async def test_node_killed_then_leader_stopped_loses_nothing(
    cluster: RabbitCluster, receiver: TimedReceiver, make_engine: MakeEngine
) -> None:
    source = new_source("cluster")
    queue = f"carebridge.inbound.{source}"
    first, second, third = cluster.nodes
    engine = await make_engine([source], amqp_url=cluster.urls)
    # the sender starts on the second node, the engine on the first
    sender = SteadySender(second.url, source, stream(patients(30), 60, run="C"), gap=1.0,
                          alternates=(third.url, first.url))  # fmt: skip
    task = asyncio.create_task(sender.run(deadline=240))
    try:
        await wait_until(lambda: len(receiver.applied) >= 60, deadline=60, what="stream flowing")
        assert await in_thread(cluster.online_members, queue) == 3
        leader = await in_thread(cluster.leader_of, queue)
        victim = next(n for n in cluster.nodes if n is not leader and n is not first)
        window = Window()
        await in_thread(cluster.kill, victim)
        await asyncio.sleep(5.0)
        await in_thread(cluster.restart, victim)
        end = asyncio.get_running_loop().time() + 90
        while await in_thread(cluster.online_members, queue) < 3:
            assert asyncio.get_running_loop().time() < end, "the killed node never came back"
            await asyncio.sleep(0.5)
        leader = await in_thread(cluster.leader_of, queue)
        await in_thread(leader.ctl, "stop_app")
        await asyncio.sleep(8.0)
        await in_thread(leader.ctl, "start_app")
        await in_thread(leader.wait_port)
        window.close()
        await asyncio.wait_for(task, 240)
        records = [json.loads(line) for line in engine.log_lines()]
        connected = [(r["connection_name"], r["port"]) for r in records
                     if r.get("event") == "amqp.connected"]  # fmt: skip
        await verify("three-node cluster: a node killed, later the leader's node stopped",
                     engine, receiver, [sender], window,
                     store_url=f"sqlite+aiosqlite:///{engine.config.parent / 'carebridge.db'}",
                     victim=victim.name, leader_stopped=leader.name,
                     engine_connections=connected)  # fmt: skip
        if leader is first:  # the engine's node: it must have moved to a live one
            moved = {port for _name, port in connected} - {first.port}
            assert moved, f"the engine never moved to another node: {connected}"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
