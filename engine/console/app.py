"""The operator console: aiohttp routes over the store, on a port of its own.

    request ─► security middleware (who: bearer token or signed session cookie; CSRF on every
               POST; security headers) ─► handler (role check ─► queries / actions ─► audit)
            ─► views (escaped HTML)

Audited: every page showing a payload, every patient search, every replay, resolve, hold and
release (in the same transaction as the change). Logs carry user names and row ids, never
patient data.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from engine.config import Config
from engine.console import actions, audit, metrics, queries, remap, views
from engine.console.auth import Authenticator, Principal, allowed, sees_patient_data
from engine.console.config import ConsoleConfig, Role
from engine.console.templates import STYLE, Safe, page
from engine.store import Store

log = structlog.get_logger("carebridge.console")

SESSION_COOKIE = "cb_session"
LOGIN_COOKIE = "cb_login"
_PUBLIC = frozenset({"/login", "/static/console.css"})
_NOTICES = {
    "replay": "Replayed: {n} delivery(ies) will be sent again.",
    "resolve": "Resolved: {n}.",
    "hold": "Held: {n}.",
    "release": "Released: {n} delivery(ies) will be sent now.",
    "none": "Nothing changed: the state had already moved on.",
    "remap": "Re-mapped with today's config: {n} delivery(ies) will be sent (see the audit "
    "trail for each destination).",
    "remap_none": "Re-mapped with today's config: the event is updated; no delivery needed "
    "sending again (delivered ones are not resent: replay them to resend).",
    "remap_not_mapped": "Not re-mapped: the message does not map with today's config.",
    "remap_refused": "Not re-mapped: today's mapping gives another event kind or patient, the "
    "message has no event, or its source is gone (a correction is for the source to send).",
}
_PRINCIPAL = web.RequestKey("principal", Principal)
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


class Console:
    """The console's state: the store, the config and the hook that wakes delivery."""

    def __init__(
        self,
        store: Store,
        config: ConsoleConfig,
        on_replay: Callable[[], None],
        render: views.Renderer | None,
        engine_config: Config | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.auth = Authenticator(config)
        self.on_replay = on_replay
        self.render = render
        self.engine_config = engine_config

    # ---- plumbing ------------------------------------------------------------------------

    @staticmethod
    def principal(request: web.Request) -> Principal:
        return request[_PRINCIPAL]

    def csrf(self, request: web.Request) -> str:
        return self.auth.csrf_token(self.principal(request))

    def html(
        self,
        request: web.Request,
        title: str,
        body: Safe,
        *,
        status: int = 200,
        notice: str | None = None,
    ) -> web.Response:
        who = request.get(_PRINCIPAL)
        csrf = self.auth.csrf_token(who) if who else ""
        return web.Response(
            text=page(title, body, who, csrf, notice), status=status, content_type="text/html"
        )

    def need(self, request: web.Request, role: Role) -> Principal:
        principal = self.principal(request)
        if not allowed(principal.role, role):
            log.info("console.refused", user=principal.name, path=request.path, needed=role)
            raise web.HTTPForbidden(
                text=page(
                    "Not allowed",
                    views.refused(principal, role),
                    principal,
                    self.auth.csrf_token(principal),
                ),
                content_type="text/html",
            )
        return principal

    @web.middleware
    async def security(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        response = await self._guarded(request, handler)
        response.headers.update(_HEADERS)
        return response

    async def _guarded(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if request.path in _PUBLIC:
            return await handler(request)
        now = datetime.now(UTC)
        principal = self.auth.from_token(
            request.headers.get("Authorization")
        ) or self.auth.from_session(request.cookies.get(SESSION_COOKIE), now)
        if principal is None:
            if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
                raise web.HTTPSeeOther("/login")
            raise web.HTTPUnauthorized(text="sign in or give a bearer token")
        request[_PRINCIPAL] = principal
        if request.method == "POST":
            form = await request.post()
            offered = form.get("csrf")
            if not self.auth.csrf_ok(principal, offered if isinstance(offered, str) else None):
                log.warning("console.csrf_refused", user=principal.name, path=request.path)
                raise web.HTTPForbidden(text="missing or wrong CSRF token")
        try:
            return await handler(request)
        except queries.BadFilter as exc:
            return self.html(request, "Bad search", Safe(""), status=400, notice=str(exc))

    # ---- sign-in -------------------------------------------------------------------------

    def _login_page(self, error: str | None = None, status: int = 200) -> web.Response:
        nonce = secrets.token_urlsafe(18)
        response = web.Response(
            text=page("Sign in", views.login_form(self.auth.login_token(nonce), error), None),
            status=status,
            content_type="text/html",
        )
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            httponly=True,
            samesite="Strict",
            secure=self.config.tls is not None,
            path="/login",
        )
        return response

    async def login_form(self, _request: web.Request) -> web.Response:
        return self._login_page()

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = form.get("csrf")
        if not self.auth.login_ok(
            request.cookies.get(LOGIN_COOKIE), token if isinstance(token, str) else None
        ):
            return self._login_page("The form had expired; please sign in again.", 403)
        name, password = str(form.get("name", ""))[:80], str(form.get("password", ""))
        principal = await self.auth.sign_in(name, password)
        if principal is None:
            log.info("console.sign_in_failed")
            return self._login_page("Wrong name or password.", 401)
        log.info("console.signed_in", user=principal.name, role=principal.role)
        response = web.HTTPSeeOther("/messages")
        response.set_cookie(
            SESSION_COOKIE,
            self.auth.session_cookie(principal, datetime.now(UTC)),
            httponly=True,
            samesite="Strict",
            secure=self.config.tls is not None,
            max_age=int(self.config.session_lifetime.total_seconds()),
            path="/",
        )
        response.del_cookie(LOGIN_COOKIE, path="/login")
        raise response

    async def logout(self, _request: web.Request) -> web.Response:
        response = web.HTTPSeeOther("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

    async def style(self, _request: web.Request) -> web.Response:
        return web.Response(text=STYLE, content_type="text/css")

    # ---- reading -------------------------------------------------------------------------

    async def home(self, _request: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/messages")

    async def messages(self, request: web.Request) -> web.Response:
        principal = self.need(request, "viewer")
        q = request.query
        f = queries.SearchFilter(
            patient=q.get("patient") or None,
            control_id=q.get("control_id") or None,
            source=q.get("source") or None,
            destination=q.get("destination") or None,
            status=q.get("status") or None,
            delivery_status=q.get("delivery_status") or None,
            kind=q.get("kind") or None,
            since=_when(q.get("since")),
            until=_when(q.get("until")),
        )
        if f.patient and not sees_patient_data(principal.role):
            self.need(request, "clinical")
        found = await queries.search(
            self.store, f, before=_int(q.get("before")), limit=self.config.page_size
        )
        if f.patient:
            keys = sorted({r["patient_key"] for r in found.rows if r["patient_key"]})
            await audit.record(
                self.store,
                principal,
                audit.AuditEntry(
                    "search_patient",
                    patient_key=keys[0] if len(keys) == 1 else None,
                    reason=q.get("reason"),
                    detail=f"searched {f.patient!r}; found {', '.join(keys)}",
                ),
            )
        body = views.search_page(principal, dict(q), found)
        return self.html(request, "Messages", body)

    async def message(self, request: web.Request) -> web.Response:
        principal = self.need(request, "viewer")
        message_id = _int(request.match_info["id"])
        detail = (
            None if message_id is None else await queries.message_detail(self.store, message_id)
        )
        if detail is None:
            return self.html(request, "No such message", Safe(""), status=404)
        trail: list[dict[str, Any]] = []
        if sees_patient_data(principal.role):
            await audit.record(
                self.store,
                principal,
                audit.AuditEntry(
                    "view_message",
                    message_id=message_id,
                    patient_key=detail.message["patient_key"],
                ),
            )
            trail = await audit.entries(self.store, message_id=message_id, limit=200)
        done = request.query.get("done", "")
        notice = _NOTICES.get(done, "").format(n=_int(request.query.get("n")) or 0) or None
        body = views.message_page(
            principal,
            detail,
            trail,
            self.csrf(request),
            self.render,
            can_remap=self.engine_config is not None,
        )
        return self.html(request, f"Message {message_id}", body, notice=notice)

    async def dead_letters(self, request: web.Request) -> web.Response:
        principal = self.need(request, "viewer")
        q = request.query
        found = await queries.dead_letters(
            self.store,
            destination=q.get("destination") or None,
            before=_int(q.get("before")),
            limit=self.config.page_size,
        )
        if q.get("source"):
            found = queries.Page(
                [r for r in found.rows if r["source"] == q["source"]], found.next_before
            )
        body = views.dead_letters_page(
            principal, dict(q), found, self.csrf(request), self.config.bulk_limit
        )
        return self.html(request, "Dead letters", body, notice=_notice(request))

    async def dashboard(self, request: web.Request) -> web.Response:
        self.need(request, "viewer")
        figures = await metrics.figures(self.store)
        return self.html(request, "Dashboard", views.dashboard_page(figures))

    async def prometheus(self, request: web.Request) -> web.Response:
        self.need(request, "viewer")
        text = metrics.prometheus(await metrics.figures(self.store))
        return web.Response(
            text=text, content_type="text/plain", headers={"X-Prometheus-Format": "0.0.4"}
        )

    async def audit_log(self, request: web.Request) -> web.Response:
        self.need(request, "admin")
        q = request.query
        limit = self.config.page_size
        rows = await audit.entries(
            self.store,
            before_id=_int(q.get("before")),
            limit=limit + 1,
            actor=q.get("actor") or None,
            patient_key=q.get("patient_key") or None,
        )
        more = rows[limit - 1]["id"] if len(rows) > limit else None
        return self.html(request, "Audit log", views.audit_page(rows[:limit], dict(q), more))

    # ---- actions -------------------------------------------------------------------------

    async def delivery_action(self, request: web.Request) -> web.Response:
        principal = self.need(request, "operator")
        form = await request.post()
        delivery_id = _int(request.match_info["id"])
        back = _int(str(form.get("back", "")))
        verb = request.match_info["verb"]
        comment = str(form.get("comment", "")) or None
        if delivery_id is None or back is None:
            raise web.HTTPBadRequest(text="bad delivery or message id")
        if verb == "replay":
            changed = await actions.replay_delivery(self.store, principal, delivery_id, comment)
        elif verb == "resolve":
            if not comment:
                raise web.HTTPBadRequest(text="a resolution needs a comment")
            changed = await actions.resolve_delivery(self.store, principal, delivery_id, comment)
        elif verb == "hold":
            changed = await actions.hold_delivery(self.store, principal, delivery_id, comment)
        else:
            changed = await actions.release_delivery(self.store, principal, delivery_id, comment)
        return self._after(principal, verb, changed, f"/messages/{back}")

    async def message_action(self, request: web.Request) -> web.Response:
        principal = self.need(request, "operator")
        form = await request.post()
        message_id = _int(request.match_info["id"])
        comment = str(form.get("comment", "")) or None
        if message_id is None:
            raise web.HTTPBadRequest(text="bad message id")
        verb = request.match_info["verb"]
        if verb == "replay":
            changed = await actions.replay_message(self.store, principal, message_id, comment)
        else:
            if not comment:
                raise web.HTTPBadRequest(text="a resolution needs a comment")
            changed = await actions.resolve_message(self.store, principal, message_id, comment)
        return self._after(principal, verb, changed, f"/messages/{message_id}")

    async def remap_action(self, request: web.Request) -> web.Response:
        """Re-map the stored message with today's config and route it (see `remap`)."""
        principal = self.need(request, "operator")
        form = await request.post()
        message_id = _int(request.match_info["id"])
        if message_id is None:
            raise web.HTTPBadRequest(text="bad message id")
        if self.engine_config is None:
            raise web.HTTPServiceUnavailable(text="re-mapping needs the engine's config")
        result = await remap.remap_message(
            self.store,
            principal,
            message_id,
            self.engine_config,
            str(form.get("comment", "")) or None,
        )
        if result.outcome == "missing":
            raise web.HTTPNotFound(text="no such message")
        log.info(
            "console.action",
            user=principal.name,
            action="remap",
            message=message_id,
            outcome=result.outcome,
            changed=result.count,
            deliveries=list(result.delivery_ids[:50]),
        )
        if result.count:
            self.on_replay()
        if principal.via == "token":
            return web.json_response(
                {
                    "outcome": result.outcome,
                    "problem": result.problem,
                    "changed": result.count,
                    "deliveries": list(result.delivery_ids),
                    "created": list(result.created),
                    "requeued": list(result.requeued),
                    "pending": list(result.updated),
                    "delivered": list(result.delivered),
                    "skipped": list(result.skipped),
                    "unrouted": list(result.unrouted),
                }
            )
        done = {"remapped": "remap" if result.count else "remap_none"}.get(
            result.outcome, f"remap_{result.outcome}"
        )
        raise web.HTTPSeeOther(f"/messages/{message_id}?done={done}&n={result.count}")

    async def bulk_replay(self, request: web.Request) -> web.Response:
        principal = self.need(request, "operator")
        form = await request.post()
        destination = str(form.get("destination", "")) or None
        source = str(form.get("source", "")) or None
        changed = await actions.replay_dead_letters(
            self.store,
            principal,
            destination=destination,
            source=source,
            up_to=_int(str(form.get("up_to", ""))),
            limit=self.config.bulk_limit,
            reason=str(form.get("comment", "")) or None,
        )
        return self._after(principal, "replay", changed, "/dead-letters")

    def _after(
        self, principal: Principal, verb: str, changed: actions.Changed, back: str
    ) -> web.Response:
        log.info(
            "console.action",
            user=principal.name,
            action=verb,
            changed=changed.count,
            deliveries=list(changed.delivery_ids[:50]),
        )
        if changed.count and verb in ("replay", "release"):
            self.on_replay()
        done = verb if changed.count else "none"
        if principal.via == "token":
            return web.json_response(
                {"changed": changed.count, "deliveries": list(changed.delivery_ids)}
            )
        raise web.HTTPSeeOther(f"{back}?done={done}&n={changed.count}")


def _int(value: str | None) -> int | None:
    if not value or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


def _when(value: str | None) -> datetime | None:
    """A time from the search form (UTC; ``datetime-local`` sends no offset)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise queries.BadFilter("times look like 2026-01-31T09:30") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _notice(request: web.Request) -> str | None:
    done = request.query.get("done", "")
    return _NOTICES.get(done, "").format(n=_int(request.query.get("n")) or 0) or None


def console_app(
    store: Store,
    config: ConsoleConfig,
    *,
    on_replay: Callable[[], None],
    render: views.Renderer | None = None,
    engine_config: Config | None = None,
) -> web.Application:
    if render is None and engine_config is not None:
        from engine.console.rendering import renderer  # late: only with a config

        render = renderer(engine_config)
    console = Console(store, config, on_replay, render, engine_config)
    app = web.Application(middlewares=[console.security], client_max_size=64 * 1024)
    app.router.add_get("/login", console.login_form)
    app.router.add_post("/login", console.login)
    app.router.add_post("/logout", console.logout)
    app.router.add_get("/static/console.css", console.style)
    app.router.add_get("/", console.home)
    app.router.add_get("/messages", console.messages)
    app.router.add_get(r"/messages/{id:\d+}", console.message)
    app.router.add_post(r"/messages/{id:\d+}/{verb:replay|resolve}", console.message_action)
    app.router.add_post(r"/messages/{id:\d+}/remap", console.remap_action)
    app.router.add_post(
        r"/deliveries/{id:\d+}/{verb:replay|resolve|hold|release}", console.delivery_action
    )
    app.router.add_get("/dead-letters", console.dead_letters)
    app.router.add_post("/dead-letters/replay", console.bulk_replay)
    app.router.add_get("/dashboard", console.dashboard)
    app.router.add_get("/metrics", console.prometheus)
    app.router.add_get("/audit", console.audit_log)
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
    render: views.Renderer | None = None,
    engine_config: Config | None = None,
) -> tuple[web.AppRunner, int]:
    """Serve the console; return the runner (``await runner.cleanup()`` stops it) and the bound
    port (port 0 picks a free one).

    With the engine's `engine_config`, operators may re-map a message with today's config, and
    (unless `render` is given) each delivery shows the payload its destination is sent."""
    runner = web.AppRunner(
        console_app(store, config, on_replay=on_replay, render=render, engine_config=engine_config),
        access_log=None,
    )
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, ssl_context=_server_tls(config))
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    port = int(sockets[0].getsockname()[1]) if sockets else config.port
    log.info("console.started", port=port, tls=config.tls is not None)
    return runner, port
