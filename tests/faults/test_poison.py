"""Poison: a message that kills the engine while the engine holds it.

Content the engine cannot parse or map is not poison here: it is stored as rejected and acked at
once. What can loop is a message that makes the engine *process* die (a segfault in a parser's
C extension, the OOM killer on one pathological message) before the batch holding it commits:
it is never acked, RabbitMQ hands it over again on restart, and the engine would die again. The
engine ends that loop itself: it takes redelivered messages one at a time, each marked as a
suspect in the store before it is processed, so the message that kills it while it is the only
one in hand is recognised on its next redelivery and set aside (kept in the message log as
rejected, acked). That takes two crashes, far below the queue's `x-delivery-limit`, so no healthy
message held with the poison is ever dead-lettered; the limit stays as the backstop.

How the crash is made (see `crash_hook/sitecustomize.py`): the engine subprocess starts with a
test-only `sitecustomize` that SIGKILLs the process as soon as intake begins to prepare a message
carrying a marker. So the death is real and hard (no shutdown, no nack, no ack), it happens at
the point a parser crash would, and everything the real engine holds at that instant (the
poison, its batch, the rest of its prefetch) is handed back by the broker exactly as in
production. The test plays the process supervisor (systemd, Kubernetes): it restarts the engine
whenever it dies. A separate AMQP consumer that nacks would not do: a nack is a different path
(basic.nack) from a consumer vanishing with unacked deliveries, and the engine never nacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika
import pytest

from adapters.rabbitmq import AmqpSettings, Broker
from tests.adt_factory import Patient as AdtPatient
from tests.adt_factory import adt, patients, stream, synthetic_nhs_numbers
from tests.e2e.harness import EngineProcess, wait_until
from tests.faults.conftest import MakeEngine
from tests.faults.kit import (
    SteadySender,
    TimedReceiver,
    Window,
    in_thread,
    new_source,
    store_rows,
    verify,
)
from tests.faults.rabbit_node import RabbitNode

pytestmark = pytest.mark.integration

HOOK = Path(__file__).resolve().parent / "crash_hook"
DELIVERY_LIMIT = 3
DEAD_QUEUE = "carebridge.inbound.dead"


@dataclass
class Supervisor:
    """Restarts the engine whenever it dies, as systemd or Kubernetes would."""

    engine: EngineProcess
    env: dict[str, str]
    deaths: list[float] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            assert self.engine.process is not None
            code = await self.engine.process.wait()
            self.deaths.append(time.monotonic())
            assert code == -9, f"engine exited with {code}:\n{self.engine.tail()}"
            self.engine.killed.add(self.engine.runs[-1])  # its last log line may be cut short
            await asyncio.sleep(0.2)
            await self.restart()

    async def restart(self) -> None:
        try:
            await self.engine.start(env=self.env)
        except AssertionError:  # died again before it was ready: `_run` goes round once more
            process = self.engine.process
            if process is None or process.returncode is None:
                raise

    async def stop(self) -> None:
        """Stop restarting (the engine keeps running); fail if supervising failed."""
        assert self.task is not None
        while True:  # never cancel in the middle of a restart: wait until the engine is up
            if self.task.done():
                self.task.result()
            process = self.engine.process
            if process is not None and process.returncode is None:
                with contextlib.suppress(AssertionError):  # it died meanwhile: look again
                    await self.engine.wait_ready()
                    break
            await asyncio.sleep(0.1)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def dead_letters(url: str, source: str) -> list[tuple[str | None, dict[str, Any]]]:
    """(message id, headers) of every message in the dead queue that came from `source`.

    Read without acking, so every message is still there when the channel closes (the dead
    queue's own x-delivery-count goes up with each look: it says nothing about the crashes)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        found: list[tuple[str | None, dict[str, Any]]] = []
        total = channel.queue_declare(DEAD_QUEUE, passive=True).method.message_count
        for _ in range(total):
            method, properties, _body = channel.basic_get(DEAD_QUEUE, auto_ack=False)
            if method is None:
                break
            if method.routing_key == source:
                found.append((properties.message_id, dict(properties.headers or {})))
        return found
    finally:
        connection.close()


def queue_depth(url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


async def publish(url: str, source: str, body: bytes, message_id: str) -> None:
    settings = AmqpSettings(url=url, connection_name=f"fault-poison-{source}", confirm_timeout=3.0)
    async with Broker(settings) as broker:
        await broker.publish("carebridge.inbound", source, body, message_id=message_id)


def _store(engine: EngineProcess) -> str:
    return f"sqlite+aiosqlite:///{engine.config.parent / 'carebridge.db'}"


async def _committed(engine: EngineProcess, source: str) -> int:
    query = f"SELECT count(*) FROM messages WHERE source = '{source}'"
    return int((await store_rows(_store(engine), query))[0][0])


async def _reject_malformed(
    url: str, engine: EngineProcess, source: str
) -> tuple[list[str], float]:
    """Malformed content is never poison: rejected, kept, acked at once, never redelivered.
    Returns the message ids and how long until both were in the message log as rejected."""
    tag = uuid.uuid4().hex[:8]
    malformed = {
        f"BAD-{tag}-1": b"this is not an HL7 message at all\r",
        f"BAD-{tag}-2": b"MSH|^~\\&|RXTEPR|RXT\rPID|1||garbage\r",
    }
    started = time.monotonic()
    for message_id, body in malformed.items():
        await publish(url, source, body, message_id)
    query = _rejected_query(list(malformed))
    while len(await store_rows(_store(engine), query)) < len(malformed):
        assert time.monotonic() - started < 5, "malformed messages not rejected at once"
        await asyncio.sleep(0.1)
    return list(malformed), time.monotonic() - started


def _rejected_query(message_ids: list[str]) -> str:
    ids = ", ".join(f"'{m}'" for m in message_ids)
    return f"SELECT transport_id, status FROM messages WHERE transport_id IN ({ids})"


async def _crash_loop(
    case: str, rabbit: RabbitNode, receiver: TimedReceiver, make_engine: MakeEngine,
    tmp_path: Path, *, backlog: bool,
) -> None:  # fmt: skip
    """The engine dies on the poison until it sets the poison aside; everything else is delivered.

    backlog=False: the poison arrives alone (the stream is paused until the engine has committed
    everything, and resumes at the first crash). backlog=True: the engine is stopped, the stream
    queues up, the poison arrives in the middle of that backlog, and the engine starts again.
    """
    source = new_source("psn")
    marker = f"CRASH{uuid.uuid4().hex[:10].upper()}"
    crashes = tmp_path / "crashes.log"
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HOOK), os.environ.get("PYTHONPATH")])),
        "CB_FAULT_CRASH_MARKER": marker,
        "CB_FAULT_CRASH_LOG": str(crashes),
    }
    engine = await make_engine([source], amqp_url=rabbit.url, env=env,
                               amqp_extra=f", delivery_limit: {DELIVERY_LIMIT}")  # fmt: skip
    supervisor = Supervisor(engine, env)
    sender = SteadySender(rabbit.url, source, stream(patients(30), 24, run="Q"), gap=0.8)
    traffic = asyncio.create_task(sender.run())
    nhs = synthetic_nhs_numbers(1, start=900000)[0]
    victim = AdtPatient(nhs, "QPOISON", "ZZCANARYFAMILYP", "ZZCANARYGIVENP")
    poison = adt("A01", victim, marker, datetime.now(UTC))
    try:
        await wait_until(lambda: len(receiver.applied) >= 40, deadline=60, what="stream flowing")
        malformed, rejected_s = await _reject_malformed(rabbit.url, engine, source)
        window = Window()
        if backlog:
            assert await engine.terminate() == 0, engine.tail()
            await asyncio.sleep(1.5)
            await publish(rabbit.url, source, poison, marker)
            await asyncio.sleep(1.0)
            await supervisor.restart()
            supervisor.start()
        else:
            sender.running.clear()  # the poison alone: nothing else unacked when it arrives
            await asyncio.sleep(0.5)  # publishes in flight are confirmed
            expected = len(sender.confirmed_at) + len(malformed)
            await wait_until_async(lambda: _committed(engine, source), expected)
            supervisor.start()
            await publish(rabbit.url, source, poison, marker)
            await wait_until(lambda: bool(supervisor.deaths), deadline=10, what="the first crash")
            # Until the broker has seen the dead consumer go, it may still hand it messages
            # (they would share the poison's fate: see the backlog case), so wait a little.
            await asyncio.sleep(0.5)
            sender.running.set()

        poison_query = f"SELECT status, reason FROM messages WHERE transport_id = '{marker}'"
        while not await store_rows(_store(engine), poison_query):
            if supervisor.task is not None and supervisor.task.done():
                supervisor.task.result()  # the supervisor failed: say why, now
            assert time.monotonic() - window.start < 60, (
                f"poison not set aside after {len(supervisor.deaths)} crashes"
            )
            await asyncio.sleep(0.3)
        await supervisor.stop()
        window.end = supervisor.deaths[-1]  # the fault: until the last crash
        dead = await in_thread(dead_letters, rabbit.url, source)
        assert not dead, (
            f"{len(dead)} messages dead-lettered after {len(supervisor.deaths)} crashes: "
            f"{sorted(str(m) for m, _ in dead)[:10]}"
        )

        await asyncio.wait_for(traffic, 150)
        crash_count = len(crashes.read_text().splitlines())
        facts = await verify(
            case, engine, receiver, [sender], window, store_url=_store(engine),
            crashes=crash_count, restarts=len(supervisor.deaths),
            malformed_rejected_s=round(rejected_s, 2),
        )  # fmt: skip

        # Once in a batch, once alone as a marked suspect; then set aside, never again.
        assert crash_count == 2, facts
        assert len(supervisor.deaths) == crash_count, facts
        [(status, reason)] = await store_rows(_store(engine), poison_query)
        assert status == "rejected", facts
        assert "stopped the engine" in reason, reason
        rows = await store_rows(_store(engine), _rejected_query(malformed))
        assert sorted(rows) == sorted((m, "rejected") for m in malformed), rows
        assert not {m for m, _ in dead} & set(malformed), "malformed content was dead-lettered"
        # everything else was acked: the source queue is empty
        assert await in_thread(queue_depth, rabbit.url, f"carebridge.inbound.{source}") == 0
    finally:
        if supervisor.task is not None:
            supervisor.task.cancel()
            await asyncio.gather(supervisor.task, return_exceptions=True)
        traffic.cancel()
        await asyncio.gather(traffic, return_exceptions=True)


async def wait_until_async(count: Callable[[], Awaitable[int]], at_least: int) -> None:
    end = time.monotonic() + 10
    while await count() < at_least:
        assert time.monotonic() < end, "the engine did not commit what was confirmed"
        await asyncio.sleep(0.1)


async def test_a_message_that_kills_the_engine_is_set_aside_after_two_crashes(
    rabbit: RabbitNode, receiver: TimedReceiver, make_engine: MakeEngine, tmp_path: Path
) -> None:
    await _crash_loop(f"poison alone: engine SIGKILLed by it, delivery_limit {DELIVERY_LIMIT}",
                      rabbit, receiver, make_engine, tmp_path, backlog=False)  # fmt: skip


async def test_a_poison_in_a_backlog_takes_no_healthy_message_with_it(
    rabbit: RabbitNode, receiver: TimedReceiver, make_engine: MakeEngine, tmp_path: Path
) -> None:
    await _crash_loop(f"poison in a backlog: engine SIGKILLed by it, delivery_limit "
                      f"{DELIVERY_LIMIT}", rabbit, receiver, make_engine, tmp_path,
                      backlog=True)  # fmt: skip
