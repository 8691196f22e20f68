"""HTTP for every HTTP destination (webhook, FHIR, notification) and the alert webhooks: one
way to post, to read what a status means and what Retry-After asks, and to sign a request."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

from adapters.errors import DestinationError, DestinationTimeout
from engine.delivery.sending import DETAIL_LIMIT, Outcome, Rendered, SendResult

SIGNATURE_HEADER = "X-Carebridge-Signature"


class HttpAnswer(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def body(self) -> bytes: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


PostFn = Callable[[str, bytes, Mapping[str, str], float], Awaitable[HttpAnswer]]
"""POST (url, body, headers, deadline in seconds), as `adapters.webhook.WebhookClient.post`."""


def retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """HTTP Retry-After as seconds from now: delta-seconds or an HTTP date; None if absent."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


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


def signed(
    headers: dict[str, str], secret: str | None, timestamp: int, body: bytes
) -> dict[str, str]:
    """`headers` with the signature header added, given a secret: every signed request
    (webhooks, notifications, alert webhooks) is signed here."""
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return headers


async def post_rendered(
    post: PostFn, rendered: Rendered, deadline: float
) -> HttpAnswer | SendResult:
    """POST a rendered payload within `deadline` seconds; a destination not reached is already
    the (transient) result."""
    try:
        return await post(rendered.to, rendered.body, rendered.headers, deadline)
    except DestinationTimeout:
        return SendResult("transient", detail="no answer within the timeout")
    except DestinationError as exc:
        return SendResult("transient", detail=f"not reached: {exc}"[:DETAIL_LIMIT])


def answer_text(answer: HttpAnswer, limit: int = DETAIL_LIMIT) -> str:
    """The start of the destination's answer, kept with the attempt for operators."""
    return answer.body[:limit].decode("utf-8", "replace")


def answered(answer: HttpAnswer, detail: str | None, outcome: Outcome | None = None) -> SendResult:
    """The result of an HTTP answer: its status class (unless the sender knows better) and,
    for an answer not delivered, the Retry-After it asked for."""
    outcome = outcome or classify_http(answer.status)
    wait = None if outcome == "delivered" else retry_after(answer.headers)
    return SendResult(outcome, answer.status, detail, wait)


async def post_signed_json(
    post: PostFn,
    url: str,
    body: bytes,
    *,
    idempotency_key: str,
    secret: str | None,
    now: datetime,
    timeout: float = 10.0,  # noqa: ASYNC109 - the request's own deadline, passed to `post`
) -> HttpAnswer:
    """POST a JSON body with an Idempotency-Key and, given a secret, the HMAC signature."""
    headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
    return await post(url, body, signed(headers, secret, int(now.timestamp()), body), timeout)
