"""The engine as it runs (a subprocess on the real RabbitMQ) with a MESH destination and NHS
Digital's mesh-sandbox as MESH: a discharge published to the source's queue reaches the GP's
mailbox; the GP's business acknowledgement, read by the engine's own inbox watch, acknowledges
the follow-up; the console shows both."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.config import StoreConfig
from engine.store import Store
from engine.store.schema import follow_ups, mesh_acks
from mappings.profile import event_id
from tests.adt_factory import adt, patients
from tests.e2e.harness import (
    EngineProcess,
    Receiver,
    delete_queues,
    engine_config,
    free_port,
    publish_all,
    wait_until,
)
from tests.mesh.gp import ack_xml, fhir_value
from tests.mesh.kit import ENV, Arrived, gp_read, gp_reply, trust_inbox, wait_until_async
from tests.mesh.sandbox import GP_MAILBOXES, TRUST_MAILBOX, Sandbox, write_data

pytestmark = pytest.mark.integration
GP = GP_MAILBOXES["B12345"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    folder = tmp_path_factory.mktemp("mesh-sandbox-e2e")
    write_data(folder)
    running = Sandbox(folder, free_port())
    running.start()
    yield running
    running.stop()


@pytest.fixture
async def engine(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[tuple[EngineProcess, str]]:
    unused = Receiver()
    await unused.start()
    source, http_port = f"mesh-{uuid.uuid4().hex[:8]}", free_port()
    path = engine_config(tmp_path, [source], unused.url, http_port=http_port)
    destination = f"""
  - name: gp-mesh
    type: mesh
    allow_plain_http: true              # the sandbox on localhost, with or without TLS
    url: "{sandbox.url}"
    mailbox: {TRUST_MAILBOX}
    password: "${{MESH_PASSWORD}}"
    shared_key: "${{MESH_SHARED_KEY}}"
    sender_ods: RXT
    inbox_poll_interval: 200ms
"""
    text = path.read_text().replace("routes:", destination.rstrip() + "\nroutes:")
    path.write_text(text.replace("to: [receiver]", "to: [gp-mesh]"))
    process = EngineProcess(path, http_port, tmp_path / "engine.log")
    await process.start(env=ENV)
    yield process, source
    await process.terminate()
    await unused.stop()
    delete_queues([f"carebridge.inbound.{source}"])


async def test_a_discharge_goes_out_over_mesh_and_its_ack_comes_back(
    sandbox: Sandbox, engine: tuple[EngineProcess, str], tmp_path: Path
) -> None:
    gp_read(sandbox, GP)
    _, source = engine
    [patient] = patients(1, run="M" + uuid.uuid4().hex[:5].upper())
    now = datetime.now(UTC).replace(microsecond=0)
    await publish_all(source, [adt("A01", patient, "ADM-1", now - timedelta(days=2)),
                               adt("A03", patient, "DIS-1", now)])  # fmt: skip
    arrived: list[Arrived] = []

    def reached() -> bool:
        arrived.extend(gp_read(sandbox, GP))
        return bool(arrived)

    await wait_until(reached, deadline=60, what="the discharge in the GP's mailbox")
    [message] = arrived
    header = fhir_value(message.xml, "entry/resource/MessageHeader/id")
    assert header is not None
    gp_reply(sandbox, GP, "TOC_FHIR_MH_DISCH_ACK", ack_xml(header, "30001"))
    store = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'carebridge.db'}"))
    try:
        discharge = event_id(source, "DIS-1")

        async def acknowledged() -> bool:
            query = sa.select(follow_ups.c.status).where(follow_ups.c.event_id == discharge)
            async with store.engine.connect() as conn:
                return (await conn.execute(query)).scalar() == "acknowledged"

        await wait_until_async(acknowledged, 60)
        async with store.engine.connect() as conn:
            codes = [r.code for r in await conn.execute(sa.select(mesh_acks))]
        assert codes == ["30001"]
    finally:
        await store.close()
    assert trust_inbox(sandbox) == []
