"""HTML for the console, escaped by construction.

`html()` fills a `string.Template` and escapes every value that is not already `Safe` markup,
so a payload, a reason or a name from a message can never become markup. Pages carry no
inline script: the dashboard's chart refresh and the style sheet are served from the console
itself (see the CSP in `security.py`).
"""

from __future__ import annotations

import html as _html
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from string import Template
from urllib.parse import urlencode

from engine.console.auth import Principal, allowed, sees_patient_data
from engine.readable import local

MASK = "•••"
"""What a viewer sees in place of anything about a patient."""


class Safe(str):
    """Markup built by this module (its values already escaped)."""

    __slots__ = ()


def esc(value: object) -> Safe:
    if isinstance(value, Safe):
        return value
    if value is None:
        return Safe("")
    if isinstance(value, datetime):  # every time on every page: UK local time, zone shown
        return Safe(local(value))
    return Safe(_html.escape(str(value), quote=True))


def html(template: str, **values: object) -> Safe:
    return Safe(Template(template).substitute({k: esc(v) for k, v in values.items()}))


def join(parts: Iterable[Safe]) -> Safe:
    return Safe("".join(esc(p) for p in parts))


def options(values: Iterable[str], selected: str | None) -> Safe:
    out = [html('<option value="">any</option>')]
    for v in values:
        sel = Safe(" selected") if v == selected else Safe("")
        out.append(html('<option value="$v"$sel>$v</option>', v=v, sel=sel))
    return join(out)


def payload_text(fmt: str | None, payload: bytes) -> str:
    """A raw message made readable: HL7v2 one segment a line, JSON pretty-printed."""
    text = payload.decode("utf-8", "replace")
    if fmt == "hl7v2" or text.startswith("MSH"):
        return "\n".join(s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s)
    return json_text(text)


def json_text(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def csrf_field(token: str) -> Safe:
    return html('<input type="hidden" name="csrf" value="$t">', t=token)


def shown(principal: Principal, value: object) -> object:
    """The value for a role that sees patient data, else `MASK`."""
    return value if sees_patient_data(principal.role) else MASK


def text_input(name: str, label: str, value: str | None, kind: str = "text") -> Safe:
    return html(
        '<label>$label <input name="$name" id="f-$name" type="$kind" value="$v"></label>',
        label=label,
        name=name,
        kind=kind,
        v=value or "",
    )


def older_link(
    path: str,
    query: Mapping[str, str],
    kept: Iterable[str],
    before: int,
    *,
    element_id: str | None = None,
) -> Safe:
    """The link to the next (older) page of a listing, keeping the filters named in `kept`."""
    names = set(kept)
    filters = {k: v for k, v in query.items() if k in names and v}
    return html(
        '<p><a$id href="$path?$q">Older</a></p>',
        id=html(' id="$i"', i=element_id) if element_id else Safe(""),
        path=path,
        q=urlencode({**filters, "before": before}),
    )


def page(
    title: str, body: Safe, principal: Principal | None, csrf: str = "", notice: str | None = None
) -> Safe:
    nav = Safe("")
    if principal is not None:
        links = [
            ("/messages", "Messages"),
            ("/dead-letters", "Dead letters"),
            ("/follow-ups", "Follow-ups"),
            ("/dashboard", "Dashboard"),
            ("/mesh/inbox", "MESH inbox"),
        ]
        if sees_patient_data(principal.role):
            links.insert(1, ("/patients", "Patients"))
        if allowed(principal.role, "admin"):
            links += [("/audit", "Audit log"), ("/sessions", "Sessions")]
        nav = html(
            '<nav>$links <span class="who">$name ($role)</span>'
            '<form method="post" action="/logout" class="inline">$csrf'
            '<button type="submit">Sign out</button></form></nav>',
            links=join(html('<a href="$h">$t</a>', h=h, t=t) for h, t in links),
            name=principal.name,
            role=principal.role,
            csrf=csrf_field(csrf),
        )
    note = html('<p class="notice" id="notice">$n</p>', n=notice) if notice else Safe("")
    return html(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>$title · Carebridge</title>"
        '<link rel="stylesheet" href="/static/console.css"></head>'
        "<body>$nav<main><h1>$title</h1>$note$body</main></body></html>",
        title=title,
        nav=nav,
        note=note,
        body=body,
    )


def table(headers: Iterable[str], rows: Iterable[Iterable[object]], css: str = "") -> Safe:
    head = join(html("<th>$h</th>", h=h) for h in headers)
    body = join(html("<tr>$c</tr>", c=join(html("<td>$v</td>", v=v) for v in row)) for row in rows)
    return html(
        '<table class="$css"><thead><tr>$head</tr></thead><tbody>$body</tbody></table>',
        css=css,
        head=head,
        body=body,
    )


STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222}
nav{background:#005eb8;padding:.5em 1em}nav a{color:#fff;margin-right:1em}
nav .who{color:#fff;margin-left:2em}main{padding:1em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;
text-align:left;vertical-align:top}pre{background:#f4f4f4;padding:.5em;overflow:auto}
form.inline{display:inline}.notice{background:#ffeb3b;padding:.5em}
.error{background:#fdd;padding:.5em}label{margin-right:1em}
.gap{color:#a00;font-weight:bold}.state-dead{color:#a00}.state-delivered{color:#070}
.cancelled{color:#666;text-decoration:line-through}
figure.chart{display:inline-block;margin:.5em}.spans a.on{font-weight:bold}
"""
