"""The series behind the dashboard's charts: messages per minute by source (last hour or
24 h), deliveries and dead letters per hour, delivery latency p50/p99 per hour (last 24 h).

Counts are grouped in SQL by time bucket (``received_at`` and ``attempts.started_at`` are
indexed), so a chart costs one indexed range scan whatever the traffic. Latency is read from
the delivered attempts of the window (their delivery's ``created_at`` to ``delivered_at``), at
most `LATENCY_SAMPLE` of them, and its percentiles computed here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.store.base import StoreBase
from engine.store.schema import attempts, deliveries, messages
from engine.store.statuses import DeliveryStatus

LATENCY_SAMPLE = 50_000
"""At most this many delivered attempts feed the latency percentiles (the newest)."""


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: tuple[float | None, ...]
    """One value a bucket, oldest first; None where there is nothing to measure."""


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    unit: str
    start: datetime
    """The start of the first bucket (UTC)."""
    step: timedelta
    series: tuple[Series, ...]


def _bucket(
    column: sa.ColumnElement[datetime], width: int, postgres: bool
) -> sa.ColumnElement[Any]:
    """Whole `width`-second buckets since the epoch, in SQL."""
    if postgres:
        return sa.cast(sa.func.floor(sa.extract("epoch", column) / width), sa.BigInteger)
    return sa.cast(sa.func.strftime("%s", column), sa.Integer) // width


def _postgres(store: StoreBase) -> bool:
    return store.engine.dialect.name == "postgresql"


def _frame(now: datetime, span: timedelta, step: timedelta) -> tuple[datetime, int, int]:
    """The first bucket's start, its bucket number and the number of buckets."""
    width = int(step.total_seconds())
    last = int(now.timestamp()) // width
    count = int(span / step)
    first = last - count + 1
    return datetime.fromtimestamp(first * width, UTC), first, count


async def message_rates(store: StoreBase, now: datetime, span: timedelta) -> Chart:
    """Messages per minute by source: per minute over an hour, else per 15 minutes (as a rate)."""
    step = timedelta(minutes=1) if span <= timedelta(hours=2) else timedelta(minutes=15)
    start, first, count = _frame(now, span, step)
    width = int(step.total_seconds())
    bucket = _bucket(messages.c.received_at, width, _postgres(store)).label("b")
    query = (
        sa.select(messages.c.source, bucket, sa.func.count())
        .where(messages.c.received_at >= start)
        .group_by(messages.c.source, bucket)
    )
    per: dict[str, list[float | None]] = {}
    async with store.reading() as conn:
        for source, b, n in await conn.execute(query):
            row = per.setdefault(source, [0.0] * count)
            if 0 <= int(b) - first < count:
                row[int(b) - first] = (row[int(b) - first] or 0) + int(n) * 60 / width
    series = tuple(Series(s, tuple(v)) for s, v in sorted(per.items()))
    return Chart("Messages per minute by source", "per minute", start, step, series)


async def delivery_counts(store: StoreBase, now: datetime) -> Chart:
    """Deliveries delivered, and dead-lettered (their last attempt), per hour over 24 h."""
    step = timedelta(hours=1)
    start, first, count = _frame(now, timedelta(hours=24), step)
    bucket = _bucket(attempts.c.started_at, 3600, _postgres(store)).label("b")
    later = attempts.alias("later")
    last = (
        sa.select(sa.func.max(later.c.id))
        .where(later.c.delivery_id == attempts.c.delivery_id)
        .scalar_subquery()
    )
    delivered = (
        sa.select(bucket, sa.func.count())
        .where(attempts.c.started_at >= start, attempts.c.outcome == "delivered")
        .group_by(bucket)
    )
    dead = (
        sa.select(bucket, sa.func.count())
        .select_from(attempts)
        .join(deliveries, deliveries.c.id == attempts.c.delivery_id)
        .where(
            attempts.c.started_at >= start,
            deliveries.c.status == DeliveryStatus.DEAD,
            attempts.c.id == last,
        )
        .group_by(bucket)
    )
    async with store.reading() as conn:
        ok = await _counts(conn, delivered, first, count)
        failed = await _counts(conn, dead, first, count)
    series = (Series("delivered", ok), Series("dead-lettered", failed))
    return Chart("Deliveries and dead letters", "per hour", start, step, series)


async def _counts(
    conn: AsyncConnection, query: sa.Select[Any], first: int, count: int
) -> tuple[float | None, ...]:
    values: list[float | None] = [0.0] * count
    for b, n in await conn.execute(query):
        if 0 <= int(b) - first < count:
            values[int(b) - first] = (values[int(b) - first] or 0) + float(n)
    return tuple(values)


async def delivery_latency(store: StoreBase, now: datetime) -> Chart:
    """Seconds from queued to delivered, p50 and p99 per hour over 24 h."""
    step = timedelta(hours=1)
    start, _first, count = _frame(now, timedelta(hours=24), step)
    query = (
        sa.select(deliveries.c.created_at, deliveries.c.delivered_at)
        .select_from(attempts)
        .join(deliveries, deliveries.c.id == attempts.c.delivery_id)
        .where(
            attempts.c.started_at >= start,
            attempts.c.outcome == "delivered",
            deliveries.c.delivered_at.is_not(None),
        )
        .order_by(attempts.c.started_at.desc())
        .limit(LATENCY_SAMPLE)
    )
    hours: list[list[float]] = [[] for _ in range(count)]
    async with store.reading() as conn:
        for row in await conn.execute(query):
            created, delivered = row[0], row[1]
            index = int((delivered - start) / step)
            if 0 <= index < count:
                hours[index].append(max(0.0, (delivered - created).total_seconds()))
    series = (
        Series("p50", tuple(percentile(h, 50) for h in hours)),
        Series("p99", tuple(percentile(h, 99) for h in hours)),
    )
    return Chart("Delivery latency, queued to delivered", "seconds, by hour", start, step, series)


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
