"""The dead-letter list: unresolved dead letters, and the operator's bulk replay of those
the filter lists."""

from __future__ import annotations

from collections.abc import Mapping

from engine.console.auth import Principal, allowed, sees_patient_data
from engine.console.templates import (
    MASK,
    Safe,
    csrf_field,
    html,
    join,
    older_link,
    shown,
    table,
    text_input,
)
from engine.console.views.journey import journey_link
from engine.store.console_models import DeadLetterPage, DeadLetterView

_COLUMNS = (
    "message",
    "delivery",
    "destination",
    "source",
    "control id",
    "kind",
    "patient",
    "attempts",
    "error",
)


def dead_letters_page(
    principal: Principal, query: Mapping[str, str], page: DeadLetterPage, csrf: str, bulk_limit: int
) -> Safe:
    form = html(
        '<form method="get" action="/dead-letters">$d$s<button type="submit">Filter'
        "</button></form>",
        d=text_input("destination", "Destination", query.get("destination")),
        s=text_input("source", "Source", query.get("source")),
    )
    bulk = Safe("")
    if allowed(principal.role, "operator") and page.rows and "before" not in query:
        bulk = _bulk_replay(query, page.rows[0].id, csrf, bulk_limit)
    more = Safe("")
    if page.next_before is not None:
        more = older_link("/dead-letters", query, ("destination", "source"), page.next_before)
    listing = table(_COLUMNS, [_line(principal, r) for r in page.rows], "results")
    return join([form, bulk, listing if page.rows else html("<p>No dead letters.</p>"), more])


def _bulk_replay(query: Mapping[str, str], up_to: int, csrf: str, bulk_limit: int) -> Safe:
    """Replay what this filter lists, up to the newest dead letter shown (never newer ones)."""
    return html(
        '<form method="post" action="/dead-letters/replay" id="bulk">$csrf'
        '<input type="hidden" name="destination" value="$d">'
        '<input type="hidden" name="source" value="$s">'
        '<input type="hidden" name="up_to" value="$up">'
        '<input name="comment" placeholder="reason">'
        '<button type="submit">Replay every dead letter this filter lists '
        "(at most $limit)</button></form>",
        csrf=csrf_field(csrf),
        d=query.get("destination", ""),
        s=query.get("source", ""),
        up=up_to,
        limit=bulk_limit,
    )


def _line(principal: Principal, r: DeadLetterView) -> tuple[object, ...]:
    return (
        html('<a href="/messages/$m">$m</a>', m=r.message_id),
        html('<a href="/messages/$m#delivery-$d">$d</a>', m=r.message_id, d=r.id),
        r.destination,
        r.source,
        r.message_key,
        r.event_kind,
        journey_link(r.patient_key) if sees_patient_data(principal.role) else MASK,
        r.attempts,
        shown(principal, r.last_error),
    )
