"""The dead letters grouped by error: per destination and normalised reason, how many, the
newest and oldest (UK local time), and for operators a replay of the whole group (the bulk
replay, on that group's dead letters only, none newer than the page showed)."""

from __future__ import annotations

from engine.console.auth import Principal, allowed
from engine.console.templates import Safe, csrf_field, html, shown, table
from engine.readable import local
from engine.store.console_dead_letters import DeadLetterGroup, DeadLetterGroups


def groups_section(principal: Principal, found: DeadLetterGroups, csrf: str, limit: int) -> Safe:
    if not found.groups:
        return Safe("")
    up_to = max(i for g in found.groups for i in g.delivery_ids)
    operator = allowed(principal.role, "operator")
    rows = [
        (
            g.destination,
            html('<span class="reason">$r</span>', r=shown(principal, g.reason)),
            g.count,
            local(g.newest),
            local(g.oldest),
            _replay(g, up_to, csrf, limit) if operator else "",
        )
        for g in found.groups
    ]
    cut = html("<p>Only the newest dead letters are grouped.</p>") if found.cut else Safe("")
    return html(
        "<h2>By error</h2>$t$c",
        t=table(("destination", "error", "dead letters", "newest", "oldest", ""), rows, "groups"),
        c=cut,
    )


def _replay(g: DeadLetterGroup, up_to: int, csrf: str, limit: int) -> Safe:
    return html(
        '<form method="post" action="/dead-letters/replay-group" class="inline group">$csrf'
        '<input type="hidden" name="destination" value="$d">'
        '<input type="hidden" name="reason" value="$r">'
        '<input type="hidden" name="up_to" value="$up">'
        '<input name="comment" placeholder="reason">'
        '<button type="submit">Replay these $n (at most $limit)</button></form>',
        csrf=csrf_field(csrf),
        d=g.destination,
        r=g.reason,
        up=up_to,
        n=g.count,
        limit=limit,
    )
