"""The store's alert state: claims decide which replica posts a raise or a clear, once."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from engine.store import FollowUpRecord, Store
from tests.console.seed import T0, accepted

pytestmark = pytest.mark.integration

LEASE = timedelta(minutes=2)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
STALE = NOW - LEASE
FACTS: dict[str, str | int] = {"destination": "gp", "pending": 3}


async def test_one_claim_raises_and_one_clears(store: Store) -> None:
    first = await store.claim_raise("backlog.gp", "backlog", "e1", FACTS, NOW, STALE)
    assert first is not None
    assert await store.claim_raise("backlog.gp", "backlog", "e1", FACTS, NOW, STALE) is None
    [row] = await store.standing_alerts(["backlog"])
    assert (row.key, row.phase, row.facts, row.claimed_at) == ("backlog.gp", "raising", FACTS, NOW)
    await store.confirm_raise("backlog.gp", first, NOW)
    assert await store.claim_raise("backlog.gp", "backlog", "e2", FACTS, NOW, STALE) is None
    assert await store.claim_clear("backlog.gp", "other-episode", NOW, STALE) is None
    clearing = await store.claim_clear("backlog.gp", "e1", NOW, STALE)
    assert clearing is not None
    assert await store.claim_clear("backlog.gp", "e1", NOW, STALE) is None
    await store.confirm_clear("backlog.gp", clearing)
    assert await store.standing_alerts(["backlog"]) == []


async def test_a_failed_post_gives_the_claim_back(store: Store) -> None:
    token = await store.claim_raise("dead_letter.7", "dead_letter", "3", FACTS, NOW, STALE)
    assert token is not None
    await store.drop_raise("dead_letter.7", token)
    assert await store.standing_alerts(["dead_letter"]) == []
    token = await store.claim_raise("dead_letter.7", "dead_letter", "3", FACTS, NOW, STALE)
    assert token is not None
    await store.confirm_raise("dead_letter.7", token, NOW)
    clearing = await store.claim_clear("dead_letter.7", "3", NOW, STALE)
    assert clearing is not None
    await store.release_clear("dead_letter.7", clearing)
    [row] = await store.standing_alerts(["dead_letter"])
    assert (row.phase, row.claimed_at) == ("raised", None)
    assert await store.claim_clear("dead_letter.7", "3", NOW, STALE) is not None


async def test_a_claim_left_by_a_dead_replica_is_taken_over_after_the_lease(store: Store) -> None:
    assert await store.claim_raise("backlog.gp", "backlog", "e1", FACTS, NOW, STALE)
    later = NOW + timedelta(minutes=1)
    assert (
        await store.claim_raise("backlog.gp", "backlog", "e1", FACTS, later, later - LEASE) is None
    )
    late = NOW + LEASE + timedelta(seconds=1)
    token = await store.claim_raise("backlog.gp", "backlog", "e1", FACTS, late, late - LEASE)
    assert token is not None
    await store.confirm_raise("backlog.gp", token, late)
    clearing = await store.claim_clear("backlog.gp", "e1", late, late - LEASE)
    assert clearing is not None
    # The replica clearing it died too: another takes the clear over once the lease ran out.
    assert await store.claim_clear("backlog.gp", "e1", late, late - LEASE) is None
    later_still = late + LEASE + timedelta(seconds=1)
    assert await store.claim_clear("backlog.gp", "e1", later_still, later_still - LEASE)


async def test_conditions_are_read_apart(store: Store) -> None:
    assert await store.claim_raise("backlog.gp", "backlog", "e1", FACTS, NOW, STALE)
    assert await store.claim_raise("silent_source.a", "silent_source", "s", {}, NOW, STALE)
    assert [r.key for r in await store.standing_alerts(["silent_source"])] == ["silent_source.a"]
    assert len(await store.standing_alerts(["backlog", "silent_source"])) == 2


async def with_follow_up(store: Store) -> str:
    clock = FollowUpRecord("72h", "72h", T0, T0 + timedelta(hours=72))
    record = accepted("f1", destinations=("gp",))
    assert record.accepted is not None
    event = dataclasses.replace(record.accepted, follow_up=clock)
    await store.record_intake([dataclasses.replace(record, accepted=event)])
    return event.event_id


async def test_a_follow_up_alert_is_claimed_once_and_recorded_on_the_follow_up(
    store: Store,
) -> None:
    event_id = await with_follow_up(store)
    now = datetime.now(UTC) + timedelta(hours=5)
    [due] = await store.follow_ups_to_alert(now, now - timedelta(hours=4))
    assert (due.event_id, due.alerted_overdue, due.alerted_unacknowledged) == (
        event_id,
        False,
        False,
    )
    key = f"follow_up_overdue.{event_id}"
    args = (key, "follow_up_overdue", "e", {"event_id": event_id}, event_id, now, now - LEASE)
    token = await store.claim_follow_up_alert(*args)
    assert token is not None
    assert await store.claim_follow_up_alert(*args) is None
    await store.confirm_follow_up_alert(key, "follow_up_overdue", event_id, token)
    # The claim row is gone, but the follow-up says it was alerted: no second claim.
    assert await store.claim_follow_up_alert(*args) is None
    assert await store.standing_alerts(["follow_up_overdue"]) == []
    [due] = await store.follow_ups_to_alert(now, now - timedelta(hours=4))
    assert (due.alerted_overdue, due.alerted_unacknowledged) == (True, False)
    # Not yet unacknowledged for long enough: nothing more is due.
    assert await store.follow_ups_to_alert(now, T0) == []
