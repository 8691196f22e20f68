"""The store's reads for operators: one message in full, the dead letters, the audit log and
the figures behind the dashboard and ``/metrics``. Each returns the frozen view models of
`console_models`; message search is `console_search`.

Lists are keyset pages (newest id first, ``before`` = the last id shown). The figures are
grouped counts over indexed columns, read on each request rather than kept in memory, so every
replica reports the same numbers and a restart loses nothing.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.store.base import StoreBase
from engine.store.console_mesh import mesh_views
from engine.store.console_models import (
    AttemptView,
    AuditRecord,
    DeadLetterPage,
    DeadLetterView,
    DeliveryState,
    DeliveryView,
    DestinationFigures,
    EventView,
    Figures,
    LoggedMessage,
    MessageDetail,
    SourceFigures,
)
from engine.store.schema import attempts, audit_log, deliveries, events, messages
from engine.store.statuses import DeliveryStatus, MessageStatus

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_V = TypeVar("_V", bound="DataclassInstance")
WINDOW = timedelta(minutes=15)
"""The window of the recent error rate."""


def row_view(kind: type[_V], row: sa.Row[*tuple[Any, ...]], **extra: Any) -> _V:
    """A view model from a result row: the row's columns that are the model's fields."""
    values = {**row._mapping, **extra}
    return kind(**{f.name: values[f.name] for f in fields(kind) if f.name in values})


def delivery_state(row: Any) -> DeliveryState:
    """A delivery row's state as operators see it: held and resolved refine the status."""
    if row.status == DeliveryStatus.PENDING and row.held_at is not None:
        return DeliveryState.HELD
    if row.status == DeliveryStatus.DEAD and row.resolved_at is not None:
        return DeliveryState.RESOLVED
    return DeliveryState(row.status)


def delivery_state_is(state: str) -> sa.ColumnElement[bool]:
    """The deliveries in `state` (a `DeliveryState`), as SQL: the inverse of `delivery_state`."""
    status = deliveries.c.status
    if state == DeliveryState.HELD:
        return sa.and_(status == DeliveryStatus.PENDING, deliveries.c.held_at.is_not(None))
    if state == DeliveryState.PENDING:
        return sa.and_(status == DeliveryStatus.PENDING, deliveries.c.held_at.is_(None))
    if state == DeliveryState.DEAD:
        return sa.and_(status == DeliveryStatus.DEAD, deliveries.c.resolved_at.is_(None))
    return status == state


async def message_detail(store: StoreBase, message_id: int) -> MessageDetail | None:
    """One message in full: its payload, its care event, and each delivery with its attempts."""
    async with store.reading() as conn:
        row = (await conn.execute(sa.select(messages).where(messages.c.id == message_id))).first()
        if row is None:
            return None
        message = row_view(LoggedMessage, row, status=MessageStatus(row.status))
        if not message.event_id:
            return MessageDetail(message, None)
        ev = (
            await conn.execute(sa.select(events).where(events.c.event_id == message.event_id))
        ).first()
        found = (
            await conn.execute(
                sa.select(deliveries)
                .where(deliveries.c.event_id == message.event_id)
                .order_by(deliveries.c.id)
            )
        ).all()
        tried: dict[int, list[AttemptView]] = {d.id: [] for d in found}
        if found:
            for a in await conn.execute(
                sa.select(attempts)
                .where(attempts.c.delivery_id.in_(list(tried)))
                .order_by(attempts.c.id)
            ):
                tried[a.delivery_id].append(row_view(AttemptView, a))
        mesh = await mesh_views(conn, list(tried))
    return MessageDetail(
        message,
        row_view(EventView, ev) if ev else None,
        tuple(
            row_view(
                DeliveryView,
                d,
                status=DeliveryStatus(d.status),
                state=delivery_state(d),
                attempt_count=d.attempts,
                attempts=tuple(tried[d.id]),
                mesh=mesh.get(d.id),
            )
            for d in found
        ),
    )


async def dead_letters(
    store: StoreBase, *, destination: str | None = None, before: int | None = None, limit: int = 50
) -> DeadLetterPage:
    """Unresolved dead letters, newest first, with the message each came from."""
    query = (
        sa.select(
            deliveries.c.id,
            deliveries.c.destination,
            deliveries.c.patient_key,
            deliveries.c.attempts,
            deliveries.c.last_error,
            deliveries.c.created_at,
            deliveries.c.hold,
            messages.c.id.label("message_id"),
            messages.c.source,
            messages.c.message_key,
            messages.c.event_kind,
        )
        .join(messages, messages.c.event_id == deliveries.c.event_id)
        .where(delivery_state_is("dead"))
    )
    if destination:
        query = query.where(deliveries.c.destination == destination)
    if before is not None:
        query = query.where(deliveries.c.id < before)
    query = query.order_by(deliveries.c.id.desc()).limit(limit + 1)
    async with store.reading() as conn:
        rows = (await conn.execute(query)).all()
    more = len(rows) > limit
    page = tuple(row_view(DeadLetterView, r) for r in rows[:limit])
    return DeadLetterPage(page, page[-1].id if more and page else None)


def dead_letter_condition(
    destination: str | None, source: str | None, up_to: int | None
) -> sa.ColumnElement[bool]:
    """The dead letters a bulk replay takes: unresolved, optionally one destination's, one
    source's, and only those the operator saw listed (id ≤ `up_to`), never newer arrivals."""
    where = [delivery_state_is("dead")]
    if destination:
        where.append(deliveries.c.destination == destination)
    if source:
        where.append(
            deliveries.c.event_id.in_(sa.select(events.c.event_id).where(events.c.source == source))
        )
    if up_to is not None:
        where.append(deliveries.c.id <= up_to)
    return sa.and_(*where)


async def audit_entries(
    store: StoreBase,
    *,
    before_id: int | None = None,
    limit: int = 100,
    actor: str | None = None,
    patient_key: str | None = None,
    message_id: int | None = None,
) -> list[AuditRecord]:
    """The newest audit entries first, optionally one actor's, one patient's or one message's."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    if patient_key:
        query = query.where(audit_log.c.patient_key == patient_key)
    if message_id is not None:
        query = query.where(audit_log.c.message_id == message_id)
    async with store.reading() as conn:
        return [row_view(AuditRecord, r) for r in await conn.execute(query)]


_STATE = sa.case(
    (
        sa.and_(deliveries.c.status == DeliveryStatus.PENDING, deliveries.c.held_at.is_not(None)),
        DeliveryState.HELD.value,
    ),
    (
        sa.and_(deliveries.c.status == DeliveryStatus.DEAD, deliveries.c.resolved_at.is_not(None)),
        DeliveryState.RESOLVED.value,
    ),
    else_=deliveries.c.status,
)
"""`delivery_state` in SQL, for grouped counts (a literal in a CASE is bound as plain text)."""


async def figures(store: StoreBase, now: datetime | None = None) -> Figures:
    """Every source's and destination's figures as of `now`."""
    now = now or datetime.now(UTC)
    async with store.reading() as conn:
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
        if r[1] == DeliveryState.PENDING:
            oldest_pending[r[0]] = _utc(r[3])
        if r[1] == DeliveryState.DELIVERED:
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
