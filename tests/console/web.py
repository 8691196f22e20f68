"""A console on a real port over a test store, and a cookie-keeping client that signs in."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from pydantic import SecretStr

from engine.console.app import start_console
from engine.console.auth import hash_password
from engine.console.config import ConsoleConfig, ConsoleToken, ConsoleUser
from engine.store import Store

PASSWORD = "correct horse battery staple"
TOKEN = "t" * 40
_HASH = hash_password(PASSWORD, n=2**10)  # cheap for tests; production uses 2**17
USERS = {"vera": "viewer", "clara": "clinical", "olive": "operator", "ada": "admin"}


def console_config(**settings: Any) -> ConsoleConfig:
    """The test console's config; `settings` override or add keys."""
    return ConsoleConfig.model_validate(
        {
            "port": 0,
            "session_secret": SecretStr("s" * 40),
            "users": tuple(
                ConsoleUser(name=n, role=r, password_hash=_HASH) for n, r in USERS.items()
            ),
            "tokens": (ConsoleToken(name="prometheus", role="viewer", token=SecretStr(TOKEN)),),
            **settings,
        }
    )


@dataclass
class Running:
    url: str
    woken: list[int] = field(default_factory=list)


@asynccontextmanager
async def console(
    store: Store, on_replay: Callable[[], None] | None = None, **settings: Any
) -> AsyncIterator[Running]:
    running = Running("")
    runner, port = await start_console(
        store,
        console_config(**settings),
        on_replay=on_replay or (lambda: running.woken.append(1)),
    )
    running.url = f"http://127.0.0.1:{port}"
    try:
        yield running
    finally:
        await runner.cleanup()


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: str) -> str:
    found = _CSRF.search(page)
    assert found, "no CSRF token on the page"
    return found.group(1)


@asynccontextmanager
async def signed_in(url: str, user: str | None) -> AsyncIterator[aiohttp.ClientSession]:
    """A browser-like session (cookies kept, HTML accepted), signed in as `user` if given."""
    async with aiohttp.ClientSession(
        base_url=url, headers={"Accept": "text/html"}, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        if user is not None:
            async with session.get("/login") as r:
                token = csrf_of(await r.text())
            form = {"name": user, "password": PASSWORD, "csrf": token}
            async with session.post("/login", data=form, allow_redirects=False) as r:
                assert r.status == 303, await r.text()
        yield session
