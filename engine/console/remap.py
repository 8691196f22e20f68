"""Re-map a whole message with today's config: the console's answer to "the mapping (or a
route) was wrong, it is fixed now, send this message again as it should have been".

    stored payload ─► engine.preparation.prepare(today's config) ─► same event?
        ─► engine.store.remap.apply_remap: the event's body updated, today's routes given
           their deliveries, audited in the same transaction (see there)

Rules, each for a reason:

- Only a message that became an event (accepted) can be re-mapped: the event id, the
  deliveries and their idempotency keys hang off it. The stored event id is kept even if
  today's mapping would derive another.
- Today's mapping must give the same event kind and the same patient key. Otherwise it is a
  different event, not a corrected one: re-keying a patient or turning an admission into a
  discharge belongs to the source's correction messages (merge, cancel), not to a replay.
"""

from __future__ import annotations

from datetime import UTC, datetime

from engine.config import Config
from engine.console.auth import Principal
from engine.preparation import prepare
from engine.store import MessageStatus, Store
from engine.store.remap import Remapped, Remapping, apply_remap, stored_message, summary

__all__ = ["Remapped", "notice", "remap_message"]


async def remap_message(
    store: Store,
    principal: Principal,
    message_id: int,
    config: Config,
    reason: str | None = None,
    *,
    now: datetime | None = None,
) -> Remapped:
    """Re-run today's mapping and routes on a stored message; see the module docstring."""
    now = now or datetime.now(UTC)
    row = await stored_message(store, message_id)
    if row is None:
        return Remapped("missing", "no such message")
    if row.status != MessageStatus.ACCEPTED or not row.event_id:
        return Remapped("refused", "only an accepted message (one that became an event) can be "
                        "re-mapped")  # fmt: skip
    if config.source(row.source) is None:
        return Remapped("refused", f"source {row.source!r} is no longer in the config")
    prepared = prepare(
        row.source,
        row.payload,
        config=config,
        profiles=config.feed_profiles,
        received_at=row.received_at,
        transport_id=row.transport_id,
        follow_up_rules=config.follow_up_rules,
    )
    record = prepared.record
    if record.accepted is None or prepared.event is None:
        where = " ".join(p for p in (record.error_location, record.error_code) if p)
        detail = f"does not map with today's config ({where or 'rejected'})"
        remapping = Remapping(message_id, row.event_id, None, not_mapped=detail)
    else:
        event = prepared.event.model_copy(update={"event_id": row.event_id})
        body = event.model_dump_json(exclude_none=True)
        remapping = Remapping(message_id, row.event_id, record.accepted, body=body)
    return await apply_remap(store, principal, remapping, reason, now)


def notice(r: Remapped) -> str:
    """What the operator is told (no patient data)."""
    if r.outcome != "remapped":
        return f"Not re-mapped: {r.problem}."
    return summary(r).capitalize() + "."
