"""The engine's small HTTP port: `/healthz` (the process is alive) and `/readyz` (it can work).

Ready means: connected to the broker, every source consumer attached, the store answering.
A container orchestrator restarts on failed liveness and stops routing on failed readiness.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from adapters.http_server import DEFAULT_CSP, HttpLimits
from adapters.http_server import serve as serve_http
from engine import notifications
from engine.config import Config, HttpConfig, ListenerLimits, NotificationDestination
from engine.openapi import document_route, http_document
from engine.store import Store

Readiness = Callable[[], Awaitable[dict[str, bool]]]


def health_app(readiness: Readiness, extra: Sequence[web.RouteDef] = ()) -> web.Application:
    """The app behind `http.port`; `extra` adds the notification links and follow-up list."""

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_request: web.Request) -> web.Response:
        checks = await readiness()
        ready = all(checks.values())
        return web.json_response(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status=200 if ready else 503,
        )

    app = web.Application(client_max_size=64 * 1024)  # small forms only: the ack pages'
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.add_routes(list(extra))
    return app


def http_routes(store: Store, config: Config) -> list[web.RouteDef]:
    """Everything on `http` besides the health checks: the notification links' pages, the
    follow-up list and the listener's OpenAPI document (``/openapi.json``)."""
    notifying = {d.name: d for d in config.destinations
                 if isinstance(d, NotificationDestination)}  # fmt: skip
    return [
        *notifications.routes(store, notifying),
        notifications.listing_route(store, config.follow_up),
        document_route(http_document()),
    ]


def http_limits(config: ListenerLimits) -> HttpLimits:
    """A listener's `limits` as the HTTP adapter takes them."""
    return HttpLimits(
        header_timeout=config.header_timeout.total_seconds(),
        body_timeout=config.body_timeout.total_seconds(),
        idle_timeout=config.idle_timeout.total_seconds(),
        max_connections=config.max_connections,
    )


PAGES_CSP = f"{DEFAULT_CSP}; script-src 'self'"
"""The listener's CSP: the default, plus the one script of the notification links' page
(``/notifications/link.js``, which moves the link's token from the fragment into the form)."""


async def serve(app: web.Application, config: HttpConfig) -> tuple[web.AppRunner, int]:
    """Start serving within the listener's limits, with the security headers on every answer;
    return the runner (to stop it) and the bound port (port 0 picks one)."""
    return await serve_http(app, config.host, config.port, limits=http_limits(config.limits),
                            behind_tls_proxy=config.behind_tls_proxy, csp=PAGES_CSP)  # fmt: skip
