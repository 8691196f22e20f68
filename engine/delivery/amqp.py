"""RabbitMQ destinations: the canonical care event published to a topic exchange, confirmed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from adapters.errors import TransportError
from engine.config import AmqpDestination
from engine.delivery.sending import DETAIL_LIMIT, Outgoing, Rendered, SendResult, event_headers
from engine.store import ClaimedDelivery

PublishFn = Callable[[str, str, bytes, Mapping[str, str], str, bool], Awaitable[None]]
"""Publish (exchange, routing key, body, headers, message id, mandatory), confirmed."""


def render_amqp(delivery: Outgoing) -> Rendered:
    """The stored event JSON as it is, routed by `<kind>.<care setting>.<source>`."""
    routing_key = f"{delivery.kind}.{delivery.care_setting}.{delivery.source}"
    return Rendered(delivery.body.encode(), event_headers(delivery), routing_key)


class AmqpSender:
    """Publishes the canonical event to a topic exchange and waits for the broker's confirm."""

    def __init__(self, config: AmqpDestination, publish: PublishFn) -> None:
        self._config = config
        self._publish = publish

    async def send(self, delivery: ClaimedDelivery) -> SendResult:
        rendered = render_amqp(delivery)
        try:
            await self._publish(
                self._config.exchange,
                rendered.to,
                rendered.body,
                rendered.headers,
                delivery.idempotency_key,
                self._config.mandatory,
            )
        except TransportError as exc:
            return SendResult("transient", detail=f"{type(exc).__name__}: {exc}"[:DETAIL_LIMIT])
        return SendResult("delivered")
