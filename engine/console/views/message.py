"""One message's page: its facts, the operator's actions, the payload and care event, each
delivery with its attempts (and the payload its destination is sent; for MESH, its message and
ITK3 acknowledgements), and a timeline."""

from __future__ import annotations

from datetime import datetime

from engine.console.auth import Principal, allowed, sees_patient_data
from engine.console.templates import (
    Safe,
    csrf_field,
    html,
    join,
    json_text,
    payload_text,
    shown,
    table,
)
from engine.console.views import Renderer
from engine.console.views.journey import journey_link
from engine.console.views.mesh import mesh_section, mesh_timeline
from engine.readable import milliseconds
from engine.store.console_models import AuditRecord, DeliveryState, DeliveryView, MessageDetail
from engine.store.statuses import MessageStatus


def message_page(
    principal: Principal,
    detail: MessageDetail,
    trail: list[AuditRecord],
    csrf: str,
    render: Renderer | None,
    *,
    can_remap: bool = False,
) -> Safe:
    parts = [_facts(principal, detail)]
    if allowed(principal.role, "operator"):
        parts.append(_message_actions(detail, csrf, can_remap))
    parts.append(_content(principal, detail))
    parts.extend(_delivery(principal, detail, d, csrf, render) for d in detail.deliveries)
    parts.append(
        html("<h2>Timeline</h2>$t", t=table(("when", "what"), _timeline(detail, trail, principal)))
    )
    return join(parts)


def _facts(principal: Principal, detail: MessageDetail) -> Safe:
    m = detail.message
    return table(
        ("", ""),
        [
            ("source", m.source),
            ("control id", m.message_key),
            ("format", m.format),
            ("status", m.status),
            ("event kind", m.event_kind),
            ("patient", _patient(principal, m.patient_key)),
            ("reason", shown(principal, m.reason) if m.reason else ""),
            ("error at", f"{m.error_location or ''} {m.error_code or ''}".strip()),
            ("received", m.received_at),
            ("resolution", shown(principal, m.resolution) if m.resolution else ""),
        ],
        "facts",
    )


def _patient(principal: Principal, key: str | None) -> object:
    """The patient key, linked to the patient's journey, for roles that see patient data."""
    if not key or not sees_patient_data(principal.role):
        return shown(principal, key)
    return journey_link(key)


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


def _message_actions(detail: MessageDetail, csrf: str, can_remap: bool) -> Safe:
    m = detail.message
    base = f"/messages/{m.id}"
    acts = []
    if detail.deliveries:
        acts.append(_action(f"{base}/replay", "Replay every destination", csrf, m.id, comment=True))
    if can_remap and m.status == MessageStatus.ACCEPTED and detail.event is not None:
        acts.append(
            _action(
                f"{base}/remap",
                "Re-map with today's config and send where not yet delivered",
                csrf,
                m.id,
                comment=True,
            )
        )
    if m.status == MessageStatus.REJECTED and not m.resolved_at:
        acts.append(_action(f"{base}/resolve", "Resolve", csrf, m.id, comment=True, required=True))
    return html('<p class="actions">$a</p>', a=join(acts))


def _content(principal: Principal, detail: MessageDetail) -> Safe:
    if not sees_patient_data(principal.role):
        return html(
            '<p class="masked">Payload and patient details are not shown to the viewer role.</p>'
        )
    m = detail.message
    parts = [
        html('<h2>Payload</h2><pre id="payload">$p</pre>', p=payload_text(m.format, m.payload))
    ]
    if detail.event:
        parts.append(
            html('<h2>Care event</h2><pre id="event">$e</pre>', e=json_text(detail.event.body))
        )
    return join(parts)


def _delivery_actions(principal: Principal, d: DeliveryView, csrf: str, back: int) -> Safe:
    if not allowed(principal.role, "operator"):
        return Safe("")
    base = f"/deliveries/{d.id}"
    out = []
    if d.state in (DeliveryState.DEAD, DeliveryState.DELIVERED, DeliveryState.RESOLVED):
        out.append(_action(f"{base}/replay", "Replay", csrf, back, comment=True))
    if d.state == DeliveryState.DEAD:
        out.append(_action(f"{base}/resolve", "Resolve", csrf, back, comment=True, required=True))
    if d.state == DeliveryState.PENDING:
        out.append(_action(f"{base}/hold", "Hold", csrf, back, comment=True))
    if d.state == DeliveryState.HELD:
        out.append(_action(f"{base}/release", "Release", csrf, back, comment=True))
    return join(out)


def _rendered(
    principal: Principal, detail: MessageDetail, d: DeliveryView, render: Renderer | None
) -> Safe:
    """The payload this delivery's destination is sent, for roles that see patient data."""
    if not sees_patient_data(principal.role) or render is None or detail.event is None:
        return Safe("")
    try:
        text = render(d.destination, detail.event.body)
    except Exception as exc:  # noqa: BLE001 - shown to the operator, not raised
        text = f"cannot render: {type(exc).__name__}"
    return html(
        "<details><summary>Rendered for $d</summary><pre>$t</pre></details>",
        d=d.destination,
        t=text,
    )


def _delivery(
    principal: Principal,
    detail: MessageDetail,
    d: DeliveryView,
    csrf: str,
    render: Renderer | None,
) -> Safe:
    attempts = table(
        ("started", "took", "outcome", "code", "response or error"),
        [
            (
                a.started_at,
                milliseconds(a.duration_ms),
                a.outcome,
                a.status_code,
                shown(principal, a.detail) if a.detail else "",
            )
            for a in d.attempts
        ],
    )
    error = (
        html('<p class="error">$e</p>', e=shown(principal, d.last_error))
        if d.last_error and d.state != DeliveryState.DELIVERED
        else Safe("")
    )
    return html(
        '<section class="delivery" id="delivery-$id"><h2>$dest: <span class="state">'
        "$state</span></h2><p>$n attempts · queued $created · delivered $delivered</p>"
        "$error$actions$mesh$rendered$attempts</section>",
        id=d.id,
        dest=d.destination,
        state=d.state,
        n=len(d.attempts),
        created=d.created_at,
        delivered=d.delivered_at or "-",
        error=error,
        actions=_delivery_actions(principal, d, csrf, detail.message.id),
        mesh=mesh_section(principal, d.mesh),
        rendered=_rendered(principal, detail, d, render),
        attempts=attempts,
    )


def _timeline(
    detail: MessageDetail, trail: list[AuditRecord], principal: Principal
) -> list[tuple[datetime, str]]:
    m = detail.message
    items: list[tuple[datetime, str]] = [
        (m.received_at, "received"),
        (m.committed_at, f"logged as {m.status}"),
    ]
    if m.resolved_at:
        items.append((m.resolved_at, f"resolved by {m.resolved_by}"))
    for d in detail.deliveries:
        items.append((d.created_at, f"{d.destination}: queued"))
        for a in d.attempts:
            code = f" {a.status_code}" if a.status_code is not None else ""
            items.append((a.started_at, f"{d.destination}: attempt {a.outcome}{code}"))
        if d.delivered_at:
            items.append((d.delivered_at, f"{d.destination}: delivered"))
        if d.held_at:
            items.append((d.held_at, f"{d.destination}: held by {d.held_by}"))
        if d.resolved_at:
            items.append((d.resolved_at, f"{d.destination}: resolved by {d.resolved_by}"))
        items += mesh_timeline(d)
    if sees_patient_data(principal.role):
        items += [
            (t.at, f"{t.action} by {t.actor}")
            for t in trail
            if t.action not in ("view_message", "search_patient")
        ]
    return sorted(items, key=lambda item: item[0])
