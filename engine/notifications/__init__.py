"""Clinician notifications and the follow-up after discharge.

    intake ─► a discharge in a follow-up cohort starts a clock (follow_ups row, due_at)
    delivery ─► engine.delivery.notification: the matching recipient gets the text, the JSON and a
                FHIR Communication + Task, with single-use expiring links to acknowledge and to
                record the follow-up done (the token in the link's fragment, stored hashed)
    recipient ─► pages: GET/POST /notifications/{destination}/{event_id}/{ack|done}
    engine.alerts ─► alerts (once per condition) for follow-ups overdue or unacknowledged
    follow_ups ─► GET /follow-ups lists them for operators (identifiers only)

A cancelled discharge (A13) withdraws the follow-up at intake and is delivered to the same
recipients as a withdrawal notice that names the original notification.
"""

from engine.delivery.notification import (
    NotificationSender,
    OriginalLoader,
    recipient_for,
)
from engine.notifications.follow_ups import (
    link_issuer,
    listing,
    listing_route,
    original_loader,
)
from engine.notifications.pages import routes

__all__ = [
    "NotificationSender",
    "OriginalLoader",
    "link_issuer",
    "listing",
    "listing_route",
    "original_loader",
    "recipient_for",
    "routes",
]
