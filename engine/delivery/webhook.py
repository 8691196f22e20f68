"""Webhook destinations: the canonical care event JSON, POSTed as it is stored, signed when a
secret is configured."""

from __future__ import annotations

import time
from collections.abc import Callable

from adapters.errors import DestinationError, DestinationTimeout
from engine.config import WebhookDestination
from engine.delivery.http import SIGNATURE_HEADER, PostFn, classify_http, sign
from engine.delivery.sending import DETAIL_LIMIT, SendResult, event_headers
from engine.store import ClaimedDelivery


class WebhookSender:
    """POSTs the canonical care event JSON, signed when a secret is configured."""

    def __init__(
        self, config: WebhookDestination, post: PostFn, clock: Callable[[], float] = time.time
    ) -> None:
        self._config = config
        self._post = post
        self._clock = clock

    async def send(self, delivery: ClaimedDelivery) -> SendResult:
        body = delivery.body.encode()
        headers = {
            **self._config.headers,
            **event_headers(delivery),
            "Content-Type": "application/json",
        }
        if self._config.secret:
            headers[SIGNATURE_HEADER] = sign(self._config.secret, int(self._clock()), body)
        try:
            answer = await self._post(
                self._config.url, body, headers, self._config.timeout.total_seconds()
            )
        except DestinationTimeout:
            return SendResult("transient", detail="no answer within the timeout")
        except DestinationError as exc:
            return SendResult("transient", detail=f"not reached: {exc}"[:DETAIL_LIMIT])
        detail = answer.body[:DETAIL_LIMIT].decode("utf-8", "replace") or None
        return SendResult(classify_http(answer.status), answer.status, detail)
