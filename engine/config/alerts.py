"""``alerts:``: operator alerts (backlog, dead letters, silent sources) and the one alert webhook
model, which the follow-up alerts use too."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from engine.config.base import Duration, HttpUrl, Name, Secret, Strict


class AlertWebhook(Strict):
    """Where alerts are POSTed, signed when `secret` is set."""

    url: HttpUrl
    secret: Secret | None = None
    """HMAC key for X-Carebridge-Signature; only as ${ENV_NAME}."""


class AlertsConfig(Strict):
    """``alerts:`` in the engine's YAML (absent: no operator alerts)."""

    webhook: AlertWebhook
    backlog_older_than: Duration | None = timedelta(minutes=15)
    """Alert when a destination's oldest pending delivery is older than this; null: never."""
    dead_letters: bool = True
    """Alert once for each new dead letter."""
    silent_sources: dict[Name, Duration] = Field(default_factory=dict)
    """Source name → how long without a message before alerting."""
    check_interval: Duration = timedelta(seconds=60)
    max_per_check: int = Field(default=100, ge=1, le=10_000)
    """Most alerts posted per check; the rest follow at the next checks (a burst of dead
    letters, or a restart, never floods the receiver in one go)."""
