"""The MESH tests' world: the engine's parts in this process (intake on the in-memory broker
double, the real store, the real delivery loop with the real MESH sender and mailbox adapter),
NHS Digital's mesh-sandbox as the MESH server, and the GP practice reading and answering with
NHS England's mesh-client, as a GP system would."""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from mesh_client import MeshClient

from engine.config import Config, MeshDestination, StoreConfig, parse_config
from engine.delivery.loop import DeliveryLoop
from engine.delivery.mesh import MeshSender
from engine.intake import Intake
from engine.notifications import original_loader
from engine.senders import mesh_mailbox
from engine.store import Store
from engine.store.schema import (
    deliveries,
    follow_ups,
    mesh_acks,
    mesh_inbox,
    mesh_messages,
    messages,
)
from mappings.profile import event_id
from tests.e2e.harness import wait_until
from tests.memory_broker import MemoryBroker
from tests.mesh.sandbox import PASSWORD, SHARED_KEY, TRUST_MAILBOX, Sandbox

QUEUE = "carebridge.inbound.mh"
DESTINATION = "gp-mesh"
ENV = {"MESH_PASSWORD": PASSWORD, "MESH_SHARED_KEY": SHARED_KEY}


def config(sandbox_url: str, *, tls: Path | None = None, extra: str = "", password: str = PASSWORD,
           client_cert: bool = True, timeout: str = "5s",
           care_setting: str = "mental_health") -> Config:  # fmt: skip
    tls_yaml = ""
    if tls is not None:
        tls_yaml = f"\n    tls: {{ca_file: {tls / 'ca.pem'}"
        if client_cert:
            tls_yaml += f", cert_file: {tls / 'client.pem'}, key_file: {tls / 'client.key'}"
        tls_yaml += "}"
    return parse_config(
        f"""
sources: [{{name: mh, care_setting: {care_setting}}}]
destinations:
  - name: {DESTINATION}
    type: mesh
    allow_plain_http: true              # the sandbox on localhost, with or without TLS
    url: "{sandbox_url}"
    mailbox: {TRUST_MAILBOX}
    password: "${{MESH_PASSWORD}}"
    shared_key: "${{MESH_SHARED_KEY}}"
    sender_ods: RXT
    timeout: {timeout}
    retry: fast
    inbox_poll_interval: 200ms{tls_yaml}{extra}
retry_policies:
  fast: {{quick_attempts: 1, initial_backoff: 200ms, max_backoff: 500ms, max_age: 10m}}
delivery: {{poll_interval: 100ms, lease: 30s}}
routes:
  - {{name: gp, match: {{kinds: [discharge, cancel_discharge]}}, to: [{DESTINATION}]}}
""",
        env={**ENV, "MESH_PASSWORD": password},
    )


@dataclass
class World:
    sandbox: Sandbox | None
    store: Store
    config: Config
    loop: DeliveryLoop | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def dest(self) -> MeshDestination:
        dest = self.config.destination(DESTINATION)
        assert isinstance(dest, MeshDestination)
        return dest

    def start_delivery(self) -> None:
        dest = self.dest
        sender = MeshSender(dest, mesh_mailbox(dest), self.store, self.config.follow_up_rules,
                            original_loader(self.store))  # fmt: skip
        policy = self.config.retry_policies["fast"]
        holds = {DESTINATION: dest.hold_on_dead_letter}
        self.loop = DeliveryLoop(self.store, {DESTINATION: sender}, {DESTINATION: policy},
                                 holds, self.config.delivery)  # fmt: skip
        self.tasks.append(asyncio.create_task(self.loop.run()))

    async def stop(self) -> None:
        if self.loop is not None:
            self.loop.stop()
            await self.loop.drain(5)
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def ingest(self, *messages: bytes) -> None:
        broker = MemoryBroker([QUEUE])
        intake = Intake(self.store, self.config, await broker.subscribe([QUEUE]), {QUEUE: "mh"})
        task = asyncio.create_task(intake.run())
        try:
            for body in messages:
                broker.send(QUEUE, body)
                await wait_until(lambda: broker.depth(QUEUE) == 0, deadline=30)
        finally:
            intake.stop()
            await task
        if self.loop is not None:
            self.loop.wake()

    async def delivery(self, control_id: str) -> Any:
        query = sa.select(deliveries).where(
            deliveries.c.event_id == event_id("mh", control_id),
            deliveries.c.destination == DESTINATION,
        )
        async with self.store.engine.connect() as conn:
            return (await conn.execute(query)).one()

    async def settled(self, control_id: str, deadline: float = 60) -> Any:
        """The delivery once it is no longer pending."""
        found: list[Any] = []

        async def done() -> bool:
            row = await self.delivery(control_id)
            found[:] = [row]
            return bool(row.status != "pending")

        await wait_until_async(done, deadline)
        return found[0]

    async def rows(self, table: sa.Table, **where: object) -> list[Any]:
        query = sa.select(table).where(*(table.c[k] == v for k, v in where.items()))
        async with self.store.engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def message_row(self, control_id: str) -> int:
        [row] = await self.rows(messages, message_key=control_id)
        return int(row.id)

    async def mesh_message(self, delivery_id: int) -> Any:
        [row] = await self.rows(mesh_messages, delivery_id=delivery_id)
        return row

    async def acks(self, delivery_id: int) -> list[Any]:
        return await self.rows(mesh_acks, delivery_id=delivery_id)

    async def inbox(self) -> list[Any]:
        return await self.rows(mesh_inbox)

    async def follow_up(self, control_id: str) -> Any:
        [row] = await self.rows(follow_ups, event_id=event_id("mh", control_id))
        return row


async def wait_until_async(check: Any, deadline: float = 30) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while loop.time() < end:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met before the deadline")


@contextlib.asynccontextmanager
async def world(sandbox: Sandbox | None, tmp_path: Path, cfg: Config) -> AsyncIterator[World]:
    store = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'cb.db'}"))
    w = World(sandbox, store, cfg)
    try:
        yield w
    finally:
        await w.stop()
        await store.close()


@dataclass
class Arrived:
    message_id: str
    workflow_id: str | None
    local_id: str | None
    sender: str | None
    content_type: str | None
    body: bytes

    @property
    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)


def gp_client(sandbox: Sandbox, mailbox: str) -> MeshClient:
    tls = sandbox.tls
    if tls is None:
        return MeshClient(sandbox.url, mailbox, PASSWORD, shared_key=SHARED_KEY.encode(),
                          max_retries=0)  # fmt: skip
    return MeshClient(sandbox.url, mailbox, PASSWORD, shared_key=SHARED_KEY.encode(),
                      cert=(str(tls / "client.pem"), str(tls / "client.key")),
                      verify=str(tls / "ca.pem"), max_retries=0)  # fmt: skip


def gp_read(sandbox: Sandbox, mailbox: str) -> list[Arrived]:
    """Every message in the GP's inbox, read and acknowledged, as the GP system would."""
    arrived = []
    with gp_client(sandbox, mailbox) as client:
        for message_id in client.list_messages():
            message = client.retrieve_message(message_id)
            body = message.read()
            arrived.append(Arrived(message_id, message.workflow_id, message.local_id,
                                   message.sender, message.content_type, body))  # fmt: skip
            message.close()
            client.acknowledge_message(message_id)
    return arrived


def gp_reply(sandbox: Sandbox, mailbox: str, workflow_id: str, body: bytes) -> str:
    with gp_client(sandbox, mailbox) as client:
        return str(client.send_message(TRUST_MAILBOX, body, workflow_id=workflow_id,
                                       content_type="application/fhir+xml"))  # fmt: skip


def trust_inbox(sandbox: Sandbox) -> list[str]:
    with gp_client(sandbox, TRUST_MAILBOX) as client:
        return [str(m) for m in client.list_messages()]
