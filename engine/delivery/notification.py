"""Clinician notification destinations: the matching recipient gets the text, the JSON and a FHIR
Communication + Task, with a signed link to acknowledge and record follow-up.

A cancelled discharge (A13) is delivered to the same recipients as a withdrawal notice that names
the original notification.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import orjson

from adapters.errors import DestinationError, DestinationTimeout
from engine.config import NotificationDestination, NotificationRecipient
from engine.delivery.http import SIGNATURE_HEADER, PostFn, classify_http, sign
from engine.delivery.sending import SendResult, event_headers
from engine.store import ClaimedDelivery
from mappings.clinical.follow_up import FollowUpRule, follow_up_for
from mappings.clinical.notification import is_notifiable, render_notification
from mappings.model import CareEvent, EventKind

OriginalLoader = Callable[[str], Awaitable[CareEvent | None]]
"""Loads a stored care event by id (the discharge a withdrawal cancels)."""


def ack_token(secret: str, destination: str, event_id: str) -> str:
    """The signature that makes an acknowledgement link valid for exactly one notification."""
    mac = hmac.new(secret.encode(), f"{destination}:{event_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def recipient_for(
    recipients: Sequence[NotificationRecipient], event: CareEvent
) -> NotificationRecipient | None:
    """The first recipient whose criteria all match (GP practice, provider, source)."""
    practice = event.patient.gp_practice_ods
    provider = event.stay.provider_ods if event.stay else None
    for recipient in recipients:
        if recipient.gp_practices and practice not in recipient.gp_practices:
            continue
        if recipient.providers and provider not in recipient.providers:
            continue
        if recipient.sources and event.source.feed not in recipient.sources:
            continue
        return recipient
    return None


class NotificationSender:
    def __init__(self, config: NotificationDestination, post: PostFn,
                 rules: Sequence[FollowUpRule], original: OriginalLoader,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:  # fmt: skip
        self._config = config
        self._post = post
        self._rules = rules
        self._original = original
        self._clock = clock

    def ack_url(self, event_id: str) -> str:
        token = ack_token(self._config.ack_secret, self._config.name, event_id)
        base = self._config.ack_base_url.rstrip("/")
        return f"{base}/notifications/{self._config.name}/{event_id}?token={token}"

    async def send(self, delivery: ClaimedDelivery) -> SendResult:
        event = CareEvent.model_validate_json(delivery.body)
        if not is_notifiable(event):
            return SendResult("delivered", detail="not a notifiable event: nothing sent")
        # A withdrawal goes to whoever received the discharge: route by the original event, which
        # carries the GP practice even when the cancel message does not (or names a new one).
        subject = event
        if event.kind is not EventKind.DISCHARGE and event.corrects_event_id:
            subject = await self._original(event.corrects_event_id) or event
        recipient = recipient_for(self._config.recipients, subject)
        if recipient is None:
            reason = "no recipient matches the patient's GP practice, provider or source"
            return SendResult("permanent", detail=reason)
        # A withdrawal names the follow-up it cancels: the one its original discharge started.
        follow_up = (follow_up_for(subject, self._rules)
                     if subject.kind is EventKind.DISCHARGE else None)  # fmt: skip
        tracked = event.event_id if event.kind is EventKind.DISCHARGE else event.corrects_event_id
        note = render_notification(
            event, follow_up, recipient=recipient.name,
            ack_url=self.ack_url(tracked) if tracked else None, now=self._clock(),
            rules=self._rules,
        )  # fmt: skip
        body = orjson.dumps({"text": note.text, "notification": note.payload, "fhir": note.fhir})
        headers = {**event_headers(delivery), "Content-Type": "application/json",
                   "X-Carebridge-Notification-Id": note.notification_id}  # fmt: skip
        if recipient.secret:
            headers[SIGNATURE_HEADER] = sign(recipient.secret, int(self._clock().timestamp()), body)
        try:
            answer = await self._post(recipient.url, body, headers,
                                      self._config.timeout.total_seconds())  # fmt: skip
        except DestinationTimeout:
            return SendResult("transient", detail="no answer within the timeout")
        except DestinationError as exc:
            return SendResult("transient", detail=f"not reached: {exc}"[:1000])
        detail = f"to {recipient.name}: " + answer.body[:900].decode("utf-8", "replace")
        return SendResult(classify_http(answer.status), answer.status, detail)
