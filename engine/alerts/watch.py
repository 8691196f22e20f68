"""The alert watches: every check_interval, read the store, decide (pure), claim, post, settle.

    operator alerts ─► observe + standing alerts (store) ─► evaluate ─► claim ─► POST ─► settle
    follow-up alerts ─► follow-ups due (store) ─► follow_up_alerts ─► claim ─► POST ─► settle

Each POST goes through `post_signed_json` with the alert's Idempotency-Key; a claim in the store
decides which replica posts it, and a claim whose POST never settled is taken over after
`CLAIM_LEASE` (the repeat carries the same key, so a receiver that de-duplicates drops it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

import orjson
import structlog

from engine.alerts.evaluate import (
    OPERATOR_CONDITIONS,
    Alert,
    AlertState,
    evaluate,
    follow_up_alerts,
)
from engine.config.alerts import AlertsConfig, AlertWebhook
from engine.config.follow_up import FollowUpConfig
from engine.delivery.http import PostFn, post_signed_json
from engine.store import Store
from engine.store.alerts import Observed

log = structlog.get_logger("carebridge.alerts")

CLAIM_LEASE = timedelta(minutes=2)
"""How long a claimed POST may take before another check (of any replica) takes it over: far
longer than the webhook's 10 s timeout."""


class AlertRefused(Exception):
    """The alert webhook did not take an alert (not 2xx); it is tried again next check."""


async def post_alert(
    post: PostFn,
    webhook: AlertWebhook,
    alert: Alert,
    state: Literal["raised", "cleared"],
    now: datetime,
) -> None:
    """The one way every alert leaves: signed JSON with the alert's Idempotency-Key."""
    answer = await post_signed_json(
        post,
        webhook.url,
        orjson.dumps(alert.body(state, now)),
        idempotency_key=alert.idempotency_key(state),
        secret=webhook.secret,
        now=now,
    )
    if not 200 <= answer.status < 300:
        raise AlertRefused(f"alert webhook answered HTTP {answer.status}")


async def _load(store: Store, config: AlertsConfig, state: AlertState, now: datetime) -> None:
    state.observed = await store.observe_alerts(
        backlogs=config.backlog_older_than is not None,
        dead_letters=config.dead_letters,
        sources=list(config.silent_sources),
    )
    standing = await store.standing_alerts(OPERATOR_CONDITIONS)
    state.raised = {row.key: Alert.standing(row) for row in standing}
    state.unconfirmed = {
        row.key
        for row in standing
        if row.phase == "raising"
        and row.claimed_at is not None
        and row.claimed_at < now - CLAIM_LEASE
    }


async def _clear(
    store: Store, config: AlertsConfig, post: PostFn, alert: Alert, now: datetime
) -> bool:
    token = await store.claim_clear(alert.key, alert.episode, now, now - CLAIM_LEASE)
    if token is None:
        return False  # another replica clears it
    try:
        await post_alert(post, config.webhook, alert, "cleared", now)
    except BaseException:
        await store.release_clear(alert.key, token)
        raise
    await store.confirm_clear(alert.key, token)
    log.info("alert.cleared", alert=alert.key)
    return True


async def _raise(
    store: Store, config: AlertsConfig, post: PostFn, alert: Alert, now: datetime
) -> bool:
    token = await store.claim_raise(
        alert.key, alert.condition, alert.episode, alert.facts, now, now - CLAIM_LEASE
    )
    if token is None:
        return False  # another replica raises it
    try:
        await post_alert(post, config.webhook, alert, "raised", now)
    except BaseException:
        await store.drop_raise(alert.key, token)
        raise
    await store.confirm_raise(alert.key, token, now)
    log.warning("alert.raised", alert=alert.key, **dict(alert.facts))
    return True


async def check(
    store: Store, config: AlertsConfig, post: PostFn, state: AlertState, now: datetime
) -> tuple[int, int]:
    """One round: read the store, evaluate, post what this replica claims; the store's alert
    state follows what the webhook took. Returns (raised, cleared) counts. A refused or failed
    post stops the round (the webhook is likely down); the alerts not taken are tried again
    next round."""
    await _load(store, config, state, now)
    to_raise, to_clear = evaluate(state, config, now)
    cleared = raised = 0
    for alert in to_clear:
        if await _clear(store, config, post, alert, now):
            state.raised.pop(alert.key, None)
            cleared += 1
    for alert in to_raise:
        if await _raise(store, config, post, alert, now):
            state.raised[alert.key] = alert
            raised += 1
    return raised, cleared


async def check_follow_ups(
    store: Store, config: FollowUpConfig, post: PostFn, now: datetime
) -> int:
    """Raise each follow-up alert once (to the follow-up alert webhook, and in the log); returns
    how many. A refused post stops the round; it is posted again at the next."""
    due = await store.follow_ups_to_alert(now, now - config.unacknowledged_after)
    raised = 0
    for alert in follow_up_alerts(due, now):
        event_id = str(alert.facts["event_id"])
        token = await store.claim_follow_up_alert(
            alert.key, alert.condition, alert.episode, alert.facts, event_id, now, now - CLAIM_LEASE
        )
        if token is None:
            continue  # another replica raises it
        try:
            if config.alert_webhook is not None:
                await post_alert(post, config.alert_webhook, alert, "raised", now)
        except BaseException:
            await store.drop_raise(alert.key, token)
            raise
        log.warning(
            "follow_up.alert",
            condition=alert.condition,
            event_id=event_id,
            due_at=alert.facts["due_at"],
        )
        await store.confirm_follow_up_alert(alert.key, alert.condition, event_id, token)
        raised += 1
    return raised


async def _every(
    interval: timedelta, stopping: asyncio.Event, what: str, round_: Callable[[], Awaitable[object]]
) -> None:
    while not stopping.is_set():
        try:
            await round_()
        except Exception as exc:  # noqa: BLE001 - the watch must outlive any fault; next round
            log.error(what, error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval.total_seconds())


async def run(store: Store, config: AlertsConfig, post: PostFn, stopping: asyncio.Event) -> None:
    """Check the operator alerts every `check_interval` until `stopping` is set; never gives up
    on a fault."""
    state = AlertState(Observed())
    await _every(
        config.check_interval,
        stopping,
        "alerts.check_failed",
        lambda: check(store, config, post, state, datetime.now(UTC)),
    )


async def watch_follow_ups(
    store: Store, config: FollowUpConfig, post: PostFn, stopping: asyncio.Event
) -> None:
    """Check the follow-up alerts every `check_interval` until `stopping` is set."""
    await _every(
        config.check_interval,
        stopping,
        "follow_up.watch_failed",
        lambda: check_follow_ups(store, config, post, datetime.now(UTC)),
    )
