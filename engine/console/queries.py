"""Read-only queries over the store's tables for the console: search, detail, dead letters.

Every list is a keyset page (newest id first, ``before`` = the last id shown), so the hundredth
page costs what the first does. Each filter has an index led by its column and ending in the id
(migration 0004), so a page of the newest matches is read from one index in order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.console.models import (
    AttemptView,
    DeadLetterPage,
    DeadLetterView,
    DeliveryView,
    EventView,
    LoggedMessage,
    MessageDetail,
    MessagePage,
    MessageSummary,
)
from engine.store import Store
from engine.store.schema import attempts, deliveries, events, messages

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

MESSAGE_STATUSES = ("accepted", "rejected", "duplicate")
DELIVERY_STATUSES = ("pending", "held", "delivered", "dead")
_NHS_NUMBER = re.compile(r"^\d{10}$")
_V = TypeVar("_V", bound="DataclassInstance")


class BadFilter(ValueError):
    """A search value the console cannot use; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class SearchFilter:
    patient: str | None = None
    """An NHS number (spaces allowed), a local patient number, or a whole patient key."""
    control_id: str | None = None
    source: str | None = None
    destination: str | None = None
    status: str | None = None
    delivery_status: str | None = None
    """With or without `destination`: messages having a delivery in this state."""
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def names_a_patient(self) -> bool:
        return bool(self.patient)


def patient_condition(
    text: str, source: str | None = None, prefixes: Sequence[str] | None = None
) -> sa.ColumnElement[bool]:
    """The patient-key condition a patient search means.

    ``nhs:``/``local:`` keys match exactly; ten digits (spaces or dashes allowed) are an NHS
    number; anything else is a local patient number, ``local:<feed>:<authority>:<id>``. With
    the log's `prefixes` (``local:<feed>:<authority>:``, from `local_prefixes`) that is one exact
    index lookup per prefix; without them, a suffix match over the key range of one source when
    a source is given, else over every local key (slow on a large log).
    """
    text = text.strip()
    if text.startswith(("nhs:", "local:")):
        return messages.c.patient_key == text
    digits = re.sub(r"[\s-]", "", text)
    if _NHS_NUMBER.match(digits):
        return messages.c.patient_key == f"nhs:{digits}"
    if not text or len(text) > 120:
        raise BadFilter("a patient number is 1 to 120 characters")
    if prefixes is not None:
        return messages.c.patient_key.in_([p + text for p in prefixes]) if prefixes else sa.false()
    suffix = messages.c.patient_key.endswith(f":{text}", autoescape=True)
    if source:
        prefix = f"local:{source}:"
        # ';' sorts right after ':', so this is exactly the keys that start with the prefix.
        return sa.and_(
            messages.c.patient_key >= prefix, messages.c.patient_key < f"local:{source};", suffix
        )
    return sa.and_(messages.c.patient_key.startswith("local:"), suffix)


def _delivery_state(status: str) -> sa.ColumnElement[bool]:
    if status == "held":
        return sa.and_(deliveries.c.status == "pending", deliveries.c.held_at.is_not(None))
    if status == "pending":
        return sa.and_(deliveries.c.status == "pending", deliveries.c.held_at.is_(None))
    if status == "dead":
        return sa.and_(deliveries.c.status == "dead", deliveries.c.resolved_at.is_(None))
    return deliveries.c.status == status


MAX_PREFIXES = 500
"""Beyond this many distinct local-key prefixes, a local number search falls back to a suffix
match (a log whose local values themselves hold colons would have one prefix per patient)."""


def _local_number(text: str) -> bool:
    """A search text that means a local number without a colon (see `patient_condition`)."""
    text = text.strip()
    return (
        bool(text)
        and len(text) <= 120
        and ":" not in text
        and not _NHS_NUMBER.match(re.sub(r"[\s-]", "", text))
    )


async def local_prefixes(conn: AsyncConnection, source: str | None) -> list[str] | None:
    """The distinct ``local:<feed>:<authority>:`` prefixes of the message log's patient keys
    (one source's, if given), by skip scan: each step is one probe of ix_messages_patient_key
    (``min(patient_key)`` past the last prefix), so the cost is the number of prefixes (feeds
    times authorities: a handful), not the number of messages. None beyond `MAX_PREFIXES`.

    A key's prefix is everything up to its last colon, so a local number is matched exactly as
    ``<prefix><number>``. ';' sorts right after ':', so ``<prefix minus ':'>;`` is the first key
    past every key starting with the prefix."""
    lo = f"local:{source}:" if source else "local:"
    hi = lo[:-1] + ";"
    found: list[str] = []
    while len(found) <= MAX_PREFIXES:
        key = (
            await conn.execute(
                sa.select(sa.func.min(messages.c.patient_key)).where(
                    messages.c.patient_key >= lo, messages.c.patient_key < hi
                )
            )
        ).scalar()
        if key is None:
            return found
        prefix = key[: key.rfind(":") + 1]
        found.append(prefix)
        lo = prefix[:-1] + ";"
    return None


def _conditions(
    f: SearchFilter, prefixes: Sequence[str] | None = None
) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if f.patient:
        where.append(patient_condition(f.patient, f.source, prefixes))
    if f.control_id:
        where.append(messages.c.message_key == f.control_id.strip())

    def plain(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
        # With a patient, the patient-key index must lead (a patient has few messages); SQLite
        # without statistics would walk (source, id) instead. `col || ''` uses no index.
        return column.concat("") if f.patient else column

    if f.source:
        where.append(plain(messages.c.source) == f.source)
    if f.status:
        if f.status not in MESSAGE_STATUSES:
            raise BadFilter(f"status is one of {', '.join(MESSAGE_STATUSES)}")
        where.append(plain(messages.c.status) == f.status)
    if f.kind:
        where.append(plain(messages.c.event_kind) == f.kind)
    if f.since:
        where.append(messages.c.received_at >= f.since)
    if f.until:
        where.append(messages.c.received_at < f.until)
    if f.destination or f.delivery_status:
        if f.delivery_status and f.delivery_status not in DELIVERY_STATUSES:
            raise BadFilter(f"delivery status is one of {', '.join(DELIVERY_STATUSES)}")
        inner: list[sa.ColumnElement[bool]] = [deliveries.c.event_id == messages.c.event_id]
        if f.destination:
            inner.append(deliveries.c.destination == f.destination)
        if f.delivery_status:
            inner.append(_delivery_state(f.delivery_status))
        where.append(sa.exists().where(*inner))
    return where


_LIST_COLUMNS = (
    messages.c.id,
    messages.c.received_at,
    messages.c.source,
    messages.c.message_key,
    messages.c.format,
    messages.c.status,
    messages.c.event_kind,
    messages.c.patient_key,
    messages.c.reason,
    messages.c.error_location,
    messages.c.event_id,
    messages.c.resolved_at,
)


def _view(kind: type[_V], row: sa.Row[*tuple[Any, ...]], **extra: Any) -> _V:
    """A view model from a result row: the row's columns that are the model's fields."""
    values = {**row._mapping, **extra}
    return kind(**{f.name: values[f.name] for f in fields(kind) if f.name in values})


def delivery_state(row: Any) -> str:
    """A delivery's state as operators see it: held and resolved are refinements of the row."""
    if row.status == "pending" and row.held_at is not None:
        return "held"
    if row.status == "dead" and row.resolved_at is not None:
        return "resolved"
    return str(row.status)


async def search(
    store: Store, f: SearchFilter, *, before: int | None = None, limit: int = 50
) -> MessagePage:
    """Messages matching every given filter, newest first, with their deliveries' states."""
    async with store.engine.connect() as conn:
        prefixes = None
        if f.patient and _local_number(f.patient):
            prefixes = await local_prefixes(conn, f.source)
        query = sa.select(*_LIST_COLUMNS).where(*_conditions(f, prefixes))
        if before is not None:
            query = query.where(messages.c.id < before)
        query = query.order_by(messages.c.id.desc()).limit(limit + 1)
        rows = (await conn.execute(query)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        event_ids = [r.event_id for r in rows if r.event_id]
        states: dict[str, list[tuple[str, str]]] = {}
        if event_ids:
            found = await conn.execute(
                sa.select(
                    deliveries.c.event_id,
                    deliveries.c.destination,
                    deliveries.c.status,
                    deliveries.c.held_at,
                    deliveries.c.resolved_at,
                )
                .where(deliveries.c.event_id.in_(event_ids))
                .order_by(deliveries.c.id)
            )
            for d in found:
                states.setdefault(d.event_id, []).append((d.destination, delivery_state(d)))
    page = tuple(
        _view(MessageSummary, r, deliveries=tuple(states.get(r.event_id or "", ()))) for r in rows
    )
    return MessagePage(page, page[-1].id if more and page else None)


async def message_detail(store: Store, message_id: int) -> MessageDetail | None:
    """One message in full: its payload, its care event, and each delivery with its attempts."""
    async with store.engine.connect() as conn:
        row = (await conn.execute(sa.select(messages).where(messages.c.id == message_id))).first()
        if row is None:
            return None
        message = _view(LoggedMessage, row)
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
                tried[a.delivery_id].append(_view(AttemptView, a))
    return MessageDetail(
        message,
        _view(EventView, ev) if ev else None,
        tuple(
            _view(
                DeliveryView,
                d,
                state=delivery_state(d),
                attempt_count=d.attempts,
                attempts=tuple(tried[d.id]),
            )
            for d in found
        ),
    )


async def dead_letters(
    store: Store, *, destination: str | None = None, before: int | None = None, limit: int = 50
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
        .where(_delivery_state("dead"))
    )
    if destination:
        query = query.where(deliveries.c.destination == destination)
    if before is not None:
        query = query.where(deliveries.c.id < before)
    query = query.order_by(deliveries.c.id.desc()).limit(limit + 1)
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    more = len(rows) > limit
    page = tuple(_view(DeadLetterView, r) for r in rows[:limit])
    return DeadLetterPage(page, page[-1].id if more and page else None)


def dead_letter_condition(
    destination: str | None, source: str | None, up_to: int | None
) -> sa.ColumnElement[bool]:
    """The dead letters a bulk replay takes: unresolved, optionally one destination's, one
    source's, and only those the operator saw listed (id ≤ `up_to`), never newer arrivals."""
    where = [_delivery_state("dead")]
    if destination:
        where.append(deliveries.c.destination == destination)
    if source:
        where.append(
            deliveries.c.event_id.in_(sa.select(events.c.event_id).where(events.c.source == source))
        )
    if up_to is not None:
        where.append(deliveries.c.id <= up_to)
    return sa.and_(*where)
