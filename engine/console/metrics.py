"""Throughput, errors and backlog per source and destination, from the store's own tables.

The same figures feed the dashboard and ``/metrics`` (Prometheus text format). They are read
from the tables on each request (grouped counts over indexed columns), not kept in memory, so
every replica reports the same numbers and a restart loses nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.console.models import DestinationFigures, Figures, SourceFigures
from engine.store import Store
from engine.store.schema import attempts, deliveries, messages

WINDOW = timedelta(minutes=15)
"""The window of the recent error rate."""


_STATE = sa.case(
    (sa.and_(deliveries.c.status == "pending", deliveries.c.held_at.is_not(None)), "held"),
    (sa.and_(deliveries.c.status == "dead", deliveries.c.resolved_at.is_not(None)), "resolved"),
    else_=deliveries.c.status,
)


async def figures(store: Store, now: datetime | None = None) -> Figures:
    """Every source's and destination's figures as of `now`."""
    now = now or datetime.now(UTC)
    async with store.engine.connect() as conn:
        sources = await _source_figures(conn)
        destinations = await _destination_figures(conn, now)
    return Figures(now, sources, destinations)


async def _source_figures(conn: AsyncConnection) -> dict[str, SourceFigures]:
    counts: dict[str, dict[str, int]] = {}
    newest: dict[str, datetime] = {}
    for r in await conn.execute(
        sa.select(
            messages.c.source,
            messages.c.status,
            sa.func.count(),
            sa.func.max(messages.c.received_at),
        ).group_by(messages.c.source, messages.c.status)
    ):
        counts.setdefault(r[0], {})[r[1]] = int(r[2])
        last = _utc(r[3])
        if last and (r[0] not in newest or last > newest[r[0]]):
            newest[r[0]] = last
    return {s: SourceFigures(n, newest.get(s)) for s, n in counts.items()}


async def _destination_figures(
    conn: AsyncConnection, now: datetime
) -> dict[str, DestinationFigures]:
    counts: dict[str, dict[str, int]] = {}
    oldest_pending: dict[str, datetime | None] = {}
    last_success: dict[str, datetime | None] = {}
    recent: dict[str, dict[str, int]] = {}
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
        counts.setdefault(r[0], {})[r[1]] = int(r[2])
        if r[1] == "pending":
            oldest_pending[r[0]] = _utc(r[3])
        if r[1] == "delivered":
            last_success[r[0]] = _utc(r[4])
    for r in await conn.execute(
        sa.select(deliveries.c.destination, attempts.c.outcome, sa.func.count())
        .join(deliveries, deliveries.c.id == attempts.c.delivery_id)
        .where(attempts.c.started_at >= now - WINDOW)
        .group_by(deliveries.c.destination, attempts.c.outcome)
    ):
        recent.setdefault(r[0], {})[r[1]] = int(r[2])
    return {
        d: DestinationFigures(
            counts.get(d, {}), oldest_pending.get(d), last_success.get(d), recent.get(d, {})
        )
        for d in {**counts, **recent}
    }


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


_Family = tuple[str, str, list[tuple[str, float]]]
"""A gauge family: its name, its help text and its samples (labels, value)."""


def prometheus(f: Figures) -> str:
    """The figures in the Prometheus text exposition format (0.0.4)."""
    out: list[str] = []
    for name, help_text, samples in _source_families(f) + _destination_families(f):
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} gauge")
        out.extend(f"{name}{{{labels}}} {value:g}" for labels, value in samples)
    return "\n".join(out) + "\n"


def _source_families(f: Figures) -> list[_Family]:
    sources = sorted(f.sources.items())
    return [
        (
            "carebridge_messages",
            "Message-log rows by source and status.",
            [
                (f'source="{_label(s)}",status="{_label(st)}"', n)
                for s, fig in sources
                for st, n in sorted(fig.messages.items())
            ],
        ),
        (
            "carebridge_source_last_received_timestamp_seconds",
            "When each source's newest message was received.",
            [
                (f'source="{_label(s)}"', fig.last_received.timestamp())
                for s, fig in sources
                if fig.last_received
            ],
        ),
    ]


def _destination_families(f: Figures) -> list[_Family]:
    dests = sorted(f.destinations.items())
    return [
        (
            "carebridge_deliveries",
            "Deliveries by destination and state.",
            [
                (f'destination="{_label(d)}",state="{_label(st)}"', n)
                for d, fig in dests
                for st, n in sorted(fig.deliveries.items())
            ],
        ),
        (
            "carebridge_backlog_oldest_age_seconds",
            "Age of each destination's oldest pending (not held) delivery; 0 when none.",
            [
                (
                    f'destination="{_label(d)}"',
                    (f.at - fig.oldest_pending).total_seconds() if fig.oldest_pending else 0.0,
                )
                for d, fig in dests
            ],
        ),
        (
            "carebridge_last_success_timestamp_seconds",
            "When each destination last accepted a delivery.",
            [
                (f'destination="{_label(d)}"', fig.last_success.timestamp())
                for d, fig in dests
                if fig.last_success
            ],
        ),
        (
            "carebridge_attempts_recent",
            f"Delivery attempts in the last {int(WINDOW.total_seconds())} s by outcome.",
            [
                (f'destination="{_label(d)}",outcome="{_label(o)}"', n)
                for d, fig in dests
                for o, n in sorted(fig.attempts_recent.items())
            ],
        ),
    ]
