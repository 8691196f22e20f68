"""``limits`` under each HTTP listener (``http``, ``fhir_http``, ``console``): what one slow, idle
or greedy client may hold of it. The same keys and defaults everywhere; the defaults let a
well-behaved client through while hundreds of slow ones trickle bytes."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from engine.config.base import Duration, Strict


class ListenerLimits(Strict):
    header_timeout: Duration = timedelta(seconds=10)
    """A new connection must send its request line and headers (and finish a TLS handshake)
    within this, or it is closed."""
    body_timeout: Duration = timedelta(seconds=60)
    """A request body must have arrived this long after its headers (else 408)."""
    idle_timeout: Duration = timedelta(seconds=15)
    """A kept-alive connection without a complete new request for this long is closed."""
    max_connections: int = Field(default=256, ge=1, le=10_000)
    """Open connections at most; when full, the one waiting longest for its request head is
    closed for a newcomer, and if none is waiting the newcomer is answered 503."""

    @field_validator("header_timeout", "body_timeout", "idle_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be more than 0")
        return value
