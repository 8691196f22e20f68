"""What goes into the store and what comes out of it: plain frozen records, no SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

MessageStatus = Literal["accepted", "rejected", "duplicate"]


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
    retired_keys: tuple[str, ...] = ()
    """For a merge: the patient keys that now become `patient_key`."""
    follow_up: FollowUpRecord | None = None
    """For a discharge in a follow-up cohort: the clock it starts."""
    replaces: str | None = None
    """For a changed discharge: the earlier discharge of the same stay that it replaces."""


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
