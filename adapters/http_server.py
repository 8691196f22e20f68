"""What every HTTP listener shares (FHIR intake, console, health and acknowledgement pages):
limits for slow and idle clients, and the security headers on every answer.

    accept ─► at `max_connections`? close the connection that has waited longest for its
              request head; if every connection is busy with a request, answer 503 and close
           ─► request line and headers within `header_timeout` of connecting (a slow trickle is
              closed; over TLS the handshake has as long again)
           ─► body within `body_timeout` of the headers (a read after that raises BodyTimeout:
              408, or the route's own answer)
           ─► keep-alive: `idle_timeout` without a complete new request closes the connection
           ─► every answer, raised errors, redirects and aiohttp's own 400 for a request it
              cannot parse included: CSP, frame-ancestors and X-Frame-Options, nosniff, no
              referrer, no-store; HSTS when served over TLS or behind a TLS-terminating proxy

`serve` starts an aiohttp application behind all of it; `read_body` reads a whole body within a
byte limit for routes that read it themselves (after checking who is sending).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

log = structlog.get_logger("carebridge.http")

DEFAULT_CSP = "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
_HSTS = "max-age=31536000"
_LINGER = 2.0
"""Seconds a refused request's unread body is drained, so the client can read the answer."""


@dataclass(frozen=True)
class HttpLimits:
    """What one slow, idle or greedy client may hold of a listener (seconds, connections)."""

    header_timeout: float = 10.0
    body_timeout: float = 60.0
    idle_timeout: float = 15.0
    max_connections: int = 256


class BodyTimeout(TimeoutError):
    """The request body did not arrive within `body_timeout` of its headers."""


class BodyTooLarge(Exception):
    """The request body is over the route's byte limit."""


def security_headers(*, csp: str = DEFAULT_CSP, hsts: bool = False) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
    if hsts:
        headers["Strict-Transport-Security"] = _HSTS
    return headers


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, chunked or with Content-Length; BodyTooLarge one byte over `limit`
    (before reading anything when Content-Length says so), BodyTimeout when it is too slow."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _body_deadline(timeout: float) -> Middleware:
    """Middleware: a body not fully received `timeout` seconds after the headers fails the
    reads still waiting for it (BodyTimeout), whoever reads it: 408 unless the route answers."""

    def expire(request: web.Request) -> None:
        if not request.content.is_eof():
            request.content.set_exception(BodyTimeout())

    @web.middleware
    async def body_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.body_exists or request.content.is_eof():
            return await handler(request)
        timer = asyncio.get_running_loop().call_later(timeout, expire, request)
        try:
            return await handler(request)
        except BodyTimeout:
            raise web.HTTPRequestTimeout(text="the request body was too slow") from None
        finally:
            timer.cancel()

    return body_deadline


def _stamp(headers: Mapping[str, str]) -> Callable[[web.Request, web.StreamResponse], Any]:
    async def stamp(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(headers)

    return stamp


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    limits: HttpLimits,
    ssl_context: ssl.SSLContext | None = None,
    behind_tls_proxy: bool = False,
    csp: str = DEFAULT_CSP,
) -> tuple[web.AppRunner, int]:
    """Serve `app` within `limits`, with the security headers on every answer; return the
    runner (``await runner.cleanup()`` stops it) and the bound port (port 0 picks one)."""
    headers = security_headers(csp=csp, hsts=ssl_context is not None or behind_tls_proxy)
    app.middlewares.insert(0, _body_deadline(limits.body_timeout))
    app.on_response_prepare.append(_stamp(headers))
    # What aiohttp's server gives each connection's handler, kept here too for `_Door`, which
    # makes the handlers itself (aiohttp keeps them private). An app's own `handler_args` would
    # not reach them: no app here has any. aiohttp adds `access_log_class` (unused with no
    # access log) and `debug` (asyncio's debug mode: tracebacks in 500 pages), left out on
    # purpose.
    handler_args: dict[str, Any] = {
        "access_log": None,
        "keepalive_timeout": limits.idle_timeout,
        "lingering_time": _LINGER,
    }
    runner = web.AppRunner(app, **handler_args)
    await runner.setup()
    doors = _Doors(limits, _busy_answer(headers), headers, handler_args)
    site = _GuardedSite(runner, host, port, doors, ssl_context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site.port


def _busy_answer(headers: Mapping[str, str]) -> bytes:
    body = b"busy: too many connections, try again shortly\n"
    lines = [
        "HTTP/1.1 503 Service Unavailable",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Retry-After: 5",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _GuardedSite(web.BaseSite):
    """A TCP site whose connections go through `_Door` (the cap and the header deadline)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, doors: _Doors,
                 ssl_context: ssl.SSLContext | None) -> None:  # fmt: skip
        super().__init__(runner, ssl_context=ssl_context, backlog=511)
        self._host, self._port = host, port
        self._doors = doors

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        sockets = getattr(self._server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else self._port

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # set up before the site is made (BaseSite checks)
        doors = self._doors

        def connection() -> _Door:
            return _Door(doors, server)

        self._server = await asyncio.get_running_loop().create_server(
            connection, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=True,
            ssl_handshake_timeout=doors.limits.header_timeout if self._ssl_context else None,
        )  # fmt: skip
        doors.name = f"{self._host}:{self.port}"


class _Doors:
    """The open connections of one listener, oldest first among those still without a request
    head: the ones a new connection may push out when the listener is full."""

    def __init__(self, limits: HttpLimits, busy: bytes, headers: Mapping[str, str],
                 handler_args: Mapping[str, Any]) -> None:  # fmt: skip
        self.limits = limits
        self.busy = busy
        self.headers = dict(headers)
        self.handler_args = dict(handler_args)
        """The keyword arguments aiohttp's `web.Server` makes each connection's handler with."""
        self.name = ""
        self._open: set[_Door] = set()
        self._waiting: dict[_Door, None] = {}
        self._full = False

    def admit(self, door: _Door) -> bool:
        if len(self._open) >= self.limits.max_connections:
            oldest = next(iter(self._waiting), None)
            if not self._full:
                self._full = True
                log.warning("http.listener_full", listener=self.name,
                            max_connections=self.limits.max_connections)  # fmt: skip
            if oldest is None:
                return False
            oldest.drop()
        self._open.add(door)
        self._waiting[door] = None
        return True

    def headed(self, door: _Door) -> None:
        self._waiting.pop(door, None)

    def gone(self, door: _Door) -> None:
        self._open.discard(door)
        self._waiting.pop(door, None)
        if self._full and len(self._open) < self.limits.max_connections // 2:
            self._full = False


class _StampedHandler(RequestHandler):
    """aiohttp's protocol handler, whose own error answers (the 400 for a request it cannot
    parse, written before any application sees the request) carry the security headers too."""

    __slots__ = ("_stamp",)
    _stamp: dict[str, str]

    @classmethod
    def of(cls, server: web.Server, doors: _Doors) -> _StampedHandler:
        # as web.Server() makes its handler, with the arguments the runner was given
        handler = cls(server, loop=asyncio.get_running_loop(), **doors.handler_args)
        handler._stamp = doors.headers
        return handler

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None,
                     ) -> web.StreamResponse:  # fmt: skip
        response = super().handle_error(request, status, exc, message)
        response.headers.update(self._stamp)
        return response


class _Door(asyncio.Protocol):
    """One connection: counted against the cap, closed if its first request head is slower
    than `header_timeout`, otherwise aiohttp's own protocol handler does the HTTP."""

    def __init__(self, doors: _Doors, server: web.Server) -> None:
        self._doors = doors
        self._server = server
        self._inner: RequestHandler | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._doors.admit(self):
            transport.write(self._doors.busy)
            transport.close()
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._doors.limits.header_timeout, self.drop)
        self._inner = _StampedHandler.of(self._server, self._doors)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self._timer is not None:
            seen = self._tail + data
            if b"\r\n\r\n" in seen or b"\n\n" in seen:  # the end of the request head
                self._timer.cancel()
                self._timer = None
                self._doors.headed(self)
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def drop(self) -> None:
        """Close a connection that has not sent its request head in time (or is pushed out)."""
        self._doors.gone(self)
        if self._transport is not None:
            self._transport.close()

    def eof_received(self) -> None:
        if self._inner is not None:
            self._inner.eof_received()  # aiohttp keeps the connection half-open: it answers

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._doors.gone(self)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
