"""The console's pages as pure functions: data in, escaped HTML out (no I/O here).

A viewer's pages never carry patient data: no payload, no event, no patient key, no free text
that came from a message or a destination (reasons, errors, responses), only `MASK`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from engine.console.auth import Principal, allowed, sees_patient_data
from engine.console.metrics import Figures
from engine.console.queries import (
    DELIVERY_STATUSES,
    MESSAGE_STATUSES,
    MessageDetail,
    Page,
)
from engine.console.templates import (
    MASK,
    Safe,
    csrf_field,
    html,
    join,
    json_text,
    options,
    payload_text,
    table,
)

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
Renderer = Callable[[str, str], str]
"""(destination, canonical event JSON) → the payload that destination is sent."""


def _shown(principal: Principal, value: object) -> object:
    return value if sees_patient_data(principal.role) else MASK


def login_form(token: str, error: str | None = None) -> Safe:
    problem = html('<p class="error">$e</p>', e=error) if error else Safe("")
    return html(
        '$problem<form method="post" action="/login">$csrf'
        '<label>Name <input name="name" id="name" autocomplete="username" required></label>'
        '<label>Password <input name="password" id="password" type="password" '
        'autocomplete="current-password" required></label>'
        '<button type="submit" id="sign-in">Sign in</button></form>',
        problem=problem,
        csrf=csrf_field(token),
    )


def _input(name: str, label: str, value: str | None, kind: str = "text") -> Safe:
    return html(
        '<label>$label <input name="$name" id="f-$name" type="$kind" value="$v"></label>',
        label=label,
        name=name,
        kind=kind,
        v=value or "",
    )


def search_page(principal: Principal, query: Mapping[str, str], page: Page) -> Safe:
    patient = sees_patient_data(principal.role)
    fields = [
        _input("patient", "NHS or local number", query.get("patient")) if patient else Safe(""),
        _input("reason", "Reason", query.get("reason")) if patient else Safe(""),
        _input("control_id", "Control id", query.get("control_id")),
        _input("source", "Source", query.get("source")),
        _input("destination", "Destination", query.get("destination")),
        html(
            '<label>Status <select name="status">$o</select></label>',
            o=options(MESSAGE_STATUSES, query.get("status")),
        ),
        html(
            '<label>Delivery <select name="delivery_status">$o</select></label>',
            o=options(DELIVERY_STATUSES, query.get("delivery_status")),
        ),
        _input("kind", "Event kind", query.get("kind")),
        _input("since", "From (UTC)", query.get("since"), "datetime-local"),
        _input("until", "To (UTC)", query.get("until"), "datetime-local"),
    ]
    form = html(
        '<form method="get" action="/messages" id="search">$f'
        '<button type="submit" id="search-go">Search</button></form>',
        f=join(fields),
    )
    rows = [
        (
            html('<a href="/messages/$id">$id</a>', id=r["id"]),
            r["received_at"],
            r["source"],
            r["message_key"],
            r["status"],
            r["event_kind"],
            _shown(principal, r["patient_key"]),
            ", ".join(f"{d}: {s}" for d, s in r["deliveries"]),
            _shown(principal, r["reason"]) if r["reason"] else "",
        )
        for r in page.rows
    ]
    result = table(
        (
            "id",
            "received",
            "source",
            "control id",
            "status",
            "kind",
            "patient",
            "deliveries",
            "reason",
        ),
        rows,
        "results",
    )
    more = Safe("")
    if page.next_before is not None:
        kept = {k: v for k, v in query.items() if k in SEARCH_FIELDS and v}
        more = html(
            '<p><a id="older" href="/messages?$q">Older</a></p>',
            q=urlencode({**kept, "before": page.next_before}),
        )
    return join([form, result if page.rows else html("<p>No messages match.</p>"), more])


def _action(
    path: str, label: str, csrf: str, back: int, *, comment: bool = False, required: bool = False
) -> Safe:
    note = Safe("")
    if comment:
        req = Safe(" required") if required else Safe("")
        note = html(
            '<input name="comment" placeholder="$p"$req>',
            p="comment (required)" if required else "reason",
            req=req,
        )
    return html(
        '<form method="post" action="$path" class="inline">$csrf'
        '<input type="hidden" name="back" value="$back">$note'
        '<button type="submit">$label</button></form>',
        path=path,
        csrf=csrf_field(csrf),
        back=back,
        note=note,
        label=label,
    )


def _delivery_actions(principal: Principal, d: Mapping[str, Any], csrf: str, back: int) -> Safe:
    if not allowed(principal.role, "operator"):
        return Safe("")
    base = f"/deliveries/{d['id']}"
    state = d["state"]
    out = []
    if state in ("dead", "delivered", "resolved"):
        out.append(_action(f"{base}/replay", "Replay", csrf, back, comment=True))
    if state == "dead":
        out.append(_action(f"{base}/resolve", "Resolve", csrf, back, comment=True, required=True))
    if state == "pending":
        out.append(_action(f"{base}/hold", "Hold", csrf, back, comment=True))
    if state == "held":
        out.append(_action(f"{base}/release", "Release", csrf, back, comment=True))
    return join(out)


def _timeline(
    detail: MessageDetail, trail: list[dict[str, Any]], principal: Principal
) -> list[tuple[datetime, str]]:
    m = detail.message
    items: list[tuple[datetime, str]] = [
        (m["received_at"], "received"),
        (m["committed_at"], f"logged as {m['status']}"),
    ]
    if m.get("resolved_at"):
        items.append((m["resolved_at"], f"resolved by {m['resolved_by']}"))
    for d in detail.deliveries:
        dest = d["destination"]
        items.append((d["created_at"], f"{dest}: queued"))
        for a in d["attempts"]:
            code = f" {a['status_code']}" if a["status_code"] is not None else ""
            items.append((a["started_at"], f"{dest}: attempt {a['outcome']}{code}"))
        if d["delivered_at"]:
            items.append((d["delivered_at"], f"{dest}: delivered"))
        if d["held_at"]:
            items.append((d["held_at"], f"{dest}: held by {d['held_by']}"))
        if d["resolved_at"]:
            items.append((d["resolved_at"], f"{dest}: resolved by {d['resolved_by']}"))
    if sees_patient_data(principal.role):
        items += [
            (t["at"], f"{t['action']} by {t['actor']}")
            for t in trail
            if t["action"] not in ("view_message", "search_patient")
        ]
    return sorted(items, key=lambda item: item[0])


def message_page(
    principal: Principal,
    detail: MessageDetail,
    trail: list[dict[str, Any]],
    csrf: str,
    render: Renderer | None,
    *,
    can_remap: bool = False,
) -> Safe:
    m = detail.message
    patient = sees_patient_data(principal.role)
    facts = table(
        ("", ""),
        [
            ("source", m["source"]),
            ("control id", m["message_key"]),
            ("format", m["format"]),
            ("status", m["status"]),
            ("event kind", m["event_kind"]),
            ("patient", _shown(principal, m["patient_key"])),
            ("reason", _shown(principal, m["reason"]) if m["reason"] else ""),
            ("error at", f"{m['error_location'] or ''} {m['error_code'] or ''}".strip()),
            ("received", m["received_at"]),
            ("resolution", _shown(principal, m["resolution"]) if m["resolution"] else ""),
        ],
        "facts",
    )
    parts = [facts]
    if allowed(principal.role, "operator"):
        acts = []
        if detail.deliveries:
            acts.append(
                _action(
                    f"/messages/{m['id']}/replay",
                    "Replay every destination",
                    csrf,
                    m["id"],
                    comment=True,
                )
            )
        if can_remap and m["status"] == "accepted" and detail.event is not None:
            acts.append(
                _action(
                    f"/messages/{m['id']}/remap",
                    "Re-map with today's config and send where not yet delivered",
                    csrf,
                    m["id"],
                    comment=True,
                )
            )
        if m["status"] == "rejected" and not m["resolved_at"]:
            acts.append(
                _action(
                    f"/messages/{m['id']}/resolve",
                    "Resolve",
                    csrf,
                    m["id"],
                    comment=True,
                    required=True,
                )
            )
        parts.append(html('<p class="actions">$a</p>', a=join(acts)))
    if patient:
        parts.append(
            html(
                '<h2>Payload</h2><pre id="payload">$p</pre>',
                p=payload_text(m["format"], m["payload"]),
            )
        )
        if detail.event:
            parts.append(
                html(
                    '<h2>Care event</h2><pre id="event">$e</pre>', e=json_text(detail.event["body"])
                )
            )
    else:
        parts.append(
            html(
                '<p class="masked">Payload and patient details are not shown to '
                "the viewer role.</p>"
            )
        )
    for d in detail.deliveries:
        attempts = table(
            ("started", "ms", "outcome", "code", "response or error"),
            [
                (
                    a["started_at"],
                    a["duration_ms"],
                    a["outcome"],
                    a["status_code"],
                    _shown(principal, a["detail"]) if a["detail"] else "",
                )
                for a in d["attempts"]
            ],
        )
        rendered = Safe("")
        if patient and render is not None and detail.event is not None:
            try:
                text = render(d["destination"], detail.event["body"])
            except Exception as exc:  # noqa: BLE001 - shown to the operator, not raised
                text = f"cannot render: {type(exc).__name__}"
            rendered = html(
                "<details><summary>Rendered for $d</summary><pre>$t</pre></details>",
                d=d["destination"],
                t=text,
            )
        error = (
            html('<p class="error">$e</p>', e=_shown(principal, d["last_error"]))
            if d["last_error"] and d["state"] != "delivered"
            else Safe("")
        )
        parts.append(
            html(
                '<section class="delivery" id="delivery-$id"><h2>$dest: <span class="state">'
                "$state</span></h2><p>$n attempts · queued $created · delivered $delivered</p>"
                "$error$actions$rendered$attempts</section>",
                id=d["id"],
                dest=d["destination"],
                state=d["state"],
                n=d["attempts"].__len__(),
                created=d["created_at"],
                delivered=d["delivered_at"] or "-",
                error=error,
                actions=_delivery_actions(principal, d, csrf, m["id"]),
                rendered=rendered,
                attempts=attempts,
            )
        )
    parts.append(
        html("<h2>Timeline</h2>$t", t=table(("when", "what"), _timeline(detail, trail, principal)))
    )
    return join(parts)


def dead_letters_page(
    principal: Principal, query: Mapping[str, str], page: Page, csrf: str, bulk_limit: int
) -> Safe:
    form = html(
        '<form method="get" action="/dead-letters">$d$s<button type="submit">Filter'
        "</button></form>",
        d=_input("destination", "Destination", query.get("destination")),
        s=_input("source", "Source", query.get("source")),
    )
    rows = [
        (
            html('<a href="/messages/$m">$m</a>', m=r["message_id"]),
            r["id"],
            r["destination"],
            r["source"],
            r["message_key"],
            r["event_kind"],
            _shown(principal, r["patient_key"]),
            r["attempts"],
            _shown(principal, r["last_error"]),
        )
        for r in page.rows
    ]
    bulk = Safe("")
    if allowed(principal.role, "operator") and page.rows and "before" not in query:
        bulk = html(
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
            up=page.rows[0]["id"],
            limit=bulk_limit,
        )
    more = Safe("")
    if page.next_before is not None:
        kept = {k: v for k, v in query.items() if k in ("destination", "source") and v}
        more = html(
            '<p><a href="/dead-letters?$q">Older</a></p>',
            q=urlencode({**kept, "before": page.next_before}),
        )
    listing = table(
        (
            "message",
            "delivery",
            "destination",
            "source",
            "control id",
            "kind",
            "patient",
            "attempts",
            "error",
        ),
        rows,
        "results",
    )
    return join([form, bulk, listing if page.rows else html("<p>No dead letters.</p>"), more])


def _age(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "-"
    seconds = int((now - then).total_seconds())
    return f"{seconds // 3600}h {seconds % 3600 // 60}m {seconds % 60}s"


def dashboard_page(f: Figures) -> Safe:
    sources = table(
        ("source", "accepted", "rejected", "duplicate", "last received"),
        [
            (
                name,
                s.messages.get("accepted", 0),
                s.messages.get("rejected", 0),
                s.messages.get("duplicate", 0),
                s.last_received or "-",
            )
            for name, s in sorted(f.sources.items())
        ],
        "sources",
    )
    dests = table(
        (
            "destination",
            "pending",
            "oldest pending",
            "held",
            "dead",
            "delivered",
            "last success",
            "error rate (15 min)",
        ),
        [
            (
                name,
                d.deliveries.get("pending", 0),
                _age(f.at, d.oldest_pending),
                d.deliveries.get("held", 0),
                d.deliveries.get("dead", 0),
                d.deliveries.get("delivered", 0),
                d.last_success or "-",
                "-" if d.error_rate is None else f"{d.error_rate:.0%}",
            )
            for name, d in sorted(f.destinations.items())
        ],
        "destinations",
    )
    return html("<h2>Sources</h2>$s<h2>Destinations</h2>$d", s=sources, d=dests)


def audit_page(
    rows: list[dict[str, Any]], query: Mapping[str, str], next_before: int | None
) -> Safe:
    form = html(
        '<form method="get" action="/audit">$a$p<button type="submit">Filter</button></form>',
        a=_input("actor", "Who", query.get("actor")),
        p=_input("patient_key", "Patient key", query.get("patient_key")),
    )
    listing = table(
        ("when", "who", "role", "action", "message", "delivery", "patient", "reason", "detail"),
        [
            (
                r["at"],
                r["actor"],
                r["role"],
                r["action"],
                r["message_id"],
                r["delivery_id"],
                r["patient_key"],
                r["reason"],
                r["detail"],
            )
            for r in rows
        ],
        "results",
    )
    more = Safe("")
    if next_before is not None:
        kept = {k: v for k, v in query.items() if k in ("actor", "patient_key") and v}
        more = html(
            '<p><a href="/audit?$q">Older</a></p>', q=urlencode({**kept, "before": next_before})
        )
    return join([form, listing, more])


def refused(principal: Principal, needed: str) -> Safe:
    return html(
        '<p class="error" id="refused">Your role ($r) cannot do this; it needs $n.</p>',
        r=principal.role,
        n=needed,
    )
