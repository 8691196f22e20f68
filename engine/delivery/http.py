"""HTTP for every HTTP destination (webhook, FHIR, notification, alert webhooks): what a status
means, what Retry-After asks, and the one HMAC signature the receivers verify."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

from engine.delivery.sending import Outcome

SIGNATURE_HEADER = "X-Carebridge-Signature"


class HttpAnswer(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def body(self) -> bytes: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


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


PostFn = Callable[[str, bytes, Mapping[str, str], float], Awaitable[HttpAnswer]]


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
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, int(now.timestamp()), body)
    return await post(url, body, headers, timeout)
