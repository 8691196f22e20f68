"""What each destination is sent for an event, as text for the message page (the console's
`render` hook): the renderers the senders use (`engine.delivery`), with today's config.

- webhook, amqp: the canonical care event JSON (shown indented; the same document);
- mllp: the HL7v2 ADT message, one segment a line, with the MSH-10 the delivery's idempotency
  key gives;
- fhir: the UK Core messaging Bundle (or, in transaction mode, the transaction) as JSON;
- notification: the text the matching recipient reads (the acknowledgement link's signature
  is not shown: it would let anyone who reads the page acknowledge).

The page shows it only to roles that see patient data (`views.message_page`); a viewer never
gets it. A render that fails says why instead (the sender dead-letters it for the same reason).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.config import (
    AmqpDestination,
    Config,
    FhirDestination,
    MllpDestination,
    NotificationDestination,
    WebhookDestination,
)
from engine.console.views import Renderer
from engine.delivery.amqp import render_amqp
from engine.delivery.fhir import render_fhir
from engine.delivery.mllp import render_mllp
from engine.delivery.notification import render_notice
from engine.delivery.sending import Rendered, Unrenderable, care_event
from engine.delivery.webhook import render_webhook
from engine.routing import care_setting
from engine.store import idempotency_key
from mappings.model import CareEvent, EventKind


@dataclass(frozen=True, slots=True)
class _Preview:
    """A delivery of the event to the destination, as the store would make it (`Outgoing`)."""

    event_id: str
    idempotency_key: str
    kind: str
    care_setting: str
    source: str
    body: str


def _preview(event: CareEvent, destination: str, body: str) -> _Preview:
    return _Preview(
        event_id=event.event_id,
        idempotency_key=idempotency_key(event.event_id, destination),
        kind=event.kind.value,
        care_setting=care_setting(event).value,
        source=event.source.feed,
        body=body,
    )


def _pretty(payload: bytes) -> str:
    return json.dumps(json.loads(payload), indent=2, ensure_ascii=False, sort_keys=False)


def render_for(config: Config, destination: str, body: str, *, now: datetime | None = None) -> str:
    """The payload `destination` is sent for the canonical event JSON `body`."""
    now = now or datetime.now(UTC)
    dest = config.destination(destination)
    if dest is None:
        return f"{destination} is no longer a configured destination: nothing would be sent."
    try:
        event = care_event(body)
        outgoing = _preview(event, destination, body)
        if isinstance(dest, WebhookDestination):
            return _pretty(render_webhook(outgoing, dest, int(now.timestamp())).body)
        if isinstance(dest, AmqpDestination):
            return _pretty(render_amqp(outgoing).body)
        if isinstance(dest, MllpDestination):
            return _segments(render_mllp(outgoing, dest, now))
        if isinstance(dest, FhirDestination):
            return _pretty(render_fhir(outgoing, dest, now).body)
        return _notification(config, dest, outgoing, event, now)
    except Unrenderable as exc:
        return str(exc)


def _segments(rendered: Rendered) -> str:
    return "\n".join(s for s in rendered.body.decode("utf-8").split("\r") if s)


def _notification(
    config: Config,
    dest: NotificationDestination,
    outgoing: _Preview,
    event: CareEvent,
    now: datetime,
) -> str:
    notice = render_notice(
        outgoing, event, dest, config.follow_up_rules, now=now, signed_link=False
    )
    if notice is None:
        return "not a notifiable event: nothing is sent."
    header = f"To {notice.recipient.name} ({notice.recipient.url}):"
    if event.kind is not EventKind.DISCHARGE and event.corrects_event_id:
        header += " (a withdrawal: the follow-up it cancels is read at send time)"
    return f"{header}\n\n{notice.text}"


def renderer(config: Config, clock: Callable[[], datetime] | None = None) -> Renderer:
    """The console's `render` hook for today's config."""

    def render(destination: str, body: str) -> str:
        return render_for(config, destination, body, now=clock() if clock else None)

    return render
