"""Webhook destinations: the canonical care event JSON, POSTed as it is stored, signed when a
secret is configured."""

from __future__ import annotations

import time
from collections.abc import Callable

from engine.config import WebhookDestination
from engine.delivery.http import PostFn, answer_text, answered, post_rendered, signed
from engine.delivery.sending import Outgoing, Rendered, SendResult, event_headers
from engine.store import ClaimedDelivery


def render_webhook(delivery: Outgoing, config: WebhookDestination, timestamp: int) -> Rendered:
    """The stored event JSON as it is (never parsed here), with the event's headers, signed
    at `timestamp` (unix seconds) when the destination has a secret."""
    body = delivery.body.encode()
    headers = {**config.headers, **event_headers(delivery), "Content-Type": "application/json"}
    return Rendered(body, signed(headers, config.secret, timestamp, body), config.url)


class WebhookSender:
    """POSTs the canonical care event JSON; honours Retry-After like every HTTP sender."""

    def __init__(
        self, config: WebhookDestination, post: PostFn, clock: Callable[[], float] = time.time
    ) -> None:
        self._config = config
        self._post = post
        self._clock = clock

    async def send(self, delivery: ClaimedDelivery) -> SendResult:
        rendered = render_webhook(delivery, self._config, int(self._clock()))
        answer = await post_rendered(self._post, rendered, self._config.timeout.total_seconds())
        if isinstance(answer, SendResult):
            return answer
        return answered(answer, answer_text(answer) or None)
