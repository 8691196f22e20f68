"""adapters.rabbitmq against the real broker on 127.0.0.1:5672 (guest/guest).

Every test module run gets its own throw-away vhost, so the fault tests
(`rabbitmqctl close_all_connections -p <vhost>`, revoking permissions) never touch connections
that other suites hold on the shared broker. Names are unique per test and deleted afterwards.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pika
import pytest
import structlog

from adapters.errors import BrokerUnavailable, ConfirmTimeout, PublishFailed, PublishReturned
from adapters.rabbitmq import (
    AmqpSettings,
    Broker,
    ExchangeSpec,
    InboundDelivery,
    Topology,
    inbound_topology,
)

pytestmark = pytest.mark.integration

HOST, PORT = "127.0.0.1", 5672
SECRET = b"PID|1||9434765919^^^NHS||SMITH^JANE"  # stands for patient data: never in a log

MakeBroker = Callable[..., Awaitable[Broker]]


def _ctl(*args: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout


async def ctl(*args: str) -> str:
    return await asyncio.to_thread(_ctl, *args)


async def eventually(predicate: Callable[[], bool], what: str, within: float = 20.0) -> None:
    """Poll `predicate` until it holds; fail after a generous deadline."""
    for _ in range(int(within / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within}s waiting for: {what}")


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    try:
        socket.create_connection((HOST, PORT), timeout=2).close()
    except OSError:
        pytest.skip(f"RabbitMQ not reachable on {HOST}:{PORT} (rabbitmq-server -detached)")
    name = f"cbtest-{uuid.uuid4().hex[:10]}"
    _ctl("add_vhost", name)
    _ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    _ctl("delete_vhost", name)


@pytest.fixture
def url(vhost: str) -> str:
    return f"amqp://guest:guest@{HOST}:{PORT}/{vhost}"


def _admin(url: str, fn: Callable[[Any], Any]) -> Any:
    """Run `fn(channel)` on a plain BlockingConnection (in a thread, from async tests)."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return fn(conn.channel())
    finally:
        conn.close()


def _queue_depth(url: str, queue: str) -> int:
    return int(_admin(url, lambda ch: ch.queue_declare(queue, passive=True)).method.message_count)


@pytest.fixture
def exchange() -> str:
    return f"cbtest.{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def make_broker(url: str) -> AsyncIterator[MakeBroker]:
    brokers: list[Broker] = []
    topologies: list[Topology] = []

    async def make(topology: Topology, **settings: Any) -> Broker:
        defaults: dict[str, Any] = {
            "url": url,
            "connection_name": "test",
            "reconnect_initial_delay": 0.1,
            "reconnect_max_delay": 1.0,
            "confirm_timeout": 10.0,
        }
        broker = Broker(AmqpSettings(**(defaults | settings)), topology)
        brokers.append(broker)
        topologies.append(topology)
        await broker.start(timeout=20)
        return broker

    yield make

    for broker in brokers:
        await broker.close()

    def cleanup(ch: Any) -> None:
        for topology in topologies:
            for q in topology.queues:
                ch.queue_delete(q.name)
            for ex in topology.exchanges:
                ch.exchange_delete(ex.name)

    await asyncio.to_thread(_admin, url, cleanup)


async def test_topology_declared_twice_is_idempotent_and_quorum(
    make_broker: MakeBroker, vhost: str, url: str, exchange: str
) -> None:
    topology = inbound_topology(
        ["mh", "acute"], exchange=exchange, dead_letter_exchange=f"{exchange}.dlx"
    )
    first = await make_broker(topology)
    second = await make_broker(topology)  # same names, same arguments: no error
    await first.close()
    third = await make_broker(topology)
    assert second.connected
    assert third.connected

    rows = json.loads(
        await ctl("list_queues", "-p", vhost, "name", "type", "arguments", "--formatter", "json")
    )
    queues = {row["name"]: row for row in rows if row["name"].startswith(exchange)}
    assert set(queues) == {f"{exchange}.mh", f"{exchange}.acute", f"{exchange}.dead"}
    assert all(row["type"] == "quorum" for row in queues.values())
    args = {key: value for key, _type, value in queues[f"{exchange}.mh"]["arguments"]}
    assert args["x-delivery-limit"] == 5
    assert args["x-dead-letter-exchange"] == f"{exchange}.dlx"

    # A passive declare with the broker's view agrees, and a conflicting redeclare is refused.
    assert await asyncio.to_thread(_queue_depth, url, f"{exchange}.acute") == 0
    bad = inbound_topology(
        ["mh"], exchange=exchange, delivery_limit=9, dead_letter_exchange=f"{exchange}.dlx"
    )
    with pytest.raises(BrokerUnavailable, match="PRECONDITION_FAILED"):
        await make_broker(bad)


async def test_publish_confirm_and_consume_with_manual_ack(
    make_broker: MakeBroker, url: str, exchange: str
) -> None:
    topology = inbound_topology(["src"], exchange=exchange, dead_letter_exchange=f"{exchange}.dlx")
    broker = await make_broker(topology)
    received: list[InboundDelivery] = []
    failed_once: set[str] = set()

    async def handler(delivery: InboundDelivery) -> None:
        if delivery.message_id == "m7" and "m7" not in failed_once:
            failed_once.add("m7")
            raise RuntimeError("handler bug")  # must not kill the connection: nack + requeue
        received.append(delivery)
        delivery.ack()

    await broker.consume(f"{exchange}.src", handler)
    assert broker.consumers_attached

    with structlog.testing.capture_logs() as logs:
        await asyncio.gather(
            *(
                broker.publish(
                    exchange,
                    "src",
                    SECRET + b"|%d" % i,
                    headers={"source": "src", "format": "hl7v2", "seq": i},
                    message_id=f"m{i}",
                    content_type="x-application/hl7-v2+er7",
                )
                for i in range(50)
            )
        )
        await eventually(lambda: len(received) == 50, "50 deliveries")
    by_id = {d.message_id: d for d in received}
    assert set(by_id) == {f"m{i}" for i in range(50)}
    m3 = by_id["m3"]
    assert m3.body == SECRET + b"|3"
    assert m3.headers["source"] == "src"
    assert m3.headers["seq"] == 3
    assert "x-carebridge-confirm-tag" not in m3.headers
    assert m3.content_type == "x-application/hl7-v2+er7"
    assert (m3.exchange, m3.routing_key, m3.queue) == (exchange, "src", f"{exchange}.src")
    assert by_id["m7"].redelivered
    assert not m3.redelivered
    assert broker.connection_count == 1
    assert any(e["event"] == "amqp.handler_failed" for e in logs)
    assert "SMITH" not in repr(logs)
    assert "SMITH" not in repr(m3)
    await eventually(lambda: _queue_depth(url, f"{exchange}.src") == 0, "queue drained")


async def test_unacked_deliveries_are_redelivered_after_the_channel_closes(
    make_broker: MakeBroker, exchange: str
) -> None:
    topology = inbound_topology(["src"], exchange=exchange, dead_letter_exchange=f"{exchange}.dlx")
    held: list[InboundDelivery] = []

    async def hold(delivery: InboundDelivery) -> None:
        held.append(delivery)  # never settled

    first = await make_broker(topology, prefetch=10)
    await first.consume(f"{exchange}.src", hold)
    for i in range(5):
        await first.publish(exchange, "src", b"x", message_id=f"m{i}")
    await eventually(lambda: len(held) == 5, "5 held deliveries")
    await first.close()
    held[0].ack()  # its channel is gone: silently dropped, never raises
    held[1].nack(requeue=False)
    assert held[0].stale
    assert held[0].settled

    again: list[InboundDelivery] = []

    async def ack(delivery: InboundDelivery) -> None:
        again.append(delivery)
        delivery.ack()

    second = await make_broker(topology)
    await second.consume(f"{exchange}.src", ack)
    await eventually(lambda: len(again) == 5, "5 redeliveries")
    assert {d.message_id for d in again} == {f"m{i}" for i in range(5)}
    assert all(d.redelivered for d in again)


async def test_unroutable_publish_raises_returned_and_others_still_confirm(
    make_broker: MakeBroker, exchange: str
) -> None:
    topology = inbound_topology(
        ["src"], exchange=exchange, dead_letter_exchange=f"{exchange}.dlx"
    ) + Topology(exchanges=[ExchangeSpec(f"{exchange}.nobody", "direct")])
    broker = await make_broker(topology)
    results = await asyncio.gather(
        *(broker.publish(exchange, "src", b"ok", message_id=f"ok{i}") for i in range(20)),
        broker.publish(f"{exchange}.nobody", "anything", b"lost?", message_id="ret1"),
        broker.publish(exchange, "no-such-source", b"lost?", message_id="ret2"),
        *(broker.publish(exchange, "src", b"ok", message_id=f"ok{i}") for i in range(20, 40)),
        return_exceptions=True,
    )
    assert results[:20] == [None] * 20
    assert results[22:] == [None] * 20
    assert isinstance(results[20], PublishReturned)
    assert isinstance(results[21], PublishReturned)
    assert "NO_ROUTE" in str(results[20])


async def test_publish_to_missing_exchange_fails_and_the_channel_recovers(
    make_broker: MakeBroker, exchange: str
) -> None:
    topology = inbound_topology(["src"], exchange=exchange, dead_letter_exchange=f"{exchange}.dlx")
    broker = await make_broker(topology)
    with pytest.raises(PublishFailed, match="NOT_FOUND"):
        await broker.publish(f"{exchange}.missing", "src", b"x")
    await eventually(lambda: broker.connected, "publisher channel reopened")
    await broker.publish(exchange, "src", b"x")
    assert broker.connection_count == 1  # only the channel was rebuilt


async def test_close_all_connections_mid_stream_loses_nothing(
    make_broker: MakeBroker, vhost: str, exchange: str
) -> None:
    total = 2000
    topology = inbound_topology(["src"], exchange=exchange, dead_letter_exchange=f"{exchange}.dlx")
    received: set[str] = set()

    async def handler(delivery: InboundDelivery) -> None:
        assert delivery.message_id is not None
        received.add(delivery.message_id)
        delivery.ack()

    consumer = await make_broker(topology, connection_name="test-consumer")
    await consumer.consume(f"{exchange}.src", handler)
    publisher = await make_broker(topology, connection_name="test-publisher")

    confirmed = 0
    retries = 0
    window = asyncio.Semaphore(50)

    async def send(message_id: str) -> None:
        nonlocal confirmed, retries
        async with window:
            for _ in range(400):
                try:
                    await publisher.publish(
                        exchange, "src", SECRET, message_id=message_id, timeout=5
                    )
                except (BrokerUnavailable, ConfirmTimeout):
                    retries += 1
                    await asyncio.sleep(0.05)
                else:
                    confirmed += 1
                    return
            raise AssertionError(f"{message_id} never confirmed")

    async def stream() -> None:
        sends = []
        for i in range(total):
            sends.append(asyncio.create_task(send(f"m{i}")))
            await asyncio.sleep(0.001)  # pace the stream so the fault lands in the middle
        await asyncio.gather(*sends)

    with structlog.testing.capture_logs() as logs:
        streaming = asyncio.create_task(stream())
        await eventually(lambda: confirmed >= 300, "300 confirms")
        await ctl("close_all_connections", "-p", vhost, "test")
        confirmed_at_fault = confirmed
        async with asyncio.timeout(60):
            await streaming
        await eventually(lambda: len(received) == total, "every message id received", 30)
        await eventually(lambda: consumer.consumers_attached, "consumer restored")

    assert confirmed == total
    assert confirmed_at_fault < total, "the fault did not land mid-stream"
    assert received == {f"m{i}" for i in range(total)}
    assert publisher.connection_count >= 2
    assert consumer.connection_count >= 2
    assert publisher.connected
    events = [e["event"] for e in logs]
    assert events.count("amqp.connection_lost") >= 2
    assert events.count("amqp.consumer_attached") >= 1
    assert "SMITH" not in repr(logs)


async def test_poison_message_is_dead_lettered_after_the_delivery_limit(
    make_broker: MakeBroker, exchange: str
) -> None:
    topology = inbound_topology(
        ["src"], exchange=exchange, delivery_limit=2, dead_letter_exchange=f"{exchange}.dlx"
    )
    broker = await make_broker(topology)
    attempts: list[InboundDelivery] = []
    dead: list[InboundDelivery] = []

    async def reject(delivery: InboundDelivery) -> None:
        attempts.append(delivery)
        delivery.nack(requeue=True)

    async def collect(delivery: InboundDelivery) -> None:
        dead.append(delivery)
        delivery.ack()

    await broker.consume(f"{exchange}.src", reject)
    await broker.consume(f"{exchange}.dead", collect)
    await broker.publish(exchange, "src", b"poison", message_id="p1")
    await eventually(lambda: len(dead) == 1, "message in the dead-letter queue")
    assert [d.message_id for d in attempts] == ["p1"] * 3
    assert dead[0].message_id == "p1"
    assert dead[0].body == b"poison"
    assert dead[0].headers["x-first-death-reason"] == "delivery_limit"


async def test_publish_while_disconnected_raises_broker_unavailable_promptly(
    make_broker: MakeBroker, vhost: str, exchange: str
) -> None:
    topology = inbound_topology(["src"], exchange=exchange, dead_letter_exchange=f"{exchange}.dlx")
    broker = await make_broker(topology)
    await ctl("clear_permissions", "-p", vhost, "guest")  # reconnects are refused from now on
    try:
        await ctl("close_all_connections", "-p", vhost, "test")
        await eventually(lambda: not broker.connected, "connection lost")
        for _ in range(3):
            async with asyncio.timeout(2):  # promptly: no waiting for a confirm timeout
                with pytest.raises(BrokerUnavailable):
                    await broker.publish(exchange, "src", b"x", timeout=30)
    finally:
        await ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    await eventually(lambda: broker.connected, "reconnected after permissions came back")
    await broker.publish(exchange, "src", b"x")


def test_tls_settings_build_an_ssl_context() -> None:
    params = AmqpSettings(
        url="amqps://u:p@mq.example.nhs.uk/", verify=False
    ).connection_parameters()
    assert params.port == 5671
    assert params.ssl_options.server_hostname == "mq.example.nhs.uk"
    assert params.ssl_options.context.verify_mode == ssl.CERT_NONE
    strict = AmqpSettings(url="amqps://mq/", server_hostname="rabbit.internal").ssl_context()
    assert strict is not None
    assert strict.check_hostname
    assert AmqpSettings().ssl_context() is None
