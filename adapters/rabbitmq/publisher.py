"""Publishing with confirms on one channel in confirm mode.

Each publish carries its confirm tag in a header, so a basic.return (sent just before the
basic.ack of the same message) is matched to its publish exactly. When the channel is lost,
every pending confirm fails (BrokerUnavailable, or PublishFailed when the broker closed the
channel over something it refused) so the caller republishes.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions

from adapters.errors import (
    BrokerUnavailable,
    ConfirmTimeout,
    PublishFailed,
    PublishNacked,
    PublishReturned,
)
from adapters.rabbitmq.channel import Chan, describe, guarded, log, open_channel

HeaderValue = str | int | float | bool | bytes | None

# Consumers never see this header: it is dropped from InboundDelivery.headers.
TAG_HEADER = "x-carebridge-confirm-tag"


@dataclass(eq=False)
class _Pending:
    future: asyncio.Future[None]
    returned: str | None = None


class ConfirmChannel:
    """One publisher channel in confirm mode and the confirms it still waits for."""

    def __init__(self, chan: Chan) -> None:
        self.chan = chan
        self.published = 0  # the last delivery tag used
        self.pending: dict[int, _Pending] = {}

    @property
    def is_open(self) -> bool:
        return self.chan.is_open

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        headers: Mapping[str, HeaderValue] | None,
        message_id: str | None,
        content_type: str | None,
        deadline: float,
        mandatory: bool,
    ) -> None:
        """Publish persistently and wait for the confirm; see `Broker.publish`."""
        tag = self.published + 1
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            headers={**(headers or {}), TAG_HEADER: tag},
            message_id=message_id,
            content_type=content_type,
        )
        try:
            self.chan.channel.basic_publish(
                exchange, routing_key, body, properties, mandatory=mandatory
            )
        except (pika.exceptions.ProtocolSyntaxError, pika.exceptions.ShortStringTooLong) as exc:
            raise ValueError(f"message cannot be encoded: {describe(exc)}") from exc
        except pika.exceptions.AMQPError as exc:
            raise BrokerUnavailable(f"publish failed: {describe(exc)}") from exc
        self.published = tag
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending[tag] = _Pending(confirmed)
        try:
            async with asyncio.timeout(deadline):
                await confirmed
        except TimeoutError:
            raise ConfirmTimeout(
                f"no confirm within {deadline}s (exchange={exchange!r}, "
                f"routing_key={routing_key!r}, message_id={message_id!r})"
            ) from None
        finally:
            self.pending.pop(tag, None)

    def fail_pending(self, error: Callable[[], Exception]) -> None:
        pending, self.pending = self.pending, {}
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(error())

    def lost(self, reason: BaseException) -> None:
        """The channel closed: fail every pending confirm so its publish is retried."""
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker):
            # The broker refused something on this channel (e.g. 404 no such exchange).
            log.warning("amqp.channel_closed", channel="publish", reason=describe(reason))
            self.fail_pending(lambda: PublishFailed(f"channel closed: {reason}"))
        else:
            self.fail_pending(lambda: BrokerUnavailable(f"lost: {describe(reason)}"))

    def on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        last = int(method.delivery_tag)
        if method.multiple:
            tags = list(itertools.takewhile(lambda t: t <= last, self.pending))
        else:
            tags = [last] if last in self.pending else []
        for tag in tags:
            p = self.pending.pop(tag)
            if p.future.done():
                continue
            if not acked:
                p.future.set_exception(PublishNacked(f"broker nacked delivery tag {tag}"))
            elif p.returned is not None:
                p.future.set_exception(PublishReturned(p.returned))
            else:
                p.future.set_result(None)

    def on_return(self, _channel: Any, method: Any, props: Any, _body: bytes) -> None:
        tag = (props.headers or {}).get(TAG_HEADER)
        reply = (
            f"unroutable: {method.reply_code} {method.reply_text} "
            f"(exchange={method.exchange!r}, routing_key={method.routing_key!r})"
        )
        log.warning(
            "amqp.publish_returned",
            exchange=method.exchange,
            routing_key=method.routing_key,
            reply_code=method.reply_code,
            message_id=props.message_id,
        )
        pending = self.pending.get(tag) if isinstance(tag, int) else None
        if pending is not None:
            pending.returned = reply


async def open_publisher(conn: Any, deadline: float, on_lost: Callable[[], None]) -> ConfirmChannel:
    """A new channel in confirm mode; when it closes, its pending confirms fail and `on_lost`
    runs (for the supervisor to open another)."""
    holder: list[ConfirmChannel] = []

    def on_closed(_chan: Chan, reason: BaseException) -> None:
        for pub in holder:
            pub.lost(reason)
        on_lost()

    chan = await open_channel(conn, on_closed, deadline)
    pub = ConfirmChannel(chan)
    holder.append(pub)
    chan.channel.add_on_return_callback(guarded(pub.on_return))
    await chan.call("confirm_delivery", deadline, ack_nack_callback=guarded(pub.on_confirm))
    return pub
