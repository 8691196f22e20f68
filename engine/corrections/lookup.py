"""The shells of the correction rules: ask the store what `rules.decide` needs, log what was
decided, and hand the decided batch to intake for the store to write.

`linked_in` asks on the intake write's own connection (`Store.link_and_record`: synchronous,
inside the write transaction, on the store's writer thread on SQLite); `link` asks the store
(each question its own read), for callers outside a write. Both run the same `_linking`."""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence

import structlog

from engine.corrections import rules
from engine.corrections.rules import Decision, Known, Lookup, Outcome
from engine.preparation import Prepared
from engine.store import History, Original, Store

log = structlog.get_logger("carebridge.intake")

Answer = Original | str | None
Decided = list[tuple[Prepared, Decision]]
"""Each item of a batch as it came with the decision made for it (`log_decisions`)."""
Linked = tuple[list[Prepared], Decided]
"""The batch with the decisions applied, and the decisions."""


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
        linking = self._linking(batch, known)
        try:
            question = next(linking)
            while True:
                question = linking.send(await self._ask(question))
        except StopIteration as done:
            result: Linked = done.value
        log_decisions(result[1])
        return result[0]

    def linked_in(self, batch: Sequence[Prepared], history: History) -> Linked:
        """`link` asking `history` (the intake write's own connection), without logging: the
        caller logs the decisions (`log_decisions`) once the batch is committed."""
        cancellable, discharged = rules.patients_to_ask(batch)
        known = Known(
            unmatched_cancels=frozenset(history.patients_with_unmatched_cancels(cancellable)),
            discharges=frozenset(history.patients_with_discharges(discharged)),
        )
        linking = self._linking(batch, known)
        try:
            question = next(linking)
            while True:
                question = linking.send(_ask_history(history, question))
        except StopIteration as done:
            linked: Linked = done.value
        return linked

    def _linking(
        self, batch: Sequence[Prepared], known: Known
    ) -> Generator[Lookup, Answer, Linked]:
        """Decide each item in turn; each question the rules ask is yielded, its answer sent."""
        done: list[Prepared] = []
        decided: Decided = []
        for item in batch:
            decision = rules.decide(item, done, known, self._holds)
            while not isinstance(decision, Decision):
                known = known.answered(decision, (yield decision))
                decision = rules.decide(item, done, known, self._holds)
            decided.append((item, decision))
            done.append(rules.applied(item, decision))
        return done, decided

    async def _ask(self, question: Lookup) -> Answer:
        store = self._store
        match question:
            case rules.FindOriginal(patient_key, stay_id, kind):
                return await store.find_original(patient_key, stay_id, kind)
            case rules.FindEarlyCancel(patient_key, stay_id, cancel_kind, occurred_at):
                return await store.find_early_cancel(patient_key, stay_id, cancel_kind, occurred_at)
            case rules.StandingDischarge(patient_key, stay_id):
                return await store.standing_discharge(patient_key, stay_id)


def _ask_history(history: History, question: Lookup) -> Answer:
    match question:
        case rules.FindOriginal(patient_key, stay_id, kind):
            return history.find_original(patient_key, stay_id, kind)
        case rules.FindEarlyCancel(patient_key, stay_id, cancel_kind, occurred_at):
            return history.find_early_cancel(patient_key, stay_id, cancel_kind, occurred_at)
        case rules.StandingDischarge(patient_key, stay_id):
            return history.standing_discharge(patient_key, stay_id)


def log_decisions(decided: Decided) -> None:
    """Log what corrections decided for each item that needs saying, in batch order."""
    for item, decision in decided:
        _log(item, decision)


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
