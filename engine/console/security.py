"""The console's one gate: who is asking (bearer token or session cookie) and the CSRF check on
every POST. The security headers are set on every answer by the HTTP listener
(adapters.http_server), with the console's `CSP`.

A client's odd bytes (a non-ASCII cookie or token, a form that is not valid form data) are a
400, 401 or 403 like any other bad request, never an error of the console's own.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler, Middleware
from multidict import MultiDictProxy

from engine.console.config import ConsoleConfig
from engine.console.context import PRINCIPAL, Console, log
from engine.console.templates import Safe
from engine.store.console_search import BadFilter

_PUBLIC = frozenset({"/login", "/static/console.css", "/static/console.js"})
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""Scripts and fetches only from the console itself: the one script is the dashboard's chart
refresh (/static/console.js); nothing inline runs."""


def cookie_name(config: ConsoleConfig, name: str) -> str:
    """``__Host-<name>`` when browsers reach the console over HTTPS (a cookie so named must be
    ``Secure``, for path ``/`` and no domain), else plain `name` (plain HTTP, development)."""
    return f"__Host-{name}" if config.secure_cookies else name


def client_address(request: web.Request, config: ConsoleConfig) -> str:
    """The client's address: the peer's, or behind a trusted proxy the last ``X-Forwarded-For``
    entry that is not a trusted proxy. Always a valid IP address text, or ``unknown``."""
    peer = _ip(request.remote)
    if peer is None or peer not in config.trusted_proxies:
        return peer or "unknown"
    forwarded = request.headers.get("X-Forwarded-For", "")
    for entry in reversed(forwarded.split(",")):
        address = _ip(entry.strip())
        if address is None:
            break
        if address not in config.trusted_proxies:
            return address
    return peer


def _ip(text: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(text or ""))
    except ValueError:
        return None


Form = MultiDictProxy[str | bytes | bytearray | web.FileField]


async def form_of(request: web.Request) -> Form:
    """The POST's form fields; 400 if the body is not form data."""
    try:
        return await request.post()
    except (ValueError, LookupError, AssertionError, HttpProcessingError):  # bad bytes, charset
        raise web.HTTPBadRequest(text="the body is not valid form data") from None


def field(form: Form, name: str) -> str | None:
    """A text field of a form, None if absent or not text."""
    value = form.get(name)
    return value if isinstance(value, str) else None


def security_middleware(console: Console) -> Middleware:
    """The middleware that guards every route of `console`."""

    @web.middleware
    async def security(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await _guarded(console, request, handler)

    return security


async def _guarded(console: Console, request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in _PUBLIC:
        return await handler(request)
    now = datetime.now(UTC)
    auth = console.auth
    principal = auth.from_token(request.headers.get("Authorization")) or await auth.from_session(
        request.cookies.get(cookie_name(console.config, "cb_session")), now
    )
    if principal is None:
        if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
            raise web.HTTPSeeOther("/login")
        raise web.HTTPUnauthorized(text="sign in or give a bearer token")
    request[PRINCIPAL] = principal
    if request.method == "POST":
        offered = field(await form_of(request), "csrf") or request.headers.get("X-CSRF-Token")
        if not auth.csrf_ok(principal, offered):
            log.warning("console.csrf_refused", user=principal.name, path=request.path)
            raise web.HTTPForbidden(text="missing or wrong CSRF token")
    try:
        return await handler(request)
    except BadFilter as exc:
        return console.html(request, "Bad search", Safe(""), status=400, notice=str(exc))
