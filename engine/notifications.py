"""Clinician notifications and the follow-up after discharge.

    intake ─► a discharge in a follow-up cohort starts a clock (follow_ups row, due_at)
    delivery ─► NotificationSender: the matching recipient gets the text, the JSON and a FHIR
                Communication + Task, with a signed link to acknowledge and record follow-up
    recipient ─► GET/POST /notifications/{destination}/{event_id}[/ack|/done]?token=...
    FollowUpWatch ─► alerts (once per condition) for follow-ups overdue or unacknowledged;
                     GET /follow-ups lists them for operators (identifiers only)

A cancelled discharge (A13) withdraws the follow-up at intake and is delivered to the same
recipients as a withdrawal notice that names the original notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import html
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from aiohttp import web

from adapters.errors import DestinationError, DestinationTimeout
from engine.config import FollowUpConfig, NotificationDestination, NotificationRecipient
from engine.destinations import (
    SIGNATURE_HEADER,
    PostFn,
    SendResult,
    classify_http,
    event_headers,
    post_signed_json,
    sign,
)
from engine.schema import events, follow_ups
from engine.store import ClaimedDelivery, Store
from mappings.clinical.follow_up import FollowUpRule, follow_up_for
from mappings.clinical.notification import is_notifiable, render_notification
from mappings.model import CareEvent, EventKind

log = structlog.get_logger("carebridge.notifications")
OriginalLoader = Callable[[str], Awaitable[CareEvent | None]]
"""Loads a stored care event by id (the discharge a withdrawal cancels)."""
_OPEN = ("open", "acknowledged")


def ack_token(secret: str, destination: str, event_id: str) -> str:
    """The signature that makes an acknowledgement link valid for exactly one notification."""
    mac = hmac.new(secret.encode(), f"{destination}:{event_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def recipient_for(
    recipients: Sequence[NotificationRecipient], event: CareEvent
) -> NotificationRecipient | None:
    """The first recipient whose criteria all match (GP practice, provider, source)."""
    practice = event.patient.gp_practice_ods
    provider = event.stay.provider_ods if event.stay else None
    for recipient in recipients:
        if recipient.gp_practices and practice not in recipient.gp_practices:
            continue
        if recipient.providers and provider not in recipient.providers:
            continue
        if recipient.sources and event.source.feed not in recipient.sources:
            continue
        return recipient
    return None


class NotificationSender:
    def __init__(self, config: NotificationDestination, post: PostFn,
                 rules: Sequence[FollowUpRule], original: OriginalLoader,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:  # fmt: skip
        self._config = config
        self._post = post
        self._rules = rules
        self._original = original
        self._clock = clock

    def ack_url(self, event_id: str) -> str:
        token = ack_token(self._config.ack_secret, self._config.name, event_id)
        base = self._config.ack_base_url.rstrip("/")
        return f"{base}/notifications/{self._config.name}/{event_id}?token={token}"

    async def send(self, delivery: ClaimedDelivery) -> SendResult:
        event = CareEvent.model_validate_json(delivery.body)
        if not is_notifiable(event):
            return SendResult("delivered", detail="not a notifiable event: nothing sent")
        # A withdrawal goes to whoever received the discharge: route by the original event, which
        # carries the GP practice even when the cancel message does not (or names a new one).
        subject = event
        if event.kind is not EventKind.DISCHARGE and event.corrects_event_id:
            subject = await self._original(event.corrects_event_id) or event
        recipient = recipient_for(self._config.recipients, subject)
        if recipient is None:
            reason = "no recipient matches the patient's GP practice, provider or source"
            return SendResult("permanent", detail=reason)
        # A withdrawal names the follow-up it cancels: the one its original discharge started.
        follow_up = (follow_up_for(subject, self._rules)
                     if subject.kind is EventKind.DISCHARGE else None)  # fmt: skip
        tracked = event.event_id if event.kind is EventKind.DISCHARGE else event.corrects_event_id
        note = render_notification(
            event, follow_up, recipient=recipient.name,
            ack_url=self.ack_url(tracked) if tracked else None, now=self._clock(),
            rules=self._rules,
        )  # fmt: skip
        body = orjson.dumps({"text": note.text, "notification": note.payload, "fhir": note.fhir})
        headers = {**event_headers(delivery), "Content-Type": "application/json",
                   "X-Carebridge-Notification-Id": note.notification_id}  # fmt: skip
        if recipient.secret:
            headers[SIGNATURE_HEADER] = sign(recipient.secret, int(self._clock().timestamp()), body)
        try:
            answer = await self._post(recipient.url, body, headers,
                                      self._config.timeout.total_seconds())  # fmt: skip
        except DestinationTimeout:
            return SendResult("transient", detail="no answer within the timeout")
        except DestinationError as exc:
            return SendResult("transient", detail=f"not reached: {exc}"[:1000])
        detail = f"to {recipient.name}: " + answer.body[:900].decode("utf-8", "replace")
        return SendResult(classify_http(answer.status), answer.status, detail)


# ---- acknowledgements -----------------------------------------------------------------


async def record(store: Store, event_id: str, action: str, by: str) -> bool:
    """An acknowledgement (`ack`) or a follow-up done (`done`); False if nothing was open."""
    now = datetime.now(UTC)
    if action == "ack":
        change = (
            sa.update(follow_ups)
            .where(follow_ups.c.event_id == event_id, follow_ups.c.status == "open")
            .values(status="acknowledged", acknowledged_at=now, acknowledged_by=by)
        )
    else:
        change = (
            sa.update(follow_ups)
            .where(follow_ups.c.event_id == event_id, follow_ups.c.status.in_(_OPEN))
            .values(status="done", done_at=now, done_by=by)
        )
    async with store.writing() as conn:
        result = await conn.execute(change)
        await conn.commit()
    return bool(result.rowcount)


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
        async with store.engine.connect() as conn:
            status = (await conn.execute(sa.select(follow_ups.c.status).where(
                follow_ups.c.event_id == event_id))).scalar()  # fmt: skip
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


# ---- watching the clock -----------------------------------------------------------------


async def due_alerts(store: Store, config: FollowUpConfig, now: datetime
                     ) -> list[dict[str, Any]]:  # fmt: skip
    """Follow-ups that are overdue, or unacknowledged too long, not yet alerted."""
    unacked_before = now - config.unacknowledged_after
    query = sa.select(follow_ups).where(
        follow_ups.c.status.in_(_OPEN),
        sa.or_(
            sa.and_(follow_ups.c.due_at <= now, follow_ups.c.alerted_overdue.is_(False)),
            sa.and_(follow_ups.c.status == "open", follow_ups.c.created_at <= unacked_before,
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
        elif row["status"] == "open" and not row["alerted_unacknowledged"]:
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
    where: list[Any] = [follow_ups.c.status.in_(_OPEN)]
    if state == "overdue":
        where.append(follow_ups.c.due_at <= now)
    elif state == "unacknowledged":
        where += [follow_ups.c.status == "open",
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
