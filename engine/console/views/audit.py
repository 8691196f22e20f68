"""The audit log page (admins only): who saw or changed what, newest first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engine.console.templates import Safe, html, join, older_link, table, text_input
from engine.store.console_models import AuditRecord


def audit_page(
    rows: Sequence[AuditRecord], query: Mapping[str, str], next_before: int | None
) -> Safe:
    form = html(
        '<form method="get" action="/audit">$a$p<button type="submit">Filter</button></form>',
        a=text_input("actor", "Who", query.get("actor")),
        p=text_input("patient_key", "Patient key", query.get("patient_key")),
    )
    listing = table(
        ("when", "who", "role", "action", "message", "delivery", "patient", "reason", "detail"),
        [
            (
                r.at,
                r.actor,
                r.role,
                r.action,
                r.message_id,
                r.delivery_id,
                r.patient_key,
                r.reason,
                r.detail,
            )
            for r in rows
        ],
        "results",
    )
    more = Safe("")
    if next_before is not None:
        more = older_link("/audit", query, ("actor", "patient_key"), next_before)
    return join([form, listing, more])
