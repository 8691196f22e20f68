"""Signing in and out, and the style sheet (the only routes open without a principal)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from aiohttp import web

from engine.console.context import Console, log
from engine.console.security import SESSION_COOKIE
from engine.console.templates import STYLE, page
from engine.console.views.signin import login_form

LOGIN_COOKIE = "cb_login"


class SignIn:
    def __init__(self, console: Console) -> None:
        self.console = console

    def _login_page(self, error: str | None = None, status: int = 200) -> web.Response:
        auth = self.console.auth
        nonce = secrets.token_urlsafe(18)
        response = web.Response(
            text=page("Sign in", login_form(auth.login_token(nonce), error), None),
            status=status,
            content_type="text/html",
        )
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            httponly=True,
            samesite="Strict",
            secure=self.console.config.tls is not None,
            path="/login",
        )
        return response

    async def form(self, _request: web.Request) -> web.Response:
        return self._login_page()

    async def login(self, request: web.Request) -> web.Response:
        auth, config = self.console.auth, self.console.config
        form = await request.post()
        token = form.get("csrf")
        if not auth.login_ok(
            request.cookies.get(LOGIN_COOKIE), token if isinstance(token, str) else None
        ):
            return self._login_page("The form had expired; please sign in again.", 403)
        name, password = str(form.get("name", ""))[:80], str(form.get("password", ""))
        principal = await auth.sign_in(name, password)
        if principal is None:
            log.info("console.sign_in_failed")
            return self._login_page("Wrong name or password.", 401)
        log.info("console.signed_in", user=principal.name, role=principal.role)
        response = web.HTTPSeeOther("/messages")
        response.set_cookie(
            SESSION_COOKIE,
            auth.session_cookie(principal, datetime.now(UTC)),
            httponly=True,
            samesite="Strict",
            secure=config.tls is not None,
            max_age=int(config.session_lifetime.total_seconds()),
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
