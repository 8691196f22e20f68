"""Follow-ups by team (``/follow-ups``) and its CSV (``/follow-ups.csv``): every role may see
them; for roles that see patient data (the page links each patient's journey, the CSV carries
NHS numbers) each view or download is audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from engine.console.audited import listing, record_read
from engine.console.auth import Principal, sees_patient_data
from engine.console.context import Console
from engine.console.follow_up_teams import TeamFollowUp, by_team
from engine.console.views.follow_ups import follow_ups_csv, follow_ups_page
from engine.store.console_follow_ups import FollowUpList, team_follow_ups
from engine.store.console_search import BadFilter

DONE_WITHIN = timedelta(days=30)
"""Done follow-ups are listed for this long after they were done."""


class FollowUps:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def _read(self, request: web.Request) -> tuple[list[TeamFollowUp], float, FollowUpList]:
        default = self.console.config.due_soon.total_seconds() / 3600
        hours = _window(request.query.get("window"), default)
        now = datetime.now(UTC)
        found = await team_follow_ups(self.console.store, now, DONE_WITHIN)
        items = by_team(found.rows, self.console.engine_config, now, timedelta(hours=hours))
        return items, hours, found

    async def page(self, request: web.Request) -> web.Response:
        c = self.console
        principal = c.need(request, "viewer")
        items, hours, found = await self._read(request)
        await self._audit(principal, "view_follow_ups", items, request)
        body = follow_ups_page(principal, request.query, items, hours, found.cut)
        return c.html(request, "Follow-ups by team", body)

    async def csv(self, request: web.Request) -> web.Response:
        principal = self.console.need(request, "viewer")
        items, _hours, _found = await self._read(request)
        await self._audit(principal, "export_follow_ups", items, request)
        return web.Response(
            text=follow_ups_csv(principal, items),
            content_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="follow-ups.csv"'},
        )

    async def _audit(
        self, principal: Principal, action: str, items: list[TeamFollowUp], request: web.Request
    ) -> None:
        """For roles that see patient data: the messages of the follow-ups listed (`audited`)."""
        if sees_patient_data(principal.role):
            ids = [t.row.message_id for t in items]
            filters = {"window": request.query.get("window")}
            detail = listing(filters, ids, before=None, what="messages")
            await record_read(self.console.store, principal, action, detail)


def _window(value: str | None, default: float) -> float:
    """Hours: a follow-up due within this is "due soon"."""
    if not value:
        return default
    try:
        hours = float(value)
    except ValueError:
        raise BadFilter("the due-soon window is a number of hours") from None
    if not 0 < hours <= 24 * 14:
        raise BadFilter("the due-soon window is between 0 and 336 hours")
    return hours
