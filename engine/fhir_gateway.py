"""FHIR over HTTP into the engine: authenticate, check, publish, confirm, then answer.

    POST /fhir/{source} ─► known source?                       404 OperationOutcome if not
                        ─► bearer token or client certificate  401 if neither is the source's
                        ─► content check: parse + validate + map as a dry run
                        ─► publish to carebridge.inbound, wait for the broker's confirm
                        ─► 202 │ 400/422 with an OperationOutcome naming the element │ 503

Invalid content is published too, so it is kept in the message log as rejected with the same
reason the sender sees. The same payloads published straight to RabbitMQ take the same path
from the queue on.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
import structlog

from adapters.errors import TransportError
from engine.store import StoreUnavailable
from mappings.errors import MappingError
from mappings.fhir.outcome import for_mapping_error, http_status, outcome
from mappings.inbound import detect_format, map_message
from mappings.model import MessageFormat
from mappings.profile import FeedProfile

log = structlog.get_logger("carebridge.fhir")

Publish = Callable[[str, bytes, Mapping[str, str]], Awaitable[None]]
Answer = tuple[int, bytes, Mapping[str, str]]


class FhirRequest(Protocol):
    """What the HTTP listener hands over (adapters.fhir_http.FhirRequest)."""

    @property
    def source(self) -> str: ...

    @property
    def body(self) -> bytes: ...

    @property
    def bearer_token(self) -> str | None: ...

    @property
    def client_cn(self) -> str | None: ...

    @property
    def peer(self) -> str: ...


@dataclass(frozen=True)
class FhirSource:
    profile: FeedProfile
    tokens: tuple[str, ...] = ()
    client_names: frozenset[str] = frozenset()

    def admits(self, request: FhirRequest) -> bool:
        token = request.bearer_token
        by_token = token is not None and any(
            hmac.compare_digest(token.encode(), known.encode()) for known in self.tokens
        )
        return by_token or (
            request.client_cn is not None and request.client_cn in self.client_names
        )


def _answer(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Answer:
    return status, orjson.dumps(body), headers or {}


@dataclass(frozen=True)
class FhirGateway:
    sources: Mapping[str, FhirSource]
    publish: Publish
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def handle(self, request: FhirRequest) -> Answer:
        source = self.sources.get(request.source)
        if source is None:
            return _answer(404, outcome("error", "not-found", "no FHIR source of that name"))
        if not source.admits(request):
            log.warning("fhir.not_authorised", source=request.source, peer=request.peer)
            return _answer(401, outcome("error", "security", "not authorised for this source"),
                           {"WWW-Authenticate": "Bearer"})  # fmt: skip
        error: MappingError | None = None
        event_id: str | None = None
        try:
            if detect_format(request.body) is not MessageFormat.FHIR:
                raise MappingError("not FHIR JSON", location="line 1 column 1", code="100")
            event_id = map_message(request.body, source.profile).event_id
        except MappingError as exc:
            error = exc
        try:
            await self.publish(request.source, request.body,
                               {"source": request.source, "via": "fhir-http",
                                "received_at": self.clock().isoformat()})  # fmt: skip
        except (TransportError, StoreUnavailable) as exc:
            log.warning("fhir.not_accepted", source=request.source, error=type(exc).__name__)
            return _answer(503, outcome("error", "transient",
                                        "the engine cannot accept messages now; send again"),
                           {"Retry-After": "5"})  # fmt: skip
        if error is not None:
            log.info("fhir.content_error", source=request.source, code=error.code,
                     location=error.location)  # fmt: skip
            return _answer(http_status(error), for_mapping_error(error))
        return _answer(202, outcome("information", "informational",
                                    f"accepted as care event {event_id}"))  # fmt: skip
