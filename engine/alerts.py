"""Operator alerts: a backlog growing old, a dead letter, a source gone silent.

    every check_interval ─► observe (three small indexed queries) ─► evaluate (pure)
                        ─► one POST per alert raised or cleared ─► remember what is raised

Each condition is raised **once**, then stays quiet until it clears, when a "cleared" message
follows (so a receiver can close its incident):

- ``backlog.<destination>``: the destination's oldest pending delivery (not held by an
  operator) was queued more than `backlog_older_than` ago;
- ``dead_letter.<delivery id>``: a delivery is dead-lettered and unresolved (cleared when an
  operator resolves or replays it);
- ``silent_source.<source>``: no message received from the source for its configured time
  (counted from the engine's start for a source that never sent one).

Alerts carry identifiers, counts and the names of sources and destinations only: never a
payload, a patient key or a destination's error text (which may quote patient data).

What is raised lives in memory. Consequence: **a restart raises every current condition once
more**. The Idempotency-Key of a raise is derived from the condition itself (the oldest pending
delivery's queue time, the delivery and its attempt count, the time the source last sent), not
from the time it was noticed, so the repeat after a restart carries the key of the first raise
and a receiver that de-duplicates drops it. A condition that cleared while the engine was down
sends no "cleared" message.

Its settings (`AlertsConfig`, `AlertWebhook`) are in `engine.config.alerts`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import orjson
import sqlalchemy as sa
import structlog

from engine.config.alerts import AlertsConfig
from engine.store.schema import deliveries, messages
from engine.store.statuses import DeliveryStatus

if TYPE_CHECKING:
    from engine.delivery.http import PostFn
    from engine.store import Store

log = structlog.get_logger("carebridge.alerts")

Condition = Literal["backlog", "dead_letter", "silent_source"]


# ---- what the store shows ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backlog:
    oldest: datetime
    """Queue time of the oldest pending (not held) delivery."""
    pending: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    destination: str
    event_id: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Observed:
    backlogs: Mapping[str, Backlog] = field(default_factory=dict)
    dead_letters: Mapping[int, DeadLetter] = field(default_factory=dict)
    """Unresolved dead letters by delivery id."""
    last_received: Mapping[str, datetime | None] = field(default_factory=dict)
    """For each watched source: when its newest message was received (None: never)."""


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


@dataclass
class AlertState:
    """What the watch knows between checks: the current observation and what is raised."""

    observed: Observed
    raised: dict[str, Alert] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def _holding(observed: Observed, config: AlertsConfig, now: datetime, started_at: datetime
             ) -> dict[str, Alert]:  # fmt: skip
    """Every condition that holds now, as the alert it would raise."""
    holding: dict[str, Alert] = {}
    limit = config.backlog_older_than
    if limit is not None:
        for dest, b in observed.backlogs.items():
            if now - b.oldest > limit:
                holding[f"backlog.{dest}"] = Alert(
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
    if config.dead_letters:
        for delivery_id, d in observed.dead_letters.items():
            holding[f"dead_letter.{delivery_id}"] = Alert(
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
    for source, quiet in config.silent_sources.items():
        last = observed.last_received.get(source)
        since = last if last is not None else started_at
        if now - since > quiet:
            holding[f"silent_source.{source}"] = Alert(
                f"silent_source.{source}",
                "silent_source",
                _stamp(since),
                {
                    "source": source,
                    "last_received_at": last.isoformat() if last else "never",
                    "silent_for_seconds": int((now - since).total_seconds()),
                },
            )
    return holding


def evaluate(
    state: AlertState, config: AlertsConfig, now: datetime
) -> tuple[list[Alert], list[Alert]]:
    """What to raise (conditions that hold and are not raised) and what to clear (raised
    conditions that no longer hold), oldest-keyed first, at most `max_per_check` in all
    (clears first: they are few and close incidents). No I/O; `state` is not changed."""
    holding = _holding(state.observed, config, now, state.started_at)
    clear = [a for key, a in sorted(state.raised.items()) if key not in holding]
    raise_ = [a for key, a in sorted(holding.items(), key=_order) if key not in state.raised]
    budget = config.max_per_check
    clear = clear[:budget]
    return raise_[: budget - len(clear)], clear


def _order(item: tuple[str, Alert]) -> tuple[str, int, str]:
    """Dead letters in id order (numerically), everything else by key."""
    key, alert = item
    if alert.condition == "dead_letter":
        return (alert.condition, int(alert.facts["delivery_id"]), "")
    return (alert.condition, 0, key)


# ---- I/O -----------------------------------------------------------------------------------


def _utc(value: object) -> datetime:
    """Aggregates can bypass the column type on SQLite: naive text or datetimes come back."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def observe(store: Store, config: AlertsConfig) -> Observed:
    """Read what the conditions need: grouped pending deliveries, unresolved dead letters (ids
    only) and each watched source's newest message (one index probe each)."""
    backlogs: dict[str, Backlog] = {}
    dead: dict[int, DeadLetter] = {}
    last: dict[str, datetime | None] = {}
    async with store.engine.connect() as conn:
        if config.backlog_older_than is not None:
            rows = await conn.execute(
                sa.select(
                    deliveries.c.destination,
                    sa.func.min(deliveries.c.created_at),
                    sa.func.count(),
                )
                .where(
                    deliveries.c.status == DeliveryStatus.PENDING, deliveries.c.held_at.is_(None)
                )
                .group_by(deliveries.c.destination)
            )
            for dest, oldest, count in rows:
                if oldest is not None:
                    backlogs[dest] = Backlog(_utc(oldest), int(count))
        if config.dead_letters:
            rows = await conn.execute(
                sa.select(
                    deliveries.c.id,
                    deliveries.c.destination,
                    deliveries.c.event_id,
                    deliveries.c.attempts,
                ).where(
                    deliveries.c.status == DeliveryStatus.DEAD, deliveries.c.resolved_at.is_(None)
                )
            )
            for r in rows:
                dead[int(r.id)] = DeadLetter(r.destination, r.event_id, int(r.attempts))
        for source in config.silent_sources:
            received = (
                await conn.execute(
                    sa.select(messages.c.received_at)
                    .where(messages.c.source == source)
                    .order_by(messages.c.id.desc())
                    .limit(1)
                )
            ).scalar()
            last[source] = None if received is None else _utc(received)
    return Observed(backlogs, dead, last)


class AlertRefused(Exception):
    """The alert webhook did not take an alert (not 2xx); it is tried again next check."""


async def _post(
    post: PostFn,
    config: AlertsConfig,
    alert: Alert,
    state: Literal["raised", "cleared"],
    now: datetime,
) -> None:
    from engine.delivery.http import post_signed_json  # late: see the module docstring

    answer = await post_signed_json(
        post, config.webhook.url, orjson.dumps(alert.body(state, now)),
        idempotency_key=alert.idempotency_key(state), secret=config.webhook.secret, now=now,
    )  # fmt: skip
    if not 200 <= answer.status < 300:
        raise AlertRefused(f"alert webhook answered HTTP {answer.status}")


async def check(store: Store, config: AlertsConfig, post: PostFn, state: AlertState,
                now: datetime) -> tuple[int, int]:  # fmt: skip
    """One round: observe, evaluate, post; `state.raised` follows what the webhook took.
    Returns (raised, cleared) counts. A refused or failed post stops the round (the webhook
    is likely down); the alerts not taken are tried again next round."""
    state.observed = await observe(store, config)
    to_raise, to_clear = evaluate(state, config, now)
    raised = cleared = 0
    for alert in to_clear:
        await _post(post, config, alert, "cleared", now)
        state.raised.pop(alert.key, None)
        log.info("alert.cleared", alert=alert.key)
        cleared += 1
    for alert in to_raise:
        await _post(post, config, alert, "raised", now)
        state.raised[alert.key] = alert
        log.warning("alert.raised", alert=alert.key, **dict(alert.facts))
        raised += 1
    return raised, cleared


async def run(store: Store, config: AlertsConfig, post: PostFn, stopping: asyncio.Event) -> None:
    """Check every `check_interval` until `stopping` is set; never gives up on a fault."""
    state = AlertState(Observed())
    while not stopping.is_set():
        try:
            await check(store, config, post, state, datetime.now(UTC))
        except Exception as exc:  # noqa: BLE001 - the watch must outlive any fault; next round
            log.error("alerts.check_failed", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), config.check_interval.total_seconds())
