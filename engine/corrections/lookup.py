"""The async shell of the correction rules: ask the store what `rules.decide` needs, log what
was decided, and hand the decided batch to intake for the store to write."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog

from engine.corrections import rules
from engine.corrections.rules import Decision, Known, Lookup, Outcome
from engine.preparation import Prepared
from engine.store import Original, Store

log = structlog.get_logger("carebridge.intake")


class Corrections:
    def __init__(self, store: Store, holds: Mapping[str, bool]) -> None:
        self._store = store
        self._holds = holds

    async def link(self, batch: Sequence[Prepared]) -> list[Prepared]:
        """Link every cancel in `batch` to its original, and every late original to its cancel.

        Earlier messages of the same batch count as received: they are committed first.
        """
        cancellable, discharged = rules.patients_to_ask(batch)
        known = Known(
            unmatched_cancels=frozenset(
                await self._store.patients_with_unmatched_cancels(cancellable)
            ),
            discharges=frozenset(await self._store.patients_with_discharges(discharged)),
        )
        done: list[Prepared] = []
        for item in batch:
            decided = rules.decide(item, done, known, self._holds)
            while not isinstance(decided, Decision):
                known = known.answered(decided, await self._ask(decided))
                decided = rules.decide(item, done, known, self._holds)
            _log(item, decided)
            done.append(rules.applied(item, decided))
        return done

    async def _ask(self, question: Lookup) -> Original | str | None:
        store = self._store
        match question:
            case rules.FindOriginal(patient_key, stay_id, kind):
                return await store.find_original(patient_key, stay_id, kind)
            case rules.FindEarlyCancel(patient_key, stay_id, cancel_kind, occurred_at):
                return await store.find_early_cancel(patient_key, stay_id, cancel_kind, occurred_at)
            case rules.StandingDischarge(patient_key, stay_id):
                return await store.standing_discharge(patient_key, stay_id)


def _log(item: Prepared, decided: Decision) -> None:
    """Identifiers only: never names, NHS numbers or payload text."""
    event = item.event
    if event is None:
        return
    match decided.outcome:
        case Outcome.CANCEL_WITHOUT_ORIGINAL:
            log.warning("intake.cancel_without_original", event_id=event.event_id,
                        source=event.source.feed,
                        cancels=event.cancels.value if event.cancels else None)  # fmt: skip
        case Outcome.SUPERSEDED:
            log.warning("intake.superseded_by_earlier_cancel", event_id=event.event_id,
                        cancel_event_id=decided.corrects, source=event.source.feed)  # fmt: skip
        case Outcome.CHANGED_DISCHARGE:
            log.info("intake.changed_discharge", event_id=event.event_id,
                     replaces=decided.withdraws_follow_up_of)  # fmt: skip
