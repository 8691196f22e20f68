"""The message log: search and one message's page, each audited for roles that see patient
data (the results' patient keys, the payload, the message's audit trail; see `audited`)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from engine.console.audited import listing, record_read
from engine.console.auth import Principal, sees_patient_data
from engine.console.context import Console, notice, number
from engine.console.templates import Safe
from engine.console.views.message import message_page
from engine.console.views.search import SEARCH_FIELDS, search_page
from engine.store import audit
from engine.store.console_models import AuditRecord, MessagePage
from engine.store.console_reads import audit_entries, message_detail
from engine.store.console_search import BadFilter, SearchFilter, search


class Messages:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def home(self, _request: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/messages")

    async def search(self, request: web.Request) -> web.Response:
        c = self.console
        principal = c.need(request, "viewer")
        q = request.query
        f = SearchFilter(
            patient=q.get("patient") or None,
            control_id=q.get("control_id") or None,
            source=q.get("source") or None,
            destination=q.get("destination") or None,
            status=q.get("status") or None,
            delivery_status=q.get("delivery_status") or None,
            kind=q.get("kind") or None,
            since=_when(q.get("since")),
            until=_when(q.get("until")),
        )
        if f.patient and not sees_patient_data(principal.role):
            c.need(request, "clinical")
        found = await search(c.store, f, before=number(q.get("before")), limit=c.config.page_size)
        if sees_patient_data(principal.role):
            await self._audit_search(principal, request, f, found)
        return c.html(request, "Messages", search_page(principal, dict(q), found))

    async def _audit_search(
        self, principal: Principal, request: web.Request, f: SearchFilter, found: MessagePage
    ) -> None:
        """A patient search, or a list of messages with their patient keys shown."""
        q = request.query
        filters = {k: q.get(k) for k in SEARCH_FIELDS if k not in ("patient", "reason")}
        ids = [r.id for r in found.rows]
        detail = listing(filters, ids, before=number(q.get("before")), what="messages")
        keys = sorted({r.patient_key for r in found.rows if r.patient_key})
        if f.patient:
            detail = f"searched {f.patient!r}; found {', '.join(keys)}; {detail}"
        await record_read(
            self.console.store,
            principal,
            "search_patient" if f.patient else "list_messages",
            detail,
            patient_key=keys[0] if len(keys) == 1 and f.patient else None,
            reason=q.get("reason"),
        )

    async def message(self, request: web.Request) -> web.Response:
        c = self.console
        principal = c.need(request, "viewer")
        message_id = number(request.match_info["id"])
        detail = None if message_id is None else await message_detail(c.store, message_id)
        if detail is None:
            return c.html(request, "No such message", Safe(""), status=404)
        trail: list[AuditRecord] = []
        if sees_patient_data(principal.role):
            # The page shows the message's audit trail: a read of the audit log, said here.
            trail = await audit_entries(c.store, message_id=message_id, limit=200)
            await audit.record(
                c.store,
                principal,
                audit.AuditEntry(
                    "view_message",
                    message_id=message_id,
                    patient_key=detail.message.patient_key,
                    detail=f"with its audit trail: {len(trail)} entries",
                ),
            )
        body = message_page(
            principal,
            detail,
            trail,
            c.csrf(request),
            c.render,
            can_remap=c.engine_config is not None,
        )
        return c.html(request, f"Message {message_id}", body, notice=notice(request))


def _when(value: str | None) -> datetime | None:
    """A time from the search form (UTC; ``datetime-local`` sends no offset)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadFilter("times look like 2026-01-31T09:30") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
