"""A patient's journey: every event the engine holds for one patient across all sources, in
the order it happened, each with its deliveries, follow-up, corrections and merges, and the gaps
that matter flagged plainly (a discharge nobody acknowledged, a follow-up overdue, a delivery
dead-lettered). Times are local (Europe/London)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from urllib.parse import urlencode

from engine.console.templates import Safe, html, join, table, text_input
from engine.readable import duration, local
from engine.store.console_models import DeliveryState, Journey, JourneyEvent
from engine.store.statuses import OPEN_FOLLOW_UPS, FollowUpStatus

_COLUMNS = ("when", "source", "event", "message", "deliveries", "follow-up", "gaps")


def journey_link(patient_key: str, text: object | None = None) -> Safe:
    """A link to the journey of `patient_key`."""
    href = "/patients?" + urlencode({"patient": patient_key})
    return html(
        '<a class="journey" href="$h">$t</a>', h=href, t=patient_key if text is None else text
    )


def patient_form(query: Mapping[str, str]) -> Safe:
    return html(
        '<form method="get" action="/patients" id="patient-search">$p$r'
        '<button type="submit" id="patient-go">Show journey</button></form>',
        p=text_input("patient", "NHS or local number", query.get("patient")),
        r=text_input("reason", "Reason", query.get("reason")),
    )


def choose_page(query: Mapping[str, str], keys: list[str]) -> Safe:
    """More than one patient matches: a link to each journey."""
    items = join(html("<li>$a</li>", a=journey_link(k)) for k in keys)
    return join(
        [
            patient_form(query),
            html("<p>More than one patient matches; choose one:</p><ul>$i</ul>", i=items),
        ]
    )


def gaps(e: JourneyEvent, now: datetime) -> list[str]:
    """What is wrong with this event that someone must act on, in plain words."""
    out = [
        f"{d.destination}: dead-lettered after {d.attempt_count} attempt(s)"
        for d in e.deliveries
        if d.state == DeliveryState.DEAD
    ]
    f = e.follow_up
    if f is not None and f.status in OPEN_FOLLOW_UPS:
        if f.status == FollowUpStatus.OPEN:
            out.append(f"discharge notified {duration(now - f.created_at)} ago, not acknowledged")
        if f.due_at <= now:
            out.append(f"follow-up overdue by {duration(now - f.due_at)}")
    return out


def journey_page(query: Mapping[str, str], j: Journey, now: datetime) -> Safe:
    rows = [_row(e, now) for e in j.events]
    flagged = sum(1 for e in j.events if gaps(e, now))
    summary = html(
        '<p id="journey-summary">Patient $k: $n event(s) across $s source(s); '
        '<strong class="$c">$g with gaps</strong>. Times are $z.</p>',
        k=j.patient_key,
        n=len(j.events),
        s=len({e.source for e in j.events}),
        c="gap" if flagged else "ok",
        g=flagged,
        z="UK local time (GMT/BST)",
    )
    cut = html('<p class="notice">Only the newest events are shown.</p>') if j.cut else Safe("")
    parts = [patient_form(query), summary, cut]
    parts.append(table(_COLUMNS, rows, "journey") if rows else html("<p>No care events.</p>"))
    return join(parts)


def _row(e: JourneyEvent, now: datetime) -> tuple[object, ...]:
    found = gaps(e, now)
    return (
        local(e.when),
        e.source,
        _what(e),
        html('<a href="/messages/$m">$m</a>', m=e.message_id),
        join(
            html(
                '<div><a href="/messages/$m#delivery-$i">$d</a>: <span class="state-$s">$s'
                "</span>, $n attempt(s)$w</div>",
                m=e.message_id,
                i=d.id,
                d=d.destination,
                s=d.state,
                n=d.attempt_count,
                w=f", delivered {local(d.delivered_at)}" if d.delivered_at else "",
            )
            for d in e.deliveries
        ),
        _follow_up(e),
        join(html('<div class="gap">$g</div>', g=g) for g in found) if found else "",
    )


def _what(e: JourneyEvent) -> Safe:
    parts = [
        html('<strong id="event-$i">$k</strong> ($c)', i=e.event_id, k=e.kind, c=e.care_setting)
    ]
    if e.stay_id:
        parts.append(html("<div>stay $s</div>", s=e.stay_id))
    if e.corrects:
        parts.append(html('<div>cancels <a href="#event-$c">$c</a></div>', c=e.corrects))
    for by in e.corrected_by:
        parts.append(
            html('<div class="cancelled">cancelled by <a href="#event-$b">$b</a></div>', b=by)
        )
    for key in e.retired:
        parts.append(html("<div>merged in $k (its events now show here)</div>", k=key))
    return join(parts)


def _follow_up(e: JourneyEvent) -> Safe:
    f = e.follow_up
    if f is None:
        return html("-") if e.kind == "discharge" else Safe("")
    lines = [f"{f.status} ({f.standard}); due {local(f.due_at, seconds=False)}"]
    if f.acknowledged_at:
        lines.append(f"acknowledged {local(f.acknowledged_at)} by {f.acknowledged_by or '?'}")
    if f.done_at:
        lines.append(f"done {local(f.done_at)} by {f.done_by or '?'}")
    if f.withdrawn_by:
        lines.append(f"withdrawn by {f.withdrawn_by}")
    return join(html("<div>$l</div>", l=line) for line in lines)
