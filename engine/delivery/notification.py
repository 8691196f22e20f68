"""Clinician notification destinations: the matching recipient gets the text, the JSON and a FHIR
Communication + Task, with a signed link to acknowledge and record follow-up.

A cancelled discharge (A13) is delivered to the same recipients as a withdrawal notice that names
the original notification.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from engine.config import NotificationDestination, NotificationRecipient
from engine.delivery.http import PostFn, answer_text, answered, post_rendered, signed
from engine.delivery.sending import (
    Outgoing,
    Rendered,
    SendResult,
    Unrenderable,
    care_event,
    event_headers,
    unrenderable,
)
from engine.store import ClaimedDelivery
from mappings.clinical.follow_up import FollowUpRule, follow_up_for
from mappings.clinical.notification import is_notifiable, render_notification
from mappings.clinical.transitions import to_adult_team
from mappings.model import CareEvent, EventKind

OriginalLoader = Callable[[str], Awaitable[CareEvent | None]]
"""Loads a stored care event by id (the discharge a withdrawal cancels)."""
HIDDEN_TOKEN = "(signature not shown)"  # noqa: S105 - a placeholder, not a secret


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


def why_recipient(recipients: Sequence[NotificationRecipient], event: CareEvent) -> str:
    """Why `recipient_for` chooses the recipient it chooses (or none), in words: the criteria it
    matched, and the earlier recipients passed over with the criterion each failed."""
    practice = event.patient.gp_practice_ods
    provider = event.stay.provider_ods if event.stay else None
    skipped: list[str] = []
    for recipient in recipients:
        checks = (
            ("GP practice", "gp_practices", practice, recipient.gp_practices),
            ("provider", "providers", provider, recipient.providers),
            ("source", "sources", event.source.feed, recipient.sources),
        )
        failed = [(what, value) for what, _, value, allowed in checks
                  if allowed and value not in allowed]  # fmt: skip
        if failed:
            what, value = failed[0]
            skipped.append(f"{recipient.name} ({what} {value or 'not recorded'} not in its list)")
            continue
        matched = [f"{what} {value} is in its {key}" for what, key, value, allowed in checks
                   if allowed]  # fmt: skip
        why = "; ".join(matched) or "it sets no criteria (the fallback for every patient)"
        if skipped:
            why += "; passed over: " + ", ".join(skipped)
        return why
    return "no recipient matches: " + ", ".join(skipped)


def ack_url(config: NotificationDestination, event_id: str, *, signed_link: bool = True) -> str:
    """The recipient's link to acknowledge `event_id`; unsigned (a placeholder instead of the
    token) for showing to operators, since the token would let its reader acknowledge."""
    token = ack_token(config.ack_secret, config.name, event_id) if signed_link else HIDDEN_TOKEN
    base = config.ack_base_url.rstrip("/")
    return f"{base}/notifications/{config.name}/{event_id}?token={token}"


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification rendered for its recipient: the text it reads, and what is posted."""

    recipient: NotificationRecipient
    text: str
    rendered: Rendered


def render_notice(
    delivery: Outgoing,
    event: CareEvent,
    config: NotificationDestination,
    rules: Sequence[FollowUpRule],
    *,
    now: datetime,
    subject: CareEvent | None = None,
    signed_link: bool = True,
    camhs_functions: frozenset[str] | None = None,
) -> Notice | None:
    """The notification of `event` for the recipient it routes to, None if the event is not
    notifiable (nothing is sent). `subject` routes a withdrawal: the discharge it withdraws,
    which carries the GP practice even when the cancel message does not (or names a new one)."""
    if not is_notifiable(event):
        return None
    subject = subject or event
    recipient = recipient_for(config.recipients, subject)
    if recipient is None:
        raise Unrenderable("no recipient matches the patient's GP practice, provider or source")
    # A withdrawal names the follow-up it cancels: the one its original discharge started.
    follow_up = follow_up_for(subject, rules) if subject.kind is EventKind.DISCHARGE else None
    tracked = event.event_id if event.kind is EventKind.DISCHARGE else event.corrects_event_id
    link = ack_url(config, tracked, signed_link=signed_link) if tracked else None
    if recipient.adult_services:
        event = to_adult_team(event, recipient.name, camhs_functions)
    note = render_notification(
        event, follow_up, recipient=recipient.name, ack_url=link, now=now, rules=rules
    )
    body = orjson.dumps({"text": note.text, "notification": note.payload, "fhir": note.fhir})
    headers = {**event_headers(delivery), "Content-Type": "application/json",
               "X-Carebridge-Notification-Id": note.notification_id}  # fmt: skip
    headers = signed(headers, recipient.secret, int(now.timestamp()), body)
    return Notice(recipient, note.text, Rendered(body, headers, recipient.url))


class NotificationSender:
    """Posts each notifiable event to the recipient it routes to; honours Retry-After like every
    HTTP sender. An event no recipient matches is permanent (retrying cannot route it)."""

    def __init__(self, config: NotificationDestination, post: PostFn,
                 rules: Sequence[FollowUpRule], original: OriginalLoader,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 camhs_functions: frozenset[str] | None = None) -> None:  # fmt: skip
        self._camhs_functions = camhs_functions
        self._config = config
        self._post = post
        self._rules = rules
        self._original = original
        self._clock = clock

    async def send(self, delivery: ClaimedDelivery) -> SendResult:
        try:
            event = care_event(delivery.body)
            subject = await self._subject(event)
            notice = render_notice(delivery, event, self._config, self._rules,
                                   now=self._clock(), subject=subject,
                                   camhs_functions=self._camhs_functions)  # fmt: skip
        except Unrenderable as exc:
            return unrenderable(exc)
        if notice is None:
            return SendResult("delivered", detail="not a notifiable event: nothing sent")
        timeout = self._config.timeout.total_seconds()
        answer = await post_rendered(self._post, notice.rendered, timeout)
        if isinstance(answer, SendResult):
            return answer
        return answered(answer, f"to {notice.recipient.name}: " + answer_text(answer, 900))

    async def _subject(self, event: CareEvent) -> CareEvent | None:
        """For a withdrawal, the discharge it withdraws (if stored); None otherwise."""
        if not is_notifiable(event) or event.kind is EventKind.DISCHARGE:
            return None
        if not event.corrects_event_id:
            return None
        return await self._original(event.corrects_event_id)
