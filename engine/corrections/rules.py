"""The rules of corrections, pure: given one prepared event and what is known of earlier ones
(earlier in its batch, and in the store), a `Decision`. No I/O: when a rule needs the store it
returns the question (a `Lookup`) instead; `engine.corrections.lookup` asks it and decides again.

- A cancel (A11, A12, A13, A38, A52, A53) corrects the newest event of the kind it cancels for
  the same patient and stay, earlier in the batch first, else in the store (A11 also cancels a
  registration, A04). It goes, as a correction naming that event, to exactly the destinations
  that have or will have it (a pending original goes first: per-patient order; where it was
  dead-lettered the store leaves out). A cancelled
  discharge withdraws that discharge's follow-up. A cancel of an event never received goes
  nowhere and is noted for an operator.
- An event that arrives *after* its own cancel (an A03 after its A13, having happened no later
  than the cancel) is superseded: kept, linked to that cancel (and the cancel to it), delivered
  nowhere, and it starts no follow-up.
- A second discharge of a stay whose first still stands (neither cancelled nor superseded) is a
  changed discharge: it names the one it replaces, whose follow-up it withdraws; its own starts.
  A cancel earlier in the batch counts, though the store does not hold it yet.
- A merge (A40, A34, a FHIR `replaces` link) re-keys the retired identities' messages, events,
  deliveries and follow-ups to the survivor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from engine.preparation import Prepared, bounded_key
from engine.routing import retired_keys
from engine.store.records import AcceptedEvent, Original
from mappings.model import CANCEL_OF, CareEvent, EventKind

CANCELLED_KINDS: dict[EventKind, tuple[EventKind, ...]] = {
    EventKind.ADMISSION: (EventKind.ADMISSION, EventKind.REGISTRATION),
}
"""The kinds a cancel looks for, in order, where it is not just the one it names."""

NEVER_RECEIVED = "cancels an event that was never received: nothing to correct"


# ---- questions for the store ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FindOriginal:
    """The newest accepted event of `kind` for this patient and stay, and where it went."""

    patient_key: str
    stay_id: str | None
    kind: str


@dataclass(frozen=True, slots=True)
class FindEarlyCancel:
    """A cancel of `cancel_kind` on record that found nothing to cancel and happened no earlier
    than `occurred_at`."""

    patient_key: str
    stay_id: str | None
    cancel_kind: str
    occurred_at: datetime | None


@dataclass(frozen=True, slots=True)
class StandingDischarge:
    """The newest discharge on record of this patient and stay that still stands."""

    patient_key: str
    stay_id: str | None


Lookup = FindOriginal | FindEarlyCancel | StandingDischarge


@dataclass(frozen=True, slots=True)
class Known:
    """What the store has answered so far for one batch (the store before the batch is written).

    `unmatched_cancels` and `discharges` are asked once per batch, for the patients that
    `patients_to_ask` names; the maps fill as the rules ask their questions.
    """

    unmatched_cancels: frozenset[str] = frozenset()
    """Patients with a cancel on record that found nothing to cancel."""
    discharges: frozenset[str] = frozenset()
    """Patients with a discharge on record."""
    originals: Mapping[FindOriginal, Original | None] = field(default_factory=dict)
    early_cancels: Mapping[FindEarlyCancel, str | None] = field(default_factory=dict)
    standing: Mapping[StandingDischarge, str | None] = field(default_factory=dict)

    def answered(self, question: Lookup, answer: Original | str | None) -> Known:
        """What is known once the store has given `answer` to `question`."""
        match question:
            case FindOriginal():
                assert answer is None or isinstance(answer, Original)
                return dataclasses.replace(self, originals={**self.originals, question: answer})
            case FindEarlyCancel():
                assert not isinstance(answer, Original)
                return dataclasses.replace(
                    self, early_cancels={**self.early_cancels, question: answer}
                )
            case StandingDischarge():
                assert not isinstance(answer, Original)
                return dataclasses.replace(self, standing={**self.standing, question: answer})


def patients_to_ask(batch: Sequence[Prepared]) -> tuple[list[str], list[str]]:
    """The patients to ask the store about once per batch: those with an event a cancel may
    have preceded (for `Known.unmatched_cancels`), and those with a discharge (`discharges`)."""
    cancellable = [p.record.accepted.patient_key for p in batch
                   if p.event is not None and p.record.accepted is not None
                   and p.event.kind in CANCEL_OF]  # fmt: skip
    discharged = [p.record.accepted.patient_key for p in batch
                  if p.event is not None and p.record.accepted is not None
                  and p.event.kind is EventKind.DISCHARGE]  # fmt: skip
    return cancellable, discharged


# ---- decisions ----------------------------------------------------------------------------


class Outcome(StrEnum):
    AS_ROUTED = "as_routed"
    CANCEL_LINKED = "cancel_linked"
    CANCEL_WITHOUT_ORIGINAL = "cancel_without_original"
    SUPERSEDED = "superseded"
    CHANGED_DISCHARGE = "changed_discharge"
    MERGE = "merge"


@dataclass(frozen=True, slots=True)
class Decision:
    """What one event does: where it goes, what it names, what it changes of earlier rows."""

    outcome: Outcome
    destinations: tuple[tuple[str, bool], ...] | None = None
    """Exactly these (name, hold_on_dead_letter) instead of the routed ones; None: as routed."""
    corrects: str | None = None
    """Kept with the event: the event a cancel cancels, or the cancel that superseded it."""
    corrects_event_id: str | None = None
    """Named in the event itself, for receivers: the event it cancels or replaces."""
    note: str | None = None
    """A warning added to the event for operators and receivers."""
    starts_follow_up: bool = True
    """False: the follow-up clock the event would start is not started."""
    withdraws_follow_up_of: str | None = None
    """The discharge whose open follow-up this event withdraws."""
    links_cancel: str | None = None
    """A cancel that arrived first and found nothing: it now names this event."""
    rekeys: tuple[str, ...] = ()
    """Patient keys whose history and pending deliveries now follow this event's patient key."""


AS_ROUTED = Decision(Outcome.AS_ROUTED)


def decide(
    item: Prepared, earlier: Sequence[Prepared], known: Known, holds: Mapping[str, bool]
) -> Decision | Lookup:
    """What `item` does, given the batch's `earlier` items (already decided, committed first)
    and what the store answered; or the question the store must answer first.

    `holds` maps each configured destination to its `hold_on_dead_letter`.
    """
    event, accepted = item.event, item.record.accepted
    if event is None or accepted is None:
        return AS_ROUTED
    if event.cancels is not None:
        return _cancel(event.cancels, accepted, earlier, known, holds)
    if event.kind in CANCEL_OF:
        return _late_or_changed(event.kind, accepted, earlier, known)
    if retired := retired_keys(event):
        return Decision(Outcome.MERGE, rekeys=tuple(bounded_key(k) for k in retired))
    return AS_ROUTED


Prior = tuple[EventKind, AcceptedEvent]
"""An earlier event of the batch: its kind and what was decided of it."""


def _same_episode(a: AcceptedEvent, b: AcceptedEvent) -> bool:
    return a.patient_key == b.patient_key and a.stay_id == b.stay_id


def _earlier(earlier: Sequence[Prepared], accepted: AcceptedEvent) -> list[Prior]:
    """The batch's earlier accepted events of the same patient and stay, oldest first."""
    return [(p.event.kind, p.record.accepted) for p in earlier
            if p.event is not None and p.record.accepted is not None
            and _same_episode(p.record.accepted, accepted)]  # fmt: skip


def _cancel(cancels: EventKind, accepted: AcceptedEvent, earlier: Sequence[Prepared],
            known: Known, holds: Mapping[str, bool]) -> Decision | Lookup:  # fmt: skip
    kinds = CANCELLED_KINDS.get(cancels, (cancels,))
    original = next((Original(found.event_id, tuple(d for d, _ in found.destinations))
                     for kind, found in reversed(_earlier(earlier, accepted))
                     if kind in kinds), None)  # fmt: skip
    for kind in kinds:
        if original is not None:
            break
        question = FindOriginal(accepted.patient_key, accepted.stay_id, kind.value)
        if question not in known.originals:
            return question
        original = known.originals[question]
    if original is None:
        return Decision(Outcome.CANCEL_WITHOUT_ORIGINAL, destinations=(), note=NEVER_RECEIVED)
    return Decision(
        Outcome.CANCEL_LINKED,
        # Where the original went or will go, as configured today: never where routes say.
        destinations=tuple((d, holds[d]) for d in original.destinations if d in holds),
        corrects=original.event_id,
        corrects_event_id=original.event_id,
        withdraws_follow_up_of=(original.event_id if cancels is EventKind.DISCHARGE else None),
    )


def _not_before(cancel_at: datetime | None, event_at: datetime | None) -> bool:
    """A cancel supersedes a late event only if it happened no earlier (as in the store)."""
    return cancel_at is None or event_at is None or cancel_at >= event_at


def _late_or_changed(kind: EventKind, accepted: AcceptedEvent, earlier: Sequence[Prepared],
                     known: Known) -> Decision | Lookup:  # fmt: skip
    cancel_kind = CANCEL_OF[kind]
    occurred = accepted.occurred_at
    cancel_id = next((found.event_id for prior_kind, found in _earlier(earlier, accepted)
                      if prior_kind is cancel_kind and found.corrects is None
                      and _not_before(found.occurred_at, occurred)), None)  # fmt: skip
    if cancel_id is None and accepted.patient_key in known.unmatched_cancels:
        question = FindEarlyCancel(
            accepted.patient_key, accepted.stay_id, cancel_kind.value, occurred
        )
        if question not in known.early_cancels:
            return question
        cancel_id = known.early_cancels[question]
    if cancel_id is not None:
        note = f"already cancelled by {cancel_id}, which arrived first: not delivered"
        return Decision(Outcome.SUPERSEDED, destinations=(), corrects=cancel_id, note=note,
                        starts_follow_up=False, links_cancel=cancel_id)  # fmt: skip
    if kind is EventKind.DISCHARGE:
        return _changed_discharge(accepted, earlier, known)
    return AS_ROUTED


def _changed_discharge(accepted: AcceptedEvent, earlier: Sequence[Prepared],
                       known: Known) -> Decision | Lookup:  # fmt: skip
    """A second discharge of a stay whose first still stands names the one it replaces."""
    standing = None
    cancelled: set[str | None] = set()
    for kind, found in _earlier(earlier, accepted):  # the newest standing one in the batch
        if kind is EventKind.DISCHARGE and found.corrects is None:
            standing = found.event_id
        elif kind is EventKind.CANCEL_DISCHARGE:
            cancelled.add(found.corrects)
            standing = None if found.corrects == standing else standing
    if standing is None and accepted.patient_key in known.discharges:
        question = StandingDischarge(accepted.patient_key, accepted.stay_id)
        if question not in known.standing:
            return question
        # The store's answer predates the batch: a cancel earlier in it may have cancelled it.
        standing = None if known.standing[question] in cancelled else known.standing[question]
    if standing is None:
        return AS_ROUTED
    return Decision(Outcome.CHANGED_DISCHARGE, corrects_event_id=standing,
                    withdraws_follow_up_of=standing)  # fmt: skip


# ---- applying a decision --------------------------------------------------------------------


def applied(item: Prepared, decision: Decision) -> Prepared:
    """`item` as the store must record it: its event rewritten and its record's links set."""
    event, accepted = item.event, item.record.accepted
    if decision.outcome is Outcome.AS_ROUTED or event is None or accepted is None:
        return item
    changed = _rewritten_event(event, decision)
    new_accepted = dataclasses.replace(
        accepted,
        body=changed.model_dump_json(exclude_none=True),
        destinations=(accepted.destinations if decision.destinations is None
                      else decision.destinations),
        corrects=decision.corrects,
        follow_up=accepted.follow_up if decision.starts_follow_up else None,
        withdraws_follow_up_of=decision.withdraws_follow_up_of,
        links_cancel=decision.links_cancel,
        retired_keys=decision.rekeys,
    )  # fmt: skip
    return Prepared(dataclasses.replace(item.record, accepted=new_accepted), changed)


def _rewritten_event(event: CareEvent, decision: Decision) -> CareEvent:
    changes: dict[str, object] = {}
    if decision.corrects_event_id is not None:
        changes["corrects_event_id"] = decision.corrects_event_id
    if decision.note is not None:
        changes["warnings"] = (*event.warnings, decision.note)
    return event.model_copy(update=changes) if changes else event
