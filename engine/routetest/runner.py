"""Running one route-test case against a config: the same pure steps intake and the senders take
(`engine.preparation.prepare`, then each destination's renderer through `engine.delivery.preview`),
with no broker, store or network.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.config import Config
from engine.delivery.preview import PayloadFormat, Preview, preview
from engine.preparation import prepare
from engine.routetest.paths import PathError, hl7_value, json_value, mismatch
from engine.routetest.spec import Case, Expect, FollowUpExpect, NotificationExpect
from engine.store import AcceptedEvent
from mappings.model import CareEvent


@dataclass(slots=True)
class CaseResult:
    """One case's outcome: passed when it has neither failures nor an error."""

    name: str
    failures: list[str] = field(default_factory=list)
    error: str | None = None
    """The case itself is broken (unknown source, unreadable file, malformed path)."""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures and self.error is None


def run_case(
    case: Case,
    config: Config,
    base: Path,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> CaseResult:
    started = time.perf_counter()
    result = CaseResult(case.name)
    try:
        _run(case, config, base, clock, result)
    except PathError as exc:
        result.error = str(exc)
    except OSError as exc:
        result.error = f"input: cannot read {exc.filename} ({exc.strerror})"
    result.seconds = time.perf_counter() - started
    return result


def _run(
    case: Case, config: Config, base: Path, clock: Callable[[], datetime], result: CaseResult
) -> None:
    if config.source(case.source) is None:
        result.error = f"source: no source named {case.source!r} in the config"
        return
    received_at = case.received_at or clock()
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    prepared = prepare(
        case.source,
        case.input.payload(base),
        config=config,
        profiles=config.feed_profiles,
        received_at=received_at,
        follow_up_rules=config.follow_up_rules,
    )
    expect = case.expect
    accepted = prepared.record.accepted
    if prepared.event is None or accepted is None:
        reason = prepared.record.reason or "rejected"
        result.failures += _rejected(expect, reason)
        return
    if expect.wants_rejection:
        result.failures.append(
            f"outcome: expected rejected ({expect.rejected or 'any reason'}), "
            f"got accepted as {prepared.event.kind.value}"
        )
        return
    _check_accepted(expect, config, prepared.event, accepted, received_at, result)


def _rejected(expect: Expect, reason: str) -> list[str]:
    if not expect.wants_rejection:
        return [f"outcome: expected accepted, got rejected: {reason}"]
    phrase = expect.rejected or ""
    if phrase.casefold() not in reason.casefold():
        return [f"rejection reason: expected to contain {phrase!r}, got {reason!r}"]
    return []


def _check_accepted(
    expect: Expect,
    config: Config,
    event: CareEvent,
    accepted: AcceptedEvent,
    now: datetime,
    result: CaseResult,
) -> None:
    document = json.loads(accepted.body)
    for path, wanted in expect.event.items():
        if (problem := mismatch(json_value(document, path), wanted)) is not None:
            result.failures.append(f"event.{path}: {problem}")
    if expect.destinations is not None:
        result.failures += _destinations(expect.destinations, [d for d, _ in accepted.destinations])
    if expect.follow_up is not None:
        result.failures += _follow_up(expect.follow_up, accepted)
    if expect.notification is not None:
        result.failures += _notification(expect.notification, config, event, accepted, now)
    for destination, paths in expect.payloads.items():
        result.failures += _payload(destination, paths, config, event, accepted, now)


def _destinations(wanted: list[str], got: list[str]) -> list[str]:
    if wanted == got:
        return []
    lines = [f"destinations: expected {wanted}, got {got}"]
    if missing := [d for d in wanted if d not in got]:
        lines.append(f"destinations: missing {missing}")
    if unexpected := [d for d in got if d not in wanted]:
        lines.append(f"destinations: unexpected {unexpected}")
    if not missing and not unexpected:
        lines.append("destinations: the same destinations in another order")
    return lines


def _follow_up(wanted: FollowUpExpect, accepted: AcceptedEvent) -> list[str]:
    clock = accepted.follow_up
    if wanted.none:
        return [] if clock is None else [f"follow_up: expected none, got {clock.standard}"]
    if clock is None:
        return ["follow_up: expected a follow-up clock, got none"]
    checks: list[tuple[str, Any, Any]] = [
        ("standard", clock.standard, wanted.standard),
        ("rule", clock.rule, wanted.rule),
        ("due_at", clock.due_at.isoformat(), wanted.due_at),
    ]
    return [
        f"follow_up.{name}: {problem}"
        for name, got, want in checks
        if want is not None and (problem := mismatch(got, want)) is not None
    ]


def _routed_preview(
    destination: str, config: Config, event: CareEvent, accepted: AcceptedEvent, now: datetime
) -> Preview | None:
    """What `destination` would be sent for the event, or None if it is not routed there."""
    if destination not in [d for d, _ in accepted.destinations]:
        return None
    return preview(config, destination, event, now=now, body=accepted.body)


def _notification(
    wanted: NotificationExpect,
    config: Config,
    event: CareEvent,
    accepted: AcceptedEvent,
    now: datetime,
) -> list[str]:
    where = f"notification[{wanted.destination}]"
    shown = _routed_preview(wanted.destination, config, event, accepted, now)
    if shown is None:
        return [f"{where}: not routed to this destination"]
    if shown.format is PayloadFormat.NONE:
        return [] if not wanted.sent else [f"{where}: expected sent, got nothing: {shown.problem}"]
    if not wanted.sent:
        return [f"{where}: expected nothing sent, got a notification to {shown.recipient}"]
    failures = []
    if wanted.recipient is not None and shown.recipient != wanted.recipient:
        failures.append(
            f"{where}.recipient: expected {wanted.recipient!r}, got {shown.recipient!r}"
        )
    text = shown.text or ""
    failures += [
        f"{where}.text: expected to contain {phrase!r}"
        for phrase in wanted.text_contains
        if phrase not in text
    ]
    return failures


def _payload(
    destination: str,
    paths: dict[str, Any],
    config: Config,
    event: CareEvent,
    accepted: AcceptedEvent,
    now: datetime,
) -> list[str]:
    where = f"payloads[{destination}]"
    shown = _routed_preview(destination, config, event, accepted, now)
    if shown is None:
        return [f"{where}: not routed to this destination"]
    if shown.format is PayloadFormat.NONE:
        return [f"{where}: nothing would be sent: {shown.problem}"]
    if shown.format is PayloadFormat.XML:
        return [f"{where}: payload paths are read in JSON or HL7v2, not in a MESH message's XML"]
    if shown.format is PayloadFormat.HL7V2:
        read: Callable[[str], Any] = lambda path: hl7_value(shown.payload, path)  # noqa: E731
    else:
        document = json.loads(shown.payload)
        read = lambda path: json_value(document, path)  # noqa: E731
    return [
        f"{where}.{path}: {problem}"
        for path, wanted in paths.items()
        if (problem := mismatch(read(path), wanted)) is not None
    ]
