"""What each destination is sent for an event, as text for the message page (the console's
`render` hook): the renderers the senders use (`engine.delivery`), with today's config.

- webhook, amqp: the canonical care event JSON (shown indented; the same document);
- mllp: the HL7v2 ADT message, one segment a line, with the MSH-10 the delivery's idempotency
  key gives;
- fhir: the UK Core messaging Bundle (or, in transaction mode, the transaction) as JSON;
- mesh: the ITK3 message (FHIR STU3 XML) with its workflow and local id;
- notification: the text the matching recipient reads (the acknowledgement link's signature
  is not shown: it would let anyone who reads the page acknowledge).

The page shows it only to roles that see patient data (`views.message_page`); a viewer never
gets it. A render that fails says why instead (the sender dead-letters it for the same reason).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from engine.config import Config
from engine.console.views import Renderer
from engine.delivery.preview import PayloadFormat, Preview, preview
from engine.delivery.sending import Unrenderable, care_event
from mappings.model import CareEvent, EventKind


def render_for(config: Config, destination: str, body: str, *, now: datetime | None = None) -> str:
    """The payload `destination` is sent for the canonical event JSON `body`."""
    now = now or datetime.now(UTC)
    if config.destination(destination) is None:
        return f"{destination} is no longer a configured destination: nothing would be sent."
    try:
        event = care_event(body)
    except Unrenderable as exc:
        return str(exc)
    shown = preview(config, destination, event, now=now, body=body)
    if shown.format is PayloadFormat.NONE:
        if shown.problem == "not a notifiable event":
            return "not a notifiable event: nothing is sent."
        return shown.problem or "nothing would be sent."
    if shown.recipient is not None:
        return _notification(shown, event)
    if shown.format is PayloadFormat.XML:
        return f"{shown.text}:\n\n{shown.payload.decode('utf-8')}"
    if shown.format is PayloadFormat.HL7V2:
        return "\n".join(s for s in shown.payload.decode("utf-8").split("\r") if s)
    return json.dumps(json.loads(shown.payload), indent=2, ensure_ascii=False, sort_keys=False)


def _notification(shown: Preview, event: CareEvent) -> str:
    header = f"To {shown.recipient} ({shown.recipient_url}), chosen by {shown.rule}:"
    if event.kind is not EventKind.DISCHARGE and event.corrects_event_id:
        header += " (a withdrawal: the follow-up it cancels is read at send time)"
    return f"{header}\n\n{shown.text}"


def renderer(config: Config, clock: Callable[[], datetime] | None = None) -> Renderer:
    """The console's `render` hook for today's config."""

    def render(destination: str, body: str) -> str:
        return render_for(config, destination, body, now=clock() if clock else None)

    return render
