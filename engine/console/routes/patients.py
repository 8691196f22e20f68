"""A patient's journey (``/patients?patient=<NHS or local number, or patient key>``): for
roles that see patient data only, and audited (``view_journey``) each time it is shown."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from engine.console.context import Console
from engine.console.views.journey import choose_page, journey_page, patient_form
from engine.store import audit
from engine.store.console_journey import journey, patient_keys
from engine.store.console_search import BadFilter


class Patients:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def journey(self, request: web.Request) -> web.Response:
        c = self.console
        principal = c.need(request, "clinical")
        q = request.query
        text = (q.get("patient") or "").strip()
        if not text:
            return c.html(request, "Patient journey", patient_form(q))
        if len(text) > 200:
            raise BadFilter("a patient number is 1 to 120 characters")
        keys = await patient_keys(c.store, text)
        if len(keys) != 1:
            await audit.record(
                c.store,
                principal,
                audit.AuditEntry(
                    "search_patient",
                    reason=q.get("reason"),
                    detail=f"journey search {text!r}; found {', '.join(keys)}",
                ),
            )
            if not keys:
                return c.html(
                    request,
                    "No such patient",
                    patient_form(q),
                    status=404,
                    notice="No message names this patient.",
                )
            return c.html(request, "Choose a patient", choose_page(q, keys))
        found = await journey(c.store, keys[0])
        await audit.record(
            c.store,
            principal,
            audit.AuditEntry(
                "view_journey",
                patient_key=keys[0],
                reason=q.get("reason"),
                detail=f"journey of {len(found.events)} event(s)",
            ),
        )
        return c.html(request, "Patient journey", journey_page(q, found, datetime.now(UTC)))
