"""Reads: the earlier events corrections look for, and the counts and log for health and tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from engine.store.base import StoreBase
from engine.store.records import Original
from engine.store.schema import deliveries, events, messages
from engine.store.statuses import DeliveryStatus

T = TypeVar("T")


class History:
    """What corrections ask of the history, on a connection of the caller's: the intake write
    asks it inside its own transaction (`IntakeWrites.link_and_record`), so the answers and the
    batch's rows are of one moment and cost no connection, thread hand-off or round trip of
    their own. Each statement is built once (`_FIND_ORIGINAL` and the rest)."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self._postgres = conn.dialect.name == "postgresql"

    def find_original(self, patient_key: str, stay_id: str | None, kind: str) -> Original | None:
        """The newest accepted event of `kind` for this patient and stay, with the destinations
        that received it or are still to (not those where it was dead-lettered)."""
        query = _FIND_ORIGINAL_NO_STAY if stay_id is None else _FIND_ORIGINAL
        params = {"patient_key": patient_key, "stay_id": stay_id, "kind": kind}
        event_id = self._conn.execute(query, params).scalar()
        if event_id is None:
            return None
        sent = self._conn.execute(_SENT_TO, {"event_id": event_id}).scalars()
        return Original(event_id, tuple(sent))

    def patients_with_unmatched_cancels(self, patient_keys: Sequence[str]) -> set[str]:
        """Which of these patients have a cancel on record that found nothing to cancel: only
        their events need `find_early_cancel` (one query per intake batch, not per message)."""
        if not patient_keys:
            return set()
        keys = {"keys": sorted(set(patient_keys))}
        return set(self._conn.execute(_UNMATCHED_CANCELS[self._postgres], keys).scalars())

    def patients_with_discharges(self, patient_keys: Sequence[str]) -> set[str]:
        """Which of these patients have a discharge on record (one query per intake batch)."""
        if not patient_keys:
            return set()
        keys = {"keys": sorted(set(patient_keys))}
        return set(self._conn.execute(_WITH_DISCHARGES[self._postgres], keys).scalars())

    def standing_discharge(self, patient_key: str, stay_id: str | None) -> str | None:
        """The newest discharge of this patient and stay that still stands: not cancelled, and
        not itself superseded by a cancel that arrived before it."""
        query = _STANDING_NO_STAY if stay_id is None else _STANDING
        found = self._conn.execute(query, {"patient_key": patient_key, "stay_id": stay_id})
        event_id = found.scalar()
        return None if event_id is None else str(event_id)

    def find_early_cancel(
        self, patient_key: str, stay_id: str | None, cancel_kind: str, occurred_at: datetime | None
    ) -> str | None:
        """A cancel of `cancel_kind` for this patient and stay that found nothing to cancel when
        it arrived and happened no earlier than `occurred_at` (so it cancels an event that came
        late, out of order, not a newer one): its event id, or None."""
        not_before = (sa.true() if occurred_at is None
                      else sa.or_(events.c.occurred_at.is_(None),
                                  events.c.occurred_at >= occurred_at))  # fmt: skip
        event_id = self._conn.execute(
            sa.select(events.c.event_id)
            .where(events.c.patient_key == patient_key, events.c.kind == cancel_kind,
                   events.c.corrects.is_(None), _same_stay(events, stay_id is not None),
                   not_before)
            .order_by(events.c.message_id)
            .limit(1),
            {"stay_id": stay_id},
        ).scalar()  # fmt: skip
        return None if event_id is None else str(event_id)


def _same_stay(table: sa.TableClause, stay: bool) -> sa.ColumnElement[bool]:
    return table.c.stay_id == sa.bindparam("stay_id") if stay else table.c.stay_id.is_(None)


def _find_original(stay: bool) -> sa.Select[str]:
    return (
        sa.select(events.c.event_id)
        .where(events.c.patient_key == sa.bindparam("patient_key"),
               events.c.kind == sa.bindparam("kind"), _same_stay(events, stay))
        .order_by(events.c.message_id.desc())
        .limit(1)
    )  # fmt: skip


def _standing(stay: bool) -> sa.Select[str]:
    cancel = events.alias("cancel")
    cancelled = sa.exists().where(cancel.c.kind == "cancel_discharge",
                                  cancel.c.corrects == events.c.event_id)  # fmt: skip
    return (
        sa.select(events.c.event_id)
        .where(events.c.patient_key == sa.bindparam("patient_key"), events.c.kind == "discharge",
               events.c.corrects.is_(None), _same_stay(events, stay), ~cancelled)
        .order_by(events.c.message_id.desc())
        .limit(1)
    )  # fmt: skip


_FIND_ORIGINAL, _FIND_ORIGINAL_NO_STAY = _find_original(True), _find_original(False)
_STANDING, _STANDING_NO_STAY = _standing(True), _standing(False)
_SENT_TO = (
    sa.select(deliveries.c.destination)
    .where(deliveries.c.event_id == sa.bindparam("event_id"),
           deliveries.c.status.in_([DeliveryStatus.PENDING, DeliveryStatus.DELIVERED]))
    .order_by(deliveries.c.id)
)  # fmt: skip


def one_of_keys(column: sa.ColumnElement[str], postgres: bool) -> sa.ColumnElement[bool]:
    """`column` is one of the values of the "keys" parameter (a list): on PostgreSQL one array
    parameter (``= ANY``), compiled once, where SQLAlchemy renders an expanded IN anew for each
    call, with a cast for each value; elsewhere (SQLite has no arrays) the expanded IN."""
    if postgres:
        return column == sa.any_(sa.bindparam("keys", type_=postgresql.ARRAY(sa.String)))
    return column.in_(sa.bindparam("keys", expanding=True))


def _unmatched_cancels(postgres: bool) -> sa.Select[Any]:
    return (
        sa.select(events.c.patient_key)
        .where(one_of_keys(events.c.patient_key, postgres),
               events.c.kind.like("cancel_%"), events.c.corrects.is_(None))
        .distinct()
    )  # fmt: skip


def _with_discharges(postgres: bool) -> sa.Select[Any]:
    return (
        sa.select(events.c.patient_key)
        .where(one_of_keys(events.c.patient_key, postgres), events.c.kind == "discharge")
        .distinct()
    )


# By `postgres` (False, True).
_UNMATCHED_CANCELS = (_unmatched_cancels(False), _unmatched_cancels(True))
_WITH_DISCHARGES = (_with_discharges(False), _with_discharges(True))


class Lookups(StoreBase):
    """What corrections ask of the history (`History`, on a connection of the store's own), and
    what health and tests count."""

    async def _history(self, ask: Callable[[History], T]) -> T:
        async with self.reading() as conn:
            return await conn.run_sync(lambda sync: ask(History(sync)))

    async def find_original(
        self, patient_key: str, stay_id: str | None, kind: str
    ) -> Original | None:
        """`History.find_original`."""
        return await self._history(lambda h: h.find_original(patient_key, stay_id, kind))

    async def patients_with_unmatched_cancels(self, patient_keys: Sequence[str]) -> set[str]:
        """`History.patients_with_unmatched_cancels`."""
        return await self._history(lambda h: h.patients_with_unmatched_cancels(patient_keys))

    async def patients_with_discharges(self, patient_keys: Sequence[str]) -> set[str]:
        """`History.patients_with_discharges`."""
        return await self._history(lambda h: h.patients_with_discharges(patient_keys))

    async def standing_discharge(self, patient_key: str, stay_id: str | None) -> str | None:
        """`History.standing_discharge`."""
        return await self._history(lambda h: h.standing_discharge(patient_key, stay_id))

    async def find_early_cancel(
        self, patient_key: str, stay_id: str | None, cancel_kind: str, occurred_at: datetime | None
    ) -> str | None:
        """`History.find_early_cancel`."""
        return await self._history(
            lambda h: h.find_early_cancel(patient_key, stay_id, cancel_kind, occurred_at)
        )

    async def counts(self) -> dict[str, int]:
        """Messages by status and deliveries by status, for health and tests."""
        async with self.reading() as conn:
            out: dict[str, int] = {}
            for table, prefix in ((messages, "messages"), (deliveries, "deliveries")):
                rows = await conn.execute(
                    sa.select(table.c.status, sa.func.count()).group_by(table.c.status)
                )
                out.update({f"{prefix}.{status}": n for status, n in rows})
            return out

    async def message_log(self, *, limit: int = 50) -> list[dict[str, Any]]:
        """The newest message-log rows without payloads."""
        async with self.reading() as conn:
            rows = await conn.execute(
                sa.select(
                    messages.c.id,
                    messages.c.source,
                    messages.c.message_key,
                    messages.c.status,
                    messages.c.reason,
                    messages.c.error_location,
                    messages.c.event_kind,
                    messages.c.received_at,
                )
                .order_by(messages.c.id.desc())
                .limit(limit)
            )
            return [dict(r._mapping) for r in rows]
