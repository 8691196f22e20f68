"""What every destination type shares: what a renderer reads and makes, what a sender answers.

    render (pure): the delivery's care event + the destination's config -> `Rendered`
                   (payload bytes, headers, where to), or `Unrenderable` (why not)
    send (I/O):    move the bytes, classify the answer -> `SendResult`

A `SendResult` is delivered, transient (worth retrying) or permanent (retrying cannot help;
dead-letter it). An event that cannot be rendered is permanent for every destination type.
Transports are injected by the composition root: the senders hold the policy, the adapters
only move bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import ValidationError

from engine.store import ClaimedDelivery
from mappings.model import CareEvent

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


class Outgoing(Protocol):
    """What a renderer reads of a delivery (a `ClaimedDelivery`, or the console's preview)."""

    @property
    def event_id(self) -> str: ...

    @property
    def idempotency_key(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def care_setting(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def body(self) -> str:
        """The canonical care event JSON, as stored."""
        ...


@dataclass(frozen=True, slots=True)
class Rendered:
    """What one delivery puts on the wire."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    to: str = ""
    """Where it goes: a URL, an AMQP routing key; empty for MLLP (the link is the address)."""


class Unrenderable(Exception):
    """The event cannot be put in this destination's form; the message says why."""


def unrenderable(exc: Unrenderable) -> SendResult:
    """Retrying cannot make an event renderable: permanent, for every destination type."""
    return SendResult("permanent", detail=str(exc)[:DETAIL_LIMIT])


def care_event(body: str) -> CareEvent:
    """The care event of a delivery's JSON `body`, for renderers that read it (not the
    webhook's or the AMQP one's, which send the stored JSON as it is)."""
    try:
        return CareEvent.model_validate_json(body)
    except ValidationError as exc:  # the message would quote the content: count only
        raise Unrenderable(f"not a valid care event ({exc.error_count()} errors)") from None


def event_headers(delivery: Outgoing) -> dict[str, str]:
    return {
        "Idempotency-Key": delivery.idempotency_key,
        "X-Carebridge-Event-Id": delivery.event_id,
        "X-Carebridge-Event-Kind": delivery.kind,
        "X-Carebridge-Source": delivery.source,
    }
