"""What a destination would be sent for a care event, rendered as the sender renders it, without
sending: the console's message page and `carebridge test` both read it.

Each destination type's own pure renderer is called (`render_webhook`, `render_amqp`,
`render_mllp`, `render_fhir`, `render_notice`, `render_mesh`) on a delivery built as the store
would build it, with the same idempotency key. Nothing here performs I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from engine.config import (
    AmqpDestination,
    Config,
    FhirDestination,
    MeshDestination,
    MllpDestination,
    NotificationDestination,
    WebhookDestination,
)
from engine.delivery.amqp import render_amqp
from engine.delivery.fhir import render_fhir
from engine.delivery.mesh import render_mesh
from engine.delivery.mllp import render_mllp
from engine.delivery.notification import render_notice
from engine.delivery.sending import Unrenderable
from engine.delivery.webhook import render_webhook
from engine.routing import care_setting
from engine.store import idempotency_key
from mappings.model import CareEvent


class PayloadFormat(StrEnum):
    JSON = "json"
    HL7V2 = "hl7v2"
    XML = "xml"
    """FHIR STU3 XML: an ITK3 message for MESH."""
    NONE = "none"
    """Nothing would be sent (the event is not notifiable, or cannot be rendered)."""


@dataclass(frozen=True, slots=True)
class PreviewDelivery:
    """A delivery of the event to the destination, as the store would make it (`Outgoing`)."""

    event_id: str
    idempotency_key: str
    kind: str
    care_setting: str
    source: str
    body: str


@dataclass(frozen=True, slots=True)
class Preview:
    """What `destination` would be sent: the payload and its format; for a notification, the
    recipient chosen and the text it reads; `problem` says why nothing would be sent."""

    destination: str
    format: PayloadFormat
    payload: bytes = b""
    recipient: str | None = None
    recipient_url: str | None = None
    text: str | None = None
    problem: str | None = None
    rule: str | None = None
    """For a notification: the recipient rule that chose, and why."""


def preview_delivery(event: CareEvent, destination: str, body: str) -> PreviewDelivery:
    return PreviewDelivery(
        event_id=event.event_id,
        idempotency_key=idempotency_key(event.event_id, destination),
        kind=event.kind.value,
        care_setting=care_setting(event).value,
        source=event.source.feed,
        body=body,
    )


def preview(
    config: Config,
    destination: str,
    event: CareEvent,
    *,
    now: datetime,
    body: str | None = None,
) -> Preview:
    """Render `event` (stored as `body`, by default its JSON) for `destination` as its sender
    would at `now`.

    Notification links carry a placeholder in place of each token: no token is issued for a
    preview, and one shown to a reader would let them act on the notification."""
    dest = config.destination(destination)
    if dest is None:
        return Preview(destination, PayloadFormat.NONE, problem="not a configured destination")
    body = body if body is not None else event.model_dump_json(exclude_none=True)
    outgoing = preview_delivery(event, destination, body)
    try:
        if isinstance(dest, WebhookDestination):
            rendered = render_webhook(outgoing, dest, int(now.timestamp()))
        elif isinstance(dest, AmqpDestination):
            rendered = render_amqp(outgoing)
        elif isinstance(dest, MllpDestination):
            return Preview(destination, PayloadFormat.HL7V2, render_mllp(outgoing, dest, now).body)
        elif isinstance(dest, FhirDestination):
            rendered = render_fhir(outgoing, dest, now)
        elif isinstance(dest, MeshDestination):
            return _mesh(config, dest, outgoing, now)
        else:
            return _notification(config, dest, outgoing, event, now)
    except Unrenderable as exc:
        return Preview(destination, PayloadFormat.NONE, problem=str(exc))
    return Preview(destination, PayloadFormat.JSON, rendered.body)


def _mesh(
    config: Config, dest: MeshDestination, outgoing: PreviewDelivery, now: datetime
) -> Preview:
    message = render_mesh(outgoing, dest, config.follow_up_rules, now)
    if message is None:
        return Preview(dest.name, PayloadFormat.NONE, problem="not a discharge for MESH")
    text = f"On MESH workflow {message.workflow.workflow_id}, local id {outgoing.idempotency_key}"
    text += "; the GP practice's mailbox is found at send time"
    return Preview(dest.name, PayloadFormat.XML, message.body, text=text)


def _notification(
    config: Config,
    dest: NotificationDestination,
    outgoing: PreviewDelivery,
    event: CareEvent,
    now: datetime,
) -> Preview:
    notice = render_notice(
        outgoing, event, dest, config.follow_up_rules, now=now,
        camhs_functions=config.transitions.camhs_treatment_functions,
        practice_icbs=config.transitions.practice_icbs,
    )  # fmt: skip
    if notice is None:
        return Preview(dest.name, PayloadFormat.NONE, problem="not a notifiable event")
    return Preview(
        dest.name,
        PayloadFormat.JSON,
        notice.rendered.body,
        recipient=notice.recipient.name,
        recipient_url=notice.recipient.url,
        text=notice.text,
        rule=f"{notice.choice.rule}: {notice.choice.why}",
    )
