"""FHIR over HTTP in: `POST /fhir/{source}` (aiohttp). Bytes and credentials in, an answer out.

This adapter reads the request within limits (size, content type) and hands the engine a
`FhirRequest`; the engine decides everything else (who may send, whether the content is
valid, when to answer 202) and returns a `FhirAnswer`. The adapter never reads the payload.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import orjson
import structlog
from aiohttp import web

log = structlog.get_logger("carebridge.fhir_http")

FHIR_JSON = "application/fhir+json"
_ACCEPTED_TYPES = frozenset({"application/fhir+json", "application/json"})


@dataclass(frozen=True)
class FhirRequest:
    source: str
    body: bytes
    bearer_token: str | None
    client_cn: str | None
    peer: str


FhirAnswer = tuple[int, bytes, Mapping[str, str]]
"""(HTTP status, FHIR JSON body, extra headers), as the engine decides them."""

Handle = Callable[[FhirRequest], Awaitable[FhirAnswer]]


def _refusal(status: int, code: str, text: str) -> web.Response:
    # Transport-level refusals only (size, media type): the engine writes every other answer.
    body = {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}]}  # fmt: skip
    return web.Response(status=status, body=orjson.dumps(body), content_type=FHIR_JSON)


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
    def __init__(self, host: str, port: int, *, handle: Handle, max_body_bytes: int,
                 ssl_context: ssl.SSLContext | None = None) -> None:  # fmt: skip
        self._host = host
        self._requested_port = port
        self._handle = handle
        self._max = max_body_bytes
        self._ssl_context = ssl_context
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the listener is not started")
        return self._port

    async def start(self) -> None:
        app = web.Application(client_max_size=self._max)
        app.router.add_post("/fhir/{source}", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._requested_port,
                           ssl_context=self._ssl_context)  # fmt: skip
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # aiohttp keeps the bound port here
        self._port = int(sockets[0].getsockname()[1]) if sockets else self._requested_port
        log.info("fhir_http.listening", host=self._host, port=self._port,
                 tls=bool(self._ssl_context))  # fmt: skip

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _post(self, request: web.Request) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > self._max:
            return _refusal(413, "too-long", f"the body is over {self._max} bytes")
        if request.content_type not in _ACCEPTED_TYPES:
            return _refusal(415, "not-supported", "send application/fhir+json")
        body = await request.content.read(self._max + 1)
        if len(body) > self._max:
            return _refusal(413, "too-long", f"the body is over {self._max} bytes")
        authorization = request.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        answer = await self._handle(FhirRequest(
            source=request.match_info["source"],
            body=body,
            bearer_token=token.strip() or None if scheme.lower() == "bearer" else None,
            client_cn=_client_cn(request),
            peer=request.remote or "",
        ))  # fmt: skip
        status, body, headers = answer
        return web.Response(status=status, body=body, content_type=FHIR_JSON,
                            headers=dict(headers))  # fmt: skip
