"""The recipients' side of a notification: the page each link opens, and the action it posts.

    recipient ─► GET  /notifications/{destination}/{event_id}/{ack|done}#<token>
                      (the token is in the fragment: the browser never sends it; the page's
                      script copies it into the form, or the reader pastes it)
              ─► POST /notifications/{destination}/{event_id}/{ack|done}
                      form or JSON body: token, by (a name; required for done)
              ◄─ recorded, or refused with a page saying why (expired, used, not valid)

Each token is good for one action of one notification, once, until it expires; a use records
who (`by`) and from where (the peer address, and ``X-Forwarded-For`` when present). Tokens never
appear in a URL the server sees, so no access log or proxy log holds one, and every answer
carries ``Referrer-Policy: no-referrer`` and ``Cache-Control: no-store``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from engine.config import NotificationDestination
from engine.delivery.notification import token_digest
from engine.store import Store
from engine.store.ack_links import LinkAction, LinkOutcome, LinkUse, use_link

log = structlog.get_logger("carebridge.notifications")

_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_PRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\ud7ff\ue000-\ufffd]")
_ACTIONS: dict[str, LinkAction] = {"ack": "ack", "done": "done"}
_LABEL = {"ack": "Acknowledge receipt", "done": "Record follow-up done"}
_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}
_REFUSED = {
    "unknown": "This link is not valid. Check that you opened the whole link from the "
    "notification; links sent before the engine's upgrade to single-use links no longer work.",
    "used": "This link has already been used: each link works once. Nothing was changed.",
    "expired": "This link has expired, so nothing was recorded. The follow-up stays open for "
    "the service that sent the notification to see; contact them to record it.",
}
_SCRIPT = """(function () {
  var code = decodeURIComponent(window.location.hash.slice(1));
  var field = document.getElementById("token");
  if (code && field) {
    field.value = code;
    document.getElementById("code").hidden = true;
  }
  if (window.location.hash && window.history.replaceState) {
    window.history.replaceState(null, "", window.location.pathname);
  }
})();
"""
_FORM = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Carebridge discharge notification</title></head><body>
<h1>{label}</h1><p>Notification reference {event_id}</p>
<form method="post" action="{action}">
<p id="code"><label>Code from your link (the part after #)
<input name="token" id="token" autocomplete="off" required></label></p>
<p><label>Your name <input name="by" maxlength="120" required></label></p>
<button type="submit">{label}</button></form>
<script src="/notifications/link.js"></script></body></html>"""
_RESULT = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Carebridge discharge notification</title></head><body>
<h1>{title}</h1><p id="outcome">{text}</p></body></html>"""


def _answer(request: web.Request, status: int, title: str, text: str,
            data: Mapping[str, Any]) -> web.Response:  # fmt: skip
    """HTML for a browser's form, JSON for a JSON client."""
    if request.content_type == "application/json":
        return web.json_response(dict(data), status=status, headers=_HEADERS)
    page = _RESULT.format(title=html.escape(title), text=html.escape(text))
    return web.Response(text=page, status=status, content_type="text/html", headers=_HEADERS)


def clean(text: str, limit: int) -> str:
    """Free text from a recipient, safe to store and show: printable, bounded."""
    return _PRINTABLE.sub("", text).strip()[:limit]


def where_from(request: web.Request) -> str:
    """The peer's address, and the ``X-Forwarded-For`` chain when a proxy sent one."""
    peer = clean(request.remote or "unknown", 64)
    forwarded = clean(request.headers.get("X-Forwarded-For", ""), 120)
    return f"{peer} (forwarded for {forwarded})" if forwarded else peer


async def _body(request: web.Request) -> Mapping[str, Any]:
    try:
        if request.content_type == "application/json":
            data = orjson.loads(await request.read() or b"{}")
            if not isinstance(data, dict):
                raise web.HTTPBadRequest(text="send a JSON object", headers=_HEADERS)
            return cast(dict[str, Any], data)
        return await request.post()
    except (ValueError, LookupError, AssertionError, HttpProcessingError):  # bad bytes
        raise web.HTTPBadRequest(text="the body is not valid form data or JSON",
                                 headers=_HEADERS) from None  # fmt: skip


def routes(store: Store, destinations: Mapping[str, NotificationDestination]) -> list[web.RouteDef]:
    """The page each link opens, the action it posts, and the page's script."""

    def target(request: web.Request) -> tuple[str, str, LinkAction]:
        name, event_id = request.match_info["destination"], request.match_info["event_id"]
        action = _ACTIONS.get(request.match_info["action"])
        if name not in destinations or action is None or len(event_id) > 40:
            raise web.HTTPNotFound(text="no such notification link", headers=_HEADERS)
        return name, event_id, action

    async def page(request: web.Request) -> web.Response:
        _name, event_id, action = target(request)
        text = _FORM.format(label=_LABEL[action], event_id=html.escape(event_id),
                            action=html.escape(request.path))  # fmt: skip
        return web.Response(text=text, content_type="text/html", headers=_HEADERS)

    async def act(request: web.Request) -> web.Response:
        name, event_id, action = target(request)
        form = await _body(request)
        token, by = form.get("token"), form.get("by")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            return _answer(request, 400, "Not recorded", "The code from the link is missing "
                           "or malformed.", {"error": "malformed token"})  # fmt: skip
        by = clean(by, 120) if isinstance(by, str) else ""
        if action == "done" and not by:
            return _answer(request, 400, "Not recorded", "Give your name: a follow-up done is "
                           "recorded with who did it.", {"error": "by is required"})  # fmt: skip
        use = LinkUse(token_digest(token), name, event_id, action, by or "unnamed",
                      where_from(request), datetime.now(UTC))  # fmt: skip
        outcome = await use_link(store, use)
        log.info("notification.link_used", destination=name, event_id=event_id, action=action,
                 outcome=outcome)  # fmt: skip
        return _outcome(request, outcome, event_id, action)

    async def retired(_request: web.Request) -> web.Response:
        page = _RESULT.format(title="Link not valid", text=_REFUSED["unknown"])
        return web.Response(text=page, status=403, content_type="text/html", headers=_HEADERS)

    async def script(_request: web.Request) -> web.Response:
        return web.Response(text=_SCRIPT, content_type="text/javascript", headers=_HEADERS)

    path = "/notifications/{destination}/{event_id}"
    return [web.get("/notifications/link.js", script), web.get(path, retired),
            web.get(path + "/{action}", page), web.post(path + "/{action}", act)]  # fmt: skip


def _outcome(request: web.Request, outcome: LinkOutcome, event_id: str,
             action: LinkAction) -> web.Response:  # fmt: skip
    data = {"event_id": event_id, "action": action, "recorded": outcome == "recorded",
            "outcome": outcome}  # fmt: skip
    if outcome in _REFUSED:
        return _answer(request, 403, "Not recorded", _REFUSED[outcome], data)
    if outcome == "recorded":
        done = "Follow-up recorded as done." if action == "done" else "Receipt acknowledged."
        return _answer(request, 200, "Recorded", done + " Thank you.", data)
    return _answer(request, 200, "Nothing to record", "The link was good, but the follow-up "
                   "had already moved on (done, withdrawn, or none was due).", data)  # fmt: skip
