"""What every sender shares: the answer it gives the loop, its protocol, the event's headers.

Each sender turns one delivery into one `SendResult`: delivered, transient (worth retrying) or
permanent (retrying cannot help; dead-letter it). Transports are injected by the composition
root, so the senders hold the policy and the adapters only move bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from engine.store import ClaimedDelivery

Outcome = Literal["delivered", "transient", "permanent"]
DETAIL_LIMIT = 1000
"""Characters of a destination's answer kept with an attempt."""


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    status_code: int | None = None
    detail: str | None = None
    retry_after: float | None = None
    """Seconds the destination asked to be left alone (HTTP Retry-After)."""


class Sender(Protocol):
    async def send(self, delivery: ClaimedDelivery) -> SendResult: ...


def event_headers(delivery: ClaimedDelivery) -> dict[str, str]:
    return {
        "Idempotency-Key": delivery.idempotency_key,
        "X-Carebridge-Event-Id": delivery.event_id,
        "X-Carebridge-Event-Kind": delivery.kind,
        "X-Carebridge-Source": delivery.source,
    }
