"""An in-memory RabbitMQ for tests: queues, prefetch, manual acks, redelivery, and publishing
with the real adapter's outcomes.

It stands in for `adapters.rabbitmq.Broker`: the consuming side (`subscribe`,
`cancel_consumers`, `close`), handing out the adapter's own `Deliveries` and
`InboundDelivery`, and the publishing side (`publish`, with the same signature and the same
errors: BrokerUnavailable when not connected, PublishFailed for an exchange that does not
exist, PublishReturned for a mandatory message no queue is bound for, ConfirmTimeout when the
confirm is not waited for long enough). Only the broker and its channels are in memory.
tests/contract/test_broker.py runs the same assertions against it and against the real
adapter on the real broker.

Exchanges and bindings come from the same `Topology` the real broker declares (direct, topic
and fanout exchanges; the default exchange routes to the queue its routing key names).
Not modelled: delivery limits and dead lettering (a `nack(requeue=False)` moves the message to
`dead`), resource alarms; `send` puts a message straight into a queue (confirmed at once).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.errors import BrokerUnavailable, ConfirmTimeout, PublishFailed, PublishReturned
from adapters.rabbitmq import INBOUND_EXCHANGE, HeaderValue, Topology, inbound_topology
from adapters.rabbitmq.consumer import ChannelTags, Deliveries, InboundDelivery, Settlement


@dataclass(eq=False)
class Message:
    body: bytes
    message_id: str | None
    headers: Mapping[str, Any]
    redelivered: bool = False
    content_type: str | None = None
    exchange: str = ""
    routing_key: str = ""


class _Channel:
    """One consumer channel: what a delivery's settlement calls (`is_open`, ack, nack)."""

    def __init__(self, broker: MemoryBroker, queue: str, deliveries: Deliveries) -> None:
        self.broker = broker
        self.queue = queue
        self.deliveries = deliveries
        self.is_open = True
        self.cancelled = False
        self.unacked: dict[int, Message] = {}
        self.elsewhere: dict[int, str] = {}
        """Tags delivered on this channel to another consumer: the queue each came from."""
        self._last_tag = 0
        self._tags = ChannelTags()  # as the real adapter's consumer keeps them

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self._take_back(tag)
        if multiple:  # as RabbitMQ: every outstanding tag up to this one
            for earlier in [t for t in self.unacked if t < tag]:
                self._take_back(earlier)
        self.broker.dispatch(self.queue)

    def basic_nack(self, tag: int, requeue: bool) -> None:
        message = self._take_back(tag)
        if requeue:
            self.broker.requeue(self.queue, [message])
        else:
            self.broker.dead.append(message)
        self.broker.dispatch(self.queue)

    def _take_back(self, tag: int) -> Message:
        if not self.is_open or tag not in self.unacked:
            # RabbitMQ would close the channel (PRECONDITION_FAILED - unknown delivery tag).
            raise AssertionError(f"settled an unknown delivery tag {tag} on {self.queue!r}")
        return self.unacked.pop(tag)

    def deliver(self, message: Message) -> None:
        self._last_tag += 1
        self.unacked[self._last_tag] = message
        self.deliveries.put(
            InboundDelivery(
                body=message.body,
                headers=dict(message.headers),
                message_id=message.message_id,
                content_type=message.content_type,
                redelivered=message.redelivered,
                routing_key=message.routing_key or self.queue,
                exchange=message.exchange,
                queue=self.queue,
                delivery_tag=self._last_tag,
                _settlement=Settlement(self, self._last_tag, self._tags),
            )
        )

    def deliver_elsewhere(self, queue: str, message: Message) -> None:
        """A delivery of `queue` on this channel that the consumer never sees (another consumer
        tag on the same channel): it takes the next tag and stays unacked until the channel
        closes, unless a `multiple` ack takes it."""
        self._last_tag += 1
        self.unacked[self._last_tag] = message
        self.elsewhere[self._last_tag] = queue

    def close(self) -> list[Message]:
        """Close; what was unacked goes back to the queue (in delivery order); what was
        delivered elsewhere, to its own queue."""
        self.is_open = False
        for tag, queue in self.elsewhere.items():
            if tag in self.unacked:
                self.broker.requeue(queue, [self.unacked.pop(tag)])
        returned = [self.unacked[tag] for tag in sorted(self.unacked)]
        self.unacked.clear()
        self.deliveries.discard_stale()
        return returned


@dataclass(eq=False)
class MemoryBroker:
    """Declared queues (`queues`, and those of `topology`), each consumed by at most one
    subscription, with `prefetch` per queue; the exchanges and bindings of `topology`."""

    queues: Sequence[str] = ()
    prefetch: int = 100
    topology: Topology = field(default_factory=Topology)
    confirm_timeout: float = 30.0
    """As `AmqpSettings.confirm_timeout`: how long a publish waits for its confirm."""
    dead: list[Message] = field(default_factory=list)
    connected: bool = True
    _ready: dict[str, deque[Message]] = field(init=False)
    _exchanges: dict[str, str] = field(init=False)
    _channels: dict[str, _Channel] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        names = [*self.queues, *(q.name for q in self.topology.queues)]
        self._ready = {q: deque() for q in names}
        self._exchanges = {e.name: e.type for e in self.topology.exchanges}

    # ---- the adapter's publishing API -----------------------------------------------------

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        headers: Mapping[str, HeaderValue] | None = None,
        message_id: str | None = None,
        content_type: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - as the adapter's: a confirm deadline
        mandatory: bool = True,
    ) -> None:
        """As `Broker.publish`: routed at once; the outcome is what the broker's confirm would
        say. A deadline of zero or less is never met: ConfirmTimeout, though the message may be
        (here: is) routed all the same, as on the real broker."""
        if not self.connected:
            raise BrokerUnavailable("not connected to RabbitMQ")
        queues = self._route(exchange, routing_key)
        for queue in queues:
            self._ready[queue].append(Message(
                body, message_id, dict(headers or {}), content_type=content_type,
                exchange=exchange, routing_key=routing_key,
            ))  # fmt: skip
            self.dispatch(queue)
        deadline = self.confirm_timeout if timeout is None else timeout
        if deadline <= 0:
            raise ConfirmTimeout(
                f"no confirm within {deadline}s (exchange={exchange!r}, "
                f"routing_key={routing_key!r}, message_id={message_id!r})"
            )
        if not queues and mandatory:
            raise PublishReturned(f"unroutable: 312 NO_ROUTE (exchange={exchange!r}, "
                                  f"routing_key={routing_key!r})")  # fmt: skip

    def _route(self, exchange: str, routing_key: str) -> list[str]:
        if exchange == "":  # the default exchange: straight to the queue of that name
            return [routing_key] if routing_key in self._ready else []
        kind = self._exchanges.get(exchange)
        if kind is None:
            raise PublishFailed(f"channel closed: (404, \"NOT_FOUND - no exchange "
                                f"'{exchange}'\")")  # fmt: skip
        bound = [b for b in self.topology.bindings if b.exchange == exchange]
        return list(dict.fromkeys(
            b.queue for b in bound
            if kind == "fanout"
            or (kind == "direct" and b.routing_key == routing_key)
            or (kind == "topic" and topic_matches(b.routing_key, routing_key))
        ))  # fmt: skip

    async def start(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - as the adapter's
        self.connected = True

    # ---- the adapter's consuming API ------------------------------------------------------

    async def subscribe(self, queues: Sequence[str]) -> Deliveries:
        missing = [q for q in queues if q not in self._ready]
        if missing:
            raise BrokerUnavailable(f"cannot consume from {missing[0]!r}: NOT_FOUND")
        deliveries = Deliveries()
        for queue in queues:
            if queue in self._channels:
                raise ValueError(f"already consuming from {queue!r}")
            self._channels[queue] = _Channel(self, queue, deliveries)
            self.dispatch(queue)
        return deliveries

    async def cancel_consumers(self) -> None:
        for chan in self._channels.values():
            chan.cancelled = True

    async def close(self) -> None:
        """Close every channel: unacked messages go back to their queues, redelivered; until
        `start`, a publish is BrokerUnavailable."""
        self.connected = False
        channels, self._channels = self._channels, {}
        for queue, chan in channels.items():
            chan.deliveries.stop()
            self.requeue(queue, chan.close())

    # ---- what the real broker does on its own ---------------------------------------------

    def send(
        self,
        queue: str,
        body: bytes,
        *,
        message_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        """A message published to `queue` (confirmed at once)."""
        self._ready[queue].append(Message(body, message_id, dict(headers or {})))
        self.dispatch(queue)

    def deliver_elsewhere(self, consumer_queue: str, queue: str) -> None:
        """The next message of `queue` delivered on the channel consuming `consumer_queue`, to a
        consumer the adapter does not know (`_Channel.deliver_elsewhere`)."""
        self._channels[consumer_queue].deliver_elsewhere(queue, self._ready[queue].popleft())

    def lose_connection(self) -> None:
        """The connection drops and the supervisor re-attaches every consumer on new channels."""
        for queue, old in list(self._channels.items()):
            new = _Channel(self, queue, old.deliveries)
            self._channels[queue] = new
            self.requeue(queue, old.close())
            self.dispatch(queue)

    def requeue(self, queue: str, messages: Sequence[Message]) -> None:
        for message in reversed(messages):
            message.redelivered = True
            self._ready[queue].appendleft(message)

    def dispatch(self, queue: str) -> None:
        chan = self._channels.get(queue)
        ready = self._ready[queue]
        while chan is not None and not chan.cancelled and ready:
            if len(chan.unacked) >= self.prefetch:
                return
            chan.deliver(ready.popleft())

    # ---- what a test may look at -----------------------------------------------------------

    def ready(self, queue: str) -> list[Message]:
        """The messages waiting in `queue`, not yet delivered to a consumer."""
        return list(self._ready[queue])

    def depth(self, queue: str) -> int:
        """Messages in `queue` not yet acked: ready and unacked."""
        chan = self._channels.get(queue)
        return len(self._ready[queue]) + (len(chan.unacked) if chan is not None else 0)


GatewayPublish = Callable[[str, bytes, Mapping[str, str]], Awaitable[None]]
"""What the MLLP and FHIR gateways are given: (source, payload, headers), confirmed."""


def inbound_broker(*sources: str) -> MemoryBroker:
    """A broker with the engine's inbound topology: the inbound exchange and a queue per
    source (`inbound_queue`), as the engine declares them."""
    return MemoryBroker(topology=inbound_topology(sources))


def inbound_queue(source: str) -> str:
    return f"{INBOUND_EXCHANGE}.{source}"


def gateway_publish(broker: MemoryBroker, content_type: str | None = None) -> GatewayPublish:
    """What engine/app.py hands a gateway: publish to the inbound exchange, routed by the
    source's name, and wait for the confirm (the FHIR gateway's with its content type)."""

    async def publish(source: str, payload: bytes, headers: Mapping[str, str]) -> None:
        await broker.publish(INBOUND_EXCHANGE, source, payload, headers=dict(headers),
                             content_type=content_type)  # fmt: skip

    return publish


def kept(broker: MemoryBroker, source: str) -> list[bytes]:
    """The payloads waiting in the source's inbound queue (what intake would log)."""
    return [message.body for message in broker.ready(inbound_queue(source))]


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more (words split on ``.``)."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and p[0] in ("*", k[0]) and match(p[1:], k[1:])

    return match(pattern.split("."), routing_key.split("."))
