"""An in-memory RabbitMQ for tests of intake: queues, prefetch, manual acks, redelivery.

It stands in for the consuming side of `adapters.rabbitmq.Broker` (`subscribe`,
`cancel_consumers`, `close`) and hands out the adapter's own `Deliveries` and `InboundDelivery`:
only the broker and its channels are in memory. tests/contract/test_broker.py runs
the same assertions against it and against the real adapter on the real broker.

Not modelled: delivery limits and dead lettering (a `nack(requeue=False)` moves the message to
`dead`), exchanges and bindings (`send` puts a message straight into a queue).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.errors import BrokerUnavailable
from adapters.rabbitmq.consumer import Deliveries, InboundDelivery, Settlement


@dataclass(eq=False)
class Message:
    body: bytes
    message_id: str | None
    headers: Mapping[str, Any]
    redelivered: bool = False


class _Channel:
    """One consumer channel: what a delivery's settlement calls (`is_open`, ack, nack)."""

    def __init__(self, broker: MemoryBroker, queue: str, deliveries: Deliveries) -> None:
        self.broker = broker
        self.queue = queue
        self.deliveries = deliveries
        self.is_open = True
        self.cancelled = False
        self.unacked: dict[int, Message] = {}
        self._last_tag = 0

    def basic_ack(self, tag: int) -> None:
        self._take_back(tag)
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
                content_type=None,
                redelivered=message.redelivered,
                routing_key=self.queue,
                exchange="",
                queue=self.queue,
                delivery_tag=self._last_tag,
                _settlement=Settlement(self, self._last_tag),
            )
        )

    def close(self) -> list[Message]:
        """Close; what was unacked goes back to the queue (in delivery order)."""
        self.is_open = False
        returned = [self.unacked[tag] for tag in sorted(self.unacked)]
        self.unacked.clear()
        self.deliveries.discard_stale()
        return returned


@dataclass(eq=False)
class MemoryBroker:
    """Declared queues, each consumed by at most one subscription, with `prefetch` per queue."""

    queues: Sequence[str]
    prefetch: int = 100
    dead: list[Message] = field(default_factory=list)
    _ready: dict[str, deque[Message]] = field(init=False)
    _channels: dict[str, _Channel] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._ready = {q: deque() for q in self.queues}

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
        """Close every channel: unacked messages go back to their queues, redelivered."""
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

    def depth(self, queue: str) -> int:
        """Messages in `queue` not yet acked: ready and unacked."""
        chan = self._channels.get(queue)
        return len(self._ready[queue]) + (len(chan.unacked) if chan is not None else 0)
