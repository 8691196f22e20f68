"""The whole file: `Config`, one field per area, and the engine-wide settings too small for a
module of their own (HTTP port, intake batches, logging, shutdown)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Literal

from pydantic import Field, PrivateAttr, model_validator

from engine.config.alerts import AlertsConfig
from engine.config.amqp import AmqpConfig
from engine.config.base import Duration, Name, Strict
from engine.config.console import ConsoleConfig
from engine.config.delivery import DeliveryConfig, RetryPolicy
from engine.config.destinations import Destination
from engine.config.follow_up import FollowUpConfig
from engine.config.listeners import ListenerLimits
from engine.config.routes import Route
from engine.config.sources import FhirListenerConfig, SourceConfig
from engine.config.store import RetentionConfig, StoreConfig
from mappings.clinical.follow_up import FollowUpRule
from mappings.clinical.transitions import TransitionSettings
from mappings.profile import FeedProfile


class HttpConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    limits: ListenerLimits = ListenerLimits()
    behind_tls_proxy: bool = False
    """A TLS-terminating proxy is in front: answers carry Strict-Transport-Security."""


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
    transitions: TransitionSettings = TransitionSettings()
    """When a discharge is flagged as a transition of care: to adult services, out of area."""
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
    _feed_profiles: Mapping[str, FeedProfile] = PrivateAttr()

    @model_validator(mode="after")
    def _gather_feed_profiles(self) -> Config:
        self._feed_profiles = MappingProxyType({s.name: s.feed_profile for s in self.sources})
        return self

    @property
    def feed_profiles(self) -> Mapping[str, FeedProfile]:
        """Each source's mapping profile by source name, built when the config was loaded."""
        return self._feed_profiles

    @property
    def follow_up_rules(self) -> tuple[FollowUpRule, ...]:
        """The follow-up rules in force, built when the config was loaded."""
        return self.follow_up.rules_in_force

    def source(self, name: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.name == name), None)

    def destination(self, name: str) -> Destination | None:
        return next((d for d in self.destinations if d.name == name), None)


def feed_profile(source: SourceConfig) -> FeedProfile:
    """The mapping profile of one source (built when the config was loaded)."""
    return source.feed_profile


def feed_profiles(config: Config) -> dict[str, FeedProfile]:
    """Each source's mapping profile by name (built when the config was loaded)."""
    return dict(config.feed_profiles)


def follow_up_rules(config: Config) -> tuple[FollowUpRule, ...]:
    """The follow-up rules in force: the config's, or the NHS defaults."""
    return config.follow_up_rules
