"""``amqp:``: the RabbitMQ connection that intake consumes from and AMQP destinations publish to."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from engine.config.base import Duration, Strict, TlsConfig


class AmqpConfig(Strict):
    url: str | list[str] = "amqp://localhost:5672/"
    """One broker URL, or a list: the nodes of one cluster, tried in turn (the first that
    answers is used; after a connection is lost the next node is tried first). No credentials
    in the file: give each URL (or its password) as ``${NAME}``. A URL without a user logs in as
    guest/guest, which RabbitMQ allows only from localhost."""
    prefetch: int = Field(default=200, ge=1, le=65535)
    heartbeat: Duration = timedelta(seconds=30)
    confirm_timeout: Duration = timedelta(seconds=15)
    delivery_limit: int = Field(default=10, ge=1)
    """Quorum queue `x-delivery-limit`: a message that crashes the engine this often is parked."""
    tls: TlsConfig | None = None

    @field_validator("url")
    @classmethod
    def _some_node(cls, url: str | list[str]) -> str | list[str]:
        if isinstance(url, list) and not url:
            raise ValueError("name at least one node")
        return url

    @property
    def urls(self) -> list[str]:
        """Every node's URL, in the order they are tried."""
        return [self.url] if isinstance(self.url, str) else list(self.url)
