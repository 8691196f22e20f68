"""Receivers that play the destinations of a simulation: every webhook and notification
recipient URL and every MLLP destination of the config, served on this machine, recording what
arrives (`Receipt`) and answering as a healthy system would (HTTP 200, MLLP ACK AA).

Only loopback addresses are served: a destination elsewhere is refused, since the simulator
would otherwise be asked to impersonate a real system.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import ip_address
from urllib.parse import urlsplit

from aiohttp import web

from adapters.mllp.framing import READ_SIZE, MllpDecoder, frame
from engine.config import (
    Config,
    MllpDestination,
    NotificationDestination,
    WebhookDestination,
)
from engine.simulate.verdict import Receipt
from mappings.hl7v2.ack import build_ack
from mappings.hl7v2.reader import parse

LOOPBACK_NAMES = ("localhost",)


class NotLocal(ValueError):
    """A destination the simulator would have to serve is not on this machine."""


def _local(host: str, what: str) -> str:
    try:
        loopback = host in LOOPBACK_NAMES or ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise NotLocal(f"{what} is at {host}, not on this machine: point it to 127.0.0.1")
    return host


@dataclass(slots=True)
class Plan:
    """What to serve: HTTP paths by (host, port), MLLP destinations by (host, port)."""

    http: dict[tuple[str, int], dict[str, tuple[str, str]]] = field(default_factory=dict)
    """(host, port) -> path -> (destination, receiver)."""
    mllp: dict[tuple[str, int], str] = field(default_factory=dict)

    @property
    def destinations(self) -> list[str]:
        names = [d for paths in self.http.values() for d, _ in paths.values()]
        return list(dict.fromkeys(names + list(self.mllp.values())))


def _add_url(plan: Plan, url: str, destination: str, receiver: str) -> None:
    parts = urlsplit(url)
    host = _local(parts.hostname or "", f"{destination} ({url})")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    plan.http.setdefault((host, port), {})[parts.path or "/"] = (destination, receiver)


def plan_for(config: Config) -> Plan:
    """The receivers the config's webhook, notification and MLLP destinations need."""
    plan = Plan()
    for dest in config.destinations:
        if isinstance(dest, WebhookDestination):
            _add_url(plan, dest.url, dest.name, dest.name)
        elif isinstance(dest, NotificationDestination):
            for recipient in dest.recipients:
                _add_url(plan, recipient.url, dest.name, recipient.name)
        elif isinstance(dest, MllpDestination):
            plan.mllp[(_local(dest.host, dest.name), dest.port)] = dest.name
    return plan


class Receivers:
    """Serves a `Plan`; `receipts` fills as requests and frames arrive."""

    def __init__(self, plan: Plan, event_of_mllp_id: Callable[[str], str | None]) -> None:
        self._plan = plan
        self._event_of_mllp_id = event_of_mllp_id
        self.receipts: list[Receipt] = []
        self._runners: list[web.AppRunner] = []
        self._servers: list[asyncio.Server] = []

    async def start(self) -> None:
        for (host, port), paths in self._plan.http.items():
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_post("/{tail:.*}", self._http_handler(paths))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, host, port).start()
            self._runners.append(runner)
        for (host, port), name in self._plan.mllp.items():
            server = await asyncio.start_server(
                functools.partial(self._mllp_peer, name), host, port
            )
            self._servers.append(server)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()
        for runner in self._runners:
            await runner.cleanup()

    def _http_handler(
        self, paths: dict[str, tuple[str, str]]
    ) -> Callable[[web.Request], asyncio.Future[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            found = paths.get(request.path)
            if found is None:
                return web.Response(status=404, text="no destination here")
            await request.read()
            self.receipts.append(
                Receipt(
                    found[0],
                    found[1],
                    request.headers.get("X-Carebridge-Event-Id"),
                    request.headers.get("Idempotency-Key", ""),
                )
            )
            return web.Response(status=200, text="received")

        return handle  # type: ignore[return-value]

    async def _mllp_peer(
        self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        decoder = MllpDecoder(64 * 1024 * 1024)
        try:
            while data := await reader.read(READ_SIZE):
                for message in decoder.feed(data):
                    control_id = parse(message.payload).msh.value(10)
                    event = self._event_of_mllp_id(control_id)
                    self.receipts.append(Receipt(name, name, event, control_id))
                    ack = build_ack(message.payload, "AA", now=datetime.now(UTC),
                                    control_id=f"ACK{control_id}"[:20])  # fmt: skip
                    writer.write(frame(ack))
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
