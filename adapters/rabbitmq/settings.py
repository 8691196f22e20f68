"""The settings of one RabbitMQ connection: URL, prefetch, heartbeats, timeouts, backoff, TLS."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pika


@dataclass(frozen=True)
class AmqpSettings:
    url: str = "amqp://guest:guest@localhost:5672/"
    alternates: tuple[str, ...] = ()
    """Other nodes of the same cluster: a connection goes to the first node that answers, and
    after a loss the next node is tried first (the one lost may be down)."""
    prefetch: int = 100
    heartbeat: int = 30  # seconds; 0 disables (don't)
    connection_name: str = "carebridge"
    confirm_timeout: float = 30.0  # default deadline for one publish confirm
    connect_timeout: float = 10.0  # one connection attempt, and each channel operation
    reconnect_initial_delay: float = 0.5
    reconnect_max_delay: float = 30.0
    # TLS: used when the URL scheme is amqps or any file below is set.
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True  # verify the server certificate and host name
    server_hostname: str | None = None  # SNI / host name check; defaults to the URL host

    def __post_init__(self) -> None:
        if self.prefetch < 1:
            raise ValueError("prefetch must be >= 1")
        if not 0 < self.reconnect_initial_delay <= self.reconnect_max_delay:
            raise ValueError("need 0 < reconnect_initial_delay <= reconnect_max_delay")

    @property
    def tls(self) -> bool:
        scheme = urlsplit(self.url).scheme.lower()
        return scheme == "amqps" or self.ca_file is not None or self.cert_file is not None

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def node_parameters(self) -> list[Any]:
        """The connection parameters of every node, `url` first."""
        return [self.connection_parameters(url) for url in (self.url, *self.alternates)]

    def connection_parameters(self, url: str | None = None) -> Any:
        params = pika.URLParameters(url or self.url)
        params.heartbeat = self.heartbeat
        params.stack_timeout = self.connect_timeout
        params.client_properties = {"connection_name": self.connection_name}
        context = self.ssl_context()
        if context is not None:
            params.ssl_options = pika.SSLOptions(context, self.server_hostname or params.host)
        return params
