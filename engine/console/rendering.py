"""What each destination is sent for an event, as text for the message page (the console's
`render` hook): the same renderers the senders use, with today's config.

- webhook, amqp: the canonical care event JSON (shown indented; the same document);
- mllp: the HL7v2 ADT message `MllpSender` builds, one segment a line, with the MSH-10 the
  delivery's idempotency key gives;
- fhir: the UK Core messaging Bundle (or, in transaction mode, the transaction) as JSON;
- notification: the text the matching recipient reads (the acknowledgement link's signature
  is not shown: it would let anyone who reads the page acknowledge).

The page shows it only to roles that see patient data (`views.message_page`); a viewer never
gets it. A render that fails says why instead (the sender would dead-letter it the same way).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from engine.config import (
    AmqpDestination,
    Config,
    FhirDestination,
    MllpDestination,
    NotificationDestination,
    WebhookDestination,
    follow_up_rules,
)
from engine.console.views import Renderer
from engine.delivery.mllp import mllp_control_id
from engine.delivery.notification import recipient_for
from mappings.clinical.follow_up import follow_up_for
from mappings.clinical.notification import is_notifiable, render_notification
from mappings.errors import MappingError
from mappings.fhir.outbound import render_fhir_message
from mappings.fhir.transaction import to_transaction
from mappings.hl7v2.outbound import render_adt
from mappings.model import CareEvent, EventKind

_HIDDEN_TOKEN = "(signature not shown)"  # noqa: S105 - a placeholder, not a secret


def _pretty(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False)


def render_for(config: Config, destination: str, body: str, *, now: datetime | None = None) -> str:
    """The payload `destination` is sent for the canonical event JSON `body`."""
    now = now or datetime.now(UTC)
    dest = config.destination(destination)
    if dest is None:
        return f"{destination} is no longer a configured destination: nothing would be sent."
    event = CareEvent.model_validate_json(body)
    if isinstance(dest, WebhookDestination | AmqpDestination):
        return _pretty(json.loads(body))
    if isinstance(dest, MllpDestination):
        try:
            message = render_adt(
                event,
                control_id=mllp_control_id(f"{event.event_id}.{destination}"),
                sending_app=dest.sending_application,
                sending_facility=dest.sending_facility,
                receiving_app=dest.receiving_application,
                receiving_facility=dest.receiving_facility,
                now=now,
                version=dest.version,
            )
        except MappingError as exc:
            return f"cannot be sent as HL7v2: {exc}"
        return "\n".join(s for s in message.decode("utf-8").split("\r") if s)
    if isinstance(dest, FhirDestination):
        bundle = render_fhir_message(event, now=now)
        return _pretty(to_transaction(bundle) if dest.mode == "transaction" else bundle)
    return _notification(config, dest, event, now)


def _notification(
    config: Config, dest: NotificationDestination, event: CareEvent, now: datetime
) -> str:
    if not is_notifiable(event):
        return "not a notifiable event: nothing is sent."
    recipient = recipient_for(dest.recipients, event)
    if recipient is None:
        return "no recipient matches the patient's GP practice, provider or source."
    rules = follow_up_rules(config)
    discharge = event.kind is EventKind.DISCHARGE
    follow_up = follow_up_for(event, rules) if discharge else None
    tracked = event.event_id if discharge else event.corrects_event_id
    ack_url = None
    if tracked:
        base = dest.ack_base_url.rstrip("/")
        ack_url = f"{base}/notifications/{dest.name}/{tracked}?token={_HIDDEN_TOKEN}"
    note = render_notification(
        event,
        follow_up,
        recipient=recipient.name,
        ack_url=ack_url,
        now=now,
        rules=rules,
    )
    header = f"To {recipient.name} ({recipient.url}):"
    if not discharge and event.corrects_event_id:
        header += " (a withdrawal: the follow-up it cancels is read at send time)"
    return f"{header}\n\n{note.text}"


def renderer(config: Config, clock: Callable[[], datetime] | None = None) -> Renderer:
    """The console's `render` hook for today's config."""

    def render(destination: str, body: str) -> str:
        return render_for(config, destination, body, now=clock() if clock else None)

    return render
