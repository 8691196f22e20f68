"""MESH on the console: a delivery's MESH message and the ITK3 acknowledgements that came back
(on its message page), and the inbox messages kept for an operator (``/mesh/inbox``)."""

from __future__ import annotations

from datetime import datetime

from engine.console.auth import Principal, sees_patient_data
from engine.console.templates import Safe, html, join, shown, table
from engine.store.console_models import DeliveryView, KeptInboxMessage, MeshView


def mesh_section(principal: Principal, mesh: MeshView | None) -> Safe:
    """Where the MESH message went, MESH's id for it, and each acknowledgement."""
    if mesh is None:
        return Safe("")
    facts = table(("MESH", ""), [
        ("workflow", mesh.workflow_id),
        ("GP practice", mesh.recipient_ods or "not recorded"),
        ("mailbox", mesh.recipient or "none found"),
        ("local id", mesh.local_id),
        ("ITK3 message id", mesh.itk_message_id),
        ("MESH message id", mesh.message_id or "not uploaded"),
        ("uploaded", mesh.uploaded_at or "-"),
    ], "mesh")  # fmt: skip
    acks = [
        (a.received_at, a.level, a.code or "-", "positive" if a.positive else "NEGATIVE",
         shown(principal, a.text) if a.text else "")
        for a in mesh.acks
    ]  # fmt: skip
    listing = (
        table(("received", "ITK3 acknowledgement", "code", "", "text"), acks, "mesh-acks")
        if acks
        else html('<p class="mesh-acks">No ITK3 acknowledgement yet.</p>')
    )
    return join([facts, listing])


def mesh_timeline(d: DeliveryView) -> list[tuple[datetime, str]]:
    if d.mesh is None:
        return []
    items = []
    if d.mesh.uploaded_at:
        items.append((d.mesh.uploaded_at, f"{d.destination}: uploaded to MESH {d.mesh.recipient}"))
    for a in d.mesh.acks:
        good = "positive" if a.positive else "negative"
        items.append((a.received_at, f"{d.destination}: ITK3 {a.level} {good} {a.code}"))
    return items


def inbox_page(principal: Principal, rows: list[KeptInboxMessage]) -> Safe:
    """Inbox messages that were not an acknowledgement of ours: kept, acknowledged on MESH."""
    if not rows:
        return html("<p>No MESH inbox message has been kept.</p>")
    parts = [html(
        "<p>Messages read from the engine's MESH mailboxes that were not an ITK3 "
        "acknowledgement of a delivery of ours: kept here as they arrived, and acknowledged "
        "on MESH so they do not come back.</p>"
    )]  # fmt: skip
    for r in rows:
        body = (
            html("<pre>$p</pre>", p=r.payload.decode("utf-8", "replace"))
            if sees_patient_data(principal.role)
            else html('<p class="masked">The payload is not shown to the viewer role.</p>')
        )
        facts = table(("", ""), [
            ("MESH message id", r.message_id), ("destination", r.destination),
            ("received", r.received_at), ("from mailbox", r.sender or "-"),
            ("workflow", r.workflow_id or "-"), ("local id", r.local_id or "-"),
            ("kept as", r.status), ("why", shown(principal, r.reason) if r.reason else ""),
        ], "facts")  # fmt: skip
        parts.append(html('<section class="kept">$f$b</section>', f=facts, b=body))
    return join(parts)
