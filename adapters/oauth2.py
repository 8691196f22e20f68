"""OAuth2 client credentials: a bearer token for a destination, fetched and kept until it
is about to expire. Errors are translated to `DestinationError` here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol
from urllib.parse import urlencode

import orjson

from adapters.errors import DestinationError

_EARLY = 60.0  # renew this many seconds before the token expires


class _Answer(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def body(self) -> bytes: ...


Post = Callable[[str, bytes, Mapping[str, str], float], Awaitable[_Answer]]


class ClientCredentials:
    def __init__(self, post: Post, *, token_url: str, client_id: str, client_secret: str,
                 scope: str | None = None, timeout: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._post = post
        self._url = token_url
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            **({"scope": scope} if scope else {}),
        }
        self._timeout = timeout
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or self._clock() >= self._expires:
                await self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        """The server refused the token (401): fetch a new one next time."""
        self._token = None

    async def _fetch(self) -> None:
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "Accept": "application/json"}  # fmt: skip
        answer = await self._post(self._url, urlencode(self._form).encode(), headers,
                                  self._timeout)  # fmt: skip
        if answer.status != 200:
            raise DestinationError(f"token endpoint answered HTTP {answer.status}")
        try:
            data = orjson.loads(answer.body)
            token = str(data["access_token"])
            lifetime = float(data.get("expires_in", 300))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DestinationError("token endpoint answered without an access_token") from exc
        self._token = token
        self._expires = self._clock() + max(0.0, lifetime - _EARLY)
