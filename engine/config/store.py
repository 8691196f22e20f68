"""``store:`` and ``retention:``: where the message log and outbox live, and how long."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from engine.config.base import Duration, Strict, TlsConfig


class StoreConfig(Strict):
    url: str = "sqlite+aiosqlite:///carebridge.db"
    tls: TlsConfig | None = None
    pool_size: int = Field(default=5, ge=1)
    min_free_bytes: int = Field(default=32 * 1024 * 1024, ge=0)
    """SQLite: with less free space than this on the database's filesystem, intake takes no new
    message (AMQP messages stay queued, MLLP AR, FHIR 503) and /readyz is not ready, until
    space returns."""

    @field_validator("url")
    @classmethod
    def _supported_driver(cls, url: str) -> str:
        if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return url


class RetentionConfig(Strict):
    message_log: Duration | None = timedelta(days=90)
    """Settled messages older than this are pruned with their events, deliveries and attempts;
    null keeps everything. Pending deliveries, dead letters and rejected messages are kept."""
    interval: Duration = timedelta(hours=1)
    batch: int = Field(default=200, ge=1)
    """Messages deleted per transaction: each holds the store's writer, so intake and delivery
    wait at most one batch; the pass paces itself between batches (`engine.retention`)."""
