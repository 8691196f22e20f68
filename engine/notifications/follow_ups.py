"""The follow-up after discharge, as operators see it.

    intake ─► a discharge in a follow-up cohort starts a clock (follow_ups row, due_at)
    engine.alerts ─► alerts (once per condition) for follow-ups overdue or unacknowledged
    GET /follow-ups ─► lists them for operators (identifiers only)

The list carries identifiers only, never patient data.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from engine.config import FollowUpConfig
from engine.delivery.notification import IssueLinks, OriginalLoader
from engine.store import OPEN_FOLLOW_UPS, Store
from engine.store.ack_links import IssuedLink, issue_links
from engine.store.follow_ups import ListedState, event_body, listed_follow_ups
from mappings.model import CareEvent

OPEN_STATES = OPEN_FOLLOW_UPS
"""Follow-up states that still wait for someone."""
_STATES: dict[str, ListedState] = {"overdue": "overdue", "unacknowledged": "unacknowledged",
                                   "open": "open"}  # fmt: skip


async def listing(store: Store, state: ListedState, now: datetime, config: FollowUpConfig
                  ) -> list[dict[str, Any]]:  # fmt: skip
    """Follow-ups for operators by state (overdue, unacknowledged, open): identifiers only."""
    rows = await listed_follow_ups(store, state, now, config.unacknowledged_after)
    return [{"event_id": r.event_id, "standard": r.standard, "due_at": r.due_at.isoformat(),
             "status": r.status} for r in rows]  # fmt: skip


def listing_route(store: Store, config: FollowUpConfig) -> web.RouteDef:
    async def handler(request: web.Request) -> web.Response:
        token = config.list_token
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        # surrogateescape: odd bytes in the header are a wrong token, not a crash
        if token is None or not hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                                                    token.encode()):  # fmt: skip
            raise web.HTTPUnauthorized(text="a bearer token is needed for this list")
        state = request.query.get("state", "overdue")
        if state not in _STATES:
            raise web.HTTPBadRequest(text="state is overdue, unacknowledged or open")
        return web.json_response(await listing(store, _STATES[state], datetime.now(UTC), config))

    return web.get("/follow-ups", handler)


def link_issuer(store: Store) -> IssueLinks:
    """Stores the hashes of a notification's link tokens before it is sent."""

    async def issue(links: Sequence[IssuedLink]) -> None:
        await issue_links(store, links)

    return issue


def original_loader(store: Store) -> OriginalLoader:
    async def load(event_id: str) -> CareEvent | None:
        body = await event_body(store, event_id)
        return None if body is None else CareEvent.model_validate_json(body)

    return load
