"""`carebridge map FILE --to notification`: what a clinician would receive for one message under
a config, worked out the way intake and the notification destination work it out, without a
broker or a store.

    payload ─► prepare() (map, transitions, route: intake's own step) ─► rejected? exit 1
            ─► for each notification destination a route sends it to: the recipient (and why),
               the follow-up (due when, by which rule), the text (`engine.delivery.preview`)
            ─► none sent? "not notified: <reason>", exit 0

Without a config the embedded defaults have no notification destination; the message is then
shown as a notification would render it under the default follow-up rules, with no recipient.
A withdrawal (cancelled discharge) is shown without its original discharge, which only the
store holds: its follow-up line says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from engine.config import Config, NotificationDestination
from engine.delivery.notification import why_recipient
from engine.delivery.preview import preview
from engine.preparation import prepare
from engine.routing import care_setting, destinations_for
from mappings.clinical.follow_up import FollowUp, follow_up_for
from mappings.clinical.notification import render_notification
from mappings.clinical.notification.facts import not_notifiable_reason
from mappings.clinical.notification.text import local_time
from mappings.model import CareEvent, EventKind
from mappings.profile import FeedProfile

EXIT_OK, EXIT_REJECTED = 0, 1


@dataclass
class Checked:
    """The outcome: exit code, the lines for standard output, the one line for standard error."""

    code: int = EXIT_OK
    out: list[str] = field(default_factory=list)
    error: str | None = None


def check_notification(
    raw: bytes,
    *,
    config: Config,
    source: str,
    profile: FeedProfile,
    configured: bool,
    now: datetime | None = None,
) -> Checked:
    """What the clinician would receive for `raw` from `source` under `config`."""
    now = now or datetime.now(UTC)
    prepared = prepare(source, raw, config=config, profiles={source: profile}, received_at=now,
                       follow_up_rules=config.follow_up_rules)  # fmt: skip
    record, event = prepared.record, prepared.event
    if event is None or record.accepted is None:
        where = f"{record.error_location}: " if record.error_location else ""
        return Checked(EXIT_REJECTED, error=f"rejected: {where}{record.reason}")
    if reason := not_notifiable_reason(event):
        return _not_notified(event, reason)
    if not configured:
        return _without_config(event, config, now)
    routed = [name for name, _ in record.accepted.destinations]
    notifying = [d for d in config.destinations if isinstance(d, NotificationDestination)]
    chosen = [d for d in notifying if d.name in routed]
    if not chosen:
        why = (
            "the config has no notification destination"
            if not notifying
            else f"no route sends this {event.kind.value} from {source} "
            f"({care_setting(event).value}) to a notification destination "
            f"({', '.join(d.name for d in notifying)})"
        )
        return _not_notified(event, why)
    checked = Checked()
    for destination in chosen:
        _one_destination(checked, config, destination, event, now)
    if not any(line.startswith("recipient:") for line in checked.out):
        return _not_notified(event, checked.error or "no recipient matches")
    checked.error = None
    return checked


def _one_destination(
    checked: Checked,
    config: Config,
    destination: NotificationDestination,
    event: CareEvent,
    now: datetime,
) -> None:
    shown = preview(config, destination.name, event, now=now)
    why = why_recipient(destination.recipients, event, config.transitions.practice_icbs)
    if shown.text is None:
        checked.error = f"{destination.name}: {shown.problem or 'nothing rendered'} ({why})"
        return
    routes = [r.name for r in config.routes
              if destination.name in r.to and destinations_for(event, [r])]  # fmt: skip
    checked.out += [
        f"destination: {destination.name} (routes: {', '.join(routes)})",
        f"recipient: {shown.recipient} <{shown.recipient_url}>",
        f"why this recipient: {why}",
        *_follow_up_lines(event, config),
        *_warning_lines(event),
        "text:",
        *(f"  {line}" for line in shown.text.rstrip("\n").split("\n")),
        "",
    ]


def _without_config(event: CareEvent, config: Config, now: datetime) -> Checked:
    rules = config.follow_up_rules
    found = follow_up_for(event, rules) if event.kind is EventKind.DISCHARGE else None
    note = render_notification(
        event, found, recipient="(no config given)", ack_url=None, now=now, rules=rules
    )
    lines = [
        "destination: none (no config given: -c CONFIG --source NAME shows who would receive it)",
        "recipient: none chosen",
        *_follow_up_lines(event, config),
        *_warning_lines(event),
        "text:",
        *(f"  {line}" for line in note.text.rstrip("\n").split("\n")),
        "",
    ]
    return Checked(out=lines)


def _follow_up_lines(event: CareEvent, config: Config) -> list[str]:
    if event.kind is EventKind.CANCEL_DISCHARGE:
        return ["follow-up: the clock the withdrawn discharge started (if any) is cancelled"]
    if event.kind is not EventKind.DISCHARGE:
        return ["follow-up: none (only a discharge starts a clock)"]
    found: FollowUp | None = follow_up_for(event, config.follow_up_rules)
    if found is None:
        return ["follow-up: no clock started (the text says why)"]
    return [
        f"follow-up: due {local_time(found.due_at)} ({found.due_at:%Y-%m-%dT%H:%M:%SZ}), "
        f"standard {found.standard}, set by rule {found.rule}"
    ]


def _warning_lines(event: CareEvent) -> list[str]:
    if not event.warnings:
        return ["warnings: none"]
    return ["warnings:", *(f"  - {w}" for w in event.warnings)]


def _not_notified(event: CareEvent, reason: str) -> Checked:
    return Checked(out=[f"not notified: {reason}", *_warning_lines(event)])
