"""Follow-ups by team: per recipient team, how many are open, due soon, overdue, acknowledged
and done, then each follow-up with its due time in UK local time; and the same list as CSV.

No names anywhere; the NHS number only for roles that see patient data (others see `MASK` on
the page and no column in the CSV)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import urlencode

from engine.console.auth import Principal, sees_patient_data
from engine.console.follow_up_teams import STATES, TeamFollowUp
from engine.console.templates import MASK, Safe, html, join, table, text_input
from engine.console.views.journey import journey_link
from engine.readable import LOCAL, local

_LIST = (
    "team",
    "state",
    "standard",
    "discharged",
    "due",
    "acknowledged",
    "done",
    "source",
    "message",
    "patient",
)


def follow_ups_page(
    principal: Principal,
    query: Mapping[str, str],
    items: list[TeamFollowUp],
    window_hours: float,
    cut: bool,
) -> Safe:
    form = html(
        '<form method="get" action="/follow-ups">$w<button type="submit">Show</button></form>'
        '<p><a id="csv" href="/follow-ups.csv?$q">Download CSV</a> · due times are UK local '
        "time (Europe/London, GMT or BST as shown); due soon means within $h h.</p>",
        w=text_input("window", "Due soon within (hours)", query.get("window")),
        q=urlencode({"window": query.get("window", "")}),
        h=f"{window_hours:g}",
    )
    derived = sorted({t.team for t in items if t.how == "derived"})
    note = Safe("")
    if derived:
        note = html(
            '<p class="notice" id="derived">No delivered notification records the recipient for '
            "some follow-ups of $t: their team is derived from the stored discharge with today's "
            "recipient rules, and may differ from the team that was told.</p>",
            t=", ".join(derived),
        )
    more = html('<p class="notice">Only the soonest due are listed.</p>') if cut else Safe("")
    listing = table(_LIST, [_line(principal, t) for t in items], "follow-ups")
    return join(
        [
            form,
            note,
            more,
            html("<h2>By team</h2>"),
            _summary(items),
            html("<h2>Every follow-up</h2>"),
            listing,
        ]
    )


def _summary(items: list[TeamFollowUp]) -> Safe:
    counts: dict[str, Counter[str]] = {}
    for t in items:
        counts.setdefault(t.team, Counter())[t.state] += 1
    rows = [
        (team, *(html('<span class="$c">$n</span>', c=_css(s, c[s]), n=c[s]) for s in STATES))
        for team, c in sorted(counts.items())
    ]
    if not rows:
        return html("<p>No follow-ups.</p>")
    return table(("team", *STATES), rows, "teams")


def _css(state: str, n: int) -> str:
    return "gap" if n and state in ("overdue", "due soon") else ""


def _line(principal: Principal, t: TeamFollowUp) -> tuple[object, ...]:
    r = t.row
    patient: object = MASK
    if sees_patient_data(principal.role):
        patient = journey_link(r.patient_key)
    return (
        t.team + (" (derived)" if t.how == "derived" else ""),
        html('<span class="$c">$s</span>', c=_css(t.state, 1), s=t.state),
        r.standard,
        local(r.discharged_at, seconds=False),
        local(r.due_at, seconds=False),
        local(r.acknowledged_at, seconds=False),
        local(r.done_at, seconds=False),
        r.source,
        html('<a href="/messages/$m">$m</a>', m=r.message_id),
        patient,
    )


def follow_ups_csv(principal: Principal, items: list[TeamFollowUp]) -> str:
    """The list as CSV (times in ISO 8601 with their UK offset); no names; the NHS number column
    only for roles that see patient data."""
    with_nhs = sees_patient_data(principal.role)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    head = [
        "team",
        "team_from",
        "state",
        "standard",
        "discharged_at",
        "due_at",
        "acknowledged_at",
        "done_at",
        "source",
        "event_id",
        "message_id",
    ]
    writer.writerow([*head, "nhs_number"] if with_nhs else head)
    for t in items:
        r = t.row
        line = [
            t.team,
            t.how,
            t.state,
            r.standard,
            _iso(r.discharged_at),
            _iso(r.due_at),
            _iso(r.acknowledged_at),
            _iso(r.done_at),
            r.source,
            r.event_id,
            r.message_id,
        ]
        if with_nhs:
            line.append(r.patient_key[4:] if r.patient_key.startswith("nhs:") else "")
        writer.writerow([_cell(v) for v in line])
    return out.getvalue()


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(LOCAL).isoformat(timespec="seconds")


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
