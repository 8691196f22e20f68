"""One patient's journey for the console: every message and event the engine holds for a patient
key, across all sources, with each event's deliveries, follow-up, corrections and merges.

Read by patient key (``nhs:<number>`` or ``local:<feed>:<authority>:<number>``): one indexed
lookup on events and one on messages, then the deliveries and follow-ups of those events. The
gaps the page flags are decided by the view from these facts (`console_models.JourneyEvent`).
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from engine.store.base import StoreBase
from engine.store.console_models import (
    Journey,
    JourneyDelivery,
    JourneyEvent,
    JourneyFollowUp,
)
from engine.store.console_reads import delivery_state, row_view
from engine.store.console_search import local_number, local_prefixes, patient_condition
from engine.store.schema import deliveries, events, follow_ups, messages
from engine.store.statuses import MessageStatus

MAX_KEYS = 20
"""At most this many patient keys are offered for one search text."""
MAX_EVENTS = 500
"""A journey shows at most this many events (the newest), and says so when it cut some."""


async def patient_keys(store: StoreBase, text: str) -> list[str]:
    """The patient keys a search text names (see `console_search.patient_condition`)."""
    async with store.reading() as conn:
        prefixes = await local_prefixes(conn, None) if local_number(text) else None
        query = (
            sa.select(messages.c.patient_key)
            .where(patient_condition(text, None, prefixes), messages.c.patient_key.is_not(None))
            .group_by(messages.c.patient_key)
            .order_by(messages.c.patient_key)
            .limit(MAX_KEYS)
        )
        return [str(k) for k in (await conn.execute(query)).scalars()]


async def journey(store: StoreBase, patient_key: str) -> Journey:
    """Everything the engine holds for `patient_key`, oldest first."""
    async with store.reading() as conn:
        found = (
            await conn.execute(
                sa.select(events, messages.c.status.label("message_status"))
                .join(messages, messages.c.id == events.c.message_id)
                .where(events.c.patient_key == patient_key)
                .order_by(events.c.received_at.desc())
                .limit(MAX_EVENTS + 1)
            )
        ).all()
        cut = len(found) > MAX_EVENTS
        found = found[:MAX_EVENTS]
        ids = [e.event_id for e in found]
        sent = await conn.execute(
            sa.select(deliveries).where(deliveries.c.event_id.in_(ids)).order_by(deliveries.c.id)
        )
        by_event: dict[str, list[JourneyDelivery]] = {}
        for d in sent:
            by_event.setdefault(d.event_id, []).append(
                row_view(JourneyDelivery, d, state=delivery_state(d), attempt_count=d.attempts)
            )
        clocks = {
            f.event_id: row_view(JourneyFollowUp, f)
            for f in await conn.execute(sa.select(follow_ups).where(follow_ups.c.event_id.in_(ids)))
        }
        correctors = await conn.execute(
            sa.select(events.c.event_id, events.c.corrects).where(events.c.corrects.in_(ids))
        )
        corrected_by: dict[str, list[str]] = {}
        for c in correctors:
            corrected_by.setdefault(c.corrects, []).append(c.event_id)
    rows = [
        _event(
            e,
            tuple(by_event.get(e.event_id, ())),
            clocks.get(e.event_id),
            tuple(corrected_by.get(e.event_id, ())),
        )
        for e in found
    ]
    rows.sort(key=lambda e: (e.when, e.received_at))
    return Journey(patient_key, tuple(rows), cut)


def _event(
    e: sa.Row[tuple[object, ...]],
    sent: tuple[JourneyDelivery, ...],
    clock: JourneyFollowUp | None,
    corrected_by: tuple[str, ...],
) -> JourneyEvent:
    return row_view(
        JourneyEvent,
        e,
        deliveries=sent,
        follow_up=clock,
        corrected_by=corrected_by,
        retired=_retired(str(e.body), str(e.source)) if e.kind == "merge" else (),
        message_status=MessageStatus(e.message_status),
    )


def _retired(body: str, feed: str) -> tuple[str, ...]:
    """A merge's retired patient keys (as `engine.routing.identifier_key` makes them)."""
    try:
        merge = json.loads(body).get("merge") or {}
    except (ValueError, AttributeError):
        return ()
    out = []
    for ident in merge.get("retired") or ():
        if not isinstance(ident, dict) or not ident.get("value"):
            continue
        if ident.get("kind") == "nhs_number":
            out.append(f"nhs:{ident['value']}")
        elif ident.get("kind") == "local":
            out.append(f"local:{feed}:{ident.get('system') or ''}:{ident['value']}")
    return tuple(out)
