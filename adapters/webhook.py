"""HTTP POST to a webhook destination (aiohttp client): bytes out, status and body back.

Network failures are translated to `DestinationError` / `DestinationTimeout` here; what a
status code means for the delivery is decided by the engine, not by this adapter.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp

from adapters.errors import DestinationError, DestinationTimeout

_MAX_RESPONSE = 64 * 1024
_KEPT_HEADERS = frozenset({"retry-after", "location", "content-type"})


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class WebhookClient:
    """One pooled HTTP client for every webhook destination of the engine."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, limit: int = 100) -> None:
        self._ssl_context = ssl_context
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WebhookClient:
        connector = aiohttp.TCPConnector(limit=self._limit, ssl=self._ssl_context or True)
        self._session = aiohttp.ClientSession(connector=connector)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadline: float
    ) -> HttpResponse:
        """POST `body`; the whole exchange must finish within `deadline` seconds."""
        if self._session is None:
            raise DestinationError("webhook client is closed")
        try:
            async with self._session.post(
                url,
                data=body,
                headers=dict(headers),
                timeout=aiohttp.ClientTimeout(total=deadline),
                allow_redirects=False,
            ) as response:
                # Read a bounded amount: a destination's answer is kept for operators, and a
                # hostile or broken one must not exhaust memory.
                content = await response.content.read(_MAX_RESPONSE)
                kept = {k: v for k, v in response.headers.items() if k.lower() in _KEPT_HEADERS}
                return HttpResponse(response.status, content, kept)
        except TimeoutError as exc:
            raise DestinationTimeout(f"no answer within {deadline:g}s") from exc
        except asyncio.CancelledError:
            raise
        except aiohttp.ClientError as exc:
            raise DestinationError(f"{type(exc).__name__}: {exc}") from exc
        except (OSError, ValueError) as exc:
            raise DestinationError(f"{type(exc).__name__}: {exc}") from exc
