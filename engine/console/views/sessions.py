"""The sessions page (admins only): who is signed in, from where, and a button to end each."""

from __future__ import annotations

from collections.abc import Sequence

from engine.console.templates import Safe, csrf_field, html, join, table
from engine.store.console_sessions import SessionRow


def sessions_page(rows: Sequence[SessionRow], csrf: str) -> Safe:
    def revoke(row: SessionRow) -> Safe:
        return html(
            '<form method="post" action="/sessions/$id/revoke" class="inline">$csrf'
            '<button type="submit" id="revoke-$id">Revoke</button></form>',
            id=row.id,
            csrf=csrf_field(csrf),
        )

    def revoke_all(user: str) -> Safe:
        return html(
            '<form method="post" action="/sessions/revoke-user" class="inline">$csrf'
            '<input type="hidden" name="user" value="$u">'
            '<button type="submit">Revoke every session of $u</button></form>',
            u=user,
            csrf=csrf_field(csrf),
        )

    listing = table(
        ("session", "user", "address", "signed in", "last seen", "ends", ""),
        [
            (r.id, r.user_name, r.address, r.created_at, r.last_seen_at, r.expires_at, revoke(r))
            for r in rows
        ],
        "results",
    )
    users = sorted({r.user_name for r in rows})
    return join([listing, join(html("<p>$f</p>", f=revoke_all(u)) for u in users)])
