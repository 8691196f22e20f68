"""Which alerts to raise and which to clear: pure decisions over what the store shows.

An alert is keyed ``<condition>.<subject>`` and raised at most once at a time; its episode is
derived from the condition itself (the oldest pending delivery's queue time, a dead letter's
attempt count, the time a source last sent, a follow-up's due time), never from the time it was
noticed, so its Idempotency-Key is the same whichever replica posts it, and after any restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from engine.config.alerts import AlertsConfig
from engine.store.alerts import FollowUpDue, Observed, StandingAlert
from engine.store.statuses import FollowUpStatus

Condition = Literal[
    "backlog",
    "dead_letter",
    "silent_source",
    "follow_up_overdue",
    "notification_unacknowledged",
    "mesh_no_mailbox",
    "mesh_business_ack_missing",
    "out_of_area_default",
]
OPERATOR_CONDITIONS: tuple[Condition, ...] = ("backlog", "dead_letter", "silent_source")
"""Raised and cleared by the operator alerts; the follow-up alerts are raised only."""


@dataclass(frozen=True, slots=True)
class Alert:
    key: str
    """``<condition>.<subject>``: what is raised at most once at a time."""
    condition: Condition
    episode: str
    """Stable for one raise of the condition: part of the Idempotency-Key of it and its clear."""
    facts: Mapping[str, str | int]
    """Identifiers, counts and names only: no patient data."""

    def body(self, state: Literal["raised", "cleared"], now: datetime) -> dict[str, object]:
        return {
            "alert": self.key,
            "condition": self.condition,
            "state": state,
            "at": now.isoformat(),
            **self.facts,
        }

    def idempotency_key(self, state: Literal["raised", "cleared"]) -> str:
        return f"carebridge.alert.{self.key}.{self.episode}.{state}"[:200]

    @classmethod
    def standing(cls, row: StandingAlert) -> Alert:
        """The alert a row of the store's alert state stands for."""
        condition: Condition = next(c for c in OPERATOR_CONDITIONS if c == row.condition)
        return cls(row.key, condition, row.episode, row.facts)


@dataclass
class AlertState:
    """What one check decides on: the current observation and what is raised (both read from
    the store at each check), and when this engine started (for sources that never sent)."""

    observed: Observed
    raised: dict[str, Alert] = field(default_factory=dict)
    unconfirmed: set[str] = field(default_factory=set)
    """Raised keys whose raise was claimed but never settled (a replica died mid-POST) and
    whose claim has run out: posted again, with the same Idempotency-Key, while they hold."""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def _backlogs(observed: Observed, config: AlertsConfig, now: datetime) -> Iterable[Alert]:
    limit = config.backlog_older_than
    if limit is None:
        return
    for dest, b in observed.backlogs.items():
        if now - b.oldest > limit:
            yield Alert(
                f"backlog.{dest}",
                "backlog",
                _stamp(b.oldest),
                {
                    "destination": dest,
                    "pending": b.pending,
                    "oldest_pending_at": b.oldest.isoformat(),
                    "older_than_seconds": int(limit.total_seconds()),
                },
            )


def _dead_letters(observed: Observed, config: AlertsConfig) -> Iterable[Alert]:
    if not config.dead_letters:
        return
    for delivery_id, d in observed.dead_letters.items():
        yield Alert(
            f"dead_letter.{delivery_id}",
            "dead_letter",
            str(d.attempts),
            {
                "delivery_id": delivery_id,
                "destination": d.destination,
                "event_id": d.event_id,
                "attempts": d.attempts,
            },
        )


def _silent_sources(state: AlertState, config: AlertsConfig, now: datetime) -> Iterable[Alert]:
    for source, quiet in config.silent_sources.items():
        key = f"silent_source.{source}"
        last = state.observed.last_received.get(source)
        if last is None and key in state.raised:
            # Still never sent: silent since before this engine started, and still raised.
            yield state.raised[key]
            continue
        since = last if last is not None else state.started_at
        if now - since > quiet:
            yield Alert(
                key,
                "silent_source",
                _stamp(since),
                {
                    "source": source,
                    "last_received_at": last.isoformat() if last else "never",
                    "silent_for_seconds": int((now - since).total_seconds()),
                },
            )


def evaluate(
    state: AlertState, config: AlertsConfig, now: datetime
) -> tuple[list[Alert], list[Alert]]:
    """What to raise (conditions that hold and are not raised, or whose raise was never
    settled) and what to clear (raised conditions that no longer hold), oldest-keyed first, at
    most `max_per_check` in all (clears first: they are few and close incidents). No I/O;
    `state` is not changed."""
    holding = {
        a.key: a
        for found in (
            _backlogs(state.observed, config, now),
            _dead_letters(state.observed, config),
            _silent_sources(state, config, now),
        )
        for a in found
    }
    clear = [a for key, a in sorted(state.raised.items()) if key not in holding]
    raise_ = [
        state.raised.get(key, a)
        for key, a in sorted(holding.items(), key=_order)
        if key not in state.raised or key in state.unconfirmed
    ]
    budget = config.max_per_check
    clear = clear[:budget]
    return raise_[: budget - len(clear)], clear


def _order(item: tuple[str, Alert]) -> tuple[str, int, str]:
    """Dead letters in id order (numerically), everything else by key."""
    key, alert = item
    if alert.condition == "dead_letter":
        return (alert.condition, int(alert.facts["delivery_id"]), "")
    return (alert.condition, 0, key)


def follow_up_alerts(due: Sequence[FollowUpDue], now: datetime) -> list[Alert]:
    """One alert per follow-up in `due`: overdue first; unacknowledged once it is not (or
    is already alerted as) overdue, so a follow-up that is both raises one per check."""
    alerts = []
    for f in due:
        if f.due_at <= now and not f.alerted_overdue:
            condition: Condition = "follow_up_overdue"
        elif f.status == FollowUpStatus.OPEN and not f.alerted_unacknowledged:
            condition = "notification_unacknowledged"
        else:
            continue
        alerts.append(
            Alert(
                f"{condition}.{f.event_id}",
                condition,
                _stamp(f.due_at),
                {
                    "event_id": f.event_id,
                    "standard": f.standard,
                    "due_at": f.due_at.isoformat(),
                    "status": f.status,
                },
            )
        )
    return alerts
