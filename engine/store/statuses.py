"""The states a stored row can be in, as the store writes them (the values are in the tables)."""

from __future__ import annotations

from enum import StrEnum


class MessageStatus(StrEnum):
    """What became of a received message (the message log)."""

    ACCEPTED = "accepted"
    """It became an event, with its deliveries."""
    REJECTED = "rejected"
    """It did not map, or reused a message id with other bytes: kept for an operator."""
    DUPLICATE = "duplicate"
    """A repeat of an accepted message (same id, same bytes): no deliveries."""


class DeliveryStatus(StrEnum):
    """Where one (event, destination) delivery of the outbox stands."""

    PENDING = "pending"
    """To be sent (due at `next_attempt_at`; a held one is due at the end of time)."""
    DELIVERED = "delivered"
    DEAD = "dead"
    """Dead-lettered: given up on, until an operator replays or resolves it."""


class FollowUpStatus(StrEnum):
    """Where the follow-up clock a discharge started stands."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    DONE = "done"
    WITHDRAWN = "withdrawn"
    """The discharge was cancelled or replaced."""


OPEN_FOLLOW_UPS = (FollowUpStatus.OPEN, FollowUpStatus.ACKNOWLEDGED)
"""The follow-up states whose clock still runs (not done, not withdrawn)."""
