"""Which team a follow-up belongs to, and where it stands: for the console's follow-ups page.

The team is the notification recipient that received the discharge. The sender records it in
the delivered attempt's detail (``to <recipient> by recipients[<n>] <recipient> (why): …``);
when no such attempt exists (not yet delivered, or sent before recipients were recorded), the
recipient is derived from the stored event with today's config (`recipient_for`), and the page
says so; with no engine config, or no rule that matches, the team is unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from engine.config import Config, NotificationDestination
from engine.delivery.notification import recipient_for
from engine.delivery.sending import Unrenderable, care_event
from engine.store.console_follow_ups import FollowUpRow
from engine.store.statuses import FollowUpStatus

STATES = ("overdue", "due soon", "open", "acknowledged", "done")
"""Each follow-up is in exactly one, first match wins: done; overdue (due passed); due soon
(due within the window); acknowledged; open."""
UNKNOWN = "(no recipient known)"
How = Literal["recorded", "derived", "unknown"]
_RECORDED = re.compile(r"^to (?P<name>.+?) by recipients\[\d+\] ")


@dataclass(frozen=True, slots=True)
class TeamFollowUp:
    row: FollowUpRow
    team: str
    how: How
    """recorded: from the delivered notification; derived: from today's config."""
    state: str


def state_of(row: FollowUpRow, now: datetime, window: timedelta) -> str:
    if row.status == FollowUpStatus.DONE:
        return "done"
    if row.due_at <= now:
        return "overdue"
    if row.due_at <= now + window:
        return "due soon"
    return "acknowledged" if row.status == FollowUpStatus.ACKNOWLEDGED else "open"


def team_of(row: FollowUpRow, config: Config | None) -> tuple[str, How]:
    for _destination, detail in reversed(row.recorded):
        if found := _RECORDED.match(detail):
            return found.group("name"), "recorded"
    if config is None:
        return UNKNOWN, "unknown"
    try:
        event = care_event(row.body)
    except Unrenderable:
        return UNKNOWN, "unknown"
    for destination in config.destinations:
        if isinstance(destination, NotificationDestination) and (
            destination.name in row.destinations or not row.destinations
        ):
            chosen = recipient_for(destination.recipients, event, config.transitions.practice_icbs)
            if chosen is not None:
                return chosen.name, "derived"
    return UNKNOWN, "unknown"


def by_team(
    rows: tuple[FollowUpRow, ...], config: Config | None, now: datetime, window: timedelta
) -> list[TeamFollowUp]:
    """Each follow-up with its team and state, by team then soonest due."""
    out = []
    for row in rows:
        team, how = team_of(row, config)
        out.append(TeamFollowUp(row, team, how, state_of(row, now, window)))
    return sorted(out, key=lambda t: (t.team, t.row.due_at))
