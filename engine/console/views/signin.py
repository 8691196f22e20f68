"""The sign-in form and the page a role too low for a route is shown."""

from __future__ import annotations

from engine.console.auth import Principal
from engine.console.templates import Safe, csrf_field, html


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


def refused(principal: Principal, needed: str) -> Safe:
    return html(
        '<p class="error" id="refused">Your role ($r) cannot do this; it needs $n.</p>',
        r=principal.role,
        n=needed,
    )
