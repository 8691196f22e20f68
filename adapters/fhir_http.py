"""FHIR over HTTP in: `POST /fhir/{source}` (aiohttp). Bytes and credentials in, an answer out.

    request head ─► credentials well formed? (400)  ─► the engine admits the sender? (its 401/404)
                 ─► Content-Length over the limit? (413)  ─► media type (415)
                 ─► the whole body, chunked or not, within the limit (413) and on time (408)
                 ─► the engine's answer

The sender is checked before a byte of the body is read (with `Expect: 100-continue` before the
client is told to send it), and the engine sees a body only once it has arrived whole: never a
truncated copy. This adapter reads the request within limits and hands the engine a
`FhirRequest`; the engine decides everything else (who may send, whether the content is valid,
when to answer 202) and returns a `FhirAnswer`. The adapter never reads the payload. The
listener's own refusals (no such path, a method other than POST) are OperationOutcomes too;
`extra` routes (the engine's OpenAPI document) are served beside the intake.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import orjson
import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from adapters.http_server import BodyTimeout, BodyTooLarge, HttpLimits, read_body, serve

log = structlog.get_logger("carebridge.fhir_http")

FHIR_JSON = "application/fhir+json"
_ACCEPTED_TYPES = frozenset({"application/fhir+json", "application/json"})


_TOKEN = re.compile(r"[\x21-\x7e]+")
"""A bearer token as sent: visible ASCII (RFC 6750's b64token, and any token an operator set)."""


@dataclass(frozen=True)
class FhirSender:
    """Who is sending, from the request head alone: checked before the body is read."""

    source: str
    bearer_token: str | None
    client_cn: str | None
    peer: str


@dataclass(frozen=True)
class FhirRequest(FhirSender):
    body: bytes


FhirAnswer = tuple[int, bytes, Mapping[str, str]]
"""(HTTP status, FHIR JSON body, extra headers), as the engine decides them."""

Admit = Callable[[FhirSender], FhirAnswer | None]
"""The engine's answer refusing a sender (unknown source, not authorised), or None to go on."""
Handle = Callable[[FhirRequest], Awaitable[FhirAnswer]]


class _Malformed(Exception):
    pass


def _refusal(status: int, code: str, text: str) -> web.Response:
    # Transport-level refusals only (credentials' form, size, media type, time): the engine
    # writes every other answer. The connection closes: the body may still be on its way.
    body = {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}]}  # fmt: skip
    response = web.Response(status=status, body=orjson.dumps(body), content_type=FHIR_JSON)
    response.force_close()
    return response


_ISSUE_CODES = {404: "not-found", 405: "not-supported", 408: "timeout", 413: "too-long"}


@web.middleware
async def _outcomes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The listener's own refusals (no such path, a method other than POST) as FHIR senders
    hear every other answer: an OperationOutcome, not aiohttp's text/plain page."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _refusal(exc.status, _ISSUE_CODES.get(exc.status, "processing"), exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response


def _answer(answer: FhirAnswer) -> web.Response:
    status, body, headers = answer
    return web.Response(status=status, body=body, content_type=FHIR_JSON, headers=dict(headers))


def _bearer_token(request: web.Request) -> str | None:
    """The bearer token, None without one (another scheme, or none); _Malformed for a header
    that is not visible ASCII or a token with spaces or control characters in it."""
    authorization = request.headers.get("Authorization")
    if authorization is None:
        return None
    if not authorization.isascii():
        raise _Malformed
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    if not _TOKEN.fullmatch(token):
        raise _Malformed
    return token


def _client_cn(request: web.Request) -> str | None:
    transport = request.transport
    peercert = transport.get_extra_info("peercert") if transport is not None else None
    if not peercert:
        return None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class FhirListener:
    def __init__(self, host: str, port: int, *, admit: Admit, handle: Handle,
                 max_body_bytes: int, limits: HttpLimits | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 behind_tls_proxy: bool = False,
                 extra: Sequence[web.RouteDef] = ()) -> None:  # fmt: skip
        """`extra`: more routes on the listener (the engine's OpenAPI document)."""
        self._host = host
        self._requested_port = port
        self._admit = admit
        self._handle = handle
        self._max = max_body_bytes
        self._limits = limits or HttpLimits()
        self._ssl_context = ssl_context
        self._behind_tls_proxy = behind_tls_proxy
        self._extra = tuple(extra)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the listener is not started")
        return self._port

    def app(self) -> web.Application:
        """The listener's application: `POST /fhir/{source}` and the `extra` routes."""
        app = web.Application(client_max_size=self._max, middlewares=[_outcomes])
        app.router.add_post("/fhir/{source}", self._post, expect_handler=self._expect)
        app.add_routes(self._extra)
        return app

    async def start(self) -> None:
        self._runner, self._port = await serve(
            self.app(), self._host, self._requested_port, limits=self._limits,
            ssl_context=self._ssl_context, behind_tls_proxy=self._behind_tls_proxy,
        )  # fmt: skip
        log.info("fhir_http.listening", host=self._host, port=self._port,
                 tls=bool(self._ssl_context))  # fmt: skip

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _check_head(self, request: web.Request) -> FhirSender | web.Response:
        """Everything that can be refused before the body is read, in the order a sender
        should hear it: its credentials first, then the size it announced and the media type."""
        try:
            token = _bearer_token(request)
        except _Malformed:
            log.warning("fhir_http.malformed_credentials", peer=request.remote or "")
            return _refusal(400, "security", "the Authorization header is not a bearer token")
        sender = FhirSender(source=request.match_info["source"], bearer_token=token,
                            client_cn=_client_cn(request), peer=request.remote or "")  # fmt: skip
        refused = self._admit(sender)
        if refused is not None:
            response = _answer(refused)
            response.force_close()
            return response
        if request.content_length is not None and request.content_length > self._max:
            return _refusal(413, "too-long", f"the body is over {self._max} bytes")
        if request.content_type not in _ACCEPTED_TYPES:
            return _refusal(415, "not-supported", "send application/fhir+json")
        return sender

    async def _expect(self, request: web.Request) -> web.StreamResponse | None:
        """`Expect: 100-continue`: the client hears a refusal instead of being asked for the
        body."""
        checked = self._check_head(request)
        if isinstance(checked, web.StreamResponse):
            return checked
        if request.headers.get("Expect", "").lower() != "100-continue":
            return _refusal(417, "not-supported", "only Expect: 100-continue is understood")
        if request.version >= (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the answer proper has not started
        return None

    async def _post(self, request: web.Request) -> web.StreamResponse:
        checked = self._check_head(request)
        if isinstance(checked, web.StreamResponse):
            return checked
        try:
            body = await read_body(request, self._max)
        except BodyTooLarge:
            log.info("fhir_http.too_large", source=checked.source, limit=self._max)
            return _refusal(413, "too-long", f"the body is over {self._max} bytes")
        except BodyTimeout:
            log.info("fhir_http.body_too_slow", source=checked.source)
            return _refusal(408, "timeout", "the body did not arrive in time; send it again")
        except (ConnectionError, HttpProcessingError):
            log.info("fhir_http.body_cut_short", source=checked.source)
            return _refusal(400, "incomplete", "the body was cut short or badly framed")
        return _answer(await self._handle(FhirRequest(
            source=checked.source, bearer_token=checked.bearer_token,
            client_cn=checked.client_cn, peer=checked.peer, body=body,
        )))  # fmt: skip
