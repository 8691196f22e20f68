"""The follow-up after discharge, as operators see it.

    intake ─► a discharge in a follow-up cohort starts a clock (follow_ups row, due_at)
    watch ─► alerts (once per condition) for follow-ups overdue or unacknowledged
    GET /follow-ups ─► lists them for operators (identifiers only)

Alerts and the list carry identifiers only, never patient data.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from aiohttp import web

from adapters.errors import DestinationError
from engine.config import FollowUpConfig
from engine.delivery.http import PostFn, post_signed_json
from engine.delivery.notification import OriginalLoader
from engine.store import OPEN_FOLLOW_UPS, FollowUpStatus, Store
from engine.store.schema import events, follow_ups
from mappings.model import CareEvent

log = structlog.get_logger("carebridge.notifications")
OPEN_STATES = OPEN_FOLLOW_UPS
"""Follow-up states that still wait for someone."""


async def due_alerts(store: Store, config: FollowUpConfig, now: datetime
                     ) -> list[dict[str, Any]]:  # fmt: skip
    """Follow-ups that are overdue, or unacknowledged too long, not yet alerted."""
    unacked_before = now - config.unacknowledged_after
    query = sa.select(follow_ups).where(
        follow_ups.c.status.in_(OPEN_STATES),
        sa.or_(
            sa.and_(follow_ups.c.due_at <= now, follow_ups.c.alerted_overdue.is_(False)),
            sa.and_(follow_ups.c.status == FollowUpStatus.OPEN,
                    follow_ups.c.created_at <= unacked_before,
                    follow_ups.c.alerted_unacknowledged.is_(False)),
        ),
    )  # fmt: skip
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    alerts = []
    for row in rows:
        if row["due_at"] <= now and not row["alerted_overdue"]:
            alerts.append({"condition": "follow_up_overdue", "event_id": row["event_id"],
                           "standard": row["standard"], "due_at": row["due_at"].isoformat(),
                           "status": row["status"]})  # fmt: skip
        elif row["status"] == FollowUpStatus.OPEN and not row["alerted_unacknowledged"]:
            alerts.append(
                {
                    "condition": "notification_unacknowledged",
                    "event_id": row["event_id"],
                    "standard": row["standard"],
                    "due_at": row["due_at"].isoformat(),
                    "status": row["status"],
                }
            )
    return alerts


async def mark_alerted(store: Store, alert: Mapping[str, Any]) -> None:
    column = ("alerted_overdue" if alert["condition"] == "follow_up_overdue"
              else "alerted_unacknowledged")  # fmt: skip
    async with store.writing() as conn:
        await conn.execute(sa.update(follow_ups).where(
            follow_ups.c.event_id == alert["event_id"]).values({column: True}))  # fmt: skip
        await conn.commit()


async def watch(store: Store, config: FollowUpConfig, post: PostFn,
                stopping: asyncio.Event) -> None:  # fmt: skip
    """Raise each alert once (to the alert webhook, and in the log) until stopping."""
    while not stopping.is_set():
        try:
            for alert in await due_alerts(store, config, datetime.now(UTC)):
                if config.alert_webhook is not None:
                    # Resent (not re-raised) if recording it failed: the receiver drops it.
                    answer = await post_signed_json(
                        post, config.alert_webhook.url, orjson.dumps(alert),
                        idempotency_key=f"alert.{alert['condition']}.{alert['event_id']}",
                        secret=config.alert_webhook.secret, now=datetime.now(UTC),
                    )  # fmt: skip
                    if not 200 <= answer.status < 300:
                        raise DestinationError(f"alert webhook answered HTTP {answer.status}")
                log.warning("follow_up.alert", condition=alert["condition"],
                            event_id=alert["event_id"], due_at=alert["due_at"])  # fmt: skip
                await mark_alerted(store, alert)
        except Exception as exc:  # noqa: BLE001 - the watch must outlive any fault; next round
            log.error("follow_up.watch_failed", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), config.check_interval.total_seconds())


async def listing(store: Store, state: str, now: datetime, config: FollowUpConfig
                  ) -> list[dict[str, Any]]:  # fmt: skip
    """Follow-ups for operators by state (overdue, unacknowledged, open): identifiers only."""
    where: list[Any] = [follow_ups.c.status.in_(OPEN_STATES)]
    if state == "overdue":
        where.append(follow_ups.c.due_at <= now)
    elif state == "unacknowledged":
        where += [follow_ups.c.status == FollowUpStatus.OPEN,
                  follow_ups.c.created_at <= now - config.unacknowledged_after]  # fmt: skip
    columns = (follow_ups.c.event_id, follow_ups.c.standard, follow_ups.c.due_at,
               follow_ups.c.status)  # fmt: skip
    query = sa.select(*columns).where(*where).order_by(follow_ups.c.due_at).limit(500)
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [{**row, "due_at": row["due_at"].isoformat()} for row in rows]


def listing_route(store: Store, config: FollowUpConfig) -> web.RouteDef:
    async def handler(request: web.Request) -> web.Response:
        token = config.list_token
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if token is None or not hmac.compare_digest(given.encode(), token.encode()):
            raise web.HTTPUnauthorized(text="a bearer token is needed for this list")
        state = request.query.get("state", "overdue")
        if state not in ("overdue", "unacknowledged", "open"):
            raise web.HTTPBadRequest(text="state is overdue, unacknowledged or open")
        return web.json_response(await listing(store, state, datetime.now(UTC), config))

    return web.get("/follow-ups", handler)


def original_loader(store: Store) -> OriginalLoader:
    async def load(event_id: str) -> CareEvent | None:
        async with store.engine.connect() as conn:
            body = (await conn.execute(sa.select(events.c.body).where(
                events.c.event_id == event_id))).scalar()  # fmt: skip
        return None if body is None else CareEvent.model_validate_json(body)

    return load
