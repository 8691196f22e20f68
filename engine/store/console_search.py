"""The console's message search: every filter an operator can give, as one indexed query.

A page is a keyset page (newest id first, ``before`` = the last id shown), so the hundredth
page costs what the first does. Each filter has an index led by its column and ending in the id
(migration 0004), so a page of the newest matches is read from one index in order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.store.base import StoreBase
from engine.store.console_models import DeliveryState, MessagePage, MessageSummary
from engine.store.console_reads import delivery_state, delivery_state_is, row_view
from engine.store.schema import deliveries, messages
from engine.store.statuses import MessageStatus

MESSAGE_STATUSES = tuple(MessageStatus)
DELIVERY_STATUSES = (
    DeliveryState.PENDING,
    DeliveryState.HELD,
    DeliveryState.DELIVERED,
    DeliveryState.DEAD,
)
"""The delivery states a search can ask for (a dead one is unresolved)."""
_NHS_NUMBER = re.compile(r"^\d{10}$")


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


MAX_PREFIXES = 500
"""Beyond this many distinct local-key prefixes, a local number search falls back to a suffix
match (a log whose local values themselves hold colons would have one prefix per patient)."""


def local_number(text: str) -> bool:
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
            inner.append(delivery_state_is(f.delivery_status))
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


async def search(
    store: StoreBase, f: SearchFilter, *, before: int | None = None, limit: int = 50
) -> MessagePage:
    """Messages matching every given filter, newest first, with their deliveries' states."""
    async with store.reading() as conn:
        prefixes = None
        if f.patient and local_number(f.patient):
            prefixes = await local_prefixes(conn, f.source)
        query = sa.select(*_LIST_COLUMNS).where(*_conditions(f, prefixes))
        if before is not None:
            query = query.where(messages.c.id < before)
        query = query.order_by(messages.c.id.desc()).limit(limit + 1)
        rows = (await conn.execute(query)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        event_ids = [r.event_id for r in rows if r.event_id]
        states: dict[str, list[tuple[str, DeliveryState]]] = {}
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
        row_view(
            MessageSummary,
            r,
            status=MessageStatus(r.status),
            deliveries=tuple(states.get(r.event_id or "", ())),
        )
        for r in rows
    )
    return MessagePage(page, page[-1].id if more and page else None)
