"""The whole file: `Config`, one field per area, and the engine-wide settings too small for a
module of their own (HTTP port, intake batches, logging, shutdown)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from engine.config.alerts import AlertsConfig
from engine.config.amqp import AmqpConfig
from engine.config.base import Duration, Name, Strict
from engine.config.console import ConsoleConfig
from engine.config.delivery import DeliveryConfig, RetryPolicy
from engine.config.destinations import Destination
from engine.config.follow_up import FollowUpConfig
from engine.config.routes import Route
from engine.config.sources import FhirListenerConfig, SourceConfig
from engine.config.store import RetentionConfig, StoreConfig


class HttpConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class IntakeConfig(Strict):
    batch_size: int = Field(default=100, ge=1, le=1000)
    """Messages committed in one store transaction at most (each still atomic on its own)."""
    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """A larger message is rejected (and kept): no ADT or FHIR message of one event is this big."""


class ShutdownConfig(Strict):
    deadline: Duration = timedelta(seconds=20)
    """On SIGTERM, in-flight deliveries get this long to finish; then their leases are released."""


class LoggingConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class Config(Strict):
    amqp: AmqpConfig = AmqpConfig()
    store: StoreConfig = StoreConfig()
    http: HttpConfig = HttpConfig()
    fhir_http: FhirListenerConfig | None = None
    console: ConsoleConfig | None = None
    alerts: AlertsConfig | None = None
    follow_up: FollowUpConfig = FollowUpConfig()
    intake: IntakeConfig = IntakeConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    logging: LoggingConfig = LoggingConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    retention: RetentionConfig = RetentionConfig()
    retry_policies: dict[Name, RetryPolicy] = Field(
        default_factory=lambda: {"default": RetryPolicy()}
    )
    sources: list[SourceConfig] = Field(min_length=1)
    destinations: list[Destination] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)

    def source(self, name: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.name == name), None)

    def destination(self, name: str) -> Destination | None:
        return next((d for d in self.destinations if d.name == name), None)
