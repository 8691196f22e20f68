"""Alert state in the store: a restart neither raises a standing alert again nor loses a
"cleared", and with several replicas over one store each raise and clear is posted once."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from engine import alerts
from engine.alerts import AlertState, Observed
from engine.config import AlertsConfig, FollowUpConfig
from engine.store import FollowUpRecord, Store
from tests.console.seed import T0, accepted, deliver_all

pytestmark = pytest.mark.integration

CONFIG = AlertsConfig.model_validate(
    {
        "webhook": {"url": "https://alerts.example/hook", "secret": "k" * 32},
        "backlog_older_than": "15m",
    }
)
FOLLOW_UP = FollowUpConfig.model_validate(
    {"unacknowledged_after": "4h", "alert_webhook": {"url": "https://alerts.example/hook"}}
)


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Hook:
    """The alert webhook; `gate`, when set, holds every POST until it is opened."""

    status: int = 200
    sent: list[tuple[dict[str, object], str]] = field(default_factory=list)
    gate: asyncio.Event | None = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], wait: float) -> Answer:
        if self.gate is not None:
            await self.gate.wait()
        if self.status == 200:
            self.sent.append((orjson.loads(body), headers["Idempotency-Key"]))
        return Answer(self.status)

    def alerts(self) -> list[tuple[object, object]]:
        return sorted((body["alert"], body["state"]) for body, _ in self.sent)


async def backlog_and_dead_letter(store: Store) -> None:
    await store.record_intake([accepted("m1", destinations=("team",))])
    await deliver_all(store, dead=frozenset({"team"}))
    await store.record_intake([accepted("m2", destinations=("gp",))])


async def test_a_restart_does_not_raise_a_standing_alert_again(store: Store) -> None:
    await backlog_and_dead_letter(store)
    now = datetime.now(UTC) + timedelta(minutes=20)
    hook = Hook()
    assert await alerts.check(
        store, CONFIG, hook.post, AlertState(Observed(), started_at=now), now
    ) == (2, 0)
    restarted = AlertState(Observed(), started_at=now + timedelta(minutes=5))
    assert await alerts.check(store, CONFIG, hook.post, restarted, now + timedelta(hours=1)) == (
        0,
        0,
    )
    assert hook.alerts() == [("backlog.gp", "raised"), ("dead_letter.1", "raised")]


async def test_a_condition_that_cleared_while_down_is_cleared_after_the_restart(
    store: Store,
) -> None:
    await backlog_and_dead_letter(store)
    now = datetime.now(UTC) + timedelta(minutes=20)
    hook = Hook()
    await alerts.check(store, CONFIG, hook.post, AlertState(Observed(), started_at=now), now)
    await deliver_all(store)  # the backlog drains while the engine is "down"
    restarted = AlertState(Observed(), started_at=now + timedelta(minutes=5))
    assert await alerts.check(store, CONFIG, hook.post, restarted, now + timedelta(minutes=6)) == (
        0,
        1,
    )
    raised_key = next(k for body, k in hook.sent if body["alert"] == "backlog.gp")
    cleared_key = hook.sent[-1][1]
    assert hook.sent[-1][0]["state"] == "cleared"
    assert cleared_key == raised_key.removesuffix(".raised") + ".cleared"


async def test_a_source_that_never_sent_stays_raised_across_a_restart(store: Store) -> None:
    hook = Hook()
    quiet = CONFIG.model_copy(
        update={
            "backlog_older_than": None,
            "dead_letters": False,
            "silent_sources": {"never-sent": timedelta(minutes=30)},
        }
    )
    start = datetime.now(UTC)
    first = AlertState(Observed(), started_at=start)
    assert await alerts.check(store, quiet, hook.post, first, start + timedelta(minutes=31)) == (
        1,
        0,
    )
    restarted = AlertState(Observed(), started_at=start + timedelta(minutes=40))
    assert await alerts.check(
        store, quiet, hook.post, restarted, start + timedelta(minutes=41)
    ) == (0, 0)
    assert hook.alerts() == [("silent_source.never-sent", "raised")]


async def test_two_replicas_send_each_raise_and_clear_once(store: Store) -> None:
    await backlog_and_dead_letter(store)
    now = datetime.now(UTC) + timedelta(minutes=20)
    gate = asyncio.Event()
    a, b = Hook(gate=gate), Hook(gate=gate)
    # Both replicas decide before either has posted: the store's claims decide who sends.
    checks = [
        asyncio.create_task(
            alerts.check(store, CONFIG, hook.post, AlertState(Observed(), started_at=now), now)
        )
        for hook in (a, b)
    ]
    await asyncio.sleep(0)
    gate.set()
    counts = await asyncio.gather(*checks)
    assert sum(raised for raised, _ in counts) == 2
    assert sorted(a.alerts() + b.alerts()) == [
        ("backlog.gp", "raised"),
        ("dead_letter.1", "raised"),
    ]
    await deliver_all(store)
    later = now + timedelta(minutes=1)
    for hook in (a, b):
        await alerts.check(store, CONFIG, hook.post, AlertState(Observed(), started_at=now), later)
    cleared = [x for x in a.alerts() + b.alerts() if x[1] == "cleared"]
    assert cleared == [("backlog.gp", "cleared")]


async def test_claims_decide_between_replicas(store: Store) -> None:
    now = datetime.now(UTC)
    stale = now - alerts.CLAIM_LEASE
    first = await store.claim_raise("backlog.gp", "backlog", "e1", {"pending": 1}, now, stale)
    assert first is not None
    assert await store.claim_raise("backlog.gp", "backlog", "e1", {}, now, stale) is None
    await store.confirm_raise("backlog.gp", first, now)
    assert await store.claim_raise("backlog.gp", "backlog", "e1", {}, now, stale) is None
    clearing = await store.claim_clear("backlog.gp", "e1", now, stale)
    assert clearing is not None
    assert await store.claim_clear("backlog.gp", "e1", now, stale) is None
    await store.confirm_clear("backlog.gp", clearing)
    assert await store.standing_alerts(["backlog"]) == []


async def test_a_raise_claimed_by_a_replica_that_died_is_posted_after_the_lease(
    store: Store,
) -> None:
    await backlog_and_dead_letter(store)
    now = datetime.now(UTC) + timedelta(minutes=20)
    # A replica claimed the backlog's raise and died before posting it.
    observed = await store.observe_alerts(backlogs=True, dead_letters=False, sources=[])
    [pending] = [a for a in alerts.evaluate(AlertState(observed, started_at=now), CONFIG, now)[0]]
    await store.claim_raise(
        pending.key,
        pending.condition,
        pending.episode,
        pending.facts,
        now,
        now - alerts.CLAIM_LEASE,
    )
    hook = Hook()
    state = AlertState(Observed(), started_at=now)
    assert await alerts.check(store, CONFIG, hook.post, state, now + timedelta(seconds=30)) == (
        1,
        0,
    )
    assert hook.alerts() == [("dead_letter.1", "raised")]  # the backlog's claim still runs
    late = now + alerts.CLAIM_LEASE + timedelta(seconds=1)
    assert await alerts.check(store, CONFIG, hook.post, state, late) == (1, 0)
    assert hook.sent[-1][1] == pending.idempotency_key("raised")
    assert await alerts.check(store, CONFIG, hook.post, state, late) == (0, 0)


async def test_a_refused_raise_is_raised_again_at_the_next_check(store: Store) -> None:
    await backlog_and_dead_letter(store)
    now = datetime.now(UTC) + timedelta(minutes=20)
    hook = Hook(status=503)
    state = AlertState(Observed(), started_at=now)
    with pytest.raises(alerts.AlertRefused):
        await alerts.check(store, CONFIG, hook.post, state, now)
    hook.status = 200
    assert await alerts.check(store, CONFIG, hook.post, state, now) == (2, 0)


async def follow_up_due(store: Store) -> str:
    clock = FollowUpRecord("72h", "72h", T0, T0 + timedelta(hours=72))
    record = accepted("f1", destinations=("gp",))
    assert record.accepted is not None
    event = dataclasses.replace(record.accepted, follow_up=clock)
    await store.record_intake([dataclasses.replace(record, accepted=event)])
    return event.event_id


async def test_follow_up_alerts_go_once_across_replicas_and_restarts(store: Store) -> None:
    event_id = await follow_up_due(store)
    now = datetime.now(UTC) + timedelta(hours=5)  # due long ago; unacknowledged for 5 h
    gate = asyncio.Event()
    a, b = Hook(gate=gate), Hook(gate=gate)
    checks = [
        asyncio.create_task(alerts.check_follow_ups(store, FOLLOW_UP, h.post, now)) for h in (a, b)
    ]
    await asyncio.sleep(0)
    gate.set()
    # One check raises one alert per follow-up (overdue first, then unacknowledged), so the two
    # replicas raise one or two between them: two when the second replica reads the follow-up
    # after the first confirmed its overdue alert (it then raises the unacknowledged one).
    together = await asyncio.gather(*checks)
    assert 1 <= sum(together) <= 2
    assert min(together) <= 1
    later = [  # later checks, as after a restart: whatever is left, once
        await alerts.check_follow_ups(store, FOLLOW_UP, a.post, now) for _ in range(3)
    ]
    assert sum(together) + sum(later) == 2
    assert later[1:] == [0, 0]
    sent = [(body["condition"], body["event_id"], key) for body, key in a.sent + b.sent]
    assert sorted(sent) == [
        (
            "follow_up_overdue",
            event_id,
            f"carebridge.alert.follow_up_overdue.{event_id}.20260104T090000.000000Z.raised",
        ),
        (
            "notification_unacknowledged",
            event_id,
            f"carebridge.alert.notification_unacknowledged.{event_id}.20260104T090000.000000Z.raised",
        ),
    ]
    assert await store.standing_alerts(["follow_up_overdue", "notification_unacknowledged"]) == []
