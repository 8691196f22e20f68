"""Consuming with manual acks: deliveries, their settlement, and the one buffer they wait in.

    pika on_message ─► Deliveries (one buffer per subscription, bounded by prefetch per queue)
                    ─► take(limit): the engine's intake pulls batches straight from it,
                       or a handler worker (Broker.consume) takes one at a time

A delivery is settled on the channel it came on and nowhere else; when that channel closes,
its deliveries still in the buffer are dropped (the broker requeues them), so the buffer never
holds more than `prefetch` per queue.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pika.exceptions

from adapters.rabbitmq.channel import Chan, close_channel, describe, guarded, log, open_channel
from adapters.rabbitmq.publisher import TAG_HEADER

Handler = Callable[["InboundDelivery"], Awaitable[None]]


class ChannelTags:
    """The delivery tags of one channel as they reached the consumer: what lets `ack_all` ack
    a run of deliveries with one frame, and what bounds that run.

    A `multiple` ack up to a tag acks every tag up to it still outstanding on the channel,
    whoever it was delivered to. RabbitMQ numbers a channel's deliveries 1, 2, 3... in the order
    it sends them, so a tag that never arrived here (pika drops a delivery for a consumer tag it
    does not know with only a log line; it rejects one for a consumer being cancelled) may be
    outstanding at the broker with nothing in the engine behind it; it stays so until the
    channel closes. `unsettled` holds the tags that arrived and are not settled yet, in tag
    order; `gap` is the lowest tag that did not arrive in order (None while there is none):
    no `multiple` ack may reach either."""

    __slots__ = ("gap", "last", "unsettled")

    def __init__(self) -> None:
        self.unsettled: dict[int, None] = {}
        self.last = 0
        self.gap: int | None = None

    def arrived(self, tag: int) -> None:
        if tag != self.last + 1 and self.gap is None:
            # Skipped tags went elsewhere. One out of order breaks the order `bound` relies on:
            # no run is proved safe on this channel from then on (0: below every tag).
            self.gap = self.last + 1 if tag > self.last else 0
            log.warning("amqp.delivery_tag_gap", delivery_tag=tag, expected=self.last + 1)
        self.last = max(self.last, tag)
        self.unsettled[tag] = None

    def bound(self) -> int | None:
        """The lowest tag a `multiple` ack must not reach (None: any tag that arrived)."""
        lowest = next(iter(self.unsettled), None)
        if self.gap is None or (lowest is not None and lowest < self.gap):
            return lowest
        return self.gap


class Settlement:
    """The mutable part of a delivery: which channel it came on, and whether it is settled.
    `tags`, shared by every delivery of one channel, is in it from the moment the delivery
    arrives until it is settled (`ChannelTags.unsettled`)."""

    __slots__ = ("channel", "settled", "tag", "tags")

    def __init__(self, channel: Any, tag: int, tags: ChannelTags | None = None) -> None:
        self.channel = channel
        self.tag = tag
        self.settled = False
        self.tags = tags
        if tags is not None:
            tags.arrived(tag)

    def settle(self, ack: bool, requeue: bool) -> None:
        if self.settled:
            return  # a second ack/nack of one tag would make RabbitMQ close the channel
        self._settled()
        if not self.channel.is_open:
            log.debug("amqp.settle_dropped", delivery_tag=self.tag, reason="channel closed")
            return  # the broker requeues it; the engine deduplicates the redelivery
        try:
            if ack:
                self.channel.basic_ack(self.tag)
            else:
                self.channel.basic_nack(self.tag, requeue=requeue)
        except pika.exceptions.AMQPError as exc:
            log.debug("amqp.settle_dropped", delivery_tag=self.tag, reason=describe(exc))

    def _settled(self) -> None:
        self.settled = True
        if self.tags is not None:
            self.tags.unsettled.pop(self.tag, None)


def ack_all(settlements: Iterable[Settlement]) -> None:
    """Ack these deliveries, as each one's `ack()` would, in as few frames as is safe: on each
    channel, the tags below its `ChannelTags.bound` (the lowest tag still unsettled there or
    that never arrived) go as one ack with `multiple` (RabbitMQ acks every outstanding tag up
    to it, and every tag below the bound arrived and is settled); the others are acked alone.
    Already settled ones are skipped."""
    runs: dict[int, tuple[Settlement, list[int]]] = {}
    for settlement in settlements:
        if settlement.settled:
            continue
        if settlement.tags is None:  # not tracked: no run can be proved safe
            settlement.settle(ack=True, requeue=False)
            continue
        settlement._settled()
        run = runs.get(id(settlement.tags))
        if run is None:
            runs[id(settlement.tags)] = (settlement, [settlement.tag])
        else:
            run[1].append(settlement.tag)
    for first, tags in runs.values():
        channel = first.channel
        if not channel.is_open:
            log.debug("amqp.settle_dropped", delivery_tags=len(tags), reason="channel closed")
            continue
        assert first.tags is not None
        bound = first.tags.bound()
        below = tags if bound is None else [t for t in tags if t < bound]
        alone = [] if bound is None else [t for t in tags if t >= bound]
        try:
            if below:
                channel.basic_ack(max(below), multiple=True)
            for tag in alone:
                channel.basic_ack(tag)
        except pika.exceptions.AMQPError as exc:
            log.debug("amqp.settle_dropped", delivery_tags=len(tags), reason=describe(exc))


@dataclass(frozen=True, eq=False)
class InboundDelivery:
    """One message from a queue. `ack()` and `nack()` are synchronous and must be called on the
    event loop's thread; the first call wins, later ones are ignored. Settling a delivery whose
    channel has since closed is silently dropped (the broker redelivers it)."""

    body: bytes = field(repr=False)  # never in a repr: patient data
    headers: Mapping[str, Any]
    message_id: str | None
    content_type: str | None
    redelivered: bool
    routing_key: str
    exchange: str
    queue: str
    delivery_tag: int
    _settlement: Settlement = field(repr=False, compare=False)

    def ack(self) -> None:
        self._settlement.settle(ack=True, requeue=False)

    def nack(self, requeue: bool) -> None:
        self._settlement.settle(ack=False, requeue=requeue)

    @property
    def settled(self) -> bool:
        return self._settlement.settled

    @property
    def stale(self) -> bool:
        """True once the channel it came on has closed: settling it is pointless."""
        return not self._settlement.channel.is_open


class Deliveries:
    """The deliveries of every queue of one subscription, in arrival order: the one buffer in
    memory between RabbitMQ and whoever takes them. Unsettled deliveries, taken or not, stay
    unacked at the broker; once stopped, nothing more is handed out."""

    def __init__(self) -> None:
        self._items: deque[InboundDelivery] = deque()
        self._ready = asyncio.Event()
        self._stopped = False

    @property
    def backlog(self) -> int:
        """Deliveries received and not taken yet."""
        return len(self._items)

    def put(self, delivery: InboundDelivery) -> None:
        self._items.append(delivery)
        self._ready.set()

    async def take(self, limit: int) -> list[InboundDelivery]:
        """Wait for one delivery, then take what is there, up to `limit`; [] once stopped."""
        while True:
            while not self._items and not self._stopped:
                self._ready.clear()
                await self._ready.wait()
            if self._stopped:
                return []
            batch: list[InboundDelivery] = []
            items = self._items
            while items and len(batch) < limit:
                delivery = items.popleft()
                if delivery.stale:  # its channel is gone: the broker has requeued it already
                    _dropped(delivery)
                    continue
                batch.append(delivery)
            if batch:
                return batch

    @staticmethod
    def ack_all(deliveries: Iterable[object]) -> None:
        """Ack these deliveries (each an `InboundDelivery`), as `ack()` each would, with as few
        frames as is safe (`ack_all` of their settlements)."""
        settlements = []
        for delivery in deliveries:
            if not isinstance(delivery, InboundDelivery):
                raise TypeError(f"not a delivery of this adapter: {type(delivery).__name__}")
            settlements.append(delivery._settlement)
        ack_all(settlements)

    def discard_stale(self) -> None:
        """Drop what came on channels that have closed (called when one does)."""
        kept = [d for d in self._items if not d.stale]
        for delivery in self._items:
            if delivery.stale:
                _dropped(delivery)
        self._items = deque(kept)

    def stop(self) -> None:
        """Hand out nothing more; waiting takers get []."""
        self._stopped = True
        self._ready.set()


def _dropped(delivery: InboundDelivery) -> None:
    log.debug("amqp.delivery_dropped", queue=delivery.queue, delivery_tag=delivery.delivery_tag)


@dataclass(eq=False)
class Consumer:
    """One registered queue: where its deliveries go, its current channel, and (with a
    handler, see `Broker.consume`) the workers that hand them to it."""

    queue: str
    deliveries: Deliveries
    first_attempt: asyncio.Future[BaseException | None]
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    busy: set[asyncio.Task[Any]] = field(default_factory=set)
    chan: Chan | None = None
    cancelled: bool = False
    _tags: tuple[Any, ChannelTags] | None = None
    """The channel deliveries last came on, and its tags (`Settlement.tags`)."""

    @property
    def attached(self) -> bool:
        return self.chan is not None and self.chan.is_open

    def on_message(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        tag = int(method.delivery_tag)
        if self._tags is None or self._tags[0] is not channel:
            self._tags = (channel, ChannelTags())  # a new channel numbers its tags from 1
        # First, before anything can fail: an unsettled tag stops any `multiple` ack above it.
        settlement = Settlement(channel, tag, self._tags[1])
        headers = dict(props.headers or {})
        headers.pop(TAG_HEADER, None)
        self.deliveries.put(
            InboundDelivery(
                body=body,
                headers=headers,
                message_id=props.message_id,
                content_type=props.content_type,
                redelivered=bool(method.redelivered),
                routing_key=method.routing_key,
                exchange=method.exchange,
                queue=self.queue,
                delivery_tag=tag,
                _settlement=settlement,
            )
        )

    async def work(self, handler: Handler) -> None:
        """Hand deliveries to `handler` one at a time, until the deliveries stop."""
        me = asyncio.current_task()
        assert me is not None
        while taken := await self.deliveries.take(1):
            [delivery] = taken
            self.busy.add(me)
            try:
                await handler(delivery)
            except asyncio.CancelledError as exc:
                if me.cancelling():  # we are being stopped
                    raise
                self._handler_failed(delivery, exc)  # the handler cancelled itself
            except Exception as exc:  # noqa: BLE001 - a handler bug must not stop consumption
                self._handler_failed(delivery, exc)
            finally:
                self.busy.discard(me)

    def _handler_failed(self, delivery: InboundDelivery, exc: BaseException) -> None:
        # Only the type: an exception's text may quote the message (patient data).
        log.error(
            "amqp.handler_failed",
            queue=self.queue,
            message_id=delivery.message_id,
            delivery_tag=delivery.delivery_tag,
            redelivered=delivery.redelivered,
            error_type=type(exc).__name__,
        )
        delivery.nack(requeue=True)

    async def attach(
        self,
        conn: Any,
        prefetch: int,
        deadline: float,
        on_closed: Callable[[Consumer, Chan, BaseException], None],
        on_cancel: Callable[[Consumer, Chan, Any], None],
    ) -> None:
        """Open a channel with QoS `prefetch` and consume the queue on it."""
        chan = await open_channel(conn, functools.partial(on_closed, self), deadline)
        try:
            await chan.call("basic_qos", deadline, prefetch_count=prefetch)
            chan.channel.add_on_cancel_callback(guarded(functools.partial(on_cancel, self, chan)))
            await chan.call(
                "basic_consume",
                deadline,
                queue=self.queue,
                on_message_callback=guarded(self.on_message),
                auto_ack=False,
            )
        except BaseException:
            close_channel(chan)
            raise
        self.chan = chan
        log.info("amqp.consumer_attached", queue=self.queue, prefetch=prefetch)


async def stop_workers(regs: list[Consumer], grace: float) -> None:
    """Let busy handlers finish (up to `grace` seconds), cancel the rest, close the channels."""
    workers = [(reg, w) for reg in regs for w in reg.workers]
    busy = [w for reg, w in workers if w in reg.busy]
    for reg, w in workers:
        if w not in reg.busy:
            w.cancel()
    if busy and grace > 0:
        await asyncio.wait(busy, timeout=grace)
    for _, w in workers:
        w.cancel()
    await asyncio.gather(*(w for _, w in workers), return_exceptions=True)
    for reg in regs:
        if reg.chan is not None:
            close_channel(reg.chan)
