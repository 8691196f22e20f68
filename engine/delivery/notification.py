"""Clinician notification destinations: the matching recipient gets the text, the JSON and a FHIR
Communication + Task, with a link to acknowledge and (for a discharge with a follow-up) one to
record the follow-up done: each with a random token of its own, good once, expiring after the
destination's `link_lifetime`; the store keeps only the tokens' SHA-256 (`ack_links`). The token
travels in the link's fragment, so it never reaches an access log or a ``Referer``.

A cancelled discharge (A13) is delivered to the same recipients as a withdrawal notice that names
the original notification.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Self

import orjson
import structlog

from engine.config import NotificationDestination, NotificationRecipient
from engine.delivery.http import PostFn, answer_text, answered, post_rendered, signed
from engine.delivery.recipients import Choice, choose_recipient, explain
from engine.delivery.sending import (
    Outgoing,
    Rendered,
    SendResult,
    Unrenderable,
    care_event,
    event_headers,
    unrenderable,
)
from engine.store import ClaimedDelivery, StoreError
from engine.store.ack_links import IssuedLink, LinkAction
from mappings.clinical.follow_up import FollowUpRule, follow_up_for
from mappings.clinical.notification import Links, is_notifiable, render_notification
from mappings.clinical.transitions import to_adult_team
from mappings.model import CareEvent, EventKind

log = structlog.get_logger("carebridge.notifications")
OriginalLoader = Callable[[str], Awaitable[CareEvent | None]]
"""Loads a stored care event by id (the discharge a withdrawal cancels)."""
RoutingAlert = Callable[[str, Mapping[str, str | int]], Awaitable[None]]
"""Raises an operator alert by key with its facts (the composition root posts it)."""
HIDDEN_TOKEN = "token-not-shown"  # noqa: S105 - a placeholder, not a secret


@dataclass(frozen=True, slots=True)
class LinkTokens:
    """Fresh random tokens for one notification's links, and when they expire. The store keeps
    only their SHA-256 (`issued`); the recipient's links carry the tokens themselves."""

    event_id: str
    tokens: Mapping[LinkAction, str]
    expires_at: datetime

    @classmethod
    def fresh(cls, event_id: str, actions: Sequence[LinkAction], expires_at: datetime) -> Self:
        return cls(event_id, {a: secrets.token_urlsafe(32) for a in actions}, expires_at)

    def issued(self, destination: str, now: datetime) -> list[IssuedLink]:
        return [IssuedLink(token_digest(token), destination, self.event_id, action, now,
                           self.expires_at) for action, token in self.tokens.items()]  # fmt: skip


def token_digest(token: str) -> str:
    """What the store keeps of a link's token."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


IssueLinks = Callable[[Sequence[IssuedLink]], Awaitable[None]]
"""Stores the hashes of a notification's tokens before it is sent (`ack_links.issue_links`)."""


def recipient_for(
    recipients: Sequence[NotificationRecipient],
    event: CareEvent,
    practice_icbs: Mapping[str, str] | None = None,
) -> NotificationRecipient | None:
    """The recipient the destination's rules choose (`engine.delivery.recipients`)."""
    choice = choose_recipient(recipients, event, practice_icbs)
    return choice.recipient if choice else None


def why_recipient(
    recipients: Sequence[NotificationRecipient],
    event: CareEvent,
    practice_icbs: Mapping[str, str] | None = None,
) -> str:
    """Why `recipient_for` chooses the recipient it chooses (or none), in words: the criteria it
    matched, and the earlier recipients passed over with the criterion each failed."""
    return explain(recipients, event, practice_icbs)


Acting = tuple[str, tuple[LinkAction, ...]]


def link_actions(event: CareEvent, subject: CareEvent,
                 rules: Sequence[FollowUpRule]) -> Acting | None:  # fmt: skip
    """The event a notification's links act on (a withdrawal's: the discharge it withdraws),
    and their actions: ``ack`` always, ``done`` for a discharge with a follow-up. None: no
    links (not notifiable, or a withdrawal naming no original)."""
    if not is_notifiable(event):
        return None
    if event.kind is EventKind.DISCHARGE:
        has_follow_up = follow_up_for(subject, rules) is not None
        return event.event_id, ("ack", "done") if has_follow_up else ("ack",)
    tracked = event.corrects_event_id
    return (tracked, ("ack",)) if tracked else None


def links_for(config: NotificationDestination, tokens: LinkTokens | None,
              event_id: str, actions: Sequence[LinkAction]) -> Links:  # fmt: skip
    """The recipient's links: ``<base>/notifications/<destination>/<event>/<action>#<token>``.
    The token is in the fragment, which browsers never send: the page reads it and posts it.
    Without `tokens` (a preview shown to operators), a placeholder in place of each token, and
    no expiry (it is set when the notification is sent)."""
    base = f"{config.ack_base_url.rstrip('/')}/notifications/{config.name}/{event_id}"

    def url(action: LinkAction) -> str | None:
        if action not in actions:
            return None
        token = tokens.tokens[action] if tokens is not None else HIDDEN_TOKEN
        return f"{base}/{action}#{token}"

    expires = tokens.expires_at if tokens is not None else None  # set when sent
    return Links(ack=url("ack"), done=url("done"), expire_at=expires)


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification rendered for its recipient: the text it reads, and what is posted."""

    recipient: NotificationRecipient
    text: str
    rendered: Rendered
    choice: Choice
    """The rule that chose the recipient, and why."""


def render_notice(
    delivery: Outgoing,
    event: CareEvent,
    config: NotificationDestination,
    rules: Sequence[FollowUpRule],
    *,
    now: datetime,
    subject: CareEvent | None = None,
    tokens: LinkTokens | None = None,
    camhs_functions: frozenset[str] | None = None,
    practice_icbs: Mapping[str, str] | None = None,
) -> Notice | None:
    """The notification of `event` for the recipient it routes to, None if the event is not
    notifiable (nothing is sent). `subject` routes a withdrawal: the discharge it withdraws,
    which carries the GP practice even when the cancel message does not (or names a new one).
    `tokens` go into the links; without them (a preview) the links carry placeholders."""
    if not is_notifiable(event):
        return None
    subject = subject or event
    choice = choose_recipient(config.recipients, subject, practice_icbs)
    if choice is None:
        raise Unrenderable("no recipient matches the patient (by GP practice, area, age, "
                           "treatment function, care setting, provider, source)")  # fmt: skip
    recipient = choice.recipient
    # A withdrawal names the follow-up it cancels: the one its original discharge started.
    follow_up = follow_up_for(subject, rules) if subject.kind is EventKind.DISCHARGE else None
    acting = link_actions(event, subject, rules)
    links = links_for(config, tokens, *acting) if acting else None
    if recipient.adult_services:
        event = to_adult_team(event, recipient.name, camhs_functions)
    note = render_notification(
        event, follow_up, recipient=recipient.name, links=links, now=now, rules=rules
    )
    routing = {"recipient": recipient.name, "rule": choice.rule, "why": choice.why}
    body = orjson.dumps({"text": note.text, "notification": note.payload, "fhir": note.fhir,
                         "routing": routing})  # fmt: skip
    headers = {**event_headers(delivery), "Content-Type": "application/json",
               "X-Carebridge-Notification-Id": note.notification_id,
               "X-Carebridge-Recipient-Rule": choice.rule}  # fmt: skip
    headers = signed(headers, recipient.secret, int(now.timestamp()), body)
    return Notice(recipient, note.text, Rendered(body, headers, recipient.url), choice)


class NotificationSender:
    """Posts each notifiable event to the recipient its rules choose; honours Retry-After like
    every HTTP sender. An event no rule matches is permanent (retrying cannot route it). An
    out-of-area patient sent to a default for want of a home-team rule raises an operator
    alert (`alert`) saying why, keyed by the event so a resend raises the same one."""

    def __init__(self, config: NotificationDestination, post: PostFn,
                 rules: Sequence[FollowUpRule], original: OriginalLoader,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 camhs_functions: frozenset[str] | None = None, *, issue: IssueLinks,
                 practice_icbs: Mapping[str, str] | None = None,
                 alert: RoutingAlert | None = None) -> None:  # fmt: skip
        self._camhs_functions = camhs_functions
        self._config = config
        self._post = post
        self._rules = rules
        self._original = original
        self._issue = issue
        self._clock = clock
        self._icbs = practice_icbs or {}
        self._alert = alert

    async def send(self, delivery: ClaimedDelivery) -> SendResult:
        """Render with fresh link tokens, store their hashes, then post. Every attempt has
        tokens of its own: a retry's notification supersedes nothing, and unused tokens expire."""
        now = self._clock()
        try:
            event = care_event(delivery.body)
            subject = await self._subject(event)
            acting = link_actions(event, subject or event, self._rules)
            expires = now + self._config.link_lifetime
            tokens = LinkTokens.fresh(acting[0], acting[1], expires) if acting else None
            notice = render_notice(delivery, event, self._config, self._rules,
                                   now=now, subject=subject, tokens=tokens,
                                   camhs_functions=self._camhs_functions,
                                   practice_icbs=self._icbs)  # fmt: skip
        except Unrenderable as exc:
            return unrenderable(exc)
        if notice is None:
            return SendResult("delivered", detail="not a notifiable event: nothing sent")
        if tokens is not None:
            try:
                await self._issue(tokens.issued(self._config.name, now))
            except StoreError as exc:
                return SendResult("transient", detail=f"the links could not be stored: {exc}")
        if notice.choice.out_of_area_default:
            await self._raise_out_of_area(delivery, notice)
        timeout = self._config.timeout.total_seconds()
        answer = await post_rendered(self._post, notice.rendered, timeout)
        if isinstance(answer, SendResult):
            return answer
        choice = notice.choice
        said = f"to {notice.recipient.name} by {choice.rule} ({choice.why}): "
        return answered(answer, said[:500] + answer_text(answer, 400))

    async def _raise_out_of_area(self, delivery: ClaimedDelivery, notice: Notice) -> None:
        if self._alert is None:
            return
        facts: dict[str, str | int] = {
            "destination": delivery.destination, "event_id": delivery.event_id,
            "recipient": notice.recipient.name, "rule": notice.choice.rule,
            "why": "out-of-area patient and no recipient rule for their home area: "
                   "sent to the default",
        }  # fmt: skip
        try:
            await self._alert(f"out_of_area_default.{delivery.event_id}", facts)
        except Exception as exc:  # noqa: BLE001 - the notification still goes; logged
            log.warning("notification.alert_failed", error=type(exc).__name__)

    async def _subject(self, event: CareEvent) -> CareEvent | None:
        """For a withdrawal, the discharge it withdraws (if stored); None otherwise."""
        if not is_notifiable(event) or event.kind is EventKind.DISCHARGE:
            return None
        if not event.corrects_event_id:
            return None
        return await self._original(event.corrects_event_id)
