"""Cancels, out-of-order arrivals and merges: what intake must know of earlier events.

- A cancel (A11, A12, A13, A38, A52, A53) is linked to the event it cancels and goes, as a
  correction, to exactly the destinations that received that event (or will: a pending original
  is delivered first, per-patient order holds). A cancel of an event never received goes nowhere
  and is logged for an operator (`intake.cancel_without_original`).
- An event that arrives *after* its own cancel (an A03 after its A13, occurring no later than
  the cancel) is superseded: kept, linked to that cancel, and delivered nowhere.
- A merge re-keys the retired identities' history and pending deliveries to the survivor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime

import structlog

from engine.preparation import Prepared
from engine.store import AcceptedEvent, Original, Store
from mappings.model import CANCEL_OF, CareEvent, EventKind

log = structlog.get_logger("carebridge.intake")

# A11 cancels an admission or, in ITK, a registration (A04); look for both.
CANCELLED_KINDS: dict[EventKind, tuple[EventKind, ...]] = {
    EventKind.ADMISSION: (EventKind.ADMISSION, EventKind.REGISTRATION),
}


def _rewritten(item: Prepared, event: CareEvent, **changes: object) -> Prepared:
    accepted = item.record.accepted
    assert accepted is not None
    new_accepted = dataclasses.replace(
        accepted,
        body=event.model_dump_json(exclude_none=True),
        **changes,  # type: ignore[arg-type]
    )
    return Prepared(dataclasses.replace(item.record, accepted=new_accepted), event)


def _occurred(event: CareEvent) -> datetime | None:
    return event.occurred_at.utc if event.occurred_at else None


def _not_before(cancel_at: datetime | None, event_at: datetime | None) -> bool:
    """A cancel supersedes a late event only if it happened no earlier (as in the store)."""
    return cancel_at is None or event_at is None or cancel_at >= event_at


def _same_episode(a: AcceptedEvent, b: AcceptedEvent) -> bool:
    return a.patient_key == b.patient_key and a.stay_id == b.stay_id


class Corrections:
    def __init__(self, store: Store, holds: Mapping[str, bool]) -> None:
        self._store = store
        self._holds = holds
        self._unmatched: set[str] = set()
        self._discharged: set[str] = set()

    async def link(self, batch: Sequence[Prepared]) -> list[Prepared]:
        """Link every cancel in `batch` to its original, and every late original to its cancel.

        Earlier messages of the same batch count as received: they are committed first.
        """
        done: list[Prepared] = []
        candidates = [p.record.accepted.patient_key for p in batch
                      if p.event is not None and p.record.accepted is not None
                      and p.event.kind in CANCEL_OF]  # fmt: skip
        self._unmatched = await self._store.patients_with_unmatched_cancels(candidates)
        discharged = [p.record.accepted.patient_key for p in batch
                      if p.event is not None and p.record.accepted is not None
                      and p.event.kind is EventKind.DISCHARGE]  # fmt: skip
        self._discharged = await self._store.patients_with_discharges(discharged)
        for item in batch:
            event, accepted = item.event, item.record.accepted
            if event is None or accepted is None:
                done.append(item)
            elif event.cancels is not None:
                done.append(await self._link_cancel(item, event, accepted, done))
            elif event.kind in CANCEL_OF:
                done.append(await self._check_late(item, event, accepted, done))
            else:
                done.append(item)
        return done

    async def _link_cancel(self, item: Prepared, event: CareEvent, accepted: AcceptedEvent,
                           earlier: Sequence[Prepared]) -> Prepared:  # fmt: skip
        assert event.cancels is not None
        kinds = CANCELLED_KINDS.get(event.cancels, (event.cancels,))
        original = self._in_batch(earlier, accepted, kinds)
        for kind in kinds:
            if original is None:
                original = await self._store.find_original(
                    accepted.patient_key, accepted.stay_id, kind.value
                )
        if original is None:
            log.warning("intake.cancel_without_original", event_id=event.event_id,
                        source=event.source.feed, cancels=event.cancels.value)  # fmt: skip
            note = "cancels an event that was never received: nothing to correct"
            changed = event.model_copy(update={"warnings": (*event.warnings, note)})
            return _rewritten(item, changed, destinations=())
        changed = event.model_copy(update={"corrects_event_id": original.event_id})
        destinations = tuple((d, self._holds[d]) for d in original.destinations
                             if d in self._holds)  # fmt: skip
        return _rewritten(item, changed, destinations=destinations, corrects=original.event_id)

    @staticmethod
    def _in_batch(earlier: Sequence[Prepared], accepted: AcceptedEvent,
                  kinds: tuple[EventKind, ...]) -> Original | None:  # fmt: skip
        for prior in reversed(earlier):
            found = prior.record.accepted
            if (prior.event is not None and found is not None
                    and prior.event.kind in kinds and _same_episode(found, accepted)):  # fmt: skip
                return Original(found.event_id, tuple(d for d, _ in found.destinations))
        return None

    async def _check_late(self, item: Prepared, event: CareEvent, accepted: AcceptedEvent,
                          earlier: Sequence[Prepared]) -> Prepared:  # fmt: skip
        cancel_kind = CANCEL_OF[event.kind]
        occurred = _occurred(event)
        cancel_id = next(
            (p.record.accepted.event_id for p in earlier
             if p.event is not None and p.record.accepted is not None
             and p.event.kind is cancel_kind and p.record.accepted.corrects is None
             and _same_episode(p.record.accepted, accepted)
             and _not_before(_occurred(p.event), occurred)),
            None,
        )  # fmt: skip
        if cancel_id is None and accepted.patient_key in self._unmatched:
            cancel_id = await self._store.find_early_cancel(
                accepted.patient_key, accepted.stay_id, cancel_kind.value, _occurred(event)
            )
        if cancel_id is None:
            if event.kind is EventKind.DISCHARGE:
                return await self._check_replaces(item, event, accepted, earlier)
            return item
        log.warning("intake.superseded_by_earlier_cancel", event_id=event.event_id,
                    cancel_event_id=cancel_id, source=event.source.feed)  # fmt: skip
        note = f"already cancelled by {cancel_id}, which arrived first: not delivered"
        changed = event.model_copy(update={"warnings": (*event.warnings, note)})
        # Not delivered, and no follow-up clock: the discharge was cancelled before it arrived.
        return _rewritten(item, changed, destinations=(), corrects=cancel_id, follow_up=None)

    async def _check_replaces(self, item: Prepared, event: CareEvent, accepted: AcceptedEvent,
                              earlier: Sequence[Prepared]) -> Prepared:  # fmt: skip
        """A second discharge of a stay whose first still stands is a changed discharge: it
        names the one it replaces, which stops that one's follow-up clock."""
        standing = None
        for prior in earlier:  # the newest standing discharge of this stay in the batch
            found = prior.record.accepted
            if prior.event is None or found is None or not _same_episode(found, accepted):
                continue
            if prior.event.kind is EventKind.DISCHARGE and found.corrects is None:
                standing = found.event_id
            elif prior.event.kind is EventKind.CANCEL_DISCHARGE and found.corrects == standing:
                standing = None
        if standing is None and accepted.patient_key in self._discharged:
            standing = await self._store.standing_discharge(accepted.patient_key, accepted.stay_id)
        if standing is None:
            return item
        log.info("intake.changed_discharge", event_id=event.event_id, replaces=standing)
        changed = event.model_copy(update={"corrects_event_id": standing})
        return _rewritten(item, changed, replaces=standing)
