"""The console's one gate: who is asking (bearer token or signed session cookie), the CSRF
check on every POST, and the security headers on every answer."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from engine.console.context import PRINCIPAL, Console, log
from engine.console.templates import Safe
from engine.store.console_search import BadFilter

SESSION_COOKIE = "cb_session"
_PUBLIC = frozenset({"/login", "/static/console.css"})
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def security_middleware(console: Console) -> Middleware:
    """The middleware that guards every route of `console` and sets the security headers."""

    @web.middleware
    async def security(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await _guarded(console, request, handler)
        response.headers.update(_HEADERS)
        return response

    return security


async def _guarded(console: Console, request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in _PUBLIC:
        return await handler(request)
    now = datetime.now(UTC)
    auth = console.auth
    principal = auth.from_token(request.headers.get("Authorization")) or auth.from_session(
        request.cookies.get(SESSION_COOKIE), now
    )
    if principal is None:
        if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
            raise web.HTTPSeeOther("/login")
        raise web.HTTPUnauthorized(text="sign in or give a bearer token")
    request[PRINCIPAL] = principal
    if request.method == "POST":
        form = await request.post()
        offered = form.get("csrf")
        if not auth.csrf_ok(principal, offered if isinstance(offered, str) else None):
            log.warning("console.csrf_refused", user=principal.name, path=request.path)
            raise web.HTTPForbidden(text="missing or wrong CSRF token")
    try:
        return await handler(request)
    except BadFilter as exc:
        return console.html(request, "Bad search", Safe(""), status=400, notice=str(exc))
