"""Ground truth: what each destination should receive for the simulated traffic, worked out from
what the simulator knows it generated (the kind of each event, the patient, the setting), the
config's routes and recipients, and the engine's documented rules — not by running the engine's
own mapping, so a disagreement is a finding.

- an event goes to every destination of every route whose kinds, care settings and sources all
  match (`docs/configuration.md`);
- a cancel goes to exactly the destinations its original went to;
- a notification destination posts only notifiable events (a discharge from inpatient care, a
  transfer across sites, a cancelled discharge), each to the first recipient whose GP practices,
  providers and sources match (a withdrawal to the recipient of the discharge it withdraws);
- an input that must be rejected goes nowhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.config import Config, NotificationDestination, NotificationRecipient
from engine.simulate.journeys import SimEvent
from engine.simulate.messages import SimMessage
from mappings.profile import event_id

KIND_OF = {"A01": "admission", "A02": "transfer", "A03": "discharge", "A08": "update",
           "A13": "cancel_discharge", "A21": "leave_start", "A22": "leave_end",
           "A31": "person_update", "A40": "merge"}  # fmt: skip
NO_STAY = ("A31", "A40")
"""Triggers whose message carries no visit (PV1), so no care setting."""


@dataclass(slots=True)
class Expected:
    """One line of the ground truth: one message sent, and what must come of it."""

    seq: int
    control_id: str
    source: str
    variant: str
    accepted: bool
    kind: str | None = None
    event_id: str | None = None
    patient: str | None = None
    journey: int | None = None
    destinations: list[str] = field(default_factory=list)
    """Every destination the event is routed to (a delivery each)."""
    receipts: dict[str, str] = field(default_factory=dict)
    """Destination -> who receives something: the destination itself, or for a notification
    destination the recipient's name. Routed but not posted (not notifiable) is absent."""


def _routed(config: Config, kind: str, setting: str, source: str) -> list[str]:
    chosen: list[str] = []
    for route in config.routes:
        match = route.match
        if match.kinds is not None and kind not in [k.value for k in match.kinds]:
            continue
        if match.care_settings is not None and setting not in [
            s.value for s in match.care_settings
        ]:
            continue
        if match.sources is not None and source not in match.sources:
            continue
        chosen += [name for name in route.to if name not in chosen]
    return chosen


def _notifiable(event: SimEvent) -> bool:
    if event.trigger in ("A03", "A13"):
        return True
    return event.trigger == "A02" and event.prior_site not in (None, event.site)


def recipient_for(recipients: list[NotificationRecipient], event: SimEvent) -> str | None:
    for recipient in recipients:
        if recipient.gp_practices and event.patient.practice not in recipient.gp_practices:
            continue
        if recipient.providers and event.pathway.provider not in recipient.providers:
            continue
        if recipient.sources and event.pathway.source not in recipient.sources:
            continue
        return recipient.name
    return None


MODELLED = frozenset({"name", "url", "secret", "gp_practices", "providers", "sources",
                      "adult_services"})  # fmt: skip
"""The recipient criteria the ground truth models; a config that uses another is refused rather
than judged wrongly."""


class NotModelled(ValueError):
    """The config asks the ground truth something it does not model."""


def check_modelled(config: Config) -> None:
    """Refuse a config whose recipients choose by criteria the truth does not model (postcode
    district, ICB, age band, treatment function, care setting: the engine's recipient rules),
    or whose transitions send out-of-area patients to home teams."""
    for dest in config.destinations:
        if not isinstance(dest, NotificationDestination):
            continue
        for recipient in dest.recipients:
            used = {k for k, v in recipient if v} - MODELLED
            if used:
                raise NotModelled(
                    f"destinations[{dest.name}].recipients[{recipient.name}]: the simulator's "
                    f"ground truth does not model {', '.join(sorted(used))} yet"
                )


def ground_truth(config: Config, sent: list[SimMessage]) -> list[Expected]:
    """What must come of each message in `sent`, in the order they are sent."""
    check_modelled(config)
    truth: list[Expected] = []
    by_event: dict[tuple[int, int], Expected] = {}
    for seq, message in enumerate(sent):
        event = message.event
        line = Expected(seq, message.control_id, message.source, message.variant, event is not None)
        truth.append(line)
        if event is None:
            continue
        line.kind = KIND_OF[event.trigger]
        line.event_id = event_id(message.source, message.message_id)
        line.patient = f"nhs:{event.patient.nhs_number}"
        line.journey = event.journey
        by_event[(event.journey, event.index)] = line
        if event.cancels is not None:
            original = by_event[(event.journey, event.cancels)]
            line.destinations = list(original.destinations)
        else:
            setting = "unknown" if event.trigger in NO_STAY else event.pathway.setting
            line.destinations = _routed(config, line.kind, setting, message.source)
        line.receipts = _receipts(config, line.destinations, event, by_event)
    return truth


def _receipts(
    config: Config,
    destinations: list[str],
    event: SimEvent,
    by_event: dict[tuple[int, int], Expected],
) -> dict[str, str]:
    receipts: dict[str, str] = {}
    for name in destinations:
        dest = config.destination(name)
        if not isinstance(dest, NotificationDestination):
            receipts[name] = name
            continue
        if not _notifiable(event):
            continue
        if event.cancels is not None:
            original = by_event[(event.journey, event.cancels)].receipts.get(name)
            if original is not None:
                receipts[name] = original
            continue
        if (recipient := recipient_for(dest.recipients, event)) is not None:
            receipts[name] = recipient
    return receipts


def write_truth(truth: list[Expected], path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        for line in truth:
            out.write(json.dumps(asdict(line), sort_keys=True) + "\n")


def read_truth(path: Path) -> list[Expected]:
    with path.open(encoding="utf-8") as lines:
        return [Expected(**json.loads(line)) for line in lines if line.strip()]
