"""The notification a clinician acts on when a patient leaves inpatient care.

`is_notifiable` says which events get one; `render_notification` builds it three ways from one
event: a short `text` a person reads, a structured `payload` (JSON) and a FHIR R4 `fhir`
Bundle (a ``collection`` holding a ``Communication`` and, for a follow-up, a ``Task``).

What is notifiable (domain brief 4, 5 and 7):

- a **discharge** (A03) from inpatient care. An A03 whose patient class is outpatient,
  emergency, pre-admit or recurring (HL7 table 0004 ``O``, ``E``, ``P``, ``R``) ends an
  attendance, not an inpatient stay, and is not notified; a missing or local class is notified
  (the safer reading). A discharge to another provider (destinations 49, 50, 53, 84...) is a
  discharge here: it is notified, with no follow-up started (`mappings.clinical.follow_up`);
- a **transfer** (A02) to another *site*: both locations name an ODS site (PV1-3.4 / PV1-6.4)
  and they differ. A ward or bed move within one site is not notified. A move to another
  provider arrives as a discharge (A03) by the sending provider, so is covered above;
- a **withdrawal**: a cancelled discharge (A13) always (the discharge may have been notified,
  and a live follow-up task must be cancelled); a cancelled transfer (A12) when it moves the
  patient back across sites. The engine sends a withdrawal only to the recipients that had the
  original, as it does for every correction;
- never a leave of absence (A21/A22, or their cancels): leave is not discharge.

The texts never hold an address, in any case, and leave out the GP when the record is
location-hidden (ZU8); the payload holds no address at all (only what a recipient acts on).
Legal status is reported as sent: "not recorded" when absent, never "informal" by default.

Every id is a version-5 UUID: rendering the same event twice, with the same `now`, gives
identical output, and a withdrawal's Task has the id (and identifier) of the Task the original
discharge created, so a receiver can cancel it. Plain dicts; tests validate them against the
fhir.resources R4B models. Pure: no I/O, no logging.

`facts` decides the kind and holds what the three renderings share; `text`, `payload` and
`fhir` each write one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mappings.clinical.follow_up.rules import DEFAULT_RULES, FollowUp, FollowUpRule
from mappings.clinical.notification.facts import FOLLOW_UP_SYSTEM as FOLLOW_UP_SYSTEM
from mappings.clinical.notification.facts import NOTIFICATION_SYSTEM as NOTIFICATION_SYSTEM
from mappings.clinical.notification.facts import Facts, Kind, Links, notification_kind
from mappings.clinical.notification.facts import notification_id as notification_id
from mappings.clinical.notification.fhir import render_bundle
from mappings.clinical.notification.payload import render_payload
from mappings.clinical.notification.text import render_text
from mappings.model import CareEvent

__all__ = [
    "FOLLOW_UP_SYSTEM",
    "NOTIFICATION_SYSTEM",
    "Links",
    "Notification",
    "is_notifiable",
    "notification_id",
    "render_notification",
]


@dataclass(frozen=True)
class Notification:
    notification_id: str
    kind: Kind
    text: str
    payload: dict[str, Any]
    fhir: dict[str, Any]


def is_notifiable(event: CareEvent) -> bool:
    """Whether the event is a discharge or transfer out of inpatient care, or the withdrawal of
    one (see the module notes). Never a leave of absence."""
    return notification_kind(event) is not None


def render_notification(
    event: CareEvent,
    follow_up: FollowUp | None,
    *,
    recipient: str,
    links: Links | None = None,
    now: datetime,
    rules: Sequence[FollowUpRule] = DEFAULT_RULES,
    ack_url: str | None = None,
) -> Notification:
    """The notification of a notifiable event for one recipient.

    `follow_up` is what `follow_up_for` gave the discharge (for a withdrawal: what it gave the
    discharge being withdrawn, if known). `rules` are only used to say why there is no
    follow-up: pass the rules `follow_up` came from. `now` (timezone-aware) is the send time.
    `links` are the recipient's links, made by the caller (none: "Acknowledge: no link");
    `ack_url` alone is short for ``Links(ack=ack_url)``.
    Raises ValueError for an event that is not notifiable or a naive `now`.
    """
    kind = notification_kind(event)
    if kind is None:
        raise ValueError(f"a {event.kind.value} event is not notifiable")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    facts = Facts.of(event, kind, follow_up, recipient, links or Links(ack=ack_url), now, rules)
    text = render_text(facts)
    return Notification(
        notification_id=facts.id,
        kind=kind,
        text=text,
        payload=render_payload(facts),
        fhir=render_bundle(facts, text),
    )
