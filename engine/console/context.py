"""What every console route shares: the store, the config, who is asking, and the page frame.

Routes check the caller's role with `Console.need` before they read or act, and answer with
`Console.html`, which frames the body in the page (navigation, CSRF field, notice).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from aiohttp import web

from engine.config import Config
from engine.console.auth import Authenticator, Principal, allowed
from engine.console.config import ConsoleConfig, Role
from engine.console.templates import Safe, page
from engine.console.views import Renderer
from engine.console.views.signin import refused
from engine.store import Store

log = structlog.get_logger("carebridge.console")

PRINCIPAL = web.RequestKey("principal", Principal)
"""Who is asking: set by the security middleware on every request it lets through."""
_NOTICES = {
    "replay": "Replayed: {n} delivery(ies) will be sent again.",
    "resolve": "Resolved: {n}.",
    "hold": "Held: {n}.",
    "release": "Released: {n} delivery(ies) will be sent now.",
    "revoke": "Revoked: {n} session(s).",
    "none": "Nothing changed: the state had already moved on.",
    "remap": "Re-mapped with today's config: {n} delivery(ies) will be sent (see the audit "
    "trail for each destination).",
    "remap_none": "Re-mapped with today's config: the event is updated; no delivery needed "
    "sending again (delivered ones are not resent: replay them to resend).",
    "remap_not_mapped": "Not re-mapped: the message does not map with today's config.",
    "remap_refused": "Not re-mapped: today's mapping gives another event kind or patient, the "
    "message has no event, or its source is gone (a correction is for the source to send).",
}


class Console:
    """The console's state: the store, the config and the hook that wakes delivery."""

    def __init__(
        self,
        store: Store,
        config: ConsoleConfig,
        on_replay: Callable[[], None],
        render: Renderer | None,
        engine_config: Config | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.auth = Authenticator(config, store)
        self.on_replay = on_replay
        self.render = render
        self.engine_config = engine_config

    @staticmethod
    def principal(request: web.Request) -> Principal:
        return request[PRINCIPAL]

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
        who = request.get(PRINCIPAL)
        csrf = self.auth.csrf_token(who) if who else ""
        return web.Response(
            text=page(title, body, who, csrf, notice), status=status, content_type="text/html"
        )

    def need(self, request: web.Request, role: Role) -> Principal:
        """The caller, if their role is at least `role`; else a 403 page."""
        principal = self.principal(request)
        if not allowed(principal.role, role):
            log.info("console.refused", user=principal.name, path=request.path, needed=role)
            raise web.HTTPForbidden(
                text=page(
                    "Not allowed",
                    refused(principal, role),
                    principal,
                    self.auth.csrf_token(principal),
                ),
                content_type="text/html",
            )
        return principal


def notice(request: web.Request) -> str | None:
    """The notice for the outcome an action redirected here with (``?done=…&n=…``)."""
    done = request.query.get("done", "")
    return _NOTICES.get(done, "").format(n=number(request.query.get("n")) or 0) or None


def number(value: str | None) -> int | None:
    """A row id or count from a form or URL; None unless it is plain digits."""
    if not value or not value.isdigit() or len(value) > 18:
        return None
    return int(value)
