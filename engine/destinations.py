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
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal, Protocol

import orjson

from adapters.errors import DestinationError, DestinationTimeout, TransportError
from engine.config import AmqpDestination, FhirDestination, MllpDestination, WebhookDestination
from engine.store import ClaimedDelivery
from mappings.errors import MappingError
from mappings.fhir.outbound import render_fhir_message
from mappings.fhir.transaction import to_transaction
from mappings.hl7v2.ack import parse_ack
from mappings.hl7v2.outbound import render_adt
from mappings.model import CareEvent

Outcome = Literal["delivered", "transient", "permanent"]
SIGNATURE_HEADER = "X-Carebridge-Signature"
_DETAIL_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    status_code: int | None = None
    detail: str | None = None
    retry_after: float | None = None
    """Seconds the destination asked to be left alone (HTTP Retry-After)."""


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


class MllpLink(Protocol):
    """One MLLP connection to a destination (adapters.mllp.MllpClient)."""

    async def send(self, message: bytes) -> bytes: ...

    async def close(self) -> None: ...


def mllp_control_id(idempotency_key: str) -> str:
    """A stable MSH-10 for one delivery, within ITK's 20 characters: every attempt of the same
    delivery carries the same id, so the receiver can drop a repeat."""
    return "CB" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:18].upper()


class MllpSender:
    """Renders the care event as HL7v2 ADT, sends it over MLLP and reads the ACK.

    AA/CA is delivered. AE/CE, AR/CR and silence (timeout, failed connection) are classified by
    the destination's `ack` policy. An ACK whose MSA-2 is not this message's control id means
    the link is out of step: the connection is dropped and the delivery retried.
    """

    def __init__(self, config: MllpDestination, link: MllpLink,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:  # fmt: skip
        self._config = config
        self._link = link
        self._clock = clock

    async def send(self, delivery: ClaimedDelivery) -> SendResult:
        config = self._config
        control_id = mllp_control_id(delivery.idempotency_key)
        try:
            message = render_adt(
                CareEvent.model_validate_json(delivery.body), control_id=control_id,
                sending_app=config.sending_application, sending_facility=config.sending_facility,
                receiving_app=config.receiving_application,
                receiving_facility=config.receiving_facility, now=self._clock(),
                version=config.version,
            )  # fmt: skip
        except MappingError as exc:
            return SendResult("permanent", detail=f"cannot be sent as HL7v2: {exc}")
        try:
            answer = await self._link.send(message)
        except DestinationTimeout:
            return SendResult(config.ack.silence, detail="no ACK within the timeout")
        except DestinationError as exc:
            return SendResult(config.ack.silence, detail=f"not reached: {exc}"[:_DETAIL_LIMIT])
        try:
            ack = parse_ack(answer)
        except MappingError as exc:
            await self._link.close()
            return SendResult("transient", detail=f"unreadable answer: {exc}"[:_DETAIL_LIMIT])
        if ack.control_id != control_id:
            await self._link.close()
            return SendResult("transient", detail="ACK names another message (MSA-2 mismatch)")
        detail = f"{ack.code}: {ack.text}"[:_DETAIL_LIMIT] if ack.text else ack.code
        if ack.code in ("AA", "CA"):
            return SendResult("delivered", detail=detail)
        return SendResult(config.ack.AE if ack.code in ("AE", "CE") else config.ack.AR,
                          detail=detail)  # fmt: skip


class TokenSource(Protocol):
    async def token(self) -> str: ...

    def invalidate(self) -> None: ...


class FhirSender:
    """Sends the care event as a UK Core FHIR R4 messaging Bundle so a retry never duplicates:
    `$process-message` (the server drops a Bundle identifier it has processed) or a transaction
    of identifier-conditional creates and updates. 429, 5xx and timeouts are transient, honouring
    Retry-After; any other 4xx is permanent, with the server's OperationOutcome kept."""

    def __init__(self, config: FhirDestination, post: PostFn,
                 oauth2: TokenSource | None = None) -> None:  # fmt: skip
        self._config = config
        self._post = post
        self._oauth2 = oauth2

    async def send(self, delivery: ClaimedDelivery) -> SendResult:
        config = self._config
        message = render_fhir_message(CareEvent.model_validate_json(delivery.body))
        if config.mode == "transaction":
            url, payload = config.base_url.rstrip("/"), to_transaction(message)
        else:
            url, payload = f"{config.base_url.rstrip('/')}/$process-message", message
        headers = {**event_headers(delivery), "Content-Type": "application/fhir+json",
                   "Accept": "application/fhir+json"}  # fmt: skip
        if config.bearer_token:
            headers["Authorization"] = f"Bearer {config.bearer_token}"
        elif self._oauth2 is not None:
            try:
                headers["Authorization"] = f"Bearer {await self._oauth2.token()}"
            except DestinationError as exc:
                return SendResult("transient", detail=f"no access token: {exc}"[:_DETAIL_LIMIT])
        try:
            answer = await self._post(url, orjson.dumps(payload), headers,
                                      config.timeout.total_seconds())  # fmt: skip
        except DestinationTimeout:
            return SendResult("transient", detail="no answer within the timeout")
        except DestinationError as exc:
            return SendResult("transient", detail=f"not reached: {exc}"[:_DETAIL_LIMIT])
        detail = answer.body[:_DETAIL_LIMIT].decode("utf-8", "replace") or None
        outcome = classify_http(answer.status)
        if answer.status == 401 and self._oauth2 is not None:
            self._oauth2.invalidate()  # an expired or revoked token: fetch another and retry
            outcome = "transient"
        return SendResult(outcome, answer.status, detail, retry_after(answer.headers))


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
