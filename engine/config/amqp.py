"""``amqp:``: the RabbitMQ connection that intake consumes from and AMQP destinations publish to."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from engine.config.base import Duration, Strict, TlsConfig


class AmqpConfig(Strict):
    url: str = "amqp://guest:guest@localhost:5672/"
    prefetch: int = Field(default=200, ge=1, le=65535)
    heartbeat: Duration = timedelta(seconds=30)
    confirm_timeout: Duration = timedelta(seconds=15)
    delivery_limit: int = Field(default=10, ge=1)
    """Quorum queue `x-delivery-limit`: a message that crashes the engine this often is parked."""
    tls: TlsConfig | None = None
