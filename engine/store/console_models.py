"""What the operators' reads return (`console_search`, `console_reads`): typed, frozen view
models, no SQL and no HTML. The console's views render them. Field names are the store's column
names, so a reader can follow a value from the table to the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from engine.store.statuses import DeliveryStatus, MessageStatus


class DeliveryState(StrEnum):
    """A delivery's state as operators see it: the stored `DeliveryStatus`, with held and
    resolved told apart."""

    PENDING = "pending"
    HELD = "held"
    """Pending, but held back by an operator."""
    DELIVERED = "delivered"
    DEAD = "dead"
    """Dead-lettered and not yet resolved."""
    RESOLVED = "resolved"
    """Dead-lettered, then closed by an operator."""


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """One line of the message search: a message-log row and its deliveries' states."""

    id: int
    received_at: datetime
    source: str
    message_key: str | None
    format: str | None
    status: MessageStatus
    event_kind: str | None
    patient_key: str | None
    reason: str | None
    error_location: str | None
    event_id: str | None
    resolved_at: datetime | None
    deliveries: tuple[tuple[str, DeliveryState], ...] = ()
    """(destination, state as operators see it), oldest delivery first."""


@dataclass(frozen=True, slots=True)
class MessagePage:
    rows: tuple[MessageSummary, ...]
    next_before: int | None
    """The `before` of the next (older) page, or None on the last page."""


@dataclass(frozen=True, slots=True)
class LoggedMessage:
    """A message-log row in full, payload included."""

    id: int
    source: str
    message_key: str | None
    format: str | None
    status: MessageStatus
    reason: str | None
    error_location: str | None
    error_code: str | None
    payload: bytes
    payload_sha256: str
    received_at: datetime
    committed_at: datetime
    transport_id: str | None
    duplicate_of: int | None
    event_id: str | None
    event_kind: str | None
    patient_key: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None


@dataclass(frozen=True, slots=True)
class EventView:
    """The canonical care event a message was mapped to."""

    event_id: str
    message_id: int
    source: str
    kind: str
    care_setting: str
    patient_key: str
    occurred_at: datetime | None
    received_at: datetime
    body: str
    """The care event as JSON."""
    stay_id: str | None
    corrects: str | None


@dataclass(frozen=True, slots=True)
class AttemptView:
    id: int
    delivery_id: int
    started_at: datetime
    duration_ms: int
    outcome: str
    status_code: int | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class MeshAckView:
    """An ITK3 acknowledgement matched to a MESH delivery."""

    level: str
    code: str
    positive: bool
    text: str | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class MeshView:
    """A delivery's MESH message: where it went, MESH's id for it, and what came back."""

    recipient: str
    """The GP practice's mailbox ('' when the practice had none)."""
    recipient_ods: str | None
    workflow_id: str
    local_id: str
    itk_message_id: str
    message_id: str | None
    uploaded_at: datetime | None
    acks: tuple[MeshAckView, ...] = ()


@dataclass(frozen=True, slots=True)
class KeptInboxMessage:
    """A message from a MESH destination's inbox that was not an acknowledgement of ours."""

    message_id: str
    destination: str
    received_at: datetime
    sender: str | None
    workflow_id: str | None
    local_id: str | None
    status: str
    reason: str | None
    payload: bytes


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """One destination's delivery of an event, with its attempts (oldest first)."""

    id: int
    event_id: str
    destination: str
    patient_key: str
    status: DeliveryStatus
    state: DeliveryState
    idempotency_key: str
    attempt_count: int
    created_at: datetime
    next_attempt_at: datetime
    lease_until: datetime | None
    lease_owner: str | None
    delivered_at: datetime | None
    last_error: str | None
    hold: bool
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None
    held_at: datetime | None
    held_by: str | None
    attempts: tuple[AttemptView, ...] = ()
    mesh: MeshView | None = None
    """For a delivery to a MESH destination: its MESH message and acknowledgements."""


@dataclass(frozen=True, slots=True)
class MessageDetail:
    message: LoggedMessage
    event: EventView | None
    deliveries: tuple[DeliveryView, ...] = ()


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    """An unresolved dead letter and the message it came from."""

    id: int
    destination: str
    patient_key: str
    attempts: int
    last_error: str | None
    created_at: datetime
    hold: bool
    message_id: int
    source: str
    message_key: str | None
    event_kind: str | None


@dataclass(frozen=True, slots=True)
class DeadLetterPage:
    rows: tuple[DeadLetterView, ...]
    next_before: int | None
    """The `before` of the next (older) page, or None on the last page."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One row of the audit log, as written."""

    id: int
    at: datetime
    actor: str
    role: str
    action: str
    message_id: int | None
    delivery_id: int | None
    patient_key: str | None
    reason: str | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class SourceFigures:
    messages: Mapping[str, int] = field(default_factory=dict)
    """Message-log rows by status (accepted, rejected, duplicate)."""
    last_received: datetime | None = None


@dataclass(frozen=True, slots=True)
class DestinationFigures:
    deliveries: Mapping[str, int] = field(default_factory=dict)
    """By state: pending, held, delivered, dead (unresolved), resolved."""
    oldest_pending: datetime | None = None
    last_success: datetime | None = None
    attempts_recent: Mapping[str, int] = field(default_factory=dict)
    """Attempts in the recent window by outcome (delivered, transient, permanent)."""

    @property
    def error_rate(self) -> float | None:
        total = sum(self.attempts_recent.values())
        failed = total - self.attempts_recent.get("delivered", 0)
        return None if total == 0 else failed / total


@dataclass(frozen=True, slots=True)
class Figures:
    at: datetime
    sources: Mapping[str, SourceFigures]
    destinations: Mapping[str, DestinationFigures]


@dataclass(frozen=True, slots=True)
class JourneyDelivery:
    """One destination's delivery of a journey's event."""

    id: int
    destination: str
    state: DeliveryState
    attempt_count: int
    created_at: datetime
    delivered_at: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class JourneyFollowUp:
    """A discharge's follow-up clock."""

    standard: str
    discharged_at: datetime
    due_at: datetime
    created_at: datetime
    status: str
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    done_at: datetime | None
    done_by: str | None
    withdrawn_by: str | None


@dataclass(frozen=True, slots=True)
class JourneyEvent:
    """One care event of a patient's journey, with what followed from it."""

    event_id: str
    message_id: int
    source: str
    kind: str
    care_setting: str
    occurred_at: datetime | None
    received_at: datetime
    stay_id: str | None
    corrects: str | None
    """For a cancel: the event it cancels."""
    message_status: MessageStatus
    deliveries: tuple[JourneyDelivery, ...] = ()
    follow_up: JourneyFollowUp | None = None
    corrected_by: tuple[str, ...] = ()
    """The events that cancel this one."""
    retired: tuple[str, ...] = ()
    """For a merge: the patient keys it retired into this patient."""

    @property
    def when(self) -> datetime:
        """When it happened, as the sender said, else when the engine received it."""
        return self.occurred_at or self.received_at


@dataclass(frozen=True, slots=True)
class Journey:
    patient_key: str
    events: tuple[JourneyEvent, ...]
    """Oldest first (by when it happened)."""
    cut: bool
    """True when older events were left off (see `console_journey.MAX_EVENTS`)."""
