"""The broker contract the engine relies on, run against the in-memory double and the real
adapter: consuming (intake) and publishing (the MLLP and FHIR gateways, AMQP destinations).

Every test runs twice: on `tests.memory_broker.MemoryBroker` and on `adapters.rabbitmq.Broker`
against the real RabbitMQ (a throw-away vhost on the CAREBRIDGE_TEST_AMQP host, since losing the
connection is done with `rabbitmqctl close_all_connections`). What tests learn from the double
is then true of the real thing: batches, acks, requeues, prefetch, stale deliveries after a
lost connection, stop; what a publish routes where, and each way it fails.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import pytest

from adapters.errors import BrokerUnavailable, ConfirmTimeout, PublishFailed, PublishReturned
from adapters.rabbitmq import (
    AmqpSettings,
    BindingSpec,
    Broker,
    Deliveries,
    ExchangeSpec,
    HeaderValue,
    InboundDelivery,
    QueueSpec,
    Topology,
    inbound_topology,
)
from tests.conftest import AMQP_URL
from tests.memory_broker import MemoryBroker

pytestmark = pytest.mark.integration

SOURCES = ("a", "b")
Headers = dict[str, str] | None


def rig_topology(prefix: str) -> Topology:
    """The inbound exchange `prefix` (direct: a queue per source) and a topic exchange
    `<prefix>.events` whose queue `<prefix>.discharges` is bound for ``discharge.#``."""
    events, discharges = f"{prefix}.events", f"{prefix}.discharges"
    return inbound_topology(SOURCES, exchange=prefix, dead_letter_exchange=f"{prefix}.dlx") + (
        Topology(
            exchanges=[ExchangeSpec(events, "topic")],
            queues=[QueueSpec(discharges)],
            bindings=[BindingSpec(events, discharges, "discharge.#")],
        )
    )


class Rig(Protocol):
    prefix: str

    def queue(self, source: str) -> str: ...

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        headers: dict[str, HeaderValue] | None = None,
        message_id: str | None = None,
        content_type: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the adapter's confirm deadline
        mandatory: bool = True,
    ) -> None:
        """The broker's own `publish` (a connected broker's, for the real one)."""

    async def subscribe(self, sources: Sequence[str] = ("a",)) -> Deliveries: ...

    async def subscribe_to(self, queue: str) -> Deliveries: ...

    async def send(self, source: str, message_id: str, headers: Headers = None) -> None: ...

    async def send_elsewhere(self, source: str, message_id: str) -> None:
        """Publish `message_id` to `<prefix>.discharges` and have it delivered on the channel
        consuming `source`'s queue under another consumer tag: it takes the channel's next
        delivery tag and never reaches the adapter, as a delivery pika drops would not. It
        stays unacked (back in its queue once that channel closes) unless an ack takes it."""

    async def lose_connection(self) -> None:
        """Returns once every consumer is attached again on a new connection."""

    async def reopen(self) -> Deliveries:
        """Close (unacked deliveries go back to the queue) and subscribe to "a" again."""

    async def close(self) -> None: ...


async def eventually(predicate: Callable[[], bool], what: str, within: float = 20.0) -> None:
    """Poll `predicate` until it holds; fail after a generous deadline."""
    for _ in range(int(within / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {within}s waiting for: {what}")


async def take(deliveries: Deliveries, limit: int) -> list[InboundDelivery]:
    async with asyncio.timeout(20):
        return await deliveries.take(limit)


async def take_n(deliveries: Deliveries, n: int) -> list[InboundDelivery]:
    got: list[InboundDelivery] = []
    while len(got) < n:
        got += await take(deliveries, n - len(got))
    return got


def ids(batch: Sequence[InboundDelivery]) -> list[str | None]:
    return [d.message_id for d in batch]


class MemoryRig:
    def __init__(self, prefix: str, prefetch: int) -> None:
        self.prefix = prefix
        self.broker = MemoryBroker(prefetch=prefetch, topology=rig_topology(prefix))

    def queue(self, source: str) -> str:
        return f"{self.prefix}.{source}"

    async def publish(self, exchange: str, routing_key: str, body: bytes,
                      **options: Any) -> None:  # fmt: skip
        await self.broker.publish(exchange, routing_key, body, **options)

    async def subscribe(self, sources: Sequence[str] = ("a",)) -> Deliveries:
        return await self.broker.subscribe([self.queue(s) for s in sources])

    async def subscribe_to(self, queue: str) -> Deliveries:
        return await self.broker.subscribe([queue])

    async def send(self, source: str, message_id: str, headers: Headers = None) -> None:
        await self.broker.publish(self.prefix, source, message_id.encode(),
                                  message_id=message_id, headers=headers)  # fmt: skip

    async def send_elsewhere(self, source: str, message_id: str) -> None:
        discharges = f"{self.prefix}.discharges"
        self.broker.send(discharges, message_id.encode(), message_id=message_id)
        self.broker.deliver_elsewhere(self.queue(source), discharges)

    async def lose_connection(self) -> None:
        self.broker.lose_connection()

    async def reopen(self) -> Deliveries:
        await self.broker.close()
        await self.broker.start()
        return await self.subscribe()

    async def close(self) -> None:
        await self.broker.close()


class RabbitRig:
    def __init__(self, prefix: str, prefetch: int, url: str, vhost: str) -> None:
        self.prefix, self._url, self._vhost = prefix, url, vhost
        self._settings = AmqpSettings(
            url=url,
            prefetch=prefetch,
            connection_name="contract",
            reconnect_initial_delay=0.1,
            reconnect_max_delay=1.0,
        )
        self._topology = rig_topology(prefix)
        self.broker = Broker(self._settings, self._topology)
        self._closed = False

    def queue(self, source: str) -> str:
        return f"{self.prefix}.{source}"

    async def publish(self, exchange: str, routing_key: str, body: bytes,
                      **options: Any) -> None:  # fmt: skip
        if not self._closed and not self.broker.connected:
            await self.broker.start(timeout=20)
        await self.broker.publish(exchange, routing_key, body, **options)

    async def subscribe(self, sources: Sequence[str] = ("a",)) -> Deliveries:
        return await self.subscribe_to(*(self.queue(s) for s in sources))

    async def subscribe_to(self, *queues: str) -> Deliveries:
        if not self.broker.connected:
            await self.broker.start(timeout=20)
        return await self.broker.subscribe(list(queues))

    async def send(self, source: str, message_id: str, headers: Headers = None) -> None:
        await self.publish(self.prefix, source, message_id.encode(),
                           message_id=message_id, headers=headers)  # fmt: skip

    async def send_elsewhere(self, source: str, message_id: str) -> None:
        chan = self.broker._consumers[self.queue(source)].chan
        assert chan is not None
        arrived: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def hold(_channel: Any, _method: Any, _props: Any, _body: bytes) -> None:
            if not arrived.done():
                arrived.set_result(None)

        chan.channel.basic_consume(
            queue=f"{self.prefix}.discharges", on_message_callback=hold, auto_ack=False
        )
        await self.publish(f"{self.prefix}.events", "discharge.elsewhere",
                           message_id.encode(), message_id=message_id)  # fmt: skip
        async with asyncio.timeout(20):
            await arrived

    async def lose_connection(self) -> None:
        before = self.broker.connection_count
        await asyncio.to_thread(_ctl, "close_all_connections", "-p", self._vhost, "contract test")
        await eventually(
            lambda: self.broker.connection_count > before and self.broker.consumers_attached,
            "consumers attached again",
        )

    async def reopen(self) -> Deliveries:
        await self.broker.close()
        self.broker = Broker(self._settings, self._topology)
        return await self.subscribe()

    async def close(self) -> None:
        self._closed = True
        await self.broker.close()


def _ctl(*args: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout


@pytest.fixture(scope="module")
def vhost_url() -> Iterator[tuple[str, str]]:
    parts = urlsplit(AMQP_URL)
    try:
        socket.create_connection((parts.hostname, parts.port or 5672), timeout=2).close()
    except OSError:
        pytest.skip(f"RabbitMQ not reachable at {parts.hostname}:{parts.port or 5672}")
    name = f"cbcontract-{uuid.uuid4().hex[:10]}"
    _ctl("add_vhost", name)
    _ctl("set_permissions", "-p", name, parts.username or "guest", ".*", ".*", ".*")
    yield name, urlunsplit(parts._replace(path=f"/{name}"))
    _ctl("delete_vhost", name)


RigMaker = Callable[..., Rig]


@pytest.fixture(params=["memory", "rabbitmq"])
async def make_rig(
    request: pytest.FixtureRequest,
) -> AsyncIterator[RigMaker]:
    rigs: list[Rig] = []
    prefix = f"cbcontract.{uuid.uuid4().hex[:10]}"
    vhost, url = request.getfixturevalue("vhost_url") if request.param == "rabbitmq" else ("", "")

    def make(prefetch: int = 100) -> Rig:
        rig: Rig = (
            MemoryRig(prefix, prefetch)
            if request.param == "memory"
            else RabbitRig(prefix, prefetch, url, vhost)
        )
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        await rig.close()


async def test_a_batch_is_one_delivery_waited_for_then_what_is_there_up_to_the_limit(
    make_rig: RigMaker,
) -> None:
    rig = make_rig()
    deliveries = await rig.subscribe()
    await rig.send("a", "m0", headers={"source": "a"})
    [first] = await take(deliveries, 10)
    assert (first.message_id, first.body, first.queue) == ("m0", b"m0", rig.queue("a"))
    assert first.headers == {"source": "a"}  # the confirm tag header never shows
    assert not first.redelivered
    assert not first.stale
    assert not first.settled
    first.ack()
    assert first.settled
    for i in (1, 2, 3):
        await rig.send("a", f"m{i}")
    await eventually(lambda: deliveries.backlog == 3, "three waiting")
    assert ids(await take(deliveries, 2)) == ["m1", "m2"]
    assert deliveries.backlog == 1
    last = await take(deliveries, 10)
    assert ids(last) == ["m3"]
    assert deliveries.backlog == 0


async def test_acked_is_gone_requeued_comes_back_and_unsettled_returns_on_reopen(
    make_rig: RigMaker,
) -> None:
    rig = make_rig()
    deliveries = await rig.subscribe()
    for i in range(4):
        await rig.send("a", f"m{i}")
    batch = await take_n(deliveries, 4)
    assert ids(batch) == ["m0", "m1", "m2", "m3"]
    batch[0].ack()
    batch[1].nack(requeue=True)
    [again] = await take(deliveries, 10)
    assert (again.message_id, again.redelivered) == ("m1", True)
    again.ack()
    batch[2].nack(requeue=False)  # dead-lettered: never seen on this queue again
    batch[1].ack()  # a second settlement is ignored
    deliveries = await rig.reopen()
    assert batch[3].stale
    batch[3].ack()  # on a closed channel: dropped, never raised, never acked elsewhere
    await rig.send("a", "end")
    got = await take_n(deliveries, 2)
    assert [(d.message_id, d.redelivered) for d in got] == [("m3", True), ("end", False)]


async def test_ack_all_acks_those_given_and_none_still_unsettled_below_them(
    make_rig: RigMaker,
) -> None:
    # Intake acks a committed batch with `ack_all`: a run of tags goes as one frame with
    # `multiple`, which must never take an unsettled delivery below it with it.
    rig = make_rig()
    deliveries = await rig.subscribe()
    for i in range(6):
        await rig.send("a", f"m{i}")
    batch = await take_n(deliveries, 6)
    batch[1].ack()
    deliveries.ack_all([batch[0], batch[1], batch[3], batch[4]])  # m2 and m5 left unsettled
    deliveries.ack_all([batch[0]])  # a second settlement is ignored
    assert [d.settled for d in batch] == [True, True, False, True, True, False]
    deliveries = await rig.reopen()
    await rig.send("a", "end")
    got = await take_n(deliveries, 3)
    assert [(d.message_id, d.redelivered) for d in got] == [
        ("m2", True), ("m5", True), ("end", False)]  # fmt: skip
    deliveries.ack_all(got)
    deliveries = await rig.reopen()
    await rig.send("a", "last")
    [last] = await take(deliveries, 10)
    assert (last.message_id, last.redelivered) == ("last", False)


async def test_ack_all_never_acks_a_delivery_of_its_channel_that_did_not_reach_it(
    make_rig: RigMaker,
) -> None:
    # A `multiple` ack takes every tag of the channel up to it still outstanding, whoever it
    # was delivered to. A tag that never reached the adapter (pika drops a delivery for a
    # consumer tag it does not know, with a log line) must end the run, or a message the
    # engine never stored is acked: lost.
    rig = make_rig()
    deliveries = await rig.subscribe()
    await rig.send("a", "m0")
    batch = await take(deliveries, 1)
    await rig.send_elsewhere("a", "unseen")  # the channel's next tag, never seen by `take`
    for i in (1, 2):
        await rig.send("a", f"m{i}")
        batch += await take(deliveries, 1)
    deliveries.ack_all(batch[:2])
    deliveries.ack_all(batch[2:])  # and every run after it on that channel
    assert [d.settled for d in batch] == [True, True, True]
    deliveries = await rig.reopen()
    await rig.send("a", "end")
    assert ids(await take(deliveries, 10)) == ["end"]  # m0, m1 and m2 were acked
    elsewhere = await rig.subscribe_to(f"{rig.prefix}.discharges")
    await rig.publish(f"{rig.prefix}.events", "discharge.after", b"after", message_id="after")
    [first] = await take(elsewhere, 1)  # "after" first would mean "unseen" was acked: lost
    assert (first.message_id, first.redelivered) == ("unseen", True)


async def test_ack_all_settles_each_queue_on_its_own_channel(make_rig: RigMaker) -> None:
    rig = make_rig(prefetch=2)
    deliveries = await rig.subscribe(SOURCES)
    for name in ("a0", "b0", "a1", "b1"):
        await rig.send(name[0], name)
    got = await take_n(deliveries, 4)  # the prefetch of both queues is used up
    deliveries.ack_all(got)
    await rig.send("a", "a2")
    await rig.send("b", "b2")
    assert set(ids(await take_n(deliveries, 2))) == {"a2", "b2"}


async def test_after_a_lost_connection_stale_deliveries_are_dropped_and_come_again(
    make_rig: RigMaker,
) -> None:
    rig = make_rig(prefetch=5)
    deliveries = await rig.subscribe()
    for i in range(5):
        await rig.send("a", f"m{i}")
    await eventually(lambda: deliveries.backlog == 5, "five waiting")
    held, also_held = await take(deliveries, 2)
    await rig.lose_connection()
    assert held.stale
    held.ack()  # dropped: the new channel never sees the old channel's tag
    assert held.settled
    got = await take_n(deliveries, 5)
    assert sorted(str(d.message_id) for d in got) == [f"m{i}" for i in range(5)]
    assert all(d.redelivered and not d.stale for d in got)
    # The new channel numbers its tags from 1 again: a batch with a stale one in it acks the
    # redeliveries there, and the stale one nowhere.
    deliveries.ack_all([also_held, *got])
    assert also_held.settled
    await rig.send("a", "end")
    assert ids(await take(deliveries, 10)) == ["end"]


async def test_prefetch_bounds_what_waits_in_memory(make_rig: RigMaker) -> None:
    rig = make_rig(prefetch=3)
    deliveries = await rig.subscribe()
    for i in range(5):
        await rig.send("a", f"m{i}")
    await eventually(lambda: deliveries.backlog == 3, "three waiting")
    batch = await take(deliveries, 10)
    assert ids(batch) == ["m0", "m1", "m2"]
    assert deliveries.backlog == 0
    batch[0].ack()
    await eventually(lambda: deliveries.backlog == 1, "one more after one ack")
    batch[1].ack()
    batch[2].ack()
    await eventually(lambda: deliveries.backlog == 2, "the rest")
    assert ids(await take(deliveries, 10)) == ["m3", "m4"]


async def test_stopped_deliveries_hand_out_nothing_and_unread_ones_return(
    make_rig: RigMaker,
) -> None:
    rig = make_rig()
    deliveries = await rig.subscribe()
    await rig.send("a", "m0")
    await rig.send("a", "m1")
    await eventually(lambda: deliveries.backlog == 2, "two waiting")
    deliveries.stop()
    assert await take(deliveries, 10) == []
    again = await rig.reopen()
    got = await take_n(again, 2)
    assert [(d.message_id, d.redelivered) for d in got] == [("m0", True), ("m1", True)]


async def test_several_queues_share_one_buffer_and_each_delivery_names_its_queue(
    make_rig: RigMaker,
) -> None:
    rig = make_rig()
    deliveries = await rig.subscribe(SOURCES)
    await rig.send("a", "from-a")
    await rig.send("b", "from-b")
    got = await take_n(deliveries, 2)
    assert {(d.message_id, d.queue) for d in got} == {
        ("from-a", rig.queue("a")),
        ("from-b", rig.queue("b")),
    }


async def test_a_queue_that_does_not_exist_is_refused(make_rig: RigMaker) -> None:
    rig = make_rig()
    with pytest.raises(BrokerUnavailable, match="NOT_FOUND"):
        await rig.subscribe(["missing"])


# ---- publishing ---------------------------------------------------------------------------


async def test_a_publish_reaches_the_queue_bound_for_its_routing_key_as_sent(
    make_rig: RigMaker,
) -> None:
    rig = make_rig()
    deliveries = await rig.subscribe()
    await rig.publish(rig.prefix, "a", b"MSH|...", headers={"source": "a", "via": "mllp"},
                      message_id="m1", content_type="application/fhir+json")  # fmt: skip
    [got] = await take(deliveries, 10)
    assert (got.body, got.message_id, got.content_type) == (
        b"MSH|...", "m1", "application/fhir+json")  # fmt: skip
    assert got.headers == {"source": "a", "via": "mllp"}
    assert (got.exchange, got.routing_key, got.queue) == (rig.prefix, "a", rig.queue("a"))


async def test_a_topic_exchange_routes_by_pattern_and_an_unroutable_mandatory_is_returned(
    make_rig: RigMaker,
) -> None:
    rig = make_rig()
    events = f"{rig.prefix}.events"
    await rig.publish(events, "discharge.mental_health.mh", b"one", mandatory=True)
    with pytest.raises(PublishReturned, match="NO_ROUTE"):
        await rig.publish(events, "admission.acute.pas", b"two", mandatory=True)
    await rig.publish(events, "admission.acute.pas", b"three", mandatory=False)  # dropped
    await rig.publish(events, "discharge.community.x", b"four", mandatory=False)
    deliveries = await rig.subscribe_to(f"{rig.prefix}.discharges")
    got = await take_n(deliveries, 2)
    assert [(d.body, d.routing_key) for d in got] == [
        (b"one", "discharge.mental_health.mh"),
        (b"four", "discharge.community.x"),
    ]


async def test_a_publish_to_an_exchange_that_does_not_exist_fails(make_rig: RigMaker) -> None:
    rig = make_rig()
    with pytest.raises(PublishFailed, match="NOT_FOUND"):
        await rig.publish(f"{rig.prefix}.missing", "a", b"x")


async def test_a_publish_on_a_closed_broker_is_unavailable(make_rig: RigMaker) -> None:
    rig = make_rig()
    await rig.publish(rig.prefix, "a", b"before")
    await rig.close()
    with pytest.raises(BrokerUnavailable, match="not connected"):
        await rig.publish(rig.prefix, "a", b"after")


async def test_a_confirm_not_waited_for_is_confirm_timeout_and_the_message_may_arrive(
    make_rig: RigMaker,
) -> None:
    rig = make_rig()
    deliveries = await rig.subscribe()
    with pytest.raises(ConfirmTimeout):
        await rig.publish(rig.prefix, "a", b"in doubt", message_id="m1", timeout=0)
    # The outcome is unknown to the publisher, not undone: the sender must republish, and
    # the message may well be there (intake's idempotency makes the copy harmless).
    [got] = await take(deliveries, 10)
    assert got.message_id == "m1"
