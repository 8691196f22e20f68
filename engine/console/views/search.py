"""The message search page: the filter form and one line per message found."""

from __future__ import annotations

from collections.abc import Mapping

from engine.console.auth import Principal, sees_patient_data
from engine.console.templates import (
    Safe,
    html,
    join,
    older_link,
    options,
    shown,
    table,
    text_input,
)
from engine.store.console_models import MessagePage, MessageSummary
from engine.store.console_search import DELIVERY_STATUSES, MESSAGE_STATUSES

SEARCH_FIELDS = (
    "patient",
    "reason",
    "control_id",
    "source",
    "destination",
    "status",
    "delivery_status",
    "kind",
    "since",
    "until",
)
_COLUMNS = (
    "id",
    "received",
    "source",
    "control id",
    "status",
    "kind",
    "patient",
    "deliveries",
    "reason",
)


def search_page(principal: Principal, query: Mapping[str, str], page: MessagePage) -> Safe:
    result = table(_COLUMNS, [_line(principal, r) for r in page.rows], "results")
    more = Safe("")
    if page.next_before is not None:
        more = older_link("/messages", query, SEARCH_FIELDS, page.next_before, element_id="older")
    return join(
        [
            _form(principal, query),
            result if page.rows else html("<p>No messages match.</p>"),
            more,
        ]
    )


def _form(principal: Principal, query: Mapping[str, str]) -> Safe:
    patient = sees_patient_data(principal.role)
    fields = [
        text_input("patient", "NHS or local number", query.get("patient")) if patient else Safe(""),
        text_input("reason", "Reason", query.get("reason")) if patient else Safe(""),
        text_input("control_id", "Control id", query.get("control_id")),
        text_input("source", "Source", query.get("source")),
        text_input("destination", "Destination", query.get("destination")),
        html(
            '<label>Status <select name="status">$o</select></label>',
            o=options(MESSAGE_STATUSES, query.get("status")),
        ),
        html(
            '<label>Delivery <select name="delivery_status">$o</select></label>',
            o=options(DELIVERY_STATUSES, query.get("delivery_status")),
        ),
        text_input("kind", "Event kind", query.get("kind")),
        text_input("since", "From (UTC)", query.get("since"), "datetime-local"),
        text_input("until", "To (UTC)", query.get("until"), "datetime-local"),
    ]
    return html(
        '<form method="get" action="/messages" id="search">$f'
        '<button type="submit" id="search-go">Search</button></form>',
        f=join(fields),
    )


def _line(principal: Principal, r: MessageSummary) -> tuple[object, ...]:
    return (
        html('<a href="/messages/$id">$id</a>', id=r.id),
        r.received_at,
        r.source,
        r.message_key,
        r.status,
        r.event_kind,
        shown(principal, r.patient_key),
        ", ".join(f"{d}: {s}" for d, s in r.deliveries),
        shown(principal, r.reason) if r.reason else "",
    )
