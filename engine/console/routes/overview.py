"""The operators' overview pages: dead letters, the dashboard, ``/metrics`` (Prometheus), the
MESH inbox messages kept for an operator, and the audit log (admins only). The lists that show
patient data (dead letters, the kept MESH inbox messages, for roles that see it) and every read
of the audit log are audited (`audited`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from aiohttp import web

from engine import metrics as engine_metrics
from engine.console import metrics
from engine.console.audited import listing, record_read
from engine.console.auth import sees_patient_data
from engine.console.context import Console, notice, number
from engine.console.templates import Safe
from engine.console.views.audit import audit_page
from engine.console.views.dashboard import (
    SCRIPT,
    SPANS,
    backlog_bars,
    charts_box,
    charts_fragment,
    dashboard_page,
)
from engine.console.views.dead_letter_groups import groups_section
from engine.console.views.dead_letters import dead_letters_page
from engine.console.views.mesh import inbox_page
from engine.store.console_charts import delivery_counts, delivery_latency, message_rates
from engine.store.console_dead_letters import dead_letter_groups
from engine.store.console_mesh import kept_inbox
from engine.store.console_models import Figures
from engine.store.console_reads import audit_entries, dead_letters, figures

CHART_REFRESH = 30
"""Seconds between the dashboard's chart refreshes."""


def _span(request: web.Request) -> str:
    span = request.query.get("span", "1h")
    return span if span in SPANS else "1h"


async def script(_request: web.Request) -> web.Response:
    return web.Response(text=SCRIPT, content_type="text/javascript")


class Overview:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def dead_letters(self, request: web.Request) -> web.Response:
        c = self.console
        principal = c.need(request, "viewer")
        q = request.query
        found = await dead_letters(
            c.store,
            destination=q.get("destination") or None,
            before=number(q.get("before")),
            limit=c.config.page_size,
        )
        if q.get("source"):
            found = replace(found, rows=tuple(r for r in found.rows if r.source == q["source"]))
        if sees_patient_data(principal.role):
            filters = {"destination": q.get("destination"), "source": q.get("source")}
            ids = [r.message_id for r in found.rows]
            detail = listing(filters, ids, before=number(q.get("before")), what="messages")
            await record_read(c.store, principal, "list_dead_letters", detail)
        body = dead_letters_page(principal, dict(q), found, c.csrf(request), c.config.bulk_limit)
        if "before" not in q and not q.get("source"):
            groups = await dead_letter_groups(c.store, destination=q.get("destination") or None)
            body = Safe(
                groups_section(principal, groups, c.csrf(request), c.config.bulk_limit) + body
            )
        return c.html(request, "Dead letters", body, notice=notice(request))

    async def dashboard(self, request: web.Request) -> web.Response:
        self.console.need(request, "viewer")
        span = _span(request)
        found = await figures(self.console.store)
        charts = charts_box(span, CHART_REFRESH, await self._charts(span, found))
        return self.console.html(request, "Dashboard", dashboard_page(found, charts))

    async def charts(self, request: web.Request) -> web.Response:
        """The charts alone, for the dashboard's script to refresh them in place."""
        self.console.need(request, "viewer")
        fragment = await self._charts(_span(request), await figures(self.console.store))
        return web.Response(text=fragment, content_type="text/html")

    async def _charts(self, span: str, found: Figures) -> Safe:
        store, now = self.console.store, found.at
        return charts_fragment(
            await message_rates(store, now, timedelta(hours=1 if span == "1h" else 24)),
            await delivery_counts(store, now),
            await delivery_latency(store, now),
            backlog_bars(found),
        )

    async def prometheus(self, request: web.Request) -> web.Response:
        self.console.need(request, "viewer")
        text = engine_metrics.exposition().decode() + metrics.prometheus(
            await figures(self.console.store)
        )
        return web.Response(
            text=text, content_type="text/plain", headers={"X-Prometheus-Format": "0.0.4"}
        )

    async def mesh_inbox(self, request: web.Request) -> web.Response:
        principal = self.console.need(request, "viewer")
        rows = await kept_inbox(self.console.store, self.console.config.page_size)
        if sees_patient_data(principal.role):  # the messages as they arrived
            detail = listing({}, [r.message_id for r in rows], before=None, what="MESH messages")
            await record_read(self.console.store, principal, "list_mesh_inbox", detail)
        return self.console.html(request, "MESH inbox: kept", inbox_page(principal, rows))

    async def audit_log(self, request: web.Request) -> web.Response:
        c = self.console
        principal = c.need(request, "admin")
        q = request.query
        limit = c.config.page_size
        before, actor, patient_key = number(q.get("before")), q.get("actor"), q.get("patient_key")
        rows = await audit_entries(
            c.store,
            before_id=before,
            limit=limit + 1,
            actor=actor or None,
            patient_key=patient_key or None,
        )
        more = rows[limit - 1].id if len(rows) > limit else None
        shown = rows[:limit]
        filters = {"actor": actor, "patient_key": patient_key}
        detail = listing(filters, [r.id for r in shown], before=before, what="entries")
        await record_read(c.store, principal, "view_audit", detail, patient_key=patient_key or None)
        return c.html(request, "Audit log", audit_page(shown, dict(q), more))
