"""FHIR R4 destinations: the care event as a UK Core messaging Bundle (`$process-message`) or a
transaction of conditional writes, with a bearer or OAuth2 client-credentials token."""

from __future__ import annotations

from typing import Protocol

import orjson

from adapters.errors import DestinationError, DestinationTimeout
from engine.config import FhirDestination
from engine.delivery.http import PostFn, classify_http, retry_after
from engine.delivery.sending import DETAIL_LIMIT, SendResult, event_headers
from engine.store import ClaimedDelivery
from mappings.fhir.outbound import render_fhir_message
from mappings.fhir.transaction import to_transaction
from mappings.model import CareEvent


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
                return SendResult("transient", detail=f"no access token: {exc}"[:DETAIL_LIMIT])
        try:
            answer = await self._post(url, orjson.dumps(payload), headers,
                                      config.timeout.total_seconds())  # fmt: skip
        except DestinationTimeout:
            return SendResult("transient", detail="no answer within the timeout")
        except DestinationError as exc:
            return SendResult("transient", detail=f"not reached: {exc}"[:DETAIL_LIMIT])
        detail = answer.body[:DETAIL_LIMIT].decode("utf-8", "replace") or None
        outcome = classify_http(answer.status)
        if answer.status == 401 and self._oauth2 is not None:
            self._oauth2.invalidate()  # an expired or revoked token: fetch another and retry
            outcome = "transient"
        return SendResult(outcome, answer.status, detail, retry_after(answer.headers))
