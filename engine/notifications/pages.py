"""The recipients' side of a notification: a page behind the signed link, and the two actions it
posts (acknowledge receipt, record follow-up done).

    recipient ─► GET/POST /notifications/{destination}/{event_id}[/ack|/done]?token=...
"""

from __future__ import annotations

import hmac
import html
from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from aiohttp import web

from engine.config import NotificationDestination
from engine.delivery.notification import ack_token
from engine.store import Store
from engine.store.follow_ups import follow_up_status, record_follow_up

log = structlog.get_logger("carebridge.notifications")


async def record(store: Store, event_id: str, action: str, by: str) -> bool:
    """An acknowledgement (`ack`) or a follow-up done (`done`); False if nothing was open."""
    return await record_follow_up(store, event_id, "ack" if action == "ack" else "done", by)


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Carebridge discharge notification</title></head><body>
<h1>Discharge notification</h1><p>Reference {event_id}</p><p>{status}</p>
<form method="post" action="{ack}"><label>Your name <input name="by" required></label>
<button>Acknowledge receipt</button></form>
<form method="post" action="{done}"><label>Your name <input name="by" required></label>
<button>Record follow-up done</button></form></body></html>"""


def routes(store: Store, destinations: Mapping[str, NotificationDestination]) -> list[web.RouteDef]:
    """The recipients' side: a page behind the signed link, and the two actions it posts."""

    def checked(request: web.Request) -> str:
        name, event_id = request.match_info["destination"], request.match_info["event_id"]
        config = destinations.get(name)
        token = request.query.get("token", "")
        if config is None or not hmac.compare_digest(
            token, ack_token(config.ack_secret, name, event_id)
        ):
            raise web.HTTPForbidden(text="this link is not valid")
        return event_id

    async def page(request: web.Request) -> web.Response:
        event_id = checked(request)
        status = await follow_up_status(store, event_id)
        base = html.escape(str(request.rel_url.path))
        token = html.escape(request.query.get("token", ""))
        text = _PAGE.format(
            event_id=html.escape(event_id),
            status=html.escape(f"Follow-up status: {status}" if status else "No follow-up due"),
            ack=f"{base}/ack?token={token}", done=f"{base}/done?token={token}",
        )  # fmt: skip
        return web.Response(text=text, content_type="text/html")

    async def act(request: web.Request) -> web.Response:
        event_id = checked(request)
        action = request.match_info["action"]
        if action not in ("ack", "done"):
            raise web.HTTPNotFound()
        form: Mapping[str, Any]
        if request.content_type == "application/json":
            try:
                form = orjson.loads(await request.read() or b"{}")
            except orjson.JSONDecodeError:
                raise web.HTTPBadRequest(text="the body is not JSON") from None
            if not isinstance(form, dict):
                raise web.HTTPBadRequest(text="send a JSON object")
        else:
            form = await request.post()
        by = str(form.get("by") or "unnamed")[:120]
        changed = await record(store, event_id, action, by)
        log.info("notification.recorded", event_id=event_id, action=action, changed=changed)
        return web.json_response({"event_id": event_id, "action": action, "recorded": changed})

    path = "/notifications/{destination}/{event_id}"
    return [web.get(path, page), web.post(path + "/{action}", act)]
