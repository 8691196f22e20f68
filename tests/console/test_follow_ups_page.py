"""Follow-ups by team over HTTP: each follow-up in one state (overdue, due soon, open,
acknowledged, done) under the team its notification recorded, or derived from today's config
and said so; due times in UK local time; the CSV with NHS numbers only for roles that see
patient data; views and downloads audited for those roles."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from engine.config import feed_profiles, follow_up_rules, parse_config
from engine.console.app import start_console
from engine.preparation import prepare
from engine.store import (
    AttemptRecord,
    Delivered,
    FollowUpRecord,
    IntakeRecord,
    Store,
    console_reads,
)
from engine.store.follow_ups import record_follow_up
from tests.adt_factory import adt, patients
from tests.console.seed import LEASE, accepted
from tests.console.web import console, console_config, signed_in

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)
CONFIG = parse_config(
    """
sources: [{name: mh, care_setting: mental_health}]
destinations:
  - name: notify
    type: notification
    ack_base_url: "https://cb.example"
    ack_secret: ${ACK}
    recipients: [{name: crisis-team, url: "https://team.example/notify"}]
routes:
  - {name: notify, match: {kinds: [discharge]}, to: [notify]}
""",
    env={"ACK": "a" * 32},
)


def clocked(key: str, nhs: str, due: datetime) -> IntakeRecord:
    record = accepted(key, f"nhs:{nhs}", destinations=("team",), at=due - timedelta(hours=72))
    assert record.accepted is not None
    clock = FollowUpRecord("mh-72h", "72h", due - timedelta(hours=72), due)
    return replace(record, accepted=replace(record.accepted, follow_up=clock))


async def seed_states(store: Store) -> None:
    """One follow-up in each state; their notifications record team names (two teams)."""
    await store.record_intake([
        clocked("over", "9990000018", NOW - timedelta(hours=2)),
        clocked("soon", "9990000026", NOW + timedelta(hours=3)),
        clocked("open", "9990000034", NOW + timedelta(hours=50)),
        clocked("ackd", "9990000042", NOW + timedelta(hours=60)),
        clocked("done", "9990000050", NOW + timedelta(hours=70)),
    ])  # fmt: skip
    now = datetime.now(UTC)
    for c in await store.claim_due(["team"], limit=10, lease=LEASE, owner="t", now=now):
        team = "east-team" if c.event_id in ("ev-over", "ev-soon") else "west-team"
        detail = f"to {team} by recipients[0] {team} (its GP practice matched): HTTP 200 ok"
        await store.finish_delivery(c, [AttemptRecord(NOW, 5, "delivered", 200, detail)],
                                    Delivered(NOW))  # fmt: skip
    assert await record_follow_up(store, "ev-ackd", "ack", "dr who")
    assert await record_follow_up(store, "ev-done", "done", "dr who")


async def test_follow_ups_by_team_in_each_state_with_local_times(store: Store) -> None:
    await seed_states(store)
    async with console(store) as c, signed_in(c.url, "clara") as s:
        async with s.get("/follow-ups") as r:
            assert r.status == 200
            page = await r.text()
        async with s.get("/follow-ups?window=1") as r:
            narrow = await r.text()
        async with s.get("/follow-ups?window=nope") as r:
            assert r.status == 400
    teams = page[page.index('class="teams"') : page.index("Every follow-up")]
    east, west = teams.split("<td>east-team</td>")[1], teams.split("<td>west-team</td>")[1]
    assert [int(n) for n in _numbers(east)[:5]] == [1, 1, 0, 0, 0]
    assert [int(n) for n in _numbers(west)[:5]] == [0, 0, 1, 1, 1]
    assert " GMT</td>" in page or " BST</td>" in page
    assert "Europe/London" in page
    assert "derived" not in page
    assert "/patients?patient=nhs%3A9990000018" in page
    assert _numbers(narrow.split("<td>east-team</td>")[1])[:3] == ["1", "0", "1"]
    async with (
        console(store, due_soon="2h") as c,
        signed_in(c.url, "clara") as s,
        s.get("/follow-ups") as r,
    ):
        configured = await r.text()
    assert "due soon means within 2 h" in configured
    assert _numbers(configured.split("<td>east-team</td>")[1])[:3] == ["1", "0", "1"]
    trail = await console_reads.audit_entries(store, actor="clara")
    assert [t.action for t in trail] == ["view_follow_ups"] * 3
    assert trail[-1].detail == "no filters; 5 rows: messages 5-1"
    assert trail[1].detail == "filters window='1'; 5 rows: messages 5-1"


def _numbers(fragment: str) -> list[str]:
    return re.findall(r'<span class="[a-z ]*">(\d+)</span>', fragment)


async def test_the_csv_has_nhs_numbers_only_for_roles_that_see_patient_data(store: Store) -> None:
    await seed_states(store)
    async with console(store) as c:
        async with signed_in(c.url, "clara") as s, s.get("/follow-ups.csv") as r:
            assert r.headers["Content-Type"].startswith("text/csv")
            clinical = list(csv.DictReader(io.StringIO(await r.text())))
        async with signed_in(c.url, "vera") as s, s.get("/follow-ups.csv") as r:
            viewer_text = await r.text()
        async with signed_in(c.url, "vera") as s, s.get("/follow-ups") as r:
            viewer_page = await r.text()
    by_event = {row["event_id"]: row for row in clinical}
    assert by_event["ev-over"]["nhs_number"] == "9990000018"
    assert (by_event["ev-over"]["team"], by_event["ev-over"]["state"]) == ("east-team", "overdue")
    assert by_event["ev-done"]["state"] == "done"
    assert by_event["ev-done"]["done_at"]
    assert by_event["ev-ackd"]["acknowledged_at"].endswith(("+00:00", "+01:00"))
    assert "SMITH" not in viewer_text
    assert "JANE" not in viewer_text
    assert "nhs_number" not in viewer_text
    assert "9990000018" not in viewer_text
    assert len(list(csv.DictReader(io.StringIO(viewer_text)))) == 5
    assert "9990000018" not in viewer_page
    actions = [t.action for t in await console_reads.audit_entries(store)]
    assert actions == ["export_follow_ups"]  # the viewer saw no patient data: not audited


async def test_a_team_not_recorded_is_derived_from_todays_config_and_said_so(
    store: Store,
) -> None:
    patient = patients(1)[0]
    prepared = prepare("mh", adt("A03", patient, "D1", NOW - timedelta(hours=1)), config=CONFIG,
                       profiles=feed_profiles(CONFIG), received_at=NOW,
                       follow_up_rules=follow_up_rules(CONFIG))  # fmt: skip
    assert prepared.record.accepted is not None
    assert prepared.record.accepted.follow_up is not None
    await store.record_intake([prepared.record])
    runner, port = await start_console(
        store, console_config(), on_replay=lambda: None, engine_config=CONFIG
    )
    try:
        async with signed_in(f"http://127.0.0.1:{port}", "clara") as s, s.get("/follow-ups") as r:
            page = await r.text()
    finally:
        await runner.cleanup()
    assert "<td>crisis-team (derived)</td>" in page
    assert 'id="derived"' in page
    assert "today's recipient rules" in page
