"""Several engine replicas share one RabbitMQ and one PostgreSQL; one is killed mid-run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mappings.profile import event_id
from tests.adt_factory import patients, stream
from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.e2e.harness import (
    EngineProcess,
    Receiver,
    delete_queues,
    engine_config,
    free_port,
    publish_all,
    wait_until,
)
from tests.e2e.test_end_to_end import assert_clean_logs, assert_per_patient_order

pytestmark = pytest.mark.integration


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


async def test_three_replicas_share_the_work_and_survive_losing_one(
    tmp_path: Path, receiver: Receiver
) -> None:
    sources = [f"rep-{uuid.uuid4().hex[:8]}-{i}" for i in range(3)]
    database = await create_pg_database()
    replicas: list[EngineProcess] = []
    try:
        for i in range(3):
            folder = tmp_path / f"replica{i}"
            folder.mkdir()
            port = free_port()
            config = engine_config(folder, sources, receiver.url, http_port=port,
                                   store_url=pg_url(database))  # fmt: skip
            replicas.append(EngineProcess(config, port, folder / "engine.log"))
        for replica in replicas:
            await replica.start()
        people = patients(60, run="P")
        traffic = {s: stream(people[i * 20 : (i + 1) * 20], 8, run=f"P{i}")
                   for i, s in enumerate(sources)}  # fmt: skip
        expected = {event_id(s, cid) for s, msgs in traffic.items() for _, cid, _ in msgs}
        for source, messages in traffic.items():
            await publish_all(source, [body for _, _, body in messages])
        await wait_until(lambda: len(receiver.applied) >= len(expected) // 4, what="busy")
        replicas[0].kill()
        await wait_until(lambda: len(receiver.applied) >= len(expected), what="all delivered")
        assert {r.event["event_id"] for r in receiver.applied_order()} == expected
        assert_per_patient_order(receiver.applied_order())
        working = [r for r in replicas if any('"delivery.delivered"' in x for x in r.log_lines())]
        assert len(working) >= 2, "the replicas share the delivery work"
        for replica in replicas[1:]:
            assert await replica.terminate() == 0
            assert_clean_logs(replica)
    finally:
        for replica in replicas:
            if replica.process is not None and replica.process.returncode is None:
                replica.kill()
                await replica.process.wait()
        delete_queues([f"carebridge.inbound.{s}" for s in sources])
        await drop_pg_database(database)
