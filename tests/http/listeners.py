"""Each of the engine's HTTP listeners on a real port, built as the engine builds it: the
health port (with the acknowledgement pages and the follow-up list), the console and the FHIR
intake. `good` is a request a well-behaved client sends, and the status it should get."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr

from adapters.fhir_http import FhirListener
from engine import health, notifications
from engine.config import FollowUpConfig, HttpConfig, ListenerLimits, StoreConfig
from engine.console.app import start_console
from engine.console.config import ConsoleConfig, ConsoleTls, ConsoleToken
from engine.fhir_gateway import FhirGateway, FhirSource
from engine.store import Store
from mappings.profile import FeedProfile
from tests.http.fhir import AUTHORISED, TOKEN, Published, bundle_of
from tests.http.wire import head

LISTENERS = ["health", "console", "fhir"]
CONSOLE_TOKEN = "c" * 40
LIST_TOKEN = "l" * 40
SMALL_BUNDLE = bundle_of(12_000)


def limits(**seconds: float) -> ListenerLimits:
    """`ListenerLimits` with the given timeouts in seconds (and `max_connections`)."""
    given: dict[str, object] = {k: timedelta(seconds=v) if k.endswith("timeout") else int(v)
                                for k, v in seconds.items()}  # fmt: skip
    return ListenerLimits.model_validate(given)


@dataclass
class Listening:
    name: str
    port: int
    good: bytes
    good_status: int
    store: Store
    published: Published
    tls: ssl.SSLContext | None = None
    """The client's context when the listener is on TLS."""


def good_request(name: str) -> tuple[bytes, int]:
    if name == "health":
        return head("GET", "/healthz"), 200
    if name == "console":
        return head("GET", "/login", {"Accept": "text/html"}), 200
    return head("POST", "/fhir/mh", {**AUTHORISED, "Content-Length": str(len(SMALL_BUNDLE))}
                ) + SMALL_BUNDLE, 202  # fmt: skip


def self_signed(folder: Path) -> tuple[Path, Path]:
    key, cert = folder / "server.key", folder / "server.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def _client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _serve(name: str, stack: AsyncExitStack, store: Store, published: Published,
                 options: Mapping[str, object], tls: tuple[Path, Path] | None) -> int:  # fmt: skip
    listener_limits = options.get("limits", ListenerLimits())
    assert isinstance(listener_limits, ListenerLimits)
    proxy = bool(options.get("behind_tls_proxy", False))
    if name == "health":

        async def readiness() -> dict[str, bool]:
            if options.get("broken"):
                raise RuntimeError("readiness broke")
            return {"store_reachable": True}

        extra = [*notifications.routes(store, {}), notifications.listing_route(
            store, FollowUpConfig(list_token=LIST_TOKEN))]  # fmt: skip
        config = HttpConfig(port=0, limits=listener_limits, behind_tls_proxy=proxy)
        runner, port = await health.serve(health.health_app(readiness, extra), config)
        stack.push_async_callback(runner.cleanup)
        return port
    if name == "console":
        console = ConsoleConfig(
            port=0, session_secret=SecretStr("s" * 40), limits=listener_limits,
            tokens=(ConsoleToken(name="ops", role="admin", token=SecretStr(CONSOLE_TOKEN)),),
            behind_tls_proxy=proxy,
            tls=ConsoleTls(cert_file=tls[0], key_file=tls[1]) if tls else None,
        )  # fmt: skip
        runner, port = await start_console(store, console, on_replay=lambda: None)
        stack.push_async_callback(runner.cleanup)
        return port

    async def publish(source: str, body: bytes, headers: Mapping[str, str]) -> None:
        if options.get("broken"):
            raise RuntimeError("publishing broke")
        await published(source, body, headers)

    gateway = FhirGateway({"mh": FhirSource(FeedProfile(feed="mh"), (TOKEN,))}, publish)
    listener = FhirListener(
        "127.0.0.1", 0, admit=gateway.refusal, handle=gateway.handle,
        max_body_bytes=64 * 1024, limits=health.http_limits(listener_limits),
        ssl_context=_server_tls(*tls) if tls else None, behind_tls_proxy=proxy,
    )  # fmt: skip
    await listener.start()
    stack.push_async_callback(listener.close)
    return listener.port


@asynccontextmanager
async def listening(name: str, tmp_path: Path, **options: object) -> AsyncIterator[Listening]:
    """The listener `name`; options: `limits`, `behind_tls_proxy`, `tls` (a self-signed
    certificate), `broken` (its handler fails: a 500)."""
    async with AsyncExitStack() as stack:
        store = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'cb.db'}"))
        stack.push_async_callback(store.close)
        published = Published()
        tls = self_signed(tmp_path) if options.get("tls") else None
        port = await _serve(name, stack, store, published, options, tls)
        good, status = good_request(name)
        yield Listening(name, port, good, status, store, published,
                        _client_tls() if tls else None)  # fmt: skip
