"""Admins see the live console sessions and revoke one, or every session of a user (each
revocation audited in the same transaction)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from engine.console.context import Console, log, notice, number
from engine.console.security import field, form_of
from engine.console.views.sessions import sessions_page
from engine.store import console_sessions as sessions


class Sessions:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def listing(self, request: web.Request) -> web.Response:
        c = self.console
        c.need(request, "admin")
        rows = await sessions.live_sessions(
            c.store, datetime.now(UTC), c.config.session_idle_timeout
        )
        body = sessions_page(rows, c.csrf(request))
        return c.html(request, "Sessions", body, notice=notice(request))

    async def revoke(self, request: web.Request) -> web.Response:
        c = self.console
        principal = c.need(request, "admin")
        session_id = number(request.match_info["id"])
        if session_id is None:
            raise web.HTTPBadRequest(text="bad session id")
        ended = await sessions.revoke_sessions(
            c.store, principal, datetime.now(UTC), session_id=session_id
        )
        return self._after(principal.name, principal.via, [s.id for s in ended])

    async def revoke_user(self, request: web.Request) -> web.Response:
        c = self.console
        principal = c.need(request, "admin")
        user = field(await form_of(request), "user")
        if not user:
            raise web.HTTPBadRequest(text="name the user")
        ended = await sessions.revoke_sessions(c.store, principal, datetime.now(UTC),
                                               user_name=user[:80])  # fmt: skip
        return self._after(principal.name, principal.via, [s.id for s in ended])

    def _after(self, admin: str, via: str, ended: list[int]) -> web.Response:
        log.info("console.sessions_revoked", user=admin, sessions=ended)
        if via == "token":
            return web.json_response({"revoked": ended})
        raise web.HTTPSeeOther(f"/sessions?done=revoke&n={len(ended)}")
