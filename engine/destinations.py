"""Destinations: render a claimed delivery, hand it to a transport, classify the answer.

Each sender turns one delivery into one `SendResult`: delivered, transient (worth retrying) or
permanent (retrying cannot help; dead-letter it). Transports are injected by the composition
root, so this module holds the policy and the adapters only move bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from adapters.errors import DestinationError, DestinationTimeout, TransportError
from engine.config import AmqpDestination, WebhookDestination
from engine.store import ClaimedDelivery

Outcome = Literal["delivered", "transient", "permanent"]
SIGNATURE_HEADER = "X-Carebridge-Signature"
_DETAIL_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    status_code: int | None = None
    detail: str | None = None


class HttpAnswer(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def body(self) -> bytes: ...


PostFn = Callable[[str, bytes, Mapping[str, str], float], Awaitable[HttpAnswer]]
PublishFn = Callable[[str, str, bytes, Mapping[str, str], str, bool], Awaitable[None]]


class Sender(Protocol):
    async def send(self, delivery: ClaimedDelivery) -> SendResult: ...


def classify_http(status: int) -> Outcome:
    """2xx delivered; timeouts, throttling and server errors transient; other 4xx permanent."""
    if 200 <= status < 300:
        return "delivered"
    if status in (408, 425, 429) or status >= 500:
        return "transient"
    return "permanent"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``: the receiver recomputes it
    with the shared secret and rejects stale timestamps, so a captured request cannot be
    replayed later."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def event_headers(delivery: ClaimedDelivery) -> dict[str, str]:
    return {
        "Idempotency-Key": delivery.idempotency_key,
        "X-Carebridge-Event-Id": delivery.event_id,
        "X-Carebridge-Event-Kind": delivery.kind,
        "X-Carebridge-Source": delivery.source,
    }


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
            return SendResult("transient", detail=f"not reached: {exc}"[:_DETAIL_LIMIT])
        detail = answer.body[:_DETAIL_LIMIT].decode("utf-8", "replace") or None
        return SendResult(classify_http(answer.status), answer.status, detail)


class AmqpSender:
    """Publishes the canonical event to a topic exchange and waits for the broker's confirm."""

    def __init__(self, config: AmqpDestination, publish: PublishFn) -> None:
        self._config = config
        self._publish = publish

    async def send(self, delivery: ClaimedDelivery) -> SendResult:
        routing_key = f"{delivery.kind}.{delivery.care_setting}.{delivery.source}"
        try:
            await self._publish(
                self._config.exchange,
                routing_key,
                delivery.body.encode(),
                event_headers(delivery),
                delivery.idempotency_key,
                self._config.mandatory,
            )
        except TransportError as exc:
            return SendResult("transient", detail=f"{type(exc).__name__}: {exc}"[:_DETAIL_LIMIT])
        return SendResult("delivered")
