"""The shell of the correction rules: ask the history what `rules.decide` needs, apply the
decisions, and log them.

`Corrections.linked_in` asks on the intake write's own connection (`Store.link_and_record`:
synchronous, inside the write transaction, on the store's writer thread on SQLite); intake logs
the decisions (`log_decisions`) once the batch is committed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog

from engine.corrections import rules
from engine.corrections.rules import Decision, Known, Lookup, Outcome
from engine.preparation import Prepared
from engine.store import History, Original

log = structlog.get_logger("carebridge.intake")

Decided = list[tuple[Prepared, Decision]]
"""Each item of a batch as it came with the decision made for it (`log_decisions`)."""
Linked = tuple[list[Prepared], Decided]
"""The batch with the decisions applied, and the decisions."""


class Corrections:
    def __init__(self, holds: Mapping[str, bool]) -> None:
        self._holds = holds

    def linked_in(self, batch: Sequence[Prepared], history: History) -> Linked:
        """Link every cancel in `batch` to its original, and every late original to its cancel,
        asking `history` (the intake write's own connection); nothing is logged here.

        Earlier messages of the same batch count as received: they are committed first.
        """
        cancellable, discharged = rules.patients_to_ask(batch)
        known = Known(
            unmatched_cancels=frozenset(history.patients_with_unmatched_cancels(cancellable)),
            discharges=frozenset(history.patients_with_discharges(discharged)),
        )
        done: list[Prepared] = []
        decided: Decided = []
        for item in batch:
            decision = rules.decide(item, done, known, self._holds)
            while not isinstance(decision, Decision):
                known = known.answered(decision, _ask(history, decision))
                decision = rules.decide(item, done, known, self._holds)
            decided.append((item, decision))
            done.append(rules.applied(item, decision))
        return done, decided


def _ask(history: History, question: Lookup) -> Original | str | None:
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
