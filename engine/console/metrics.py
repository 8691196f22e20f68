"""Throughput, errors and backlog per source and destination, from the store's own tables.

The same figures feed the dashboard and ``/metrics`` (Prometheus text format). They are read
from the tables on each request (grouped counts over indexed columns), not kept in memory, so
every replica reports the same numbers and a restart loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from engine.store import Store
from engine.store.schema import attempts, deliveries, messages

WINDOW = timedelta(minutes=15)
"""The window of the recent error rate."""


@dataclass
class SourceFigures:
    messages: dict[str, int] = field(default_factory=dict)
    """Message-log rows by status (accepted, rejected, duplicate)."""
    last_received: datetime | None = None


@dataclass
class DestinationFigures:
    deliveries: dict[str, int] = field(default_factory=dict)
    """By state: pending, held, delivered, dead (unresolved), resolved."""
    oldest_pending: datetime | None = None
    last_success: datetime | None = None
    attempts_recent: dict[str, int] = field(default_factory=dict)
    """Attempts in the last `WINDOW` by outcome (delivered, transient, permanent)."""

    @property
    def error_rate(self) -> float | None:
        total = sum(self.attempts_recent.values())
        failed = total - self.attempts_recent.get("delivered", 0)
        return None if total == 0 else failed / total


@dataclass
class Figures:
    at: datetime
    sources: dict[str, SourceFigures]
    destinations: dict[str, DestinationFigures]


_STATE = sa.case(
    (sa.and_(deliveries.c.status == "pending", deliveries.c.held_at.is_not(None)), "held"),
    (sa.and_(deliveries.c.status == "dead", deliveries.c.resolved_at.is_not(None)), "resolved"),
    else_=deliveries.c.status,
)


async def figures(store: Store, now: datetime | None = None) -> Figures:
    now = now or datetime.now(UTC)
    sources: dict[str, SourceFigures] = {}
    dests: dict[str, DestinationFigures] = {}
    async with store.engine.connect() as conn:
        for r in await conn.execute(
            sa.select(
                messages.c.source,
                messages.c.status,
                sa.func.count(),
                sa.func.max(messages.c.received_at),
            ).group_by(messages.c.source, messages.c.status)
        ):
            s = sources.setdefault(r[0], SourceFigures())
            s.messages[r[1]] = int(r[2])
            last = _utc(r[3])
            if last and (s.last_received is None or last > s.last_received):
                s.last_received = last
        state = _STATE.label("state")
        for r in await conn.execute(
            sa.select(
                deliveries.c.destination,
                state,
                sa.func.count(),
                sa.func.min(deliveries.c.created_at),
                sa.func.max(deliveries.c.delivered_at),
            ).group_by(deliveries.c.destination, state)
        ):
            d = dests.setdefault(r[0], DestinationFigures())
            d.deliveries[r[1]] = int(r[2])
            if r[1] == "pending":
                d.oldest_pending = _utc(r[3])
            if r[1] == "delivered":
                d.last_success = _utc(r[4])
        for r in await conn.execute(
            sa.select(deliveries.c.destination, attempts.c.outcome, sa.func.count())
            .join(deliveries, deliveries.c.id == attempts.c.delivery_id)
            .where(attempts.c.started_at >= now - WINDOW)
            .group_by(deliveries.c.destination, attempts.c.outcome)
        ):
            dests.setdefault(r[0], DestinationFigures()).attempts_recent[r[1]] = int(r[2])
    return Figures(now, sources, dests)


def _utc(value: object) -> datetime | None:
    """Aggregates bypass the column type on SQLite: naive text or datetimes come back."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus(f: Figures) -> str:
    """The figures in the Prometheus text exposition format (0.0.4)."""
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{{{labels}}} {value:g}" for labels, value in samples)

    family(
        "carebridge_messages",
        "gauge",
        "Message-log rows by source and status.",
        [
            (f'source="{_label(s)}",status="{_label(st)}"', n)
            for s, fig in sorted(f.sources.items())
            for st, n in sorted(fig.messages.items())
        ],
    )
    family(
        "carebridge_source_last_received_timestamp_seconds",
        "gauge",
        "When each source's newest message was received.",
        [
            (f'source="{_label(s)}"', fig.last_received.timestamp())
            for s, fig in sorted(f.sources.items())
            if fig.last_received
        ],
    )
    family(
        "carebridge_deliveries",
        "gauge",
        "Deliveries by destination and state.",
        [
            (f'destination="{_label(d)}",state="{_label(st)}"', n)
            for d, fig in sorted(f.destinations.items())
            for st, n in sorted(fig.deliveries.items())
        ],
    )
    family(
        "carebridge_backlog_oldest_age_seconds",
        "gauge",
        "Age of each destination's oldest pending (not held) delivery; 0 when none.",
        [
            (
                f'destination="{_label(d)}"',
                (f.at - fig.oldest_pending).total_seconds() if fig.oldest_pending else 0.0,
            )
            for d, fig in sorted(f.destinations.items())
        ],
    )
    family(
        "carebridge_last_success_timestamp_seconds",
        "gauge",
        "When each destination last accepted a delivery.",
        [
            (f'destination="{_label(d)}"', fig.last_success.timestamp())
            for d, fig in sorted(f.destinations.items())
            if fig.last_success
        ],
    )
    family(
        "carebridge_attempts_recent",
        "gauge",
        f"Delivery attempts in the last {int(WINDOW.total_seconds())} s by outcome.",
        [
            (f'destination="{_label(d)}",outcome="{_label(o)}"', n)
            for d, fig in sorted(f.destinations.items())
            for o, n in sorted(fig.attempts_recent.items())
        ],
    )
    return "\n".join(out) + "\n"
