"""Reads: the earlier events corrections look for, and the counts and log for health and tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.store.base import StoreBase
from engine.store.records import Original
from engine.store.schema import deliveries, events, messages
from engine.store.statuses import DeliveryStatus


class Lookups(StoreBase):
    """What corrections ask of the history, and what health and tests count."""

    async def find_original(
        self, patient_key: str, stay_id: str | None, kind: str
    ) -> Original | None:
        """The newest accepted event of `kind` for this patient and stay, with the destinations
        that received it or are still to (not those where it was dead-lettered)."""
        same_stay = (events.c.stay_id.is_(None) if stay_id is None
                     else events.c.stay_id == stay_id)  # fmt: skip
        async with self.reading() as conn:
            row = (await conn.execute(
                sa.select(events.c.event_id)
                .where(events.c.patient_key == patient_key, events.c.kind == kind, same_stay)
                .order_by(events.c.message_id.desc())
                .limit(1)
            )).first()  # fmt: skip
            if row is None:
                return None
            sent = await conn.execute(
                sa.select(deliveries.c.destination)
                .where(deliveries.c.event_id == row.event_id,
                       deliveries.c.status.in_([DeliveryStatus.PENDING, DeliveryStatus.DELIVERED]))
                .order_by(deliveries.c.id)
            )  # fmt: skip
            return Original(row.event_id, tuple(r.destination for r in sent))

    async def patients_with_unmatched_cancels(self, patient_keys: Sequence[str]) -> set[str]:
        """Which of these patients have a cancel on record that found nothing to cancel: only
        their events need `find_early_cancel` (one query per intake batch, not per message)."""
        if not patient_keys:
            return set()
        async with self.reading() as conn:
            rows = await conn.execute(
                sa.select(events.c.patient_key)
                .where(events.c.patient_key.in_(sorted(set(patient_keys))),
                       events.c.kind.like("cancel_%"), events.c.corrects.is_(None))
                .distinct()
            )  # fmt: skip
            return {row.patient_key for row in rows}

    async def patients_with_discharges(self, patient_keys: Sequence[str]) -> set[str]:
        """Which of these patients have a discharge on record (one query per intake batch)."""
        if not patient_keys:
            return set()
        async with self.reading() as conn:
            rows = await conn.execute(
                sa.select(events.c.patient_key)
                .where(events.c.patient_key.in_(sorted(set(patient_keys))),
                       events.c.kind == "discharge")
                .distinct()
            )  # fmt: skip
            return {row.patient_key for row in rows}

    async def standing_discharge(self, patient_key: str, stay_id: str | None) -> str | None:
        """The newest discharge of this patient and stay that still stands: not cancelled, and
        not itself superseded by a cancel that arrived before it."""
        same_stay = (events.c.stay_id.is_(None) if stay_id is None
                     else events.c.stay_id == stay_id)  # fmt: skip
        cancel = events.alias("cancel")
        cancelled = sa.exists().where(cancel.c.kind == "cancel_discharge",
                                      cancel.c.corrects == events.c.event_id)  # fmt: skip
        async with self.reading() as conn:
            row = (await conn.execute(
                sa.select(events.c.event_id)
                .where(events.c.patient_key == patient_key, events.c.kind == "discharge",
                       events.c.corrects.is_(None), same_stay, ~cancelled)
                .order_by(events.c.message_id.desc())
                .limit(1)
            )).first()  # fmt: skip
            return None if row is None else str(row.event_id)

    async def find_early_cancel(
        self, patient_key: str, stay_id: str | None, cancel_kind: str, occurred_at: datetime | None
    ) -> str | None:
        """A cancel of `cancel_kind` for this patient and stay that found nothing to cancel when
        it arrived and happened no earlier than `occurred_at` (so it cancels an event that came
        late, out of order, not a newer one): its event id, or None."""
        same_stay = (events.c.stay_id.is_(None) if stay_id is None
                     else events.c.stay_id == stay_id)  # fmt: skip
        not_before = (sa.true() if occurred_at is None
                      else sa.or_(events.c.occurred_at.is_(None),
                                  events.c.occurred_at >= occurred_at))  # fmt: skip
        async with self.reading() as conn:
            row = (await conn.execute(
                sa.select(events.c.event_id)
                .where(events.c.patient_key == patient_key, events.c.kind == cancel_kind,
                       events.c.corrects.is_(None), same_stay, not_before)
                .order_by(events.c.message_id)
                .limit(1)
            )).first()  # fmt: skip
            return None if row is None else str(row.event_id)

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
