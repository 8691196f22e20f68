"""Dead letters grouped by error (destination and normalised reason) with a replay per group:
the group's dead letters only, none newer than the page showed, CSRF-checked and audited like
the bulk replay; readable durations and local times."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from engine.readable import duration, local, milliseconds
from engine.store import AttemptRecord, DeadLettered, Delivered, Store, console_reads
from engine.store.console_dead_letters import normalised
from tests.console.seed import LEASE, accepted
from tests.console.web import console, csrf_of, signed_in

pytestmark = pytest.mark.integration
REASONS = (
    "gave up after 6 attempts: HTTP 503: busy (retry 12)",
    "gave up after 7 attempts: HTTP 503: busy (retry 30)",
    "refused by the destination: HTTP 422: PID-3 missing",
    "gave up after 5 attempts: HTTP 503: busy (retry 9)",
)


def test_readable_durations_and_local_times() -> None:
    assert duration(timedelta(seconds=4.160882)) == "4.2 s"
    assert duration(timedelta(hours=2)) == "2 h"
    assert duration(timedelta(minutes=3, seconds=5)) == "3 min 5 s"
    assert duration(timedelta(days=3, hours=4, minutes=1)) == "3 d 4 h"
    assert milliseconds(250) == "250 ms"
    assert milliseconds(4200) == "4.2 s"
    assert local(datetime(2026, 1, 1, 9, 0, tzinfo=UTC)) == "2026-01-01 09:00:00 GMT"
    assert local(datetime(2026, 7, 1, 9, 0, tzinfo=UTC), seconds=False) == "2026-07-01 10:00 BST"


def test_reasons_differing_only_in_numbers_are_one_group() -> None:
    assert normalised(REASONS[0]) == normalised(REASONS[1]) == normalised(REASONS[3])
    assert normalised(REASONS[0]) == "gave up after N attempts: HTTP 503: busy (retry N)"
    assert normalised(REASONS[2]) != normalised(REASONS[0])
    assert normalised("timeout after 0:00:04.160882 to 10.1.2.3:443") == "timeout after N to N"


async def seed_dead(store: Store) -> None:
    """Four dead letters to the team (three alike, one refused) and one to the GP."""
    await store.record_intake(
        [accepted(f"g{i}", f"nhs:999000{i:04d}", destinations=("team", "gp")) for i in range(4)]
    )
    now = datetime.now(UTC)
    claimed = await store.claim_due(["gp", "team"], limit=20, lease=LEASE, owner="t", now=now)
    team = iter(REASONS)
    for c in claimed:
        if c.destination == "team":
            why = next(team)
            await store.finish_delivery(c, [AttemptRecord(now, 5, "transient", 503, "busy")],
                                        DeadLettered(why))  # fmt: skip
        elif c.event_id == "ev-g0":
            await store.finish_delivery(c, [AttemptRecord(now, 5, "transient", 503, "busy")],
                                        DeadLettered(REASONS[0]))  # fmt: skip
        else:
            await store.finish_delivery(c, [AttemptRecord(now, 5, "delivered", 200, "ok")],
                                        Delivered(now))  # fmt: skip


async def test_one_group_is_replayed_and_audited(store: Store) -> None:
    await seed_dead(store)
    busy = "gave up after N attempts: HTTP 503: busy (retry N)"
    async with console(store) as c:
        async with signed_in(c.url, "vera") as s, s.get("/dead-letters") as r:
            viewer = await r.text()
        async with signed_in(c.url, "olive") as s:
            async with s.get("/dead-letters") as r:
                page = await r.text()
            groups = page[page.index('class="groups"') : page.index("</table>")]
            assert re.findall(r"<td>(team|gp)</td><td><span class=\"reason\">([^<]*)</span>"
                              r"</td><td>(\d+)</td>", groups) == [
                ("team", busy, "3"), ("gp", busy, "1"),
                ("team", "refused by the destination: HTTP 422: PID-N missing", "1"),
            ]  # fmt: skip
            up_to = re.search(r'name="up_to" value="(\d+)"', groups)
            assert up_to is not None
            await store.record_intake([accepted("late", "nhs:9990000999", destinations=("team",))])
            form = {"csrf": csrf_of(page), "destination": "team", "reason": busy,
                    "up_to": up_to[1], "comment": "team back up"}  # fmt: skip
            async with s.post("/dead-letters/replay-group", data=form) as r:
                assert "Replayed: 3" in await r.text()
            async with s.post("/dead-letters/replay-group", data={**form, "csrf": "x"}) as r:
                assert r.status == 403
    assert "Replay these" not in viewer
    assert busy not in viewer  # the viewer sees no reasons (they may name a patient)
    replays = [t for t in await console_reads.audit_entries(store) if t.action == "replay_bulk"]
    assert len(replays) == 3
    assert {t.reason for t in replays} == {"team back up"}
    counts = await store.counts()
    assert counts["deliveries.pending"] == 4  # the three replayed and the late arrival
