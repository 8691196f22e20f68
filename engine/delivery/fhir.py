"""FHIR R4 destinations: the care event as a UK Core messaging Bundle (`$process-message`) or a
transaction of conditional writes, with a bearer or OAuth2 client-credentials token."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import orjson

from adapters.errors import DestinationError
from engine.config import FhirDestination
from engine.delivery.http import PostFn, answer_text, answered, post_rendered
from engine.delivery.sending import (
    DETAIL_LIMIT,
    Outgoing,
    Rendered,
    SendResult,
    Unrenderable,
    care_event,
    event_headers,
    unrenderable,
)
from engine.store import ClaimedDelivery
from mappings.errors import MappingError
from mappings.fhir.outbound import render_fhir_message
from mappings.fhir.transaction import to_transaction

FHIR_JSON = "application/fhir+json"


def render_fhir(
    delivery: Outgoing, config: FhirDestination, now: datetime | None = None
) -> Rendered:
    """The messaging Bundle for `$process-message`, or in transaction mode the transaction for
    the base URL; `now` is the Bundle's timestamp (the time of rendering if None). The access
    token is the sender's to add: it is a credential, not part of what is sent."""
    event = care_event(delivery.body)
    try:
        message = render_fhir_message(event, now=now)
        if config.mode == "transaction":
            url, payload = config.base_url.rstrip("/"), to_transaction(message)
        else:
            url, payload = f"{config.base_url.rstrip('/')}/$process-message", message
    except MappingError as exc:
        raise Unrenderable(f"cannot be sent as FHIR: {exc}") from exc
    headers = {**event_headers(delivery), "Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
    return Rendered(orjson.dumps(payload), headers, url)


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
        try:
            rendered = render_fhir(delivery, self._config)
        except Unrenderable as exc:
            return unrenderable(exc)
        try:
            token = await self._token()
        except DestinationError as exc:
            return SendResult("transient", detail=f"no access token: {exc}"[:DETAIL_LIMIT])
        if token is not None:
            headers = {**rendered.headers, "Authorization": f"Bearer {token}"}
            rendered = Rendered(rendered.body, headers, rendered.to)
        answer = await post_rendered(self._post, rendered, self._config.timeout.total_seconds())
        if isinstance(answer, SendResult):
            return answer
        if answer.status == 401 and self._oauth2 is not None:
            self._oauth2.invalidate()  # an expired or revoked token: fetch another and retry
            return answered(answer, answer_text(answer) or None, "transient")
        return answered(answer, answer_text(answer) or None)

    async def _token(self) -> str | None:
        if self._config.bearer_token:
            return self._config.bearer_token
        return await self._oauth2.token() if self._oauth2 is not None else None
