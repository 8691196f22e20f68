"""Console sign-in hardening: failures throttled per user and per address and logged without
the password; server-side sessions that sign-out, an admin, the idle timeout and the absolute
lifetime end; cookies ``Secure`` with the ``__Host-`` prefix behind TLS."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie

import aiohttp
import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from engine.store import Store, console_reads
from engine.store.schema import console_sessions
from tests.console.web import PASSWORD, console, csrf_of, signed_in

pytestmark = pytest.mark.integration


async def attempt(s: aiohttp.ClientSession, user: str, password: str) -> aiohttp.ClientResponse:
    async with s.get("/login") as r:
        token = csrf_of(await r.text())
    form = {"name": user, "password": password, "csrf": token}
    async with s.post("/login", data=form, allow_redirects=False) as r:
        await r.read()
        return r


async def test_failures_lock_the_user_out_even_with_the_right_password(store: Store) -> None:
    throttle = {"user_failures": 3, "address_failures": 100, "lockout": "10m"}
    async with console(store, sign_in=throttle) as c, signed_in(c.url, None) as s:
        with capture_logs() as logs:
            statuses = [(await attempt(s, "olive", f"guess {i}")).status for i in range(3)]
            locked = await attempt(s, "olive", PASSWORD)
        assert statuses == [401, 401, 429]
        assert locked.status == 429
        assert 500 <= int(locked.headers["Retry-After"]) <= 600
        assert (await attempt(s, "clara", PASSWORD)).status == 303  # others are not locked
    failed = [e for e in logs if e["event"] == "console.sign_in_failed"]
    assert [(e["user"], e["address"]) for e in failed] == [("olive", "127.0.0.1")] * 3
    assert [e["event"] for e in logs if e.get("user") == "olive"][-1] == "console.sign_in_throttled"
    assert not any("guess" in repr(e) or PASSWORD in repr(e) for e in logs)


async def test_parallel_guesses_are_counted_before_any_of_them_is_checked(store: Store) -> None:
    """A burst of simultaneous guesses for one user: no more passwords are checked than the
    throttle allows; the rest are refused as locked out."""
    throttle = {"user_failures": 3, "address_failures": 100, "lockout": "10m"}
    async with console(store, sign_in=throttle) as c, signed_in(c.url, None) as s:
        answers = await asyncio.gather(*(attempt(s, "olive", f"guess {i}") for i in range(8)))
    statuses = sorted(r.status for r in answers)
    assert statuses.count(401) == 2  # the third failure locks: it is answered 429 already
    assert statuses.count(429) == 6


async def test_failures_from_one_address_lock_the_address_out(store: Store) -> None:
    throttle = {"user_failures": 100, "address_failures": 4}
    async with console(store, sign_in=throttle) as c, signed_in(c.url, None) as s:
        statuses = [(await attempt(s, name, "wrong")).status for name in ("a", "b", "c", "d")]
        assert statuses == [401, 401, 401, 429]
        assert (await attempt(s, "clara", PASSWORD)).status == 429


async def test_the_lockout_doubles_and_a_success_forgets_the_users_failures(store: Store) -> None:
    throttle = {"user_failures": 2, "lockout": "1m", "max_lockout": "3m"}
    async with console(store, sign_in=throttle) as c, signed_in(c.url, None) as s:
        assert (await attempt(s, "olive", "wrong")).status == 401
        assert (await attempt(s, "olive", PASSWORD)).status == 303
        assert (await attempt(s, "olive", "wrong")).status == 401  # counting starts again
    from engine.config.console import SignInThrottle

    policy = SignInThrottle.model_validate(throttle)
    assert [policy.lock(2, n) for n in (1, 2, 3, 4)] == [
        None, timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=3)
    ]  # fmt: skip


async def session_cookie(s: aiohttp.ClientSession, name: str = "cb_session") -> str:
    cookie = s.cookie_jar.filter_cookies(s._base_url)[name]  # type: ignore[arg-type]
    return cookie.value


async def status_with(url: str, name: str, value: str) -> int:
    async with (
        aiohttp.ClientSession(base_url=url) as plain,
        plain.get("/dashboard", headers={"Cookie": f"{name}={value}"}) as r,
    ):
        return r.status


async def test_sign_out_ends_the_session_on_the_server(store: Store) -> None:
    async with console(store) as c:
        async with signed_in(c.url, "olive") as s:
            cookie = await session_cookie(s)
            assert await status_with(c.url, "cb_session", cookie) == 200
            async with s.get("/dashboard") as r:
                token = csrf_of(await r.text())
            async with s.post("/logout", data={"csrf": token}, allow_redirects=False) as r:
                assert r.status == 303
        assert await status_with(c.url, "cb_session", cookie) == 401  # a kept copy is dead


async def test_idle_and_absolute_timeouts_end_a_session(store: Store) -> None:
    async with console(store, session_idle_timeout="10m") as c:
        async with signed_in(c.url, "olive") as s:
            idle = await session_cookie(s)
        async with signed_in(c.url, "olive") as s:
            old = await session_cookie(s)
        assert await status_with(c.url, "cb_session", idle) == 200
        now = datetime.now(UTC)
        async with store.writing() as conn:
            rows = sa.select(console_sessions.c.id).order_by(console_sessions.c.id)
            first, second = (await conn.execute(rows)).scalars().all()
            await conn.execute(sa.update(console_sessions).where(console_sessions.c.id == first)
                               .values(last_seen_at=now - timedelta(minutes=11)))  # fmt: skip
            await conn.execute(sa.update(console_sessions).where(console_sessions.c.id == second)
                               .values(expires_at=now - timedelta(seconds=1)))  # fmt: skip
            await conn.commit()
        assert await status_with(c.url, "cb_session", idle) == 401
        assert await status_with(c.url, "cb_session", old) == 401


async def test_an_admin_revokes_a_session_and_it_is_audited(store: Store) -> None:
    async with console(store) as c, signed_in(c.url, "olive") as olive:
        async with olive.get("/sessions") as r:
            assert r.status == 403
        async with signed_in(c.url, "ada") as ada:
            async with ada.get("/sessions") as r:
                page = await r.text()
            assert "olive" in page
            assert "127.0.0.1" in page
            olive_row = max(row.id for row in await _live(store) if row.user_name == "olive")
            form = {"csrf": csrf_of(page)}
            async with ada.post(f"/sessions/{olive_row}/revoke", data=form) as r:
                assert "Revoked: 1 session(s)." in await r.text()
            async with olive.get("/dashboard", allow_redirects=False) as r:
                assert (r.status, r.headers["Location"]) == (303, "/login")
            async with ada.get("/dashboard") as r:
                assert r.status == 200  # the admin's own session lives on
            async with signed_in(c.url, "olive") as again:
                async with ada.post("/sessions/revoke-user", data={**form, "user": "olive"}):
                    pass
                async with again.get("/dashboard", allow_redirects=False) as r:
                    assert r.status == 303
    revoked = [(e.actor, e.action, e.detail) for e in await console_reads.audit_entries(store)]
    assert ("ada", "revoke_session", f"session {olive_row} of olive") in revoked
    assert sum(1 for e in revoked if e[1] == "revoke_session") == 2


async def _live(store: Store) -> list[sa.Row[tuple[int, str]]]:
    async with store.reading() as conn:
        query = sa.select(console_sessions.c.id, console_sessions.c.user_name)
        return list(await conn.execute(query.where(console_sessions.c.revoked_at.is_(None))))


async def test_behind_a_tls_proxy_the_cookies_are_secure_host_cookies(store: Store) -> None:
    for proxied, name in ((True, "__Host-cb_session"), (False, "cb_session")):
        async with console(store, behind_tls_proxy=proxied) as c, signed_in(c.url, None) as s:
            async with s.get("/login") as r:
                token = csrf_of(await r.text())
                login_cookie = SimpleCookie(r.headers["Set-Cookie"])
            form = {"name": "olive", "password": PASSWORD, "csrf": token}
            headers = {"Cookie": "; ".join(f"{k}={m.value}" for k, m in login_cookie.items())}
            async with (
                aiohttp.ClientSession(base_url=c.url) as raw,
                raw.post("/login", data=form, headers=headers, allow_redirects=False) as r,
            ):
                assert r.status == 303
                [set_session] = [h for h in r.headers.getall("Set-Cookie") if "cb_session" in h]
        cookie = SimpleCookie(set_session)[name]
        assert (bool(cookie["secure"]), cookie["path"], cookie["domain"]) == (proxied, "/", "")
        assert cookie["httponly"]
        assert cookie["samesite"] == "Strict"
        assert set(login_cookie) == {name.replace("session", "login")}
        assert bool(login_cookie[name.replace("session", "login")]["secure"]) is proxied
