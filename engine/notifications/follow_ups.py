"""The follow-up after discharge, as operators see it.

    intake ─► a discharge in a follow-up cohort starts a clock (follow_ups row, due_at)
    engine.alerts ─► alerts (once per condition) for follow-ups overdue or unacknowledged
    GET /follow-ups ─► lists them for operators (identifiers only)

The list carries identifiers only, never patient data.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from engine.config import FollowUpConfig
from engine.delivery.notification import OriginalLoader
from engine.store import OPEN_FOLLOW_UPS, FollowUpStatus, Store
from engine.store.schema import events, follow_ups
from mappings.model import CareEvent

OPEN_STATES = OPEN_FOLLOW_UPS
"""Follow-up states that still wait for someone."""


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
