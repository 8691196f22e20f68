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


class FhirSender(Protocol):
    """Who is sending, from the request head (adapters.fhir_http.FhirSender)."""

    @property
    def source(self) -> str: ...

    @property
    def bearer_token(self) -> str | None: ...

    @property
    def client_cn(self) -> str | None: ...

    @property
    def peer(self) -> str: ...


class FhirRequest(FhirSender, Protocol):
    """What the HTTP listener hands over once the body is in (adapters.fhir_http.FhirRequest)."""

    @property
    def body(self) -> bytes: ...


def _same(offered: str, known: str) -> bool:
    # Constant time; any text compares (an odd byte in a header is a wrong token, not a crash).
    return hmac.compare_digest(offered.encode("utf-8", "surrogateescape"),
                               known.encode("utf-8", "surrogateescape"))  # fmt: skip


@dataclass(frozen=True)
class FhirSource:
    profile: FeedProfile
    tokens: tuple[str, ...] = ()
    client_names: frozenset[str] = frozenset()

    def admits(self, request: FhirSender) -> bool:
        token = request.bearer_token
        by_token = token is not None and any(_same(token, known) for known in self.tokens)
        return by_token or (
            request.client_cn is not None and request.client_cn in self.client_names
        )


class _TooLarge(MappingError):
    pass


def _answer(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Answer:
    return status, orjson.dumps(body), headers or {}


@dataclass(frozen=True)
class FhirGateway:
    sources: Mapping[str, FhirSource]
    publish: Publish
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    max_message_bytes: int | None = None
    """The intake's limit: a larger body would be rejected after a 202, so it is refused now
    (413), and still published so the message log keeps it as rejected for the same reason."""

    def refusal(self, sender: FhirSender) -> Answer | None:
        """The answer to a sender refused from the request head alone (unknown source, not
        authorised), so the listener never reads its body; None for one that may send."""
        source = self.sources.get(sender.source)
        if source is None:
            return _answer(404, outcome("error", "not-found", "no FHIR source of that name"))
        if not source.admits(sender):
            log.warning("fhir.not_authorised", source=sender.source, peer=sender.peer)
            return _answer(401, outcome("error", "security", "not authorised for this source"),
                           {"WWW-Authenticate": "Bearer"})  # fmt: skip
        return None

    async def handle(self, request: FhirRequest) -> Answer:
        refused = self.refusal(request)
        if refused is not None:
            return refused
        source = self.sources[request.source]
        error: MappingError | None = None
        event_id: str | None = None
        try:
            event_id = self._dry_run(request.body, source.profile)
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
            status = 413 if isinstance(error, _TooLarge) else http_status(error)
            return _answer(status, for_mapping_error(error))
        return _answer(202, outcome("information", "informational",
                                    f"accepted as care event {event_id}"))  # fmt: skip

    def _dry_run(self, body: bytes, profile: FeedProfile) -> str:
        """The care event id the body maps to; MappingError as the intake would reject it."""
        limit = self.max_message_bytes
        if limit is not None and len(body) > limit:
            raise _TooLarge(f"message is {len(body)} bytes, over the {limit}-byte limit",
                            code="104")  # fmt: skip
        if detect_format(body) is not MessageFormat.FHIR:
            raise MappingError("not FHIR JSON", location="line 1 column 1", code="100")
        return map_message(body, profile).event_id
