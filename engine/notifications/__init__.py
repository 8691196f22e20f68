"""Clinician notifications and the follow-up after discharge.

    intake ─► a discharge in a follow-up cohort starts a clock (follow_ups row, due_at)
    delivery ─► engine.delivery.notification: the matching recipient gets the text, the JSON and a
                FHIR Communication + Task, with a signed link to acknowledge and record follow-up
    recipient ─► pages: GET/POST /notifications/{destination}/{event_id}[/ack|/done]?token=...
    engine.alerts ─► alerts (once per condition) for follow-ups overdue or unacknowledged
    follow_ups ─► GET /follow-ups lists them for operators (identifiers only)

A cancelled discharge (A13) withdraws the follow-up at intake and is delivered to the same
recipients as a withdrawal notice that names the original notification.
"""

from engine.delivery.notification import (
    NotificationSender,
    OriginalLoader,
    ack_token,
    recipient_for,
)
from engine.notifications.follow_ups import (
    listing,
    listing_route,
    original_loader,
)
from engine.notifications.pages import record, routes

__all__ = [
    "NotificationSender",
    "OriginalLoader",
    "ack_token",
    "listing",
    "listing_route",
    "original_loader",
    "recipient_for",
    "record",
    "routes",
]
