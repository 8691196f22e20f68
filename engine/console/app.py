"""The operator console: aiohttp routes over the store, on a port of its own.

    request ─► security middleware (who: bearer token or signed session cookie; CSRF on every
               POST; security headers) ─► route (role check ─► queries / actions ─► audit)
            ─► views (escaped HTML from view models)

Audited: every page showing a payload, every patient search, every replay, resolve, hold and
release (in the same transaction as the change). Logs carry user names and row ids, never
patient data. The routes live in `engine.console.routes`, one module per group of pages; this
module maps the URLs to them and serves the console.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from aiohttp import web

from adapters.http_server import serve
from engine.config import Config
from engine.console.config import ConsoleConfig
from engine.console.context import Console, log
from engine.console.routes.actions import Actions
from engine.console.routes.follow_ups import FollowUps
from engine.console.routes.messages import Messages
from engine.console.routes.overview import Overview, script
from engine.console.routes.patients import Patients
from engine.console.routes.sessions import Sessions
from engine.console.routes.signin import SignIn
from engine.console.security import CSP, security_middleware
from engine.console.views import Renderer
from engine.health import http_limits
from engine.store import Store


def console_app(
    store: Store,
    config: ConsoleConfig,
    *,
    on_replay: Callable[[], None],
    render: Renderer | None = None,
    engine_config: Config | None = None,
) -> web.Application:
    if render is None and engine_config is not None:
        from engine.console.rendering import renderer  # late: only with a config

        render = renderer(engine_config)
    console = Console(store, config, on_replay, render, engine_config)
    app = web.Application(middlewares=[security_middleware(console)], client_max_size=64 * 1024)
    signin, messages, overview, acts = (
        SignIn(console),
        Messages(console),
        Overview(console),
        Actions(console),
    )
    app.router.add_get("/login", signin.form)
    app.router.add_post("/login", signin.login)
    app.router.add_post("/logout", signin.logout)
    app.router.add_get("/static/console.css", signin.style)
    app.router.add_get("/", messages.home)
    app.router.add_get("/messages", messages.search)
    app.router.add_get(r"/messages/{id:\d+}", messages.message)
    app.router.add_post(r"/messages/{id:\d+}/{verb:replay|resolve}", acts.message)
    app.router.add_post(r"/messages/{id:\d+}/remap", acts.remap)
    app.router.add_post(r"/deliveries/{id:\d+}/{verb:replay|resolve|hold|release}", acts.delivery)
    app.router.add_get("/patients", Patients(console).journey)
    follow_ups = FollowUps(console)
    app.router.add_get("/follow-ups", follow_ups.page)
    app.router.add_get("/follow-ups.csv", follow_ups.csv)
    app.router.add_get("/dead-letters", overview.dead_letters)
    app.router.add_post("/dead-letters/replay", acts.bulk_replay)
    app.router.add_post("/dead-letters/replay-group", acts.group_replay)
    app.router.add_get("/dashboard", overview.dashboard)
    app.router.add_get("/dashboard/charts", overview.charts)
    app.router.add_get("/static/console.js", script)
    app.router.add_get("/mesh/inbox", overview.mesh_inbox)
    app.router.add_get("/metrics", overview.prometheus)
    app.router.add_get("/audit", overview.audit_log)
    sessions = Sessions(console)
    app.router.add_get("/sessions", sessions.listing)
    app.router.add_post(r"/sessions/{id:\d+}/revoke", sessions.revoke)
    app.router.add_post("/sessions/revoke-user", sessions.revoke_user)
    return app


def _server_tls(config: ConsoleConfig) -> ssl.SSLContext | None:
    tls = config.tls
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    if tls.ca_file:
        context.load_verify_locations(str(tls.ca_file))
        context.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
    return context


async def start_console(
    store: Store,
    config: ConsoleConfig,
    *,
    on_replay: Callable[[], None],
    render: Renderer | None = None,
    engine_config: Config | None = None,
) -> tuple[web.AppRunner, int]:
    """Serve the console; return the runner (``await runner.cleanup()`` stops it) and the bound
    port (port 0 picks a free one).

    With the engine's `engine_config`, operators may re-map a message with today's config, and
    (unless `render` is given) each delivery shows the payload its destination is sent."""
    runner, port = await serve(
        console_app(store, config, on_replay=on_replay, render=render, engine_config=engine_config),
        config.host, config.port, limits=http_limits(config.limits),
        ssl_context=_server_tls(config), behind_tls_proxy=config.behind_tls_proxy, csp=CSP,
    )  # fmt: skip
    log.info("console.started", port=port, tls=config.tls is not None)
    return runner, port
