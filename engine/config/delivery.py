"""``delivery:`` and ``retry_policies:``: how the outbox is worked and how failures are retried."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from engine.config.base import Duration, Strict


class DeliveryConfig(Strict):
    concurrency: int = Field(default=64, ge=1)
    per_destination: int = Field(default=32, ge=1)
    """Most deliveries in flight to one destination (an MLLP destination always takes one at a
    time: its link is serial), so a slow destination cannot hold every slot (half of them by
    default). A slot is held from the claim to the outcome's commit (on PostgreSQL, until the
    outcome is decided), so this over that cycle bounds a destination's throughput: at 16 (32
    slots in all) one webhook destination took about 1,000 deliveries/s on SQLite and 600 on
    PostgreSQL while intake committed 1,400 to 1,900 (issue 16)."""
    batch_size: int = Field(default=100, ge=1)
    poll_interval: Duration = timedelta(seconds=1)
    lease: Duration = timedelta(seconds=20)
    """How long a claimed delivery is reserved. The engine sending it renews the lease every
    quarter of it while the send runs, so a slow send keeps it however long it takes, and a
    dead engine's deliveries are free again within one lease."""


class RetryPolicy(Strict):
    """Quick in-process retries first, then durable rescheduling with backoff and jitter."""

    quick_attempts: int = Field(default=3, ge=1, le=10)
    quick_wait: Duration = timedelta(milliseconds=200)
    initial_backoff: Duration = timedelta(seconds=5)
    max_backoff: Duration = timedelta(minutes=15)
    multiplier: float = Field(default=2.0, ge=1.0)
    jitter: float = Field(default=0.2, ge=0.0, le=1.0)
    max_attempts: int | None = Field(default=None, ge=1)
    max_age: Duration | None = timedelta(hours=72)

    @model_validator(mode="after")
    def _bounded(self) -> RetryPolicy:
        if self.max_attempts is None and self.max_age is None:
            raise ValueError("set max_attempts or max_age, or a delivery could retry forever")
        if self.max_backoff < self.initial_backoff:
            raise ValueError("max_backoff must not be shorter than initial_backoff")
        return self
