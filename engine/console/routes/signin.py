"""Signing in and out, and the style sheet (the only routes open without a principal).

Failed sign-ins are throttled per user name and per address (`SignInThrottle`): while either is
locked out an attempt is refused (429, ``Retry-After``) before its password is checked. Each
failure and each refusal is logged with the name tried and the address, never the password.
Attempts for the same user or from the same address are taken one at a time (striped locks),
so a burst of parallel guesses cannot all be checked before the first failure is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from aiohttp import web

from engine.console.context import Console, log
from engine.console.security import client_address, cookie_name, field, form_of
from engine.console.templates import STYLE, page
from engine.console.views.signin import login_form
from engine.store import console_sessions as sessions

_STRIPES = 64
"""Locks shared by hash: bounded however many names an attacker tries."""


class SignIn:
    def __init__(self, console: Console) -> None:
        self.console = console
        self._stripes = [asyncio.Lock() for _ in range(_STRIPES)]
        config = console.config
        self.secure = config.secure_cookies
        self.session_cookie = cookie_name(config, "cb_session")
        self.login_cookie = cookie_name(config, "cb_login")

    def _login_page(self, error: str | None = None, status: int = 200) -> web.Response:
        auth = self.console.auth
        nonce = secrets.token_urlsafe(18)
        response = web.Response(
            text=page("Sign in", login_form(auth.login_token(nonce), error), None),
            status=status,
            content_type="text/html",
        )
        response.set_cookie(
            self.login_cookie, nonce, httponly=True, samesite="Strict", secure=self.secure, path="/"
        )
        return response

    async def form(self, _request: web.Request) -> web.Response:
        return self._login_page()

    async def login(self, request: web.Request) -> web.Response:
        auth, config = self.console.auth, self.console.config
        form = await form_of(request)
        if not auth.login_ok(request.cookies.get(self.login_cookie), field(form, "csrf")):
            return self._login_page("The form had expired; please sign in again.", 403)
        name, password = (field(form, "name") or "")[:80], field(form, "password") or ""
        address = client_address(request, config)
        keys = [f"user:{name.casefold()}", f"address:{address}"]
        async with self._one_at_a_time(keys):
            return await self._attempt(name, password, address, keys)

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, keys: list[str]) -> AsyncIterator[None]:
        stripes = sorted({int(hashlib.sha256(k.encode()).hexdigest()[:8], 16) % _STRIPES
                          for k in keys})  # fmt: skip
        async with contextlib.AsyncExitStack() as stack:
            for stripe in stripes:  # always in the same order: no deadlock
                await stack.enter_async_context(self._stripes[stripe])
            yield

    async def _attempt(
        self, name: str, password: str, address: str, keys: list[str]
    ) -> web.Response:
        config, auth = self.console.config, self.console.auth
        now = datetime.now(UTC)
        locked = await sessions.locked_until(self.console.store, keys, now)
        if locked is not None:
            log.warning("console.sign_in_throttled", user=name, address=address,
                        until=locked.isoformat())  # fmt: skip
            return self._throttled(locked, now)
        principal = await auth.check_password(name, password)
        if principal is None:
            locked = await self._failed(keys, now)
            log.warning("console.sign_in_failed", user=name, address=address,
                        locked_until=locked.isoformat() if locked else None)  # fmt: skip
            if locked is not None:
                return self._throttled(locked, now)
            return self._login_page("Wrong name or password.", 401)
        await sessions.clear_failures(self.console.store, keys[0])
        session_id = await auth.open_session(principal, address, now)
        log.info("console.signed_in", user=principal.name, role=principal.role, address=address)
        response = web.HTTPSeeOther("/messages")
        response.set_cookie(
            self.session_cookie, session_id, httponly=True, samesite="Strict", secure=self.secure,
            max_age=int(config.session_lifetime.total_seconds()), path="/",
        )  # fmt: skip
        response.del_cookie(self.login_cookie, path="/", secure=self.secure, samesite="Strict")
        raise response

    async def _failed(self, keys: list[str], now: datetime) -> datetime | None:
        throttle = self.console.config.sign_in

        def policy(key: str, failures: int) -> timedelta | None:
            limit = throttle.user_failures if key.startswith("user:") else throttle.address_failures
            return throttle.lock(limit, failures)

        return await sessions.record_failure(
            self.console.store, keys, now, throttle.forget_after, policy
        )

    def _throttled(self, until: datetime, now: datetime) -> web.Response:
        wait = max(1, math.ceil((until - now).total_seconds()))
        response = self._login_page(
            f"Too many failed sign-ins: try again in {math.ceil(wait / 60)} minute(s).", 429
        )
        response.headers["Retry-After"] = str(wait)
        return response

    async def logout(self, request: web.Request) -> web.Response:
        principal = self.console.principal(request)
        await self.console.auth.sign_out(principal, datetime.now(UTC))
        log.info("console.signed_out", user=principal.name)
        response = web.HTTPSeeOther("/login")
        response.del_cookie(self.session_cookie, path="/", secure=self.secure, samesite="Strict")
        raise response

    async def style(self, _request: web.Request) -> web.Response:
        return web.Response(text=STYLE, content_type="text/css")
