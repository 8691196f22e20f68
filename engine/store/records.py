"""What goes into the store and what comes out of it: plain frozen records, no SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from engine.store.statuses import MessageStatus


def idempotency_key(event_id: str, destination: str) -> str:
    """The key of one event's delivery to one destination: the same for every attempt, replay
    and re-map of it, so a destination that already applied it can drop the repeat."""
    return f"{event_id}.{destination}"


@dataclass(frozen=True, slots=True)
class AcceptedEvent:
    """What intake derived from a message that mapped: the event and where it must go."""

    event_id: str
    kind: str
    care_setting: str
    patient_key: str
    occurred_at: datetime | None
    body: str
    destinations: tuple[tuple[str, bool], ...]
    """(destination name, hold_on_dead_letter) for each routed destination, in route order."""
    stay_id: str | None = None
    corrects: str | None = None
    """For a cancel: the event it cancels. For an event whose cancel arrived first: that cancel."""
    follow_up: FollowUpRecord | None = None
    """For a discharge in a follow-up cohort: the clock it starts."""
    # What writing the event does to earlier rows: decided by engine.corrections, only executed
    # by the store.
    withdraws_follow_up_of: str | None = None
    """The discharge whose open follow-up this event withdraws (its cancel, a changed one)."""
    links_cancel: str | None = None
    """A cancel that arrived before this event and found nothing: it now names this event."""
    retired_keys: tuple[str, ...] = ()
    """For a merge: the patient keys whose rows (messages, events, deliveries, follow-ups) now
    take `patient_key`."""


@dataclass(frozen=True, slots=True)
class FollowUpRecord:
    rule: str
    standard: str
    discharged_at: datetime
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Original:
    """An earlier event a cancel refers to, and the destinations that have or will have it."""

    event_id: str
    destinations: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IntakeRecord:
    source: str
    payload: bytes
    received_at: datetime
    transport_id: str | None = None
    format: str | None = None
    message_key: str | None = None
    accepted: AcceptedEvent | None = None
    reason: str | None = None
    error_location: str | None = None
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class IntakeResult:
    message_id: int
    status: MessageStatus
    deliveries: int = 0
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    event_id: str
    destination: str
    patient_key: str
    idempotency_key: str
    attempts: int
    created_at: datetime
    kind: str
    care_setting: str
    source: str
    body: str
    lease_owner: str | None = None
    """Who claimed it (`claim_due`'s owner). With `attempts` (as they were at the claim), what
    recording a rescheduled or dead-lettered outcome checks: the claim still holds."""


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    started_at: datetime
    duration_ms: int
    outcome: Literal["delivered", "transient", "permanent"]
    status_code: int | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Delivered:
    at: datetime


@dataclass(frozen=True, slots=True)
class Rescheduled:
    next_attempt_at: datetime
    error: str


@dataclass(frozen=True, slots=True)
class DeadLettered:
    reason: str
    hold: bool = False


DeliveryOutcome = Delivered | Rescheduled | DeadLettered

OutcomeRefused = Literal["finished", "lease_not_held", "attempts_changed"]
"""Why an outcome was not recorded (`Outbox.finish_deliveries`), the guard that refused it:
- finished: the delivery is no longer pending (delivered, dead-lettered, or gone);
- lease_not_held: (rescheduled, dead) the lease is another owner's, or no one's, now;
- attempts_changed: (rescheduled, dead) attempts were recorded since this claim."""
